//! The contracts docs/protocol.md states, checked against the running hub:
//! the frames that answer a join, and what the archive keeps of each chat.

use serde_json::json;

use crate::common::*;

/// A join that finds a free agent is answered by `welcome` then `chat_started`, never `queued`.
#[tokio::test]
async fn a_customer_paired_at_once_never_sees_queued() {
    let hub = TestHub::start().await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let mut c = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    c.send(json!({"type": "join", "name": "Carla", "category": "general"}))
        .await;
    c.next_of("chat_started").await;
    assert_eq!(types(&c.seen), ["welcome"], "frames before chat_started");
    agent.next_of("chat_started").await;
    hub.stop().await;
}

/// With nobody free the join is answered by `welcome` then `queued {place}`, and the pairing later.
#[tokio::test]
async fn a_customer_nobody_can_take_is_told_their_place_then_paired() {
    let hub = TestHub::start().await;
    let mut c = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    c.send(json!({"type": "join", "name": "Carla", "category": "general"}))
        .await;
    let queued = c.next_of("queued").await;
    assert_eq!(types(&c.seen), ["welcome"]);
    assert_eq!(
        (queued["place"].as_u64(), queued["requeued"].as_bool()),
        (Some(1), Some(false))
    );
    let _agent = hub.agent("ann", &["general"], 1).await;
    c.next_of("chat_started").await;
    hub.stop().await;
}
