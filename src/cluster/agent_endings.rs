//! How agents' chats ended, kept where every node reads them (`docs/cluster.md` §13): an
//! agent away from one node may sign in again on another, whose `agent_welcome.ended` then
//! says how their chats ended meanwhile, as the node that logged them would have.
//!
//! `{sb}:agent-endings:<agent id>` is a list, newest first, of opaque entries (the hub's
//! JSON of one ending: `hub::ended_away` owns the shape): each node that tells an agent a
//! chat ended pushes it, the list trimmed to the latest few and expiring [`KEPT_FOR`]
//! after its latest ending. Two nodes that log the same chat (the agent's and the
//! customer's) write the same entry; the second write takes the first's place.

use std::time::Duration;

use redis::aio::ConnectionManager;

/// How long an agent's endings stay after the latest one: a console left disconnected
/// past the grace period (a laptop asleep over lunch or overnight) still learns how its
/// chats ended when it reconnects, on any node. One key per agent whose chat ended, each
/// capped, so the whole stays small (a few kB per agent).
pub const KEPT_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// The Redis key of `agent`'s endings.
pub fn key(agent: &str) -> String {
    format!("{{sb}}:agent-endings:{agent}")
}

/// Keeps `entry` as `agent`'s latest ending, in one transaction: the same entry written
/// before (by the other node that logged the chat) taken out, the list cut to the latest
/// `kept` and its expiry set to [`KEPT_FOR`] from now.
pub async fn keep(conn: &mut ConnectionManager, agent: &str, entry: &str, kept: usize) -> redis::RedisResult<()> {
    let key = key(agent);
    let last = isize::try_from(kept).unwrap_or(isize::MAX).saturating_sub(1).max(0);
    let ms = u64::try_from(KEPT_FOR.as_millis()).unwrap_or(u64::MAX);
    redis::pipe()
        .atomic()
        .cmd("LREM")
        .arg(&key)
        .arg(0)
        .arg(entry)
        .ignore()
        .cmd("LPUSH")
        .arg(&key)
        .arg(entry)
        .ignore()
        .cmd("LTRIM")
        .arg(&key)
        .arg(0)
        .arg(last)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(ms)
        .ignore()
        .query_async(conn)
        .await
}

/// `agent`'s endings kept, oldest first (at most `kept`).
pub async fn read(conn: &mut ConnectionManager, agent: &str, kept: usize) -> redis::RedisResult<Vec<String>> {
    let last = isize::try_from(kept).unwrap_or(isize::MAX).saturating_sub(1).max(0);
    let mut newest_first: Vec<String> = redis::cmd("LRANGE")
        .arg(key(agent))
        .arg(0)
        .arg(last)
        .query_async(conn)
        .await?;
    newest_first.reverse();
    Ok(newest_first)
}
