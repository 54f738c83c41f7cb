//! A customer's own `leave` ends their resume token at once: on a shared computer the
//! next person must not get the chat back by resuming within the grace period, on this
//! node or another. (A customer whose chat the agent ended while they were away still
//! gets the ending on a resume: `chat.rs`.)

use serde_json::json;

use crate::common::*;

/// A customer who chatted, then left; their token.
async fn chatted_and_left(customers: &TestHub, agent: &mut Ws) -> String {
    let mut carla = customers.customer("Carla", "general").await;
    let token = carla.token.clone().expect("a resume token");
    let chat = carla.next_of("chat_started").await["chat_id"].clone();
    agent.next_of("chat_started").await;
    carla.send(json!({"type": "message", "text": "my PIN is 1234"})).await;
    carla.next_of("ack").await;
    agent.next_of("message").await;
    carla.send(json!({"type": "leave"})).await;
    let ended = carla.next_of("chat_ended").await;
    assert_eq!(
        (ended["chat_id"].clone(), ended["ended_by"].as_str()),
        (chat, Some("customer"))
    );
    agent.next_of("chat_ended").await;
    token
}

/// The answer to a resume with `token` on `hub`: the error's code, or the frame's type.
async fn resume(hub: &TestHub, token: &str) -> String {
    // `cluster_unavailable` says "ask again" (Redis slow, or this node's replica behind: on
    // a loaded machine it happens), and a client does (on a new connection: some of these
    // refusals close the old one, docs/protocol.md's close codes).
    for _ in 0..20 {
        let mut back = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
        back.send(json!({"type": "resume", "token": token})).await;
        let answer = back
            .next_matching(|f| f["type"] == "error" || f["type"] == "resumed")
            .await;
        let outcome = match answer["type"].as_str() {
            Some("error") => answer["code"].as_str().unwrap_or_default().to_string(),
            other => other.unwrap_or_default().to_string(),
        };
        if outcome != "cluster_unavailable" {
            return outcome;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    "cluster_unavailable".to_string()
}

#[tokio::test]
async fn after_leave_the_token_resumes_nothing() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let token = chatted_and_left(&hub, &mut ann).await;
    assert_eq!(resume(&hub, &token).await, "resume_expired");
    // A customer who leaves the line is gone as well (Ann is away: Dora waits).
    ann.send(json!({"type": "set_available", "available": false})).await;
    ann.next_of("profile").await;
    let mut dora = hub.customer("Dora", "general").await;
    let token = dora.token.clone().unwrap();
    dora.next_of("queued").await;
    dora.send(json!({"type": "leave"})).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(resume(&hub, &token).await, "resume_expired");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_leave_the_token_resumes_nothing_on_another_node() {
    let cluster = Cluster::start("leave-token").await;
    let (alpha, beta) = cluster.two_nodes(|_| {}).await;
    let mut ann = beta.agent("ann", &["general"], 1).await;
    let token = chatted_and_left(&alpha, &mut ann).await;
    assert_eq!(resume(&beta, &token).await, "resume_expired");
    assert_eq!(resume(&alpha, &token).await, "resume_expired");
    alpha.stop().await;
    beta.stop().await;
}
