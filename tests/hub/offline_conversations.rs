//! An offline message is also a conversation: `open`, without an agent, in the inbox's
//! "unassigned" and "all" views (marked as an offline message), listed for the browser
//! that left it (its visitor key) and continued from there; an agent who takes it or
//! answers it by mail becomes its holder, and the answer is its next line. Messages left
//! before stay in the offline view only.

use serde_json::{Value, json};

use crate::common::*;

const VISITOR: &str = "carlas-offline-key-0001";
const STRANGER: &str = "someone-elses-key-0002";

/// The conversations `key` lists.
async fn own(hub: &TestHub, key: &str) -> Value {
    let res = reqwest::Client::new()
        .get(hub.url("/api/visitor/conversations"))
        .header("X-Visitor-Key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.unwrap()
}

/// Carla leaves a message in General from her browser; its id.
async fn carla_leaves(hub: &TestHub) -> String {
    let (status, left) = post(
        hub,
        "/api/offline-messages",
        json!({"category": "general", "name": "Carla", "email": "carla@example.com",
               "text": "Where is my order 1234?", "visitor": VISITOR}),
    )
    .await;
    assert_eq!(status, 201, "{left}");
    left["id"].as_str().unwrap().to_string()
}

/// The inbox row of conversation `id` in `view`, if listed.
async fn row(api: &Api, view: &str, id: &str) -> Option<Value> {
    let (status, page) = api.get(&format!("/api/inbox?view={view}")).await;
    assert_eq!(status, 200, "{page}");
    find_by(&page["items"], "id", id).cloned()
}

#[tokio::test]
async fn an_offline_message_is_an_open_unassigned_conversation_its_reply_a_line_of_it() {
    let hub = TestHub::start().await;
    hub.agent_account("ann", &["general"], 2).await;
    let ann = hub.login("ann", "agent-password").await;
    let admin = hub.admin().await;
    let id = carla_leaves(&hub).await;

    // In the unassigned and all views, open, marked as an offline message, with its line.
    for view in ["unassigned", "all"] {
        let entry = row(&admin, view, &id).await.unwrap_or_else(|| panic!("{id} in {view}"));
        assert_eq!(
            (
                entry["status"].as_str(),
                entry["holder"].is_null(),
                entry["offline"].as_bool(),
                entry["customer_name"].as_str(),
                entry["category"].as_str(),
                entry["last_message"]["text"].as_str(),
            ),
            (
                Some("open"),
                true,
                Some(true),
                Some("Carla"),
                Some("general"),
                Some("Where is my order 1234?")
            ),
            "{entry}"
        );
    }
    // Her browser lists it, open; another browser nothing.
    let list = own(&hub, VISITOR).await;
    let mine = &list["conversations"][0];
    assert_eq!(
        (
            mine["id"].as_str(),
            mine["status"].as_str(),
            mine["last_message"]["text"].as_str()
        ),
        (Some(id.as_str()), Some("open"), Some("Where is my order 1234?")),
        "{list}"
    );
    assert_eq!(own(&hub, STRANGER).await["conversations"], json!([]));
    // Still in the offline view as before.
    let (_, page) = ann.get("/api/offline-messages").await;
    assert_eq!(item_ids(&page), vec![id.as_str()]);

    // Ann takes it: hers, out of the unassigned view.
    ann.post_answering(200, &format!("/api/offline-messages/{id}/take"), json!({}))
        .await;
    let ann_id = admin.agent_id("ann").await;
    let entry = row(&ann, "mine", &id).await.expect("in Ann's list once taken");
    assert_eq!(entry["holder"].as_str(), Some(ann_id.as_str()), "{entry}");
    assert!(row(&admin, "unassigned", &id).await.is_none());

    // Her answer goes by mail as before, and is the conversation's second line.
    let answered = ann.reply_offline(&id, "Your order left our store today.").await;
    assert_eq!(answered["state"], "handled");
    let (status, archived) = ann.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200, "{archived}");
    assert_eq!(
        seqs_and_texts(&archived["messages"]),
        vec![(1, "Where is my order 1234?"), (2, "Your order left our store today.")]
    );
    assert_eq!(archived["messages"][1]["from"], "agent", "{archived}");
    let list = own(&hub, VISITOR).await;
    assert_eq!(
        list["conversations"][0]["last_message"]["text"], "Your order left our store today.",
        "{list}"
    );
    assert_eq!(list["conversations"][0]["agent_name"], "ANN", "{list}");
    hub.stop().await;
}

#[tokio::test]
async fn an_agents_reply_makes_them_the_holder_and_the_customer_continues_it_with_them() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let api = hub.login("ann", "agent-password").await;
    let id = carla_leaves(&hub).await;
    // Answered without taking it first: the answer makes it Ann's.
    api.reply_offline(&id, "Which address?").await;
    assert!(row(&api, "mine", &id).await.is_some(), "the reply made it Ann's");

    // Carla comes back on the same browser and continues it: the same id, both lines,
    // back to Ann, the seq going on.
    let mut carla = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    carla
        .send(json!({"type": "join", "name": "Carla", "category": "general", "conversation": id, "visitor": VISITOR}))
        .await;
    let started = carla.chat_continued(&id).await;
    assert_eq!(
        seqs_and_texts(&started["messages"]),
        vec![(1, "Where is my order 1234?"), (2, "Which address?")]
    );
    let to_ann = ann.next_of("chat_started").await;
    assert_eq!(to_ann["chat_id"].as_str(), Some(id.as_str()));
    assert_eq!(carla.say("Main Street 5", "c1").await["seq"], 3);

    // A stranger's key cannot continue it.
    let mut other = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    other
        .send(json!({"type": "join", "name": "Eve", "category": "general", "conversation": id, "visitor": STRANGER}))
        .await;
    assert_eq!(other.next_of("error").await["code"], "unknown_conversation");
    hub.stop().await;
}

#[tokio::test]
async fn messages_left_before_stay_in_the_offline_view_only() {
    let hub = TestHub::start().await;
    let admin = hub.admin().await;
    // As stored before offline messages were conversations: no customer keys.
    let old: switchboard::store::OfflineMessage = serde_json::from_value(json!({
        "id": "old-message-1", "category": "general", "name": "Olga", "email": "olga@example.com",
        "text": "Hello?", "created_at": 1_700_000_000_000_i64, "state": "new", "taken_by": null, "replies": []
    }))
    .unwrap();
    hub.store.add_offline_message(old, None).await.unwrap();
    let (_, page) = admin.get("/api/offline-messages").await;
    assert_eq!(item_ids(&page), vec!["old-message-1"]);
    assert!(row(&admin, "all", "old-message-1").await.is_none());
    // Answered as before, by mail only.
    let answered = admin
        .post_answering(
            200,
            "/api/offline-messages/old-message-1/reply",
            json!({"text": "Hello Olga"}),
        )
        .await;
    assert_eq!(answered["state"], "handled");
    assert!(row(&admin, "all", "old-message-1").await.is_none());
    hub.stop().await;
}

#[tokio::test]
async fn reports_count_an_offline_message_once_as_an_offline_message_not_as_a_chat() {
    let hub = TestHub::start().await;
    let admin = hub.admin().await;
    hub.agent_account("ann", &["general"], 2).await;
    let ann = hub.login("ann", "agent-password").await;
    let id = carla_leaves(&hub).await;
    ann.reply_offline(&id, "On its way.").await;
    let report = crate::reports::today(&admin).await;
    let totals = &report["totals"];
    assert_eq!(
        (
            totals["offline_messages"].as_u64(),
            totals["offline_handled"].as_u64(),
            totals["conversations"].as_u64(),
            totals["unanswered"].as_u64()
        ),
        (Some(1), Some(1), Some(0), Some(0)),
        "{totals}"
    );
    hub.stop().await;
}

/// The message of `id` as the admin's offline view lists it among those handled, if it is.
async fn handled_message(admin: &Api, id: &str) -> Option<Value> {
    let (_, page) = admin.get("/api/offline-messages?state=handled").await;
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .find(|m| m["id"] == id)
        .cloned()
}

#[tokio::test]
async fn resolving_an_offline_messages_conversation_marks_the_message_handled_by_the_resolver() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let api = hub.login("ann", "agent-password").await;
    let admin = hub.admin().await;
    let id = carla_leaves(&hub).await;
    api.post_answering(200, &format!("/api/offline-messages/{id}/take"), json!({}))
        .await;
    assert!(handled_message(&admin, &id).await.is_none(), "taken, not handled");
    // Resolved from the console (its keyboard's Alt+R sends this frame).
    ann.send(
        json!({"type": "set_conversation_status", "conversation_id": id, "status": "resolved", "client_id": "r1"}),
    )
    .await;
    ann.next_matching(|f| f["type"] == "conversation_status" && f["status"] == "resolved")
        .await;
    let message = handled_message(&admin, &id).await.expect("handled once resolved");
    assert_eq!(
        (message["state"].as_str(), message["taken_by_name"].as_str()),
        (Some("handled"), Some("ANN")),
        "{message}"
    );
    hub.stop().await;
}
