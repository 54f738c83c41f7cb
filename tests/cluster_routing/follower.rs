//! A node's follower of the routing events keeps places right from the stream alone, and
//! reloads from a snapshot when events it had not read were trimmed away.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard::cluster::routing_events::{Polled, RoutingFollower};
use switchboard::cluster::routing_scripts::{ClusterRoutingError, RedisRouting};
use switchboard::core::routing::{AgentId, CustomerId, Decision};

use crate::{cat, flushall, register, runtime_and_redis, with_redis};

/// Names the cluster's domain `id` (`{sb}:cluster-id`), as a node starting on an empty Redis does.
async fn set_cluster_id(conn: &mut redis::aio::ConnectionManager, id: &str) {
    let _: () = redis::cmd("SET")
        .arg("{sb}:cluster-id")
        .arg(id)
        .query_async(conn)
        .await
        .unwrap();
}

/// Trims the routing events stream to nothing, as a follower lagging past its trimmed head
/// finds it.
async fn trim_events(conn: &mut redis::aio::ConnectionManager) {
    let _: u64 = redis::cmd("XTRIM")
        .arg("{sb}:routing-events")
        .arg("MAXLEN")
        .arg(0)
        .query_async(conn)
        .await
        .unwrap();
}

#[test]
fn a_follower_tells_every_place_from_the_stream_and_reloads_past_a_trimmed_gap() {
    with_redis(|mut conn| async move {
        for seed in 0..4 {
            flushall(&mut conn).await;
            let node = RedisRouting::new(conn.clone(), "n0", register(&mut conn, "n0").await);
            node.add_category(&cat("c0")).await.unwrap();
            node.add_category(&cat("c1")).await.unwrap();
            let mut follower = RoutingFollower::start(conn.clone()).await.unwrap();
            let mut rng = StdRng::seed_from_u64(seed);
            let mut customers: Vec<CustomerId> = vec![];
            let (mut polls, mut reloads) = (0, 0);
            for _ in 0..400 {
                let agent = AgentId(format!("a{}", rng.random_range(0..3)));
                let customer = customers
                    .get(rng.random_range(0..customers.len().max(1)))
                    .copied()
                    .unwrap_or(CustomerId(0));
                let result = match rng.random_range(0..10) {
                    0..=3 => node
                        .join(&cat(["c0", "c1"][rng.random_range(0..2)]))
                        .await
                        .map(|(id, applied)| {
                            customers.push(id);
                            applied
                        }),
                    4 => node.leave(customer).await,
                    5 => node.customer_disconnected(customer).await,
                    6 => node.customer_resumed(customer).await,
                    7 => node.agent_online(&agent, &[cat("c0"), cat("c1")], 1, true).await,
                    8 => node.agent_offline(&agent).await,
                    _ => node.set_available(&agent, rng.random_bool(0.5)).await,
                };
                match result {
                    Ok(_) | Err(ClusterRoutingError::Refused(_)) => {}
                    Err(other) => panic!("the scripts failed: {other}"),
                }
                if !rng.random_bool(0.3) {
                    continue;
                }
                // Now and then the follower lags past the stream's trimmed head.
                if rng.random_bool(0.2) {
                    trim_events(&mut conn).await;
                }
                match follower.poll(10_000).await.unwrap() {
                    Polled::Events(_) => polls += 1,
                    Polled::Reloaded => reloads += 1,
                }
                let mut told = vec![];
                follower.flush_places(&mut told);
                assert!(told.iter().all(|d| matches!(d, Decision::PlaceChanged { .. })));
                let snapshot = node.snapshot().await.unwrap();
                let mut waiting = 0;
                for (_, queue) in &snapshot.queues {
                    for (index, w) in queue.iter().enumerate() {
                        let places = follower.places();
                        assert_eq!(
                            places.place(w.customer),
                            Some(index + 1),
                            "seed {seed}: the mirror's order"
                        );
                        assert_eq!(
                            places.told(w.customer),
                            Some(index + 1),
                            "seed {seed}: a stale place told"
                        );
                        waiting += 1;
                    }
                }
                let mirrored = customers
                    .iter()
                    .filter(|c| follower.places().place(**c).is_some())
                    .count();
                assert_eq!(mirrored, waiting, "seed {seed}: the mirror holds someone not waiting");
            }
            assert!(
                polls > 0 && reloads > 0,
                "seed {seed}: {polls} polls, {reloads} reloads"
            );
        }
    });
}

/// The hub's follower reads with one pipeline (`follow_blocking`: the checks, then a
/// blocking `XREAD`) where `follow.lua` did it atomically: over random transitions, trims
/// past the follower and a domain replaced under it, both answer alike every time.
#[test]
fn the_blocking_read_finds_what_the_follow_script_finds() {
    use switchboard::cluster::routing_events::{Followed, follow, follow_blocking};
    use switchboard::cluster::routing_scripts::read_snapshot;

    let (runtime, server) = runtime_and_redis();
    runtime.block_on(async {
        let mut conn = server.connect().await;
        let mut rng = StdRng::seed_from_u64(29);
        set_cluster_id(&mut conn, "d1").await;
        let node = RedisRouting::new(conn.clone(), "n0", register(&mut conn, "n0").await);
        node.add_category(&cat("c0")).await.unwrap();
        let (mut last, mut seen) = ("0-0".to_string(), 0u64);
        let (mut reads, mut gaps, mut full) = (0, 0, 0);
        for _ in 0..300 {
            for _ in 0..rng.random_range(0..40) {
                let agent = AgentId(format!("a{}", rng.random_range(0..3)));
                let _ = match rng.random_range(0..3) {
                    0 => node.join(&cat("c0")).await.map(|(_, a)| a),
                    1 => node.agent_online(&agent, &[cat("c0")], 1, true).await,
                    _ => node.agent_offline(&agent).await,
                };
            }
            if rng.random_bool(0.05) {
                trim_events(&mut conn).await;
            }
            let count = 30;
            let atomic = follow(&mut conn, "d1", &last, seen, count).await.unwrap();
            let piped = follow_blocking(&mut conn, "d1", &last, seen, count, 1).await.unwrap();
            assert_eq!(atomic, piped, "after {last} (ordinal {seen})");
            assert_eq!(
                follow_blocking(&mut conn, "d0", &last, seen, count, 1).await.unwrap(),
                Followed::Lost
            );
            match piped {
                Followed::Events(events) => {
                    reads += 1;
                    full += usize::from(events.len() == count);
                    if let Some(e) = events.last() {
                        last.clone_from(&e.id);
                    }
                    seen += events.len() as u64;
                }
                Followed::Gap => {
                    gaps += 1;
                    let snapshot = read_snapshot(&mut conn).await.unwrap();
                    last = snapshot.last_event;
                    seen = snapshot.events_added;
                }
                Followed::Lost => unreachable!(),
            }
        }
        assert!(
            reads > 100 && gaps > 3 && full > 3,
            "reads {reads}, gaps {gaps}, full batches {full}"
        );

        // A read with nothing new waits for the next event and returns it.
        let (mut caught_up, mut at) = (last.clone(), seen);
        while let Followed::Events(events) = follow(&mut conn, "d1", &caught_up, at, 1_000).await.unwrap() {
            let Some(e) = events.last() else { break };
            caught_up.clone_from(&e.id);
            at += events.len() as u64;
        }
        let later = node.clone();
        let joining = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            later.join(&cat("c0")).await.unwrap();
        });
        // On a connection of its own, as the hub's follower has: a blocked read holds up
        // whatever else is sent on its connection. (Under its 1 s response timeout.)
        let mut own = server.connect().await;
        let woke = follow_blocking(&mut own, "d1", &caught_up, at, 30, 800).await.unwrap();
        joining.await.unwrap();
        assert!(
            matches!(&woke, Followed::Events(events) if events.len() == 1 && events[0].transition == "join"),
            "{woke:?}"
        );

        // The data flushed under a parked read (no restart, so the connection stays) and a
        // new domain's first event wakes it: those entries are not taken as the old
        // domain's next ones. Once with the domain's id gone (lost), once with it written
        // back as a restore does (the stream holds fewer than the follower read: a gap).
        // And each again with the data flushed before the read is sent: the read checks
        // the domain after it has read, not before, so only what it finds then counts.
        let cases = [
            (false, None, Followed::Lost),
            (false, Some("d1"), Followed::Gap),
            (true, None, Followed::Lost),
            (true, Some("d1"), Followed::Gap),
        ];
        for (flushed_before_the_read, id_after, expected) in cases {
            // Caught up with the domain "d1" as it is now (the previous round flushed it),
            // past a few events: more than the new domain will hold when the read wakes.
            set_cluster_id(&mut conn, "d1").await;
            let here = RedisRouting::new(conn.clone(), "n0", register(&mut conn, "n0").await);
            for name in ["x1", "x2", "x3"] {
                here.add_category(&cat(name)).await.unwrap();
            }
            let now = read_snapshot(&mut conn).await.unwrap();
            let (caught_up, at) = (now.last_event, now.events_added);
            let mut writer = server.connect().await;
            if flushed_before_the_read {
                flushall(&mut writer).await;
            }
            let flushing = tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                if !flushed_before_the_read {
                    flushall(&mut writer).await;
                }
                if let Some(id) = id_after {
                    set_cluster_id(&mut writer, id).await;
                }
                let again = RedisRouting::new(writer.clone(), "n0", register(&mut writer, "n0").await);
                again.add_category(&cat("c9")).await.unwrap();
            });
            let woke = follow_blocking(&mut own, "d1", &caught_up, at, 30, 800).await.unwrap();
            flushing.await.unwrap();
            assert_eq!(
                woke, expected,
                "flushed before the read: {flushed_before_the_read}, id after: {id_after:?}"
            );
        }
    });
}
