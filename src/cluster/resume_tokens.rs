//! Customers' resume tokens known cluster-wide (`docs/cluster.md` §13): the node
//! that issues a token records `{sb}:resume:<SHA-256 of the token, hex>` → the customer's
//! id, so a customer who drops from one node can resume on any other. Redis never holds
//! the token itself: whoever reads Redis cannot resume anyone. The key's lifetime follows
//! the customer's: [`HELD_FOR`] while connected, the grace period from their drop (after
//! which the routing domain has forgotten them anyway: a stale key resumes nobody).

use std::time::Duration;

use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use crate::core::routing::CustomerId;

/// How long a connected customer's key lives: refreshed on every resume; cut to the grace
/// period when they drop. A bound, so a node killed with keys set leaves nothing forever.
pub const HELD_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// The Redis key of a token: its SHA-256 (hex) under the routing domain's hash tag.
pub fn key(token: &str) -> String {
    digest_key("{sb}:resume:", token)
}

/// The Redis key of the chat a token's customer missed the end of while away (an ended
/// visit, as the node that held them kept it): the same digest under another prefix.
pub fn ended_key(token: &str) -> String {
    digest_key("{sb}:ended:", token)
}

/// The Redis key of the chat a customer missed the end of, kept by a node that took them
/// over without their token (the reaper of their node): found through the token's key,
/// which names the customer, so only the token's holder can read it.
pub fn ended_customer_key(customer: CustomerId) -> String {
    format!("{ENDED_OF_CUSTOMER}{}", customer.0)
}

/// The Redis key of a token given to a customer talking to a bot on several nodes: their
/// bot stage's ticket (`hub::bot_relay`), the same digest under another prefix.
pub fn bot_stage_key(token: &str) -> String {
    digest_key("{sb}:bot-resume:", token)
}

/// The prefix of [`ended_customer_key`]; `find_or_take_ended` appends the id it finds.
const ENDED_OF_CUSTOMER: &str = "{sb}:ended-customer:";

fn digest_key(prefix: &str, token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut key = String::with_capacity(prefix.len() + 64);
    key.push_str(prefix);
    for byte in digest {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// Records (or refreshes) which customer `key` resumes, for `ttl`.
pub async fn remember(
    conn: &mut ConnectionManager,
    key: &str,
    customer: CustomerId,
    ttl: Duration,
) -> redis::RedisResult<()> {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    redis::cmd("SET")
        .arg(key)
        .arg(customer.0)
        .arg("PX")
        .arg(ms)
        .query_async(conn)
        .await
}

/// The customer `key` resumes, if it is still known.
pub async fn find(conn: &mut ConnectionManager, key: &str) -> redis::RedisResult<Option<CustomerId>> {
    let id: Option<u64> = redis::cmd("GET").arg(key).query_async(conn).await?;
    Ok(id.map(CustomerId))
}

/// Keeps an ended visit (opaque JSON, [`ended_key`]) for `ttl`, the grace period: a
/// resume on any node within it gets the chat and its ending, as on one node.
pub async fn remember_ended(
    conn: &mut ConnectionManager,
    key: &str,
    visit: &str,
    ttl: Duration,
) -> redis::RedisResult<()> {
    // Not over the mark of a visit already shown (`find_or_take_ended`): the customer's
    // node may replay the ending after a resume elsewhere showed the agent's node's copy.
    static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
        redis::Script::new(
            r"
            if redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end
            redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
            return 1
            ",
        )
    });
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let _: i64 = SCRIPT.key(key).arg(visit).arg(ms).arg(SHOWN).invoke_async(conn).await?;
    Ok(())
}

/// The Lua function the scripts below open with: whether `node` is registered under
/// `incarnation` with its lease running (Redis's clock). A node reaped while stopped, or
/// whose lease ran out, may neither take an ended visit nor forget a token.
const IS_MEMBER: &str = r"
local function is_member(node, incarnation)
    if redis.call('HGET', '{sb}:nodes', node) ~= incarnation then return false end
    local deadline = redis.call('ZSCORE', '{sb}:leases', node)
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    return deadline ~= false and tonumber(deadline) >= now
end
";

/// What a token's ended-visit key holds once its visit was shown: two nodes keep the
/// same ending (the customer's, under the token; the agent's, under the customer's id),
/// and a copy written after the other was shown must not show the visit twice.
const SHOWN: &str = "shown";

/// What Redis knows of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The customer it resumes, if it is still known, and the ended visit kept for them.
    Known {
        customer: Option<CustomerId>,
        ended_visit: Option<String>,
        /// The id of the routing events stream's newest entry at the lookup: a replica
        /// that has not applied it yet may not know the customer yet (their join, or the
        /// restore that brought them back, is in the stream after what it applied).
        stream_at: Option<String>,
    },
    /// Nothing, but Redis lost its data and the nodes may not have recorded their
    /// customers' tokens again yet: the domain is not restored, or was restored within the
    /// last `settling` (its claim window, behind which each node records its tokens). Not
    /// an answer: ask again.
    Restoring,
    /// Not looked up: the asking node is no member under its incarnation (reaped while
    /// stopped and not yet aware of it, or its lease ran out). Taking an ended visit is
    /// showing it: a node about to close its connections (fenced) would take the ending
    /// kept for a customer and never show it, and the node they resume on next would find
    /// nothing. Not an answer: ask again (elsewhere, once this node closes).
    NotMember,
}

/// The customer `key` resumes, and the ended visit kept for them, if any — under `ended`
/// (the token's) or under the customer's id ([`ended_customer_key`]) — taken, and the
/// token's key with it: a visit is shown once, as on one node, and then the token resumes
/// nobody. One round trip (a script: the second key needs the id).
/// Neither found while Redis's lost data is being restored ([`Found::Restoring`]): the
/// token may be one of those the nodes record again after their claims. Asked by `node`
/// (incarnation `incarnation`) only while it is alive ([`Found::NotMember`]).
pub async fn find_or_take_ended(
    conn: &mut ConnectionManager,
    key: &str,
    ended: &str,
    settling: Duration,
    node: &str,
    incarnation: u64,
) -> redis::RedisResult<Found> {
    static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
        redis::Script::new(&format!(
            "{IS_MEMBER}{}",
            r"
            if not is_member(ARGV[4], ARGV[5]) then return {false, false, 2, false} end
            local id = redis.call('GET', KEYS[1])
            local visit = redis.call('GET', KEYS[2])
            local life = redis.call('PTTL', KEYS[2])
            if visit == ARGV[3] then
                visit = false
            elseif visit then
                redis.call('DEL', KEYS[2])
            end
            if (not visit) and id then
                local of_customer = ARGV[1] .. id
                visit = redis.call('GET', of_customer)
                if visit then
                    life = redis.call('PTTL', of_customer)
                    redis.call('DEL', of_customer)
                end
            end
            if visit then
                -- Shown once: the other node's copy, kept under the token later, is not shown.
                if life > 0 then redis.call('SET', KEYS[2], ARGV[3], 'PX', life) end
                -- The visit is over, the token resumes nobody now.
                if id then redis.call('DEL', KEYS[1]) end
            end
            local restoring = 0
            if (not id) and (not visit) then
                if redis.call('EXISTS', KEYS[3]) == 0 then
                    restoring = 1
                else
                    local restored = redis.call('GET', KEYS[4])
                    if restored then
                        local t = redis.call('TIME')
                        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
                        if now <= tonumber(restored) + tonumber(ARGV[2]) then
                            restoring = 1
                        end
                    end
                end
            end
            local newest = redis.call('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)
            local stream_at = false
            if newest[1] then stream_at = newest[1][1] end
            return {id, visit, restoring, stream_at}
            ",
        ))
    });
    let settling = u64::try_from(settling.as_millis()).unwrap_or(u64::MAX);
    let (id, visit, restoring, stream_at): (Option<u64>, Option<String>, u8, Option<String>) = SCRIPT
        .key(key)
        .key(ended)
        .key(super::restore::CLUSTER_ID_KEY)
        .key(super::restore::RESTORED_KEY)
        .key(super::routing_scripts::EVENTS_KEY)
        .arg(ENDED_OF_CUSTOMER)
        .arg(settling)
        .arg(SHOWN)
        .arg(node)
        .arg(incarnation.to_string())
        .invoke_async(conn)
        .await?;
    Ok(if restoring == 2 {
        Found::NotMember
    } else if restoring == 1 {
        Found::Restoring
    } else {
        Found::Known {
            customer: id.map(CustomerId),
            ended_visit: visit,
            stream_at,
        }
    })
}

/// The customer's visit is over: their token resumes nobody, anywhere — said by `node`
/// (incarnation `incarnation`) only while it is alive. A node stopped past its lease and
/// woken (fenced: reaped, or about to be) replays what happened meanwhile as if its
/// customers had seen it live, and would take the tokens of customers whose chat ended
/// while they counted as connected there: the very key through which they find, on
/// another node, the ending kept for them (`ended_customer_key`). Refused, it is left to
/// its lifetime. True when this node may forget it (the key is gone).
pub async fn forget(conn: &mut ConnectionManager, key: &str, node: &str, incarnation: u64) -> redis::RedisResult<bool> {
    static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
        redis::Script::new(&format!(
            "{IS_MEMBER}{}",
            r"
            if not is_member(ARGV[1], ARGV[2]) then return 0 end
            redis.call('DEL', KEYS[1])
            return 1
            ",
        ))
    });
    let done: u8 = SCRIPT
        .key(key)
        .arg(node)
        .arg(incarnation.to_string())
        .invoke_async(conn)
        .await?;
    Ok(done == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_tokens_digest_never_the_token() {
        let k = key("secret-token");
        assert!(k.starts_with("{sb}:resume:"));
        assert_eq!(k.len(), "{sb}:resume:".len() + 64);
        assert!(!k.contains("secret-token"));
        assert_eq!(k, key("secret-token"), "the same on every node");
        assert_ne!(k, key("secret-token2"));
        let e = ended_key("secret-token");
        assert!(e.starts_with("{sb}:ended:") && e.ends_with(&k["{sb}:resume:".len()..]));
    }
}
