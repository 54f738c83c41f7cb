//! The buddy list over websockets: presence, several connections, invitations, chats.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// A visitor who joined the buddy list as `name`: the socket and its welcome.
async fn buddy(hub: &TestHub, name: &str) -> (Ws, Value) {
    buddy_joining(hub, json!({"type": "buddy_join", "name": name})).await
}

/// As [`buddy`], with the `key` of an earlier connection (the same person again).
async fn buddy_with_key(hub: &TestHub, name: &str, key: &str) -> (Ws, Value) {
    buddy_joining(hub, json!({"type": "buddy_join", "name": name, "key": key})).await
}

/// A hub, and visitors who joined its buddy list as `names`, one after the other: each one's
/// socket and welcome.
async fn buddies<const N: usize>(names: [&str; N]) -> (TestHub, [(Ws, Value); N]) {
    let hub = TestHub::start().await;
    let mut joined = Vec::with_capacity(N);
    for name in names {
        joined.push(buddy(&hub, name).await);
    }
    let joined = joined.try_into().unwrap_or_else(|_| unreachable!("one a name"));
    (hub, joined)
}

async fn buddy_joining(hub: &TestHub, join: Value) -> (Ws, Value) {
    let mut ws = Ws::connect(&hub.ws_url("/ws/buddy"), &[]).await.unwrap();
    ws.send(join).await;
    let welcome = ws.next_of("buddy_welcome").await;
    (ws, welcome)
}

fn id(welcome: &Value) -> u64 {
    welcome["you"].as_u64().unwrap()
}

/// `a` invites `b` (whose id is `b_id`) and `b` accepts; returns the invitation's id.
pub(crate) async fn invite_and_accept(a: &mut Ws, b: &mut Ws, b_id: impl serde::Serialize) -> u64 {
    a.send(json!({"type": "invite", "to": b_id})).await;
    let inv = b.invitation_id().await;
    b.send(json!({"type": "accept", "invitation_id": inv})).await;
    inv
}

/// `a` invites `b` (whose id is `b_id`), `b` accepts; returns the chat's id.
async fn start_chat(a: &mut Ws, b: &mut Ws, b_id: u64) -> String {
    invite_and_accept(a, b, b_id).await;
    a.chat_id_in("buddy_chat_started").await
}

#[tokio::test]
async fn names_are_validated() {
    let hub = TestHub::start().await;
    let mut ws = Ws::connect(&hub.ws_url("/ws/buddy"), &[]).await.unwrap();
    for name in ["   ".to_string(), "x".repeat(101)] {
        ws.send(json!({"type": "buddy_join", "name": name})).await;
        assert_eq!(ws.next_of("error").await["code"], "invalid_name");
    }
    ws.send(json!({"type": "invite", "to": 1})).await;
    assert_eq!(ws.next_of("error").await["code"], "not_joined");
    ws.send(json!({"type": "buddy_join", "name": format!("  {}  ", "é".repeat(100))}))
        .await;
    assert_eq!(ws.next_of("buddy_welcome").await["name"], "é".repeat(100));
    hub.stop().await;
}

#[tokio::test]
async fn everyone_sees_who_is_online_live_and_same_names_are_told_apart() {
    let (hub, [(mut a, wa), (mut b, wb)]) = buddies(["Sam", "Sam"]).await;
    assert_ne!(id(&wa), id(&wb));
    let list: Vec<_> = wb["buddies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_u64().unwrap(), b["status"].clone()))
        .collect();
    assert!(list.contains(&(id(&wa), json!("available"))) && list.contains(&(id(&wb), json!("available"))));
    a.next_showing("buddy_joined", json!({"buddy": {"id": id(&wb), "name": "Sam"}}))
        .await;
    a.send(json!({"type": "invite", "to": id(&wb)})).await;
    b.next_showing("buddy_status", json!({"id": id(&wa), "status": "busy"}))
        .await;
    hub.stop().await;
}

#[tokio::test]
async fn several_connections_are_one_person_and_a_reload_is_not_a_leave() {
    let (hub, [(mut watcher, _), (mut tab1, w1)]) = buddies(["Watcher", "Multi"]).await;
    watcher.next_of("buddy_joined").await;
    let key = w1["key"].as_str().unwrap().to_string();
    let (mut tab2, w2) = buddy_with_key(&hub, "Multi", &key).await;
    assert_eq!(id(&w1), id(&w2), "the same person from a second tab");
    assert!(watcher.drain().await.is_empty(), "no second join is announced");

    // An invitation reaches every connection of the person.
    watcher.send(json!({"type": "invite", "to": id(&w1)})).await;
    tab1.next_of("invited").await;
    tab2.next_of("invited").await;

    // Closing one tab, or all of them for less than the grace period, is not a leave.
    drop(tab1);
    drop(tab2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_tab3, w3) = buddy_with_key(&hub, "Multi", &key).await;
    assert_eq!(id(&w3), id(&w1));
    assert_eq!(
        w3["invitations"].as_array().unwrap().len(),
        1,
        "the pending invitation survived the reload"
    );
    assert!(watcher.drain().await.iter().all(|f| f["type"] != "buddy_left"));
    hub.stop().await;
}

#[tokio::test]
async fn the_last_connection_closing_is_a_leave_after_the_grace_period() {
    let (hub, [(mut a, _), (b, wb)]) = buddies(["Ann", "Bob"]).await;
    drop(b);
    let left = a.next_of("buddy_left").await;
    assert_eq!(left["id"].as_u64(), Some(id(&wb)));
    hub.stop().await;
}

#[tokio::test]
async fn invitation_rules() {
    let (hub, [(mut a, wa), (mut b, wb), (mut c, wc)]) = buddies(["A", "B", "C"]).await;
    let (ia, ib, ic) = (id(&wa), id(&wb), id(&wc));

    a.send(json!({"type": "invite", "to": ia})).await;
    assert_eq!(a.next_of("error").await["code"], "self_invite");
    // A invites C: A is busy, C stays available and can hold several invitations.
    a.send(json!({"type": "invite", "to": ic})).await;
    let inv_a = a.invitation_id().await;
    a.send(json!({"type": "invite", "to": ib})).await;
    assert_eq!(
        a.next_of("error").await["code"],
        "not_available",
        "one invitation at a time"
    );
    b.send(json!({"type": "invite", "to": ia})).await;
    assert_eq!(
        b.next_of("error").await["code"],
        "target_not_available",
        "an inviter cannot be invited"
    );
    b.send(json!({"type": "invite", "to": ic})).await;
    let inv_b = b.invitation_id().await;
    c.next_of("invited").await;
    c.next_of("invited").await;

    // Only the inviter cancels, only the invitee declines.
    c.send(json!({"type": "cancel_invite", "invitation_id": inv_a})).await;
    assert_eq!(c.next_of("error").await["code"], "not_your_invitation");
    a.send(json!({"type": "decline", "invitation_id": inv_a})).await;
    assert_eq!(a.next_of("error").await["code"], "not_your_invitation");
    a.send(json!({"type": "cancel_invite", "invitation_id": inv_a})).await;
    let cancelled = json!({"invitation_id": inv_a, "reason": "cancelled"});
    c.next_showing("invitation_closed", cancelled).await;
    a.next_of("invitation_closed").await;
    // A is available again and invites C anew; C accepts B's, which declines A's.
    a.send(json!({"type": "invite", "to": ic})).await;
    let inv_a2 = a.invitation_id().await;
    c.send(json!({"type": "accept", "invitation_id": inv_b})).await;
    let declined = json!({"invitation_id": inv_a2, "reason": "declined"});
    a.next_showing("invitation_closed", declined).await;
    let started = b.next_of("buddy_chat_started").await;
    assert_eq!(started["peer"].as_u64(), Some(ic));
    let chat = c.next_of("buddy_chat_started").await["chat_id"].clone();
    assert_eq!(started["chat_id"], chat);
    // Both are busy; nobody can invite them.
    a.send(json!({"type": "invite", "to": ib})).await;
    assert_eq!(a.next_of("error").await["code"], "target_not_available");

    // The chat: ids, timestamps, typing, the length limit.
    b.send(json!({"type": "typing", "active": true})).await;
    c.next_showing("buddy_typing", json!({"from": ib, "active": true}))
        .await;
    b.send(json!({"type": "message", "text": "hi C"})).await;
    let m = c
        .next_showing("message", json!({"from": "buddy", "sender": ib, "seq": 1}))
        .await;
    assert!(m["at"].as_i64().unwrap() > 0 && m["id"].as_str().unwrap().len() == 36);
    b.send(json!({"type": "message", "text": "x".repeat(2001)})).await;
    assert_eq!(b.next_of("error").await["code"], "message_too_long");
    assert!(
        a.drain().await.iter().all(|f| f["type"] != "message"),
        "A sees nothing of the chat"
    );

    // Either ends it; both are available at once.
    c.send(json!({"type": "end_chat", "chat_id": chat})).await;
    b.next_showing("buddy_chat_ended", json!({"ended_by": ic, "reason": "ended"}))
        .await;
    b.send(json!({"type": "invite", "to": ic})).await;
    b.next_of("invited").await;
    let _ = &mut a;
    hub.stop().await;
}

#[tokio::test]
async fn declining_frees_the_inviter() {
    let (hub, [(mut a, wa), (mut b, wb)]) = buddies(["A", "B"]).await;
    a.send(json!({"type": "invite", "to": id(&wb)})).await;
    let inv = b.invitation_id().await;
    b.send(json!({"type": "decline", "invitation_id": inv})).await;
    assert_eq!(a.next_of("invitation_closed").await["reason"], "declined");
    for status in ["busy", "available"] {
        b.next_showing("buddy_status", json!({"id": id(&wa), "status": status}))
            .await;
    }
    hub.stop().await;
}

#[tokio::test]
async fn leaving_withdraws_invitations_and_ends_chats_with_a_notice() {
    let (hub, [(mut a, wa), (mut b, wb), (mut c, wc)]) = buddies(["A", "B", "C"]).await;
    // B invites C, then leaves: C's invitation is withdrawn.
    b.send(json!({"type": "invite", "to": id(&wc)})).await;
    c.next_of("invited").await;
    drop(b);
    assert_eq!(c.next_of("invitation_closed").await["reason"], "inviter_left");
    let left = c.next_of("buddy_left").await;
    assert_eq!(left["id"].as_u64(), Some(id(&wb)));
    // A and C chat, then C leaves: A is told and available.
    a.send(json!({"type": "invite", "to": id(&wc)})).await;
    let inv = c.invitation_id().await;
    c.send(json!({"type": "accept", "invitation_id": inv})).await;
    a.next_of("buddy_chat_started").await;
    drop(c);
    let ended = a.next_of("buddy_chat_ended").await;
    assert_eq!(ended["reason"], "peer_left");
    let _ = wa;
    hub.stop().await;
}

#[tokio::test]
async fn a_reloaded_page_gets_its_chat_back_with_every_message() {
    let (hub, [(mut a, wa), (mut b, wb)]) = buddies(["A", "B"]).await;
    let chat = start_chat(&mut a, &mut b, id(&wb)).await;
    a.send(json!({"type": "message", "text": "one", "client_id": "a-1"}))
        .await;
    b.next_of("message").await;
    b.send(json!({"type": "message", "text": "two \"quoted\" 🎉"})).await;
    a.next_of("message").await;

    // B reloads within the grace period: the welcome carries the chat and both messages.
    let key = wb["key"].as_str().unwrap().to_string();
    drop(b);
    let (_b, welcome) = buddy_with_key(&hub, "B", &key).await;
    let back = &welcome["chat"];
    assert_eq!(back["chat_id"], chat.as_str());
    assert_eq!(back["peer"].as_u64(), Some(id(&wa)));
    let messages = back["messages"].as_array().unwrap();
    let seen: Vec<_> = messages
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64(),
                m["sender"].as_u64(),
                m["text"].as_str(),
                m["from"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some(1), Some(id(&wa)), Some("one"), Some("buddy")),
            (Some(2), Some(id(&wb)), Some("two \"quoted\" 🎉"), Some("buddy")),
        ]
    );
    assert_eq!(messages[0]["client_id"], "a-1", "the sender's own id comes back too");
    assert!(
        messages
            .iter()
            .all(|m| m["chat_id"] == chat && m["id"].is_string() && m["at"].is_i64())
    );
    hub.stop().await;
}

#[tokio::test]
async fn buddy_chats_are_archived_as_buddy_chats() {
    let (hub, [(mut a, _), (mut b, wb)]) = buddies(["A", "B"]).await;
    let chat = start_chat(&mut a, &mut b, id(&wb)).await;
    a.send(json!({"type": "message", "text": "archived?"})).await;
    b.next_of("message").await;
    a.send(json!({"type": "end_chat", "chat_id": chat})).await;
    b.next_of("buddy_chat_ended").await;
    let admin = hub.admin().await;
    let mut found = Value::Null;
    for _ in 0..50 {
        let (_, c) = admin.get(&format!("/api/conversations/{chat}")).await;
        if c["ended_at"].is_i64() {
            found = c;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found["kind"], "buddy");
    assert_eq!(found["messages"][0]["text"], "archived?");
    hub.stop().await;
}

#[tokio::test]
async fn agents_on_the_desk_appear_to_their_colleagues_and_not_to_the_public() {
    let (hub, admin) = TestHub::with_admin().await;
    let _ann = hub.agent("ann", &["general"], 1).await;
    let (mut staff, welcome) = Ws::staff_buddy(&hub, &admin.token).await;
    let names: Vec<_> = welcome["buddies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["name"].clone(), b["role"].clone()))
        .collect();
    assert!(names.contains(&(json!("ANN"), json!("agent"))), "{names:?}");
    assert!(names.contains(&(json!("Administrator"), json!("admin"))));
    let (_, public) = buddy(&hub, "Pat").await;
    assert!(
        public["buddies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["role"].is_null()),
        "{public}"
    );
    // An agent on shift without the buddy page cannot be invited: nobody would see it.
    let ann_id = named(&welcome["buddies"], "ANN")["id"].clone();
    staff.send(json!({"type": "invite", "to": ann_id})).await;
    assert_eq!(staff.next_of("error").await["code"], "target_not_reachable");
    // A second agent coming on shift shows up live.
    let _bob = hub.agent("bob", &["general"], 1).await;
    assert_eq!(staff.next_of("buddy_joined").await["buddy"]["name"], "BOB");
    // Customers never get roster frames.
    let mut customer = hub.customer("Carla", "general").await;
    assert!(
        customer
            .drain()
            .await
            .iter()
            .all(|f| !f["type"].as_str().unwrap().starts_with("buddy"))
    );
    customer.send(json!({"type": "invite", "to": 1})).await;
    assert_eq!(customer.next_of("error").await["code"], "not_allowed");
    hub.stop().await;
}

/// A buddy who sends from one tab sees the message on every other tab: the sending tab gets
/// the compact `ack`, the others the whole `message` (text, seq, client_id), once durable.
#[tokio::test]
async fn a_message_sent_from_one_tab_reaches_the_senders_other_tabs_whole() {
    let (hub, [(mut ann, _), (mut tab1, w1)]) = buddies(["Ann", "Multi"]).await;
    let key = w1["key"].as_str().unwrap().to_string();
    let (mut tab2, _) = buddy_with_key(&hub, "Multi", &key).await;
    let chat = start_chat(&mut ann, &mut tab1, id(&w1)).await;
    tab2.next_of("buddy_chat_started").await;

    let ack = tab1.say_in(&chat, "from tab one", "c1").await;
    let copy = tab2.next_of("message").await;
    assert_eq!(
        (copy["text"].as_str(), copy["seq"].as_u64(), copy["id"].as_str()),
        (Some("from tab one"), ack["seq"].as_u64(), ack["id"].as_str()),
        "the other tab gets the message whole: {copy}"
    );
    assert_eq!(copy["sender"].as_u64(), Some(id(&w1)), "{copy}");
    assert_eq!(copy["client_id"], "c1");
    let seen = tab2.drain().await;
    assert!(
        seen.iter().all(|f| f["type"] != "ack"),
        "no text-less ack on the other tab: {seen:?}"
    );
    let seen = tab1.drain().await;
    assert!(
        seen.iter().all(|f| f["type"] != "message"),
        "the sending tab has it once: {seen:?}"
    );
    assert_eq!(ann.next_of("message").await["text"], "from tab one");
    hub.stop().await;
}
