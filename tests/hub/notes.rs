//! Internal notes over the websocket: an agent's note reaches their own connections once
//! archived and never the customer's socket, nor the chat the customer resumes; the archive
//! keeps it, marked as a note; an agent handed the chat gets its notes, on one node and
//! across nodes. A property over random chats: whatever agents and customers do, no frame
//! a customer receives holds a note's text, nor does the transcript mailed to them.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::*;
use crate::transcript_mail::{ask, transcript_settings};

/// Sends a note from `agent` in `chat` and waits for it to come back (archived).
async fn note(agent: &mut Ws, chat: &(impl serde::Serialize + ?Sized), text: &str) -> Value {
    agent
        .send(json!({"type": "note", "chat_id": chat, "text": text, "client_id": text}))
        .await;
    agent
        .next_matching(|f| (f["type"] == "note" || f["type"] == "error") && f["client_id"] == text)
        .await
}

#[tokio::test]
async fn a_note_reaches_the_agent_and_the_archive_never_the_customer() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let (mut carla, chat) = hub.carla_said_to(&mut ann, "hello").await;

    let noted = note(&mut ann, &chat, "VIP: refund without asking").await;
    assert_eq!(noted["type"], "note", "{noted}");
    assert_eq!(
        (
            noted["chat_id"].clone(),
            noted["agent_name"].as_str(),
            noted["text"].as_str()
        ),
        (chat.clone(), Some("ANN"), Some("VIP: refund without asking"))
    );
    assert!(noted["id"].is_string() && noted["at"].is_i64(), "{noted}");
    // Bad notes are refused like bad messages, and the connection lives on.
    let refused = note(&mut ann, &chat, "   ").await;
    assert_eq!(refused["code"], "empty_message");
    ann.send(json!({"type": "note", "chat_id": "nope", "text": "x"})).await;
    assert_eq!(ann.next_of("error").await["code"], "unknown_chat");
    // A customer may not write notes.
    carla.send(json!({"type": "note", "chat_id": chat, "text": "x"})).await;
    assert_eq!(carla.next_of("error").await["code"], "not_allowed");

    // Nothing of it reached the customer, live or when they come back.
    let frames = carla.drain().await;
    assert!(
        frames.iter().all(|f| !f.to_string().contains("VIP")),
        "the customer saw a note: {frames:?}"
    );
    let token = carla.token.clone().unwrap();
    drop(carla);
    let mut back = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    back.send(json!({"type": "resume", "token": token, "last_seq": 0}))
        .await;
    let resumed = back.next_of("resumed").await;
    assert!(!resumed.to_string().contains("VIP"), "{resumed}");
    assert_eq!(resumed["chat"]["messages"].as_array().map(Vec::len), Some(1));

    // The archive has it, marked as a note, apart from the messages.
    let admin = hub.admin().await;
    let (status, record) = admin
        .get(&format!("/api/conversations/{}", chat.as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(record["notes"][0]["text"], "VIP: refund without asking", "{record}");
    assert_eq!(record["notes"][0]["agent_name"], "ANN");
    assert!(
        record["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["text"] != "VIP: refund without asking"),
        "{record}"
    );

    // Ann reloads: her chat comes back with its note.
    let ann_token = hub.login("ann", "agent-password").await.token;
    let mut again = Ws::agent(&hub, &ann_token).await;
    let notes = again.next_of("notes").await;
    assert_eq!(
        (notes["chat_id"].clone(), notes["notes"][0]["text"].as_str()),
        (chat, Some("VIP: refund without asking"))
    );
    hub.stop().await;
}

/// Ann hands `chat` to "bob" (general, one chat), who signs in on `node`: bob is given the
/// chat, then its notes. Returns bob and the notes frame.
async fn handed_to_bob(node: &TestHub, ann: &mut Ws, chat: &str) -> (Ws, Value) {
    let mut bob = node.agent("bob", &["general"], 1).await;
    let bob_id = node.admin().await.agent_id("bob").await;
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": bob_id}))
        .await;
    bob.next_of("chat_started").await;
    let notes = bob.next_of("notes").await;
    (bob, notes)
}

#[tokio::test]
async fn an_agent_handed_a_chat_gets_its_notes() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let (mut carla, chat) = hub.paired_customer(&mut ann, "Carla", "general").await;
    note(&mut ann, &chat, "asked twice already").await;
    let (mut bob, notes) = handed_to_bob(&hub, &mut ann, &chat).await;
    assert_eq!(notes["notes"][0]["text"], "asked twice already");
    assert_eq!(notes["notes"][0]["agent_name"], "ANN");
    let from_bob = note(&mut bob, &chat, "Bob: sent the refund").await;
    assert_eq!(from_bob["type"], "note");
    assert!(
        carla
            .drain()
            .await
            .iter()
            .all(|f| !f.to_string().contains("asked twice"))
    );
    hub.stop().await;
}

#[tokio::test]
async fn across_nodes_an_agent_handed_a_chat_gets_the_notes_written_on_another_node() {
    let (_cluster, [alpha, beta], mut ann, mut carla, chat) =
        Cluster::ann_chatting_with_carla("cluster-notes", 0).await;
    assert_eq!(note(&mut ann, &chat, "needs a callback").await["type"], "note");
    let (_bob, notes) = handed_to_bob(&beta, &mut ann, chat.as_str().unwrap()).await;
    assert_eq!(notes["notes"][0]["text"], "needs a callback");
    assert!(carla.drain().await.iter().all(|f| !f.to_string().contains("callback")));
    alpha.stop().await;
    beta.stop().await;
}

/// One step of a random chat: who does what.
#[derive(Debug, Clone)]
enum Step {
    CustomerSays(usize),
    AgentSays(usize),
    AgentNotes(usize),
    CustomerReloads(usize),
    Transfer(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3usize).prop_map(Step::CustomerSays),
        3 => (0..3usize).prop_map(Step::AgentSays),
        4 => (0..3usize).prop_map(Step::AgentNotes),
        1 => (0..3usize).prop_map(Step::CustomerReloads),
        1 => (0..3usize).prop_map(Step::Transfer),
    ]
}

/// Three customers with two agents: after any steps, no frame a customer received (live,
/// or in a resume) holds a note's text, and every note came back to the agent who wrote it;
/// then each customer asks for their transcript and their chat ends: no mail holds a note.
async fn no_note_reaches_a_customer(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let port = crate::archive::free_port();
    let smtp = SmtpSink::start(port).await;
    let hub = TestHub::with(transcript_settings(port)).await;
    let mut agents = [
        hub.agent("ann", &["general"], 3).await,
        hub.agent("bob", &["general"], 3).await,
    ];
    let ids = [
        hub.admin().await.agent_id("ann").await,
        hub.admin().await.agent_id("bob").await,
    ];
    let mut customers = vec![];
    let mut chats = vec![];
    // Who has each chat (index into agents).
    let mut holder = vec![];
    for i in 0..3 {
        let mut c = hub.customer(&format!("C{i}"), "general").await;
        let started = c.next_of("chat_started").await;
        chats.push(started["chat_id"].clone());
        customers.push(c);
    }
    // Both agents listen for QUIET at once (as the customers below).
    let drained = futures_util::future::join_all(agents.iter_mut().map(|a| a.drain())).await;
    for (a, frames) in drained.into_iter().enumerate() {
        for f in frames {
            if f["type"] == "chat_started" {
                let i = chats.iter().position(|c| *c == f["chat_id"]).unwrap();
                holder.push((i, a));
            }
        }
    }
    holder.sort_unstable();
    let mut holder: Vec<usize> = holder.into_iter().map(|(_, a)| a).collect();
    prop_assert_eq!(holder.len(), 3);
    let mut received: Vec<Value> = vec![];
    for (n, s) in steps.iter().enumerate() {
        match *s {
            Step::CustomerSays(i) => {
                customers[i]
                    .send(json!({"type": "message", "text": format!("hello {n}")}))
                    .await;
            }
            Step::AgentSays(i) => {
                agents[holder[i]]
                    .send(json!({"type": "message", "chat_id": chats[i], "text": format!("answer {n}")}))
                    .await;
            }
            Step::AgentNotes(i) => {
                let text = format!("SECRET-{n}");
                let back = note(&mut agents[holder[i]], &chats[i], &text).await;
                prop_assert_eq!(&back["type"], "note", "{}", back);
            }
            Step::CustomerReloads(i) => {
                let token = customers[i].token.clone().unwrap();
                received.extend(customers[i].drain().await);
                let mut back = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
                back.send(json!({"type": "resume", "token": token, "last_seq": 0}))
                    .await;
                received.push(back.next_of("resumed").await);
                back.token = Some(token);
                customers[i] = back;
            }
            Step::Transfer(i) => {
                let to = 1 - holder[i];
                agents[holder[i]]
                    .send(json!({"type": "transfer", "chat_id": chats[i], "to_agent": ids[to], "note": "t"}))
                    .await;
                let answer = agents[holder[i]]
                    .next_matching(|f| f["type"] == "chat_ended" || f["type"] == "error")
                    .await;
                if answer["type"] == "chat_ended" {
                    holder[i] = to;
                }
            }
        }
    }
    // Each customer asks for their transcript; their chat ends; one mail each.
    for (i, c) in customers.iter_mut().enumerate() {
        let asked = ask(c, Some(&format!("c{i}@example.com"))).await;
        prop_assert_eq!(&asked["type"], "transcript_requested", "{}", asked);
    }
    for (i, chat) in chats.iter().enumerate() {
        agents[holder[i]]
            .send(json!({"type": "end_chat", "chat_id": chat}))
            .await;
        customers[i].next_of("chat_ended").await;
    }
    // Every customer listens for QUIET at once, not one after another.
    let drained = futures_util::future::join_all(customers.iter_mut().map(|c| c.drain())).await;
    for (c, frames) in customers.iter_mut().zip(drained) {
        received.extend(frames);
        received.append(&mut c.seen);
    }
    for frame in &received {
        prop_assert!(
            !frame.to_string().contains("SECRET"),
            "a customer received a note: {}",
            frame
        );
    }
    let mut to: Vec<String> = vec![];
    for raw in smtp.wait_for(3).await {
        let mail = parse_mail(&raw);
        prop_assert!(
            !raw.contains("SECRET") && !mail.text.contains("SECRET") && !mail.html.contains("SECRET"),
            "a transcript mail holds a note: {}",
            mail.text
        );
        let i = mail.to.trim_start_matches('c').chars().next().unwrap();
        prop_assert!(mail.text.contains(&format!("C{i}")), "{}", mail.text);
        to.push(mail.to);
    }
    to.sort();
    prop_assert_eq!(to, ["c0@example.com", "c1@example.com", "c2@example.com"]);
    hub.stop().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]
    #[test]
    fn no_note_ever_reaches_a_customer(steps in prop::collection::vec(step(), 1..25)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(no_note_reaches_a_customer(steps))?;
        std::thread::sleep(Duration::from_millis(1));
    }
}
