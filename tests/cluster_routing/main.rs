//! Cluster scenario 7: the routing scripts (`src/cluster/lua/routing.lua`) on a real
//! `redis-server` decide exactly as the pure core (`core::routing`), the oracle.
//!
//! A property test drives random event sequences from two nodes through both and requires,
//! after every step, the same refusals, the same decisions in the same order, the same
//! places told (the core's flush against a node's mirror fed from the events stream), the
//! same queues, agents and chats, and that a refused event changes nothing in Redis
//! (`DEBUG DIGEST`). A node's loss (`node_lost`) is checked against the core's disconnects
//! of everyone that node held. A second test shows fencing: a node that is not alive
//! under its incarnation is refused with FENCED and changes nothing.
//!
//! One binary, one module per concern: `differential` (random and fixed sequences),
//! `fencing`, `follower` (places from the stream), `race` (three nodes at once, replayed
//! through the core), `restore`, and `redis_server` (each test's own server).

mod differential;
mod fencing;
mod follower;
mod race;
// Redis restarted empty: the restore scripts
mod restore;
// The throwaway redis-server (also started by examples/routing_scripts_bench.rs)
mod redis_server;

pub use redis_server::RedisServer;

use redis::aio::ConnectionManager;
use switchboard::core::routing::{AgentId, CategoryId};

// ---- a redis-server of this test's own ------------------------------------------------

/// A current-thread runtime for a test and a redis-server of its own.
pub fn runtime_and_redis() -> (tokio::runtime::Runtime, RedisServer) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (runtime, RedisServer::start())
}

/// Runs `test` on a runtime of its own, given a connection to a redis-server of its own.
pub fn with_redis<F: std::future::Future<Output = ()>>(test: impl FnOnce(ConnectionManager) -> F) {
    let (runtime, server) = runtime_and_redis();
    runtime.block_on(async { test(server.connect().await).await });
}

// ---- nodes, as the lease code (not this module's) registers them ----------------------

/// Registers `node` under a fresh incarnation, as a node does at start-up (shared
/// contract: `{sb}:incarnation`, `{sb}:nodes`, `{sb}:leases`), with a lease an hour long:
/// no test renews it, and a minute's was outlasted on a loaded machine (a test's node
/// fenced halfway through); a test of lapsed leases ends them with [`expire_lease`].
pub async fn register(conn: &mut ConnectionManager, node: &str) -> u64 {
    let incarnation: u64 = redis::cmd("INCR")
        .arg("{sb}:incarnation")
        .query_async(conn)
        .await
        .unwrap();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    let deadline = secs * 1000 + micros / 1000 + 3_600_000;
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
pub async fn expire_lease(conn: &mut ConnectionManager, node: &str) {
    let _: () = redis::cmd("ZADD")
        .arg("{sb}:leases")
        .arg(0)
        .arg(node)
        .query_async(conn)
        .await
        .unwrap();
}

/// What Redis holds, key by key, to tell whether a call changed it: each key's value digest
/// and whether it has an expiry. Two looks are equal when every key is, except a key with
/// an expiry that one look has and the other does not: it expired in between (a restore's
/// pending marks live 250 ms; a slow machine's step can outlast them), which no call did.
#[derive(Debug)]
pub struct Digest(std::collections::BTreeMap<String, (String, bool)>);

impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        let expired = |a: &Self, b: &Self| a.0.iter().all(|(k, (_, volatile))| *volatile || b.0.contains_key(k));
        expired(self, other)
            && expired(other, self)
            && self
                .0
                .iter()
                .filter_map(|(k, v)| other.0.get(k).map(|w| (v, w)))
                .all(|(v, w)| v.0 == w.0)
    }
}

pub async fn digest(conn: &mut ConnectionManager) -> Digest {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
    keys.sort();
    let mut found = std::collections::BTreeMap::new();
    if keys.is_empty() {
        return Digest(found);
    }
    // One round trip: every key's expiry, then every key's value digest.
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("PTTL").arg(key);
    }
    pipe.cmd("DEBUG").arg("DIGEST-VALUE").arg(&keys);
    let mut answers: Vec<redis::Value> = pipe.query_async(conn).await.unwrap();
    let values: Vec<Option<String>> = redis::from_redis_value(answers.pop().unwrap()).unwrap();
    for ((key, ttl), value) in keys.into_iter().zip(answers).zip(values) {
        let ttl: i64 = redis::from_redis_value(ttl).unwrap();
        if ttl == -2 {
            continue; // expired since KEYS
        }
        found.insert(key, (value.unwrap_or_default(), ttl >= 0));
    }
    Digest(found)
}

pub async fn flushall(conn: &mut ConnectionManager) {
    let _: () = redis::cmd("FLUSHALL").query_async(conn).await.unwrap();
}

pub fn cat(name: &str) -> CategoryId {
    CategoryId::from(name.to_string())
}

pub fn agent(name: &str) -> AgentId {
    AgentId(name.to_string())
}
