//! Customers rating a chat that ended: the customer's `chat_ended` carries a rating
//! token (the agent's does not); `POST /api/ratings` stores the rating once (a second is
//! 409 `already_rated`), refuses a score off the desk's scale, a forged and an expired
//! token; the agent gets `chat_rated`; the archive shows the rating.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard::config::Secret;
use switchboard::store::RatingScale;

use crate::common::*;

const SECRET: &[u8] = b"a rating test secret, 32 bytes!!";

/// An agent and a customer in a chat that the customer ends; the two `chat_ended` frames.
async fn ended_chat(hub: &TestHub) -> (Ws, Value, Value) {
    let mut agent = hub.agent("rita", &["sales"], 1).await;
    let (mut customer, _) = hub.customer_in_chat("Carl", "sales").await;
    agent.next_of("chat_started").await;
    customer.send(json!({"type": "message", "text": "thanks, bye"})).await;
    customer.next_of("ack").await;
    customer.send(json!({"type": "leave"})).await;
    let to_customer = customer.next_of("chat_ended").await;
    let to_agent = agent.next_of("chat_ended").await;
    (agent, to_customer, to_agent)
}

async fn rate(hub: &TestHub, body: Value) -> (u16, Value) {
    post(hub, "/api/ratings", body).await
}

fn code(answer: &Value) -> Option<&str> {
    answer["error"]["code"].as_str()
}

#[tokio::test]
async fn a_chat_is_rated_once_and_the_rating_shows_to_the_agent_and_in_the_archive() {
    let hub = TestHub::with(|s| s.rooms.token_secret = Secret(SECRET.to_vec())).await;
    let (mut agent, to_customer, to_agent) = ended_chat(&hub).await;
    let chat_id = to_customer["chat_id"].as_str().unwrap().to_string();
    assert_eq!(to_customer["rating"]["scale"], "stars", "{to_customer}");
    let token = to_customer["rating"]["token"]
        .as_str()
        .expect("a rating token")
        .to_string();
    assert!(
        to_agent.get("rating").is_none(),
        "the agent's copy offers no rating: {to_agent}"
    );

    // Refusals first: nothing is stored by them.
    for (body, status, wanted) in [
        (json!({"token": token, "score": 6}), 400, "invalid_score"),
        (json!({"token": token, "score": 0}), 400, "invalid_score"),
        (json!({"token": "forged.token.here", "score": 5}), 400, "invalid_token"),
        (
            json!({"token": token, "score": 5, "comment": "x".repeat(1_001)}),
            400,
            "invalid_comment",
        ),
        (json!({"token": token}), 400, "bad_json"),
    ] {
        let (got, answer) = rate(&hub, body.clone()).await;
        assert_eq!((got, code(&answer)), (status, Some(wanted)), "{body}: {answer}");
    }
    // A token from a week and a day ago has expired.
    let mut settings = switchboard::config::Settings::for_tests();
    settings.rooms.token_secret = Secret(SECRET.to_vec());
    let old = switchboard::ratings::issue(&settings, &chat_id, "x", switchboard::ratings::now_secs() - 8 * 86_400);
    let (got, answer) = rate(&hub, json!({"token": old, "score": 5})).await;
    assert_eq!((got, code(&answer)), (401, Some("rating_expired")), "{answer}");

    let (got, rating) = rate(
        &hub,
        json!({"token": token, "score": 4, "comment": "  Quick and kind ✓ "}),
    )
    .await;
    assert_eq!(got, 201, "{rating}");
    assert_eq!(
        (rating["score"].as_u64(), rating["comment"].as_str()),
        (Some(4), Some("Quick and kind ✓"))
    );
    let rated = agent.next_of("chat_rated").await;
    assert_eq!(rated["chat_id"], chat_id.as_str());
    assert_eq!(
        (rated["score"].as_u64(), rated["comment"].as_str()),
        (Some(4), Some("Quick and kind ✓"))
    );

    // A second rating is refused, whatever it says.
    let (got, answer) = rate(&hub, json!({"token": token, "score": 1, "comment": "changed my mind"})).await;
    assert_eq!((got, code(&answer)), (409, Some("already_rated")), "{answer}");

    // The archive shows it, to an admin and to the agent, in the list and the conversation.
    let admin = hub.admin().await;
    let mut detail = Value::Null;
    for _ in 0..100 {
        let (status, body) = admin.get(&format!("/api/conversations/{chat_id}")).await;
        if status == 200 {
            detail = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(detail["rating"]["score"], 4, "{detail}");
    assert_eq!(detail["rating"]["scale"], "stars");
    assert_eq!(detail["rating"]["comment"], "Quick and kind ✓");
    let (_, list) = admin.get("/api/conversations").await;
    let listed = with_id(&list["items"], &chat_id);
    assert_eq!(listed["rating"]["score"], 4);
    let rita = hub.login("rita", "agent-password").await;
    let (_, mine) = rita.get(&format!("/api/conversations/{chat_id}")).await;
    assert_eq!(mine["rating"]["score"], 4, "{mine}");
    hub.stop().await;
}

#[tokio::test]
async fn a_thumbs_desk_takes_down_or_up() {
    let hub = TestHub::with(|s| s.rating_scale = RatingScale::Thumbs).await;
    let (_agent, to_customer, _) = ended_chat(&hub).await;
    assert_eq!(to_customer["rating"]["scale"], "thumbs", "{to_customer}");
    let token = to_customer["rating"]["token"].as_str().unwrap();
    let (got, answer) = rate(&hub, json!({"token": token, "score": 5})).await;
    assert_eq!((got, code(&answer)), (400, Some("invalid_score")));
    let (got, rating) = rate(&hub, json!({"token": token, "score": 0})).await;
    assert_eq!(got, 201, "{rating}");
    assert_eq!(
        (rating["score"].as_u64(), rating["scale"].as_str()),
        (Some(0), Some("thumbs"))
    );
    assert!(rating.get("comment").is_none());
    hub.stop().await;
}

#[tokio::test]
async fn a_chat_the_agent_ends_offers_the_customer_a_rating() {
    let (hub, mut agent) = TestHub::with_agent("ending", &["sales"], 1).await;
    let (mut customer, chat_id) = hub.paired_customer(&mut agent, "Cleo", "sales").await;
    agent.send(json!({"type": "end_chat", "chat_id": chat_id})).await;
    let ended = customer.next_of("chat_ended").await;
    assert_eq!(ended["ended_by"], "agent");
    let token = ended["rating"]["token"].as_str().expect("a rating token");
    let (got, answer) = rate(&hub, json!({"token": token, "score": 5})).await;
    assert_eq!(got, 201, "{answer}");
    hub.stop().await;
}

/// Several nodes (Redis): a customer rates on their node (the token is signed with the
/// shared `ROOM_TOKEN_SECRET`); the agent, on the other node, is told through the admin
/// bus; a second rating on the agent's node is refused by the shared store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_takes_a_rating_once() {
    let crate::cluster_fixture::ChatAcrossNodes {
        mut agent,
        mut customer,
        chat,
        nodes,
        servers: _servers,
        ..
    } = crate::cluster_fixture::chat_across_nodes_with("ratings", ["r1", "r2"], |s| {
        s.resume_grace = Duration::from_secs(10);
        s.rooms.token_secret = Secret(SECRET.to_vec());
    })
    .await;
    customer.send(json!({"type": "leave"})).await;
    let ended = customer.next_of("chat_ended").await;
    let token = ended["rating"]["token"].as_str().expect("a rating offer").to_string();
    // Rated on the customer's node: the agent, on the other, is told through the admin bus.
    let (got, answer) = rate(&nodes[0], json!({"token": token, "score": 5})).await;
    assert_eq!(got, 201, "{answer}");
    let rated = agent.next_of("chat_rated").await;
    assert_eq!(
        (rated["chat_id"].as_str(), rated["score"].as_u64()),
        (Some(chat.as_str()), Some(5))
    );
    let (got, answer) = rate(&nodes[1], json!({"token": token, "score": 1})).await;
    assert_eq!((got, code(&answer)), (409, Some("already_rated")), "{answer}");
    for node in nodes {
        node.stop().await;
    }
}

/// A conversation is rated once: rated at its first end, continued by its customer and
/// ended again, it offers no rating (the offer would only be refused `already_rated`).
#[tokio::test]
async fn a_continued_conversation_rated_before_offers_no_rating_again() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let (mut carla, chat) = hub
        .paired_customer_with(&mut ann, "Carla", json!({"visitor": crate::continuing::VISITOR}))
        .await;
    carla.say("my parcel is late", "c1").await;
    ann.next_of("message").await;
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    let ended = carla.next_of("chat_ended").await;
    let token = ended["rating"]["token"].as_str().expect("a first rating offer");
    assert_eq!(rate(&hub, json!({"token": token, "score": 4})).await.0, 201);
    crate::continuing::own_until(&hub, crate::continuing::VISITOR, "resolved").await;

    let mut again = crate::continuing::continuing(&hub, Some(crate::continuing::VISITOR), &chat).await;
    again.next_of("chat_started").await;
    ann.next_of("chat_started").await;
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    let ended = again.next_of("chat_ended").await;
    assert!(ended["rating"].is_null(), "rated before: no offer again: {ended}");
}
