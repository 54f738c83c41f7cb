//! The openings cluster tests share, each written once: nodes in this process on one
//! memory store and one real `redis-server` ([`nodes`]); a real hub process on MongoDB
//! with in-process nodes beside it on the same database ([`process_and_nodes`]); a chat
//! whose two sides are on different nodes ([`chat_across_nodes`]); the people in them
//! ([`available_agent`], [`customer_on`], a chat on one node or two: [`paired`]), a
//! customer's resume sent once ([`resume_tried`]) or again while the cluster says not yet
//! ([`resumed_on`], [`resume_answered`]) and the waits on Redis they repeat ([`until_registered`],
//! [`until_reaped`], [`redis_shows`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::config::Settings;
use switchboard::store::{MemoryStore, MongoStore, SharedStore};

use crate::archive::{TempDir, free_port};
use crate::cluster_base::eventually;
use crate::cluster_hub::{node_process_with, node_with, registered};
use crate::common::Running;
use crate::common::{Api, Endpoint, TestHub, Ws, accepted, health_when, until_ok};
use crate::redis_server::RedisServer;

/// How long a test waits for something the cluster must do (several leases' worth).
const WAIT: Duration = Duration::from_secs(20);

/// The test hooks of a real process "beta" that drops every line on its chats' channels
/// (`SWITCHBOARD_TEST_DEAF_CHAT_CHANNEL`: lines lost as with a cut) and queues at most 8
/// calls to Redis (`SWITCHBOARD_TEST_ROUTER_BUFFER`, standing for the 8,192 a node with
/// 20,000 chats would overrun): a node with more chats than its queue holds.
pub(crate) const DEAF_BETA_WITH_A_SMALL_QUEUE: [(&str, &str); 2] = [
    ("SWITCHBOARD_TEST_DEAF_CHAT_CHANNEL", "beta"),
    ("SWITCHBOARD_TEST_ROUTER_BUFFER", "8"),
];

/// What the nodes share and use until they stop: the redis-server (a test may pause,
/// kill or restart it), the scratch directory their data directories are in (a test may
/// start another node there) and their store. Bind it to a name (`_servers`) until the
/// end of the test: dropped (`_`), it would stop Redis under the nodes.
pub(crate) struct Servers {
    pub redis: RedisServer,
    pub scratch: TempDir,
    pub store: SharedStore,
}

/// Starts a redis-server and one node per name on one memory store, each node's
/// settings changed by `tweak` after the cluster's; each holds its lease on return.
pub(crate) async fn nodes<const N: usize>(
    scratch: &str,
    names: [&str; N],
    tweak: impl Fn(&mut Settings) + Copy,
) -> ([TestHub; N], Servers) {
    let scratch = TempDir::new(scratch);
    let redis = RedisServer::start().await;
    nodes_at(redis, scratch, names, tweak).await
}

/// As [`nodes`], Redis keeping its data (an append-only file, synced on every write) in
/// the returned directory, so that a test may start it again with its data
/// (`RedisServer::start_with(servers.redis.port, Some(&data))`).
pub(crate) async fn nodes_with_redis_data<const N: usize>(
    scratch: &str,
    names: [&str; N],
    tweak: impl Fn(&mut Settings) + Copy,
) -> ([TestHub; N], Servers, PathBuf) {
    let scratch = TempDir::new(scratch);
    let data = scratch.0.join("redis-data");
    std::fs::create_dir_all(&data).unwrap();
    let redis = RedisServer::start_with(free_port(), Some(&data)).await;
    let (nodes, servers) = nodes_at(redis, scratch, names, tweak).await;
    (nodes, servers, data)
}

async fn nodes_at<const N: usize>(
    redis: RedisServer,
    scratch: TempDir,
    names: [&str; N],
    tweak: impl Fn(&mut Settings) + Copy,
) -> ([TestHub; N], Servers) {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let nodes = nodes_on(&store, &redis, &scratch, names, tweak).await;
    (nodes, Servers { redis, scratch, store })
}

/// One node per name on `store`, in the cluster at `redis`, one after the other.
pub(crate) async fn nodes_on<const N: usize>(
    store: &SharedStore,
    redis: &RedisServer,
    scratch: &TempDir,
    names: [&str; N],
    tweak: impl Fn(&mut Settings) + Copy,
) -> [TestHub; N] {
    let mut nodes = Vec::with_capacity(N);
    for name in names {
        nodes.push(node_with(store.clone(), redis, name, scratch, tweak).await);
    }
    nodes.try_into().unwrap_or_else(|_| unreachable!("one node per name"))
}

/// The real hub process [`process_and_nodes`] starts: its node id, whether its standard
/// output (its log) is kept in the scratch directory as `<name>.log`, and settings of its
/// own (environment variables, after and over the cluster's).
pub(crate) struct Process<'a> {
    pub name: &'a str,
    pub log: bool,
    pub env: &'a [(&'a str, &'a str)],
}

impl<'a> Process<'a> {
    pub(crate) fn named(name: &'a str) -> Self {
        Process {
            name,
            log: false,
            env: &[],
        }
    }

    pub(crate) fn logged(self) -> Self {
        Process { log: true, ..self }
    }

    pub(crate) fn env(self, env: &'a [(&'a str, &'a str)]) -> Self {
        Process { env, ..self }
    }
}

/// A real hub process and nodes in this process beside it, as [`process_and_nodes`]
/// started them: the process (killed when dropped: bind it to a name), its address
/// (`127.0.0.1:port`), the nodes, and what they share (the store is the process's MongoDB
/// database, one archive for all).
pub(crate) type ProcessAndNodes<const N: usize> = (Running, String, [TestHub; N], Servers);

/// Starts a redis-server, the real hub process `process` on a MongoDB database of its
/// own (registered on return; its log, if kept, is `<name>.log` in `servers.scratch`),
/// then one node in this process per name on that database, each node's settings changed
/// by `tweak` after the cluster's.
pub(crate) async fn process_and_nodes<const N: usize>(
    scratch: &str,
    process: Process<'_>,
    names: [&str; N],
    tweak: impl Fn(&mut Settings) + Copy,
) -> ProcessAndNodes<N> {
    let redis = RedisServer::start().await;
    let mut conn = redis_conn(&redis).await;
    let scratch = TempDir::new(scratch);
    let log = process.log.then(|| scratch.0.join(format!("{}.log", process.name)));
    let started = node_process_with(&redis, &mut conn, &scratch, process.name, log.as_deref(), process.env).await;
    let store: SharedStore = Arc::new(MongoStore::connect(&started.uri, &started.db).await.unwrap());
    let nodes = nodes_on(&store, &redis, &scratch, names, tweak).await;
    (started.running, started.bind, nodes, Servers { redis, scratch, store })
}

/// Kills `redis` (SIGKILL) and starts an empty one on its port at once: a crash without
/// persistence.
pub(crate) async fn killed_and_back_empty(redis: &mut RedisServer) -> RedisServer {
    let port = redis.port;
    redis.kill();
    RedisServer::start_with(port, None).await
}

/// A connection to `redis` that reconnects by itself.
pub(crate) async fn redis_conn(redis: &RedisServer) -> redis::aio::ConnectionManager {
    redis::aio::ConnectionManager::new(redis::Client::open(redis.url()).unwrap())
        .await
        .unwrap()
}

/// The incarnation `node` registers with, waiting for it.
pub(crate) async fn until_registered(conn: &mut redis::aio::ConnectionManager, node: &str) -> u64 {
    eventually(&format!("{node} registers"), || {
        let mut conn = conn.clone();
        async move { registered(&mut conn, node).await }
    })
    .await
}

/// Wakes `node` (SIGCONT), stopped past its lease and reaped meanwhile: it finds itself
/// fenced, lets go of `customer` (1012) and registers again under an incarnation above
/// `before`.
pub(crate) async fn woken_fenced(
    node: &Running,
    name: &str,
    conn: &mut redis::aio::ConnectionManager,
    customer: &mut Ws,
    before: u64,
) {
    crate::common::signal(&node.0, libc::SIGCONT);
    assert_eq!(
        customer.closed().await.map(u16::from),
        Some(1012),
        "the fenced node lets go of its customer"
    );
    let after = until_registered(conn, name).await;
    assert!(after > before, "incarnation {after} after {before}");
}

/// Waits until `node` is no longer registered (reaped, or gone of itself).
pub(crate) async fn until_reaped(conn: &mut redis::aio::ConnectionManager, node: &str) {
    eventually(&format!("{node} is reaped"), || {
        let mut conn = conn.clone();
        async move { registered(&mut conn, node).await.is_none().then_some(()) }
    })
    .await
}

/// `hub`'s health once it shows its Redis connection `state` ("up" or "down").
pub(crate) async fn redis_shows(hub: &TestHub, state: &str) -> Value {
    health_when(hub, WAIT, &format!("Redis never showed {state}"), |health| {
        health["cluster"]["redis"] == state
    })
    .await
}

/// The live figures `admin` reads (`/api/admin/stats`) once `shown` accepts them.
pub(crate) async fn stats_showing(admin: &Api, what: &str, shown: impl Fn(&Value) -> bool) -> Value {
    until_ok(WAIT, &format!("never happened: {what}"), async || {
        let (_, stats) = admin.get("/api/admin/stats").await;
        accepted(stats, &shown)
    })
    .await
}

/// An agent account made on `hub`, signed in there and set available (their profile
/// not read yet); the socket and the session token (to sign in again elsewhere).
pub(crate) async fn available_agent(hub: &TestHub, name: &str, categories: &[&str], limit: u8) -> (Ws, String) {
    let token = hub.agent_account(name, categories, limit).await;
    let mut agent = Ws::agent(hub, &token).await;
    agent.send(json!({"type": "set_available", "available": true})).await;
    (agent, token)
}

/// The agent of session `token` signed in on the hub process at `bind` and set available,
/// their profile read: their socket.
pub(crate) async fn available_agent_at(bind: &str, token: &str) -> Ws {
    let auth = format!("Bearer {token}");
    let mut agent = Ws::connect(&format!("ws://{bind}/ws/agent"), &[("authorization", &auth)])
        .await
        .unwrap();
    agent.next_of("agent_welcome").await;
    agent.send(json!({"type": "set_available", "available": true})).await;
    agent.next_of("profile").await;
    agent
}

/// The agent `agent` (limit `limit`, category "general") signed in on `agent_hub` and
/// available (their profile read), and the customer `customer`, who joined "general" on
/// `customer_hub` (the same hub or another node), paired and both told: the agent's and
/// the customer's sockets and the chat's id.
pub(crate) async fn paired(
    agent_hub: &TestHub,
    agent: &str,
    limit: u8,
    customer_hub: &TestHub,
    customer: &str,
) -> (Ws, Ws, Value) {
    let mut agent = agent_hub.agent(agent, &["general"], limit).await;
    let (customer, chat) = customer_hub.customer_in_chat(customer, "general").await;
    agent.next_of("chat_started").await;
    (agent, customer, chat)
}

/// `frame` (a chat message) sent by `from`: acknowledged with `seq`, and delivered to `to`
/// with it.
pub(crate) async fn sent_and_seen(from: &mut Ws, to: &mut Ws, frame: Value, seq: u64) {
    from.send(frame).await;
    assert_eq!(from.next_of("ack").await["seq"], seq);
    assert_eq!(to.next_of("message").await["seq"], seq);
}

/// `text` sent by the customer `ws` with `client_id` while Redis is away: refused
/// `cluster_unavailable`, naming the client id.
pub(crate) async fn refused_for_now(ws: &mut Ws, text: &str, client_id: &str) {
    ws.send(json!({"type": "message", "text": text, "client_id": client_id}))
        .await;
    ws.next_refusal("cluster_unavailable", client_id).await;
}

/// A customer who joined `category` on the hub process at `bind`, their welcome read
/// (as [`TestHub::customer`] on a node in this process).
pub(crate) async fn customer_on(bind: &str, name: &str, category: &str) -> Ws {
    let mut ws = Ws::connect(&format!("ws://{bind}/ws/customer"), &[]).await.unwrap();
    ws.send(json!({"type": "join", "name": name, "category": category}))
        .await;
    let welcome = ws.next_of("welcome").await;
    ws.token = welcome["resume_token"].as_str().map(String::from);
    ws
}

/// A chat across nodes, as [`chat_across_nodes`] opened it. The fields drop in order:
/// the clients, then the nodes, then Redis and the scratch directory they use (bind
/// `servers` to a name when taking it apart: a field left to `..` is dropped at once).
pub(crate) struct ChatAcrossNodes<const N: usize> {
    /// Ann, on `nodes[1]`, and her session token (to sign in again elsewhere).
    pub agent: Ws,
    pub agent_token: String,
    /// Carla, on `nodes[0]`.
    pub customer: Ws,
    /// The chat's id as both sides were told it.
    pub chat: String,
    pub nodes: [TestHub; N],
    pub store: SharedStore,
    pub servers: Servers,
}

impl<const N: usize> ChatAcrossNodes<N> {
    /// The fields, in their order, for a test to bind in one line: `_` for those it does
    /// not need (dropped at once, as a pattern's `..` drops them), and the others drop in
    /// the struct's order.
    #[allow(clippy::type_complexity)]
    pub(crate) fn parts(self) -> (Ws, String, Ws, String, [TestHub; N], SharedStore, Servers) {
        (
            self.agent,
            self.agent_token,
            self.customer,
            self.chat,
            self.nodes,
            self.store,
            self.servers,
        )
    }
}

/// Starts one node per name (N ≥ 2, resume grace 10 s, so a side may move to another
/// node and come back in time) and opens a chat: the agent "ann" (limit 1, category
/// "general") signs in on the second node and is available; the customer "Carla" joins
/// on the first and both are told of the chat.
pub(crate) async fn chat_across_nodes<const N: usize>(scratch: &str, names: [&str; N]) -> ChatAcrossNodes<N> {
    chat_across_nodes_with(scratch, names, |s| s.resume_grace = Duration::from_secs(10)).await
}

/// One line each way, one after the other so that the customer's "one" is seq 1 and the
/// agent's "two" seq 2 (sent at once, Redis may stamp them either way): the agent gets the
/// first, and an ack for the second.
pub(crate) async fn one_then_two(customer: &mut Ws, agent: &mut Ws, chat: &str) {
    customer.send(json!({"type": "message", "text": "one"})).await;
    assert_eq!(agent.next_of("message").await["seq"], 1);
    agent
        .send(json!({"type": "message", "chat_id": chat, "text": "two"}))
        .await;
    assert_eq!(agent.next_of("ack").await["seq"], 2);
}

/// As [`chat_across_nodes`], every node's settings changed by `tweak` after the cluster's.
pub(crate) async fn chat_across_nodes_with<const N: usize>(
    scratch: &str,
    names: [&str; N],
    tweak: impl Fn(&mut Settings) + Copy,
) -> ChatAcrossNodes<N> {
    assert!(N >= 2, "a chat across nodes needs two of them");
    let (nodes, servers) = nodes(scratch, names, tweak).await;
    let store = servers.store.clone();
    let (mut agent, agent_token) = available_agent(&nodes[1], "ann", &["general"], 1).await;
    let mut customer = nodes[0].customer("Carla", "general").await;
    let chat = customer.next_of("chat_started").await["chat_id"]
        .as_str()
        .expect("a chat id")
        .to_string();
    agent.next_of("chat_started").await;
    ChatAcrossNodes {
        agent,
        agent_token,
        customer,
        chat,
        nodes,
        store,
        servers,
    }
}

/// A customer's `resume` on `hub` with `token` and `last_seq`, sent once: the connection
/// and its answer, the first frame of type `answer` or `error`.
pub(crate) async fn resume_tried(hub: &Endpoint, token: &str, last_seq: u64, answer: &str) -> (Ws, Value) {
    let mut ws = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    ws.send(json!({"type": "resume", "token": token, "last_seq": last_seq}))
        .await;
    let answered = ws.next_matching(|f| f["type"] == answer || f["type"] == "error").await;
    (ws, answered)
}

/// A customer's `resume` on `hub` with `token`, again for up to `within` while it is
/// refused `cluster_unavailable` (closed 1013, or not), as docs/protocol.md tells clients
/// to: the connection and its `resumed`. Any other refusal (`resume_expired`) fails the
/// test, named by `context`.
pub(crate) async fn resumed_on(
    hub: &Endpoint,
    token: &str,
    last_seq: u64,
    within: Duration,
    context: &str,
) -> (Ws, Value) {
    resume_answered(hub, token, last_seq, within, context, "resumed").await
}

/// As [`resumed_on`], until the resume is answered with a frame of type `answer` (a
/// conversation handed over where the customer comes back is `transferred`): the
/// connection and that frame.
pub(crate) async fn resume_answered(
    hub: &Endpoint,
    token: &str,
    last_seq: u64,
    within: Duration,
    context: &str,
    answer: &str,
) -> (Ws, Value) {
    let deadline = Instant::now() + within;
    loop {
        let (ws, answered) = resume_tried(hub, token, last_seq, answer).await;
        if answered["type"] == answer {
            return (ws, answered);
        }
        assert_eq!(answered["code"], "cluster_unavailable", "{context}: {answered}");
        assert!(Instant::now() < deadline, "{context}: never answered {answer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
