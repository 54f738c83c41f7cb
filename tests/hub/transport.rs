//! What each connection enforces on its own: heartbeats and bounded outboxes.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_peer_that_answers_no_pings_is_closed_and_its_agent_told() {
    let hub = TestHub::with(|s| s.heartbeat = Duration::from_millis(200)).await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let (mut c, _) = hub.customer_in_chat("Silent", "general").await;
    // Not reading means not answering pings: the hub must give up on this peer,
    // while the agent, who keeps reading (and so answering pings), stays.
    let away = agent.next_of("peer_away").await;
    assert!(away["chat_id"].is_string());
    while c.recv_within(Duration::from_millis(100)).await.is_some() {}
    assert_eq!(c.closed().await, None, "the silent peer's socket is gone");
    hub.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_not_buffered_for() {
    let hub = TestHub::with(|s| {
        s.outbound_buffer = 8;
        s.max_message_len = 100_000;
    })
    .await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let (c, chat) = hub.customer_in_chat("Slow", "general").await;
    // The customer reads nothing from here on; the agent sends far more than any socket buffer holds.
    let big = "x".repeat(100_000);
    let mut told = false;
    for _ in 0..150 {
        agent
            .send(json!({"type": "message", "chat_id": chat, "text": big}))
            .await;
        while let Some(f) = agent.recv_within(Duration::from_millis(5)).await {
            if f["type"] == "peer_away" {
                told = true;
            }
        }
        if told {
            break;
        }
    }
    if !told {
        told = agent.next_of("peer_away").await["chat_id"] == chat;
    }
    assert!(told, "the agent is told the slow customer was dropped");
    drop(c);
    hub.stop().await;
}
