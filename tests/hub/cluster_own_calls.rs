//! Issue 15's gaps: the calls a node makes on its own — a page closing, a grace timer
//! running out — while Redis does not answer are kept in order and sent when it answers
//! again, so the other nodes see those people go without waiting for this node's loss
//! (which never comes: the outage is shorter than its lease).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard::store::{MemoryStore, SharedStore};

use crate::archive::TempDir;
use crate::cluster_hub::node_with;
use crate::common::{TestHub, Ws};
use crate::redis_server::RedisServer;

/// How long a test waits for something the cluster must do.
const WAIT: Duration = Duration::from_secs(20);

/// A node whose lease (8 s) outlasts the outage, renewed (and Redis probed) every 400 ms,
/// with short grace periods so the expiries come soon after Redis is back.
async fn node(store: &SharedStore, redis: &RedisServer, name: &str, scratch: &TempDir) -> TestHub {
    node_with(store.clone(), redis, name, scratch, |s| {
        s.cluster_lease = Duration::from_millis(8_000);
        s.cluster_renew = Duration::from_millis(400);
        s.resume_grace = Duration::from_secs(2);
        s.buddy_grace = Duration::from_secs(1);
    })
    .await
}

async fn redis_is(hub: &TestHub, state: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let health: Value = reqwest::get(hub.url("/healthz")).await.unwrap().json().await.unwrap();
        if health["cluster"]["redis"] == state {
            assert!(
                health["cluster"]["incarnation"].is_u64(),
                "the node kept its lease: {health}"
            );
            return;
        }
        assert!(Instant::now() < deadline, "Redis never showed {state}: {health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn buddy(hub: &TestHub, name: &str) -> (Ws, Value) {
    let mut ws = Ws::connect(&hub.ws_url("/ws/buddy"), &[]).await.unwrap();
    ws.send(serde_json::json!({"type": "buddy_join", "name": name})).await;
    let welcome = ws.next_of("buddy_welcome").await;
    (ws, welcome)
}

/// Redis frozen (SIGSTOP) for about two seconds, shorter than the lease: on alpha a
/// customer chatting with beta's agent and a buddy both close their pages meanwhile.
/// Once Redis answers again, beta's agent sees the customer away and, after the grace
/// period, the chat ended (`customer_gone`); beta's buddy sees the other leave. Before
/// the outbox, the disconnects were refused and lost, and alpha — alive throughout —
/// never handed those people on: beta saw them stay forever.
#[tokio::test]
async fn pages_closed_while_redis_is_away_are_seen_gone_once_it_is_back() {
    let scratch = TempDir::new("cluster-own-calls");
    let redis = RedisServer::start().await;
    let store: SharedStore = Arc::new(MemoryStore::new());
    let alpha = node(&store, &redis, "alpha", &scratch).await;
    let beta = node(&store, &redis, "beta", &scratch).await;

    let mut agent = beta.agent("ann", &["general"], 1).await;
    let mut carla = alpha.customer("Carla", "general").await;
    let chat = carla.next_of("chat_started").await["chat_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(agent.next_of("chat_started").await["chat_id"], chat.as_str());
    let (bob, bob_welcome) = buddy(&alpha, "Bob").await;
    let bob_id = bob_welcome["you"].as_u64().unwrap();
    let (mut eve, _) = buddy(&beta, "Eve").await;

    redis.pause();
    redis_is(&alpha, "down").await;
    drop(carla);
    drop(bob);
    // Alpha handles both closes while Redis is frozen (its calls cannot go through).
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.resume();
    redis_is(&alpha, "up").await;

    assert_eq!(
        agent.next_of("peer_away").await["chat_id"],
        chat.as_str(),
        "beta's agent sees the customer's page closed"
    );
    let ended = agent.next_of("chat_ended").await;
    assert_eq!(
        (ended["chat_id"].as_str(), ended["reason"].as_str()),
        (Some(chat.as_str()), Some("customer_gone")),
        "the customer's grace expiry, made on alpha, applies"
    );
    let left = eve.next_of("buddy_left").await;
    assert_eq!(left["id"].as_u64(), Some(bob_id), "beta's buddy sees Bob go");
    alpha.stop().await;
    beta.stop().await;
}
