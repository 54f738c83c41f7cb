//! A customer's data erased on request: an admin erases a customer by email (any case),
//! visitor key or one of their conversations; every conversation of theirs goes whole
//! (messages, notes, rating) with their offline messages, nothing of anyone else's; the
//! log says who did it and what went, keeping only a hash of the key; agents may not;
//! malformed requests are refused by name.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::*;

const VISITOR: &str = "visitor-key-to-erase-1";

/// One visit of a customer who joins with `details`: a message each way and a note, then
/// the agent ends it. The chat's id.
async fn visit(hub: &TestHub, agent: &mut Ws, name: &str, details: Value) -> String {
    let (mut ws, chat) = hub.paired_customer_with(agent, name, details).await;
    ws.say(&format!("{name} says hi"), "m1").await;
    agent.next_of("message").await;
    agent.say_in(&chat, "hello", "a1").await;
    agent.note_in(&chat, &format!("note on {name}"), "n1").await;
    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    ws.next_of("chat_ended").await;
    chat
}

#[tokio::test]
async fn an_admin_erases_everything_of_one_customer_and_nothing_else() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let eve1 = visit(
        &hub,
        &mut ann,
        "Eve",
        json!({"email": "Eve@Example.com", "visitor": VISITOR}),
    )
    .await;
    let eve2 = visit(&hub, &mut ann, "Eve", json!({"email": "eve@example.com"})).await;
    let bob = visit(&hub, &mut ann, "Bob", json!({"email": "bob@example.com"})).await;
    let anon = visit(&hub, &mut ann, "Anon", json!({})).await;
    // Each offline message is also a conversation, found by its email like the chats.
    let mut offline_ids = Vec::new();
    for (email, name) in [("EVE@example.com", "Eve"), ("bob@example.com", "Bob")] {
        let res = reqwest::Client::new()
            .post(hub.url("/api/offline-messages"))
            .json(&json!({"category": "general", "name": name, "email": email, "text": "call me"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
        let left: serde_json::Value = res.json().await.unwrap();
        offline_ids.push(left["id"].as_str().unwrap().to_string());
    }
    let [eve_offline, bob_offline] = [&offline_ids[0], &offline_ids[1]];
    let admin = hub.admin().await;

    // Agents may not; malformed requests are refused by name and erase nothing.
    let ann_api = hub.login("ann", "agent-password").await;
    let (status, _) = ann_api
        .post("/api/admin/erasures", json!({"email": "eve@example.com"}))
        .await;
    assert_eq!(status, 403);
    for (body, code) in [
        (json!({}), "bad_request"),
        (json!({"email": "eve@example.com", "visitor": VISITOR}), "bad_request"),
        (json!({"email": "not-an-address"}), "invalid_email"),
        (json!({"visitor": "x"}), "invalid_visitor"),
    ] {
        let (status, refused) = admin.post("/api/admin/erasures", body.clone()).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}: {refused}"
        );
    }
    let (status, refused) = admin
        .post("/api/admin/erasures", json!({"conversation_id": "nope"}))
        .await;
    assert_eq!(status, 404, "{refused}");
    assert_eq!(admin.get("/api/conversations").await.1["total"], 6);

    let (status, done) = admin
        .post("/api/admin/erasures", json!({"email": "eve@EXAMPLE.com"}))
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        done["erased"],
        json!({"conversations": 3, "messages": 5, "notes": 2, "ratings": 0, "offline_messages": 1})
    );
    assert_eq!(
        (done["found_by"].as_str(), done["by"].as_str()),
        (Some("email"), Some("admin"))
    );
    let hash: String = Sha256::digest(b"eve@example.com")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(done["key_sha256"], hash);
    for id in [&eve1, &eve2, eve_offline] {
        assert_eq!(admin.get(&format!("/api/conversations/{id}")).await.0, 404);
    }
    // Its record too: gone from the inbox.
    let (_, inbox) = admin.get("/api/inbox?view=all").await;
    assert_eq!(item_ids(&inbox), vec![bob_offline.as_str()], "{inbox}");
    let (_, left) = admin.get("/api/conversations").await;
    let mut ids: Vec<&str> = strs_in(&left["items"], "id");
    ids.sort();
    let mut want = vec![bob.as_str(), anon.as_str(), bob_offline.as_str()];
    want.sort();
    assert_eq!(ids, want);
    let (_, bobs) = admin.get(&format!("/api/conversations/{bob}")).await;
    assert_eq!(
        (
            bobs["messages"].as_array().unwrap().len(),
            bobs["notes"].as_array().unwrap().len()
        ),
        (2, 1)
    );
    let (_, offline) = admin.get("/api/offline-messages").await;
    let left = offline.to_string();
    assert!(
        !left.to_lowercase().contains("eve@example.com") && left.contains("bob@example.com"),
        "{left}"
    );

    // A customer who gave nothing: erased by the one conversation.
    let (status, done) = admin
        .post("/api/admin/erasures", json!({"conversation_id": anon}))
        .await;
    assert_eq!(
        (
            status,
            done["found_by"].as_str(),
            done["erased"]["conversations"].as_u64()
        ),
        (200, Some("conversation"), Some(1))
    );
    assert_eq!(admin.get(&format!("/api/conversations/{anon}")).await.0, 404);

    // The log, newest first, keeps no email.
    let (status, log) = admin.get("/api/admin/erasures").await;
    assert_eq!(status, 200);
    assert_eq!(log["total"], 2);
    assert_eq!(log["items"][0]["found_by"], "conversation");
    assert_eq!(log["items"][1]["found_by"], "email");
    assert!(!log.to_string().to_lowercase().contains("eve@"), "{log}");
    // Asked again: nothing left, logged as such.
    let (_, again) = admin
        .post("/api/admin/erasures", json!({"email": "eve@example.com"}))
        .await;
    assert_eq!(again["erased"]["conversations"], 0);
    hub.stop().await;
}
