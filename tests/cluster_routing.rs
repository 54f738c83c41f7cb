//! Issue 15, scenario 7: the routing scripts (`src/cluster/lua/routing.lua`) on a real
//! `redis-server` decide exactly as the pure core (`core::routing`), the oracle.
//!
//! A property test drives random event sequences from two nodes through both and requires,
//! after every step, the same refusals, the same decisions in the same order, the same
//! places told (the core's flush against a node's mirror fed from the events stream), the
//! same queues, agents and chats, and that a refused event changes nothing in Redis
//! (`DEBUG DIGEST`). A node's loss (`node_lost`) is checked against the core's disconnects
//! of everyone that node held. A second test shows fencing: a node that is not alive
//! under its incarnation is refused with FENCED and changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use redis::aio::ConnectionManager;
use switchboard::cluster::routing_scripts::{Applied, ClusterRoutingError, RedisRouting, RoutingSnapshot, read_events};
use switchboard::core::places::Places;
use switchboard::core::routing::{AgentId, CategoryId, ChatId, CustomerId, Decision, Party, Routing, RoutingError};

// ---- a redis-server of this test's own ------------------------------------------------

/// A real `redis-server` on a free loopback port, without persistence, with `DEBUG` allowed
/// from loopback (for `DEBUG DIGEST`); killed when dropped. Fails loudly when missing
/// (`scripts/ensure-test-deps.sh` installs it).
struct RedisServer {
    port: u16,
    child: Child,
}

impl RedisServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--enable-debug-command", "local"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed for this test (scripts/ensure-test-deps.sh installs it)");
        // Built first, so that a server that never listens is still killed (on drop).
        let server = RedisServer { port, child };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen on port {port}");
    }

    async fn connect(&self) -> ConnectionManager {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).unwrap();
        tokio::time::timeout(Duration::from_secs(10), ConnectionManager::new(client))
            .await
            .expect("redis answers in time")
            .expect("redis accepts the connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- nodes, as the lease code (not this module's) registers them ----------------------

/// Registers `node` under a fresh incarnation with a lease a minute long, as a node does
/// at start-up (shared contract: `{sb}:incarnation`, `{sb}:nodes`, `{sb}:leases`).
async fn register(conn: &mut ConnectionManager, node: &str) -> u64 {
    let incarnation: u64 = redis::cmd("INCR")
        .arg("{sb}:incarnation")
        .query_async(conn)
        .await
        .unwrap();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    let deadline = secs * 1000 + micros / 1000 + 60_000;
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg("{sb}:nodes")
        .arg(node)
        .arg(incarnation)
        .ignore()
        .cmd("ZADD")
        .arg("{sb}:leases")
        .arg(deadline)
        .arg(node)
        .ignore()
        .query_async(conn)
        .await
        .unwrap();
    incarnation
}

/// Makes `node`'s lease a thing of the past, as if it had stopped renewing long ago.
async fn expire_lease(conn: &mut ConnectionManager, node: &str) {
    let _: () = redis::cmd("ZADD")
        .arg("{sb}:leases")
        .arg(0)
        .arg(node)
        .query_async(conn)
        .await
        .unwrap();
}

async fn digest(conn: &mut ConnectionManager) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query_async(conn).await.unwrap()
}

async fn flushall(conn: &mut ConnectionManager) {
    let _: () = redis::cmd("FLUSHALL").query_async(conn).await.unwrap();
}

// ---- random events -----------------------------------------------------------------------

const CATEGORIES: [&str; 3] = ["c0", "c1", "c2"];
const AGENTS: [&str; 3] = ["a0", "a1", "a2"];
const NODES: [&str; 2] = ["n0", "n1"];

fn cat(name: &str) -> CategoryId {
    CategoryId(name.to_string())
}

fn agent(name: &str) -> AgentId {
    AgentId(name.to_string())
}

fn mask(m: u8) -> Vec<CategoryId> {
    (0..3)
        .filter(|i| m & (1 << i) != 0)
        .map(|i| cat(CATEGORIES[i]))
        .collect()
}

/// The core's own property test's events (weighted a little more towards pairing), plus the loss of a node.
#[derive(Debug, Clone)]
enum Op {
    AddCategory(usize),
    RemoveCategory(usize),
    Join(usize),
    Leave(usize),
    CustomerDisconnect(usize),
    CustomerResume(usize),
    CustomerExpire(usize, bool),
    AgentOnline(usize, u8, u8, bool),
    AgentDisconnect(usize),
    AgentResume(usize),
    AgentExpire(usize, bool),
    AgentOffline(usize),
    SetAvailable(usize, bool),
    SetLimit(usize, u8),
    SetCategories(usize, u8),
    EndChat(usize, bool),
    SetPairingRoom(Option<u8>),
    /// The node stops renewing its lease; the other node reaps it; it re-joins.
    NodeLost,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..3usize).prop_map(Op::AddCategory),
        1 => (0..3usize).prop_map(Op::RemoveCategory),
        6 => (0..3usize).prop_map(Op::Join),
        2 => any::<usize>().prop_map(Op::Leave),
        2 => any::<usize>().prop_map(Op::CustomerDisconnect),
        3 => any::<usize>().prop_map(Op::CustomerResume),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(c, s)| Op::CustomerExpire(c, s)),
        4 => (0..3usize, 0..8u8, 0..6u8, any::<bool>()).prop_map(|(a, m, l, v)| Op::AgentOnline(a, m, l, v)),
        1 => (0..3usize).prop_map(Op::AgentDisconnect),
        2 => (0..3usize).prop_map(Op::AgentResume),
        1 => (0..3usize, any::<bool>()).prop_map(|(a, s)| Op::AgentExpire(a, s)),
        1 => (0..3usize).prop_map(Op::AgentOffline),
        2 => (0..3usize, any::<bool>()).prop_map(|(a, v)| Op::SetAvailable(a, v)),
        2 => (0..3usize, 0..6u8).prop_map(|(a, l)| Op::SetLimit(a, l)),
        2 => (0..3usize, 0..8u8).prop_map(|(a, m)| Op::SetCategories(a, m)),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(c, by_agent)| Op::EndChat(c, by_agent)),
        // Mostly lifting the limit: a spent room stops all pairing, which would starve the rest.
        1 => prop_oneof![2 => Just(None), 1 => (0..3u8).prop_map(Some)].prop_map(Op::SetPairingRoom),
        1 => Just(Op::NodeLost),
    ]
}

/// An event and the node it happens on (for `NodeLost`: the node that is lost).
fn step() -> impl Strategy<Value = (usize, Op)> {
    (0..NODES.len(), op())
}

// ---- running both --------------------------------------------------------------------------

/// What the test remembers between steps, the same for both engines.
struct Harness {
    conn: ConnectionManager,
    nodes: Vec<RedisRouting>,
    customers: Vec<CustomerId>,
    customer_epochs: HashMap<CustomerId, u64>,
    agent_epochs: HashMap<AgentId, u64>,
    /// Customers away (grace running) and their epoch, as the core's decisions tell.
    away: HashMap<CustomerId, u64>,
    /// Which node holds each person (has their connection or runs their grace timer).
    customer_holder: BTreeMap<CustomerId, usize>,
    agent_holder: BTreeMap<AgentId, usize>,
    /// The node mirror of the places, fed from the events stream only.
    places: Places,
    last_event: String,
}

/// The outcome of one event on one engine: its decisions, or the rule that refused it.
type Outcome = Result<Vec<Decision>, RoutingError>;

fn from_redis(result: Result<Applied, ClusterRoutingError>) -> Result<Outcome, TestCaseError> {
    match result {
        Ok(applied) => Ok(Ok(applied.decisions)),
        Err(ClusterRoutingError::Refused(e)) => Ok(Err(e)),
        Err(other) => Err(TestCaseError::fail(format!("the scripts failed: {other}"))),
    }
}

fn with_out<T>(
    f: impl FnOnce(&mut Vec<Decision>) -> Result<T, RoutingError>,
) -> (Result<T, RoutingError>, Vec<Decision>) {
    let mut out = vec![];
    let result = f(&mut out);
    (result, out)
}

impl Harness {
    fn customer(&self, i: usize) -> CustomerId {
        if self.customers.is_empty() {
            CustomerId(u64::MAX)
        } else {
            self.customers[i % self.customers.len()]
        }
    }

    fn outcome<T>((result, out): (Result<T, RoutingError>, Vec<Decision>)) -> Outcome {
        result.map(|_| out)
    }

    /// Applies one event to the core and to the scripts; returns both outcomes.
    async fn apply(&mut self, core: &mut Routing, n: usize, op: &Op) -> Result<(Outcome, Outcome), TestCaseError> {
        let node = self.nodes[n].clone();
        let both = match op.clone() {
            Op::AddCategory(i) => (
                core.add_category(cat(CATEGORIES[i])).map(|_| vec![]),
                from_redis(node.add_category(&cat(CATEGORIES[i])).await)?,
            ),
            Op::RemoveCategory(i) => (
                Self::outcome(with_out(|out| core.remove_category(&cat(CATEGORIES[i]), out))),
                from_redis(node.remove_category(&cat(CATEGORIES[i])).await)?,
            ),
            Op::Join(i) => {
                let (result, out) = with_out(|out| core.join(&cat(CATEGORIES[i]), out));
                let redis = node.join(&cat(CATEGORIES[i])).await;
                if let (Ok(id), Ok((redis_id, _))) = (&result, &redis) {
                    prop_assert_eq!(id, redis_id, "the two engines gave the new customer different ids");
                    self.customers.push(*id);
                    self.customer_holder.insert(*id, n);
                }
                (result.map(|_| out), from_redis(redis.map(|(_, applied)| applied))?)
            }
            Op::Leave(i) => {
                let c = self.customer(i);
                (
                    Self::outcome(with_out(|out| core.leave(c, out))),
                    from_redis(node.leave(c).await)?,
                )
            }
            Op::CustomerDisconnect(i) => {
                let c = self.customer(i);
                let core_outcome = Self::outcome(with_out(|out| core.customer_disconnected(c, out)));
                if core_outcome.is_ok() {
                    self.customer_holder.insert(c, n);
                }
                (core_outcome, from_redis(node.customer_disconnected(c).await)?)
            }
            Op::CustomerResume(i) => {
                let c = self.customer(i);
                let core_outcome = Self::outcome(with_out(|out| core.customer_resumed(c, out)));
                if core_outcome.is_ok() {
                    self.customer_holder.insert(c, n);
                    self.away.remove(&c);
                }
                (core_outcome, from_redis(node.customer_resumed(c).await)?)
            }
            Op::CustomerExpire(i, stale) => {
                let c = self.customer(i);
                let epoch = self.customer_epochs.get(&c).copied().unwrap_or(0);
                let epoch = if stale { epoch.wrapping_sub(1) } else { epoch };
                (
                    Self::outcome(with_out(|out| {
                        core.customer_grace_expired(c, epoch, out);
                        Ok(())
                    })),
                    from_redis(node.customer_grace_expired(c, epoch).await)?,
                )
            }
            Op::AgentOnline(a, m, l, v) => {
                let id = agent(AGENTS[a]);
                let core_outcome = Self::outcome(with_out(|out| core.agent_online(id.clone(), mask(m), l, v, out)));
                if core_outcome.is_ok() {
                    self.agent_holder.insert(id.clone(), n);
                }
                (core_outcome, from_redis(node.agent_online(&id, &mask(m), l, v).await)?)
            }
            Op::AgentDisconnect(a) => {
                let id = agent(AGENTS[a]);
                let core_outcome = Self::outcome(with_out(|out| core.agent_disconnected(&id, out)));
                if core_outcome.is_ok() {
                    self.agent_holder.insert(id.clone(), n);
                }
                (core_outcome, from_redis(node.agent_disconnected(&id).await)?)
            }
            Op::AgentResume(a) => {
                let id = agent(AGENTS[a]);
                let core_outcome = Self::outcome(with_out(|out| core.agent_resumed(&id, out)));
                if core_outcome.is_ok() {
                    self.agent_holder.insert(id.clone(), n);
                }
                (core_outcome, from_redis(node.agent_resumed(&id).await)?)
            }
            Op::AgentExpire(a, stale) => {
                let id = agent(AGENTS[a]);
                let epoch = self.agent_epochs.get(&id).copied().unwrap_or(0);
                let epoch = if stale { epoch.wrapping_sub(1) } else { epoch };
                (
                    Self::outcome(with_out(|out| {
                        core.agent_grace_expired(&id, epoch, out);
                        Ok(())
                    })),
                    from_redis(node.agent_grace_expired(&id, epoch).await)?,
                )
            }
            Op::AgentOffline(a) => {
                let id = agent(AGENTS[a]);
                (
                    Self::outcome(with_out(|out| {
                        core.agent_offline(&id, out);
                        Ok(())
                    })),
                    from_redis(node.agent_offline(&id).await)?,
                )
            }
            Op::SetAvailable(a, v) => {
                let id = agent(AGENTS[a]);
                (
                    Self::outcome(with_out(|out| core.set_available(&id, v, out))),
                    from_redis(node.set_available(&id, v).await)?,
                )
            }
            Op::SetLimit(a, l) => {
                let id = agent(AGENTS[a]);
                (
                    Self::outcome(with_out(|out| core.set_limit(&id, l, out))),
                    from_redis(node.set_limit(&id, l).await)?,
                )
            }
            Op::SetCategories(a, m) => {
                let id = agent(AGENTS[a]);
                (
                    Self::outcome(with_out(|out| core.set_categories(&id, mask(m), out))),
                    from_redis(node.set_categories(&id, &mask(m)).await)?,
                )
            }
            Op::EndChat(i, by_agent) => {
                let chat = core.customer_chat(self.customer(i)).unwrap_or(ChatId(u64::MAX));
                let by = if by_agent { Party::Agent } else { Party::Customer };
                (
                    Self::outcome(with_out(|out| core.end_chat(chat, by, out))),
                    from_redis(node.end_chat(chat, by).await)?,
                )
            }
            Op::SetPairingRoom(room) => {
                let room = room.map(usize::from);
                (
                    Self::outcome(with_out(|out| {
                        core.set_pairing_room(room, out);
                        Ok(())
                    })),
                    from_redis(node.set_pairing_room(room).await)?,
                )
            }
            Op::NodeLost => (Ok(self.core_node_lost(core, n)), self.redis_node_lost(n).await?),
        };
        Ok(both)
    }

    /// What losing node `lost` means in the core's terms: the other node takes over everyone
    /// it held; the connected are disconnected (customers by id, then agents by name) and
    /// those already away get their grace timer again, with their current epoch.
    fn core_node_lost(&mut self, core: &mut Routing, lost: usize) -> Vec<Decision> {
        let reaper = 1 - lost;
        let mut out = vec![];
        let customers: Vec<CustomerId> = self
            .customer_holder
            .iter()
            .filter(|(c, holder)| **holder == lost && core.customer_category(**c).is_some())
            .map(|(c, _)| *c)
            .collect();
        for c in customers {
            match self.away.get(&c) {
                Some(epoch) => out.push(Decision::CustomerGraceStarted {
                    customer: c,
                    epoch: *epoch,
                }),
                None => core.customer_disconnected(c, &mut out).expect("a known customer"),
            }
            self.customer_holder.insert(c, reaper);
        }
        let agents: Vec<(AgentId, bool)> = self
            .agent_holder
            .iter()
            .filter(|(_, holder)| **holder == lost)
            .filter_map(|(a, _)| core.agent(a).map(|view| (a.clone(), view.connected)))
            .collect();
        for (a, connected) in agents {
            if connected {
                core.agent_disconnected(&a, &mut out).expect("an online agent");
            } else {
                out.push(Decision::AgentGraceStarted {
                    agent: a.clone(),
                    epoch: self.agent_epochs[&a],
                });
            }
            self.agent_holder.insert(a, reaper);
        }
        out
    }

    /// The node stops renewing; the other node reaps it (refused while its lease runs);
    /// it re-joins under a new incarnation.
    async fn redis_node_lost(&mut self, lost: usize) -> Result<Outcome, TestCaseError> {
        let reaper = self.nodes[1 - lost].clone();
        let name = NODES[lost];
        match reaper.node_lost(name).await {
            Err(ClusterRoutingError::NodeAlive) => {}
            other => return Err(TestCaseError::fail(format!("reaping a live node: {other:?}"))),
        }
        expire_lease(&mut self.conn, name).await;
        let outcome = from_redis(reaper.node_lost(name).await)?;
        match self.nodes[lost].leave(CustomerId(1)).await {
            Err(ClusterRoutingError::Fenced) => {}
            other => return Err(TestCaseError::fail(format!("a reaped node acted: {other:?}"))),
        }
        let incarnation = register(&mut self.conn, name).await;
        self.nodes[lost].set_incarnation(incarnation);
        Ok(outcome)
    }

    /// Learns the epochs and who is away from the core's decisions.
    fn observe(&mut self, out: &[Decision]) {
        for d in out {
            match d {
                Decision::CustomerGraceStarted { customer, epoch } => {
                    self.customer_epochs.insert(*customer, *epoch);
                    self.away.insert(*customer, *epoch);
                }
                Decision::AgentGraceStarted { agent, epoch } => {
                    self.agent_epochs.insert(agent.clone(), *epoch);
                }
                _ => {}
            }
        }
    }
}

fn place_changes(out: &[Decision]) -> Vec<(CustomerId, usize)> {
    let mut changes: Vec<_> = out
        .iter()
        .filter_map(|d| match d {
            Decision::PlaceChanged { customer, place } => Some((*customer, *place)),
            _ => None,
        })
        .collect();
    // The core flushes its changed queues in no particular order; each customer is told once.
    changes.sort();
    changes
}

/// The core's state, seen through its public queries, against the scripts' snapshot.
fn same_state(core: &Routing, snapshot: &RoutingSnapshot, places: &Places) -> Result<(), TestCaseError> {
    let core_queues: Vec<(CategoryId, usize)> = core.waiting_counts().map(|(c, n)| (c.clone(), n)).collect();
    let redis_queues: Vec<(CategoryId, usize)> = snapshot.queues.iter().map(|(c, q)| (c.clone(), q.len())).collect();
    prop_assert_eq!(core_queues, redis_queues, "categories or queue lengths differ");
    let mut connected = 0;
    for (category, queue) in &snapshot.queues {
        for (index, waiting) in queue.iter().enumerate() {
            prop_assert_eq!(core.place(waiting.customer), Some(index + 1), "queue order differs");
            prop_assert_eq!(
                places.place(waiting.customer),
                Some(index + 1),
                "the place mirror differs"
            );
            prop_assert_eq!(core.customer_category(waiting.customer), Some(category));
            connected += usize::from(waiting.away.is_none());
        }
    }
    let core_agents: Vec<_> = core.agents().map(|(id, view)| (id.clone(), view)).collect();
    prop_assert_eq!(&core_agents, &snapshot.agents, "agents differ");
    prop_assert_eq!(core.chats_active(), snapshot.chats.len(), "running chats differ");
    for chat in &snapshot.chats {
        prop_assert_eq!(core.chat_sides(chat.chat), Some((chat.customer, &chat.agent)));
        prop_assert_eq!(core.chat_category(chat.chat), Some(&chat.category));
        prop_assert_eq!(core.customer_chat(chat.customer), Some(chat.chat));
        connected += usize::from(chat.customer_away.is_none());
    }
    prop_assert_eq!(core.customers_connected(), connected, "connected customers differ");
    Ok(())
}

async fn latest_event_id(conn: &mut ConnectionManager) -> String {
    let events = read_events(conn, "0-0", 10_000).await.unwrap();
    events.last().map_or_else(|| "0-0".to_string(), |e| e.id.clone())
}

async fn run_case(conn: &ConnectionManager, steps: &[(usize, Op)]) -> Result<(), TestCaseError> {
    let mut conn = conn.clone();
    flushall(&mut conn).await;
    let mut nodes = vec![];
    for name in NODES {
        let incarnation = register(&mut conn, name).await;
        nodes.push(RedisRouting::new(conn.clone(), name, incarnation));
    }
    let mut core = Routing::new();
    for c in ["c0", "c1"] {
        core.add_category(cat(c)).unwrap();
        nodes[0].add_category(&cat(c)).await.unwrap();
    }
    let mut h = Harness {
        conn: conn.clone(),
        nodes,
        customers: vec![],
        customer_epochs: HashMap::new(),
        agent_epochs: HashMap::new(),
        away: HashMap::new(),
        customer_holder: BTreeMap::new(),
        agent_holder: BTreeMap::new(),
        places: Places::new(),
        // After the two categories' events.
        last_event: latest_event_id(&mut conn).await,
    };
    for (n, op) in steps {
        let before = digest(&mut conn).await;
        let (core_outcome, redis_outcome) = h.apply(&mut core, *n, op).await?;
        prop_assert_eq!(
            &core_outcome,
            &redis_outcome,
            "the engines disagree on {:?} at node {}",
            op,
            n
        );
        let events = read_events(&mut conn, &h.last_event, 10_000).await.unwrap();
        let Ok(decisions) = core_outcome else {
            prop_assert_eq!(before, digest(&mut conn).await, "a refused event changed Redis");
            prop_assert!(events.is_empty(), "a refused event made an event");
            continue;
        };
        h.observe(&decisions);
        // The stream holds this transition, once, with exactly its decisions.
        prop_assert_eq!(events.len(), 1, "one event per applied transition");
        prop_assert_eq!(&events[0].applied.decisions, &decisions);
        prop_assert_eq!(
            &events[0].node,
            NODES[if matches!(op, Op::NodeLost) { 1 - n } else { *n }]
        );
        h.last_event = events[0].id.clone();
        events[0].applied.update_places(&mut h.places);
        let mut core_places = vec![];
        core.flush_places(&mut core_places);
        let mut mirror_places = vec![];
        h.places.flush(&mut mirror_places);
        prop_assert_eq!(
            place_changes(&core_places),
            place_changes(&mirror_places),
            "places told differ"
        );
        let snapshot = h.nodes[0].snapshot().await.unwrap();
        prop_assert_eq!(&snapshot.last_event, &h.last_event);
        same_state(&core, &snapshot, &h.places)?;
    }
    Ok(())
}

#[test]
fn the_routing_scripts_decide_exactly_as_the_core() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let conn = runtime.block_on(server.connect());
    // Each case is up to 100 events, four or five Redis round trips each: about 20 s here.
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(step(), 1..100), |steps| {
        runtime.block_on(run_case(&conn, &steps))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn a_node_that_is_not_alive_is_fenced_and_changes_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    runtime.block_on(async {
        let mut conn = server.connect().await;
        let incarnation = register(&mut conn, "n0").await;
        let n0 = RedisRouting::new(conn.clone(), "n0", incarnation);
        n0.add_category(&cat("sales")).await.unwrap();
        let (customer, _) = n0.join(&cat("sales")).await.unwrap();

        let fenced = |result: Result<Applied, ClusterRoutingError>| matches!(result, Err(ClusterRoutingError::Fenced));
        let before = digest(&mut conn).await;
        // A stale incarnation (the node restarted since, or was replaced).
        let stale = RedisRouting::new(conn.clone(), "n0", incarnation - 1);
        assert!(fenced(stale.leave(customer).await));
        assert!(fenced(
            stale.agent_online(&agent("ann"), &[cat("sales")], 2, true).await
        ));
        // A node nobody registered.
        let stranger = RedisRouting::new(conn.clone(), "n9", incarnation);
        assert!(fenced(stranger.add_category(&cat("billing")).await));
        assert_eq!(before, digest(&mut conn).await, "a fenced node changed Redis");
        // The right incarnation whose lease ran out (a SIGSTOPped node waking up).
        expire_lease(&mut conn, "n0").await;
        let before = digest(&mut conn).await;
        assert!(fenced(n0.agent_online(&agent("ann"), &[cat("sales")], 2, true).await));
        assert!(fenced(n0.leave(customer).await));
        let joined = n0.join(&cat("sales")).await;
        assert!(matches!(joined, Err(ClusterRoutingError::Fenced)), "{joined:?}");
        assert_eq!(before, digest(&mut conn).await, "a fenced node changed Redis");

        // Another node reaps it; its customer is now held, away, by the reaper; the old
        // incarnation stays fenced even once its lease would be renewed.
        let n1 = RedisRouting::new(conn.clone(), "n1", register(&mut conn, "n1").await);
        let reaped = n1.node_lost("n0").await.unwrap();
        assert!(matches!(
            reaped.decisions.as_slice(),
            [Decision::CustomerGraceStarted { customer: c, .. }] if *c == customer
        ));
        let nodes: HashMap<String, String> = redis::cmd("HGETALL")
            .arg("{sb}:nodes")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!nodes.contains_key("n0"), "the reaped node is out of the registry");
        assert!(fenced(n0.leave(customer).await));
        // And a live node cannot be reaped.
        let n2 = RedisRouting::new(conn.clone(), "n2", register(&mut conn, "n2").await);
        let before = digest(&mut conn).await;
        assert!(matches!(n2.node_lost("n1").await, Err(ClusterRoutingError::NodeAlive)));
        assert_eq!(before, digest(&mut conn).await);
    });
}

/// Fixed sequences through the same comparison: the rules a random search might reach only rarely.
#[test]
fn known_sequences_decide_exactly_as_the_core() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let conn = runtime.block_on(server.connect());
    let sequences: Vec<Vec<(usize, Op)>> = vec![
        // Ties between equally loaded agents go to the one idle longest.
        vec![
            (0, Op::AgentOnline(0, 1, 4, true)),
            (1, Op::AgentOnline(1, 1, 4, true)),
            (0, Op::Join(0)),
            (1, Op::Join(0)),
            (0, Op::Join(0)),
            (1, Op::Join(0)),
        ],
        // An agent's node dies mid-chat: the agent is away on the reaper's timer; past the
        // grace period their customer goes back to the front, before a later customer.
        vec![
            (1, Op::AgentOnline(0, 1, 1, true)),
            (0, Op::Join(0)),
            (0, Op::Join(0)),
            (1, Op::NodeLost),
            (0, Op::AgentExpire(0, true)),
            (0, Op::AgentExpire(0, false)),
            (0, Op::AgentOnline(1, 1, 1, true)),
        ],
        // A waiting customer's node dies while they are already away: their grace timer
        // moves to the reaper with the same epoch, which still expires them.
        vec![
            (0, Op::Join(1)),
            (0, Op::Join(1)),
            (0, Op::CustomerDisconnect(0)),
            (0, Op::NodeLost),
            (1, Op::CustomerExpire(0, false)),
            (1, Op::AgentOnline(2, 2, 2, true)),
        ],
    ];
    for steps in sequences {
        if let Err(failure) = runtime.block_on(run_case(&conn, &steps)) {
            panic!("{steps:?}: {failure}");
        }
    }
}

/// The core's call for one logged transition (not `node_lost`, whose meaning needs the holders).
fn replay(core: &mut Routing, transition: &str, a: &[String]) -> Vec<Decision> {
    let mut out = vec![];
    let customer = |i: usize| CustomerId(a[i].parse().expect("a customer id"));
    let number = |i: usize| a[i].parse::<u64>().expect("a number");
    let agent = AgentId(a[0].clone());
    let result = match transition {
        "add_category" => core.add_category(cat(&a[0])),
        "remove_category" => core.remove_category(&cat(&a[0]), &mut out),
        "join" => core.join(&cat(&a[0]), &mut out).map(|_| ()),
        "leave" => core.leave(customer(0), &mut out),
        "customer_disconnected" => core.customer_disconnected(customer(0), &mut out),
        "customer_resumed" => core.customer_resumed(customer(0), &mut out),
        "customer_grace_expired" => {
            core.customer_grace_expired(customer(0), number(1), &mut out);
            Ok(())
        }
        "agent_online" => {
            let limit = u8::try_from(number(1)).expect("a limit");
            core.agent_online(agent, a[3..].iter().map(|c| cat(c)), limit, a[2] == "1", &mut out)
        }
        "agent_disconnected" => core.agent_disconnected(&agent, &mut out),
        "agent_resumed" => core.agent_resumed(&agent, &mut out),
        "agent_grace_expired" => {
            core.agent_grace_expired(&agent, number(1), &mut out);
            Ok(())
        }
        "agent_offline" => {
            core.agent_offline(&agent, &mut out);
            Ok(())
        }
        "set_available" => core.set_available(&agent, a[1] == "1", &mut out),
        "set_limit" => core.set_limit(&agent, u8::try_from(number(1)).expect("a limit"), &mut out),
        "set_categories" => core.set_categories(&agent, a[1..].iter().map(|c| cat(c)), &mut out),
        other => panic!("{other} is not replayed here"),
    };
    result.unwrap_or_else(|e| panic!("Redis applied {transition} {a:?}; the core refuses it: {e}"));
    out
}

/// Issue 15's pairing race at the scripts' level: 30 agents and 300 customers on three
/// nodes (three connections) acting at once. Whatever order Redis ran the scripts in, the
/// events stream records it, and the core applying that order makes exactly the decisions
/// the scripts made, and ends in the same state: the race is equivalent to one hub, so the
/// core's invariants (paired at most once, limits, FIFO, work conservation) hold for it.
#[test]
fn racing_nodes_decide_as_the_core_applying_the_events_stream_in_order() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    runtime.block_on(async {
        let mut admin = server.connect().await;
        let mut nodes = vec![];
        for name in ["n0", "n1", "n2"] {
            let incarnation = register(&mut admin, name).await;
            nodes.push(RedisRouting::new(server.connect().await, name, incarnation));
        }
        for c in ["c0", "c1"] {
            nodes[0].add_category(&cat(c)).await.unwrap();
        }
        let mut tasks = tokio::task::JoinSet::new();
        for a in 0..30usize {
            let node = nodes[a % 3].clone();
            tasks.spawn(async move {
                let id = AgentId(format!("agent{a:02}"));
                let categories = [vec![cat("c0")], vec![cat("c1")], vec![cat("c0"), cat("c1")]][a % 3].clone();
                let limit = u8::try_from(a % 4 + 1).unwrap();
                node.agent_online(&id, &categories, limit, true).await.unwrap();
                for round in 0..6usize {
                    tokio::task::yield_now().await;
                    match round % 3 {
                        0 => {
                            let limit = u8::try_from((a + round) % 4 + 1).unwrap();
                            node.set_limit(&id, limit).await.unwrap();
                        }
                        1 => {
                            node.agent_disconnected(&id).await.unwrap();
                            node.agent_resumed(&id).await.unwrap();
                        }
                        _ => {
                            node.set_available(&id, false).await.unwrap();
                            node.set_available(&id, true).await.unwrap();
                        }
                    }
                }
            });
        }
        for c in 0..300usize {
            let node = nodes[c % 3].clone();
            tasks.spawn(async move {
                let (id, _) = node.join(&cat(["c0", "c1"][c % 2])).await.unwrap();
                match c % 4 {
                    // Leaves the queue or ends the chat, whichever it is in by now.
                    0 => drop(node.leave(id).await.unwrap()),
                    1 => {
                        node.customer_disconnected(id).await.unwrap();
                        node.customer_resumed(id).await.unwrap();
                    }
                    _ => {}
                }
            });
        }
        while let Some(task) = tasks.join_next().await {
            task.unwrap();
        }

        let events = read_events(&mut admin, "0-0", 100_000).await.unwrap();
        let mut core = Routing::new();
        let mut places = Places::new();
        let mut paired = std::collections::HashSet::new();
        for event in &events {
            let decisions = replay(&mut core, &event.transition, &event.args);
            assert_eq!(
                decisions, event.applied.decisions,
                "event {} ({} {:?} on {})",
                event.id, event.transition, event.args, event.node
            );
            for d in &decisions {
                if let Decision::Paired { customer, .. } = d {
                    assert!(paired.insert(*customer), "{customer:?} paired twice");
                }
            }
            event.applied.update_places(&mut places);
        }
        assert!(paired.len() >= 30, "the race paired customers ({})", paired.len());
        let snapshot = nodes[0].snapshot().await.unwrap();
        same_state(&core, &snapshot, &places).unwrap();
    });
}
