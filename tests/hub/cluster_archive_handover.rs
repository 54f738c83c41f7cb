//! A customer's node killed (SIGKILL) mid-chat and the customer never
//! coming back. The customer's node archived the chat; the node that takes the customer
//! over (the reaper, here the agent's) must archive from then on: every message acked to
//! the agent in the archive once, and the chat's end (`customer_gone`, a disconnect)
//! archived when the grace period runs out. And a chat that ended just before its node
//! was killed, its closing never stored there: the reaper writes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::cluster::routing_events::read_events;
use switchboard::store::{EndReason, MongoStore, SharedStore, Side};

use crate::archive::TempDir;
use crate::cluster_base::eventually;
use crate::cluster_fixture::{
    Process, available_agent, available_agent_at, customer_on, nodes_on, process_and_nodes, redis_conn, sent_and_seen,
};
use crate::cluster_hub::{node_process_with, node_with};
use crate::common::{Running, Ws, both_told};
use crate::redis_server::RedisServer;

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

/// A chat both of whose sides are on one node (a real process, "doomed"), ended by the
/// customer's `leave` — applied in Redis — and the node killed before it stored the
/// closing. Here it never even replays the end: `SWITCHBOARD_TEST_FOLLOWER_LAG` holds the
/// batch holding the `leave` until the kill (in scenario 4 it had told the customer
/// `chat_ended`, and died 60 ms later with the closing not yet stored). Nobody else logs
/// the chat, and the reaper inherits running chats only: the reaper must still write the
/// closing, so the archive holds the chat closed, ended by the customer, its line once.
#[tokio::test]
async fn a_chat_ended_just_before_its_node_is_killed_is_archived_closed_by_the_reaper() {
    let doomed = Process::named("doomed").env(&LAGGING_AT_THE_LEAVE);
    let (mut doomed, bind, [live], servers) =
        process_and_nodes("cluster-archive-ended-then-killed", doomed, ["live"], |_| {}).await;
    let token = live.agent_account("ann", &["general"], 1).await;
    let chat = ended_then_killed(&mut doomed, &bind, &token, &servers.redis).await;
    archived_closed_by_the_customer(&servers.store, &chat).await;
    live.stop().await;
}

/// The same, the node started again under its id within its lease (a minute here, so no
/// other node reaps it), as in scenario 4: it takes its previous incarnation's people back
/// itself (`node_lost` of its own id) and, replaying the events stream from its start,
/// must write the closing its previous incarnation never stored.
#[tokio::test]
async fn a_chat_ended_just_before_its_node_is_killed_is_archived_closed_by_that_node_restarted() {
    let redis = RedisServer::start().await;
    let mut conn = redis_conn(&redis).await;
    let scratch = TempDir::new("cluster-archive-ended-then-restarted");
    let lagging = [LONG_LEASE, LAGGING_AT_THE_LEAVE[0]];
    let first = node_process_with(&redis, &mut conn, &scratch, "doomed", None, &lagging).await;
    let (mut doomed, bind, db) = (first.running, first.bind, first.db);
    let store: SharedStore = Arc::new(MongoStore::connect(&first.uri, &db).await.unwrap());
    // A node in this process, to make the agent's account; it reaps nobody within the test.
    let [setup] = nodes_on(&store, &redis, &scratch, ["setup"], |_| {}).await;
    let token = setup.agent_account("ann", &["general"], 1).await;
    let chat = ended_then_killed(&mut doomed, &bind, &token, &redis).await;
    let same_database = [LONG_LEASE, ("MONGODB_DB", db.as_str())];
    let again = node_process_with(&redis, &mut conn, &scratch, "doomed", None, &same_database).await;
    archived_closed_by_the_customer(&store, &chat).await;
    drop(again);
    setup.stop().await;
}

/// A lease no other node lets run out within a test.
const LONG_LEASE: (&str, &str) = ("CLUSTER_LEASE_MS", "60000");

/// Node "doomed" replays a batch of events holding a `leave` only after ten minutes.
const LAGGING_AT_THE_LEAVE: [(&str, &str); 1] = [("SWITCHBOARD_TEST_FOLLOWER_LAG", "doomed:600000:leave")];

/// On the node process `doomed` at `bind` (its follower held at a `leave`): the agent of
/// session `token` and the customer Carla chat, Carla's line acknowledged, then she
/// leaves; once her `leave` is in the events stream, the node is killed (SIGKILL).
/// Returns the chat's id.
async fn ended_then_killed(doomed: &mut Running, bind: &str, token: &str, redis: &RedisServer) -> String {
    let mut agent = available_agent_at(bind, token).await;
    let mut carla = customer_on(bind, "Carla", "general").await;
    let chat = both_told(&mut carla, &mut agent).await;
    let c1 = json!({"type": "message", "text": "c1", "client_id": "c1"});
    sent_and_seen(&mut carla, &mut agent, c1, 1).await;
    carla.send(json!({"type": "leave"})).await;
    // The end is in Redis (the leave's entry in the events stream), not replayed there.
    let conn = redis_conn(redis).await;
    eventually("the leave is in the events stream", || {
        let mut conn = conn.clone();
        async move {
            let events = read_events(&mut conn, "0-0", 100_000).await.ok()?;
            events.iter().any(|e| e.transition == "leave").then_some(())
        }
    })
    .await;
    doomed.0.kill().unwrap();
    let _ = doomed.0.wait();
    chat
}

/// The archive comes to hold `chat` closed as its customer ended it (the real closing),
/// with its one line once.
async fn archived_closed_by_the_customer(store: &SharedStore, chat: &str) {
    let deadline = Instant::now() + WAIT;
    let record = loop {
        let record = store.conversation(chat).await.unwrap();
        if record.closed.is_some() {
            break record;
        }
        assert!(
            Instant::now() < deadline,
            "the chat ended before its node was killed was never archived as closed: {} messages",
            record.messages.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let closed = record.closed.unwrap();
    assert_eq!((closed.ended_by, closed.reason), (Side::Customer, EndReason::Ended));
    assert!(closed.inferred.is_none(), "the real closing: {closed:?}");
    let archived: Vec<(u64, String)> = record.messages.iter().map(|m| (m.seq, m.text.clone())).collect();
    assert_eq!(archived, vec![(1, "c1".to_string())], "its line archived once");
}
