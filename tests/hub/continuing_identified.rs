//! A returning customer the embedding site vouches for (`join.identifier` with
//! `identifier_hash`, HMAC-SHA256 under the desk's identity secret): their conversations are
//! theirs on any browser, listed and continued there; a forged hash, one made with a
//! rotated-out secret, or an identifier without a hash is no identity at all: it lists
//! nothing, continues nothing (`unknown_conversation`, as a stranger), and the socket lives.

use serde_json::{Value, json};
use switchboard::core::identity::sign;

use crate::common::*;
use crate::continuing::still_open;

const BROWSER_A: &str = "carlas-laptop-key-0001";
const BROWSER_B: &str = "carlas-phone-key-00002";
const CARLA: &str = "user-77 (Carla Ruiz)";

/// What browser `visitor` lists, sending `identity` (identifier, hash) when given.
async fn listed(hub: &TestHub, visitor: &str, identity: Option<(&str, &str)>) -> Value {
    let mut request = reqwest::Client::new()
        .get(hub.url("/api/visitor/conversations"))
        .header("X-Visitor-Key", visitor);
    if let Some((identifier, hash)) = identity {
        let encoded = percent_encoding::utf8_percent_encode(identifier, percent_encoding::NON_ALPHANUMERIC).to_string();
        request = request
            .header("X-Identifier", encoded)
            .header("X-Identifier-Hash", hash);
    }
    let res = request.send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn listed_ids(list: &Value) -> Vec<&str> {
    ids_in(&list["conversations"])
}

const NOTHING: fn() -> Value = || json!({"conversations": [], "can_continue": true});

/// A new identity secret, made by the admin.
async fn new_secret(admin: &Api) -> String {
    let made = admin.post_answering(200, "/api/admin/identity-secret", json!({})).await;
    made["secret"].as_str().unwrap().to_string()
}

/// Carla's visit on browser A with `identity` in her join: she writes, the agent ends it.
/// The conversation id, once it is listed as resolved on browser A.
async fn visit(hub: &TestHub, agent: &mut Ws, identity: Value) -> String {
    let mut details = json!({"visitor": BROWSER_A});
    details
        .as_object_mut()
        .unwrap()
        .extend(identity.as_object().unwrap().clone());
    let (mut carla, chat) = hub.paired_customer_with(agent, "Carla", details).await;
    carla.say("where is my order?", "c1").await;
    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;
    for _ in 0..100 {
        let list = listed(hub, BROWSER_A, None).await;
        if list["conversations"][0]["status"] == "resolved" {
            return chat;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the visit was never listed as resolved");
}

/// A join on browser B continuing `conversation`, with `identity` merged in.
async fn continuing(hub: &TestHub, conversation: &str, identity: Value) -> Ws {
    let mut ws = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    let mut join = json!({"type": "join", "name": "Carla", "category": "general",
        "visitor": BROWSER_B, "conversation": conversation});
    join.as_object_mut()
        .unwrap()
        .extend(identity.as_object().unwrap().clone());
    ws.send(join).await;
    ws
}

/// `ws` was refused as a stranger is, and its socket lives on.
async fn refused_as_a_stranger(ws: &mut Ws) {
    let error = ws.next_of("error").await;
    assert_eq!(
        (error["code"].as_str(), error["message"].as_str()),
        (
            Some("unknown_conversation"),
            Some("no such conversation of yours; start a new one")
        )
    );
    still_open(ws).await;
}

#[tokio::test]
async fn a_verified_identity_lists_and_continues_its_conversation_from_another_browser() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let admin = hub.admin().await;
    assert_eq!(
        admin.get("/api/admin/identity-secret").await,
        (200, json!({"enabled": false, "created_at": null}))
    );
    let secret = new_secret(&admin).await;
    let (_, shown) = admin.get("/api/admin/identity-secret").await;
    assert_eq!(shown["enabled"], true);
    assert!(shown.get("secret").is_none(), "shown once only: {shown}");
    let hash = sign(&secret, CARLA);
    let chat = visit(&hub, &mut ann, json!({"identifier": CARLA, "identifier_hash": hash})).await;

    // Browser B alone lists nothing; with her identity, her conversation.
    assert_eq!(listed(&hub, BROWSER_B, None).await, NOTHING());
    let list = listed(&hub, BROWSER_B, Some((CARLA, &hash))).await;
    assert_eq!(listed_ids(&list), vec![chat.as_str()], "{list}");
    assert_eq!(list["conversations"][0]["last_message"]["text"], "where is my order?");

    // She continues it on browser B: the same id, its lines, back to Ann.
    let mut carla = continuing(&hub, &chat, json!({"identifier": CARLA, "identifier_hash": hash})).await;
    carla.next_of("welcome").await;
    carla.chat_continued(&chat).await;
    assert_eq!(
        ann.next_of("chat_started").await["chat_id"].as_str(),
        Some(chat.as_str())
    );
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;

    // Erased by her identity: gone from every browser.
    let erased = admin
        .post_answering(200, "/api/admin/erasures", json!({"identifier": CARLA}))
        .await;
    assert_eq!(
        (erased["found_by"].as_str(), erased["erased"]["conversations"].as_u64()),
        (Some("identity"), Some(1)),
        "{erased}"
    );
    assert_eq!(listed(&hub, BROWSER_B, Some((CARLA, &hash))).await, NOTHING());
    assert_eq!(listed(&hub, BROWSER_A, None).await, NOTHING());
}

#[tokio::test]
async fn a_forged_or_stale_identifier_hash_sees_nothing_and_continues_nothing() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let admin = hub.admin().await;
    let old = new_secret(&admin).await;
    let old_hash = sign(&old, CARLA);
    let chat = visit(
        &hub,
        &mut ann,
        json!({"identifier": CARLA, "identifier_hash": old_hash}),
    )
    .await;
    assert_eq!(
        listed_ids(&listed(&hub, BROWSER_B, Some((CARLA, &old_hash))).await),
        vec![chat.as_str()]
    );

    // Forged: another key's hash, a made-up one, another identity's, not hex at all.
    let forged = [
        sign("guessed-secret", CARLA),
        "0".repeat(64),
        sign(&old, "user-78"),
        "not a hash".to_string(),
    ];
    for hash in &forged {
        assert_eq!(listed(&hub, BROWSER_B, Some((CARLA, hash))).await, NOTHING(), "{hash}");
        let mut ws = continuing(&hub, &chat, json!({"identifier": CARLA, "identifier_hash": hash})).await;
        refused_as_a_stranger(&mut ws).await;
    }

    // Rotated: the old secret's hash is stale; the new one's works.
    let new = new_secret(&admin).await;
    assert_eq!(listed(&hub, BROWSER_B, Some((CARLA, &old_hash))).await, NOTHING());
    let mut ws = continuing(&hub, &chat, json!({"identifier": CARLA, "identifier_hash": old_hash})).await;
    refused_as_a_stranger(&mut ws).await;
    let new_hash = sign(&new, CARLA);
    assert_eq!(
        listed_ids(&listed(&hub, BROWSER_B, Some((CARLA, &new_hash))).await),
        vec![chat.as_str()]
    );

    // Disabled: no hash verifies.
    assert_eq!(
        admin.delete("/api/admin/identity-secret").await,
        (200, json!({"enabled": false, "created_at": null}))
    );
    assert_eq!(listed(&hub, BROWSER_B, Some((CARLA, &new_hash))).await, NOTHING());
    let mut ws = continuing(&hub, &chat, json!({"identifier": CARLA, "identifier_hash": new_hash})).await;
    refused_as_a_stranger(&mut ws).await;
}

#[tokio::test]
async fn an_identifier_without_a_valid_hash_is_ignored_and_the_customer_joins_anonymously() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let admin = hub.admin().await;
    let secret = new_secret(&admin).await;
    // No hash: she chats as an anonymous visitor of browser A.
    let chat = visit(&hub, &mut ann, json!({"identifier": CARLA})).await;
    let hash = sign(&secret, CARLA);
    // Her identity, verified later on browser B, does not find it: it was never hers.
    assert_eq!(listed(&hub, BROWSER_B, Some((CARLA, &hash))).await, NOTHING());
    let mut ws = continuing(&hub, &chat, json!({"identifier": CARLA, "identifier_hash": hash})).await;
    refused_as_a_stranger(&mut ws).await;
    // Browser A still has it by its key.
    assert_eq!(listed_ids(&listed(&hub, BROWSER_A, None).await), vec![chat.as_str()]);
}

#[tokio::test]
async fn the_agents_customer_panel_finds_a_verified_customers_visits_from_other_browsers() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let admin = hub.admin().await;
    let secret = new_secret(&admin).await;
    let identity = json!({"identifier": CARLA, "identifier_hash": sign(&secret, CARLA)});
    let first = visit(&hub, &mut ann, identity.clone()).await;
    // A new conversation from browser B (not a continue), with an email typed this time.
    let mut details = json!({"visitor": BROWSER_B, "email": "carla@example.com"});
    details
        .as_object_mut()
        .unwrap()
        .extend(identity.as_object().unwrap().clone());
    let (_carla, second) = hub.paired_customer_with(&mut ann, "Carla", details).await;
    let ann_api = hub.login("ann", "agent-password").await;
    let (status, panel) = ann_api.get(&format!("/api/conversations/{second}/customer")).await;
    assert_eq!(status, 200, "{panel}");
    assert_eq!(panel["recognised_by"], "identity", "{panel}");
    let earlier: Vec<&str> = ids_in(&panel["earlier"]);
    assert_eq!(
        earlier,
        [first.as_str()],
        "the visit from browser A, found by the identity"
    );
}
