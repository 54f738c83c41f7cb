//! A node joining late: the routing events stream has been trimmed past what
//! the new node needs (`MAXLEN ~` keeps the last 100,000 entries), so it cannot replay
//! the domain from the first event: its replica starts from a snapshot of the routing
//! domain (`Routing::from_state`) and follows the events after it.

use serde_json::json;

use crate::cluster_fixture::{nodes, redis_conn, sent_and_seen, stats_showing};
use crate::cluster_hub::node_with;

/// Two customers wait on alpha; every routing event so far is trimmed away; beta starts
/// and an agent signs in there: beta's welcome comes (its replica replays the agent's
/// coming online on top of the snapshot), the agent is paired with the first customer,
/// the second is told place 1, beta's live figures show the one still waiting, and a
/// message crosses.
#[tokio::test]
async fn a_node_joining_after_the_events_stream_was_trimmed_starts_from_a_snapshot() {
    let ([alpha], servers) = nodes("cluster-late", ["alpha"], |_| {}).await;
    let store = &servers.store;
    let redis = &servers.redis;
    let scratch = &servers.scratch;
    let mut carla = alpha.customer_queued("Carla", "general", 1).await;
    let mut dora = alpha.customer_queued("Dora", "general", 2).await;

    let mut conn = redis_conn(redis).await;
    let left: u64 = redis::cmd("XTRIM")
        .arg("{sb}:routing-events")
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left > 0, "the joins' events were in the stream and are trimmed now");

    let beta = node_with(store.clone(), redis, "beta", scratch, |_| {}).await;
    let mut agent = beta.agent("ann", &["general"], 1).await;
    // The pairing may come before the answer to the agent turning available.
    let started = match agent.seen.iter().find(|f| f["type"] == "chat_started") {
        Some(frame) => frame.clone(),
        None => agent.next_of("chat_started").await,
    };
    let chat = started["chat_id"].as_str().unwrap().to_string();
    assert_eq!(carla.next_of("chat_started").await["chat_id"], chat.as_str());
    assert_eq!(dora.next_of("place").await["place"], 1);
    stats_showing(&beta.admin().await, "beta's figures showing the cluster", |stats| {
        stats["chats_active"] == 1 && stats["customers_waiting"]["general"] == 1
    })
    .await;
    let hello = json!({"type": "message", "chat_id": chat, "text": "hello", "client_id": "a1"});
    sent_and_seen(&mut agent, &mut carla, hello, 1).await;
    alpha.stop().await;
    beta.stop().await;
}
