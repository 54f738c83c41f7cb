//! "An acknowledged message is never lost": a full archive buffer during a MongoDB
//! outage, and a hub stopped (SIGTERM) or killed (SIGKILL) during one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::json;
use switchboard::store::SharedStore;

use crate::archive::{MongoServer, TempDir, health, mongo_store};
use crate::buddy::invite_and_accept;
use crate::common::*;

/// Sends one customer message and waits for its fate: `Some(id)` once acknowledged
/// (the sender's `ack`), `None` when it was refused with `archive_unavailable`.
async fn send_one(c: &mut Ws, text: &str) -> Option<String> {
    send_frame(c, json!({"type": "message", "text": text})).await
}

/// Sends a message frame and waits for its fate, as [`send_one`] does.
pub(crate) async fn send_frame(c: &mut Ws, mut message: serde_json::Value) -> Option<String> {
    let text = message["text"].as_str().unwrap().to_string();
    // The acknowledgement names the message by the client's id (the texts here are unique).
    message["client_id"] = json!(text);
    c.send(message).await;
    loop {
        let Some(frame) = c.recv_within(Duration::from_secs(30)).await else {
            panic!("message {text:?} was neither acknowledged nor refused");
        };
        match frame["type"].as_str() {
            Some("ack") if frame["client_id"] == text => return Some(frame["id"].as_str().unwrap().to_string()),
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

/// A hub on its own MongoDB whose archive buffer holds 100 events, with its spool in a
/// fresh directory (returned to be kept while the hub runs).
async fn hub_with_a_tiny_archive_buffer(tag: &str) -> (MongoServer, SharedStore, TestHub, TempDir) {
    let (mongo, store) = MongoServer::with_store().await;
    let spool = TempDir::new(tag);
    let dir = spool.0.clone();
    let hub = TestHub::with_store(store.clone(), move |s| {
        s.archive.buffer = 100;
        s.store.data_dir = dir;
    })
    .await;
    (mongo, store, hub, spool)
}

/// A tiny archive buffer, MongoDB stopped, one agent with a limit of
/// one chat and nine customers waiting. Messages are sent until the buffer refuses them,
/// then the agent ends chat after chat (each end and the next pairing need room in the
/// archive). Once MongoDB is back every conversation that started is archived, opened and
/// closed, with every acknowledged message; the refusals showed in health and metrics.
#[tokio::test]
async fn a_full_archive_buffer_never_drops_an_opening_a_closing_or_an_acknowledged_message() {
    let (mut mongo, store, hub, _spool) = hub_with_a_tiny_archive_buffer("full-buffer").await;
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

    mongo.stop().await;
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
    for (next, customer) in customers.iter_mut().enumerate().skip(1) {
        let chat = chats.last().unwrap().1.clone();
        agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
        agent.next_of("chat_ended").await;
        live = None;
        let Some(id) = chat_started_within(customer, QUIET).await else {
            break;
        };
        agent.next_of("chat_started").await;
        chats.push((next, id.clone()));
        live = Some(next);
        if let Some(m) = send_one(customer, &format!("while full {next}")).await {
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
        let stored: HashSet<_> = record.messages.iter().map(|m| m.id.to_string()).collect();
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

/// The real binary on the MongoDB at `uri`, database `db`, with `dir` as its DATA_DIR
/// (the spool) and its log in `dir/hub.log`.
async fn mongo_hub(uri: &str, db: &str, dir: &std::path::Path) -> HubProcess {
    mongo_hub_with(uri, db, dir, &[]).await
}

/// [`mongo_hub`] with further settings (`more`).
async fn mongo_hub_with(uri: &str, db: &str, dir: &std::path::Path, more: &[(&str, &str)]) -> HubProcess {
    let mut envs = vec![
        ("STORE", "mongodb"),
        ("MONGODB_URI", uri),
        ("MONGODB_DB", db),
        ("DATA_DIR", dir.to_str().unwrap()),
    ];
    envs.extend_from_slice(more);
    HubProcess::start(Some(dir), &envs).await
}

/// MongoDB stops, messages go on and are acknowledged, then the hub
/// is stopped with `signal` (TERM or KILL). MongoDB comes back, the hub starts again on
/// the same DATA_DIR, and every acknowledged message ends up archived exactly once.
async fn a_hub_stopped_during_an_outage_loses_no_acknowledged_message(signal: &str) {
    let mut mongo = MongoServer::start().await;
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let dir = TempDir::new("spool");
    let hub = mongo_hub(&mongo.uri(), &db, &dir.0).await;
    let (_agent, mut c, chat) = hub.agent_and_customer_in_a_chat().await;
    let mut acked = vec![];
    for i in 0..10 {
        acked.push(send_one(&mut c, &format!("before {i}")).await.expect("the store is up"));
    }

    mongo.stop().await;
    // Sent during the outage: each is acknowledged once it is on local disk.
    for i in 0..150 {
        c.send(json!({"type": "message", "text": format!("during {i}")})).await;
    }
    while let Some(frame) = c.recv_within(Duration::from_secs(20)).await {
        match frame["type"].as_str() {
            Some("ack") => {
                acked.push(frame["id"].as_str().unwrap().to_string());
                if acked.len() == 160 {
                    break;
                }
            }
            Some("error") => panic!("refused during the outage: {frame}"),
            _ => {}
        }
    }
    assert!(acked.len() > 10, "nothing was acknowledged during the outage");
    let mut hub = hub;
    hub.signal(signal);
    let status = hub.child.wait().unwrap();
    drop(hub);

    let (hub, stored) = Restart(&mut mongo, &db, &dir)
        .archived(
            &chat,
            |m| m.id.to_string(),
            |ids| acked.iter().all(|id| ids.contains(id)),
        )
        .await;
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a message was archived twice");
    let lost = acked.iter().filter(|id| !unique.contains(id)).count();
    eprintln!(
        "SIG{signal} during an outage: {} acknowledged ({} during the outage), {lost} lost",
        acked.len(),
        acked.len() - 10
    );
    assert_eq!(lost, 0, "{lost} of {} acknowledged messages lost", acked.len());
    if signal == "TERM" {
        assert!(status.success(), "a clean stop exits 0: {status}");
        let log = std::fs::read_to_string(dir.0.join("hub.log")).unwrap();
        assert!(
            log.contains("spooled") && log.contains("replayed"),
            "the log says what was kept for the next start:\n{log}"
        );
    }
    drop(hub);
}

/// What a stopped hub starts again on: its MongoDB (stopped or not), database and DATA_DIR.
struct Restart<'a>(&'a mut MongoServer, &'a str, &'a TempDir);

impl Restart<'_> {
    /// Restarts MongoDB and a hub on the same DATA_DIR, then reads the chat's archived messages
    /// (each as `field` picks) until `done` holds or a minute has passed: the restarted hub
    /// replays its spool once MongoDB answers, which on a loaded machine (the store restarted a
    /// moment ago) can take a while. Returns the hub, kept up until the caller drops it, and
    /// what was read last.
    async fn archived(
        self,
        chat: &str,
        field: impl Fn(&switchboard::store::ArchivedMessage) -> String,
        done: impl Fn(&[String]) -> bool,
    ) -> (HubProcess, Vec<String>) {
        use switchboard::store::ArchiveStore;
        let Restart(mongo, db, dir) = self;
        mongo.restart().await;
        let hub = mongo_hub(&mongo.uri(), db, &dir.0).await;
        let store = switchboard::store::MongoStore::connect(&mongo.uri(), db).await.unwrap();
        let mut read: Vec<String> = vec![];
        for _ in 0..600 {
            if let Ok(record) = store.conversation(chat).await {
                read = record.messages.iter().map(&field).collect();
                if done(&read) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (hub, read)
    }
}

#[tokio::test]
async fn sigterm_during_a_mongodb_outage_loses_no_acknowledged_message() {
    a_hub_stopped_during_an_outage_loses_no_acknowledged_message("TERM").await;
}

#[tokio::test]
async fn sigkill_during_a_mongodb_outage_loses_no_acknowledged_message() {
    a_hub_stopped_during_an_outage_loses_no_acknowledged_message("KILL").await;
}

/// A stop while a store write hangs: shutdown waits for that write to time out
/// (`ARCHIVE_WRITE_TIMEOUT_MS`, 15 s by default, 3 s here) and spools what the writer
/// holds, rather than giving up first (it waited a fixed 10 s, less than the default
/// timeout: `server::archive_drain` now outlasts any timeout) and exiting with the events
/// in memory. The message was never acknowledged (the write hung), but the chat's event
/// is kept and archived after the next start.
#[tokio::test]
async fn sigterm_during_a_hung_store_write_spools_what_the_writer_holds() {
    const WRITE_TIMEOUT: Duration = Duration::from_secs(3);
    let mut mongo = MongoServer::start().await;
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let dir = TempDir::new("hung-spool");
    // A long server selection: with MongoDB gone, a write waits for it (the hub's write
    // timeout ends it) instead of failing within the hub's 2 s default.
    let hanging = format!("{}/?serverSelectionTimeoutMS=120000", mongo.uri());
    let timeout = WRITE_TIMEOUT.as_millis().to_string();
    let hub = mongo_hub_with(&hanging, &db, &dir.0, &[("ARCHIVE_WRITE_TIMEOUT_MS", &timeout)]).await;
    let (mut agent, mut c, chat) = hub.agent_and_customer_in_a_chat().await;
    send_one(&mut c, "before").await.expect("the store is up");

    mongo.stop().await;
    c.send(json!({"type": "message", "text": "held by a hung write"})).await;
    // Relayed: the hub holds it and its write hangs. Waited for by its text: the agent's
    // copy of "before" is still unread, and a SIGTERM sent on seeing that copy could
    // reach the hub before it read this message (then only the closing is spooled, and
    // rightly so: this message was never acknowledged, and nothing is archived of it).
    agent
        .next_matching(|f| f["type"] == "message" && f["text"] == "held by a hung write")
        .await;
    let mut hub = hub;
    hub.signal("TERM");
    let stopping = std::time::Instant::now();
    let deadline = stopping + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = hub.child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the hub did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "a clean stop exits 0: {status}");
    // It waited for the hung write (sent before the stop) to time out, not less.
    let waited = stopping.elapsed();
    assert!(
        waited >= WRITE_TIMEOUT / 2,
        "stopped after {waited:?}, before the hung write timed out"
    );
    drop(hub);

    let (hub, texts) = Restart(&mut mongo, &db, &dir)
        .archived(&chat, |m| m.text.clone(), |texts| texts.len() == 2)
        .await;
    let log = std::fs::read_to_string(dir.0.join("hub.log")).unwrap();
    assert_eq!(texts, ["before", "held by a hung write"], "the hub said:\n{log}");
    drop(hub);
}

/// A hub on MongoDB whose DATA_DIR cannot hold the spool does not start (rather than
/// run without the disk its outage acknowledgements depend on), and says which setting.
#[tokio::test]
async fn a_data_dir_that_cannot_hold_the_spool_stops_start_up_naming_it() {
    let scratch = TempDir::new("not-a-dir");
    let file = scratch.0.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let store = mongo_store(&crate::archive::mongo_uri()).await;
    let mut settings = switchboard::config::Settings::for_tests();
    settings.store.data_dir = file;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        switchboard::run(listener, settings, store, shutdown),
    )
    .await
    .expect("start-up fails at once");
    let error = result.expect_err("the hub refuses to start").to_string();
    assert!(error.contains("DATA_DIR"), "{error}");
}

/// The same rule for buddy chats: while the archive cannot hold a new conversation,
/// accepting an invitation is refused with `archive_unavailable` and the invitation
/// stays open; accepted once the archive has room, the chat is archived whole.
#[tokio::test]
async fn a_full_archive_refuses_to_open_a_buddy_chat_and_opens_it_once_there_is_room() {
    let (mut mongo, store, hub, _spool) = hub_with_a_tiny_archive_buffer("full-buddy").await;
    let join = |name: &'static str| {
        let url = hub.ws_url("/ws/buddy");
        async move {
            let mut ws = Ws::connect(&url, &[]).await.unwrap();
            ws.send(json!({"type": "buddy_join", "name": name})).await;
            let id = ws.next_of("buddy_welcome").await["you"].as_u64().unwrap();
            (ws, id)
        }
    };
    let (mut a, _) = join("Ada").await;
    let (mut b, b_id) = join("Bo").await;
    invite_and_accept(&mut a, &mut b, b_id).await;
    let first = a.chat_id_in("buddy_chat_started").await;

    mongo.stop().await;
    let mut acked = vec![];
    for n in 0.. {
        assert!(n < 1_000, "a buffer of 100 never refused a message");
        let frame = json!({"type": "message", "chat_id": first, "text": format!("m{n}")});
        match send_frame(&mut a, frame).await {
            Some(id) => acked.push(id),
            None => break,
        }
    }
    a.send(json!({"type": "end_chat", "chat_id": first})).await;
    b.next_of("buddy_chat_ended").await;
    let inv = invite_and_accept(&mut a, &mut b, b_id).await;
    assert_eq!(b.next_of("error").await["code"], "archive_unavailable");

    mongo.restart().await;
    let mut second = None;
    'retry: for _ in 0..600 {
        b.send(json!({"type": "accept", "invitation_id": inv})).await;
        // Either the chat starts, or the accept is refused again (and retried shortly).
        while let Some(frame) = b.recv_within(Duration::from_secs(5)).await {
            if frame["type"] == "buddy_chat_started" {
                second = Some(frame["chat_id"].as_str().unwrap().to_string());
                break 'retry;
            }
            if frame["type"] == "error" {
                assert_eq!(frame["code"], "archive_unavailable", "{frame}");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = second.expect("the invitation was accepted once the archive had room");
    let frame = json!({"type": "message", "chat_id": second, "text": "hello again"});
    let last = send_frame(&mut b, frame).await.expect("the store is back");
    b.send(json!({"type": "end_chat", "chat_id": second})).await;
    a.next_of("buddy_chat_ended").await;
    hub.stop().await;

    let first = store.conversation(&first).await.expect("the first chat is archived");
    let stored: HashSet<_> = first.messages.iter().map(|m| m.id.to_string()).collect();
    assert!(
        acked.iter().all(|id| stored.contains(id)),
        "an acknowledged message was lost"
    );
    assert!(first.closed.is_some());
    let second = store.conversation(&second).await.expect("the second chat is archived");
    assert_eq!(
        second.messages.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        vec![last]
    );
    assert!(second.closed.is_some());
}
