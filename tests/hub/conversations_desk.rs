//! Working a conversation whose customer left: its holder (or an admin) adds internal
//! notes to it and hands it to another agent of its category; an agent takes an
//! unassigned one ("Assign to me"), the second of two at once refused; a live one is
//! moved only by a transfer. The agents whose lists it leaves and enters are told.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// Carla chats with Ann and leaves for good: the conversation stays in Ann's list. Its id.
async fn carla_left_ann(hub: &TestHub, ann: &mut Ws) -> String {
    let (carla, chat) = hub.customer_in_chat("Carla", "general").await;
    ann.next_of("chat_started").await;
    drop(carla);
    let gone = ann
        .next_matching(|f| f["type"] == "chat_ended" && f["chat_id"] == chat)
        .await;
    assert_eq!(gone["reason"], "customer_gone", "{gone}");
    chat.as_str().unwrap().to_string()
}

async fn account_id(api: &Api) -> String {
    api.get("/api/me").await.1["id"].as_str().unwrap().to_string()
}

/// Ann and Bob of General (two chats each), connected and signed in over HTTP: the hub,
/// their sockets, their clients and Bob's account id.
async fn ann_and_bob() -> (TestHub, [Ws; 2], [Api; 2], String) {
    let (_, [hub], agents) = Desk::hub()
        .agent("ann", &["general"], 2)
        .agent("bob", &["general"], 2)
        .await;
    let apis = [
        hub.login("ann", "agent-password").await,
        hub.login("bob", "agent-password").await,
    ];
    let bob_id = account_id(&apis[1]).await;
    (hub, agents, apis, bob_id)
}

async fn in_view(api: &Api, view: &str, id: &str) -> bool {
    let (status, page) = api.get(&format!("/api/inbox?view={view}")).await;
    assert_eq!(status, 200, "{page}");
    item_ids(&page).contains(&id)
}

/// A note named by a `client_id` is safe to send again (after a 503, a lost answer): the
/// same text, caller and `client_id` are one note, answered as stored; another text under
/// that `client_id` is refused; another `client_id` is another note.
#[tokio::test]
async fn a_note_sent_again_with_its_client_id_is_one_note() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let ann_api = hub.login("ann", "agent-password").await;
    let id = carla_left_ann(&hub, &mut ann).await;
    let path = format!("/api/conversations/{id}/notes");
    let note = json!({"text": "promised a refund", "client_id": "n-1"});

    let (status, first) = ann_api.post(&path, note.clone()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = ann_api.post(&path, note.clone()).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(
        (&again["id"], &again["at"], &again["text"]),
        (&first["id"], &first["at"], &first["text"]),
        "the note as stored: {again}"
    );
    let (status, reused) = ann_api
        .post(&path, json!({"text": "something else", "client_id": "n-1"}))
        .await;
    assert_eq!(
        (status, reused["error"]["code"].as_str()),
        (409, Some("client_id_reused")),
        "{reused}"
    );
    let (status, bad) = ann_api.post(&path, json!({"text": "x", "client_id": "n 1"})).await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("invalid_client_id")),
        "{bad}"
    );
    // A misspelt field is refused, not taken for a note without its client_id.
    let (status, misspelt) = ann_api.post(&path, json!({"text": "x", "clientid": "n-1"})).await;
    assert_eq!(status, 400, "{misspelt}");
    let (_, archived) = ann_api.get(&format!("/api/conversations/{id}")).await;
    let texts: Vec<&str> = archived["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["promised a refund"], "{archived}");

    let (status, other) = ann_api
        .post(&path, json!({"text": "called back", "client_id": "n-2"}))
        .await;
    assert_eq!(status, 201, "{other}");
    assert_ne!(other["id"], first["id"]);
    let (_, archived) = ann_api.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(archived["notes"].as_array().map(Vec::len), Some(2), "{archived}");
    hub.stop().await;
}

#[tokio::test]
async fn the_holder_notes_and_hands_on_a_conversation_whose_customer_left() {
    let (hub, [mut ann, mut bob], [ann_api, bob_api], bob_id) = ann_and_bob().await;
    let id = carla_left_ann(&hub, &mut ann).await;

    // A note on it: stored, shown on Ann's console as a live chat's note, in the archive.
    let path = format!("/api/conversations/{id}/notes");
    ann_api
        .post_answering(201, &path, json!({"text": "promised a refund"}))
        .await;
    let shown = ann
        .next_matching(|f| f["type"] == "note" && f["chat_id"] == id.as_str())
        .await;
    assert_eq!(
        (shown["text"].as_str(), shown["agent_name"].as_str()),
        (Some("promised a refund"), Some("ANN"))
    );
    let (_, archived) = ann_api.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(archived["notes"][0]["text"], "promised a refund", "{archived}");
    // Bad notes, and Bob's (not his), are refused.
    let (status, empty) = ann_api
        .post(&format!("/api/conversations/{id}/notes"), json!({"text": "  "}))
        .await;
    assert_eq!(status, 400, "{empty}");
    let (status, _) = bob_api
        .post(&format!("/api/conversations/{id}/notes"), json!({"text": "mine now?"}))
        .await;
    assert_eq!(status, 404);

    // Bob cannot take what Ann holds, nor hand it on.
    refusal(
        bob_api
            .post(&format!("/api/conversations/{id}/assign"), json!({"agent_id": bob_id}))
            .await,
        409,
        "already_assigned",
    );
    // Only an enabled agent of its category.
    refusal(
        ann_api
            .post(
                &format!("/api/conversations/{id}/assign"),
                json!({"agent_id": "nobody"}),
            )
            .await,
        400,
        "unknown_agent",
    );
    let (status, who) = ann_api.get(&format!("/api/conversations/{id}/assignees")).await;
    assert_eq!(status, 200, "{who}");
    let names: Vec<(&str, bool)> = who
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["holder"].as_bool().unwrap()))
        .collect();
    assert_eq!(names, vec![("ANN", true), ("BOB", false)]);

    // Ann hands it to Bob: both are told, it moves from her list to his.
    let (status, moved) = ann_api
        .post(&format!("/api/conversations/{id}/assign"), json!({"agent_id": bob_id}))
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (moved["holder_name"].as_str(), moved["changed"].as_bool()),
        (Some("BOB"), Some(true))
    );
    for agent in [&mut ann, &mut bob] {
        let told = agent
            .next_matching(|f| f["type"] == "conversation_assigned" && f["conversation_id"] == id.as_str())
            .await;
        assert_eq!(
            (
                told["holder"].as_str(),
                told["by_name"].as_str(),
                told["customer_name"].as_str()
            ),
            (Some(bob_id.as_str()), Some("ANN"), Some("Carla")),
            "{told}"
        );
    }
    assert!(in_view(&bob_api, "mine", &id).await);
    assert!(!in_view(&ann_api, "mine", &id).await);

    // Bob writes into it; Ann no longer may, nor note it.
    bob.send(json!({"type": "message", "chat_id": id, "text": "I have your case now", "client_id": "b1"}))
        .await;
    let ack = bob.next_matching(|f| f["type"] == "ack" || f["type"] == "error").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ann.send(json!({"type": "message", "chat_id": id, "text": "still me", "client_id": "a1"}))
        .await;
    let refused = ann.next_matching(|f| f["type"] == "ack" || f["type"] == "error").await;
    assert_eq!(refused["type"], "error", "{refused}");
    let (status, _) = ann_api
        .post(&format!("/api/conversations/{id}/notes"), json!({"text": "late note"}))
        .await;
    assert_eq!(status, 404);

    // An admin moves any conversation back.
    let admin = hub.admin().await;
    let ann_id = account_id(&ann_api).await;
    let (status, back) = admin
        .post(&format!("/api/conversations/{id}/assign"), json!({"agent_id": ann_id}))
        .await;
    assert_eq!((status, back["holder_name"].as_str()), (200, Some("ANN")), "{back}");
    assert!(in_view(&ann_api, "mine", &id).await);
    hub.stop().await;
}

/// Conversation `id`'s row in `api`'s own inbox once its last line is `text` (the archive
/// follows the chat a moment later).
async fn row_ending_with(api: &Api, id: &str, text: &str) -> Value {
    until_ok(
        Duration::from_secs(5),
        &format!("{id}'s last line {text:?}"),
        async || {
            let (_, mine) = api.get("/api/inbox").await;
            let row = mine["items"]
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["id"] == id))
                .cloned()
                .unwrap_or(Value::Null);
            accepted(row, |row| row["last_message"]["text"] == text)
        },
    )
    .await
}

/// An inbox row's last line and a search hit name the agent who wrote an agent's line, so a
/// list can show "Ann: …": Ann's line stays hers in Bob's list after she hands him the
/// conversation, Bob's next line is his; a customer's line names nobody.
#[tokio::test]
async fn an_inbox_row_and_a_search_hit_name_the_agent_who_wrote_the_line() {
    let (hub, [mut ann, mut bob], [ann_api, bob_api], bob_id) = ann_and_bob().await;
    let (carla, chat) = hub.carla_said_to(&mut ann, "where is my parcel").await;
    let id = chat.as_str().unwrap().to_string();
    let row = row_ending_with(&ann_api, &id, "where is my parcel").await;
    assert_eq!(row["last_message"].get("agent_name"), None, "a customer's line: {row}");
    ann.say_in(&id, "It ships on Monday", "a-1").await;
    drop(carla);
    ann.next_matching(|f| f["type"] == "chat_ended" && f["chat_id"] == id.as_str())
        .await;
    let (status, moved) = ann_api
        .post(&format!("/api/conversations/{id}/assign"), json!({"agent_id": bob_id}))
        .await;
    assert_eq!(status, 200, "{moved}");

    let row = row_ending_with(&bob_api, &id, "It ships on Monday").await;
    assert_eq!(
        row["last_message"]["agent_name"], "ANN",
        "Ann's line in Bob's list: {row}"
    );
    let (_, found) = bob_api.get("/api/conversations?q=monday").await;
    assert_eq!(found["items"][0]["hit"]["agent_name"], "ANN", "{found}");
    assert_eq!(
        found["items"][0]["agent_name"], "BOB",
        "the conversation is Bob's: {found}"
    );
    let (_, found) = bob_api.get("/api/conversations?q=parcel").await;
    assert_eq!(found["items"][0]["hit"]["text"], "where is my parcel", "{found}");
    assert_eq!(found["items"][0]["hit"].get("agent_name"), None, "{found}");

    bob.say_in(&id, "I have your case now", "b-1").await;
    let row = row_ending_with(&bob_api, &id, "I have your case now").await;
    assert_eq!(row["last_message"]["agent_name"], "BOB", "{row}");
    hub.stop().await;
}

#[tokio::test]
async fn a_live_conversation_is_moved_only_by_a_transfer() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    hub.agent("bob", &["general"], 2).await;
    let bob_id = account_id(&hub.login("bob", "agent-password").await).await;
    let (_carla, chat) = hub.customer_in_chat("Carla", "general").await;
    ann.next_of("chat_started").await;
    let admin = hub.admin().await;
    refusal(
        admin
            .post(
                &format!("/api/conversations/{}/assign", chat.as_str().unwrap()),
                json!({"agent_id": bob_id}),
            )
            .await,
        409,
        "conversation_live",
    );
    hub.stop().await;
}

#[tokio::test]
async fn of_two_agents_taking_an_unassigned_conversation_at_once_one_gets_it() {
    let hub = TestHub::start().await;
    let _ann = hub.agent("ann", &["general"], 2).await;
    let _bob = hub.agent("bob", &["general"], 2).await;
    let (ann_api, bob_api) = (
        hub.login("ann", "agent-password").await,
        hub.login("bob", "agent-password").await,
    );
    let (ann_id, bob_id) = (account_id(&ann_api).await, account_id(&bob_api).await);
    // Nobody was free: Carla leaves a message, an open conversation without an agent.
    let (status, left) = post(
        &hub,
        "/api/offline-messages",
        json!({"category": "general", "name": "Carla", "email": "carla@example.com",
               "text": "Where is my order 1234?", "visitor": "carlas-offline-key-0001"}),
    )
    .await;
    assert_eq!(status, 201, "{left}");
    let id = left["id"].as_str().unwrap().to_string();
    // Ann cannot give it to Bob: only take it for herself.
    let (status, _) = ann_api
        .post(&format!("/api/conversations/{id}/assign"), json!({"agent_id": bob_id}))
        .await;
    assert_eq!(status, 404);
    let path = format!("/api/conversations/{id}/assign");
    let (a, b) = tokio::join!(
        ann_api.post(&path, json!({"agent_id": ann_id})),
        bob_api.post(&path, json!({"agent_id": bob_id})),
    );
    let mut codes: Vec<(u16, Value)> = vec![(a.0, a.1["error"]["code"].clone()), (b.0, b.1["error"]["code"].clone())];
    codes.sort_by_key(|(s, _)| *s);
    assert_eq!(codes, vec![(200, Value::Null), (409, json!("already_assigned"))]);
    let winner = if a.0 == 200 { &ann_api } else { &bob_api };
    assert!(in_view(winner, "mine", &id).await);
    hub.stop().await;
}

#[tokio::test]
async fn a_note_and_a_hand_on_over_http_reach_the_webhooks_as_in_a_live_chat() {
    let (hub, admin) = crate::webhooks::hub_delivering_to_loopback().await;
    let (url, got) = crate::webhooks::receiver(0).await;
    crate::webhooks::register(&admin, &url, &["note.created", "conversation.assigned"]).await;
    let mut ann = hub.agent("ann", &["general"], 2).await;
    let _bob = hub.agent("bob", &["general"], 2).await;
    let (ann_api, bob_api) = (
        hub.login("ann", "agent-password").await,
        hub.login("bob", "agent-password").await,
    );
    let (ann_id, bob_id) = (account_id(&ann_api).await, account_id(&bob_api).await);
    let id = carla_left_ann(&hub, &mut ann).await;

    // Sent twice with its client id (a retry after a lost answer): one note, one event.
    for _ in 0..2 {
        let (status, note) = ann_api
            .post(
                &format!("/api/conversations/{id}/notes"),
                json!({"text": "call her back", "client_id": "n-1"}),
            )
            .await;
        assert_eq!(status, 201, "{note}");
    }
    let (status, moved) = ann_api
        .post(&format!("/api/conversations/{id}/assign"), json!({"agent_id": bob_id}))
        .await;
    assert_eq!(status, 200, "{moved}");

    // The pairing's own `conversation.assigned` is none (a first chat is `created`): the
    // two events are the note (once) and the hand-on, in order.
    let events = crate::webhooks::delivered(&got, 2).await;
    let (noted, assigned) = (&events[0].1, &events[1].1);
    assert_eq!(
        (noted["type"].as_str(), noted["data"]["text"].as_str()),
        (Some("note.created"), Some("call her back")),
        "{noted}"
    );
    assert_eq!(assigned["type"], "conversation.assigned", "{assigned}");
    assert_eq!(
        (
            assigned["data"]["conversation_id"].as_str(),
            assigned["data"]["agent_id"].as_str(),
            assigned["data"]["agent_name"].as_str(),
            assigned["data"]["previous_agent_id"].as_str(),
            assigned["data"]["category"].as_str(),
        ),
        (
            Some(id.as_str()),
            Some(bob_id.as_str()),
            Some("BOB"),
            Some(ann_id.as_str()),
            Some("general")
        ),
        "{assigned}"
    );
}
