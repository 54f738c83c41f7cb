//! The hub on the cluster's routing scripts: several in-process nodes on one
//! shared store and a real `redis-server`, each with its own clients. A customer on one
//! node and an agent on another are paired and chat; concurrent joins on three nodes keep
//! the routing rules; a node's cut chat subscription loses no message.

use crate::common::{Running, signal};
use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::future::join_all;
use std::time::Duration;
use switchboard::cluster::routing_events::read_events;
use switchboard::cluster::routing_scripts::read_snapshot;
use switchboard::core::routing::Decision;

use serde_json::{Value, json};
use switchboard::store::SharedStore;

use crate::archive::{TempDir, free_port, mongo_uri, wait_for_port};
use crate::cluster_fixture::{
    Process, customer_on, nodes, one_then_two, paired, process_and_nodes, redis_conn, redis_shows, refused_for_now,
    stats_showing, until_reaped, until_registered, woken_fenced,
};
use crate::common::{TestHub, Ws, archived_when, assert_shows, both_told, closed_conversation, health_when, strs_in};
use crate::redis_server::RedisServer;
use crate::storeops::hub_command;

/// How long a test waits for something the cluster must do.
const WAIT: Duration = Duration::from_secs(20);
/// A short lease, so a node's loss shows within a test's patience.
const LEASE_MS: u64 = 1_000;
const RENEW_MS: u64 = 200;

/// A hub in this process that joins the cluster at `redis` as `node`, on `store`, with
/// the settings changed by `tweak` after the cluster's; returns once it holds its lease
/// (before, every routing call would be refused).
pub(crate) async fn node_with(
    store: SharedStore,
    redis: &RedisServer,
    node: &str,
    scratch: &TempDir,
    tweak: impl FnOnce(&mut switchboard::config::Settings),
) -> TestHub {
    let (url, name) = (redis.url(), node.to_string());
    let data_dir = scratch.0.join(node);
    let hub = TestHub::with_store(store, move |s| {
        s.store.data_dir = data_dir;
        s.cluster.redis_url = Some(url);
        s.cluster.node_id = name;
        s.cluster.lease = Duration::from_millis(LEASE_MS);
        s.cluster.renew = Duration::from_millis(RENEW_MS);
        tweak(s);
    })
    .await;
    health_when(&hub, WAIT, &format!("{node} never joined the cluster"), |health| {
        health["cluster"]["incarnation"].is_u64()
    })
    .await;
    hub
}

/// The next `n` chat messages a client gets, in arrival order: the peer's as `message`
/// frames, its own as their compact `ack` (id, seq, time, client id; no text).
pub(crate) async fn messages(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut got = vec![];
    while got.len() < n {
        let frame = ws.next_matching(|f| f["type"] == "message" || f["type"] == "ack").await;
        got.push(frame);
    }
    got
}

/// Customer on alpha, agent on beta: paired (each sees the other's name and one chat id),
/// messages both ways with one gapless seq order the same on both sides, each sender
/// acknowledged with its own client id, typing across, the end told to both, the archive
/// holding the chat once with every message, and the freed capacity taken at once by the
/// customer waiting on alpha.
#[tokio::test]
async fn a_customer_on_one_node_and_an_agent_on_another_are_paired_and_chat() {
    let ([alpha, beta], servers) = nodes("cluster-hub", ["alpha", "beta"], |_| {}).await;
    let store = &servers.store;

    let mut agent = beta.agent("ann", &["general"], 1).await;
    let mut carla = alpha.customer("Carla", "general").await;
    let started = carla.next_of("chat_started").await;
    let agent_started = agent.next_of("chat_started").await;
    assert_eq!(started["peer_name"], "ANN", "{started}");
    assert_eq!(agent_started["peer_name"], "Carla", "{agent_started}");
    let chat = started["chat_id"].as_str().unwrap().to_string();
    assert_eq!(agent_started["chat_id"], chat.as_str(), "one chat id on both nodes");

    carla.send(json!({"type": "typing", "active": true})).await;
    let typing = agent.next_of("typing").await;
    assert_eq!(
        (typing["chat_id"].as_str(), typing["active"].as_bool()),
        (Some(chat.as_str()), Some(true))
    );

    for i in 0..5 {
        carla
            .send(json!({"type": "message", "text": format!("c{i}"), "client_id": format!("cc{i}")}))
            .await;
        agent
            .send(json!({"type": "message", "chat_id": chat, "text": format!("a{i}"), "client_id": format!("ac{i}")}))
            .await;
    }
    let seen_by_customer = messages(&mut carla, 10).await;
    let seen_by_agent = messages(&mut agent, 10).await;
    for (side, seen) in [("customer", &seen_by_customer), ("agent", &seen_by_agent)] {
        let seqs: Vec<u64> = seen.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (1..=10).collect::<Vec<_>>(),
            "the {side} got seq 1..10 once each: {seqs:?}"
        );
    }
    // One order on both sides: the same id at each seq (a side's own messages come back
    // as acks with the id and seq, the peer's as messages).
    let ids_by_seq = |seen: &[Value]| -> BTreeMap<u64, String> {
        seen.iter()
            .map(|m| (m["seq"].as_u64().unwrap(), m["id"].as_str().unwrap().to_string()))
            .collect()
    };
    assert_eq!(
        ids_by_seq(&seen_by_customer),
        ids_by_seq(&seen_by_agent),
        "one order and the same ids on both sides"
    );
    // Each side reads the peer's messages, from the peer, in the order they were sent.
    let peers = |seen: &[Value], from: &str| -> Vec<String> {
        let mut theirs: Vec<&Value> = seen.iter().filter(|m| m["type"] == "message").collect();
        theirs.sort_by_key(|m| m["seq"].as_u64());
        assert!(theirs.iter().all(|m| m["from"] == from), "{theirs:?}");
        theirs.iter().map(|m| m["text"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(peers(&seen_by_customer, "agent"), ["a0", "a1", "a2", "a3", "a4"]);
    assert_eq!(peers(&seen_by_agent, "customer"), ["c0", "c1", "c2", "c3", "c4"]);
    // Each side's own messages are acknowledged in their order with their client ids.
    let own = |seen: &[Value]| -> Vec<String> {
        let mut mine: Vec<&Value> = seen.iter().filter(|m| m["type"] == "ack").collect();
        mine.sort_by_key(|m| m["seq"].as_u64());
        mine.iter()
            .map(|m| m["client_id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(own(&seen_by_customer), ["cc0", "cc1", "cc2", "cc3", "cc4"]);
    assert_eq!(own(&seen_by_agent), ["ac0", "ac1", "ac2", "ac3", "ac4"]);

    // A second customer waits: the agent's one chat is taken.
    let mut dora = alpha.customer_queued("Dora", "general", 1).await;
    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    let ended = carla.next_of("chat_ended").await;
    assert_eq!(
        (ended["chat_id"].as_str(), ended["ended_by"].as_str()),
        (Some(chat.as_str()), Some("agent"))
    );
    assert_eq!(agent.next_of("chat_ended").await["chat_id"], chat.as_str());
    // The freed capacity goes to the customer waiting on the other node.
    let next = dora.next_of("chat_started").await;
    assert_eq!(next["peer_name"], "ANN");
    assert_eq!(agent.next_of("chat_started").await["peer_name"], "Dora");

    // The customer's node archived the chat once, with every message.
    let record = archived_when(store, &chat, WAIT, |r| r.closed.is_some() && r.messages.len() == 10)
        .await
        .expect("the chat is archived with its 10 messages");
    let archived: Vec<u64> = record.messages.iter().map(|m| m.seq).collect();
    assert_eq!(archived, (1..=10).collect::<Vec<_>>());
    assert_eq!(record.opened.customer_name, "Carla");
    assert_eq!(record.opened.agent_name, "ANN");
    alpha.stop().await;
    beta.stop().await;
}

/// Cluster scenario 1, smaller: 6 agents (limits 1–3, one or both of two categories)
/// spread over 3 nodes, and 60 customers joining at once through the 3 nodes while the
/// agents turn available. Checked over what the clients saw and what Redis recorded:
/// every customer paired at most once, every agent given exactly their limit (work
/// conservation: both queues stay long), the agents' and customers' pairings the same,
/// no FIFO inversion within a category, and every node's live figures showing the whole
/// cluster (each node's replica agrees with Redis).
#[tokio::test]
async fn concurrent_joins_on_three_nodes_keep_the_routing_rules() {
    let (nodes, servers) = nodes("cluster-hub-race", ["n0", "n1", "n2"], |_| {}).await;
    let redis = &servers.redis;
    let categories = ["general", "sales"];
    let mut agents = vec![];
    let mut limits = vec![];
    for i in 0..6usize {
        let held: Vec<&str> = match i % 3 {
            0 => vec!["general"],
            1 => vec!["sales"],
            _ => vec!["general", "sales"],
        };
        let limit = (i % 3 + 1) as u8;
        let token = nodes[0].agent_account(&format!("agent{i}"), &held, limit).await;
        agents.push(Ws::agent(&nodes[i % 3], &token).await);
        limits.push(limit as usize);
    }
    let capacity: usize = limits.iter().sum();

    let joins = (0..60usize).map(|j| {
        let node = &nodes[j % 3];
        async move { node.customer(&format!("cust{j:02}"), categories[j % 2]).await }
    });
    let available = agents
        .iter_mut()
        .map(|a| async move { a.send(json!({"type": "set_available", "available": true})).await });
    let (mut customers, _) = tokio::join!(join_all(joins), join_all(available));

    // Each agent gets exactly their limit, and nothing more.
    let mut agent_peers: HashMap<String, usize> = HashMap::new();
    for (i, agent) in agents.iter_mut().enumerate() {
        for _ in 0..limits[i] {
            let started = agent.next_of("chat_started").await;
            *agent_peers
                .entry(started["peer_name"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let extra = agent.drain_of("chat_started").await;
        assert!(
            extra.is_empty(),
            "agent{i} was given more than their limit {}: {extra:?}",
            limits[i]
        );
    }
    assert!(
        agent_peers.values().all(|n| *n == 1),
        "a customer paired twice: {agent_peers:?}"
    );
    assert_eq!(agent_peers.len(), capacity);
    let mut paired_customers = HashSet::new();
    // Each customer listens for QUIET, all at once (one after another they took 60 x QUIET).
    let drained = join_all(customers.iter_mut().map(|c| c.drain())).await;
    for (j, frames) in drained.into_iter().enumerate() {
        let started = frames.iter().filter(|f| f["type"] == "chat_started").count();
        assert!(started <= 1, "cust{j:02} was paired {started} times");
        if started == 1 {
            paired_customers.insert(format!("cust{j:02}"));
        }
    }
    let told_agents: HashSet<String> = agent_peers.keys().cloned().collect();
    assert_eq!(
        paired_customers, told_agents,
        "the customers told they were paired are the agents' peers"
    );

    // FIFO within each category: everyone paired came before everyone still waiting.
    let mut conn = redis_conn(redis).await;
    let mut paired_tickets: HashMap<String, Vec<u64>> = HashMap::new();
    for event in read_events(&mut conn, "0-0", 100_000).await.unwrap() {
        for d in &event.applied.decisions {
            if let Decision::Paired { category, ticket, .. } = d {
                paired_tickets.entry(category.0.to_string()).or_default().push(ticket.0);
            }
        }
    }
    let snapshot = read_snapshot(&mut conn).await.unwrap();
    for (category, waiting) in &snapshot.queues {
        let last_paired = paired_tickets
            .get(category.as_str())
            .and_then(|t| t.iter().max().copied());
        let first_waiting = waiting.iter().map(|w| w.ticket.0).min();
        if let (Some(p), Some(w)) = (last_paired, first_waiting) {
            assert!(p < w, "{}: ticket {p} was paired while {w} still waits", category.0);
        }
    }

    // Every node's figures are the cluster's (its replica agrees with Redis).
    for (n, node) in nodes.iter().enumerate() {
        let what = format!("node n{n}'s figures showing the cluster");
        stats_showing(&node.admin().await, &what, |stats| {
            let waiting: u64 = stats["customers_waiting"]
                .as_object()
                .map(|m| m.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0);
            stats["chats_active"] == capacity && stats["agents_online"] == 6 && waiting == (60 - capacity) as u64
        })
        .await;
    }
    for node in nodes {
        node.stop().await;
    }
}

/// Cluster scenario 4: the chat subscriptions are cut (`CLIENT KILL TYPE pubsub`) while
/// an agent on beta sends a burst to a customer on alpha. The messages published while
/// alpha was not subscribed are in the chat's log: alpha re-reads it when it is back (and
/// fills any gap a later message shows), so the customer gets every message, in seq
/// order, none twice.
#[tokio::test]
async fn a_cut_chat_subscription_loses_no_message() {
    let ([alpha, beta], servers) = nodes("cluster-hub-cut", ["alpha", "beta"], |_| {}).await;
    let redis = &servers.redis;
    let (mut agent, mut carla, chat) = paired(&beta, "ann", 1, &alpha, "Carla").await;

    let mut conn = redis_conn(redis).await;
    const SENT: u64 = 40;
    for i in 0..SENT {
        if i == SENT / 4 {
            let killed: u64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(killed >= 2, "the nodes' subscriptions were cut ({killed})");
        }
        agent
            .send(json!({"type": "message", "chat_id": chat, "text": format!("m{i}")}))
            .await;
        if (SENT / 4..SENT / 2).contains(&i) {
            // Some of the burst while alpha is resubscribing.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let got = messages(&mut carla, SENT as usize).await;
    let seqs: Vec<u64> = got.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=SENT).collect::<Vec<_>>(), "every message once, in order");
    let texts: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, (0..SENT).map(|i| format!("m{i}")).collect::<Vec<_>>());
    let extra = carla.drain_of("message").await;
    assert!(extra.is_empty(), "no message twice: {extra:?}");
    // The sender got every acknowledgement.
    assert_eq!(messages(&mut agent, SENT as usize).await.len(), SENT as usize);
    alpha.stop().await;
    beta.stop().await;
}

/// The incarnation Redis holds for `node`, if registered.
pub(crate) async fn registered(conn: &mut redis::aio::ConnectionManager, node: &str) -> Option<u64> {
    redis::cmd("HGET")
        .arg("{sb}:nodes")
        .arg(node)
        .query_async::<Option<u64>>(conn)
        .await
        .ok()
        .flatten()
}

/// A real hub process in the cluster at `redis`, on MongoDB (a database of its own, which
/// in-process nodes of the test open too), its stdout written to `log` (or dropped),
/// registered in Redis before this returns.
pub(crate) struct NodeProcess {
    pub running: Running,
    pub bind: String,
    pub uri: String,
    pub db: String,
}

/// Starts the [`NodeProcess`] `node`, with settings of its own (`more`: environment
/// variables, after and over the cluster's, such as a longer lease or a test hook).
pub(crate) async fn node_process_with(
    redis: &RedisServer,
    conn: &mut redis::aio::ConnectionManager,
    scratch: &TempDir,
    node: &str,
    log: Option<&std::path::Path>,
    more: &[(&str, &str)],
) -> NodeProcess {
    let port = free_port();
    let (bind, url, uri) = (format!("127.0.0.1:{port}"), redis.url(), mongo_uri());
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let (lease, renew) = (LEASE_MS.to_string(), RENEW_MS.to_string());
    let envs = [
        ("BIND_ADDR", bind.as_str()),
        ("STORE", "mongodb"),
        ("MONGODB_URI", uri.as_str()),
        ("MONGODB_DB", db.as_str()),
        ("REDIS_URL", url.as_str()),
        ("NODE_ID", node),
        ("CLUSTER_LEASE_MS", lease.as_str()),
        ("CLUSTER_RENEW_MS", renew.as_str()),
    ];
    let envs: Vec<(&str, &str)> = envs.iter().chain(more).copied().collect();
    let mut command = hub_command(&scratch.0, &envs, &["serve"]);
    match log {
        Some(path) => command.stdout(std::fs::File::create(path).unwrap()),
        None => command.stdout(std::process::Stdio::null()),
    };
    command.stderr(std::process::Stdio::null());
    let running = Running(command.spawn().expect("the hub binary starts"));
    wait_for_port(port).await;
    until_registered(conn, node).await;
    NodeProcess { running, bind, uri, db }
}

/// Cluster scenario 3: a customer on a real hub process ("sleepy") chats with an
/// agent on a live node; sleepy is stopped (SIGSTOP) past its lease, and the customer
/// sends a message into the frozen socket. The live node reaps sleepy and takes the
/// customer over (the agent is told the customer is away). Woken (SIGCONT), sleepy
/// finds itself fenced: the message it then reads is refused, never delivered; it
/// closes the customer's connection (1012, to reconnect) and rejoins under a higher
/// incarnation; the agent's chat ends after the grace period, and nothing was doubled.
#[tokio::test]
async fn a_node_woken_after_its_lease_ran_out_acts_on_nothing_it_believed() {
    let (sleepy, bind, [awake], servers) = process_and_nodes(
        "cluster-hub-stall",
        Process::named("sleepy").logged(),
        ["awake"],
        |_| {},
    )
    .await;
    let log = servers.scratch.0.join("sleepy.log");
    let mut conn = redis_conn(&servers.redis).await;
    let before = until_registered(&mut conn, "sleepy").await;

    let mut agent = awake.agent("ann", &["general"], 1).await;
    let mut carla = customer_on(&bind, "Carla", "general").await;
    let chat = both_told(&mut carla, &mut agent).await;
    carla.send(json!({"type": "message", "text": "before"})).await;
    let first = agent.next_of("message").await;
    assert_eq!(
        (first["text"].as_str(), first["seq"].as_u64()),
        (Some("before"), Some(1))
    );

    signal(&sleepy.0, libc::SIGSTOP);
    carla.send(json!({"type": "message", "text": "during the stall"})).await;
    until_reaped(&mut conn, "sleepy").await;
    assert_eq!(
        agent.next_of("peer_away").await["chat_id"],
        chat.as_str(),
        "the live node holds the customer now"
    );

    woken_fenced(&sleepy, "sleepy", &mut conn, &mut carla, before).await;
    // The customer did not come back within the grace period: the live node ends the chat.
    let ended = agent.next_of("chat_ended").await;
    assert_eq!(
        (ended["chat_id"].as_str(), ended["reason"].as_str()),
        (Some(chat.as_str()), Some("customer_gone"))
    );
    let mut seen = std::mem::take(&mut agent.seen);
    seen.extend(agent.drain().await);
    let doubled: Vec<&Value> = seen
        .iter()
        .filter(|f| f["type"] == "message" || f["type"] == "chat_started")
        .collect();
    assert!(
        doubled.is_empty(),
        "nothing reached the agent from the fenced node: {doubled:?}"
    );
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("lost its cluster lease"), "the fence is logged:\n{said}");
    awake.stop().await;
    drop(sleepy);
}

/// Cluster scenario 5, the refusing half: Redis killed while a customer on alpha
/// chats with an agent on beta. Alpha stays up, and refuses what needs Redis with
/// `cluster_unavailable` — a message (with its client id; the agent gets nothing) and a
/// new customer's join — instead of acknowledging what it could not record. Once its
/// lease has run out it lets go of its people (1012: reconnect).
#[tokio::test]
async fn with_redis_down_a_node_refuses_what_needs_it() {
    // A longer lease: the refusals are checked while the node still holds it.
    let longer_lease = |s: &mut switchboard::config::Settings| {
        s.cluster.lease = Duration::from_millis(4_000);
        s.cluster.renew = Duration::from_millis(300);
    };
    let ([alpha, beta], mut servers) = nodes("cluster-hub-down", ["alpha", "beta"], longer_lease).await;
    let redis = &mut servers.redis;
    let (mut agent, mut carla, _) = paired(&beta, "ann", 1, &alpha, "Carla").await;

    redis.kill();
    redis_shows(&alpha, "down").await;
    refused_for_now(&mut carla, "lost?", "x1").await;
    let mut dora = Ws::connect(&alpha.ws_url("/ws/customer"), &[]).await.unwrap();
    dora.send(json!({"type": "join", "name": "Dora", "category": "general"}))
        .await;
    assert_eq!(dora.next_of("error").await["code"], "cluster_unavailable");
    let status = reqwest::get(alpha.url("/healthz")).await.unwrap().status();
    assert_eq!(status, 200, "the node stays up");
    let got = agent.drain_of("message").await;
    assert!(got.is_empty(), "a refused message reaches nobody: {got:?}");
    assert_eq!(
        carla.closed().await.map(u16::from),
        Some(1012),
        "once its lease is out, alpha lets go"
    );
    alpha.stop().await;
    beta.stop().await;
}

/// Cluster scenario 2, small: a real hub process ("doomed") holds a chatting customer
/// and a waiting one; the agent is on a live node. `kill -9` doomed: the live node reaps
/// it within the lease, takes its people over (the agent is told the customer is away),
/// and when they do not come back within the grace period today's rules apply — the chat
/// ends (`customer_gone`), the waiting customer leaves the line — and the agent's freed
/// capacity goes to a customer joining on the live node.
#[tokio::test]
async fn a_killed_nodes_people_are_taken_over_and_released_after_the_grace_period() {
    let (mut doomed, bind, [live], servers) =
        process_and_nodes("cluster-hub-kill", Process::named("doomed"), ["live"], |_| {}).await;
    let mut conn = redis_conn(&servers.redis).await;
    let mut agent = live.agent("ann", &["general"], 1).await;
    let mut carla = customer_on(&bind, "Carla", "general").await;
    let chat = both_told(&mut carla, &mut agent).await;
    let mut dora = customer_on(&bind, "Dora", "general").await;
    assert_eq!(dora.next_of("queued").await["place"], 1);

    doomed.0.kill().unwrap();
    let _ = doomed.0.wait();
    assert_eq!(
        agent.next_of("peer_away").await["chat_id"],
        chat.as_str(),
        "taken over by the live node"
    );
    until_reaped(&mut conn, "doomed").await;
    let ended = agent.next_of("chat_ended").await;
    assert_eq!(
        (ended["chat_id"].as_str(), ended["reason"].as_str()),
        (Some(chat.as_str()), Some("customer_gone"))
    );
    // The freed capacity goes to the next customer, on the live node.
    let mut erin = live.customer("Erin", "general").await;
    assert_eq!(erin.next_of("chat_started").await["peer_name"], "ANN");
    assert_eq!(agent.next_of("chat_started").await["peer_name"], "Erin");
    // The waiting customer left the line when their grace period ran out.
    stats_showing(
        &live.admin().await,
        "the dead node's waiting customer leaving",
        |stats| stats["chats_active"] == 1 && stats["customers_waiting"]["general"] == 0,
    )
    .await;
    live.stop().await;
}

/// Cluster scenario 6, the agent's half: an agent on beta chatting with a customer on
/// alpha drops and comes back on gamma within the grace period. The customer is told the
/// agent went and came back; gamma welcomes the agent with the running chat, reads its
/// history from the chat's log, and the chat goes on both ways in one seq order.
#[tokio::test]
async fn an_agent_comes_back_on_another_node_and_keeps_their_chat() {
    let (mut agent, token, mut carla, chat, [alpha, beta, gamma], _, _servers) =
        crate::cluster_fixture::chat_across_nodes("cluster-hub-move", ["alpha", "beta", "gamma"])
            .await
            .parts();
    // One after the other, so "one" is seq 1 and "two" seq 2 (sent at once, Redis may
    // stamp them either way).
    one_then_two(&mut carla, &mut agent, &chat).await;
    assert_eq!(messages(&mut carla, 2).await.len(), 2);

    drop(agent);
    assert_eq!(carla.next_of("peer_away").await["chat_id"], chat.as_str());
    let (mut agent, welcome) = Ws::with_bearer(&gamma, "/ws/agent", &token, "agent_welcome").await;
    let chats: Vec<&str> = strs_in(&welcome["chats"], "chat_id");
    assert_eq!(chats, [chat.as_str()], "{welcome}");
    assert_eq!(carla.next_of("peer_back").await["chat_id"], chat.as_str());

    agent
        .send(json!({"type": "message", "chat_id": chat, "text": "three"}))
        .await;
    assert_eq!(carla.next_of("message").await["seq"], 3);
    carla.send(json!({"type": "message", "text": "four"})).await;
    let seen = messages(&mut agent, 4).await;
    // The history from the log as whole messages (the agent's own "two" too: this
    // connection never had its text); "three", sent on this node, as its ack.
    let by_seq: BTreeMap<u64, &str> = seen
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["text"].as_str().unwrap_or("(ack)")))
        .collect();
    assert_eq!(
        by_seq.into_iter().collect::<Vec<_>>(),
        [(1, "one"), (2, "two"), (3, "(ack)"), (4, "four")],
        "history from the log, then the chat going on"
    );
    let seqs: Vec<u64> = seen.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "in seq order");
    for node in [alpha, beta, gamma] {
        node.stop().await;
    }
}

/// A customer who leaves a chat with an agent on another node may join again on the same
/// connection, as on one node (the cluster bench's routing rounds found the second join
/// refused with `already_joined` and the leave after it with `not_joined`).
#[tokio::test]
async fn a_customer_who_leaves_a_chat_may_join_again_on_the_same_connection() {
    let ([alpha, beta], _servers) = nodes("cluster-leave", ["alpha", "beta"], |_| {}).await;
    let mut agent = beta.agent("ann", &["general"], 1).await;
    let mut carla = alpha.customer("Carla", "general").await;
    for round in 0..3 {
        let started = carla.next_of("chat_started").await;
        agent.next_of("chat_started").await;
        carla.send(json!({"type": "leave"})).await;
        let ended = carla.next_of("chat_ended").await;
        assert_eq!(ended["chat_id"], started["chat_id"], "round {round}");
        agent.next_of("chat_ended").await;
        carla
            .send(json!({"type": "join", "name": "Carla", "category": "general"}))
            .await;
    }
    carla.next_of("chat_started").await;
    let errors: Vec<Value> = carla.seen.iter().filter(|f| f["type"] == "error").cloned().collect();
    assert!(errors.is_empty(), "{errors:?}");
    alpha.stop().await;
    beta.stop().await;
}

/// A message sent again with its client id and text after the chat went on past it is
/// that message. A page that lost its connection before its `ack` came sends again what it
/// has not seen acknowledged, as the protocol asks: its new connection gets the ack of the
/// first sending (its seq, id and time) and nobody gets the message a second time. A
/// connection that had the line already (sent again as the ack was on its way) gets no
/// second copy of it. Before, a node dropped a stamp below what it had recorded without a
/// word: the page never heard of its message again (scenario 2 found it, with customers
/// going on in the same conversation after `agent_gone`).
#[tokio::test]
async fn a_message_sent_again_after_the_chat_went_on_gets_its_first_ack() {
    let (mut agent, _, mut carla, chat, [alpha, beta], store, _servers) =
        crate::cluster_fixture::chat_across_nodes("cluster-sent-again", ["alpha", "beta"])
            .await
            .parts();
    let from_carla = json!({"type": "message", "text": "my parcel is late", "client_id": "c-1"});
    let from_ann = json!({"type": "message", "chat_id": chat, "text": "let me look", "client_id": "a-1"});
    carla.send(from_carla.clone()).await;
    let first = carla.next_of("ack").await;
    assert_eq!(agent.next_of("message").await["seq"], 1);
    agent.send(from_ann.clone()).await;
    assert_eq!(agent.next_of("ack").await["seq"], 2);
    assert_eq!(carla.next_of("message").await["seq"], 2);

    // Carla's page reconnects (it never saw its ack, say) and sends her line again.
    let token = carla.token.clone().expect("welcomed");
    drop(carla);
    let mut carla = Ws::connect(&alpha.ws_url("/ws/customer"), &[]).await.unwrap();
    carla
        .send(json!({"type": "resume", "token": token, "last_seq": 0}))
        .await;
    carla.next_of("resumed").await;
    carla.send(from_carla).await;
    let again = carla
        .next_matching(|f| ["ack", "message", "error"].contains(&f["type"].as_str().unwrap_or_default()))
        .await;
    assert_eq!(again, first, "the customer's first ack again");

    // Ann sends hers again on the connection that had its ack: nothing comes back for it.
    agent.send(from_ann).await;
    let next = agent.say_in(&chat, "anything else?", "a-2").await;
    assert_eq!(
        (next["seq"].as_u64(), next["client_id"].as_str()),
        (Some(3), Some("a-2")),
        "{next}"
    );
    // And the chat goes on at seq 4: neither side got a second copy in between.
    carla
        .send(json!({"type": "message", "text": "thanks", "client_id": "c-2"}))
        .await;
    let seen = carla
        .next_matching(|f| ["ack", "message", "error"].contains(&f["type"].as_str().unwrap_or_default()))
        .await;
    assert_eq!(
        (seen["type"].as_str(), seen["seq"].as_u64()),
        (Some("message"), Some(3)),
        "{seen}"
    );
    assert_eq!(carla.next_of("ack").await["seq"], 4);
    let next = agent.next_matching(|f| f["type"] == "message").await;
    assert_shows(&next, json!({"seq": 4, "text": "thanks"}), "the agent's next line");

    carla.send(json!({"type": "leave"})).await;
    agent.next_of("chat_ended").await;
    let record = closed_conversation(&store, &chat, WAIT)
        .await
        .expect("the chat is archived closed");
    let archived: Vec<u64> = record.messages.iter().map(|m| m.seq).collect();
    assert_eq!(archived, [1, 2, 3, 4], "archived once each");
    alpha.stop().await;
    beta.stop().await;
}
