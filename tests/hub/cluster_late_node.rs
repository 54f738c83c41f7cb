//! A node joining late: the routing events stream has been trimmed past what
//! the new node needs (`MAXLEN ~` keeps the last 100,000 entries), so it cannot replay
//! the domain from the first event: its replica starts from a snapshot of the routing
//! domain (`Routing::from_state`) and follows the events after it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::store::{MemoryStore, SharedStore};

use crate::archive::TempDir;
use crate::cluster_hub::node_with;
use crate::redis_server::RedisServer;

const WAIT: Duration = Duration::from_secs(20);

/// Two customers wait on alpha; every routing event so far is trimmed away; beta starts
/// and an agent signs in there: beta's welcome comes (its replica replays the agent's
/// coming online on top of the snapshot), the agent is paired with the first customer,
/// the second is told place 1, beta's live figures show the one still waiting, and a
/// message crosses.
#[tokio::test]
async fn a_node_joining_after_the_events_stream_was_trimmed_starts_from_a_snapshot() {
    let scratch = TempDir::new("cluster-late");
    let redis = RedisServer::start().await;
    let store: SharedStore = Arc::new(MemoryStore::new());
    let alpha = node_with(store.clone(), &redis, "alpha", &scratch, |_| {}).await;
    let mut carla = alpha.customer("Carla", "general").await;
    assert_eq!(carla.next_of("queued").await["place"], 1);
    let mut dora = alpha.customer("Dora", "general").await;
    assert_eq!(dora.next_of("queued").await["place"], 2);

    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let left: u64 = redis::cmd("XTRIM")
        .arg("{sb}:routing-events")
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left > 0, "the joins' events were in the stream and are trimmed now");

    let beta = node_with(store.clone(), &redis, "beta", &scratch, |_| {}).await;
    let mut agent = beta.agent("ann", &["general"], 1).await;
    // The pairing may come before the answer to the agent turning available.
    let started = match agent.seen.iter().find(|f| f["type"] == "chat_started") {
        Some(frame) => frame.clone(),
        None => agent.next_of("chat_started").await,
    };
    let chat = started["chat_id"].as_str().unwrap().to_string();
    assert_eq!(carla.next_of("chat_started").await["chat_id"], chat.as_str());
    assert_eq!(dora.next_of("place").await["place"], 1);
    let admin = beta.admin().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, stats) = admin.get("/api/admin/stats").await;
        if stats["chats_active"] == 1 && stats["customers_waiting"]["general"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "beta's figures never showed the cluster: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent
        .send(json!({"type": "message", "chat_id": chat, "text": "hello", "client_id": "a1"}))
        .await;
    assert_eq!(agent.next_of("ack").await["seq"], 1);
    assert_eq!(carla.next_of("message").await["seq"], 1);
    alpha.stop().await;
    beta.stop().await;
}
