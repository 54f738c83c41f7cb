//! An agent coming back on the node where their customer already
//! resumed gets `agent_welcome` first, its chat snapshot holding the history, and no line
//! of that history a second time as a `message` frame (before or after the welcome). An
//! agent coming back on a node that logged nothing of their chat is told how it ended
//! while they were away (`agent_welcome.ended`), as the node they left kept it.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard::cluster::agent_endings;

use crate::cluster_base::eventually;
use crate::cluster_fixture::{ChatAcrossNodes, chat_across_nodes_with, one_then_two, redis_conn};
use crate::common::{Ws, find_by};

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
    let snapshot = find_by(&first["chats"], "chat_id", chat.as_str())
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

/// Ann (on beta) drops; her customer Carla (on alpha) leaves while Ann is away; Ann signs
/// in again on gamma, which logged nothing of the chat: gamma's welcome says the chat ended
/// by the customer's leaving, as beta told it to nobody. (Before, each node kept its own
/// endings: gamma's `ended` was empty, and the console guessed from the archive.)
#[tokio::test]
async fn an_agent_back_on_another_node_is_told_how_their_chat_ended_while_away() {
    let ChatAcrossNodes {
        agent,
        agent_token: token,
        customer: mut carla,
        chat,
        nodes: [alpha, beta, gamma],
        store,
        servers,
    } = chat_across_nodes_with("cluster-agent-ended", ["alpha", "beta", "gamma"], |s| {
        s.resume_grace = Duration::from_secs(15)
    })
    .await;
    drop(agent);
    assert_eq!(carla.next_of("peer_away").await["chat_id"], chat.as_str());
    carla.send(json!({"type": "leave"})).await;
    carla.next_of("chat_ended").await;

    // The nodes that told the ending write it a moment after (off their hub's task): Ann's
    // sign-in waits for that, not for a guess of how long it takes.
    let ann = store.account_by_username("ann").await.unwrap().id;
    let conn = redis_conn(&servers.redis).await;
    eventually("the ending is kept where every node reads it", || {
        let (mut conn, key) = (conn.clone(), agent_endings::key(&ann));
        async move {
            let kept: i64 = redis::cmd("LLEN").arg(key).query_async(&mut conn).await.ok()?;
            (kept > 0).then_some(())
        }
    })
    .await;

    let (_back, welcome) = Ws::with_bearer(&gamma, "/ws/agent", &token, "agent_welcome").await;
    let ended: Vec<&Value> = welcome["ended"]
        .as_array()
        .unwrap_or_else(|| panic!("a list of endings: {welcome}"))
        .iter()
        .filter(|e| e["chat_id"] == chat.as_str())
        .collect();
    assert_eq!(ended.len(), 1, "the chat's ending, once: {welcome}");
    assert_eq!(
        (ended[0]["ended_by"].as_str(), ended[0]["reason"].as_str()),
        (Some("customer"), Some("ended")),
        "{welcome}"
    );
    assert!(ended[0]["at"].as_i64().is_some_and(|at| at > 0), "{welcome}");
    for node in [alpha, beta, gamma] {
        node.stop().await;
    }
}
