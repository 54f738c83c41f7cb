//! A node's follower of the routing events keeps places right from the stream alone, and
//! reloads from a snapshot when events it had not read were trimmed away.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard::cluster::routing_events::{Polled, RoutingFollower};
use switchboard::cluster::routing_scripts::{ClusterRoutingError, RedisRouting};
use switchboard::core::routing::{AgentId, CustomerId, Decision};

use crate::{RedisServer, cat, flushall, register};

#[test]
fn a_follower_tells_every_place_from_the_stream_and_reloads_past_a_trimmed_gap() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    runtime.block_on(async {
        let mut conn = server.connect().await;
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
                    let _: u64 = redis::cmd("XTRIM")
                        .arg("{sb}:routing-events")
                        .arg("MAXLEN")
                        .arg(0)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
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
