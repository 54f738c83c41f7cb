//! The node's lease (the shared contract in `cluster/mod.rs`'s docs, `docs/cluster.md`):
//! register (a new incarnation in `{sb}:incarnation`, `{sb}:nodes`, `{sb}:leases`), renew
//! every `CLUSTER_RENEW_MS` by a script that extends only this incarnation's running lease,
//! rejoin with a higher incarnation when a renewal is refused (`FENCED`), and reap dead
//! nodes: those whose deadline (Redis's clock) has passed, found by scanning `{sb}:leases`,
//! handed to a [`NodeLost`] hook, then removed by a fenced script.
//!
//! The decisions are `core::lease`'s; this task only talks to Redis and logs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::{RedisError, Script};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::health::Status;
use crate::core::lease::{Change, Lease, Lost, Next};

pub const INCARNATION_KEY: &str = "{sb}:incarnation";
pub const NODES_KEY: &str = "{sb}:nodes";
pub const LEASES_KEY: &str = "{sb}:leases";

/// Redis's clock in ms; every deadline is on it, never on a node's clock.
const NOW_MS: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// KEYS: incarnation, nodes, leases. ARGV: node id, lease ms, floor (the node's highest
/// incarnation so far: incarnations keep rising even if Redis lost its counter).
/// Returns {incarnation, whether the counter existed before}.
const REGISTER: &str = "local existed = redis.call('EXISTS', KEYS[1])
local inc = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[3])
if inc <= floor then
  inc = floor + 1
  redis.call('SET', KEYS[1], string.format('%d', inc))
end
redis.call('HSET', KEYS[2], ARGV[1], string.format('%d', inc))
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
return {inc, existed}";

/// KEYS: nodes, leases. ARGV: node id, incarnation, lease ms. Extends only a running
/// lease of this very incarnation; refuses with `FENCED <why>` otherwise.
const RENEW: &str = "local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then
  return redis.error_reply('FENCED unknown: node ' .. ARGV[1] .. ' is not registered (reaped as dead, or Redis lost its data)')
end
if held ~= ARGV[2] then
  return redis.error_reply('FENCED replaced: node ' .. ARGV[1] .. ' is incarnation ' .. held .. ', not ' .. ARGV[2])
end
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not deadline or tonumber(deadline) < now then
  return redis.error_reply('FENCED lapsed: the lease of node ' .. ARGV[1] .. ' ran out')
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1";

/// KEYS: nodes, leases. ARGV: the caller's node id. Returns {id, incarnation or '', ...}
/// of every other node whose deadline has passed.
const DEAD_NODES: &str = "local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%d', now))) do
  if id ~= ARGV[1] then
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[1], id) or ''
  end
end
return out";

/// KEYS: nodes, leases. ARGV: caller id, caller incarnation, dead id, its incarnation as
/// seen ('' for none). Fenced like every change; removes the dead node only if it is
/// still that incarnation and still past its deadline (it may have renewed or rejoined).
const REAP: &str = "local held = redis.call('HGET', KEYS[1], ARGV[1])
local mine = redis.call('ZSCORE', KEYS[2], ARGV[1])
if held ~= ARGV[2] or not mine or tonumber(mine) < now then
  return redis.error_reply('FENCED node ' .. ARGV[1] .. ' incarnation ' .. ARGV[2] .. ' is not alive')
end
if (redis.call('HGET', KEYS[1], ARGV[3]) or '') ~= ARGV[4] then return 0 end
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[3])
if deadline and tonumber(deadline) >= now then return 0 end
redis.call('HDEL', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[3])
return 1";

/// KEYS: nodes, leases. ARGV: node id, incarnation. A node stopping gracefully ends its
/// lease now (deadline 0) if it still holds it, so the next scan of any live node reaps it
/// and hands its people over at once instead of after the lease. It stays registered: the
/// reaper finds nodes by their deadlines.
const RELEASE: &str = "if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1";

fn script(body: &str) -> Script {
    Script::new(&format!("{NOW_MS}{body}"))
}

/// What to do with the people a dead node held, before it is removed from the registry:
/// the routing domain's `node_lost` transition (`hub::cluster::link::RoutingHandover`).
#[async_trait::async_trait]
pub trait NodeLost: Send + Sync + 'static {
    /// `node` (last seen as `incarnation`, if registered) is dead. An error leaves it in
    /// the registry, to be tried again at the next scan.
    async fn node_lost(&self, node: &str, incarnation: Option<u64>) -> Result<(), String>;
}

/// What the lease task needs.
pub struct LeaseTask {
    pub conn: ConnectionManager,
    pub node_id: String,
    pub lease: Duration,
    pub renew: Duration,
    pub status: watch::Sender<Status>,
    pub hook: Arc<dyn NodeLost>,
}

/// Why a renewal was refused, from the script's `FENCED <why>: ...` reply.
fn refusal(e: &RedisError) -> Option<Lost> {
    if e.code() != Some("FENCED") {
        return None;
    }
    Some(if e.detail().is_some_and(|d| d.starts_with("unknown")) {
        Lost::Forgotten
    } else {
        Lost::Fenced
    })
}

/// Did Redis answer at all (an error reply is an answer; a dropped connection is not)?
fn answered(e: &RedisError) -> bool {
    e.code().is_some()
}

impl LeaseTask {
    /// Registers, renews and reaps until `shutdown`; then releases the lease (a graceful
    /// leave): the other nodes reap this one at their next scan and hand its people on, as
    /// after a crash but without waiting for the lease to run out.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let register = script(REGISTER);
        let renew = script(RENEW);
        let dead_nodes = script(DEAD_NODES);
        let reap = script(REAP);
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let mut lease = Lease::new(lease_ms);
        let started = Instant::now();
        let now = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut every = tokio::time::interval(self.renew);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    if let Some(incarnation) = lease.member(now()) {
                        self.release(incarnation).await;
                    }
                    return;
                }
                _ = every.tick() => {}
            }
            // At most two rounds: a refused renewal is followed by a registration at once.
            for _ in 0..2 {
                let sent = now();
                let (change, redis_up) = match lease.next() {
                    Next::Register { floor } => {
                        let answer: Result<(u64, u8), _> = register
                            .key(INCARNATION_KEY)
                            .key(NODES_KEY)
                            .key(LEASES_KEY)
                            .arg(&self.node_id)
                            .arg(lease_ms)
                            .arg(floor)
                            .invoke_async(&mut self.conn)
                            .await;
                        match answer {
                            Ok((incarnation, existed)) => {
                                (lease.registered(incarnation, sent, existed == 0 && floor > 0), true)
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot register with the cluster in Redis");
                                (lease.unreachable(now()), answered(&e))
                            }
                        }
                    }
                    Next::Renew { incarnation } => {
                        let answer: Result<i64, _> = renew
                            .key(NODES_KEY)
                            .key(LEASES_KEY)
                            .arg(&self.node_id)
                            .arg(incarnation)
                            .arg(lease_ms)
                            .invoke_async(&mut self.conn)
                            .await;
                        match answer {
                            Ok(_) => {
                                lease.renewed(sent);
                                (None, true)
                            }
                            Err(e) => match refusal(&e) {
                                Some(why) => {
                                    tracing::warn!(error = %e, "the lease renewal was refused");
                                    // This node registers only while it holds nothing, so
                                    // another incarnation under its name is another process.
                                    if e.detail().is_some_and(|d| d.starts_with("replaced")) {
                                        tracing::error!(
                                            node = %self.node_id,
                                            "another process registered under this NODE_ID: two nodes must never share one \
                                             (they will keep fencing each other)"
                                        );
                                    }
                                    (lease.refused(why), true)
                                }
                                None => {
                                    tracing::warn!(error = %e, "cannot renew the cluster lease: Redis does not answer");
                                    (lease.unreachable(now()), false)
                                }
                            },
                        }
                    }
                };
                if let Some(change) = change {
                    self.log(change);
                }
                let status = Status {
                    redis_up,
                    incarnation: lease.member(now()),
                };
                self.status
                    .send_if_modified(|old| std::mem::replace(old, status) != status);
                // Refused: register at once rather than a renewal interval later.
                if !(redis_up && matches!(lease.next(), Next::Register { .. })) {
                    break;
                }
            }
            if let Some(incarnation) = lease.member(now()) {
                self.reap_dead(&dead_nodes, &reap, incarnation).await;
            }
        }
    }

    fn log(&self, change: Change) {
        let node = self.node_id.as_str();
        match change {
            Change::Joined {
                incarnation,
                after: None,
                redis_was_empty,
            } => tracing::info!(node, incarnation, redis_was_empty, "joined the cluster"),
            Change::Joined {
                incarnation,
                after: Some(why),
                redis_was_empty,
            } => tracing::warn!(
                node,
                incarnation,
                after = ?why,
                redis_was_empty,
                "REJOINED the cluster with a new incarnation{}",
                if redis_was_empty { " (Redis had lost its data)" } else { "" }
            ),
            Change::Lost { incarnation, why } => tracing::error!(
                node,
                incarnation,
                why = ?why,
                "LOST the cluster lease: this incarnation may change nothing shared any more; rejoining"
            ),
        }
    }

    /// Ends this incarnation's lease now, so the others take its people over at once.
    async fn release(&mut self, incarnation: u64) {
        let released: Result<u8, _> = script(RELEASE)
            .key(NODES_KEY)
            .key(LEASES_KEY)
            .arg(&self.node_id)
            .arg(incarnation)
            .invoke_async(&mut self.conn)
            .await;
        match released {
            Ok(1) => tracing::info!(
                node = %self.node_id,
                incarnation,
                "left the cluster: released the lease, so the other nodes take this node's people over now"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                error = %e,
                "could not release the cluster lease on the way out: the others take over when it runs out"
            ),
        }
    }

    /// Hands every dead node to the hook, then removes it (only if still dead).
    async fn reap_dead(&mut self, dead_nodes: &Script, reap: &Script, incarnation: u64) {
        let dead: Result<Vec<String>, _> = dead_nodes
            .key(NODES_KEY)
            .key(LEASES_KEY)
            .arg(&self.node_id)
            .invoke_async(&mut self.conn)
            .await;
        let Ok(dead) = dead else { return };
        for pair in dead.chunks_exact(2) {
            let (node, seen) = (&pair[0], &pair[1]);
            let seen_incarnation = seen.parse::<u64>().ok();
            if let Err(e) = self.hook.node_lost(node, seen_incarnation).await {
                tracing::warn!(dead = %node, error = %e, "could not hand over a dead node's people; trying again");
                continue;
            }
            let removed: Result<u8, _> = reap
                .key(NODES_KEY)
                .key(LEASES_KEY)
                .arg(&self.node_id)
                .arg(incarnation)
                .arg(node)
                .arg(seen)
                .invoke_async(&mut self.conn)
                .await;
            match removed {
                Ok(1) => {
                    tracing::warn!(dead = %node, incarnation = ?seen_incarnation, "reaped a dead node: its lease ran out")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(dead = %node, error = %e, "could not reap a dead node"),
            }
        }
    }
}
