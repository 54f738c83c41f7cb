//! An agent's coming online (or back) whose answer was lost after Redis applied it, as a
//! call timing out on a loaded node meets it: three REAL node processes
//! (`cluster_scenarios::Cluster`, one `redis-server`) with the test-only hook
//! `SWITCHBOARD_TEST_LOST_ANSWER` (debug builds only), which turns the answer of one
//! node's first such call into a timeout while the transition stands in Redis.
//!
//! What must hold: the call is made known, not refused. Redis applied it, so the node
//! holds the agent: their desk is welcomed and serves customers, and their next sign-in,
//! on any node, is welcomed too; nobody is left online in Redis for a node that does not
//! hold them. On the code before, the desk was refused (`cluster_unavailable`, 1013) while
//! the call stood in Redis and the node held nobody, and every later sign-in was refused
//! `already_online` (scenario 4 with seeds 2 and 5 under load: "customers never done").
//!
//! With the hook's `:read`, the read of the agent's record after the lost answer goes
//! unanswered too: the call is taken back, and a sign-in again on the same node, made
//! behind the take-back, must be welcomed and served, and let go of when it closes. A
//! second tab opened on that node while the read is still unanswered
//! (`SWITCHBOARD_TEST_LOST_READ_GATE`) must not stay open on a desk the take-back ended.

use std::time::Duration;

use serde_json::{Value, json};

use crate::archive::TempDir;
use crate::cluster_scenarios::{Cluster, ONE_SCENARIO_AT_A_TIME};
use crate::common::{ADMIN_PASSWORD, Ws};

/// How long a test waits for something the cluster must do.
const WAIT: Duration = Duration::from_secs(60);
/// `RESUME_GRACE_SECS`: longer than any test.
const GRACE_SECS: u64 = 120;
/// `CLUSTER_LEASE_MS`: no node is reaped in these tests.
const LEASE_MS: u64 = 2_000;

/// These tests' share of [`ONE_SCENARIO_AT_A_TIME`]: no scenario runs meanwhile.
type Shared = tokio::sync::RwLockReadGuard<'static, ()>;

/// The cluster, its nodes run with `SWITCHBOARD_TEST_LOST_ANSWER=<lost>`; the agent
/// "ann" (limit 1, "general")'s bearer token; and the guard that keeps the scenarios from
/// running meanwhile.
async fn staged(tag: &str, lost: &str) -> (Cluster, String, Shared) {
    staged_with(tag, &[("SWITCHBOARD_TEST_LOST_ANSWER", lost)]).await
}

/// As [`staged`], the nodes run with the test-only settings `hooks`.
async fn staged_with(tag: &str, hooks: &[(&str, &str)]) -> (Cluster, String, Shared) {
    let alone = ONE_SCENARIO_AT_A_TIME.read().await;
    let cluster = Cluster::start_env(tag, GRACE_SECS, LEASE_MS, hooks).await;
    let admin = cluster.login("admin", ADMIN_PASSWORD).await;
    let token = cluster.agent_token(&admin, "ann", &["general"], 1).await;
    (cluster, token, alone)
}

/// The agent's desk on node `i` with the bearer `token`: its first frame, `agent_welcome`
/// or a refusal, and the close that follows a refusal.
async fn sign_in(cluster: &Cluster, i: usize, token: &str) -> (Ws, Value) {
    let auth = format!("Bearer {token}");
    let mut ws = Ws::connect(&cluster.ws_url(i, "/ws/agent"), &[("authorization", &auth)])
        .await
        .unwrap();
    let first = ws
        .next_matching_within(WAIT, |f| f["type"] == "agent_welcome" || f["type"] == "error")
        .await;
    (ws, first)
}

/// The agent's desk on node `i`, welcomed: opened again while the node refuses it for not
/// knowing itself a member for a moment (a lease renewal late on a loaded machine), as a
/// page does. A refused call never reached Redis, so no test hook took it.
async fn welcomed(cluster: &Cluster, i: usize, token: &str) -> (Ws, Value) {
    for _ in 0..TRIES {
        let (ws, first) = sign_in(cluster, i, token).await;
        // A refusal of the lost call itself ("taken back") is an answer, never retried: a
        // regression to refusing the desk must fail the test, not be signed in again.
        if first["type"] != "error" || first["code"] != "cluster_unavailable" || taken_back(&first) {
            return (ws, first);
        }
    }
    panic!("node{i} refused the desk {TRIES} times");
}

/// Whether `frame` is the refusal of a coming online (or back) the node took back.
fn taken_back(frame: &Value) -> bool {
    frame["message"].as_str().is_some_and(|m| m.contains("taken back"))
}

/// How many times a test makes a call again that a node refused for a moment.
const TRIES: usize = 20;

/// A customer joined "general" on node `i`, once their chat started: the connection.
async fn served(cluster: &Cluster, i: usize, name: &str, agent: &mut Ws) -> Ws {
    let mut customer = Ws::connect(&cluster.ws_url(i, "/ws/customer"), &[]).await.unwrap();
    customer
        .send(json!({"type": "join", "name": name, "category": "general"}))
        .await;
    let chat = customer
        .next_matching_within(WAIT, |f| f["type"] == "chat_started")
        .await["chat_id"]
        .clone();
    let started = agent.next_matching_within(WAIT, |f| f["type"] == "chat_started").await;
    assert_eq!(started["chat_id"], chat, "{started}");
    customer
}

/// The agent signed in on node1, available and given Carla (joining on node2), then their
/// desk closed: away from node1 once Carla is told. Carla's connection.
async fn away_from_node1_serving_carla(cluster: &Cluster, token: &str) -> Ws {
    let (mut desk, first) = sign_in(cluster, 1, token).await;
    assert_eq!(first["type"], "agent_welcome", "{first}");
    desk.send(json!({"type": "set_available", "available": true})).await;
    let mut carla = served(cluster, 2, "Carla", &mut desk).await;
    drop(desk);
    carla.next_matching_within(WAIT, |f| f["type"] == "peer_away").await;
    carla
}

/// The agent's `desk`, welcomed (`welcome`) with one chat, Carla's: a line sent in it is
/// acknowledged and reaches her. Then the desk closes.
async fn goes_on_with_carla(mut desk: Ws, welcome: &Value, carla: &mut Ws) {
    assert_eq!(welcome["chats"].as_array().map(Vec::len), Some(1), "{welcome}");
    let chat = welcome["chats"][0]["chat_id"].clone();
    desk.send(json!({"type": "message", "chat_id": chat, "text": "still here"}))
        .await;
    desk.next_matching_within(WAIT, |f| f["type"] == "ack").await;
    let line = carla
        .next_matching_within(WAIT, |f| f["type"] == "message" && f["text"] == "still here")
        .await;
    assert_eq!(line["chat_id"], chat, "{line}");
}

/// The agent's welcomed `desk` goes available and is given Carla, a customer joining on
/// node1; closed, their next sign-in, away on node2, is welcomed with her chat.
async fn serves_carla_then_signs_in_on_node2(cluster: &Cluster, token: &str, mut desk: Ws) {
    desk.send(json!({"type": "set_available", "available": true})).await;
    let _carla = served(cluster, 1, "Carla", &mut desk).await;
    drop(desk);
    welcomed_back_on_node2(cluster, token).await;
}

/// The agent's next sign-in, on node2: welcomed with their one chat. The desk, open.
/// Until the node they left has recorded their closed desk, Redis holds them online there
/// (`already_online`): the page tries again, as the agent page does, for a while; refused
/// for good (the fault these tests guard against) fails the test.
async fn welcomed_back_on_node2(cluster: &Cluster, token: &str) -> Ws {
    let deadline = tokio::time::Instant::now() + WAIT;
    let (back, first) = loop {
        let (back, first) = sign_in(cluster, 2, token).await;
        if first["code"] != "already_online" || tokio::time::Instant::now() > deadline {
            break (back, first);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(first["type"], "agent_welcome", "the next sign-in is welcomed: {first}");
    assert_eq!(first["chats"].as_array().map(Vec::len), Some(1), "{first}");
    back
}

/// An agent's `agent_online` whose answer node0 lost (applied in Redis): their desk is
/// welcomed (the call was applied: node0 holds them), goes available and is given a
/// customer; their next sign-in, on node2, is welcomed with that chat. On the code
/// before, the desk was refused and every later sign-in `already_online`.
#[tokio::test]
async fn an_agent_coming_online_whose_answer_was_lost_is_held_and_signs_in_next_time() {
    let (cluster, token, alone) = staged("lost-answer-agent-online", "node0:AgentOnline").await;

    let (desk, first) = welcomed(&cluster, 0, &token).await;
    assert_eq!(first["type"], "agent_welcome", "applied, so held: {first}");
    // Away from node0 then: back on node2, with Carla's chat.
    serves_carla_then_signs_in_on_node2(&cluster, &token, desk).await;
    drop(alone);
}

/// An agent away from node1 (their desk closed) coming back on node0, whose
/// `agent_resumed` answer node0 lost (applied in Redis): their desk is welcomed with their
/// chat and goes on in it; their next sign-in, on node2, is welcomed with it too. On the
/// code before, the desk was refused while Redis held them connected on node0, which held
/// nobody: every later sign-in was refused `already_online`.
#[tokio::test]
async fn an_agent_coming_back_whose_answer_was_lost_is_held_and_signs_in_next_time() {
    let (cluster, token, alone) = staged("lost-answer-agent-resumed", "node0:AgentResumed").await;

    let mut carla = away_from_node1_serving_carla(&cluster, &token).await;

    // `agent_resumed` on node0 (straight, or after `already_online` from a replica that
    // had not applied her drop yet), its answer lost.
    let (back, first) = welcomed(&cluster, 0, &token).await;
    assert_eq!(first["type"], "agent_welcome", "applied, so held: {first}");
    goes_on_with_carla(back, &first, &mut carla).await;

    let _again = welcomed_back_on_node2(&cluster, &token).await;
    drop(alone);
}

/// An agent's `agent_online` whose answer node0 lost, and the read of their record that
/// would have told it was applied: node0 takes the call back (`agent_offline`, kept first
/// in its outbox: Redis answers it again only with node0's next call) and closes the desk
/// (1013; welcomed first or not, as the event and the refusal come). The page signs in
/// again on node0 at once: its `agent_online` goes behind the take-back, so the events
/// replay as the lost call's, the take-back's, the new call's. The new desk is welcomed,
/// goes available and is given a customer; closed, the agent's next sign-in, on node2, is
/// welcomed with that chat. On the code before, the take-back's replay removed the new
/// sign-in's record (or the lost call's event welcomed it, and the take-back then removed
/// it): never welcomed, or never let go, Redis held the agent connected on node0 and every
/// later sign-in was refused `already_online`.
#[tokio::test]
async fn an_agent_signing_in_again_behind_a_take_back_is_welcomed_and_served() {
    let (cluster, token, alone) = staged("lost-read-agent-online", "node0:AgentOnline:read").await;

    let (mut desk, first) = sign_in(&cluster, 0, &token).await;
    if first["type"] == "agent_welcome" {
        desk.next_matching_within(WAIT, |f| f["type"] == "error").await;
    }
    let code = desk.closed_within(WAIT).await.map(u16::from);
    assert_eq!(code, Some(1013), "taken back, so refused and closed: {first}");

    let (desk, first) = sign_in(&cluster, 0, &token).await;
    assert_eq!(first["type"], "agent_welcome", "the sign-in again is welcomed: {first}");
    assert_eq!(first["chats"].as_array().map(Vec::len), Some(0), "{first}");
    // Let go by node0: back on node2, with Carla's chat.
    serves_carla_then_signs_in_on_node2(&cluster, &token, desk).await;
    drop(alone);
}

/// An agent away from node1 (their desk closed, Carla's chat running) coming back on node0,
/// whose `agent_resumed` answer node0 lost (applied in Redis), and the read of their record
/// that would have told it was applied goes unanswered late: meanwhile the desk is welcomed
/// by the call's event, and the agent opens a second tab on node0, which takes the first
/// one's place and is welcomed at once, held for the first tab's sign-in. Then the read goes
/// unanswered: node0 takes the call back (`agent_disconnected`, kept first in its outbox
/// until the next call, the second tab's `set_available`) and refuses the first tab, which
/// is gone. The take-back ends that sign-in: the second tab is told (`error`) and closed
/// (1013), and the agent's next sign-in on node0 is welcomed with Carla's chat and goes on
/// in it; closed, their sign-in on node2 is welcomed with it too. On the code before, the
/// take-back named no sign-in and closed nothing: the second tab stayed open on a desk away
/// in Redis (no customer routed to it, its chat's lines refused) until a reload.
#[tokio::test]
async fn a_second_tab_opened_while_a_coming_back_is_taken_back_is_closed_with_it() {
    let gate = TempDir::new("lost-read-gate");
    let gate = gate.0.join("open");
    let hooks = [
        ("SWITCHBOARD_TEST_LOST_ANSWER", "node0:AgentResumed:read"),
        ("SWITCHBOARD_TEST_LOST_READ_GATE", gate.to_str().unwrap()),
    ];
    let (cluster, token, alone) = staged_with("lost-read-agent-resumed", &hooks).await;

    let mut carla = away_from_node1_serving_carla(&cluster, &token).await;

    // Back on node0: `agent_resumed` applied, its answer lost, the read after it waiting;
    // the call's event welcomes the desk.
    let (_first_tab, first) = welcomed(&cluster, 0, &token).await;
    assert_eq!(first["type"], "agent_welcome", "applied, so replayed: {first}");
    let (mut second_tab, first) = sign_in(&cluster, 0, &token).await;
    assert_eq!(
        first["type"], "agent_welcome",
        "held here, so welcomed at once: {first}"
    );

    // The read goes unanswered: taken back, behind the second tab's next call (made again
    // while the node refuses it for a moment, as in `welcomed`).
    std::fs::write(&gate, b"").unwrap();
    let mut told = Value::Null;
    for _ in 0..TRIES {
        second_tab
            .send(json!({"type": "set_available", "available": true}))
            .await;
        told = second_tab.next_matching_within(WAIT, |f| f["type"] == "error").await;
        if taken_back(&told) {
            break;
        }
    }
    assert_eq!(told["code"], "cluster_unavailable", "{told}");
    assert!(taken_back(&told), "{told}");
    let code = second_tab.closed_within(WAIT).await.map(u16::from);
    assert_eq!(code, Some(1013), "the take-back ends the second tab's desk: {told}");

    // Signed in again, a working desk: welcomed with Carla's chat, which goes on.
    let (again, first) = welcomed(&cluster, 0, &token).await;
    assert_eq!(first["type"], "agent_welcome", "the sign-in again is welcomed: {first}");
    goes_on_with_carla(again, &first, &mut carla).await;

    let _back = welcomed_back_on_node2(&cluster, &token).await;
    drop(alone);
}
