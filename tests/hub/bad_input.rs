//! Bad frames get the documented error and the connection lives on; floods and garbage get closed.

use futures_util::SinkExt;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn every_kind_of_bad_frame_gets_an_error_and_the_connection_lives_on() {
    let hub = TestHub::with(|s| s.max_message_len = 20).await;
    let mut c = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "bad_json"),
        ("[1,2]".into(), "bad_json"),
        (json!({"type": "teleport"}).to_string(), "unknown_type"),
        (json!({"type": "join", "name": "x"}).to_string(), "bad_frame"),
        (json!({"type": "message", "text": "hi"}).to_string(), "not_joined"),
        (
            json!({"type": "join", "name": "  ", "category": "general"}).to_string(),
            "invalid_name",
        ),
        (
            json!({"type": "join", "name": "Ann", "category": "nope"}).to_string(),
            "unknown_category",
        ),
        (
            json!({"type": "resume", "token": "forged"}).to_string(),
            "resume_expired",
        ),
        (
            format!(r#"{{"type":"draft","text":"{}"}}"#, "x".repeat(20_000)),
            "frame_too_large",
        ),
    ];
    for (frame, code) in cases {
        c.send_raw(&frame).await;
        let err = c.next_of("error").await;
        assert_eq!(err["code"], code, "for {}", &frame[..frame.len().min(60)]);
        assert!(!err["message"].as_str().unwrap().is_empty());
    }
    // Still alive: it can join and is not allowed agent-only frames.
    c.send(json!({"type": "join", "name": "Ann", "category": "general"}))
        .await;
    c.next_of("welcome").await;
    c.send(json!({"type": "set_available", "available": true})).await;
    assert_eq!(c.next_of("error").await["code"], "not_allowed");
    c.send(json!({"type": "join", "name": "Ann", "category": "general"}))
        .await;
    assert_eq!(c.next_of("error").await["code"], "already_joined");
    c.send(json!({"type": "message", "text": "hi"})).await;
    assert_eq!(c.next_of("error").await["code"], "not_in_chat");
    c.send(json!({"type": "ping"})).await;
    c.next_of("pong").await;

    let mut agent = hub.agent("ann", &["sales"], 1).await;
    messages_naming_no_chat_are_refused(&mut agent).await;
    agent
        .send(json!({"type": "join", "name": "x", "category": "general"}))
        .await;
    assert_eq!(agent.next_of("error").await["code"], "not_allowed");
    hub.stop().await;
}

#[tokio::test]
async fn an_agent_cannot_touch_another_agents_chat() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let mut bob = hub.agent("bob", &["sales"], 1).await;
    let (mut c, chat) = hub.paired_customer(&mut ann, "Carla", "general").await;
    bob.send(json!({"type": "message", "chat_id": chat, "text": "sneaky"}))
        .await;
    assert_eq!(bob.next_of("error").await["code"], "not_your_chat");
    bob.send(json!({"type": "end_chat", "chat_id": chat})).await;
    assert_eq!(bob.next_of("error").await["code"], "not_your_chat");
    assert!(c.drain().await.is_empty());
    hub.stop().await;
}

/// A customer socket on `hub` sends the text frame `text` up to `times` times, stopping
/// once the hub has closed it: the close code, and the frames it read meanwhile.
async fn closed_after_sending(hub: &TestHub, text: &str, times: usize) -> (Option<u16>, Vec<serde_json::Value>) {
    let mut c = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    for _ in 0..times {
        let frame = tokio_tungstenite::tungstenite::Message::Text(text.into());
        if c.inner.send(frame).await.is_err() {
            break;
        }
    }
    let frames = c.seen.clone();
    (c.closed().await.map(u16::from), frames)
}

#[tokio::test]
async fn a_client_that_keeps_sending_garbage_is_closed_with_1008() {
    let hub = TestHub::start().await;
    let (code, _) = closed_after_sending(&hub, "garbage", 20).await;
    assert_eq!(code, Some(1008));
    hub.stop().await;
}

#[tokio::test]
async fn a_client_flooding_past_the_rate_limit_is_closed_with_1008() {
    let hub = TestHub::with(|s| {
        s.rate_limit_per_sec = 5;
        s.rate_limit_burst = 5;
    })
    .await;
    let (code, frames) = closed_after_sending(&hub, &json!({"type": "ping"}).to_string(), 50).await;
    assert_eq!(code, Some(1008), "{frames:?}");
    hub.stop().await;
}
