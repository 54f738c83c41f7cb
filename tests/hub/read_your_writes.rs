//! HTTP reads and writes that name a conversation see what the hub has already told its
//! participants: a rating token from `chat_ended` works at once for the transcript and the
//! rating, and an admin can erase a conversation by the id an agent was just shown, however
//! fast they are and whichever node they ask. The archive writer commits in groups and, in
//! a cluster, another node may archive the chat: each race is run many times.

use serde_json::json;

use crate::archive::{TempDir, embedded_store};
use crate::common::*;

const TRIES: usize = 10;

/// A hub on the default store (the embedded one, with its group commit), or on MongoDB,
/// whose writes take longer than a frame takes to arrive.
async fn embedded_hub(dir: &TempDir) -> TestHub {
    let store = embedded_store(dir).await;
    TestHub::with_store(store, |s| s.store.data_dir = dir.0.clone()).await
}

async fn mongo_hub(dir: &TempDir) -> TestHub {
    let store = crate::archive::mongo_store(&crate::archive::mongo_uri()).await;
    TestHub::with_store(store, |s| s.store.data_dir = dir.0.clone()).await
}

/// A chat without a message, ended by the agent at once; the customer's rating token.
async fn ended_at_once(customers: &TestHub, agent: &mut Ws, name: &str) -> String {
    let (mut customer, chat) = customers.customer_in_chat(name, "general").await;
    agent.next_of("chat_started").await;
    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    let ended = customer.next_of("chat_ended").await;
    ended["rating"]["token"].as_str().expect("a rating token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_and_a_rating_asked_the_moment_a_chat_ends_find_it() {
    for mongo in [false, true] {
        let dir = TempDir::new("ryw-transcript");
        let hub = if mongo {
            mongo_hub(&dir).await
        } else {
            embedded_hub(&dir).await
        };
        transcript_and_rating_at_the_end(hub).await;
    }
}

/// The customer of the chat that `token` ended asks `hub` for its transcript (try `i`):
/// accepted at once (202), however fresh the chat's end.
async fn transcript_asked_of(hub: &TestHub, token: &str, i: usize) {
    let body = json!({"token": token, "email": "carla@example.com"});
    let (status, body) = post(hub, "/api/transcripts", body).await;
    assert_eq!(status, 202, "try {i}: {body}");
}

async fn transcript_and_rating_at_the_end(hub: TestHub) {
    let mut ann = hub.agent("ann", &["general"], 1).await;
    for i in 0..TRIES {
        let token = ended_at_once(&hub, &mut ann, &format!("Carla {i}")).await;
        transcript_asked_of(&hub, &token, i).await;
        let token = ended_at_once(&hub, &mut ann, &format!("Dora {i}")).await;
        let (status, body) = post(&hub, "/api/ratings", json!({"token": token, "score": 5})).await;
        assert_eq!(status, 201, "try {i}: {body}");
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_by_the_id_an_agent_was_just_shown_finds_the_conversation() {
    let dir = TempDir::new("ryw-erasure");
    let hub = embedded_hub(&dir).await;
    let admin = hub.admin().await;
    let mut ann = hub.agent("ann", &["general"], 1).await;
    for i in 0..TRIES {
        let (_customer, _) = hub.customer_in_chat(&format!("Erin {i}"), "general").await;
        let started = ann.next_of("chat_started").await;
        let id = started["chat_id"].as_str().unwrap().to_string();
        let (status, body) = admin.post("/api/admin/erasures", json!({"conversation_id": id})).await;
        assert_eq!(status, 200, "try {i}: {body}");
        ann.send(json!({"type": "end_chat", "chat_id": id})).await;
        ann.next_of("chat_ended").await;
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_the_node_asked_finds_a_chat_another_node_archives() {
    let cluster = Cluster::start("ryw-cluster").await;
    // Several nodes share their token secret (REDIS_URL requires ROOM_TOKEN_SECRET).
    let shared = |s: &mut switchboard::config::Settings| {
        s.rooms.token_secret = switchboard::config::Secret(b"one secret for every node".to_vec())
    };
    let (alpha, beta) = cluster.two_nodes(shared).await;
    let mut ann = beta.agent("ann", &["general"], 1).await;
    for i in 0..TRIES {
        let token = ended_at_once(&alpha, &mut ann, &format!("Carla {i}")).await;
        // Asked of the node the customer is not on.
        transcript_asked_of(&beta, &token, i).await;
    }
    alpha.stop().await;
    beta.stop().await;
}

#[tokio::test]
async fn an_unknown_conversation_is_one_not_found_in_plain_words() {
    let hub = TestHub::start().await;
    let (status, body) = hub
        .admin()
        .await
        .post("/api/admin/erasures", json!({"conversation_id": "no-such-id"}))
        .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");
    assert_eq!(body["error"]["message"], "no such conversation", "{body}");
    hub.stop().await;
}
