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
/// to 0 bytes from outside with `prlimit`, then raised again. The node ignores `SIGXFSZ`
/// ([`hub_whose_disk_may_refuse`]), so a refused write is an error it sees, not a signal
/// that ends it.
fn limit_file_size(pid: u32, bytes: u64) {
    let pid = i32::try_from(pid).unwrap();
    rlimit::prlimit(pid, rlimit::Resource::FSIZE, Some((bytes, rlimit::INFINITY)), None)
        .unwrap_or_else(|e| panic!("cannot set the file-size limit of process {pid}: {e}"));
}

/// The admin API's view of the node's webhook journal.
async fn journal_view(admin: &Api) -> Value {
    let (status, view) = admin.get("/api/admin/webhooks/journal").await;
    assert_eq!(status, 200, "{view}");
    view
}

/// The real binary on `mongo` (a database of its own) and DATA_DIR `dir`, for a test that
/// lowers its file-size limit ([`limit_file_size`]): `SIGXFSZ` ignored (this process
/// ignores it, the node inherits that), its output dropped rather than logged to a file,
/// which would be refused too.
async fn hub_whose_disk_may_refuse(mongo: &MongoServer, dir: &TempDir) -> HubProcess {
    // SAFETY: setting a signal's disposition to "ignore" touches no memory of this process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    HubProcess::start(
        None,
        &[
            ("STORE", "mongodb"),
            ("MONGODB_URI", &mongo.uri()),
            ("MONGODB_DB", &db),
            ("DATA_DIR", dir.0.to_str().unwrap()),
            ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ],
    )
    .await
}

/// A counter or gauge of the node's `/metrics` (0 when it has not been recorded yet).
pub(crate) async fn metric(hub: &Endpoint, name: &str) -> f64 {
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
    let mongo = MongoServer::start().await;
    let dir = TempDir::new("hooks-disk-refuses");
    let (url, got) = receiver(0).await;
    let hub = hub_whose_disk_may_refuse(&mongo, &dir).await;
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
    let view = journal_view(&hub.admin().await).await;
    assert_eq!(view["set_aside"], 1, "{view}");
}

/// The archive's spool, on the same kind of log as the journal, is not left refusing after
/// its disk failed a write: during a MongoDB outage, with every write to a file refused,
/// lines are refused (or wait); once the disk takes writes again, the lines that waited
/// are acknowledged and new ones are too, MongoDB still down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_spool_takes_lines_again_once_its_disk_does() {
    let mut mongo = MongoServer::start().await;
    let dir = TempDir::new("spool-disk-refuses");
    let hub = hub_whose_disk_may_refuse(&mongo, &dir).await;
    let (_ann, mut carla, _chat) = hub.agent_and_customer_in_a_chat().await;
    mongo.stop().await;
    acked(&mut carla, None, "spooled").await;

    limit_file_size(hub.child.id(), 0);
    // Lines until one is refused: a spool write failed by then. The others wait for an ack.
    let mut waiting: HashSet<String> = HashSet::new();
    let mut refused = false;
    for i in 0..60 {
        let text = format!("while the disk refuses {i}");
        carla
            .send(json!({"type": "message", "text": text, "client_id": text}))
            .await;
        waiting.insert(text);
        while let Some(frame) = carla.recv_within(Duration::from_millis(500)).await {
            match frame["type"].as_str() {
                Some("ack") => panic!("acknowledged while the spool cannot be written: {frame}"),
                Some("error") if frame["code"] == "archive_unavailable" => {
                    waiting.remove(frame["client_id"].as_str().unwrap_or_default());
                    refused = true;
                }
                _ => {}
            }
        }
        if refused {
            break;
        }
    }
    assert!(refused, "no line was refused while the spool could not be written");

    limit_file_size(hub.child.id(), rlimit::INFINITY);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !waiting.is_empty() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = carla.recv_within(left).await else {
            panic!("never acknowledged once the disk took writes again: {waiting:?}");
        };
        if frame["type"] == "ack" {
            waiting.remove(frame["client_id"].as_str().unwrap_or_default());
        }
    }
    acked(&mut carla, None, "after").await;
}

/// While the store fails the writes that make deliveries (its `findAndModify`, which
/// numbers them, answered with an error that does not mark the server down), the events of offline messages answered 201 wait in the journal:
/// `switchboard_webhook_journal_backlog` and the admin's journal view count them. Once the
/// store takes those writes again they are handed on as deliveries and both count none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_backlog_is_counted_in_metrics_and_for_admins() {
    let (_server, uri, _dir, got, hub) = on_failpoint_mongo("hooks_backlog", &["offline_message.created"]).await;
    let admin = hub.admin().await;
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let fail_numbering = |mode: &str| {
        bson::doc! {"configureFailPoint": "failCommand", "mode": mode, "data": {
            "failCommands": ["findAndModify"], "errorCode": 2_i32,
        }}
    };
    client
        .database("admin")
        .run_command(fail_numbering("alwaysOn"))
        .await
        .unwrap();
    let mut left = vec![];
    for _ in 0..3 {
        left.push(leave_offline_message(&hub).await["id"].as_str().unwrap().to_string());
    }
    assert_eq!(metric(&hub, "switchboard_webhook_journal_backlog").await, 3.0);
    let view = journal_view(&admin).await;
    assert_eq!((&view["backlog"], &view["set_aside"]), (&json!(3), &json!(0)), "{view}");

    client
        .database("admin")
        .run_command(fail_numbering("off"))
        .await
        .unwrap();
    until_all_delivered(&got, "offline_message_id", &left, Duration::from_secs(60)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric(&hub, "switchboard_webhook_journal_backlog").await > 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "the backlog never emptied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(journal_view(&admin).await["backlog"], 0);
}
