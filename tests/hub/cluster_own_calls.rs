//! Issue 15's gaps: the calls a node makes on its own — a page closing, a grace timer
//! running out — while Redis does not answer are kept in order and sent when it answers
//! again, so the other nodes see those people go without waiting for this node's loss
//! (which never comes: the outage is shorter than its lease).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard::store::{MemoryStore, SharedStore};

use crate::archive::TempDir;
use crate::cluster_fixture::{ChatAcrossNodes, chat_across_nodes_with};
use crate::cluster_hub::node_with;
use crate::common::{TestHub, Ws};
use crate::redis_server::RedisServer;

/// How long a test waits for something the cluster must do.
const WAIT: Duration = Duration::from_secs(20);

/// A node whose lease (8 s) outlasts the outage, renewed (and Redis probed) every 400 ms,
/// with short grace periods so the expiries come soon after Redis is back.
fn outlasting_lease(s: &mut switchboard::config::Settings) {
    s.cluster_lease = Duration::from_millis(8_000);
    s.cluster_renew = Duration::from_millis(400);
    s.resume_grace = Duration::from_secs(2);
    s.buddy_grace = Duration::from_secs(1);
}

/// Carla on alpha chatting with Ann on beta, both nodes with [`outlasting_lease`].
async fn chat_on_two_nodes(scratch: &str) -> ChatAcrossNodes<2> {
    chat_across_nodes_with(scratch, ["alpha", "beta"], outlasting_lease).await
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
    let ChatAcrossNodes {
        mut agent,
        customer: carla,
        chat,
        nodes: [alpha, beta],
        servers,
        ..
    } = chat_on_two_nodes("cluster-own-calls").await;
    let redis = &servers.redis;
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

/// Redis killed (SIGKILL) and started again at once with its data (an append-only file),
/// between two lease renewals: the nodes still say they are ready, and the first message
/// each side sends is accepted — not refused with `cluster_unavailable` ("broken pipe")
/// because the connection, idle across the restart, had not noticed it yet.
#[tokio::test]
async fn the_first_message_after_redis_restarts_with_its_data_is_accepted() {
    let scratch = TempDir::new("cluster-first-call");
    let data = scratch.0.join("redis-data");
    std::fs::create_dir_all(&data).unwrap();
    let port = crate::archive::free_port();
    let mut redis = RedisServer::start_with(port, Some(&data)).await;
    let store: SharedStore = Arc::new(MemoryStore::new());
    // Renewals 5 s apart: the restart falls between two of them.
    let slow_renewals = |s: &mut switchboard::config::Settings| {
        s.cluster_lease = Duration::from_secs(20);
        s.cluster_renew = Duration::from_secs(5);
    };
    let alpha = node_with(store.clone(), &redis, "alpha", &scratch, slow_renewals).await;
    let beta = node_with(store.clone(), &redis, "beta", &scratch, slow_renewals).await;
    let mut agent = beta.agent("ann", &["general"], 1).await;
    let mut carla = alpha.customer("Carla", "general").await;
    let chat = carla.next_of("chat_started").await["chat_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(agent.next_of("chat_started").await["chat_id"], chat.as_str());
    carla
        .send(serde_json::json!({"type": "message", "text": "one", "client_id": "c1"}))
        .await;
    assert_eq!(carla.next_of("ack").await["seq"], 1);
    assert_eq!(agent.next_of("message").await["seq"], 1);

    redis.kill();
    let _redis = RedisServer::start_with(port, Some(&data)).await;
    for hub in [&alpha, &beta] {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, ready): (u16, Value) = {
                let r = reqwest::get(hub.url("/readyz")).await.unwrap();
                (r.status().as_u16(), r.json().await.unwrap())
            };
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "never ready again: {ready}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    carla
        .send(serde_json::json!({"type": "message", "text": "two", "client_id": "c2"}))
        .await;
    let answer = carla.next_matching(|f| f["client_id"] == "c2").await;
    assert_eq!(
        answer["type"], "ack",
        "the customer's first message after the restart: {answer}"
    );
    assert_eq!(answer["seq"], 2);
    agent
        .send(serde_json::json!({"type": "message", "chat_id": chat, "text": "three", "client_id": "a3"}))
        .await;
    let answer = agent.next_matching(|f| f["client_id"] == "a3").await;
    assert_eq!(
        answer["type"], "ack",
        "the agent's first message after the restart: {answer}"
    );
    assert_eq!(answer["seq"], 3);
    alpha.stop().await;
    beta.stop().await;
}

/// Found by review: a customer who reloads their page on the same node while Redis is
/// frozen. Their close is queued (an own call); their resume cannot be recorded, so it is
/// refused and the new connection closed with 1013 (the page tries again) instead of
/// staying attached. Otherwise, once Redis answered, the queued close would make them
/// away in Redis while connected here, and their chat would end after the grace period
/// (`customer_gone`) with the customer still on the page. Here: they resume again after
/// Redis is back and the chat goes on past the grace period.
#[tokio::test]
async fn a_reload_on_the_same_node_while_redis_is_away_keeps_the_chat() {
    let ChatAcrossNodes {
        mut agent,
        customer: carla,
        chat,
        nodes: [alpha, beta],
        servers,
        ..
    } = chat_on_two_nodes("cluster-own-calls-reload").await;
    let redis = &servers.redis;
    let token = carla.token.clone().unwrap();

    redis.pause();
    redis_is(&alpha, "down").await;
    drop(carla);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut reload = Ws::connect(&alpha.ws_url("/ws/customer"), &[]).await.unwrap();
    reload.send(serde_json::json!({"type": "resume", "token": token})).await;
    assert_eq!(
        reload.closed().await.map(u16::from),
        Some(1013),
        "a resume that cannot be recorded closes the page to try again"
    );
    redis.resume();
    redis_is(&alpha, "up").await;
    assert_eq!(agent.next_of("peer_away").await["chat_id"], chat.as_str());

    // The page tries again: now the resume is recorded, and the chat outlives the grace.
    let deadline = Instant::now() + WAIT;
    let mut back = loop {
        let mut ws = Ws::connect(&alpha.ws_url("/ws/customer"), &[]).await.unwrap();
        ws.send(serde_json::json!({"type": "resume", "token": token})).await;
        let first = ws
            .next_matching(|f| f["type"] == "resumed" || f["type"] == "error")
            .await;
        if first["type"] == "resumed" && first["chat"]["chat_id"] == chat.as_str() {
            break ws;
        }
        assert!(Instant::now() < deadline, "the customer never resumed: {first}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(agent.next_of("peer_back").await["chat_id"], chat.as_str());
    tokio::time::sleep(Duration::from_secs(3)).await; // past the 2 s grace period
    back.send(serde_json::json!({"type": "message", "text": "still here"}))
        .await;
    let got = agent.next_of("message").await;
    assert_eq!(got["text"], "still here", "the chat went on: {got}");
    alpha.stop().await;
    beta.stop().await;
}
