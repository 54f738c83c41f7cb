//! A graceful leave: a real node process stopped with SIGTERM releases its
//! lease on the way out, so a live node reaps it at its next scan and takes its people
//! over at once (their grace period starts now) instead of after the lease runs out.

use std::time::Duration;

use serde_json::json;

use crate::cluster_fixture::{Process, customer_on, process_and_nodes, redis_conn, until_reaped};
use crate::common::{Ws, both_told};

/// The leaving node's lease: far longer than the test waits for the handover, so the
/// handover can only come from the release, not from the lease running out.
const LONG_LEASE_MS: u64 = 120_000;

/// Redis's clock in ms (the clock every lease deadline is on).
async fn redis_now_ms(conn: &mut redis::aio::ConnectionManager) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    secs * 1_000 + micros / 1_000
}

async fn lease_deadline(conn: &mut redis::aio::ConnectionManager, node: &str) -> Option<u64> {
    redis::cmd("ZSCORE")
        .arg("{sb}:leases")
        .arg(node)
        .query_async::<Option<f64>>(conn)
        .await
        .unwrap()
        .map(|d| d as u64)
}

/// A customer on the real process "leaving" chats with an agent on the live node; the
/// process gets SIGTERM: it exits cleanly, and well before its 2-minute lease could have
/// run out (by Redis's clock) the live node has reaped it and taken the customer over —
/// the agent is told the customer is away — and the customer may come back within the
/// grace period on the live node with their token.
#[tokio::test]
async fn a_node_stopped_with_sigterm_hands_its_people_over_at_once() {
    let lease = LONG_LEASE_MS.to_string();
    let long_lease = [("CLUSTER_LEASE_MS", lease.as_str()), ("CLUSTER_RENEW_MS", "1000")];
    // The grace period runs on the live node (the reaper): long enough for the resume
    // below on a loaded machine.
    let (mut leaving, bind, [live], servers) = process_and_nodes(
        "cluster-leave",
        Process::named("leaving").env(&long_lease),
        ["live"],
        |s| s.resume_grace = Duration::from_secs(20),
    )
    .await;
    let mut conn = redis_conn(&servers.redis).await;
    let lease_ends = lease_deadline(&mut conn, "leaving")
        .await
        .expect("leaving holds a lease");
    let mut agent = live.agent("ann", &["general"], 1).await;
    let mut carla = customer_on(&bind, "Carla", "general").await;
    let token = carla.token.clone().unwrap();
    let chat = both_told(&mut carla, &mut agent).await;

    // SAFETY: kill takes a pid and a signal number; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(leaving.0.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = leaving.0.wait().unwrap();
    assert!(status.success(), "a SIGTERM stops the node cleanly: {status}");
    assert_eq!(
        agent.next_of("peer_away").await["chat_id"],
        chat.as_str(),
        "taken over by the live node"
    );
    until_reaped(&mut conn, "leaving").await;
    let now = redis_now_ms(&mut conn).await;
    assert!(
        now < lease_ends,
        "handed over at {now}, before its lease would have run out at {lease_ends}: the release did it"
    );

    let mut back = Ws::connect(&live.ws_url("/ws/customer"), &[]).await.unwrap();
    back.send(json!({"type": "resume", "token": token, "last_seq": 0}))
        .await;
    assert_eq!(back.next_of("resumed").await["chat"]["chat_id"], chat.as_str());
    assert_eq!(agent.next_of("peer_back").await["chat_id"], chat.as_str());
    live.stop().await;
}
