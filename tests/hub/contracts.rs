//! The contracts docs/protocol.md states, checked against the running hub:
//! the frames that answer a join, and what the archive keeps of each chat.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard::store::{EndReason, Side};

use crate::buddy::invite_and_accept;
use crate::common::*;

/// A join that finds a free agent is answered by `welcome` then `chat_started`, never `queued`.
#[tokio::test]
async fn a_customer_paired_at_once_never_sees_queued() {
    let (hub, mut agent) = TestHub::with_agent("ann", &["general"], 1).await;
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

/// The archived conversation `id`, once it has ended (the archive writes behind the relay).
async fn archived(api: &Api, id: &str) -> Value {
    for _ in 0..100 {
        let (status, c) = api.get(&format!("/api/conversations/{id}")).await;
        if status == 200 && c["ended_at"].is_i64() {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("conversation {id} was not archived as ended");
}

fn ending(frame: &Value) -> (String, String) {
    (
        frame["ended_by"].as_str().unwrap().to_string(),
        frame["reason"].as_str().unwrap().to_string(),
    )
}

fn pair(ended_by: &str, reason: &str) -> (String, String) {
    (ended_by.to_string(), reason.to_string())
}

/// A customer who joined and was paired at once; returns them and the chat id.
async fn paired(hub: &TestHub, name: &str, category: &str) -> (Ws, String) {
    let mut c = hub.customer(name, category).await;
    let chat = c.chat_started().await;
    (c, chat)
}

/// Each way a service chat ends, live and in the archive, which keeps it under its live `chat_id`.
#[tokio::test]
async fn the_archive_keeps_each_chat_under_its_chat_id_with_the_documented_end_reason() {
    let hub = TestHub::start().await;
    let store = hub.store.clone();
    let admin = hub.admin().await;
    let mut ann = hub.agent("ann", &["general"], 4).await;

    // The customer leaves; the live message's id and seq are the archive's.
    let (mut c, left) = paired(&hub, "Leaver", "general").await;
    c.send(json!({"type": "message", "text": "bye"})).await;
    let live = c.next_of("ack").await;
    c.send(json!({"type": "leave"})).await;
    assert_eq!(ending(&c.next_of("chat_ended").await), pair("customer", "ended"));
    let a = archived(&admin, &left).await;
    assert_eq!(
        (a["id"].as_str(), a["kind"].as_str()),
        (Some(left.as_str()), Some("service"))
    );
    assert_eq!(
        (a["ended_by"].as_str(), a["reason"].as_str()),
        (Some("customer"), Some("ended"))
    );
    assert_eq!(
        (&a["messages"][0]["id"], &a["messages"][0]["seq"]),
        (&live["id"], &live["seq"])
    );

    // The agent ends it.
    let (mut c, ended) = paired(&hub, "Ended", "general").await;
    ann.send(json!({"type": "end_chat", "chat_id": ended})).await;
    assert_eq!(ending(&c.next_of("chat_ended").await), pair("agent", "ended"));
    let a = archived(&admin, &ended).await;
    assert_eq!(
        pair(a["ended_by"].as_str().unwrap(), a["reason"].as_str().unwrap()),
        pair("agent", "ended")
    );

    // The customer vanishes past the grace period.
    let (c, gone) = paired(&hub, "Vanisher", "general").await;
    drop(c);
    let frame = loop {
        let f = ann.next_of("chat_ended").await;
        if f["chat_id"] == gone {
            break f;
        }
    };
    assert_eq!(ending(&frame), pair("system", "customer_gone"));
    let a = archived(&admin, &gone).await;
    assert_eq!(
        pair(a["ended_by"].as_str().unwrap(), a["reason"].as_str().unwrap()),
        pair("system", "disconnect")
    );

    // An admin disables the agent: their customer is told `agent_gone` and waits for the
    // next agent in the same conversation, open in the archive; leaving ends it.
    let mut dan = hub.agent("dan", &["sales"], 1).await;
    let (mut c, disabled) = paired(&hub, "Disabled", "sales").await;
    dan.next_of("chat_started").await;
    admin.disable_agent("dan").await;
    assert_eq!(ending(&c.next_of("chat_ended").await), pair("system", "agent_gone"));
    assert_eq!(c.next_of("queued").await["requeued"], true);
    let (_, open) = admin.get(&format!("/api/conversations/{disabled}")).await;
    assert!(open["ended_at"].is_null(), "{open}");
    c.send(json!({"type": "leave"})).await;
    let a = archived(&admin, &disabled).await;
    assert_eq!(
        pair(a["ended_by"].as_str().unwrap(), a["reason"].as_str().unwrap()),
        pair("customer", "ended")
    );

    // The agent vanishes past the grace period: `agent_gone` live; the customer, gone too
    // while they wait, ends it as `disconnect` in the archive.
    let eve = hub.agent("eve", &["billing"], 1).await;
    let (mut c, lapsed) = paired(&hub, "Lapsed", "billing").await;
    drop(eve);
    assert_eq!(ending(&c.next_of("chat_ended").await), pair("system", "agent_gone"));
    c.next_of("queued").await;
    drop(c);
    let a = archived(&admin, &lapsed).await;
    assert_eq!(
        pair(a["ended_by"].as_str().unwrap(), a["reason"].as_str().unwrap()),
        pair("system", "disconnect")
    );

    // The hub stops: `shutdown` both live and in the archive.
    let (mut c, stopped) = paired(&hub, "Stopped", "general").await;
    let frames = tokio::spawn(async move { c.next_of("chat_ended").await });
    hub.stop().await;
    assert_eq!(ending(&frames.await.unwrap()), pair("system", "shutdown"));
    let kept = store.conversation(&stopped).await.unwrap();
    let closed = kept.closed.expect("closed at shutdown");
    assert_eq!((closed.ended_by, closed.reason), (Side::System, EndReason::Shutdown));
    assert_eq!(kept.opened.id, stopped);
}

/// Buddy chats are archived under their `chat_id`, the inviter as `customer`, the invitee as
/// `agent` (`agent_id` `buddy:<id>`); admins read them, agents never, not even their own.
#[tokio::test]
async fn buddy_chats_are_archived_as_documented_and_only_admins_read_them() {
    let (hub, admin) = TestHub::with_admin().await;
    let buddy = |name: &'static str| {
        let url = hub.ws_url("/ws/buddy");
        async move {
            let mut ws = Ws::connect(&url, &[]).await.unwrap();
            ws.send(json!({"type": "buddy_join", "name": name})).await;
            let welcome = ws.next_of("buddy_welcome").await;
            (ws, welcome)
        }
    };
    let (mut pia, _) = buddy("Pia").await;
    let (mut ray, ray_welcome) = buddy("Ray").await;
    let ray_id = ray_welcome["you"].as_u64().unwrap();
    invite_and_accept(&mut pia, &mut ray, &ray_id).await;
    let chat = ray.chat_id_in("buddy_chat_started").await;
    pia.send(json!({"type": "message", "text": "from the inviter"})).await;
    ray.next_of("message").await;
    ray.send(json!({"type": "message", "text": "from the invitee"})).await;
    pia.next_of("message").await;
    ray.send(json!({"type": "end_chat", "chat_id": chat})).await;
    assert_eq!(pia.next_of("buddy_chat_ended").await["reason"], "ended");
    let a = archived(&admin, &chat).await;
    assert_eq!(
        (a["id"].as_str(), a["kind"].as_str()),
        (Some(chat.as_str()), Some("buddy"))
    );
    assert!(a["category"].is_null(), "{a}");
    assert_eq!(
        (a["customer_name"].as_str(), a["agent_name"].as_str()),
        (Some("Pia"), Some("Ray"))
    );
    assert_eq!(a["agent_id"], format!("buddy:{ray_id}"));
    let froms: Vec<_> = a["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["from"].clone())
        .collect();
    assert_eq!(froms, [json!("customer"), json!("agent")]);
    assert_eq!(
        pair(a["ended_by"].as_str().unwrap(), a["reason"].as_str().unwrap()),
        pair("agent", "ended")
    );
    // Listed for admins, but not under a category.
    assert_eq!(admin.get("/api/conversations").await.1["total"], 1);
    assert_eq!(admin.get("/api/conversations?category=general").await.1["total"], 0);

    // Two agents on the staff roster chat; neither may read it back, and leaving is `disconnect`.
    let ann_token = hub.agent_account("ann", &["general"], 1).await;
    let bob_token = hub.agent_account("bob", &["general"], 1).await;
    let staff = |token: String| {
        let url = hub.ws_url("/ws/buddy");
        async move {
            let auth = format!("Bearer {token}");
            let mut ws = Ws::connect(&url, &[("authorization", &auth)]).await.unwrap();
            let welcome = ws.next_of("buddy_welcome").await;
            (ws, welcome)
        }
    };
    let (mut ann, ann_welcome) = staff(ann_token).await;
    let (mut bob, bob_welcome) = staff(bob_token).await;
    let bob_id = bob_welcome["you"].as_u64().unwrap();

    // The rosters are apart: the public roster shows no staff, the staff roster no public person.
    let names = |welcome: &Value| -> Vec<String> {
        welcome["buddies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_quinn, quinn_welcome) = buddy("Quinn").await;
    assert!(!names(&quinn_welcome).contains(&"ANN".to_string()), "{quinn_welcome}");
    assert!(!names(&bob_welcome).contains(&"Pia".to_string()), "{bob_welcome}");
    assert!(!names(&ann_welcome).contains(&"Pia".to_string()), "{ann_welcome}");
    // A public person cannot be invited from the staff roster.
    ann.send(json!({"type": "invite", "to": quinn_welcome["you"]})).await;
    assert_eq!(ann.next_of("error").await["code"], "target_not_online");

    invite_and_accept(&mut ann, &mut bob, &bob_id).await;
    let staff_chat = ann.chat_id_in("buddy_chat_started").await;
    ann.send(json!({"type": "message", "text": "between colleagues"})).await;
    bob.next_of("message").await;
    drop(ann);
    assert_eq!(bob.next_of("buddy_chat_ended").await["reason"], "peer_left");
    let a = archived(&admin, &staff_chat).await;
    assert_eq!(
        pair(a["ended_by"].as_str().unwrap(), a["reason"].as_str().unwrap()),
        pair("customer", "disconnect")
    );
    for who in ["ann", "bob"] {
        let api = hub.login(who, "agent-password").await;
        assert_eq!(
            api.get(&format!("/api/conversations/{staff_chat}")).await.0,
            404,
            "{who}"
        );
        assert_eq!(api.get(&format!("/api/conversations/{chat}")).await.0, 404, "{who}");
        assert_eq!(api.get("/api/conversations").await.1["total"], 0, "{who}");
    }
    hub.stop().await;
}

/// A session only puts a buddy page on the staff roster from a whitelisted address; from
/// outside it the page is a member of the public like anyone else.
#[tokio::test]
async fn a_signed_in_agent_outside_the_whitelist_is_on_the_public_roster() {
    let hub = TestHub::with(|s| s.access.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let token = hub.agent_account("ann", &["general"], 1).await;
    let auth = format!("Bearer {token}");
    let url = hub.ws_url("/ws/buddy");
    let mut inside = Ws::connect(&url, &[("authorization", &auth)]).await.unwrap();
    assert_eq!(inside.next_of("buddy_welcome").await["buddies"][0]["role"], "agent");
    let mut outside = Ws::connect(&url, &[("authorization", &auth), ("x-forwarded-for", "203.0.113.5")])
        .await
        .unwrap();
    assert!(outside.drain().await.is_empty(), "no staff welcome from outside");
    outside.send(json!({"type": "buddy_join", "name": "Ann outside"})).await;
    let welcome = outside.next_of("buddy_welcome").await;
    let buddies = welcome["buddies"].as_array().unwrap();
    assert_eq!(buddies.len(), 1, "only the public roster: {welcome}");
    assert!(buddies[0]["role"].is_null(), "{welcome}");
    hub.stop().await;
}

/// An away customer is skipped by routing; on their return they get `resumed` with their
/// place, then at once `chat_started` when an agent is free.
#[tokio::test]
async fn a_waiting_customer_back_while_an_agent_is_free_gets_resumed_then_chat_started() {
    let hub = TestHub::with(|s| s.resume_grace = Duration::from_secs(30)).await;
    let mut c = hub.customer("Carla", "general").await;
    c.next_of("queued").await;
    let token = c.token.clone().unwrap();
    drop(c);
    // Her drop must reach the hub before the agent comes, or she would be paired at once.
    let admin = hub.admin().await;
    let mut away = false;
    for _ in 0..100 {
        if admin.get("/api/admin/stats").await.1["customers_connected"] == 0 {
            away = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(away, "the hub saw the customer go");
    let mut agent = hub.agent("ann", &["general"], 1).await;
    assert!(
        agent.drain().await.iter().all(|f| f["type"] != "chat_started"),
        "an away customer is not paired"
    );
    let mut back = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    back.send(json!({"type": "resume", "token": token})).await;
    back.next_of("chat_started").await;
    assert_eq!(types(&back.seen), ["resumed"]);
    assert_eq!(back.seen[0]["place"], 1);
    agent.next_of("chat_started").await;
    hub.stop().await;
}
