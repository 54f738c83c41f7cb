//! An API token's rate counted over all nodes: `core::token_rate`'s step run in Redis,
//! on Redis's clock, under `{sb}:api-token-rate:<token id>` (when the token's next request
//! is due, ms; it lapses once that time has passed, as a token not seen lately is due now).
//! One round trip a request, on a connection of its own ([`connection`]). Whether to ask
//! Redis, and what to do when it does not answer, is `api_tokens::rate`'s.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::node::Cluster;

use crate::core::token_rate::{SPACING_MS, TOLERANCE_MS};

/// The Redis key of token `id`'s next due time.
pub fn key(id: &str) -> String {
    format!("{{sb}}:api-token-rate:{id}")
}

/// The token rates' own connection to `cluster`'s Redis: a count that is slow or fails
/// (a token hammering the API, Redis loaded) never queues behind the routing's calls on
/// the node's shared connection, nor they behind it. A request waits at most `wait`; a
/// failed one is tried once more after reconnecting.
pub fn connection(cluster: &Cluster, wait: Duration) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(wait))
        .set_response_timeout(Some(wait))
        .set_number_of_retries(1)
        .set_max_delay(wait);
    ConnectionManager::new_lazy_with_config(cluster.client().clone(), config)
}

/// KEYS: the token's key. ARGV: spacing ms, tolerance ms. Returns 0 when the request is
/// let through, else the ms to wait. The step is `core::token_rate::admit`'s, line for line.
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local spacing = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local due = tonumber(redis.call('GET', KEYS[1]) or now)
if due < now then due = now end
if due - now > tolerance then return due - now - tolerance end
local next_due = due + spacing
redis.call('SET', KEYS[1], string.format('%d', next_due), 'PX', next_due - now)
return 0
",
    )
});

/// Counts a request of token `id` over all nodes: `None` when it is let through, else the
/// ms to wait (as `Admission::Refused`; the due time of one let through stays in Redis).
pub async fn admit(conn: &mut ConnectionManager, id: &str) -> redis::RedisResult<Option<i64>> {
    let wait_ms: i64 = ADMIT
        .key(key(id))
        .arg(SPACING_MS)
        .arg(TOLERANCE_MS)
        .invoke_async(conn)
        .await?;
    Ok((wait_ms > 0).then_some(wait_ms))
}
