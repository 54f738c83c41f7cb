//! "An acknowledged message is never lost": a full archive buffer during a MongoDB
//! outage, and a hub stopped (SIGTERM) or killed (SIGKILL) during one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::json;

use crate::archive::{MongoServer, TempDir, health, mongo_store};
use crate::common::*;

/// Sends one customer message and waits for its fate: `Some(id)` once acknowledged
/// (the sender's copy), `None` when it was refused with `archive_unavailable`.
async fn send_one(c: &mut Ws, text: &str) -> Option<String> {
    c.send(json!({"type": "message", "text": text})).await;
    loop {
        let Some(frame) = c.recv_within(Duration::from_secs(30)).await else {
            panic!("message {text:?} was neither acknowledged nor refused");
        };
        match frame["type"].as_str() {
            Some("message") if frame["text"] == text => return Some(frame["id"].as_str().unwrap().to_string()),
            Some("error") => {
                assert_eq!(frame["code"], "archive_unavailable", "{frame}");
                return None;
            }
            _ => c.seen.push(frame),
        }
    }
}

async fn metric(hub: &TestHub, name: &str) -> f64 {
    let text = reqwest::get(hub.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

/// The chat id of a `chat_started` frame, if one comes within `wait`.
async fn chat_started_within(c: &mut Ws, wait: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = c.recv_within(left).await?;
        if frame["type"] == "chat_started" {
            return Some(frame["chat_id"].as_str().unwrap().to_string());
        }
        c.seen.push(frame);
    }
}

/// Issue 13, item 10: a tiny archive buffer, MongoDB stopped, one agent with a limit of
/// one chat and nine customers waiting. Messages are sent until the buffer refuses them,
/// then the agent ends chat after chat (each end and the next pairing need room in the
/// archive). Once MongoDB is back every conversation that started is archived, opened and
/// closed, with every acknowledged message; the refusals showed in health and metrics.
#[tokio::test]
async fn a_full_archive_buffer_never_drops_an_opening_a_closing_or_an_acknowledged_message() {
    let mut mongo = MongoServer::start().await;
    let store = mongo_store(&mongo.uri()).await;
    let spool = TempDir::new("full-buffer");
    let dir = spool.0.clone();
    let hub = TestHub::with_store(store.clone(), move |s| {
        s.archive_buffer = 100;
        s.data_dir = dir;
    })
    .await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let mut customers = vec![];
    for i in 0..10 {
        customers.push(hub.customer(&format!("C{i}"), "general").await);
    }
    let mut chats: Vec<(usize, String)> = vec![];
    let first = chat_started_within(&mut customers[0], Duration::from_secs(5))
        .await
        .expect("the first customer is paired");
    agent.next_of("chat_started").await;
    chats.push((0, first));
    // chat id → ids of the messages acknowledged in it
    let mut acked: HashMap<String, Vec<String>> = HashMap::new();

    mongo.stop();
    let mut n = 0;
    loop {
        n += 1;
        assert!(n < 1_000, "a buffer of 100 never refused a message");
        match send_one(&mut customers[0], &format!("m{n}")).await {
            Some(id) => acked.entry(chats[0].1.clone()).or_default().push(id),
            None => break,
        }
    }
    let h = health(&hub).await;
    assert_eq!(h["archive_overflowing"], true, "health shows the refusals: {h}");
    assert!(
        metric(&hub, "switchboard_archive_refused_total").await >= 1.0,
        "the refused counter counts them"
    );

    // The agent ends chats while the store is down and the buffer full. `live` is the
    // customer whose chat runs, `None` once it ended and the next one waits.
    let mut live = Some(0);
    for next in 1..10 {
        let chat = chats.last().unwrap().1.clone();
        agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
        agent.next_of("chat_ended").await;
        live = None;
        let Some(id) = chat_started_within(&mut customers[next], QUIET).await else {
            break;
        };
        agent.next_of("chat_started").await;
        chats.push((next, id.clone()));
        live = Some(next);
        if let Some(m) = send_one(&mut customers[next], &format!("while full {next}")).await {
            acked.entry(id).or_default().push(m);
        }
    }

    // MongoDB is back: every customer still waiting is served in turn.
    mongo.restart().await;
    loop {
        let who = match live {
            Some(who) => who,
            None => {
                let who = chats.last().unwrap().0 + 1;
                let id = chat_started_within(&mut customers[who], Duration::from_secs(60))
                    .await
                    .expect("a waiting customer is paired once the archive has room");
                agent.next_of("chat_started").await;
                chats.push((who, id));
                who
            }
        };
        let chat = chats.last().unwrap().1.clone();
        let mut sent = 0;
        while sent < 3 {
            if let Some(m) = send_one(&mut customers[who], &format!("after {who}.{sent}")).await {
                acked.entry(chat.clone()).or_default().push(m);
                sent += 1;
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
        agent.next_of("chat_ended").await;
        live = None;
        if who == 9 {
            break;
        }
    }
    let mut caught_up = false;
    for _ in 0..300 {
        if health(&hub).await["archive_backlog"] == 0 {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "the backlog is written once MongoDB is back");

    let mut lost = 0;
    let total: usize = acked.values().map(Vec::len).sum();
    for (_, chat) in &chats {
        let record = store
            .conversation(chat)
            .await
            .unwrap_or_else(|e| panic!("conversation {chat} is not archived ({e}); its opening was dropped"));
        assert!(record.closed.is_some(), "conversation {chat} has no closing");
        let stored: HashSet<_> = record.messages.iter().map(|m| m.id.clone()).collect();
        assert_eq!(stored.len(), record.messages.len(), "no message is archived twice");
        lost += acked
            .get(chat)
            .map_or(0, |ids| ids.iter().filter(|id| !stored.contains(*id)).count());
    }
    assert_eq!(chats.len(), 10, "every customer was served");
    assert_eq!(lost, 0, "{lost} of {total} acknowledged messages lost");
    eprintln!(
        "full buffer: {total} messages acknowledged in {} chats, {lost} lost",
        chats.len()
    );
    hub.stop().await;
}
