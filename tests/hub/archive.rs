//! The archive: complete records on every backend, outages of MongoDB, a killed
//! hub, and the history API.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use switchboard::store::{
    ArchiveEvent, ArchivedMessage, ConversationFilter, ConversationKind, ConversationNote, ConversationOpened,
    ConversationTransferred, EmbeddedStore, MongoStore, Page, SharedStore, Side,
};

use crate::common::*;

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("switchboard-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The MongoDB-wire server the harness started (scripts/with-mongo.sh); a missing one fails the test.
pub fn mongo_uri() -> String {
    std::env::var("SWITCHBOARD_TEST_MONGODB_URI").expect(
        "SWITCHBOARD_TEST_MONGODB_URI is not set: run the tests with `make test` (it starts a MongoDB-wire server)",
    )
}

/// A store on the embedded database in `dir` (kept while `dir` lives).
pub async fn embedded_store(dir: &TempDir) -> SharedStore {
    Arc::new(EmbeddedStore::open(&dir.0).await.unwrap())
}

/// Runs `check` on an embedded store in a temporary directory of its own (removed after).
async fn on_embedded<F: std::future::Future<Output = ()>>(check: impl FnOnce(SharedStore) -> F) {
    let dir = TempDir::new("archive");
    check(embedded_store(&dir).await).await;
}

/// A database name no other test uses.
fn fresh_db() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

/// The harness's MongoDB and a database of the test's own there (its name).
pub fn own_mongodb() -> (String, String) {
    (mongo_uri(), fresh_db())
}

pub async fn mongo_store(uri: &str) -> SharedStore {
    let db = fresh_db();
    Arc::new(
        MongoStore::connect(uri, &db)
            .await
            .expect("the test MongoDB server answers"),
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether something listens on the loopback port: a connection made and its local port
/// not the one asked for (a connection to a free ephemeral port may connect to itself).
pub async fn port_open(port: u16) -> bool {
    match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(stream) => stream.local_addr().is_ok_and(|local| local.port() != port),
        Err(_) => false,
    }
}

pub async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if port_open(port).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on port {port}");
}

/// Runs three whole conversations through the hub and checks the three records.
async fn three_conversations_are_three_complete_records(store: SharedStore) {
    // A DATA_DIR of its own: a hub on MongoDB keeps its outage spool there.
    let data = TempDir::new("data");
    let dir = data.0.clone();
    let hub = TestHub::with_store(store.clone(), move |s| s.store.data_dir = dir).await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let mut chats = vec![];
    for i in 0..3 {
        let (mut c, chat) = hub
            .paired_customer(&mut agent, &format!("Customer {i}"), "general")
            .await;
        c.send(json!({"type": "message", "text": format!("question {i}")}))
            .await;
        agent.next_of("message").await;
        agent
            .send(json!({"type": "message", "chat_id": chat, "text": format!("answer {i}")}))
            .await;
        c.each_of(&["ack", "message"]).await;
        agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
        c.next_of("chat_ended").await;
        chats.push(chat);
    }
    hub.stop().await;
    let (records, total) = store
        .conversations(&ConversationFilter::default(), Page { offset: 0, limit: 10 })
        .await
        .unwrap();
    assert_eq!(total, 3);
    let agent_account = store.account_by_username("ann").await.unwrap();
    for (i, chat) in chats.iter().enumerate() {
        let r = records
            .iter()
            .find(|r| &r.opened.id == chat)
            .expect("each chat has its record");
        assert_eq!(r.opened.customer_name, format!("Customer {i}"));
        assert_eq!(r.opened.agent_id, agent_account.id);
        assert_eq!(r.opened.agent_name, "ANN");
        assert_eq!(r.opened.category.as_deref(), Some("general"));
        let texts: Vec<_> = r.messages.iter().map(|m| (m.from, m.text.clone(), m.seq)).collect();
        assert_eq!(
            texts,
            vec![
                (Side::Customer, format!("question {i}"), 1),
                (Side::Agent, format!("answer {i}"), 2)
            ]
        );
        let closed = r.closed.as_ref().expect("the record is closed");
        assert!(r.opened.queued_at <= r.opened.paired_at);
        assert!(
            r.messages
                .iter()
                .all(|m| m.at >= r.opened.paired_at && m.at <= closed.ended_at)
        );
        assert_eq!(closed.ended_by, Side::Agent);
    }
}

#[tokio::test]
async fn three_conversations_are_archived_on_the_embedded_store() {
    on_embedded(three_conversations_are_three_complete_records).await;
}

#[tokio::test]
async fn three_conversations_are_archived_on_mongodb() {
    three_conversations_are_three_complete_records(mongo_store(&mongo_uri()).await).await;
}

/// A secantusd-py server of our own, on disk, that the test can stop and start again on
/// the same port (see `crate::mongod` for why the port is safe to come back to).
pub struct MongoServer {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl MongoServer {
    /// A server of the test's own and a store on a fresh database in it.
    pub async fn with_store() -> (Self, SharedStore) {
        let mongo = Self::start().await;
        let store = mongo_store(&mongo.uri()).await;
        (mongo, store)
    }

    pub async fn start() -> Self {
        let dir = TempDir::new("mongo");
        let (child, port) = crate::mongod::start_restartable(&dir.0).await;
        MongoServer {
            port,
            dir,
            child: Some(child),
        }
    }

    pub async fn restart(&mut self) {
        let storage = self.dir.0.to_str().unwrap();
        let (child, _) = crate::mongod::start(self.port, storage)
            .await
            .unwrap_or_else(|why| panic!("the MongoDB-wire server did not come back on its port: {why}"));
        self.child = Some(child);
    }

    /// Stops the server the way an operator or a crash-free outage does (SIGTERM), and
    /// waits for it to exit while the hubs in this test's runtime go on (the server may
    /// wait for its clients, a hub among them, before it exits: a blocking wait here
    /// would stop that hub and never return). A server still running after
    /// [`STOP_WAIT`] is killed.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = std::time::Instant::now() + STOP_WAIT;
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How long a stopped MongoDB-wire server may take to exit before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(10);

pub async fn health(hub: &TestHub) -> Value {
    get_json(hub, "/healthz").await
}

/// Sends `n` customer messages and returns the ids of those acknowledged (an `ack` to the sender).
async fn send_and_collect(c: &mut Ws, agent: &mut Ws, from: usize, n: usize, acked: &mut Vec<String>) {
    for i in from..from + n {
        c.send(json!({"type": "message", "text": format!("m{i}")})).await;
    }
    for _ in 0..n {
        let m = c.next_of("ack").await;
        acked.push(m["id"].as_str().unwrap().to_string());
    }
    for _ in 0..n {
        agent.next_of("message").await;
    }
}

#[tokio::test]
async fn mongodb_stopped_mid_chat_loses_no_acknowledged_message_and_duplicates_none() {
    let (mut mongo, store) = MongoServer::with_store().await;
    let data = TempDir::new("data");
    let dir = data.0.clone();
    let hub = TestHub::with_store(store.clone(), move |s| s.store.data_dir = dir).await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let mut c = hub.customer("Carla", "general").await;
    let chat = c.chat_started().await;
    let mut acked = vec![];
    send_and_collect(&mut c, &mut agent, 0, 10, &mut acked).await;

    mongo.stop().await;
    // The relay goes on while the store is down; the hub says it is degraded.
    send_and_collect(&mut c, &mut agent, 10, 20, &mut acked).await;
    let mut degraded = false;
    for _ in 0..100 {
        if health(&hub).await["status"] == "degraded" {
            degraded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(degraded, "the health endpoint reports the outage");
    assert_eq!(reqwest::get(hub.url("/readyz")).await.unwrap().status(), 503);

    mongo.restart().await;
    send_and_collect(&mut c, &mut agent, 30, 10, &mut acked).await;
    c.send(json!({"type": "leave"})).await;
    c.next_of("chat_ended").await;
    let mut caught_up = false;
    for _ in 0..200 {
        let h = health(&hub).await;
        if h["status"] == "ok" && h["archive_backlog"] == 0 {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "the backlog is written once MongoDB is back");
    let record = store.conversation(&chat).await.unwrap();
    let ids: Vec<_> = record.messages.iter().map(|m| m.id.to_string()).collect();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no message is archived twice");
    for id in &acked {
        assert!(unique.contains(id), "acknowledged message {id} is missing");
    }
    assert_eq!(ids.len(), 40);
    assert!(record.closed.is_some());
    hub.stop().await;
}

/// The real binary, started on its own port with the embedded store in `dir`.
async fn embedded_hub(dir: &Path) -> HubProcess {
    HubProcess::start(Some(dir), &[("STORE", "embedded"), ("DATA_DIR", dir.to_str().unwrap())]).await
}

#[tokio::test]
async fn a_hub_killed_mid_chat_keeps_every_acknowledged_message_on_the_embedded_store() {
    let dir = TempDir::new("kill");
    let mut process = embedded_hub(&dir.0).await;
    let (_agent, mut c, chat) = process.agent_and_customer_in_a_chat().await;

    // Messages flow; some are acknowledged, then the hub dies without warning.
    let mut acked = vec![];
    for i in 0..200 {
        c.send(json!({"type": "message", "text": format!("m{i}")})).await;
    }
    while acked.len() < 100 {
        let m = c.next_of("ack").await;
        acked.push(m["id"].as_str().unwrap().to_string());
    }
    process.kill();
    while let Some(m) = c.recv_within(Duration::from_millis(200)).await {
        if m["type"] == "ack" {
            acked.push(m["id"].as_str().unwrap().to_string());
        }
    }
    drop(process);

    // Restarted on the same data: the agent still exists, and so does every acknowledged message.
    let process = embedded_hub(&dir.0).await;
    let ann = process.login("ann", "agent-password").await; // accounts survive the crash
    let (_, record) = ann.get(&format!("/api/conversations/{chat}")).await;
    let stored: HashSet<&str> = strs_in(&record["messages"], "id").into_iter().collect();
    for id in &acked {
        assert!(
            stored.contains(id.as_str()),
            "acknowledged message {id} was lost in the crash"
        );
    }
}

#[tokio::test]
async fn the_history_api_filters_pages_and_keeps_agents_to_their_own() {
    let (hub, admin) = TestHub::with_admin().await;
    let mut ann = hub.agent("ann", &["general", "sales"], 1).await;
    let mut bob = hub.agent("bob", &["billing"], 1).await;
    let mut ids = vec![];
    for (name, category) in [("C1", "general"), ("C2", "sales"), ("C3", "billing"), ("C4", "general")] {
        let mut c = hub.customer(name, category).await;
        let chat = c.chat_started().await;
        c.send(json!({"type": "message", "text": "hello"})).await;
        c.next_of("ack").await;
        c.send(json!({"type": "leave"})).await;
        c.next_of("chat_ended").await;
        ids.push(chat);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = (&mut ann, &mut bob);
    let (_, all) = admin.get("/api/conversations").await;
    assert_eq!(all["total"], 4);
    let listed: Vec<String> = strs_in(&all["items"], "id").into_iter().map(String::from).collect();
    let newest_first: Vec<_> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first, "newest first");
    assert_eq!(admin.get("/api/conversations?category=general").await.1["total"], 2);
    let bob_id = admin.agent_id("bob").await;
    let (_, bobs) = admin.get(&format!("/api/conversations?agent_id={bob_id}")).await;
    assert_eq!(
        (bobs["total"].as_u64(), bobs["items"][0]["id"].as_str()),
        (Some(1), Some(ids[2].as_str()))
    );
    let (_, page) = admin.get("/api/conversations?limit=2&offset=1").await;
    assert_eq!(page["total"], 4);
    let page_ids: Vec<String> = strs_in(&page["items"], "id").into_iter().map(String::from).collect();
    assert_eq!(page_ids, newest_first[1..3].to_vec());
    let second_paired = all["items"][2]["paired_at"].as_i64().unwrap();
    let (_, since) = admin.get(&format!("/api/conversations?from={second_paired}")).await;
    assert_eq!(since["total"], 3);
    let (_, until) = admin.get(&format!("/api/conversations?to={second_paired}")).await;
    assert_eq!(until["total"], 1);
    assert_eq!(admin.get("/api/conversations?limit=0").await.0, 400);
    assert_eq!(admin.get("/api/conversations?from=yesterday").await.0, 400);

    // Agents: only their own, and another's conversation looks missing.
    let ann_api = hub.login("ann", "agent-password").await;
    let (_, own) = ann_api.get(&format!("/api/conversations?agent_id={bob_id}")).await;
    assert_eq!(own["total"], 3, "the agent filter cannot widen an agent's view");
    assert_eq!(ann_api.get(&format!("/api/conversations/{}", ids[2])).await.0, 404);
    let (status, full) = ann_api.get(&format!("/api/conversations/{}", ids[0])).await;
    assert_eq!((status, full["messages"][0]["text"].as_str()), (200, Some("hello")));
    assert_eq!(full["reason"], "ended");
    hub.stop().await;
}

/// A transferred conversation: every agent who served it lists and reads it, with its
/// transfers (every field, nulls as null); an agent who did not gets 404.
#[tokio::test]
async fn a_transferred_conversation_is_read_by_every_agent_who_served_it() {
    let (hub, admin) = TestHub::with_admin().await;
    for name in ["ann", "bob", "cid", "dan"] {
        hub.agent_account(name, &["general"], 1).await;
    }
    let id = |name: &'static str| {
        let admin = &admin;
        async move { admin.agent_id(name).await }
    };
    let (ann, bob, cid) = (id("ann").await, id("bob").await, id("cid").await);
    let transfer = |at: i64, from: (&str, &str), to: Option<(&str, &str)>, category: Option<&str>, note: &str| {
        ArchiveEvent::Transferred(ConversationTransferred {
            id: "chat-1".into(),
            at,
            after_seq: 1,
            from_agent_id: from.0.into(),
            from_agent_name: from.1.into(),
            to_agent_id: to.map(|t| t.0.into()),
            to_agent_name: to.map(|t| t.1.into()),
            to_category: category.map(str::to_string),
            note: note.into(),
        })
    };
    let batch = vec![
        carla_with_ann("chat-1", &ann),
        ArchiveEvent::Message {
            conversation_id: "chat-1".into(),
            message: ArchivedMessage::plain("m1", 1, Side::Customer, "hello", 1_002),
        },
        transfer(2_000, (&ann, "ANN"), Some((&bob, "BOB")), None, "wants a refund"),
        transfer(3_000, (&bob, "BOB"), None, Some("general"), ""),
        transfer(4_000, (&bob, "BOB"), Some((&cid, "CID")), Some("general"), ""),
    ];
    hub.store.archive(&batch).await.unwrap();

    for name in ["ann", "bob", "cid"] {
        let api = hub.login(name, "agent-password").await;
        let (_, list) = api.get("/api/conversations").await;
        assert_eq!(
            (list["total"].as_u64(), list["items"][0]["id"].as_str()),
            (Some(1), Some("chat-1")),
            "{name}"
        );
        assert!(list["items"][0].get("transfers").is_none(), "not in the list");
        let (status, c) = api.get("/api/conversations/chat-1").await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(
            (c["agent_id"].as_str(), c["agent_name"].as_str()),
            (Some(cid.as_str()), Some("CID"))
        );
        assert_eq!(c["transfers"].as_array().unwrap().len(), 3);
    }
    let (_, c) = admin.get("/api/conversations/chat-1").await;
    assert_eq!(
        c["transfers"][0],
        json!({"at": 2_000, "after_seq": 1, "from_agent_id": ann, "from_agent_name": "ANN",
               "to_agent_id": bob, "to_agent_name": "BOB", "to_category": null, "note": "wants a refund"})
    );
    assert_eq!(
        c["transfers"][1],
        json!({"at": 3_000, "after_seq": 1, "from_agent_id": bob, "from_agent_name": "BOB",
               "to_agent_id": null, "to_agent_name": null, "to_category": "general", "note": ""})
    );
    assert_eq!(c["transfers"][2]["to_agent_id"], json!(cid));
    let (_, by_ann) = admin.get(&format!("/api/conversations?agent_id={ann}")).await;
    assert_eq!(by_ann["total"], 1);

    let dan = hub.login("dan", "agent-password").await;
    assert_eq!(dan.get("/api/conversations/chat-1").await.0, 404);
    assert_eq!(dan.get("/api/conversations").await.1["total"], 0);
    hub.stop().await;
}

/// A conversation handed on names each agent line by the agent who wrote it: Ann's lines
/// Ann's, Bob's after her transfer to him his, Cid's after Bob put it in the line and Cid
/// took it Cid's; the customer's lines name nobody. The hand-overs reach the store out of
/// time order, on every backend; the conversation, its JSON and CSV exports and a search
/// hit read the same.
async fn each_line_of_a_transferred_conversation_names_its_agent(store: SharedStore) {
    // A DATA_DIR of its own: a hub on MongoDB keeps its outage spool there.
    let data = TempDir::new("data");
    let dir = data.0.clone();
    let hub = TestHub::with_store(store, move |s| s.store.data_dir = dir).await;
    let admin = hub.admin().await;
    let line = |seq: u64, from: Side, at: i64| ArchiveEvent::Message {
        conversation_id: "chat-1".into(),
        message: ArchivedMessage::plain(format!("m{seq}"), seq, from, format!("line {seq}"), at),
    };
    let transfer = |at: i64, after_seq: u64, from: (&str, &str), to: Option<(&str, &str)>, category: Option<&str>| {
        ArchiveEvent::Transferred(ConversationTransferred {
            id: "chat-1".into(),
            at,
            after_seq,
            from_agent_id: from.0.into(),
            from_agent_name: from.1.into(),
            to_agent_id: to.map(|t| t.0.into()),
            to_agent_name: to.map(|t| t.1.into()),
            to_category: category.map(str::to_string),
            note: String::new(),
        })
    };
    let (ann, bob, cid) = (("ann-id", "ANN"), ("bob-id", "BOB"), ("cid-id", "CID"));
    hub.store
        .archive(&[
            carla_with_ann("chat-1", ann.0),
            line(1, Side::Customer, 1_002),
            line(2, Side::Agent, 1_500),
            line(3, Side::Customer, 2_100),
            line(4, Side::Agent, 2_500),
        ])
        .await
        .unwrap();
    // Cid's taking it arrives first, Ann's transfer last.
    hub.store
        .archive(&[
            transfer(4_000, 4, bob, Some(cid), Some("general")),
            line(5, Side::Agent, 4_500),
            line(6, Side::Customer, 4_600),
        ])
        .await
        .unwrap();
    hub.store
        .archive(&[transfer(3_000, 4, bob, None, Some("general"))])
        .await
        .unwrap();
    hub.store
        .archive(&[transfer(2_000, 2, ann, Some(bob), None)])
        .await
        .unwrap();

    let named = |lines: &Value| -> Vec<(u64, Option<String>)> {
        lines
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["seq"].as_u64().unwrap(),
                    m.get("agent_name").map(|n| n.as_str().unwrap().to_string()),
                )
            })
            .collect()
    };
    let by = |name: &str| Some(name.to_string());
    let expected = vec![
        (1, None),
        (2, by("ANN")),
        (3, None),
        (4, by("BOB")),
        (5, by("CID")),
        (6, None),
    ];
    let (status, c) = admin.get("/api/conversations/chat-1").await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(named(&c["messages"]), expected, "{c}");
    assert_eq!(c["agent_name"], "CID", "the conversation's agent now");
    let (status, exported) = admin.get("/api/conversations/chat-1/export?format=json").await;
    assert_eq!(status, 200, "{exported}");
    assert_eq!(named(&exported["conversations"][0]["messages"]), expected);
    // The CSV names them in its `message_agent_name` column (empty for the customer's).
    let csv = admin
        .get_response("/api/conversations/chat-1/export?format=csv")
        .await
        .text()
        .await
        .unwrap();
    let rows: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .from_reader(csv.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    let header: Vec<String> = csv::Reader::from_reader(csv.as_bytes())
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let column = |name: &str| header.iter().position(|c| c == name).unwrap_or_else(|| panic!("{csv}"));
    let (seq, author) = (column("seq"), column("message_agent_name"));
    let in_csv: Vec<(u64, Option<String>)> = rows
        .iter()
        .map(|r| {
            (
                r[seq].parse().unwrap(),
                Some(r[author].clone()).filter(|a| !a.is_empty()),
            )
        })
        .collect();
    assert_eq!(in_csv, expected, "{csv}");
    // A search hit names its line's author as well: Bob's line 4, though Cid has it now.
    let (status, found) = admin.get("/api/conversations?q=line+4").await;
    assert_eq!(status, 200, "{found}");
    let hit = &found["items"][0]["hit"];
    assert_eq!(
        (hit["seq"].as_u64(), hit["agent_name"].as_str()),
        (Some(4), Some("BOB")),
        "{found}"
    );
    let (_, customer_hit) = admin.get("/api/conversations?q=line+3").await;
    let hit = &customer_hit["items"][0]["hit"];
    assert_eq!(
        (hit["seq"].as_u64(), hit.get("agent_name")),
        (Some(3), None),
        "{customer_hit}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn each_line_of_a_transferred_conversation_names_its_agent_on_the_memory_store() {
    each_line_of_a_transferred_conversation_names_its_agent(Arc::new(switchboard::store::MemoryStore::new())).await;
}

#[tokio::test]
async fn each_line_of_a_transferred_conversation_names_its_agent_on_the_embedded_store() {
    on_embedded(each_line_of_a_transferred_conversation_names_its_agent).await;
}

#[tokio::test]
async fn each_line_of_a_transferred_conversation_names_its_agent_on_mongodb() {
    each_line_of_a_transferred_conversation_names_its_agent(mongo_store(&mongo_uri()).await).await;
}

/// Agents' notes: in the conversation (oldest first, every field), not in the list; read
/// with the conversation's access rules (an agent who served it, admins), 404 for others.
#[tokio::test]
async fn a_conversations_notes_are_read_with_it() {
    let (hub, admin) = TestHub::with_admin().await;
    for name in ["ann", "bob"] {
        hub.agent_account(name, &["general"], 1).await;
    }
    let ann = admin.agent_id("ann").await;
    let note = |id: &str, at: i64, text: &str| {
        ArchiveEvent::Note(ConversationNote {
            conversation_id: "chat-n".into(),
            id: id.into(),
            at,
            agent_id: ann.clone(),
            agent_name: "ANN".into(),
            text: text.into(),
        })
    };
    // The later note first, and one before the opening: both kept, in time order.
    let batch = vec![
        note("note-2", 3_000, "second"),
        carla_with_ann("chat-n", &ann),
        note("note-1", 2_000, "VIP — ✓"),
        note("note-2", 3_000, "second"),
    ];
    hub.store.archive(&batch).await.unwrap();

    let api = hub.login("ann", "agent-password").await;
    let (_, list) = api.get("/api/conversations").await;
    assert_eq!(list["items"][0]["id"], "chat-n");
    assert!(list["items"][0].get("notes").is_none(), "not in the list");
    let (status, c) = api.get("/api/conversations/chat-n").await;
    assert_eq!(status, 200);
    assert_eq!(
        c["notes"],
        json!([
            {"id": "note-1", "at": 2_000, "agent_id": ann, "agent_name": "ANN", "text": "VIP — ✓"},
            {"id": "note-2", "at": 3_000, "agent_id": ann, "agent_name": "ANN", "text": "second"},
        ])
    );
    assert_eq!(c["message_count"], 0, "notes are not messages");
    let (_, by_admin) = admin.get("/api/conversations/chat-n").await;
    assert_eq!(by_admin["notes"], c["notes"]);

    let bob = hub.login("bob", "agent-password").await;
    assert_eq!(bob.get("/api/conversations/chat-n").await.0, 404);
    // A chat with none has an empty list.
    hub.store
        .archive(&[ArchiveEvent::Opened(ConversationOpened {
            id: "chat-plain".into(),
            kind: ConversationKind::Service,
            category: Some("general".into()),
            customer_name: "Cleo".into(),
            agent_id: ann.clone(),
            agent_name: "ANN".into(),
            queued_at: 4_000,
            paired_at: 4_001,
            customer: Default::default(),
        })])
        .await
        .unwrap();
    assert_eq!(api.get("/api/conversations/chat-plain").await.1["notes"], json!([]));
    hub.stop().await;
}

#[tokio::test]
async fn metrics_are_served_in_the_prometheus_format() {
    let (hub, _ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let (mut c, _) = hub.customer_in_chat("Carla", "general").await;
    c.send(json!({"type": "message", "text": "count me"})).await;
    c.next_of("ack").await;
    let names = [
        "switchboard_connections",
        "switchboard_customers_waiting",
        "switchboard_chats_active",
        "switchboard_routes_total",
        "switchboard_messages_relayed_total",
        "switchboard_archive_backlog",
        "switchboard_archive_write_errors_total",
    ];
    // Gauges are refreshed on the hub's coalescing tick: give it a few.
    let mut text = String::new();
    for _ in 0..40 {
        text = reqwest::get(hub.url("/metrics")).await.unwrap().text().await.unwrap();
        if names.iter().all(|n| text.contains(n)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for name in names {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    hub.stop().await;
}

/// The opening of service chat `id` in General: Carla, queued at 1 000 and paired at 1 001
/// with Ann (account `ann`).
fn carla_with_ann(id: &str, ann: &str) -> ArchiveEvent {
    ArchiveEvent::Opened(ConversationOpened {
        id: id.into(),
        kind: ConversationKind::Service,
        category: Some("general".into()),
        customer_name: "Carla".into(),
        agent_id: ann.into(),
        agent_name: "ANN".into(),
        queued_at: 1_000,
        paired_at: 1_001,
        customer: Default::default(),
    })
}
