//! Transfers over the websocket: an agent hands a chat to another agent (refused, with the
//! chat staying, when that agent could not take it now) or to a category's line (the
//! customer ahead of those who joined it later, and back in the same chat with the next
//! agent). The customer is told who they are with; the new agent gets the transcript and
//! the note; seq goes on; the archive records each transfer. Then across nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster_fixture::{Process, available_agent, customer_on, nodes, paired, process_and_nodes};
use crate::common::*;

/// Sends `text` from `from` in `chat` and waits for its acknowledgement; its seq.
pub(crate) async fn say(from: &mut Ws, chat: &Value, text: &str) -> u64 {
    from.send(json!({"type": "message", "chat_id": chat, "text": text, "client_id": text}))
        .await;
    let ack = from
        .next_matching(|f| f["type"] == "ack" && f["client_id"] == text)
        .await;
    ack["seq"].as_u64().unwrap()
}

/// The archived conversation `id` (as an admin reads it), once it has `transfers` records.
async fn archived_with_transfers(hub: &TestHub, id: &str, transfers: usize) -> Value {
    let admin = hub.admin().await;
    for _ in 0..100 {
        let (status, body) = admin.get(&format!("/api/conversations/{id}")).await;
        if status == 200 && body["transfers"].as_array().is_some_and(|t| t.len() >= transfers) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("conversation {id} never had {transfers} transfers in the archive");
}

/// Ann (General, limit 2) paired with Carla on `hub`, who says `carla_says` (seq 1) and
/// hears Ann's `ann_says` (seq 2), each seen by the other: Ann's socket, Carla's and the
/// chat id.
async fn talking(hub: &TestHub, carla_says: &str, ann_says: &str) -> (Ws, Ws, Value) {
    let (mut ann, mut carla, chat) = paired(hub, "ann", 2, hub, "Carla").await;
    assert_eq!(say(&mut carla, &chat, carla_says).await, 1);
    ann.next_of("message").await;
    assert_eq!(say(&mut ann, &chat, ann_says).await, 2);
    carla.next_of("message").await;
    (ann, carla, chat)
}

#[tokio::test]
async fn a_chat_handed_to_another_agent_goes_on_with_its_transcript_and_note() {
    let hub = TestHub::start().await;
    let (mut ann, mut carla, chat) = talking(&hub, "my invoice is wrong", "let me find billing").await;
    let mut bob = hub.agent("bob", &["general"], 1).await;
    let bob_id = hub.admin().await.agent_id("bob").await;

    // Ann asks whom she could hand the chat to: Bob, who could take it now.
    ann.send(json!({"type": "transfer_targets", "chat_id": chat})).await;
    let targets = ann.next_of("transfer_targets").await;
    let bob_target = find_by(&targets["agents"], "id", bob_id.as_str())
        .unwrap_or_else(|| panic!("Bob among the targets: {targets}"));
    assert_eq!(
        (bob_target["name"].as_str(), bob_target["can_take"].as_bool()),
        (Some("BOB"), Some(true))
    );
    assert!(
        targets["categories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "billing"),
        "{targets}"
    );

    ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": bob_id, "note": "Invoice 42, wants a refund"}))
        .await;
    let ended = ann.next_of("chat_ended").await;
    assert_eq!(
        (ended["chat_id"].clone(), ended["reason"].as_str(), ended.get("rating")),
        (chat.clone(), Some("transferred"), None),
        "{ended}"
    );
    let started = bob.next_of("chat_started").await;
    assert_eq!(started["chat_id"], chat, "the same chat: {started}");
    assert_eq!(started["peer_name"], "Carla");
    assert_eq!(started["transfer"]["from_name"], "ANN");
    assert_eq!(started["transfer"]["note"], "Invoice 42, wants a refund");
    let texts: Vec<(u64, String)> = started["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["text"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        texts,
        vec![
            (1, "my invoice is wrong".to_string()),
            (2, "let me find billing".to_string())
        ]
    );
    carla
        .next_showing("transferred", json!({"chat_id": chat, "peer_name": "BOB"}))
        .await;

    // The chat goes on with Bob, seq after seq; Ann can no longer speak in it.
    assert_eq!(say(&mut bob, &chat, "Hi Carla, Bob from billing").await, 3);
    assert_eq!(carla.next_of("message").await["seq"], 3);
    assert_eq!(say(&mut carla, &chat, "thanks").await, 4);
    assert_eq!(bob.next_of("message").await["text"], "thanks");
    ann.send(json!({"type": "message", "chat_id": chat, "text": "still here?"}))
        .await;
    assert!(
        matches!(
            ann.next_of("error").await["code"].as_str(),
            Some("not_your_chat" | "unknown_chat")
        ),
        "the old agent is out of the chat"
    );

    let record = archived_with_transfers(&hub, chat.as_str().unwrap(), 1).await;
    let transfer = &record["transfers"][0];
    let to_bob = json!({
        "from_agent_name": "ANN",
        "to_agent_name": "BOB",
        "note": "Invoice 42, wants a refund",
        "after_seq": 2,
        "to_category": null,
    });
    assert_shows(transfer, to_bob, &record.to_string());
    assert_eq!(record["agent_name"], "BOB", "the conversation is Bob's now: {record}");
    hub.stop().await;
}

/// Each line of `frame`'s `messages` (a `chat_started`, a snapshot) by seq, with the agent it
/// names, if any.
pub(crate) fn named_lines(frame: &Value) -> Vec<(u64, Option<String>)> {
    frame["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages: {frame}"))
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["agent_name"].as_str().map(str::to_string)))
        .collect()
}

/// The agent's page reloads: `agent` (a socket of the agent with `token`) is dropped and a
/// new connection opened on `hub`; its welcome's snapshot of `chat`, its only chat.
async fn reloaded(agent: Ws, hub: &TestHub, token: &str, chat: &Value) -> Value {
    drop(agent);
    let (_again, welcome) = Ws::with_bearer(hub, "/ws/agent", token, "agent_welcome").await;
    let snapshot = welcome["chats"][0].clone();
    assert_eq!(snapshot["chat_id"], *chat, "{welcome}");
    snapshot
}

/// The agent a chat is handed to reads the earlier agent's lines named by the hub, theirs
/// named by nobody: in `chat_started`, and in the welcome of a new connection (a reload, a
/// reconnect), so a page need not work out where its own lines begin.
#[tokio::test]
async fn the_agent_a_chat_is_handed_to_reads_the_earlier_agents_lines_named() {
    let hub = TestHub::start().await;
    let (mut ann, _carla, chat) = talking(&hub, "my invoice is wrong", "let me find billing").await;
    let (mut bob, bob_token) = hub.agent_with_token("bob", &["general"], 1).await;
    let bob_id = hub.admin().await.agent_id("bob").await;
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": bob_id, "note": ""}))
        .await;
    let started = bob.next_of("chat_started").await;
    let ann_s = Some("ANN".to_string());
    assert_eq!(named_lines(&started), [(1, None), (2, ann_s.clone())], "{started}");
    assert_eq!(say(&mut bob, &chat, "Bob here").await, 3);

    let snapshot = reloaded(bob, &hub, &bob_token, &chat).await;
    assert_eq!(
        named_lines(&snapshot),
        [(1, None), (2, ann_s), (3, None)],
        "Ann's line hers, Bob's his own: {snapshot}"
    );
    hub.stop().await;
}

/// The agent a chat Ann answered (lines 1 and 2) was handed to says line 3, `says`, Carla
/// gets it, and the agent reloads (signed in with `token` on `node`): the snapshot names
/// Ann's line hers and the agent's own by nobody. The snapshot.
async fn answered_and_reloaded(
    mut agent: Ws,
    says: &str,
    carla: &mut Ws,
    node: &TestHub,
    token: &str,
    chat: &Value,
) -> Value {
    assert_eq!(say(&mut agent, chat, says).await, 3);
    while carla.next_of("message").await["seq"] != 3 {}
    let snapshot = reloaded(agent, node, token, chat).await;
    assert_eq!(
        named_lines(&snapshot),
        [(1, None), (2, Some("ANN".to_string())), (3, None)],
        "Ann's line hers, the agent's their own: {snapshot}"
    );
    snapshot
}

/// Bob of General (taking one chat) signed in on `beta`, available in the cluster before
/// anyone hands him a chat: his `profile` read, which answers his availability once it
/// applied (a fresh clone's loaded run handed the chat over before, and the transfer was
/// refused). His socket, his token, and his account id as `alpha` reads it.
async fn bob_available_on(beta: &TestHub, alpha: &TestHub) -> (Ws, String, String) {
    let (mut bob, token) = available_agent(beta, "bob", &["general"], 1).await;
    bob.next_of("profile").await;
    let id = alpha.admin().await.agent_id("bob").await;
    (bob, token, id)
}

/// Across nodes (scratch `scratch`): Ann hands the chat she and Carla have on alpha to Bob
/// on beta, with `note`; his node reads the chat's log (Ann's line comes before he
/// answers), he answers, and his page reloads onto alpha (`onto_alpha`) or beta: the
/// reload's snapshot, checked by [`answered_and_reloaded`].
async fn handed_to_bob_across_nodes(scratch: &str, note: &str, onto_alpha: bool) -> Value {
    let ([alpha, beta], _servers) = nodes(scratch, ["alpha", "beta"], |_| {}).await;
    let (mut ann, mut carla, chat) = talking(&alpha, "my invoice is wrong", "let me find billing").await;
    let (mut bob, bob_token, bob_id) = bob_available_on(&beta, &alpha).await;
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": bob_id, "note": note}))
        .await;
    let started = bob.next_of("chat_started").await;
    assert_eq!(started["chat_id"], chat, "{started}");
    if !note.is_empty() {
        assert_eq!(started["transfer"]["note"], note, "{started}");
    }
    while bob.next_of("message").await["seq"] != 2 {}
    let reloaded_on = if onto_alpha { &alpha } else { &beta };
    let snapshot = answered_and_reloaded(bob, "Bob here", &mut carla, reloaded_on, &bob_token, &chat).await;
    alpha.stop().await;
    beta.stop().await;
    snapshot
}

/// Across nodes: Bob's node kept no log of the chat Ann (alpha) hands him, with Carla on
/// alpha too; its lines reach his node after the hand-over. After a reconnect his snapshot
/// still names Ann's line hers and his own by nobody.
#[tokio::test]
async fn across_nodes_the_agent_a_chat_is_handed_to_reads_the_earlier_agents_lines_named() {
    handed_to_bob_across_nodes("cluster-transfers-named", "", false).await;
}

/// Across nodes, Bob (on beta) is handed the chat of Carla and Ann (both on alpha) with a
/// note; his page reloads onto alpha, the node that kept the chat's log for Carla: its
/// snapshot still has the note and names Ann's line hers, as beta's did. Before, alpha
/// kept the note only for an agent of its own: the reload lost it, and Ann's line came
/// unnamed (a console shows such a line as its own agent's).
#[tokio::test]
async fn across_nodes_a_handed_on_chat_keeps_its_note_when_its_agent_reloads_onto_the_customers_node() {
    let snapshot = handed_to_bob_across_nodes("cluster-transfers-note", "Invoice 42", true).await;
    assert_eq!(snapshot["transfer"]["note"], "Invoice 42", "{snapshot}");
    assert_eq!(snapshot["transfer"]["from_name"], "ANN", "{snapshot}");
}

/// Across nodes, Ann (on alpha, Carla's node) hands the chat to Bob (beta) with a note,
/// and Bob hands it to billing's line with another; Dee (beta) takes it there. Her page
/// reloading onto alpha gets Bob's hand-over, not Ann's: alpha keeps the latest note with
/// the chat's log, as it keeps the first.
#[tokio::test]
async fn across_nodes_a_chat_handed_on_twice_keeps_the_latest_note_on_the_customers_node() {
    let ([alpha, beta], _servers) = nodes("cluster-transfers-latest-note", ["alpha", "beta"], |_| {}).await;
    let (mut ann, _carla, chat) = talking(&alpha, "my invoice is wrong", "let me find billing").await;
    let (mut bob, _, bob_id) = bob_available_on(&beta, &alpha).await;
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": bob_id, "note": "Invoice 42"}))
        .await;
    assert_eq!(bob.next_of("chat_started").await["transfer"]["note"], "Invoice 42");
    let (mut dee, dee_token) = available_agent(&beta, "dee", &["billing"], 1).await;
    dee.next_of("profile").await;
    bob.send(json!({"type": "transfer", "chat_id": chat, "to_category": "billing", "note": "double charge"}))
        .await;
    let started = dee.next_of("chat_started").await;
    assert_eq!(started["transfer"]["note"], "double charge", "{started}");

    let snapshot = reloaded(dee, &alpha, &dee_token, &chat).await;
    assert_eq!(
        (
            snapshot["transfer"]["from_name"].as_str(),
            snapshot["transfer"]["note"].as_str()
        ),
        (Some("BOB"), Some("double charge")),
        "{snapshot}"
    );
    alpha.stop().await;
    beta.stop().await;
}

/// The grace period of the tests of a chat handed on while its customer is away: long
/// enough for the hand-over and her resume on a loaded machine (the tests' default is
/// under a second).
const AWAY_GRACE: Duration = Duration::from_secs(20);

/// Carla (on `carlas`) talking with Ann there; her page drops, and Ann is told she is
/// away. Ann's socket, the chat and Carla's resume token.
async fn carla_away(carlas: &TestHub) -> (Ws, Value, String) {
    let (mut ann, carla, chat) = talking(carlas, "is anyone there?", "one moment").await;
    let token = carla.token.clone().unwrap();
    drop(carla);
    assert_eq!(ann.next_of("peer_away").await["chat_id"], chat);
    (ann, chat, token)
}

/// Ann hands the chat of [`carla_away`] to Bob: Bob's console is told Carla is away too
/// (`peer_away` after his `chat_started`), and back once she resumes on `carlas`. Before,
/// only the agent she dropped from was told: Bob's console showed her connected until she
/// came back or her grace period ran out.
async fn handed_on_while_away(
    carlas: &TestHub,
    (mut ann, chat, token): (Ws, Value, String),
    mut bob: Ws,
    bob_id: &str,
) {
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": bob_id, "note": ""}))
        .await;
    assert_eq!(bob.next_of("chat_started").await["chat_id"], chat);
    let away = bob.next_of("peer_away").await;
    assert_eq!(away["chat_id"], chat, "{away}");
    assert!(away["grace_secs"].as_f64().is_some_and(|s| s > 0.0), "{away}");

    let mut back = Ws::connect(&carlas.ws_url("/ws/customer"), &[]).await.unwrap();
    back.send(json!({"type": "resume", "token": token, "last_seq": 2}))
        .await;
    assert_eq!(back.next_of("resumed").await["chat"]["chat_id"], chat);
    assert_eq!(bob.next_of("peer_back").await["chat_id"], chat);
}

#[tokio::test]
async fn a_chat_handed_on_while_its_customer_is_away_tells_the_new_agent_so() {
    let hub = TestHub::with(|s| s.resume_grace = AWAY_GRACE).await;
    let away = carla_away(&hub).await;
    let bob = hub.agent("bob", &["general"], 1).await;
    let bob_id = hub.admin().await.agent_id("bob").await;
    handed_on_while_away(&hub, away, bob, &bob_id).await;
}

#[tokio::test]
async fn across_nodes_a_chat_handed_on_while_its_customer_is_away_tells_the_new_agent_so() {
    let ([alpha, beta], _servers) = nodes("cluster-transfers-away", ["alpha", "beta"], |s| {
        s.resume_grace = AWAY_GRACE
    })
    .await;
    let away = carla_away(&alpha).await;
    let (bob, _, bob_id) = bob_available_on(&beta, &alpha).await;
    handed_on_while_away(&alpha, away, bob, &bob_id).await;
    alpha.stop().await;
    beta.stop().await;
}

#[tokio::test]
async fn a_transfer_to_an_agent_who_cannot_take_the_chat_is_refused_and_the_chat_stays() {
    let hub = TestHub::start().await;
    let (mut ann, mut carla, chat) = paired(&hub, "ann", 2, &hub, "Carla").await;
    // Bob is full (one chat, limit 1); Cy does not hold the category the chat was to move
    // into, nor does anyone hold a category that does not exist; Dan is away.
    let mut bob = hub.agent("bob", &["general"], 1).await;
    let (_dora, _) = hub.customer_in_chat("Dora", "general").await;
    bob.next_of("chat_started").await;
    let _cy = hub.agent("cyd", &["billing"], 2).await;
    let dan_token = hub.agent_account("dan", &["general"], 2).await;
    let mut dan = Ws::agent(&hub, &dan_token).await;
    let admin = hub.admin().await;
    let cyd = admin.agent_id("cyd").await;
    for (who, category, code) in [
        (admin.agent_id("bob").await, None, "agent_not_eligible"),
        (cyd.clone(), Some("general"), "agent_not_eligible"),
        (cyd.clone(), Some("no-such"), "unknown_category"),
        (admin.agent_id("dan").await, None, "agent_not_eligible"),
        (admin.agent_id("ann").await, None, "agent_not_eligible"),
        ("nobody".to_string(), None, "agent_not_eligible"),
    ] {
        ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": who, "category": category}))
            .await;
        let error = ann.next_of("error").await;
        assert_eq!(error["code"], code, "transfer to {who} into {category:?}: {error}");
    }
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_category": "billing", "category": "billing"}))
        .await;
    assert_eq!(ann.next_of("error").await["code"], "invalid_transfer");
    // Malformed asks: both targets, neither, a note too long, someone else's chat.
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": "x", "to_category": "billing"}))
        .await;
    assert_eq!(ann.next_of("error").await["code"], "invalid_transfer");
    ann.send(json!({"type": "transfer", "chat_id": chat})).await;
    assert_eq!(ann.next_of("error").await["code"], "invalid_transfer");
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_category": "billing", "note": "x".repeat(1001)}))
        .await;
    assert_eq!(ann.next_of("error").await["code"], "note_too_long");
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_category": "no-such"}))
        .await;
    assert_eq!(ann.next_of("error").await["code"], "unknown_category");
    let dora_chat = bob.drain().await;
    drop(dora_chat);
    dan.drain().await;

    // Nothing changed: the chat is Ann's, both sides still talk.
    assert_eq!(say(&mut carla, &chat, "still there?").await, 1);
    assert_eq!(ann.next_of("message").await["text"], "still there?");
    assert!(
        carla.drain().await.iter().all(|f| f["type"] != "transferred"),
        "the customer was told of no transfer"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_chat_goes_to_a_colleague_without_its_category_keeping_it_or_moving_into_theirs() {
    let hub = TestHub::start().await;
    let (mut ann, mut carla, chat) = talking(&hub, "I need a refund", "Ann here, one moment").await;
    // Neither Bob nor Cy holds the chat's category.
    let mut bob = hub.agent("bob", &["billing"], 2).await;
    let mut cy = hub.agent("cyd", &["technical", "billing"], 2).await;
    let admin = hub.admin().await;
    let (bob_id, cy_id) = (admin.agent_id("bob").await, admin.agent_id("cyd").await);

    // Ann's choices: every colleague online, with the categories they hold.
    ann.send(json!({"type": "transfer_targets", "chat_id": chat})).await;
    let targets = ann.next_of("transfer_targets").await;
    let listed: BTreeMap<&str, (bool, Vec<&str>)> = targets["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let cats = strs(&a["categories"]);
            (a["name"].as_str().unwrap(), (a["can_take"].as_bool().unwrap(), cats))
        })
        .collect();
    assert_eq!(
        listed,
        BTreeMap::from([
            ("BOB", (true, vec!["billing"])),
            ("CYD", (true, vec!["billing", "technical"]))
        ]),
        "{targets}"
    );

    // To Bob, keeping its category.
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": bob_id}))
        .await;
    assert_eq!(ann.next_of("chat_ended").await["reason"], "transferred");
    let started = bob.next_of("chat_started").await;
    assert_eq!(
        (started["chat_id"].clone(), started["category"].as_str()),
        (chat.clone(), Some("general")),
        "{started}"
    );
    assert_eq!(
        started["transfer"]["earlier_agents"],
        json!([{"name": "ANN", "through_seq": 2}]),
        "{started}"
    );
    assert_eq!(carla.next_of("transferred").await["peer_name"], "BOB");
    assert_eq!(say(&mut bob, &chat, "Bob in billing").await, 3);
    carla.next_of("message").await;

    // Bob hands it on to Cy, moving it into technical support: the chat goes on there.
    bob.send(json!({"type": "transfer", "chat_id": chat, "to_agent": cy_id, "category": "technical", "note": "tech"}))
        .await;
    assert_eq!(bob.next_of("chat_ended").await["reason"], "transferred");
    let technical = json!({"chat_id": chat, "category": "technical", "category_name": "Technical support"});
    let started = cy.next_showing("chat_started", technical).await;
    assert_eq!(
        started["transfer"]["earlier_agents"],
        json!([{"name": "ANN", "through_seq": 2}, {"name": "BOB", "through_seq": 3}]),
        "{started}"
    );
    assert_eq!(started["messages"].as_array().map(Vec::len), Some(3));
    assert_eq!(carla.next_of("transferred").await["peer_name"], "CYD");
    assert_eq!(say(&mut carla, &chat, "thanks").await, 4);
    assert_eq!(cy.next_of("message").await["seq"], 4);

    // The archive: kept, then moved.
    let record = archived_with_transfers(&hub, chat.as_str().unwrap(), 2).await;
    let moves: Vec<(Option<&str>, Option<&str>)> = record["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["to_agent_name"].as_str(), t["to_category"].as_str()))
        .collect();
    assert_eq!(moves, vec![(Some("BOB"), None), (Some("CYD"), Some("technical"))]);
    hub.stop().await;
}

#[tokio::test]
async fn a_chat_handed_to_a_category_waits_first_in_its_line_and_goes_on_with_the_next_agent() {
    let hub = TestHub::start().await;
    let (mut ann, mut carla, chat) = paired(&hub, "ann", 1, &hub, "Carla").await;
    assert_eq!(say(&mut carla, &chat, "I was double charged").await, 1);
    // Someone joined billing later than Carla came: Carla goes before them.
    let mut later = hub.customer_queued("Lee", "billing", 1).await;

    ann.send(json!({"type": "transfer", "chat_id": chat, "to_category": "billing", "note": "double charge"}))
        .await;
    assert_eq!(ann.next_of("chat_ended").await["reason"], "transferred");
    let told = carla.next_of("transferred").await;
    assert_eq!(
        (
            told["category"].as_str(),
            told["category_name"].as_str(),
            told.get("peer_name")
        ),
        (Some("billing"), Some("Billing"), None),
        "{told}"
    );
    carla
        .next_showing("queued", json!({"place": 1, "category": "billing"}))
        .await;
    assert_eq!(later.next_of("place").await["place"], 2, "Lee moved behind Carla");
    // Waiting, Carla is in no chat.
    carla.send(json!({"type": "message", "text": "hello?"})).await;
    assert_eq!(carla.next_of("error").await["code"], "not_in_chat");

    let mut bill = hub.agent("bill", &["billing"], 1).await;
    let started = bill.next_of("chat_started").await;
    assert_eq!(started["chat_id"], chat, "the same chat goes on: {started}");
    let transfer = json!({"from_name": "ANN", "note": "double charge", "category": "billing"});
    assert_shows(
        &started,
        json!({ "transfer": transfer }),
        "the transfer as Bill is told it",
    );
    assert_eq!(started["messages"][0]["text"], "I was double charged");
    carla
        .next_showing("chat_started", json!({"chat_id": chat, "peer_name": "BILL"}))
        .await;
    assert_eq!(say(&mut bill, &chat, "I see two charges").await, 2);
    assert_eq!(carla.next_of("message").await["seq"], 2);
    carla.send(json!({"type": "leave"})).await;
    carla.next_of("chat_ended").await;

    let record = archived_with_transfers(&hub, chat.as_str().unwrap(), 2).await;
    let transfers = record["transfers"].as_array().unwrap();
    let to_the_line = json!({"to_category": "billing", "to_agent_id": null});
    assert_shows(&transfers[0], to_the_line, &record.to_string());
    let taken_there = json!({"to_category": "billing", "to_agent_name": "BILL"});
    assert_shows(&transfers[1], taken_there, &record.to_string());
    // Both agents read the conversation they served; messages are there once each.
    for who in ["ann", "bill"] {
        let api = hub.login(who, "agent-password").await;
        let (status, body) = api.get(&format!("/api/conversations/{}", chat.as_str().unwrap())).await;
        assert_eq!(status, 200, "{who}: {body}");
    }
    let seqs: Vec<u64> = u64s_in(&record["messages"], "seq");
    assert_eq!(seqs, vec![1, 2]);
    hub.stop().await;
}

#[tokio::test]
async fn a_customer_who_leaves_the_line_after_a_transfer_ends_the_archived_chat() {
    let hub = TestHub::start().await;
    let (mut ann, mut carla, chat) = paired(&hub, "ann", 1, &hub, "Carla").await;
    say(&mut carla, &chat, "hi").await;
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_category": "billing"}))
        .await;
    carla.next_of("queued").await;
    carla.send(json!({"type": "leave"})).await;
    carla.next_of("removed").await;
    let admin = hub.admin().await;
    for _ in 0..100 {
        let (_, body) = admin
            .get(&format!("/api/conversations/{}", chat.as_str().unwrap()))
            .await;
        if !body["ended_at"].is_null() {
            assert_eq!(body["transfers"].as_array().map(Vec::len), Some(1), "{body}");
            return hub.stop().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the chat was never closed in the archive");
}

/// Across nodes and processes: Carla on a real hub process archiving to MongoDB, Ann on a
/// second node, Bob on a third. Ann hands the chat to Bob while Carla and Ann both keep
/// sending: seq has no gap and no repeat, Bob sees every line, and every acknowledged
/// message is archived exactly once (a line Ann sent as the transfer applied may be
/// refused or go unacknowledged; if stamped, it is in the chat and the archive too).
#[tokio::test]
async fn a_chat_handed_to_an_agent_on_another_node_loses_nothing_in_flight() {
    let (_process, bind, [alpha, beta], servers) = process_and_nodes(
        "cluster-transfers",
        Process::named("customers"),
        ["alpha", "beta"],
        |_| {},
    )
    .await;
    let store = &servers.store;
    let mut ann = alpha.agent("ann", &["general"], 1).await;
    let mut carla = customer_on(&bind, "Carla", "general").await;
    let chat = carla.next_of("chat_started").await["chat_id"].clone();
    ann.next_of("chat_started").await;
    let (mut bob, _) = available_agent(&beta, "bob", &["general"], 2).await;
    bob.next_of("profile").await;
    let bob_id = beta.admin().await.agent_id("bob").await;

    // Both send a burst; Ann hands the chat on in the middle of it.
    for i in 0..20 {
        carla
            .send(json!({"type": "message", "text": format!("c{i}"), "client_id": format!("c{i}")}))
            .await;
        if i % 2 == 0 {
            ann.send(
                json!({"type": "message", "chat_id": chat, "text": format!("a{i}"), "client_id": format!("a{i}")}),
            )
            .await;
        }
        if i == 10 {
            ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": bob_id, "note": "over to you"}))
                .await;
        }
    }
    let mut acked: Vec<u64> = vec![];
    let mut told = None;
    while acked.len() < 20 || told.is_none() {
        let frame = carla
            .next_matching(|f| ["ack", "error", "transferred"].contains(&f["type"].as_str().unwrap_or("")))
            .await;
        match frame["type"].as_str() {
            Some("ack") => acked.push(frame["seq"].as_u64().unwrap()),
            Some("transferred") => told = Some(frame),
            _ => panic!("a customer's message refused: {frame}"),
        }
    }
    assert_eq!(told.unwrap()["peer_name"], "BOB");
    // Ann: acknowledgements of what was stamped while she had the chat, then its end.
    let mut ann_frames = vec![];
    loop {
        let frame = ann
            .next_matching(|f| ["ack", "error", "chat_ended"].contains(&f["type"].as_str().unwrap_or("")))
            .await;
        let ended = frame["type"] == "chat_ended";
        ann_frames.push(frame);
        if ended {
            break;
        }
    }
    assert_eq!(ann_frames.last().unwrap()["reason"], "transferred");
    ann_frames.extend(ann.drain().await);
    for frame in &ann_frames {
        if frame["type"] == "ack" {
            acked.push(frame["seq"].as_u64().unwrap());
        } else if frame["type"] == "error" {
            assert!(
                matches!(frame["code"].as_str(), Some("not_your_chat" | "unknown_chat")),
                "only refusals for a chat no longer hers: {frame}"
            );
        }
    }

    let started = bob.next_of("chat_started").await;
    assert_eq!(started["chat_id"], chat);
    assert_eq!(started["transfer"]["note"], "over to you");
    let mut seen: BTreeMap<u64, String> = started["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["id"].as_str().unwrap().to_string()))
        .collect();
    // Bob reads every line up to the last one stamped; a line seen twice has one id.
    let highest = *acked.iter().max().unwrap();
    while seen.len() < highest as usize || seen.keys().next_back() < Some(&highest) {
        let frame = bob.next_of("message").await;
        let (seq, id) = (
            frame["seq"].as_u64().unwrap(),
            frame["id"].as_str().unwrap().to_string(),
        );
        if let Some(before) = seen.insert(seq, id.clone()) {
            assert_eq!(before, id, "seq {seq} named two messages");
        }
    }
    let stamped = seen.len() as u64;
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=stamped).collect::<Vec<_>>(),
        "no gap"
    );
    let next = say(&mut bob, &chat, "hello from beta").await;
    assert_eq!(next, stamped + 1, "seq goes on after the transfer");
    assert_eq!(carla.next_of("message").await["seq"], next);
    carla.send(json!({"type": "leave"})).await;
    carla.next_of("chat_ended").await;

    acked.sort_unstable();
    let unique: BTreeSet<u64> = acked.iter().copied().collect();
    assert_eq!(unique.len(), acked.len(), "nothing acknowledged twice: {acked:?}");
    let id = chat.as_str().unwrap().to_string();
    let mut archived: Vec<u64> = vec![];
    let mut record = None;
    for _ in 0..200 {
        if let Ok(c) = store.conversation(&id).await {
            archived = c.messages.iter().map(|m| m.seq).collect();
            if c.closed.is_some() && archived.len() as u64 >= next {
                record = Some(c);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let record = record.unwrap_or_else(|| panic!("the conversation was not archived whole: {archived:?}"));
    assert_eq!(archived, (1..=next).collect::<Vec<_>>(), "archived once each, in order");
    assert!(
        unique.iter().all(|seq| archived.contains(seq)),
        "every acknowledged message archived"
    );
    assert_eq!(record.transfers.len(), 1, "{record:?}");
    assert_eq!(record.transfers[0].to_agent_name.as_deref(), Some("BOB"));
    assert_eq!(record.opened.agent_name, "BOB");
    alpha.stop().await;
    beta.stop().await;
}

/// Across nodes: Ann (alpha) hands Carla (alpha) to billing's line; Bill, on beta, takes
/// her from there and the same chat goes on, its seq included.
#[tokio::test]
async fn a_chat_handed_to_a_category_goes_on_with_an_agent_on_another_node() {
    let ([alpha, beta], _servers) = nodes("cluster-transfers-category", ["alpha", "beta"], |_| {}).await;
    let (mut ann, mut carla, chat) = paired(&alpha, "ann", 1, &alpha, "Carla").await;
    assert_eq!(say(&mut carla, &chat, "refund?").await, 1);
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_category": "billing", "note": "refund"}))
        .await;
    assert_eq!(ann.next_of("chat_ended").await["reason"], "transferred");
    assert_eq!(carla.next_of("transferred").await["category"], "billing");
    assert_eq!(carla.next_of("queued").await["place"], 1);

    let (mut bill, _) = available_agent(&beta, "bill", &["billing"], 1).await;
    let started = bill.next_of("chat_started").await;
    assert_eq!(started["chat_id"], chat);
    assert_eq!(
        (
            started["transfer"]["from_name"].as_str(),
            started["transfer"]["note"].as_str()
        ),
        (Some("ANN"), Some("refund"))
    );
    // The line said before the transfer reaches Bill: in the snapshot or from the chat's log.
    let mut texts: Vec<String> = strs_in(&started["messages"], "text")
        .into_iter()
        .map(String::from)
        .collect();
    if texts.is_empty() {
        texts.push(bill.next_of("message").await["text"].as_str().unwrap().to_string());
    }
    assert_eq!(texts, vec!["refund?".to_string()]);
    carla
        .next_showing("chat_started", json!({"chat_id": chat, "peer_name": "BILL"}))
        .await;
    assert_eq!(say(&mut bill, &chat, "on it").await, 2);
    assert_eq!(carla.next_of("message").await["text"], "on it");
    carla.send(json!({"type": "leave"})).await;
    carla.next_of("chat_ended").await;
    let record = archived_with_transfers(&alpha, chat.as_str().unwrap(), 2).await;
    assert_eq!(record["agent_name"], "BILL", "{record}");
    alpha.stop().await;
    beta.stop().await;
}

/// Across nodes: Ann (alpha) hands Carla (alpha) to billing's line and Bill takes her on
/// beta, which kept no log of the chat: its lines reach his node after the pairing. Once
/// read, his snapshots name Ann's line hers and his own by nobody, and say where her turn
/// ended.
#[tokio::test]
async fn across_nodes_the_agent_who_takes_a_chat_from_a_line_reads_the_earlier_agents_lines_named() {
    let ([alpha, beta], _servers) = nodes("cluster-line-named", ["alpha", "beta"], |_| {}).await;
    let (mut ann, mut carla, chat) = talking(&alpha, "my invoice is wrong", "let me find billing").await;
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_category": "billing", "note": ""}))
        .await;
    assert_eq!(ann.next_of("chat_ended").await["reason"], "transferred");
    assert_eq!(carla.next_of("queued").await["place"], 1);
    let (mut bill, bill_token) = available_agent(&beta, "bill", &["billing"], 1).await;
    let started = bill.next_of("chat_started").await;
    assert_eq!(started["chat_id"], chat, "{started}");
    // Ann's line comes with the chat or, read from its log, right after it.
    let with_it = started["messages"]
        .as_array()
        .is_some_and(|m| m.iter().any(|l| l["seq"] == 2));
    if !with_it {
        bill.next_matching(|f| f["type"] == "message" && f["seq"] == 2).await;
    }
    carla.next_of("chat_started").await;
    let snapshot = answered_and_reloaded(bill, "Bill here", &mut carla, &beta, &bill_token, &chat).await;
    assert_eq!(
        snapshot["transfer"]["earlier_agents"],
        json!([{"name": "ANN", "through_seq": 2}]),
        "{snapshot}"
    );
    alpha.stop().await;
    beta.stop().await;
}
