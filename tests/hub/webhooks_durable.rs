//! Webhook events outlive the node that made them: an event whose action was acknowledged
//! (a chat line acked to its sender, an HTTP 2xx) reaches the receiver even when the node is
//! killed (SIGKILL) right after, during a MongoDB outage or while the store holds the
//! writes that would have made its deliveries. The node's webhook journal (`DATA_DIR`)
//! hands them to the store when it starts again.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::archive::{MongoServer, TempDir};
use crate::common::*;
use crate::durability::send_frame;
use crate::webhooks::{delivered_within, leave_offline_message, receiver, register};

/// The real binary on the MongoDB at `uri` (database `db`), its DATA_DIR (and log) in
/// `dir`, allowed to send webhooks to the test's loopback receiver.
async fn hub_on(uri: &str, db: &str, dir: &std::path::Path) -> HubProcess {
    HubProcess::start(
        Some(dir),
        &[
            ("STORE", "mongodb"),
            ("MONGODB_URI", uri),
            ("MONGODB_DB", db),
            ("DATA_DIR", dir.to_str().unwrap()),
            ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ],
    )
    .await
}

/// Sends `text` on `ws` (to `chat` when it is the agent's) and waits for its `ack`: the id.
async fn acked(ws: &mut Ws, chat: Option<&str>, text: &str) -> String {
    let mut frame = json!({"type": "message", "text": text});
    if let Some(chat) = chat {
        frame["chat_id"] = json!(chat);
    }
    send_frame(ws, frame)
        .await
        .unwrap_or_else(|| panic!("{text:?} was refused"))
}

/// The values of `field` in the `data` of the deliveries that came, once every one of
/// `wanted` is among them (fails after `wait`, naming what is missing).
async fn until_all_delivered(
    got: &std::sync::Arc<std::sync::Mutex<crate::webhooks::Received>>,
    field: &str,
    wanted: &[String],
    wait: Duration,
) -> HashSet<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let seen: HashSet<String> = delivered_within(got, 0, wait)
            .await
            .iter()
            .filter_map(|(_, body): &(_, Value)| body["data"][field].as_str().map(String::from))
            .collect();
        let missing: Vec<&String> = wanted.iter().filter(|id| !seen.contains(*id)).collect();
        if missing.is_empty() {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} events never came: {missing:?}",
            missing.len(),
            wanted.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// MongoDB stops; a customer and an agent exchange lines, each acknowledged (spooled on
/// local disk); the node is killed. MongoDB comes back, the node starts again on the same
/// DATA_DIR, and the receiver gets a `message.created` for every acknowledged line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_acknowledged_during_an_outage_reach_the_receiver_after_a_kill_and_a_restart() {
    let mut mongo = MongoServer::start().await;
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let dir = TempDir::new("hooks-outage");
    let (url, got) = receiver(0).await;
    let mut hub = hub_on(&mongo.uri(), &db, &dir.0).await;
    register(&hub.admin().await, &url, &["conversation.created", "message.created"]).await;
    let (mut ann, mut carla, chat) = hub.agent_and_customer_in_a_chat().await;
    delivered_within(&got, 1, Duration::from_secs(30)).await;

    mongo.stop().await;
    let mut lines = vec![];
    for i in 0..10 {
        lines.push(acked(&mut carla, None, &format!("customer {i}")).await);
        lines.push(acked(&mut ann, Some(&chat), &format!("agent {i}")).await);
    }
    hub.kill();
    drop(hub);

    mongo.restart().await;
    let _hub = hub_on(&mongo.uri(), &db, &dir.0).await;
    until_all_delivered(&got, "message_id", &lines, Duration::from_secs(60)).await;
}

/// While the store holds the writes that make deliveries (its `findAndModify`, which
/// numbers them), an offline message is answered 201 and the node is killed at once. The
/// store lets writes through again, the node starts again: the receiver gets the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_answered_2xx_reaches_the_receiver_though_the_node_was_killed_right_after() {
    let (_server, uri, dir, got, mut hub) = on_failpoint_mongo("hooks_killed", &["offline_message.created"]).await;

    hold_numbering(&uri, true).await;
    let left = leave_offline_message(&hub).await;
    hub.kill();
    drop(hub);
    hold_numbering(&uri, false).await;

    let _hub = hub_on(&uri, "hooks_killed", &dir.0).await;
    let id = left["id"].as_str().unwrap().to_string();
    until_all_delivered(&got, "offline_message_id", &[id], Duration::from_secs(60)).await;
}

/// A MongoDB-wire server that takes failpoints (kept running while its guard lives), its
/// URI, the node's DATA_DIR, a receiver registered for `events`, and the node on database
/// `db`: what the tests that kill a node while the store holds writes start from.
async fn on_failpoint_mongo(
    db: &str,
    events: &[&str],
) -> (
    Running,
    String,
    TempDir,
    std::sync::Arc<std::sync::Mutex<crate::webhooks::Received>>,
    HubProcess,
) {
    let (child, port) = crate::mongod::start_in_memory_with_failpoints().await;
    let server = Running(child);
    let uri = format!("mongodb://127.0.0.1:{port}");
    let dir = TempDir::new(db);
    let (url, got) = receiver(0).await;
    let hub = hub_on(&uri, db, &dir.0).await;
    register(&hub.admin().await, &url, events).await;
    (server, uri, dir, got, hub)
}

/// Makes the server at `uri` hold every `findAndModify` (the deliveries' numbering, and
/// their claims) for a minute before carrying it out (`hold`), or stop holding new ones.
async fn hold_numbering(uri: &str, hold: bool) {
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    let command = if hold {
        bson::doc! {"configureFailPoint": "failCommand", "mode": "alwaysOn", "data": {
            "failCommands": ["findAndModify"], "blockConnection": true, "blockTimeMS": 60_000_i64,
        }}
    } else {
        bson::doc! {"configureFailPoint": "failCommand", "mode": "off"}
    };
    client.database("admin").run_command(command).await.unwrap();
}

/// While the store holds the writes that make deliveries, an agent sets a conversation's
/// status over the socket and hears the answer; the node is killed at once. The store lets
/// writes through again, the node starts again: the receiver gets the status change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_answered_on_the_socket_reaches_the_receiver_though_the_node_was_killed_right_after() {
    let (_server, uri, dir, got, mut hub) =
        on_failpoint_mongo("hooks_status_killed", &["conversation.status_changed"]).await;
    let (mut ann, _carla, chat) = hub.agent_and_customer_in_a_chat().await;

    hold_numbering(&uri, true).await;
    ann.send(
        json!({"type": "set_conversation_status", "conversation_id": chat, "status": "pending",
        "client_id": "p1"}),
    )
    .await;
    let answer = ann
        .next_matching(|f| (f["type"] == "conversation_status" || f["type"] == "error") && f["client_id"] == "p1")
        .await;
    assert_eq!(answer["status"], "pending", "{answer}");
    hub.kill();
    drop(hub);
    hold_numbering(&uri, false).await;

    let _hub = hub_on(&uri, "hooks_status_killed", &dir.0).await;
    let wanted = ["pending".to_string()];
    until_all_delivered(&got, "status", &wanted, Duration::from_secs(60)).await;
}

/// The node's journal cannot be written: every write to a file fails (`EFBIG`), as on a full
/// disk. The real fault, made portably: the node's file-size limit (`RLIMIT_FSIZE`) lowered
/// to 0 bytes from outside with `prlimit`, then raised again. The test process ignores
/// `SIGXFSZ` and the node inherits that, so a refused write is an error the node sees, not
/// a signal that ends it.
fn limit_file_size(pid: u32, bytes: u64) {
    let pid = i32::try_from(pid).unwrap();
    rlimit::prlimit(pid, rlimit::Resource::FSIZE, Some((bytes, rlimit::INFINITY)), None)
        .unwrap_or_else(|e| panic!("cannot set the file-size limit of process {pid}: {e}"));
}

/// A counter or gauge of the node's `/metrics` (0 when it has not been recorded yet).
async fn metric(hub: &Endpoint, name: &str) -> f64 {
    let text = reqwest::get(hub.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

/// While the journal's disk refuses writes, an offline message is not answered 2xx: its
/// event is not on disk. The node counts the failed write (`/metrics`) and keeps trying;
/// once the disk takes writes again the answer comes, the event reaches the receiver, and
/// so do the events made after (the journal's file was reopened, not left refusing every
/// write until a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_waits_while_the_journal_cannot_be_written_and_the_journal_recovers() {
    // SAFETY: setting a signal's disposition to "ignore" touches no memory of this process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let mongo = MongoServer::start().await;
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let dir = TempDir::new("hooks-disk-refuses");
    let (url, got) = receiver(0).await;
    // Its output dropped rather than logged to a file: that file would be refused too.
    let hub = HubProcess::start(
        None,
        &[
            ("STORE", "mongodb"),
            ("MONGODB_URI", &mongo.uri()),
            ("MONGODB_DB", &db),
            ("DATA_DIR", dir.0.to_str().unwrap()),
            ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ],
    )
    .await;
    register(&hub.admin().await, &url, &["offline_message.created"]).await;
    let first = leave_offline_message(&hub).await;

    limit_file_size(hub.child.id(), 0);
    let endpoint = hub.endpoint;
    let leaving = tokio::spawn(async move { leave_offline_message(&endpoint).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metric(&hub, "switchboard_webhook_journal_write_failures_total").await < 1.0 {
        assert!(
            !leaving.is_finished(),
            "answered 201 though its webhook event could not be written to the journal"
        );
        assert!(tokio::time::Instant::now() < deadline, "no journal write failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !leaving.is_finished(),
        "answered 201 though its webhook event could not be written to the journal"
    );

    limit_file_size(hub.child.id(), rlimit::INFINITY);
    let during = leaving.await.unwrap();
    let after = leave_offline_message(&hub).await;
    let wanted: Vec<String> = [first, during, after]
        .iter()
        .map(|left| left["id"].as_str().unwrap().to_string())
        .collect();
    until_all_delivered(&got, "offline_message_id", &wanted, Duration::from_secs(60)).await;
}

/// A journal record the node cannot read (damaged, or written by a newer version) is set
/// aside, counted in `/metrics`, and the events behind it are still delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_journal_record_is_set_aside_and_the_events_behind_it_go_on() {
    let mongo = MongoServer::start().await;
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let dir = TempDir::new("hooks-unreadable");
    let (url, got) = receiver(0).await;
    let mut hub = hub_on(&mongo.uri(), &db, &dir.0).await;
    register(&hub.admin().await, &url, &["offline_message.created"]).await;
    hub.kill();
    drop(hub);

    {
        let journal = redb::Database::create(dir.0.join("webhook-journal.redb")).unwrap();
        let events: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("webhook_events");
        let tx = journal.begin_write().unwrap();
        tx.open_table(events)
            .unwrap()
            .insert(1, b"{\"written by\": \"a newer version\"}".as_slice())
            .unwrap();
        tx.commit().unwrap();
    }

    let hub = hub_on(&mongo.uri(), &db, &dir.0).await;
    let left = leave_offline_message(&hub).await;
    let id = left["id"].as_str().unwrap().to_string();
    until_all_delivered(&got, "offline_message_id", &[id], Duration::from_secs(30)).await;
    assert_eq!(metric(&hub, "switchboard_webhook_journal_set_aside").await, 1.0);
}
