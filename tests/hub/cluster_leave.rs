//! A graceful leave: a real node process stopped with SIGTERM releases its
//! lease on the way out, so a live node reaps it at its next scan and takes its people
//! over at once (their grace period starts now) instead of after the lease runs out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::store::{MongoStore, SharedStore};

use crate::archive::{TempDir, free_port, mongo_uri, wait_for_port};
use crate::cluster_hub::node_with;
use crate::common::Ws;
use crate::redis_server::RedisServer;
use crate::storeops::hub_command;

const WAIT: Duration = Duration::from_secs(20);
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
    let redis = RedisServer::start().await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let scratch = TempDir::new("cluster-leave");
    let port = free_port();
    let (bind, url, uri) = (format!("127.0.0.1:{port}"), redis.url(), mongo_uri());
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let lease = LONG_LEASE_MS.to_string();
    let envs = [
        ("BIND_ADDR", bind.as_str()),
        ("STORE", "mongodb"),
        ("MONGODB_URI", uri.as_str()),
        ("MONGODB_DB", db.as_str()),
        ("REDIS_URL", url.as_str()),
        ("NODE_ID", "leaving"),
        ("CLUSTER_LEASE_MS", lease.as_str()),
        ("CLUSTER_RENEW_MS", "1000"),
    ];
    let mut command = hub_command(&scratch.0, &envs, &["serve"]);
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut leaving = command.spawn().expect("the hub binary starts");
    wait_for_port(port).await;
    let deadline = Instant::now() + WAIT;
    let lease_ends = loop {
        if let Some(deadline) = lease_deadline(&mut conn, "leaving").await {
            break deadline;
        }
        assert!(Instant::now() < deadline, "leaving never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let store: SharedStore = Arc::new(MongoStore::connect(&uri, &db).await.unwrap());
    // The grace period runs on the live node (the reaper): long enough for the resume
    // below on a loaded machine.
    let live = node_with(store, &redis, "live", &scratch, |s| {
        s.resume_grace = Duration::from_secs(20);
    })
    .await;
    let mut agent = live.agent("ann", &["general"], 1).await;
    let mut carla = Ws::connect(&format!("ws://{bind}/ws/customer"), &[]).await.unwrap();
    carla
        .send(json!({"type": "join", "name": "Carla", "category": "general"}))
        .await;
    let token = carla.next_of("welcome").await["resume_token"]
        .as_str()
        .unwrap()
        .to_string();
    let chat = carla.next_of("chat_started").await["chat_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(agent.next_of("chat_started").await["chat_id"], chat.as_str());

    // SAFETY: kill takes a pid and a signal number; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(leaving.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = leaving.wait().unwrap();
    assert!(status.success(), "a SIGTERM stops the node cleanly: {status}");
    assert_eq!(
        agent.next_of("peer_away").await["chat_id"],
        chat.as_str(),
        "taken over by the live node"
    );
    let deadline = Instant::now() + WAIT;
    while lease_deadline(&mut conn, "leaving").await.is_some() {
        assert!(Instant::now() < deadline, "the leaving node was never reaped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
