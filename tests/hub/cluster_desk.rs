//! Agents' statuses and categories' hours across nodes: an admin closing a category on one
//! node is honoured at once by the others (their joins refused, their waiting customers
//! told), and a busy agent on one node is available again when their chat with a customer
//! on another node ends.

use serde_json::json;

use crate::cluster_fixture::nodes;
use crate::common::{Ws, close_chat_hours};

#[tokio::test]
async fn hours_changed_on_one_node_are_honoured_on_the_others_at_once() {
    let ([alpha, beta], _servers) = nodes("cluster-desk-hours", ["alpha", "beta"], |_| {}).await;

    let mut waiting = beta.customer("Early", "general").await;
    waiting.next_of("queued").await;
    close_chat_hours(&alpha, "general").await;
    // Beta's customer is told, and beta refuses a join, well before beta's keeper ticks
    // (`desk_hours::TICK`, 5 s): the close went through Redis.
    let started = std::time::Instant::now();
    let told = waiting.next_of("desk_status").await;
    assert_eq!(told["open"], false, "{told}");
    let mut late = Ws::connect(&beta.ws_url("/ws/customer"), &[]).await.unwrap();
    late.send(json!({"type": "join", "name": "Late", "category": "general"}))
        .await;
    assert_eq!(late.next_of("error").await["code"], "category_closed");
    let categories: serde_json::Value = reqwest::get(beta.url("/api/categories"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        categories
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "general" && c["open"] == false),
        "{categories}"
    );
    eprintln!(
        "closed on beta {:?} after the admin's change on alpha",
        started.elapsed()
    );

    // Nobody is paired in it on any node; reopened on beta, the customer is paired.
    let mut agent = alpha.agent("ann", &["general"], 1).await;
    assert!(waiting.drain().await.iter().all(|f| f["type"] != "chat_started"));
    let (status, body) = beta.admin().await.delete("/api/admin/chat-hours/general").await;
    assert_eq!(status, 200, "{body}");
    waiting.next_of("chat_started").await;
    agent.next_of("chat_started").await;
    alpha.stop().await;
    beta.stop().await;
}

#[tokio::test]
async fn a_busy_agent_is_available_again_when_their_chat_on_another_node_ends() {
    let ([alpha, beta], _servers) = nodes("cluster-desk-busy", ["alpha", "beta"], |_| {}).await;

    let mut agent = alpha.agent("ann", &["general"], 2).await;
    let (mut first, _) = beta.customer_in_chat("First", "general").await;
    agent.next_of("chat_started").await;
    agent.send(json!({"type": "set_status", "status": "busy"})).await;
    assert_eq!(agent.next_of("profile").await["status"], "busy");
    let mut second = beta.customer("Second", "general").await;
    assert_eq!(
        second.next_of("queued").await["place"],
        1,
        "a busy agent got a new chat"
    );
    first.send(json!({"type": "leave"})).await;
    assert_eq!(agent.next_of("profile").await["status"], "available");
    second.next_of("chat_started").await;
    alpha.stop().await;
    beta.stop().await;
}
