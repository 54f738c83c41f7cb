//! The cluster's full-size scenarios: three REAL hub processes (the built binary, on the
//! test MongoDB-wire server from `scripts/with-mongo.sh`, one real `redis-server`),
//! scripted clients spread over them (`cluster_scenario_clients`), and the checker
//! (`cluster_checker`) over everything the clients observed, the line's events as Redis
//! committed them, and the archive read back through the store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::aio::ConnectionManager;
use serde_json::{Value, json};
use switchboard::cluster::routing_events::{RoutingEvent, read_events};
use switchboard::core::routing::Decision;
use switchboard::store::{ArchiveStore, MongoStore};
use tokio::sync::{RwLock, watch};
use tokio_util::sync::CancellationToken;

use crate::archive::{TempDir, mongo_uri, port_open};
use crate::cluster_checker::{Fault, History, LineEvent, Msg, Seen, check};
use crate::cluster_hub::registered;
use crate::cluster_scenario_clients::{Ctx, Phase, Run, Traffic, agent, clock, customer};
use crate::common::Running;
use crate::common::{ADMIN_PASSWORD, Api, Endpoint, Ws, signal};
use crate::mongod::unassigned_port;
use crate::redis_server::RedisServer;
use crate::storeops::hub_command;

/// How long the cluster may take for what it must do (start, reap, settle, archive).
const WAIT: Duration = Duration::from_secs(120);
/// How long the archive may take to hold every finished chat's closing once every client
/// is done (it takes well under a second; a chat whose closing nobody archives would
/// hold a failing run up for all of [`WAIT`]).
const ARCHIVE_WAIT: Duration = Duration::from_secs(60);
/// How many chats [`Cluster::archive`] reads back at once.
const ARCHIVE_READS_AT_ONCE: usize = 8;
/// One scenario at a time in this test binary, and nothing else of these clusters beside
/// it: each runs three hub processes and hundreds of clients, and two at once on a small
/// machine starve the nodes' lease renewals (they then refuse joins with
/// `cluster_unavailable`, or are fenced). A scenario takes it alone ([`RwLock::write`]).
/// The stall tests (`cluster_stall`: one agent and a customer or two on three nodes,
/// mostly waiting out a lease) share it with each other ([`RwLock::read`]): `make
/// test-alone` runs them two at a time, which keeps a 2-core machine far from busy.
pub(crate) static ONE_SCENARIO_AT_A_TIME: RwLock<()> = RwLock::const_new(());

/// Three node processes on one MongoDB database and one Redis. A node stopped with
/// SIGSTOP is killed all the same when the cluster is dropped (SIGKILL ends a stopped
/// process too), so a failing test leaves nothing frozen behind.
pub(crate) struct Cluster {
    redis: RedisServer,
    /// Where Redis keeps its append-only file, when it persists (scenario 4).
    redis_dir: Option<std::path::PathBuf>,
    conn: ConnectionManager,
    scratch: TempDir,
    uri: String,
    db: String,
    nodes: Vec<Option<Running>>,
    binds: Vec<String>,
    resume_grace_secs: u64,
    lease_ms: u64,
    /// The routing events read just before Redis came back empty (scenario 4): the
    /// stream starts again after it.
    earlier_events: Vec<RoutingEvent>,
    /// Further settings every node gets (a test's own, e.g. a test-only hook).
    extra_env: Vec<(String, String)>,
}

pub(crate) fn node_name(i: usize) -> String {
    format!("node{i}")
}

impl Cluster {
    /// [`Cluster::start_env`] without further settings; with `persistent_redis`, Redis keeps every write it answers
    /// (`--appendonly yes --appendfsync always`), so it can be killed and come back with
    /// its data.
    async fn start_with(tag: &str, resume_grace_secs: u64, lease_ms: u64, persistent_redis: bool) -> Self {
        Self::start_full(tag, resume_grace_secs, lease_ms, persistent_redis, &[]).await
    }

    /// Starts the three nodes (the first alone, as it creates the admin and the
    /// categories; then the other two side by side, as an operator's nodes start), each
    /// registered before this returns, with further settings for every node (`extra_env`).
    pub(crate) async fn start_env(
        tag: &str,
        resume_grace_secs: u64,
        lease_ms: u64,
        extra_env: &[(&str, &str)],
    ) -> Self {
        Self::start_full(tag, resume_grace_secs, lease_ms, false, extra_env).await
    }

    async fn start_full(
        tag: &str,
        resume_grace_secs: u64,
        lease_ms: u64,
        persistent_redis: bool,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let scratch = TempDir::new(tag);
        let redis_dir = persistent_redis.then(|| scratch.0.join("redis"));
        let redis = match &redis_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).unwrap();
                RedisServer::start_with(unassigned_port(), Some(dir)).await
            }
            None => RedisServer::start().await,
        };
        let client = redis::Client::open(redis.url()).unwrap();
        let conn = ConnectionManager::new(client).await.unwrap();
        let (uri, db) = (mongo_uri(), format!("t{}", uuid::Uuid::new_v4().simple()));
        // Below the ephemeral range: a node restarts on its port, and an outgoing
        // connection of another process (a node's pool to Redis or MongoDB) must not hold
        // it meanwhile, nor before its first start.
        let mut ports = BTreeSet::new();
        while ports.len() < 3 {
            ports.insert(unassigned_port());
        }
        let binds = ports.into_iter().map(|port| format!("127.0.0.1:{port}")).collect();
        let mut cluster = Cluster {
            redis,
            redis_dir,
            conn,
            scratch,
            uri,
            db,
            nodes: vec![],
            binds,
            resume_grace_secs,
            lease_ms,
            earlier_events: vec![],
            extra_env: extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let first = cluster.spawn_node(0).await;
        let (second, third) = tokio::join!(cluster.spawn_node(1), cluster.spawn_node(2));
        cluster.nodes.extend([first, second, third].map(Some));
        cluster
    }

    /// Starts node `i`'s process (its id, port, data directory and settings are always
    /// the same: a restart is the same node again) and returns once it is registered.
    async fn spawn_node(&self, i: usize) -> Running {
        let bind = self.binds[i].clone();
        let port: u16 = bind.rsplit(':').next().unwrap().parse().unwrap();
        let data_dir = self.scratch.0.join(node_name(i));
        let (url, name) = (self.redis.url(), node_name(i));
        let data_dir = data_dir.to_string_lossy().to_string();
        let grace = self.resume_grace_secs.to_string();
        let (lease, renew) = (self.lease_ms.to_string(), (self.lease_ms / 5).to_string());
        // `SCENARIO_RUST_LOG` for a closer look at a failing run.
        let rust_log = std::env::var("SCENARIO_RUST_LOG").unwrap_or_else(|_| "warn".into());
        let envs = [
            ("BIND_ADDR", bind.as_str()),
            ("STORE", "mongodb"),
            ("MONGODB_URI", self.uri.as_str()),
            ("MONGODB_DB", self.db.as_str()),
            ("REDIS_URL", url.as_str()),
            ("NODE_ID", name.as_str()),
            ("CLUSTER_LEASE_MS", lease.as_str()),
            ("CLUSTER_RENEW_MS", renew.as_str()),
            ("RESUME_GRACE_SECS", grace.as_str()),
            ("DATA_DIR", data_dir.as_str()),
            ("RATE_LIMIT_PER_SEC", "1000"),
            ("RATE_LIMIT_BURST", "1000"),
            ("MAX_CONNECTIONS_PER_ADDRESS", "100000"),
            ("RUST_LOG", rust_log.as_str()),
        ];
        let mut envs = envs.to_vec();
        envs.extend(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut command = hub_command(&self.scratch.0, &envs, &["serve"]);
        // A restarted node's log goes on after its first life's.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.scratch.0.join(format!("{name}.log")))
            .unwrap();
        // Its standard error too: a node that stops at start-up says why there, not in
        // its log (`switchboard: …`), and a failing scenario prints this file.
        let errors = log.try_clone().expect("the log file opens twice");
        command.stdout(log).stderr(errors);
        let mut running = Running(command.spawn().expect("the hub binary starts"));
        let log_of = |name: &str| {
            let log = std::fs::read_to_string(self.scratch.0.join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        let deadline = Instant::now() + WAIT;
        let started = NodeStarting {
            name: &name,
            deadline,
            log_of: &log_of,
        };
        started
            .until(&mut running, "listened", async || port_open(port).await)
            .await;
        // Its own handle on the test's connection: two nodes may start at once.
        let mut conn = self.conn.clone();
        let joined = async || registered(&mut conn, &name).await.is_some();
        started.until(&mut running, "joined the cluster", joined).await;
        running
    }

    /// `kill -9` of node `i`, at once (nobody waits for its reap).
    pub(crate) fn kill(&mut self, i: usize) {
        let mut running = self.nodes[i].take().expect("the node runs");
        running.0.kill().unwrap();
        let _ = running.0.wait();
    }

    /// Starts killed node `i` again, the same node (id, port, settings); returns once it
    /// is registered.
    async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node{i} was killed first");
        let node = self.spawn_node(i).await;
        self.nodes[i] = Some(node);
    }

    /// Redis killed (SIGKILL) and, after `down`, started again on its port: with its data
    /// (`keep`: its append-only file, every answered write in it) or empty (a fresh
    /// directory). Before an empty one, the routing events so far are read, for the checker.
    async fn restart_redis(&mut self, keep: bool, down: Duration) {
        let port = self.redis.port;
        if !keep {
            self.earlier_events = self.events().await;
        }
        self.redis.kill();
        tokio::time::sleep(down).await;
        let dir = self.redis_dir.clone().expect("a persistent Redis");
        let dir = if keep {
            dir
        } else {
            let fresh = dir.with_file_name(format!("redis-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&fresh).unwrap();
            self.redis_dir = Some(fresh.clone());
            fresh
        };
        self.redis = RedisServer::start_with(port, Some(&dir)).await;
    }

    /// `CLIENT KILL TYPE normal` then `TYPE pubsub`: every node's Redis connections cut
    /// (the test's own is spared: SKIPME). How many were cut.
    async fn cut_redis_connections(&mut self) -> (u64, u64) {
        let cut = |kind: &'static str| {
            let mut conn = self.conn.clone();
            async move {
                // The test's own connection may have broken with Redis's restart: the
                // manager reconnects.
                for _ in 0..50 {
                    let killed: redis::RedisResult<u64> = redis::cmd("CLIENT")
                        .arg("KILL")
                        .arg("TYPE")
                        .arg(kind)
                        .query_async(&mut conn)
                        .await;
                    match killed {
                        Ok(killed) => return killed,
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                panic!("CLIENT KILL TYPE {kind} never answered")
            }
        };
        let normal = cut("normal").await;
        let pubsub = cut("pubsub").await;
        (normal, pubsub)
    }

    /// Once every node that answers has written all its archive events (`/healthz`'s
    /// `archive_backlog` 0), or after [`ARCHIVE_WAIT`]; a node that refuses the connection
    /// (one killed for good) holds nothing to wait for, a slow one is asked again.
    async fn archives_written(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + ARCHIVE_WAIT;
        for bind in &self.binds {
            let url = format!("http://{bind}/healthz");
            while Instant::now() < deadline {
                let health = match client.get(&url).timeout(Duration::from_secs(2)).send().await {
                    Ok(answer) => answer.json::<Value>().await.ok(),
                    Err(e) if e.is_connect() => break,
                    Err(_) => None,
                };
                if health.is_some_and(|h| h["archive_backlog"] == 0) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    fn ws_urls(&self) -> Vec<String> {
        self.binds.iter().map(|b| format!("ws://{b}")).collect()
    }

    /// Node `i`'s HTTP side.
    pub(crate) fn endpoint(&self, i: usize) -> Endpoint {
        Endpoint::at(&self.binds[i])
    }

    pub(crate) async fn login(&self, username: &str, password: &str) -> Api {
        Endpoint::at(&self.binds[0]).login(username, password).await
    }

    /// Creates the agent account (through node 0) and signs them in: their bearer token.
    pub(crate) async fn agent_token(&self, admin: &Api, username: &str, categories: &[&str], limit: usize) -> String {
        let account = json!({"username": username, "display_name": username.to_uppercase(), "password": "agent-password",
                             "categories": categories, "max_chats": limit});
        admin.post_answering(201, "/api/admin/agents", account).await;
        self.login(username, "agent-password").await.token
    }

    /// `kill -9` of node `i`; returns once a live node has reaped it.
    async fn kill_and_wait_for_the_reap(&mut self, i: usize) {
        let mut running = self.nodes[i].take().expect("the node runs");
        running.0.kill().unwrap();
        let _ = running.0.wait();
        self.wait_for_the_reap(i).await;
    }

    /// Returns once node `i` is no longer registered (a live node reaped it).
    pub(crate) async fn wait_for_the_reap(&mut self, i: usize) {
        let deadline = Instant::now() + WAIT;
        while self.incarnation(i).await.is_some() {
            assert!(Instant::now() < deadline, "{} was never reaped", node_name(i));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The incarnation Redis holds for node `i`, if it is registered.
    pub(crate) async fn incarnation(&mut self, i: usize) -> Option<u64> {
        registered(&mut self.conn, &node_name(i)).await
    }

    /// Trims the routing events stream to nothing (`XTRIM MAXLEN 0`), as `MAXLEN ~` does
    /// under load: a node behind it reloads its replica from a snapshot. How many went.
    pub(crate) async fn trim_routing_events(&mut self) -> u64 {
        redis::cmd("XTRIM")
            .arg("{sb}:routing-events")
            .arg("MAXLEN")
            .arg(0)
            .query_async(&mut self.conn)
            .await
            .unwrap()
    }

    /// Sends `sig` (SIGSTOP, SIGCONT) to node `i`'s process.
    pub(crate) fn signal(&self, i: usize, sig: libc::c_int) {
        signal(&self.nodes[i].as_ref().expect("the node runs").0, sig);
    }

    /// `ws://…{path}` on node `i`.
    pub(crate) fn ws_url(&self, i: usize, path: &str) -> String {
        format!("ws://{}{path}", self.binds[i])
    }

    /// The agent signed in on node `i` with their bearer `token`, their welcome read
    /// (not yet available).
    pub(crate) async fn agent_on(&self, i: usize, token: &str) -> Ws {
        let mut ws = self.agent_socket(i, token).await;
        ws.next_of("agent_welcome").await;
        ws
    }

    /// The agent's socket on node `i`, signed in with their bearer `token` (nothing read).
    pub(crate) async fn agent_socket(&self, i: usize, token: &str) -> Ws {
        let auth = format!("Bearer {token}");
        Ws::connect(&self.ws_url(i, "/ws/agent"), &[("authorization", &auth)])
            .await
            .unwrap()
    }

    /// The node whose `node_lost` reaped node `i`, if one did.
    pub(crate) async fn reaper_of(&mut self, i: usize) -> Option<usize> {
        let lost = node_name(i);
        self.events()
            .await
            .iter()
            .rev()
            .find(|e| e.transition == "node_lost" && e.args.first() == Some(&lost))
            .and_then(|e| (0..3).find(|&n| node_name(n) == e.node))
    }

    /// Every routing event, in the order Redis committed them (those read before Redis
    /// came back empty first).
    async fn events(&mut self) -> Vec<RoutingEvent> {
        let mut all = self.earlier_events.clone();
        let mut after = "0-0".to_string();
        loop {
            // Its connection may have broken with a Redis restart: the manager reconnects.
            let mut tries = 0;
            let events = loop {
                match read_events(&mut self.conn, &after, 5_000).await {
                    Ok(events) => break events,
                    Err(why) if tries < 50 => {
                        tries += 1;
                        eprintln!("reading the routing events: {why}; again");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(why) => panic!("the routing events: {why}"),
                }
            };
            let Some(last) = events.last() else { break };
            after = last.id.clone();
            all.extend(events);
        }
        all
    }

    /// The line's events, in the order Redis committed them, customers named.
    async fn line(&mut self) -> Vec<LineEvent> {
        let mut names: HashMap<u64, String> = HashMap::new();
        let mut line = vec![];
        for event in self.events().await {
            let name =
                |names: &HashMap<u64, String>, id: u64| names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"));
            if event.transition == "customer_resumed"
                && let Some(id) = event.args.first().and_then(|a| a.parse::<u64>().ok())
            {
                line.push(LineEvent::Back {
                    customer: name(&names, id),
                });
            }
            let mut tickets = event.applied.queued_tickets.iter();
            for decision in &event.applied.decisions {
                match decision {
                    Decision::Queued { customer, category, .. } => {
                        if event.transition == "join" {
                            names.insert(customer.0, event.args[2].clone());
                        }
                        line.push(LineEvent::Entered {
                            category: category.0.to_string(),
                            customer: name(&names, customer.0),
                            ticket: tickets.next().expect("a ticket per Queued").0,
                        });
                    }
                    Decision::Paired {
                        customer,
                        category,
                        ticket,
                        ..
                    } => {
                        if event.transition == "join" {
                            names.insert(customer.0, event.args[2].clone());
                        }
                        line.push(LineEvent::Served {
                            category: category.0.to_string(),
                            customer: name(&names, customer.0),
                            ticket: ticket.0,
                        });
                    }
                    Decision::ChatEnded { customer, .. } | Decision::ChatWithdrawn { customer, .. } => {
                        line.push(LineEvent::ChatOver {
                            customer: name(&names, customer.0),
                        })
                    }
                    Decision::Dequeued { customer, .. } => line.push(LineEvent::Left {
                        customer: name(&names, customer.0),
                    }),
                    Decision::CustomerGraceStarted { customer, .. } => line.push(LineEvent::Away {
                        customer: name(&names, customer.0),
                    }),
                    _ => {}
                }
            }
        }
        line
    }

    /// Every chat's archived messages, read back through the store once every chat of
    /// `must_close` is closed (the customer's node archives the closing after the last
    /// message), or after [`ARCHIVE_WAIT`] with what is there; the chats still open then.
    async fn archive(
        &self,
        chats: &BTreeSet<String>,
        must_close: &BTreeSet<String>,
    ) -> (BTreeMap<String, Vec<Msg>>, Vec<String>) {
        let store = MongoStore::connect(&self.uri, &self.db).await.unwrap();
        let deadline = Instant::now() + ARCHIVE_WAIT;
        let mut archive = BTreeMap::new();
        let mut open = chats.iter().cloned().collect::<Vec<_>>();
        while open.iter().any(|chat| must_close.contains(chat)) {
            let mut still = vec![];
            // A few reads at a time: each is several round trips to the MongoDB-wire server,
            // and one after the other they took 8 s for scenario 1's 300 chats.
            let reads: Vec<_> = futures_util::stream::iter(open)
                .map(|chat| async {
                    let read = store.conversation(&chat).await;
                    (chat, read)
                })
                .buffered(ARCHIVE_READS_AT_ONCE)
                .collect()
                .await;
            for (chat, read) in reads {
                match read {
                    Ok(record) => {
                        let messages = record
                            .messages
                            .iter()
                            .map(|m| Msg {
                                chat: chat.clone(),
                                seq: m.seq,
                                id: m.id.to_string(),
                                client_id: None,
                            })
                            .collect();
                        archive.insert(chat.clone(), messages);
                        if record.closed.is_none() {
                            still.push(chat);
                        }
                    }
                    Err(_) => still.push(chat),
                }
            }
            open = still;
            if Instant::now() > deadline {
                break;
            }
            if !open.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        (archive, open)
    }

    /// Whether node `i`'s log so far has a line holding `what`.
    pub(crate) fn said(&self, i: usize, what: &str) -> bool {
        std::fs::read_to_string(self.scratch.0.join(format!("{}.log", node_name(i))))
            .is_ok_and(|said| said.contains(what))
    }

    /// The last lines of each node's log, for a failure's message; with `SCENARIO_LOGS`
    /// (a directory), each whole log is copied there too.
    pub(crate) fn logs(&self) -> String {
        if let Ok(dir) = std::env::var("SCENARIO_LOGS") {
            let _ = std::fs::create_dir_all(&dir);
            for i in 0..3 {
                let name = format!("{}.log", node_name(i));
                let _ = std::fs::copy(self.scratch.0.join(&name), std::path::Path::new(&dir).join(&name));
            }
        }
        (0..3)
            .map(|i| {
                let said =
                    std::fs::read_to_string(self.scratch.0.join(format!("{}.log", node_name(i)))).unwrap_or_default();
                let tail: Vec<&str> = said.lines().rev().take(15).collect();
                format!(
                    "--- {} ---\n{}",
                    node_name(i),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A node process on its way up: its name, by when it must be up, and how to read the
/// tail of its log (shown when it is not).
struct NodeStarting<'a> {
    name: &'a str,
    deadline: Instant,
    log_of: &'a dyn Fn(&str) -> String,
}

impl NodeStarting<'_> {
    /// Waits until `done` says the node `running` has `what` (listened, joined the
    /// cluster); fails, with its log, if it exits first or the deadline passes.
    async fn until(&self, running: &mut Running, what: &str, mut done: impl AsyncFnMut() -> bool) {
        let name = self.name;
        while !done().await {
            if let Some(status) = running.0.try_wait().unwrap() {
                panic!(
                    "{name} exited ({status}) before it {what}; its log:\n{}",
                    (self.log_of)(name)
                );
            }
            assert!(
                Instant::now() < self.deadline,
                "{name} never {what}; its log:\n{}",
                (self.log_of)(name)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until every client's phase is one of `phases` (names missing count as not);
/// fails with who is behind and the nodes' logs.
/// Customers quiet between messages: each in a chat (its first exchange done) or in line.
const IN_A_CHAT_OR_IN_LINE: &[Phase] = &[Phase::Ready, Phase::Waiting];
/// Customers done: each left after their chat, or lost with their node.
const FINISHED_OR_GONE: &[Phase] = &[Phase::Finished, Phase::Gone];

async fn settle(cluster: &Cluster, ctx: &Ctx, names: &[String], phases: &[Phase], what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let behind: Vec<(String, Option<Phase>)> = {
            let now = ctx.phases.lock().unwrap();
            names
                .iter()
                .map(|n| (n.clone(), now.get(n).copied()))
                .filter(|(_, p)| !p.is_some_and(|p| phases.contains(&p)))
                .collect()
        };
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} never got there: {:?}\n{}\n{}",
            behind.len(),
            &behind[..behind.len().min(30)],
            behind.iter().take(3).map(|(n, _)| ctx.story(n)).collect::<String>(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The scenario's shape.
struct Shape {
    agents: usize,
    /// Agent `i` holds `agent_categories(i)`, limit `i % 4 + 1`.
    agent_categories: fn(usize) -> Vec<&'static str>,
    customers: usize,
    /// Customer `j` joins `customer_category(j)`.
    customer_category: fn(usize) -> &'static str,
    /// `Some((node, comes_back))`: kill -9 that node once every chat is running and the
    /// rest wait, then its people come back elsewhere (or not).
    kill: Option<(usize, bool)>,
    resume_grace_secs: u64,
    /// `CLUSTER_LEASE_MS`: short where a kill must be noticed soon, long otherwise (a
    /// loaded machine's late renewal fences a node).
    lease_ms: u64,
    /// Scenario 3: a node stopped for a while under the traffic, then woken.
    stall: Option<Stall>,
    /// Scenario 3: the clients' random script (and the customers' joins spread over
    /// `join_over`); `None`: the fixed script, every customer at once.
    traffic: Option<Traffic>,
    join_over: Duration,
    /// Scenario 4: every fault in turn under the traffic (Redis persists, to come back
    /// with its data).
    parade: Option<Parade>,
}

/// Scenario 4's faults, one after the other, `recovery` apart (and before the first):
/// node `killed` gets `kill -9` and is started again (same id, port, settings)
/// `killed_for` later; node `stopped` is stopped (SIGSTOP) for twice the lease and until
/// reaped, then woken; Redis is killed and started again with its data, then killed and
/// started again empty (each `redis_down` down); the nodes' Redis connections are cut
/// (`CLIENT KILL TYPE normal`, then `TYPE pubsub`).
struct Parade {
    killed: usize,
    killed_for: Duration,
    stopped: usize,
    redis_down: Duration,
    recovery: Duration,
}

/// Node `node` is stopped (SIGSTOP) `after` the customers start, for `window`, then
/// woken (SIGCONT). Its people move at once when their connection closes or an
/// acknowledgement keeps them waiting past their patience.
struct Stall {
    node: usize,
    after: Duration,
    window: Duration,
}

/// What a scenario leaves for its own assertions.
struct Outcome {
    customers: Vec<Run>,
    agents: Vec<Run>,
    line: Vec<LineEvent>,
    /// Chats whose closing never reached the archive.
    unclosed: Vec<String>,
    elapsed: Duration,
    /// The clients' traces, for a failed assertion's story.
    ctx: Ctx,
}

impl Outcome {
    /// How many clients moved to another node.
    fn moved(&self) -> usize {
        self.customers
            .iter()
            .chain(&self.agents)
            .filter(|r| r.back.is_some())
            .count()
    }

    /// Fails unless `c` finished, with their story (what they and their agents sent and
    /// got, stamped to line up with the faults).
    fn assert_finished(&self, c: &Run) {
        assert!(
            c.finished,
            "{} never finished\n{}",
            c.person.name,
            self.ctx.story(&c.person.name)
        );
    }
}

/// Agent `i` of scenarios 2 to 4: general, sales, or both, in turn.
fn general_sales_or_both(i: usize) -> Vec<&'static str> {
    match i % 3 {
        0 => vec!["general"],
        1 => vec!["sales"],
        _ => vec!["general", "sales"],
    }
}

/// Customer `j` of scenarios 2 to 4: general and sales in turn.
fn general_or_sales(j: usize) -> &'static str {
    ["general", "sales"][j % 2]
}

/// Scenarios 3 and 4's random script, drawn from `seed`.
fn random_traffic(seed: u64) -> Traffic {
    Traffic {
        seed,
        max_exchanges: 4,
        max_think: Duration::from_millis(800),
        patience: (Duration::from_secs(1), Duration::from_secs(3)),
        agent_ends: 0.2,
        agent_ends_when_away: 0.5,
    }
}

/// `SCENARIO_SEED` if set, else `seed`.
fn seed_or_env(seed: u64) -> u64 {
    std::env::var("SCENARIO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(seed)
}

/// Runs a scenario and the checker; panics with every fault (and the nodes' logs).
async fn run(tag: &str, shape: Shape) -> Outcome {
    let _alone = ONE_SCENARIO_AT_A_TIME.write().await;
    let started = Instant::now();
    let mut cluster = Cluster::start_with(tag, shape.resume_grace_secs, shape.lease_ms, shape.parade.is_some()).await;
    let admin = cluster.login("admin", ADMIN_PASSWORD).await;
    let (go_tx, go) = watch::channel(shape.kill.is_none());
    // Under a stall nobody waits for a reap to move (as a real client would not).
    let (reaped_tx, reaped) = watch::channel(shape.stall.is_some() || shape.parade.is_some());
    let ctx = Ctx {
        nodes: Arc::new(cluster.ws_urls()),
        go,
        reaped,
        comes_back: shape.kill.is_some_and(|(_, back)| back) || shape.stall.is_some() || shape.parade.is_some(),
        phases: Arc::new(Mutex::new(HashMap::new())),
        done: CancellationToken::new(),
        trace: Arc::default(),
        traffic: shape.traffic,
    };

    // The agents first, each available before any customer joins.
    let mut agent_tasks = vec![];
    let mut agent_names = vec![];
    for i in 0..shape.agents {
        let name = format!("agent{i:02}");
        let limit = i % 4 + 1;
        let token = cluster
            .agent_token(&admin, &name, &(shape.agent_categories)(i), limit)
            .await;
        agent_tasks.push(tokio::spawn(agent(i, name.clone(), limit, token, i % 3, ctx.clone())));
        agent_names.push(name);
    }
    settle(&cluster, &ctx, &agent_names, &[Phase::Ready], "agents available").await;

    // Every customer at once (or spread over `join_over`), spread over the nodes.
    let customer_names: Vec<String> = (0..shape.customers).map(|j| format!("cust{j:03}")).collect();
    let mut joins = StdRng::seed_from_u64(shape.traffic.map_or(0, |t| t.seed));
    let customer_tasks: Vec<_> = customer_names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let category = (shape.customer_category)(j).to_string();
            let late = joins.random_range(Duration::ZERO..=shape.join_over);
            let joining = customer(j, name.clone(), category, j % 3, ctx.clone());
            tokio::spawn(async move {
                tokio::time::sleep(late).await;
                joining.await
            })
        })
        .collect();

    if let Some(stall) = &shape.stall {
        tokio::time::sleep(stall.after).await;
        cluster.signal(stall.node, libc::SIGSTOP);
        eprintln!("{tag}: {:?} node{} stopped", started.elapsed(), stall.node);
        tokio::time::sleep(stall.window).await;
        // Longer than its lease: reaped (waited for on a slow machine) before it wakes.
        cluster.wait_for_the_reap(stall.node).await;
        cluster.signal(stall.node, libc::SIGCONT);
        eprintln!("{tag}: {:?} node{} woken", started.elapsed(), stall.node);
    }

    if let Some(parade) = &shape.parade {
        let at = |what: String| eprintln!("{tag}: {:?} (clock {:.3}) {what}", started.elapsed(), clock());
        tokio::time::sleep(parade.recovery).await;
        cluster.kill(parade.killed);
        at(format!("1. node{} killed (kill -9)", parade.killed));
        tokio::time::sleep(parade.killed_for).await;
        cluster.restart(parade.killed).await;
        at(format!("1. node{} started again, registered", parade.killed));
        tokio::time::sleep(parade.recovery).await;
        cluster.signal(parade.stopped, libc::SIGSTOP);
        at(format!("2. node{} stopped", parade.stopped));
        tokio::time::sleep(Duration::from_millis(2 * shape.lease_ms)).await;
        cluster.wait_for_the_reap(parade.stopped).await;
        cluster.signal(parade.stopped, libc::SIGCONT);
        at(format!("2. node{} woken", parade.stopped));
        tokio::time::sleep(parade.recovery).await;
        cluster.restart_redis(true, parade.redis_down).await;
        at("3. Redis killed and started again with its data".into());
        tokio::time::sleep(parade.recovery).await;
        cluster.restart_redis(false, parade.redis_down).await;
        at("4. Redis killed and started again empty".into());
        tokio::time::sleep(parade.recovery).await;
        let (normal, pubsub) = cluster.cut_redis_connections().await;
        at(format!("5. Redis connections cut: {normal} normal, {pubsub} pubsub"));
    }

    if let Some((dead, _)) = shape.kill {
        // Quiet: every chat running (first exchange done), everyone else in line.
        settle(&cluster, &ctx, &customer_names, IN_A_CHAT_OR_IN_LINE, "chats running").await;
        eprintln!("{tag}: {:?} chats running, the rest waiting", started.elapsed());
        let killed = Instant::now();
        cluster.kill_and_wait_for_the_reap(dead).await;
        eprintln!("{tag}: node{dead} reaped {:?} after its kill", killed.elapsed());
        reaped_tx.send(true).unwrap();
        if ctx.comes_back {
            // Everyone back before the conversations go on (the resumes happen at once,
            // so their settling is what takes a moment).
            tokio::time::sleep(Duration::from_millis(200)).await;
            settle(&cluster, &ctx, &agent_names, &[Phase::Ready], "agents back").await;
            settle(&cluster, &ctx, &customer_names, IN_A_CHAT_OR_IN_LINE, "customers back").await;
        }
        go_tx.send(true).unwrap();
    }

    settle(&cluster, &ctx, &customer_names, FINISHED_OR_GONE, "customers done").await;
    eprintln!("{tag}: {:?} every customer done", started.elapsed());
    let mut customers = vec![];
    for task in customer_tasks {
        customers.push(
            tokio::time::timeout(WAIT * 2, task)
                .await
                .expect("every customer ends")
                .unwrap(),
        );
    }
    // Let the last acknowledgements reach the agents: a line's is held until its archive
    // write is committed, and on a loaded machine the MongoDB-wire server can be seconds
    // behind (an agent stopped before then counted its own unacknowledged last reply as a
    // gap in the chat's seqs).
    cluster.archives_written().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ctx.done.cancel();
    let mut agents = vec![];
    for task in agent_tasks {
        agents.push(task.await.unwrap());
    }
    let elapsed = started.elapsed();

    let chats: BTreeSet<String> = customers.iter().chain(&agents).flat_map(chats_given).collect();
    // Chats whose customer finished must be archived as closed; a customer whose node
    // died and who never came back has nobody to archive their chat's closing (a known
    // gap, see the report): those are read as they are.
    let must_close: BTreeSet<String> = customers.iter().filter(|c| c.finished).flat_map(chats_given).collect();
    let (archive, unclosed) = cluster.archive(&chats, &must_close).await;
    let unclosed_required: Vec<&String> = unclosed.iter().filter(|c| must_close.contains(*c)).collect();
    eprintln!(
        "{tag}: {:?} archive read ({} chats, {} still open)",
        started.elapsed(),
        chats.len(),
        unclosed.len()
    );
    let line = cluster.line().await;
    let history = History {
        people: customers.iter().chain(&agents).map(|r| r.person.clone()).collect(),
        line: line.clone(),
        archive,
    };
    let faults = check(&history);
    // The counts behind "nothing lost": every acknowledgement, and what the archive holds.
    let acked: Vec<&Msg> = history
        .people
        .iter()
        .flat_map(|p| &p.seen)
        .filter_map(|s| match s {
            Seen::Ack(m) => Some(m),
            _ => None,
        })
        .collect();
    let archived_once = acked
        .iter()
        .filter(|m| {
            history
                .archive
                .get(&m.chat)
                .is_some_and(|kept| kept.iter().filter(|a| a.id == m.id && a.seq == m.seq).count() == 1)
        })
        .count();
    let archived_total: usize = history.archive.values().map(Vec::len).sum();
    eprintln!(
        "{tag}: {} messages acknowledged, {archived_once} of them archived once; {archived_total} messages archived in {} chats",
        acked.len(),
        history.archive.len()
    );
    // Where the sides of the chats with faults were: (customer's node, moved) and (agent's node, moved).
    let sides = |chat: &str| -> Vec<(usize, Option<usize>)> {
        customers
            .iter()
            .chain(&agents)
            .filter(|r| {
                r.person
                    .seen
                    .iter()
                    .any(|s| matches!(s, Seen::ChatStarted { chat: c, .. } if c == chat))
            })
            .map(|r| (r.node, r.back.as_ref().map(|_| r.moved_to)))
            .collect()
    };
    let mut all_moved: BTreeMap<String, usize> = BTreeMap::new();
    for chat in &chats {
        let s = sides(chat);
        if s.iter().any(|(_, m)| m.is_some()) {
            *all_moved.entry(format!("{s:?}")).or_default() += 1;
        }
    }
    eprintln!("{tag}: chats with a side that moved, by (node, moved to) of customer then agent: {all_moved:?}");
    let mut where_: BTreeMap<String, usize> = BTreeMap::new();
    for fault in &faults {
        if let Fault::LostAck { chat, .. } = fault {
            *where_.entry(format!("{:?}", sides(chat))).or_default() += 1;
        }
    }
    if !where_.is_empty() {
        eprintln!("{tag}: lost acks by (node, came back) of customer then agent: {where_:?}");
    }
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for fault in &faults {
        let kind = format!("{fault:?}");
        *kinds
            .entry(kind[..kind.find(' ').unwrap_or(kind.len())].to_string())
            .or_default() += 1;
    }
    // The first few faults' people, one story each (a chat's: its customer's).
    let customer_of = |chat: &str| {
        customers
            .iter()
            .find(|c| chats_given(c).iter().any(|given| given == chat))
            .map(|c| c.person.name.clone())
    };
    let mut told = BTreeSet::new();
    let stories: String = faults
        .iter()
        .filter_map(|f| match f {
            Fault::Duplicate { who, .. } | Fault::SeqGap { who, .. } => Some(who.clone()),
            Fault::DoublePairing { customer, .. }
            | Fault::ResumeExpired { customer }
            | Fault::ResumeTakenBack { customer, .. } => Some(customer.clone()),
            Fault::LostAck { chat, .. } | Fault::ChatNotArchived { chat } => customer_of(chat),
            _ => None,
        })
        .filter(|who| told.insert(who.clone()))
        .take(4)
        .map(|who| ctx.story(&who))
        .collect();
    // What scenario 3 is about, counted for every scenario (all must be 0).
    let count = |is: fn(&Fault) -> bool| faults.iter().filter(|f| is(f)).count();
    eprintln!(
        "{tag}: acknowledged messages lost: {}, archived twice: {}; chats missing from the archive: {}; \
         finished customers' chats not archived as closed: {}; resumes refused resume_expired: {}; \
         resumed then taken back: {}",
        count(|f| matches!(f, Fault::LostAck { archived: 0, .. })),
        count(|f| matches!(f, Fault::LostAck { archived: 2.., .. })),
        count(|f| matches!(f, Fault::ChatNotArchived { .. })),
        unclosed_required.len(),
        count(|f| matches!(f, Fault::ResumeExpired { .. })),
        count(|f| matches!(f, Fault::ResumeTakenBack { .. })),
    );
    assert!(
        faults.is_empty(),
        "{} faults ({kinds:?}), e.g. {:#?}\n{stories}\n{}",
        faults.len(),
        &faults[..faults.len().min(10)],
        cluster.logs()
    );
    // Whose chats they are, as for the faults above: their stories and the nodes' logs.
    let unclosed_stories: String = unclosed_required
        .iter()
        .filter_map(|chat| customer_of(chat))
        .collect::<BTreeSet<_>>()
        .iter()
        .take(4)
        .map(|who| ctx.story(who))
        .collect();
    assert!(
        unclosed_required.is_empty(),
        "chats of customers who finished, never archived as closed: {unclosed_required:?}\n{unclosed_stories}\n{}",
        cluster.logs()
    );
    let errors: Vec<(&str, &Value)> = customers
        .iter()
        .chain(&agents)
        .flat_map(|r| r.errors.iter().map(|e| (r.person.name.as_str(), e)))
        .collect();
    assert!(
        errors.is_empty(),
        "clients were refused: {errors:?}\n{}",
        errors.iter().take(2).map(|(who, _)| ctx.story(who)).collect::<String>()
    );
    let refused: usize = customers.iter().chain(&agents).map(|r| r.refused).sum();
    eprintln!("{tag}: {refused} frames refused with cluster_unavailable (a busy machine) and sent again");
    Outcome {
        customers,
        agents,
        line,
        unclosed,
        elapsed,
        ctx,
    }
}

/// The chats a client was given: started, or held in a snapshot (a customer paired
/// while away learns of their chat from `resumed`).
fn chats_given(run: &Run) -> Vec<String> {
    run.person
        .seen
        .iter()
        .flat_map(|s| match s {
            Seen::ChatStarted { chat, .. } => vec![chat.clone()],
            Seen::Snapshot { chats } => chats.iter().map(|(chat, _)| chat.clone()).collect(),
            _ => vec![],
        })
        .collect()
}

fn chats_started(run: &Run) -> usize {
    run.person
        .seen
        .iter()
        .filter(|s| matches!(s, Seen::ChatStarted { .. }))
        .count()
}

/// Scenario 1: 30 agents (limits 1–4, one to three of three categories) and 300
/// customers joining at once, spread over three node processes: every customer is
/// paired exactly once and finishes (ending their chat frees the agent for the next),
/// and the checker finds nothing (no double pairing, no agent over their limit, no
/// FIFO inversion, no seq gap or duplicate, every acknowledged message archived once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_1_three_hundred_customers_and_thirty_agents_on_three_nodes() {
    let outcome = run(
        "scenario-1",
        Shape {
            agents: 30,
            agent_categories: |i| match i % 3 {
                0 => vec!["general", "billing"],
                1 => vec!["sales"],
                _ => vec!["general", "sales", "billing"],
            },
            customers: 300,
            customer_category: |j| ["general", "sales", "billing"][j % 3],
            kill: None,
            resume_grace_secs: 30,
            lease_ms: 5_000,
            stall: None,
            traffic: None,
            join_over: Duration::ZERO,
            parade: None,
        },
    )
    .await;
    for c in &outcome.customers {
        outcome.assert_finished(c);
        assert_eq!(chats_started(c), 1, "{} paired once", c.person.name);
    }
    let served = outcome
        .line
        .iter()
        .filter(|e| matches!(e, LineEvent::Served { .. }))
        .count();
    assert_eq!(served, 300, "Redis paired each customer once");
    assert!(
        outcome.unclosed.is_empty(),
        "archived as closed: {:?}",
        outcome.unclosed
    );
    eprintln!("scenario 1 took {:?}", outcome.elapsed);
}

/// Scenario 2's shape: 40 agents (limits 1–4, so 100 chats at once; general, sales or
/// both) and 150 customers (half each): 100 chats run and 50 wait when node 2 is killed.
/// The grace period: long enough for everyone to come back after the reap (10 s), or, when
/// nobody does, short (2 s), since the scenario waits all of it out before the dead node's
/// people are released.
fn kill_shape(comes_back: bool) -> Shape {
    Shape {
        agents: 40,
        agent_categories: general_sales_or_both,
        customers: 150,
        customer_category: general_or_sales,
        kill: Some((2, comes_back)),
        resume_grace_secs: if comes_back { 10 } else { 2 },
        lease_ms: 2_000,
        stall: None,
        traffic: None,
        join_over: Duration::ZERO,
        parade: None,
    }
}

/// Scenario 2, its people coming back: node 2 is killed with SIGKILL while 100 chats run
/// and 50 customers wait; once a live node has reaped it, everyone it held reconnects
/// to one of the other two (customers with `resume` and their last complete seq, agents
/// with their session) within the grace period and keeps their chat or place: the
/// conversations go on, nobody's chat ends early, every customer finishes with the one
/// chat they were given, and the checker finds nothing (every acknowledgement archived
/// once, no seq gap or duplicate across the move).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_2_a_killed_nodes_people_resume_on_the_others_and_keep_chats_and_places() {
    let dead = 2;
    let outcome = run("scenario-2-back", kill_shape(true)).await;
    let chatting_at_kill = |r: &Run| chats_started(r) > 0 && r.back.as_ref().is_some_and(|b| b["chat"].is_object());
    let mut moved_chats = 0;
    for c in &outcome.customers {
        outcome.assert_finished(c);
        assert_eq!(chats_started(c), 1, "{} paired once", c.person.name);
        assert!(c.ended.iter().all(|r| r == "ended"), "{}: {:?}", c.person.name, c.ended);
        if c.node == dead {
            let back = c.back.as_ref().unwrap_or_else(|| panic!("{} came back", c.person.name));
            assert!(
                back["chat"].is_object() || back["place"].is_u64(),
                "{} kept a chat or a place: {back}",
                c.person.name
            );
            moved_chats += usize::from(chatting_at_kill(c));
        }
    }
    assert!(moved_chats > 0, "some of the dead node's customers were chatting");
    for a in outcome.agents.iter().filter(|a| a.node == dead) {
        let back = a.back.as_ref().unwrap_or_else(|| panic!("{} came back", a.person.name));
        assert!(
            back["chats"].as_array().is_some_and(|c| !c.is_empty()),
            "{} kept their chats: {back}",
            a.person.name
        );
    }
    assert!(outcome.agents.iter().all(|a| a.ended.iter().all(|r| r == "ended")));
    assert!(
        outcome.unclosed.is_empty(),
        "archived as closed: {:?}",
        outcome.unclosed
    );
    eprintln!("scenario 2 (back) took {:?}", outcome.elapsed);
}

/// Scenario 2, nobody coming back: the same kill, and none of node 2's people return.
/// After the grace period today's rules apply: its waiting customers leave the line, its
/// customers' chats end (`customer_gone`) and free their agents, its agents' customers
/// go back to the front of their queue (`agent_gone`, `queued` requeued) and are paired
/// again; every other customer finishes, and the checker finds nothing (FIFO included:
/// away customers are skipped, requeued ones keep their ticket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_2_a_killed_nodes_people_are_released_after_the_grace_period() {
    let dead = 2;
    let outcome = run("scenario-2-gone", kill_shape(false)).await;
    let mut requeued = 0;
    for c in &outcome.customers {
        if c.node == dead {
            assert!(!c.finished, "{} was on the dead node", c.person.name);
            if chats_started(c) == 0 {
                let name = c.person.name.clone();
                assert!(
                    outcome.line.contains(&LineEvent::Left { customer: name.clone() }),
                    "{name}, waiting on the dead node, left the line"
                );
            }
            continue;
        }
        outcome.assert_finished(c);
        if c.ended.iter().any(|r| r == "agent_gone") {
            requeued += 1;
            let story = || outcome.ctx.story(&c.person.name);
            assert!(c.requeued > 0, "{} was put back in line\n{}", c.person.name, story());
            assert_eq!(chats_started(c), 2, "{} was paired again\n{}", c.person.name, story());
        } else {
            assert_eq!(chats_started(c), 1, "{} paired once", c.person.name);
        }
    }
    assert!(requeued > 0, "some customers had an agent on the dead node");
    let gone: usize = outcome
        .agents
        .iter()
        .filter(|a| a.node != dead)
        .map(|a| a.ended.iter().filter(|r| *r == "customer_gone").count())
        .sum();
    assert!(
        gone > 0,
        "the dead node's chatting customers' chats ended customer_gone"
    );
    eprintln!(
        "scenario 2 (gone) took {:?}; {} chats of the dead node's customers left open in the archive",
        outcome.elapsed,
        outcome.unclosed.len()
    );
}

/// Scenario 3: a node stopped (SIGSTOP) past its lease under random traffic. 6 agents
/// (limits 1–4: 13 chats at once; two per node) and 75 customers joining over 8 s (so
/// a line forms), spread over the nodes, each doing one to four exchanges with a pause
/// (up to 400 ms) before each message; agents end some chats themselves (after an
/// answer, or when told the customer went away). 4 s in, node `seed % 3` is stopped for twice the lease (and until reaped), then
/// woken. Its people move as a client would: at once when their connection closes
/// (1012 from the woken, fenced node), or when an acknowledgement keeps them waiting
/// past their patience (1–3 s, drawn per client: some before the reap, some after),
/// customers resuming with their token on another node, agents signing in there. When
/// every customer is done, the checker reads everything: besides its rules, no
/// acknowledged message lost, no chat missing from the archive, no resume within the
/// grace period (30 s, longer than the scenario) refused `resume_expired`, no `resumed`
/// taken back. `SCENARIO_SEED` replaces the seed.
async fn stalled_under_traffic(seed: u64) {
    let seed = seed_or_env(seed);
    let lease_ms = 2_000;
    let tag = format!("scenario-3-seed-{seed}");
    eprintln!("{tag}: node{} stopped", seed % 3);
    let outcome = run(
        &tag,
        Shape {
            agents: 6,
            agent_categories: general_sales_or_both,
            customers: 75,
            customer_category: general_or_sales,
            kill: None,
            resume_grace_secs: 30,
            lease_ms,
            stall: Some(Stall {
                node: (seed % 3) as usize,
                after: Duration::from_secs(3),
                window: Duration::from_millis(2 * lease_ms),
            }),
            traffic: Some(random_traffic(seed)),
            join_over: Duration::from_secs(6),
            parade: None,
        },
    )
    .await;
    let moved = outcome.moved();
    let crossed: usize = outcome
        .customers
        .iter()
        .chain(&outcome.agents)
        .map(|r| r.crossed_the_end)
        .sum();
    eprintln!(
        "{tag} took {:?}; {moved} clients moved; {crossed} frames crossed their chat's end",
        outcome.elapsed
    );
    for c in &outcome.customers {
        outcome.assert_finished(c);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_3_a_node_stopped_past_its_lease_under_random_traffic_seed_1() {
    stalled_under_traffic(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_3_a_node_stopped_past_its_lease_under_random_traffic_seed_2() {
    stalled_under_traffic(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_3_a_node_stopped_past_its_lease_under_random_traffic_seed_3() {
    stalled_under_traffic(3).await;
}

/// Scenario 4: every fault in turn under random traffic, as an operator would run them,
/// a few seconds of recovery before each: `kill -9` of node `seed % 3` and its restart
/// (same id, port, settings) 3 s later; node `(seed + 1) % 3` stopped (SIGSTOP) for
/// twice the lease and until reaped, then woken; Redis killed and started again with its
/// data (append-only, synced on every write), then killed and started again empty; every
/// node's Redis connections cut (`CLIENT KILL TYPE normal`, then `TYPE pubsub`). 9 agents
/// and 110 customers joining over the whole parade, on scenario 3's random traffic; the
/// clients move to another node when their connection closes or an acknowledgement
/// outlasts their patience, and send again what was refused `cluster_unavailable`. When
/// everyone is done the checker must find nothing: no acknowledged message lost, no chat
/// missing from the archive, no `resume_expired` within the grace period, no `resumed`
/// taken back, nor any of its other rules broken. `SCENARIO_SEED` replaces the seed.
///
/// In `make test` with seeds 4 and 5 (each its own test: ~35 s). Found by it and fixed,
/// each with its own test that failed before (docs/cluster.md §13, §16): a `chat_ended`
/// sent into a customer's connection that was already going left their resume
/// `resume_expired`; a resume on a node whose replica had not applied the customer's join
/// (or the restore) yet was `resume_expired`; a resume crossing the chat's end was
/// `resume_expired` when Redis refused it before this replica applied the end; the ending
/// kept for a customer away when their agent ended the chat went with Redis's data, and
/// their resume on another node after the restore was `resume_expired`; a node whose
/// resume applied after it had let go of the customer (they resumed elsewhere and left
/// again meanwhile) left the page unanswered and the customer held there with no page; a
/// resume undone on a node the chat's agent had come to meanwhile dropped the agent's log
/// of the chat, and the customer's next lines never reached the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_4_every_fault_in_turn_under_random_traffic() {
    every_fault_in_turn(4).await;
}

/// [`scenario_4_every_fault_in_turn_under_random_traffic`] with seed 5 (its faults fall
/// elsewhere: node 2 killed, node 0 stopped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_4_seed_5_every_fault_in_turn_under_random_traffic() {
    every_fault_in_turn(5).await;
}

async fn every_fault_in_turn(seed: u64) {
    let seed = seed_or_env(seed);
    let tag = format!("scenario-4-seed-{seed}");
    let node = |k: u64| ((seed + k) % 3) as usize;
    let outcome = run(
        &tag,
        Shape {
            agents: 9,
            agent_categories: general_sales_or_both,
            customers: 110,
            customer_category: general_or_sales,
            kill: None,
            resume_grace_secs: 60,
            lease_ms: 2_000,
            stall: None,
            traffic: Some(random_traffic(seed)),
            // The parade's length and a little more: its last fault comes about 25 s in (24 s
            // after the first join), and the last customers join about 3 s after it (before,
            // over 30 s: six seconds of joins after every fault was over).
            join_over: Duration::from_secs(27),
            parade: Some(Parade {
                killed: node(0),
                killed_for: Duration::from_secs(3),
                stopped: node(1),
                redis_down: Duration::from_secs(1),
                recovery: Duration::from_secs(3),
            }),
        },
    )
    .await;
    let moved = outcome.moved();
    eprintln!("{tag} took {:?}; {moved} clients moved", outcome.elapsed);
    for c in &outcome.customers {
        outcome.assert_finished(c);
    }
}

/// Found by scenario 2: a chatting customer whose node is gone resumes on the node of
/// their agent. That node had logged the chat without archiving it (the customer's node
/// archives), and went on so: what was said from then on was acknowledged but never
/// archived, and the chat never closed in the archive. Now the node archives from the
/// customer's arrival on (again from seq 1: the store takes a message once per seq).
#[tokio::test]
async fn a_customer_resuming_on_the_node_of_their_agent_is_archived_there() {
    use crate::cluster_fixture::chat_across_nodes;
    use crate::cluster_hub::messages;
    use crate::common::Ws;

    let (mut agent, _, mut carla, chat, [alpha, beta], store, _servers) =
        chat_across_nodes("cluster-resume-agent-node", ["alpha", "beta"])
            .await
            .parts();
    carla.send(json!({"type": "message", "text": "one"})).await;
    assert_eq!(carla.next_of("ack").await["seq"], 1);
    let resume_token = carla.token.clone().unwrap();
    drop(carla);
    assert_eq!(agent.next_of("peer_away").await["chat_id"], chat.as_str());

    let mut back = Ws::connect(&beta.ws_url("/ws/customer"), &[]).await.unwrap();
    back.send(json!({"type": "resume", "token": resume_token, "last_seq": 1}))
        .await;
    assert_eq!(back.next_of("resumed").await["chat"]["chat_id"], chat.as_str());
    back.send(json!({"type": "message", "text": "two"})).await;
    assert_eq!(back.next_of("ack").await["seq"], 2, "acknowledged, so archived");
    agent
        .send(json!({"type": "message", "chat_id": chat, "text": "three"}))
        .await;
    assert_eq!(messages(&mut back, 1).await[0]["seq"], 3);
    back.send(json!({"type": "leave"})).await;
    back.next_of("chat_ended").await;

    let lines = crate::common::closed_with_lines(&store, &chat, 3, Duration::from_secs(20)).await;
    let seqs: Vec<u64> = lines.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [1, 2, 3], "archived as closed with seq 1-3 once each");
    alpha.stop().await;
    beta.stop().await;
}
