//! A customer's node killed (SIGKILL) mid-chat and the customer never
//! coming back. The customer's node archived the chat; the node that takes the customer
//! over (the reaper, here the agent's) must archive from then on: every message acked to
//! the agent in the archive once, and the chat's end (`customer_gone`, a disconnect)
//! archived when the grace period runs out.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::store::EndReason;

use crate::cluster_fixture::{Process, available_agent, customer_on, process_and_nodes, sent_and_seen};
use crate::cluster_hub::node_with;
use crate::common::{Ws, both_told};

/// How long a test waits for something the cluster must do.
const WAIT: Duration = Duration::from_secs(30);

/// The agent's frames about their message `client_id`: its ack's seq, or `None` when
/// refused; `ended` is set when the chat's end passes by.
async fn outcome(agent: &mut Ws, client_id: &str, ended: &mut Option<Value>) -> Option<u64> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = agent
            .recv_within(left)
            .await
            .unwrap_or_else(|| panic!("no answer to {client_id}"));
        match frame["type"].as_str() {
            Some("ack") if frame["client_id"] == client_id => return frame["seq"].as_u64(),
            Some("error") if frame["client_id"] == client_id => return None,
            Some("chat_ended") => *ended = Some(frame),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_killed_nodes_customer_who_never_comes_back_has_the_chat_archived_whole_and_closed() {
    killed_customer_node_never_back(false).await;
}

/// The same, and the agent moves from the reaper to another node once the reaper holds
/// the customer. Found by review: the reaper let go of the chat's log with the agent
/// (neither side connected there), so what the agent said from the other node was acked
/// but never archived, and the chat never closed in the archive.
#[tokio::test]
async fn the_reaper_keeps_archiving_when_the_agent_moves_to_another_node() {
    killed_customer_node_never_back(true).await;
}

async fn killed_customer_node_never_back(agent_moves: bool) {
    // The reaper runs the customer's grace timer: 3 s here.
    let grace = |s: &mut switchboard::config::Settings| s.resume_grace = Duration::from_secs(3);
    let (mut doomed, bind, [live], servers) =
        process_and_nodes("cluster-archive-handover", Process::named("doomed"), ["live"], grace).await;
    let store = &servers.store;
    let redis = &servers.redis;
    let scratch = &servers.scratch;
    let (mut agent, token) = available_agent(&live, "ann", &["general"], 1).await;
    let mut carla = customer_on(&bind, "Carla", "general").await;
    let chat = both_told(&mut carla, &mut agent).await;
    let c1 = json!({"type": "message", "text": "c1", "client_id": "c1"});
    sent_and_seen(&mut carla, &mut agent, c1, 1).await;

    doomed.0.kill().unwrap();
    let _ = doomed.0.wait();
    // The agent keeps writing until the chat ends: before the node's loss is noticed,
    // while the reaper holds the customer away, and (refused) after the end.
    let mut acked: Vec<(u64, String)> = vec![(1, "c1".into())];
    let mut ended = None;
    let other = if agent_moves {
        // Once the reaper holds the customer (the agent is told they are away), the agent
        // drops and signs in on another node, within their grace period.
        agent.next_of("peer_away").await;
        let other = node_with(store.clone(), redis, "other", scratch, grace).await;
        drop(agent);
        // Until the live node has recorded the drop, the agent is still online there
        // (`already_online`): the desk tries again, as the agent page does.
        let deadline = Instant::now() + WAIT;
        agent = loop {
            let auth = format!("Bearer {token}");
            let mut ws = Ws::connect(&other.ws_url("/ws/agent"), &[("authorization", &auth)])
                .await
                .unwrap();
            let first = ws
                .next_matching(|f| f["type"] == "agent_welcome" || f["type"] == "error")
                .await;
            if first["type"] == "agent_welcome" {
                break ws;
            }
            assert!(
                Instant::now() < deadline,
                "the agent never came online elsewhere: {first}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Some(other)
    } else {
        None
    };
    for n in 2.. {
        let text = format!("a{n}");
        agent
            .send(json!({"type": "message", "chat_id": chat, "text": text, "client_id": text}))
            .await;
        match outcome(&mut agent, &text, &mut ended).await {
            Some(seq) => acked.push((seq, text)),
            None if ended.is_some() => break,
            None => {}
        }
        if ended.is_some() {
            break;
        }
        assert!(n < 400, "the chat never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ended = ended.expect("the chat ended");
    assert_eq!(
        (ended["chat_id"].as_str(), ended["reason"].as_str()),
        (Some(chat.as_str()), Some("customer_gone"))
    );
    assert!(acked.len() > 3, "messages were acked after the kill: {acked:?}");

    let deadline = Instant::now() + WAIT;
    let record = loop {
        let record = store.conversation(&chat).await.unwrap();
        if record.closed.is_some() && record.messages.len() >= acked.len() {
            break record;
        }
        assert!(
            Instant::now() < deadline,
            "the chat's archive never held all acked messages and its end: {} of {} messages, closed {:?}",
            record.messages.len(),
            acked.len(),
            record.closed
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let archived: Vec<(u64, String)> = record.messages.iter().map(|m| (m.seq, m.text.clone())).collect();
    assert_eq!(archived, acked, "every acked message archived once, in seq order");
    assert_eq!(
        record.closed.unwrap().reason,
        EndReason::Disconnect,
        "closed as a disconnect"
    );
    if let Some(other) = other {
        other.stop().await;
    }
    live.stop().await;
}
