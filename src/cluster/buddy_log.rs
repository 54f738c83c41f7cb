//! The buddy list's events in Redis (`docs/cluster.md` §15): a buddy-list
//! event is appended, after the caller's fencing check, to the routing events stream
//! (transition `buddy`), so every node reads the buddy events in one order with the
//! routing's own, `node_lost` included, and replays them through its replica of the
//! buddy desk. Redis decides nothing here: the presence core does, on every node alike.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionManager;

use super::routing_scripts::{ClusterRoutingError, EVENTS_KEY};

static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/fencing.lua"),
        include_str!("lua/buddy_event.lua")
    ))
});

/// The transition name buddy events carry in the routing events stream.
pub const BUDDY_TRANSITION: &str = "buddy";
/// The stream's bound, as the routing scripts keep it (`lua/routing.lua`).
const EVENTS_MAXLEN: u64 = 100_000;

/// Appends one buddy event (its JSON) for `node` at `incarnation`, made by `process` (the
/// entry's arguments are `[event, process]`); `Fenced` when that node is not alive, so a
/// stale node's belief is never recorded. `once`, when given, is the event's own id: the
/// same id sent again within a minute is not recorded twice (a node's own events, which
/// its outbox may send again after an answer lost in transit).
pub async fn append(
    conn: &mut ConnectionManager,
    node: &str,
    incarnation: u64,
    event: &str,
    process: &str,
    once: Option<&str>,
) -> Result<(), ClusterRoutingError> {
    let _: String = APPEND
        .key(EVENTS_KEY)
        .arg(node)
        .arg(incarnation)
        .arg(event)
        .arg(EVENTS_MAXLEN)
        .arg(process)
        .arg(once.unwrap_or(""))
        .invoke_async(conn)
        .await?;
    Ok(())
}
