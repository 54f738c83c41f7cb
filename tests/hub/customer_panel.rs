//! The agent's customer panel: what a customer tells when joining (email, returning-visitor
//! key, page, zone) is checked at the door, kept with their conversations, and shown beside
//! the chat with their earlier conversations (found by email where given, else by visitor
//! key), each openable through the chat, never by guessing; the visitor key never leaves
//! the hub. On one node and across nodes.

use serde_json::{Value, json};

use crate::common::*;

const VISITOR: &str = "returning-visitor-0001";

/// One visit: the customer joins with `details`, says `text`, and the agent ends the chat.
async fn visit(hub: &TestHub, agent: &mut Ws, details: Value, text: &str) -> String {
    let (mut customer, chat) = hub.paired_customer_with(agent, "Carla", details).await;
    customer.say(text, "m1").await;
    agent.next_of("message").await;
    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    customer.next_of("chat_ended").await;
    chat
}

fn ids(panel: &Value) -> Vec<&str> {
    ids_in(&panel["earlier"])
}

#[tokio::test]
async fn malformed_details_are_refused_by_name_and_the_connection_lives() {
    let hub = TestHub::start().await;
    let mut ws = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    for (field, value, code) in [
        ("email", "carla@localhost", "invalid_email"),
        ("email", "not an address", "invalid_email"),
        ("visitor", "short", "invalid_visitor"),
        ("visitor", "0123456789abcdef\"><script>", "invalid_visitor"),
        ("page", "javascript:alert(1)", "invalid_page"),
        ("page", "/relative/path", "invalid_page"),
        ("zone", "Mars/Olympus_Mons", "unknown_zone"),
    ] {
        let mut join = json!({"type": "join", "name": "Carla", "category": "general"});
        join[field] = json!(value);
        ws.send(join).await;
        let error = ws.next_of("error").await;
        assert_eq!(error["code"], code, "{field}={value}: {error}");
    }
    // Blank is not given; the same connection joins.
    ws.send(json!({"type": "join", "name": "Carla", "category": "general", "email": "  ", "zone": ""}))
        .await;
    ws.next_of("welcome").await;
    hub.stop().await;
}

#[tokio::test]
async fn the_panel_shows_the_customer_and_their_earlier_conversations() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    // First visit: a visitor key only. Second: the same browser, now with an email.
    let first = visit(&hub, &mut ann, json!({"visitor": VISITOR}), "first visit").await;
    let second = visit(
        &hub,
        &mut ann,
        json!({"visitor": VISITOR, "email": "Carla@Example.com", "page": "https://shop.example/cart",
               "zone": "Europe/Berlin"}),
        "second visit",
    )
    .await;
    // Third: another browser and Bob serving, the email given again (other case).
    drop(ann);
    let mut bob = hub.agent("bob", &["general"], 1).await;
    let (_carla, third) = hub
        .paired_customer_with(&mut bob, "Carla", json!({"email": "carla@example.com"}))
        .await;

    let bob_api = hub.login("bob", "agent-password").await;
    let (status, panel) = bob_api.get(&format!("/api/conversations/{third}/customer")).await;
    assert_eq!(status, 200, "{panel}");
    assert_eq!(panel["customer_name"], "Carla");
    assert_eq!(panel["email"], "carla@example.com");
    assert_eq!(panel["recognised_by"], "email");
    assert!(panel["waited_secs"].as_f64().unwrap() >= 0.0, "{panel}");
    // By email: the second visit (it gave the email), not the first (visitor key only).
    assert_eq!(ids(&panel), vec![second.as_str()], "{panel}");
    let earlier = &panel["earlier"][0];
    assert_eq!(
        (earlier["agent_name"].as_str(), earlier["message_count"].as_u64()),
        (Some("ANN"), Some(1))
    );
    // Bob opens it through his chat, though Ann served it.
    let (status, opened) = bob_api
        .get(&format!("/api/conversations/{third}/customer/conversations/{second}"))
        .await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!(opened["messages"][0]["text"], "second visit");
    assert_eq!(opened["customer"]["page"], "https://shop.example/cart");
    assert_eq!(opened["customer"]["zone"], "Europe/Berlin");
    // ... but not the first visit (not found by this customer's email), nor directly.
    for path in [
        format!("/api/conversations/{third}/customer/conversations/{first}"),
        format!("/api/conversations/{second}"),
        format!("/api/conversations/{second}/customer"),
    ] {
        let (status, body) = bob_api.get(&path).await;
        assert_eq!((status, error_code(&body)), (404, "not_found"), "{path}: {body}");
    }

    // The admin sees the second visit's panel: recognised by email too, so the third
    // (email) is listed, the first (visitor only) is not.
    let admin = hub.admin().await;
    let (_, panel) = admin.get(&format!("/api/conversations/{second}/customer")).await;
    assert_eq!(ids(&panel), vec![third.as_str()], "{panel}");
    // The first visit had no email: found by its visitor key, it lists the second.
    let (_, panel) = admin.get(&format!("/api/conversations/{first}/customer")).await;
    assert_eq!(
        (panel["recognised_by"].as_str(), ids(&panel)),
        (Some("visitor"), vec![second.as_str()])
    );
    assert!(panel["email"].is_null());
    // The visitor key never leaves the hub.
    for path in [
        format!("/api/conversations/{first}/customer"),
        format!("/api/conversations/{second}"),
        "/api/conversations".to_string(),
    ] {
        let (_, body) = admin.get(&path).await;
        assert!(!body.to_string().contains(VISITOR), "{path}: {body}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn across_nodes_the_panel_has_what_the_customer_told_another_node() {
    let (_cluster, [alpha, beta], [mut ann]) = Desk::across("cluster-panel").on(1, "ann", &["general"], 1).await;
    let details = json!({"email": "dora@example.com", "visitor": VISITOR, "page": "https://shop.example/",
                         "zone": "America/New_York"});
    let first = visit(&alpha, &mut ann, details.clone(), "hello from alpha").await;
    let (_dora, second) = alpha.paired_customer_with(&mut ann, "Dora", details).await;
    let api = beta.login("ann", "agent-password").await;
    let (status, panel) = api.get(&format!("/api/conversations/{second}/customer")).await;
    assert_eq!(status, 200, "{panel}");
    assert_eq!(
        (panel["email"].as_str(), panel["page"].as_str(), panel["zone"].as_str()),
        (
            Some("dora@example.com"),
            Some("https://shop.example/"),
            Some("America/New_York")
        )
    );
    assert_eq!(ids(&panel), vec![first.as_str()]);
    alpha.stop().await;
    beta.stop().await;
}
