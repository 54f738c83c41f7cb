//! Three nodes racing, checked by replaying the events stream through the core.

use std::collections::HashSet;

use switchboard::cluster::routing_events::read_events;
use switchboard::cluster::routing_scripts::RedisRouting;
use switchboard::core::places::Places;
use switchboard::core::routing::{AgentId, CustomerId, Decision, Routing};

use crate::differential::same_state;
use crate::{RedisServer, cat, register};

/// The core's call for one logged transition (not `node_lost`, whose meaning needs the holders).
fn replay(core: &mut Routing, transition: &str, a: &[String]) -> Vec<Decision> {
    let mut out = vec![];
    let customer = |i: usize| CustomerId(a[i].parse().expect("a customer id"));
    let number = |i: usize| a[i].parse::<u64>().expect("a number");
    let agent = AgentId(a[0].clone());
    let result = match transition {
        "add_category" => core.add_category(cat(&a[0])),
        "remove_category" => core.remove_category(&cat(&a[0]), &mut out),
        "join" => core.join(&cat(&a[0]), &mut out).map(|_| ()),
        "leave" => core.leave(customer(0), &mut out),
        "customer_disconnected" => core.customer_disconnected(customer(0), &mut out),
        "customer_resumed" => core.customer_resumed(customer(0), &mut out),
        "customer_grace_expired" => {
            core.customer_grace_expired(customer(0), number(1), &mut out);
            Ok(())
        }
        "agent_online" => {
            let limit = u8::try_from(number(1)).expect("a limit");
            core.agent_online(agent, a[3..].iter().map(|c| cat(c)), limit, a[2] == "1", &mut out)
        }
        "agent_disconnected" => core.agent_disconnected(&agent, &mut out),
        "agent_resumed" => core.agent_resumed(&agent, &mut out),
        "agent_grace_expired" => {
            core.agent_grace_expired(&agent, number(1), &mut out);
            Ok(())
        }
        "agent_offline" => {
            core.agent_offline(&agent, &mut out);
            Ok(())
        }
        "set_available" => core.set_available(&agent, a[1] == "1", &mut out),
        "set_limit" => core.set_limit(&agent, u8::try_from(number(1)).expect("a limit"), &mut out),
        "set_categories" => core.set_categories(&agent, a[1..].iter().map(|c| cat(c)), &mut out),
        other => panic!("{other} is not replayed here"),
    };
    result.unwrap_or_else(|e| panic!("Redis applied {transition} {a:?}; the core refuses it: {e}"));
    out
}

/// The cluster's pairing race at the scripts' level: 30 agents and 300 customers on three
/// nodes (three connections) acting at once. Whatever order Redis ran the scripts in, the
/// events stream records it, and the core applying that order makes exactly the decisions
/// the scripts made, and ends in the same state: the race is equivalent to one hub, so the
/// core's invariants (paired at most once, limits, FIFO, work conservation) hold for it.
#[test]
fn racing_nodes_decide_as_the_core_applying_the_events_stream_in_order() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    runtime.block_on(async {
        let mut admin = server.connect().await;
        let mut nodes = vec![];
        for name in ["n0", "n1", "n2"] {
            let incarnation = register(&mut admin, name).await;
            nodes.push(RedisRouting::new(server.connect().await, name, incarnation));
        }
        for c in ["c0", "c1"] {
            nodes[0].add_category(&cat(c)).await.unwrap();
        }
        let mut tasks = tokio::task::JoinSet::new();
        for a in 0..30usize {
            let node = nodes[a % 3].clone();
            tasks.spawn(async move {
                let id = AgentId(format!("agent{a:02}"));
                let categories = [vec![cat("c0")], vec![cat("c1")], vec![cat("c0"), cat("c1")]][a % 3].clone();
                let limit = u8::try_from(a % 4 + 1).unwrap();
                node.agent_online(&id, &categories, limit, true).await.unwrap();
                for round in 0..6usize {
                    tokio::task::yield_now().await;
                    match round % 3 {
                        0 => {
                            let limit = u8::try_from((a + round) % 4 + 1).unwrap();
                            node.set_limit(&id, limit).await.unwrap();
                        }
                        1 => {
                            node.agent_disconnected(&id).await.unwrap();
                            node.agent_resumed(&id).await.unwrap();
                        }
                        _ => {
                            node.set_available(&id, false).await.unwrap();
                            node.set_available(&id, true).await.unwrap();
                        }
                    }
                }
            });
        }
        for c in 0..300usize {
            let node = nodes[c % 3].clone();
            tasks.spawn(async move {
                let (id, _) = node.join(&cat(["c0", "c1"][c % 2])).await.unwrap();
                match c % 4 {
                    // Leaves the queue or ends the chat, whichever it is in by now.
                    0 => drop(node.leave(id).await.unwrap()),
                    1 => {
                        node.customer_disconnected(id).await.unwrap();
                        node.customer_resumed(id).await.unwrap();
                    }
                    _ => {}
                }
            });
        }
        while let Some(task) = tasks.join_next().await {
            task.unwrap();
        }

        let events = read_events(&mut admin, "0-0", 100_000).await.unwrap();
        let mut core = Routing::new();
        let mut places = Places::new();
        let mut paired = HashSet::new();
        for event in &events {
            let decisions = replay(&mut core, &event.transition, &event.args);
            assert_eq!(
                decisions, event.applied.decisions,
                "event {} ({} {:?} on {})",
                event.id, event.transition, event.args, event.node
            );
            for d in &decisions {
                if let Decision::Paired { customer, .. } = d {
                    assert!(paired.insert(*customer), "{customer:?} paired twice");
                }
            }
            event.applied.update_places(&mut places);
        }
        assert!(paired.len() >= 30, "the race paired customers ({})", paired.len());
        let snapshot = nodes[0].snapshot().await.unwrap();
        same_state(&core, &snapshot, &places).unwrap();
    });
}
