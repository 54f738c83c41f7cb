//! An agent coming back on the node where their customer already
//! resumed gets `agent_welcome` first, its chat snapshot holding the history, and no line
//! of that history a second time as a `message` frame (before or after the welcome).

use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster_fixture::{ChatAcrossNodes, chat_across_nodes_with, one_then_two};
use crate::common::Ws;

fn seqs(messages: &Value) -> Vec<u64> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

/// Customer on alpha, agent on beta, two lines; both drop; the customer resumes on
/// gamma, then the agent signs in on gamma: welcome first, each line once.
#[tokio::test]
async fn an_agent_back_where_their_customer_resumed_gets_the_welcome_first_and_each_line_once() {
    let ChatAcrossNodes {
        mut agent,
        agent_token: token,
        customer: mut carla,
        chat,
        nodes: [alpha, beta, gamma],
        servers: _servers,
        ..
    } = chat_across_nodes_with("cluster-agent-return", ["alpha", "beta", "gamma"], |s| {
        s.resume_grace = Duration::from_secs(15)
    })
    .await;
    one_then_two(&mut carla, &mut agent, &chat).await;
    assert_eq!(carla.next_of("message").await["seq"], 2);
    let resume_token = carla.token.clone().unwrap();

    drop(agent);
    assert_eq!(carla.next_of("peer_away").await["chat_id"], chat.as_str());
    drop(carla);
    // Give alpha a moment to send the customer's disconnect before they resume elsewhere.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut back = Ws::connect(&gamma.ws_url("/ws/customer"), &[]).await.unwrap();
    back.send(json!({"type": "resume", "token": resume_token, "last_seq": 2}))
        .await;
    let resumed = back.next_of("resumed").await;
    assert_eq!(resumed["chat"]["chat_id"], chat.as_str(), "{resumed}");

    let auth = format!("Bearer {token}");
    let mut agent = Ws::connect(&gamma.ws_url("/ws/agent"), &[("authorization", &auth)])
        .await
        .unwrap();
    let first = agent
        .recv_within(Duration::from_secs(20))
        .await
        .expect("a frame for the agent");
    assert_eq!(first["type"], "agent_welcome", "the welcome comes first: {first}");
    let snapshot = first["chats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["chat_id"] == chat.as_str())
        .unwrap_or_else(|| panic!("the chat in the welcome: {first}"))
        .clone();
    assert_eq!(seqs(&snapshot["messages"]), [1, 2], "{snapshot}");
    assert_eq!(back.next_of("peer_back").await["chat_id"], chat.as_str());
    // The chat goes on; nothing of the history comes again as a message.
    back.send(json!({"type": "message", "text": "three"})).await;
    let next = agent.next_of("message").await;
    assert_eq!(next["seq"], 3, "{next}");
    let later = agent.drain().await;
    let again: Vec<u64> = agent
        .seen
        .iter()
        .chain(later.iter())
        .filter(|f| f["type"] == "message")
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert!(again.is_empty(), "history lines sent again: {again:?}");
    for node in [alpha, beta, gamma] {
        node.stop().await;
    }
}
