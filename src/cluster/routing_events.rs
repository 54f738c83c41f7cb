//! Reading the routing events stream (`{sb}:routing-events`): every applied transition,
//! in the order Redis applied it, with its arguments and decisions. A node follows it to
//! keep its place mirror (and, once wired, its live figures) without a Redis call per
//! update; a follower that fell behind the stream's trimmed head reloads from a snapshot.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};

use super::routing_replies::{MalformedReply, parse_args, parse_decisions};
use super::routing_scripts::{Applied, ClusterRoutingError, EVENTS_KEY, read_snapshot};
use crate::core::places::Places;
use crate::core::routing::Decision;

/// The checks a follower's read must pass (`lua/follow_check.lua`), before each script's own lines.
const FOLLOW_CHECK_LUA: &str = include_str!("lua/follow_check.lua");
/// The checks and the read, atomically.
static FOLLOW: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{FOLLOW_CHECK_LUA}\n{}", include_str!("lua/follow.lua"))));
/// The checks alone, for the pipelined read (`follow_blocking`): KEYS[1] the stream, ARGV[1]
/// the follower's ordinal, ARGV[2] the domain's id.
static FOLLOW_CHECK: LazyLock<String> =
    LazyLock::new(|| format!("{FOLLOW_CHECK_LUA}\nreturn follow_check(KEYS[1], tonumber(ARGV[1]), ARGV[2])\n"));

/// One entry of the events stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingEvent {
    pub id: String,
    /// The transition's name (`join`, `node_lost`, ...).
    pub transition: String,
    /// The node that made it.
    pub node: String,
    /// The transition's arguments after the fencing pair, as the script got them.
    pub args: Vec<String>,
    pub applied: Applied,
}

fn event(entry: StreamId) -> Result<RoutingEvent, ClusterRoutingError> {
    let field = |name: &str| -> Result<String, ClusterRoutingError> {
        entry
            .get::<String>(name)
            .ok_or_else(|| MalformedReply(format!("event {} has no {name}", entry.id)).into())
    };
    let (decisions, queued_tickets) = parse_decisions(&field("d")?)?;
    Ok(RoutingEvent {
        transition: field("t")?,
        node: field("n")?,
        args: parse_args(&field("a")?)?,
        applied: Applied {
            decisions,
            queued_tickets,
            event_id: Some(entry.id.clone()),
        },
        id: entry.id,
    })
}

/// Reads the events after `after` (an entry id; "0-0" for all), at most `count`.
pub async fn read_events(
    conn: &mut ConnectionManager,
    after: &str,
    count: usize,
) -> Result<Vec<RoutingEvent>, ClusterRoutingError> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(EVENTS_KEY)
        .arg(format!("({after}"))
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?;
    reply.ids.into_iter().map(event).collect()
}

/// What [`follow`] found after a follower's last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The events after it (none: nothing new yet).
    Events(Vec<RoutingEvent>),
    /// Some the follower had not read were trimmed away: it must start again from a snapshot.
    Gap,
    /// Redis lost its data: the routing domain's id (`{sb}:cluster-id`) is gone or another
    /// than the one the follower started under. Whatever it knew is gone from Redis.
    Lost,
}

/// The events after `last` (whose ordinal in the stream is `seen`), at most `count`, in the
/// routing domain whose id is `cluster_id` (see [`Followed`]). A node's replica reads the
/// stream with it.
pub async fn follow(
    conn: &mut ConnectionManager,
    cluster_id: &str,
    last: &str,
    seen: u64,
    count: usize,
) -> Result<Followed, ClusterRoutingError> {
    let (status, entries): (String, StreamRangeReply) = FOLLOW
        .key(EVENTS_KEY)
        .arg(last)
        .arg(seen)
        .arg(count)
        .arg(cluster_id)
        .invoke_async(conn)
        .await?;
    match status.as_str() {
        "gap" => Ok(Followed::Gap),
        "lost" => Ok(Followed::Lost),
        _ => Ok(Followed::Events(
            entries.ids.into_iter().map(event).collect::<Result<Vec<_>, _>>()?,
        )),
    }
}

/// The most entries [`follow_blocking`] reads at once: far below the events stream's
/// bound (100,000 entries, `lua/routing.lua` and `buddy_log.rs`), which its reasoning needs.
pub const FOLLOW_MAX_BATCH: usize = 10_000;

/// [`follow`], waiting up to `block_ms` for the first event after `last` when there is
/// none yet: one round trip, a blocking `XREAD` and then the checks
/// (`lua/follow_check.lua`), so a node woken by a new event reads it in the same call (no
/// script reading it again).
///
/// Why the entries may be taken from a read checked after it rather than with it,
/// atomically:
/// - The two go on one connection as one pipeline, so a Redis restarted between them cut
///   it and the call fails.
/// - A domain emptied before or under the read (the data flushed without a restart), or
///   restored meanwhile, fails the check (`lost`: the domain's id is gone; or `gap`: fewer
///   entries were ever added than this follower had read before it), so the entries are
///   not taken. What the check finds after the read is what counts: a domain that was
///   whole when the read began but is lost when it ends fails it, and one lost before the
///   read can only be lost still, or written back younger (a gap). So a check before the
///   read would refuse nothing this one lets through.
/// - An entry this follower has not read is trimmed only once the stream holds more than
///   its bound after it, so a read of fewer than `count` entries had none trimmed before
///   it; and trimming only moves forward, so one trimmed before the read is still
///   missing at the check (a gap). A full batch is read again by [`follow`] itself,
///   atomically.
///
/// A failing check answers `lost` or `gap`; the entries read are then dropped.
pub async fn follow_blocking(
    conn: &mut ConnectionManager,
    cluster_id: &str,
    last: &str,
    seen: u64,
    count: usize,
    block_ms: u64,
) -> Result<Followed, ClusterRoutingError> {
    let count = count.clamp(1, FOLLOW_MAX_BATCH);
    let mut pipe = redis::pipe();
    pipe.cmd("XREAD")
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(block_ms)
        .arg("STREAMS")
        .arg(EVENTS_KEY)
        .arg(last);
    // After the read, the follower will have read what it returned: the check counts
    // those too, known only once the read is done, so it checks `seen` itself (a flushed
    // or restarted stream holds fewer than that).
    pipe.cmd("EVAL")
        .arg(FOLLOW_CHECK.as_str())
        .arg(1)
        .arg(EVENTS_KEY)
        .arg(seen)
        .arg(cluster_id);
    let (read, status): (Option<StreamReadReply>, String) = pipe.query_async(conn).await?;
    match status.as_str() {
        "lost" => return Ok(Followed::Lost),
        "gap" => return Ok(Followed::Gap),
        _ => {}
    }
    let entries: Vec<StreamId> = read.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids).collect();
    if entries.len() >= count {
        return follow(conn, cluster_id, last, seen, count).await;
    }
    Ok(Followed::Events(
        entries.into_iter().map(event).collect::<Result<Vec<_>, _>>()?,
    ))
}

/// What one [`RoutingFollower::poll`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// These events, applied to the places in order (none: nothing new).
    Events(Vec<RoutingEvent>),
    /// Events it had not read were trimmed away: it reloaded the places from a snapshot.
    Reloaded,
}

/// A node's follower of the routing events: a place mirror kept up to date from the
/// stream, reloaded from a snapshot when it fell behind. See `docs/cluster.md`, section 6.
pub struct RoutingFollower {
    conn: ConnectionManager,
    /// The last entry applied, and how many entries were ever added up to it.
    last_id: String,
    seen: u64,
    places: Places,
}

impl RoutingFollower {
    /// Starts from a snapshot of the queues.
    pub async fn start(conn: ConnectionManager) -> Result<Self, ClusterRoutingError> {
        let mut follower = Self {
            conn,
            last_id: "0-0".to_string(),
            seen: 0,
            places: Places::new(),
        };
        follower.reload().await?;
        Ok(follower)
    }

    async fn reload(&mut self) -> Result<(), ClusterRoutingError> {
        let snapshot = read_snapshot(&mut self.conn).await?;
        snapshot.reload_places(&mut self.places);
        self.last_id = snapshot.last_event;
        self.seen = snapshot.events_added;
        Ok(())
    }

    /// Reads and applies up to `count` events after the last one applied, or reloads
    /// when some were trimmed before it read them. Never blocks on an empty stream.
    pub async fn poll(&mut self, count: usize) -> Result<Polled, ClusterRoutingError> {
        let (status, entries): (String, StreamRangeReply) = FOLLOW
            .key(EVENTS_KEY)
            .arg(&self.last_id)
            .arg(self.seen)
            .arg(count)
            .invoke_async(&mut self.conn)
            .await?;
        if status == "gap" {
            self.reload().await?;
            return Ok(Polled::Reloaded);
        }
        let events = entries.ids.into_iter().map(event).collect::<Result<Vec<_>, _>>()?;
        for e in &events {
            e.applied.update_places(&mut self.places);
            self.last_id.clone_from(&e.id);
            self.seen += 1;
        }
        Ok(Polled::Events(events))
    }

    /// Tells each waiting customer whose place changed since they were last told.
    pub fn flush_places(&mut self, out: &mut Vec<Decision>) {
        self.places.flush(out);
    }

    pub fn places(&self) -> &Places {
        &self.places
    }
}
