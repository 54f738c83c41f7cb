//! The router's side of the outbox of this node's own calls (`hub::own_calls` holds the
//! queue's rule; `docs/cluster.md` §9): which calls are kept while Redis does not answer,
//! and sending them again, oldest first, each safe to repeat.
//!
//! Why a repeat is safe, call by call (the call may have reached Redis before its answer
//! was lost):
//! - `customer_disconnected` / `agent_disconnected` are not refused when repeated (the
//!   script draws a new grace epoch), so before one is sent again the router reads the
//!   person's record: it goes only if this node still holds them and they are not away
//!   yet — otherwise the first one went through. (Of a person who moved on — resumed
//!   elsewhere, handed to a reaper — the script itself refuses it `not_held`.)
//! - `agent_offline` likewise only while this node still holds the agent (a repeat of an
//!   applied one finds nobody; an agent back on another node must not be signed off).
//! - grace expiries carry their epoch: a repeat, or one for a person who came back, is a
//!   stale timer and changes nothing.
//! - an offer's expiry names the offer: a repeat, or one for an offer answered or
//!   withdrawn since, finds no standing offer and changes nothing.
//! - `end_chat` of an ended chat is `unknown_chat`; `leave` of a gone customer is
//!   `unknown_customer`; category and agent settings (`add_category`, `set_limit`...) set
//!   a value, and setting it twice is setting it once (`set_category_mode` and
//!   `set_category_open` too).
//! - buddy events are counts (a page closed) and are not safe as such: each own event
//!   carries an id of its own and `lua/buddy_event.lua` records an id once.
//! - a customer's join whose answer was lost (it may stand in Redis) carries its request
//!   id: the script answers a repeat with the first reply for a minute
//!   ([`JOIN_KEPT_MAX`] stays inside it), and a join it never had is applied once.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::time::Instant;

use super::own_calls::OwnCalls;
use crate::cluster::buddy_log;
use crate::cluster::replica::RoutingOp;
use crate::cluster::routing_scripts::{ClusterRoutingError, RedisRouting};
use crate::core::routing::AgentId;
use crate::hub::buddy_events::BuddyEvent;
use crate::hub::delivery::ConnId;

/// Own calls kept at most while Redis does not answer. A node holds about 20,000
/// connections (README); during one outage each may leave a disconnect and a grace
/// expiry, and a buddy page a close and an expiry: 100,000 covers them (a few MB). A call
/// beyond it is dropped and logged: that person then stays as Redis last had them until
/// this node's loss hands them on, as before the outbox.
pub(crate) const OWN_CALLS_CAPACITY: usize = 100_000;

/// How long a join whose answer was lost is sent again at most: inside the minute for
/// which `lua/routing.lua` keeps a join's reply under its request id
/// (`REQUEST_TTL_SECONDS`), past which a repeat would be a second join. A bound besides:
/// kept calls go again only while the node holds its lease (a suspended node ends fenced,
/// its outbox dropped, or re-asserting, its joins dropped), so a kept join is answered or
/// dropped within about a lease period.
pub(crate) const JOIN_KEPT_MAX: Duration = Duration::from_secs(50);

/// A call this node made on its own, waiting for Redis.
#[derive(Debug)]
pub(crate) enum OwnCall {
    Op(RoutingOp),
    /// A customer's join whose calls all failed unanswered: Redis may have applied it, so
    /// the customer is not refused (they would join again and be paired twice, the first
    /// customer held by nobody) but waits for the answer of its repeat. `conn` is told a
    /// refusal; a join applied binds to it through the events stream, as any join does.
    Join {
        op: RoutingOp,
        conn: ConnId,
        since: Instant,
    },
    /// A buddy event (JSON) made by `process`, with its own id (`once`).
    Buddy {
        event: String,
        process: String,
        once: String,
    },
}

impl OwnCall {
    /// What a kept join's connection is told of its refusal; another call (nobody waits
    /// for it) gives the error back.
    fn refusal_for_caller(&self, error: ClusterRoutingError) -> Result<RefusedJoin, ClusterRoutingError> {
        match self {
            OwnCall::Join {
                op: RoutingOp::Join { request, .. },
                conn,
                ..
            } => Ok(RefusedJoin {
                conn: *conn,
                request: request.clone(),
                error,
            }),
            _ => Err(error),
        }
    }
}

/// Redis lost its data: drops the buddy closes (and any claim of an earlier restore) kept
/// through the outage. The restored list may count them already (the longest replica
/// applied them), and a node's claim of the restored list counts its connections as they
/// are, so a close sent after it would count one twice (their once-only ids were lost
/// with the data).
pub(crate) fn drop_buddy_closes(own: &mut OwnCalls<OwnCall>) {
    let dropped = own.drop_where(|call| match call {
        OwnCall::Buddy { event, .. } => {
            serde_json::from_str::<BuddyEvent>(event).is_ok_and(|e| e.is_squared_by_a_claim())
        }
        OwnCall::Op(_) | OwnCall::Join { .. } => false,
    });
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "buddy closes kept through the outage are dropped: this node's claim counts its pages"
        );
    }
}

/// Redis lost its data: drops the joins waiting for an answer. The hub refuses every join
/// not yet in the stream (`cluster_data_lost`: join again); sent after the restore, one
/// would make a customer nobody holds.
pub(crate) fn drop_joins(own: &mut OwnCalls<OwnCall>) {
    let dropped = own.drop_where(|call| matches!(call, OwnCall::Join { .. }));
    if dropped > 0 {
        tracing::warn!(dropped, "joins waiting for Redis's answer are dropped with its data");
    }
}

/// A kept join Redis refused when sent again, or kept too long: its connection is told.
pub(crate) struct RefusedJoin {
    pub conn: ConnId,
    pub request: String,
    pub error: ClusterRoutingError,
}

/// What sending the waiting calls came to.
pub(crate) enum Sent {
    /// All sent (or found not to apply any more).
    All,
    /// Redis did not answer: the rest wait, the oldest first.
    Stuck,
    /// This node is fenced: the caller drops them all.
    Fenced,
}

/// Whether a failure means the call may not have reached Redis (so it waits and goes
/// again), rather than an answer: an I/O failure (a broken or refused connection, a
/// timeout), or a server that is not ready (`LOADING`: a Redis restarted with its data is
/// still reading it). A reply this client could not read is an answer: sent again it
/// would fail again, and an own call stuck on it would hold every later one.
pub(crate) fn unanswered(e: &ClusterRoutingError) -> bool {
    matches!(e, ClusterRoutingError::Redis(e)
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || matches!(e.code(), Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN")))
}

/// Sends the waiting calls in order, until one finds Redis not answering. Kept joins it
/// refuses go to `refused`.
pub(crate) async fn send(
    own: &mut OwnCalls<OwnCall>,
    redis: &RedisRouting,
    conn: &mut ConnectionManager,
    (node, incarnation): (&str, u64),
    refused: &mut Vec<RefusedJoin>,
) -> Sent {
    let total = own.len();
    while let Some(call) = own.front() {
        if let OwnCall::Join { since, .. } = call
            && since.elapsed() > JOIN_KEPT_MAX
        {
            tracing::warn!(?call, "a join kept too long without Redis's answer is refused");
            let error = std::io::Error::from(std::io::ErrorKind::TimedOut);
            refused.extend(call.refusal_for_caller(ClusterRoutingError::Redis(error.into())).ok());
            own.sent();
            continue;
        }
        let result = match call {
            OwnCall::Join { op, .. } => op.run(redis).await.map(|_| ()),
            OwnCall::Op(op) => match still_applies(conn, node, op).await {
                Ok(true) => op.run(redis).await.map(|_| ()),
                Ok(false) => {
                    tracing::info!(?op, "an own call kept while Redis was away no longer applies");
                    own.sent();
                    continue;
                }
                Err(e) => Err(e.into()),
            },
            OwnCall::Buddy { event, process, once } => {
                buddy_log::append(conn, node, incarnation, event, process, Some(once)).await
            }
        };
        match result {
            Err(ClusterRoutingError::Fenced) => return Sent::Fenced,
            Err(e) if unanswered(&e) => {
                tracing::debug!(error = %e, waiting = own.len(), "Redis does not answer yet: own calls wait");
                return Sent::Stuck;
            }
            Ok(()) => {}
            Err(e) => match call.refusal_for_caller(e) {
                Ok(join) => refused.push(join),
                Err(e) => tracing::debug!(error = %e, ?call, "an own call sent again was refused"),
            },
        }
        own.sent();
    }
    if total > 0 {
        tracing::info!(sent = total, "sent this node's own calls kept while Redis was away");
    }
    Sent::All
}

/// Whether Redis holds `agent` for this node (`node`), connected: an agent's coming online
/// (or back) made here whose answer was lost was applied (the hub sends one only for an
/// agent it does not hold connected, and this node's later calls wait behind it).
pub(crate) async fn agent_held_here(
    conn: &mut ConnectionManager,
    node: &str,
    agent: &AgentId,
) -> Result<bool, ClusterRoutingError> {
    let key = format!("{{sb}}:agent:{}", agent.0);
    let (holder, away) = holder_and_away(conn, &key).await?;
    Ok(holder.as_deref() == Some(node) && away.is_none())
}

/// A person's record in Redis: the node holding them, and whether they are away.
async fn holder_and_away(
    conn: &mut ConnectionManager,
    key: &str,
) -> redis::RedisResult<(Option<String>, Option<String>)> {
    redis::cmd("HMGET")
        .arg(key)
        .arg("node")
        .arg("away")
        .query_async(conn)
        .await
}

/// Whether a disconnect or an agent's going offline still applies: this node holds the
/// person, and (a disconnect) they are not away yet. Every other call applies.
async fn still_applies(conn: &mut ConnectionManager, node: &str, op: &RoutingOp) -> redis::RedisResult<bool> {
    let (key, away_matters) = match op {
        RoutingOp::CustomerDisconnected(c) => (format!("{{sb}}:customer:{}", c.0), true),
        RoutingOp::AgentDisconnected(a, _) => (format!("{{sb}}:agent:{}", a.0), true),
        RoutingOp::AgentOffline(a, _) => (format!("{{sb}}:agent:{}", a.0), false),
        _ => return Ok(true),
    };
    let (holder, away) = holder_and_away(conn, &key).await?;
    Ok(holder.as_deref() == Some(node) && !(away_matters && away.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(e: redis::RedisError) -> ClusterRoutingError {
        ClusterRoutingError::Redis(e)
    }

    #[test]
    fn only_a_call_redis_may_not_have_had_waits_to_go_again() {
        let io = |kind| redis(redis::RedisError::from(std::io::Error::from(kind)));
        assert!(unanswered(&io(std::io::ErrorKind::BrokenPipe)));
        assert!(unanswered(&io(std::io::ErrorKind::TimedOut)));
        assert!(unanswered(&io(std::io::ErrorKind::NotConnected)));
        // A reply this client could not read is an answer: sent again it fails again,
        // and it would hold every later own call (review finding: a poison entry).
        let unreadable = redis(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "not a number",
        )));
        assert!(!unanswered(&unreadable));
        let parse = redis(redis::RedisError::from((redis::ErrorKind::Parse, "garbage")));
        assert!(!unanswered(&parse));
        assert!(!unanswered(&ClusterRoutingError::Fenced));
    }
}
