//! API tokens: credentials of their own for scripts, CRMs and bots, created by
//! admins with scopes (`core::api_tokens`), sent as `Authorization: Bearer sbt_…`.
//!
//! - **Stored hashed.** The store keeps the SHA-256 of the secret, never the secret (shown
//!   once, at creation). A plain SHA-256 is enough here, unlike for passwords: the secret is
//!   256 random bits, so there is nothing to guess from a leaked hash, and a slow hash would
//!   only cost every request. Look-up is by the hash (an index), so no secret is ever
//!   compared byte by byte and the time of a refusal tells nothing of a stored secret.
//! - **Revoked on every node within a second.** The revoking node drops the token from its
//!   cache and publishes `AdminChange::ApiTokenRevoked` on the admin bus; every other node
//!   drops it on hearing it ([`ApiTokens::forget`]), usually within milliseconds, and an
//!   answer from the store read before the revocation cannot put it back (a generation
//!   count). A node whose bus subscription was cut empties its cache when it subscribes
//!   again. The bus is the fast path, not the guarantee: a message can be lost (Redis
//!   away, a cut not noticed yet), so a look-up is trusted [`CACHE_TTL`] (one second) at
//!   most, and after it the store is asked again, which says revoked. That costs each node
//!   about one store read per token in use per second (a read by an index, the size of a
//!   token), a few per second on a desk with a handful of scripts and bots: nothing beside
//!   the reads every chat message makes, and far cheaper than a revoked token working for
//!   longer. The cache holds [`CACHE_CAPACITY`] tokens at most.
//! - **Rate limited per token** (`core::token_rate`: a burst, then a steady rate); over
//!   it, 429 with `Retry-After`. Counted in Redis over all nodes in a cluster, by the node
//!   alone otherwise and while Redis does not answer ([`rate`]).
//! - **Last use** is written at most once a minute per token and node
//!   (`core::api_tokens::last_use_due`), in the background: no request waits on it.

pub mod rate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;

use crate::clock::now_ms;
use crate::cluster::node::Cluster;
use crate::core::api_tokens::{self as rules, LogBudget, Refused, Spent};
use crate::store::{ApiToken, SharedStore, StoreError};

/// Tokens a node keeps looked up; beyond it the cache is emptied and filled again.
pub const CACHE_CAPACITY: usize = 1_024;
/// How long a looked-up token is trusted without asking the store again: the longest a
/// node that missed a revocation on the bus (a cut it has not noticed yet) accepts it.
/// The module comment says why a store read per token and node each second is fine.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// A new token's secret: the prefix and 256 random bits, URL-safe.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{}{}",
        rules::PREFIX,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What a secret is stored and looked up under (see the module comment for why SHA-256).
pub fn hash(secret: &str) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Why a bearer token was refused.
#[derive(Debug)]
pub enum Refusal {
    /// 401: malformed, unknown, revoked or expired ([`message`] says it to the caller),
    /// with the token's id when it is one of this desk's.
    Invalid(Refused, Option<String>),
    /// 429: over the rate of the token with this id.
    TooFast(Duration, String),
    /// The store could not be asked.
    Store(StoreError),
}

/// What the answer to a refused token says.
pub fn message(why: Refused) -> &'static str {
    match why {
        Refused::Missing => "a bot acts and connects with its API token: Authorization: Bearer sbt_…",
        Refused::Malformed => "this is no API token: one is `sbt_` and 43 letters, digits, `-` or `_`",
        Refused::Unknown => "no such API token",
        Refused::Revoked => "this API token was revoked",
        Refused::Expired => "this API token has expired",
        Refused::MissingScope => "this API token lacks the scope this needs",
        Refused::NoBot => "this API token names no bot",
        Refused::InQuery => {
            "an API token goes in the Authorization header (Bearer), never in the URL; \
             one that was in a URL may be in logs now and should be revoked"
        }
        Refused::RateLimited => "over this API token's rate",
    }
}

/// How a refused token is named in the log, never by its secret: its id when it is one
/// of this desk's, else `sha256:` and the start of the hash it would be stored under
/// (enough to tell repeated tries of one bad token apart from many, nothing to use).
pub fn log_name(secret: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => id.to_string(),
        None => format!("sha256:{}", hash(secret).get(..8).unwrap_or_default()),
    }
}

struct Cached {
    token: ApiToken,
    fetched: Instant,
}

#[derive(Default)]
struct Inner {
    cache: HashMap<String, Cached>,
    /// Token id → when this node last wrote its last use.
    last_written: HashMap<String, i64>,
}

/// The tokens of this node: look-up, cache, rate limits, last use. Cheap to clone.
#[derive(Clone)]
pub struct ApiTokens {
    store: SharedStore,
    inner: Arc<Mutex<Inner>>,
    /// Bumped by every revocation: a look-up begun before one does not fill the cache.
    generation: Arc<AtomicU64>,
    rate: Arc<rate::TokenRate>,
    /// [`CACHE_TTL`]; longer in a test that shows a revocation heard needs no wait.
    ttl: Duration,
    /// Each reason's log budget ([`ApiTokens::log_refusal`]).
    refusals: Arc<Mutex<HashMap<Refused, LogBudget>>>,
}

impl ApiTokens {
    /// The tokens of `store`; their rates counted over the nodes of `cluster`, if any.
    pub fn new(store: SharedStore, cluster: Option<Cluster>) -> Self {
        Self {
            store,
            inner: Arc::default(),
            generation: Arc::default(),
            rate: Arc::new(rate::TokenRate::new(cluster)),
            ttl: CACHE_TTL,
            refusals: Arc::default(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The live token `secret` is, counted against its rate.
    pub async fn verify(&self, secret: &str) -> Result<ApiToken, Refusal> {
        if !rules::well_formed(secret) {
            return Err(Refusal::Invalid(Refused::Malformed, None));
        }
        let key = hash(secret);
        let token = match self.cached(&key) {
            Some(token) => token,
            None => self.look_up(key).await?,
        };
        let now = now_ms();
        match rules::spent(token.revoked_at, token.expires_at, now) {
            Some(Spent::Revoked) => return Err(Refusal::Invalid(Refused::Revoked, Some(token.id))),
            Some(Spent::Expired) => return Err(Refusal::Invalid(Refused::Expired, Some(token.id))),
            None => {}
        }
        if let Err(wait) = self.rate.admit(&token.id).await {
            return Err(Refusal::TooFast(wait, token.id));
        }
        self.used(&token.id, now);
        Ok(token)
    }

    fn cached(&self, key: &str) -> Option<ApiToken> {
        self.with(|inner| {
            inner
                .cache
                .get(key)
                .filter(|c| c.fetched.elapsed() < self.ttl)
                .map(|c| c.token.clone())
        })
    }

    async fn look_up(&self, key: String) -> Result<ApiToken, Refusal> {
        let generation = self.generation.load(Ordering::SeqCst);
        let token = match self.store.api_token_by_hash(&key).await {
            Ok(token) => token,
            Err(StoreError::NotFound) => return Err(Refusal::Invalid(Refused::Unknown, None)),
            Err(e) => return Err(Refusal::Store(e)),
        };
        self.with(|inner| {
            // Under the lock, as `forget` bumps it: a revocation heard meanwhile wins.
            if self.generation.load(Ordering::SeqCst) != generation {
                return;
            }
            if inner.cache.len() >= CACHE_CAPACITY {
                inner.cache.retain(|_, c| c.fetched.elapsed() < self.ttl);
                if inner.cache.len() >= CACHE_CAPACITY {
                    inner.cache.clear();
                }
            }
            inner.cache.insert(
                key,
                Cached {
                    token: token.clone(),
                    fetched: Instant::now(),
                },
            );
        });
        Ok(token)
    }

    /// Writes the last use in the background when this node has not for a minute.
    fn used(&self, id: &str, now: i64) {
        let due = self.with(|inner| {
            let due = rules::last_use_due(inner.last_written.get(id).copied(), now);
            if due {
                inner.last_written.insert(id.to_string(), now);
            }
            due
        });
        if !due {
            return;
        }
        let store = self.store.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_token(&id, now).await {
                tracing::warn!(token = %id, error = %e, "an API token's last use could not be written");
            }
        });
    }

    /// Logs a refused token (a warning: a client is misconfigured, or someone is trying
    /// tokens): why, the token by [`log_name`] (`None` when the request carried none, or
    /// it was in the query, which is never read for the log), the route (a path, never a
    /// query) and the client's address. At most `core::api_tokens::LOG_LINES_PER_WINDOW`
    /// lines a minute per reason; the next line counts those left out.
    pub fn log_refusal(&self, why: Refused, token: Option<&str>, route: &str, client: &dyn std::fmt::Display) {
        let admitted = {
            let mut budgets = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
            budgets.entry(why).or_default().admit(now_ms())
        };
        let Some(unlogged) = admitted else { return };
        tracing::warn!(
            reason = why.name(),
            token = token.unwrap_or("-"),
            route,
            client = %client,
            unlogged_before = unlogged,
            "API token refused: {}",
            message(why)
        );
    }

    /// A token revoked (here, or on another node as the admin bus says): refused from now on.
    pub fn forget(&self, id: &str) {
        self.with(|inner| {
            self.generation.fetch_add(1, Ordering::SeqCst);
            inner.cache.retain(|_, c| c.token.id != id);
            inner.last_written.remove(id);
        });
    }

    /// After a gap on the admin bus: whatever was revoked meanwhile is asked of the store again.
    pub fn forget_all(&self) {
        self.with(|inner| {
            self.generation.fetch_add(1, Ordering::SeqCst);
            inner.cache.clear();
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{ApiTokens, Refusal, hash, new_secret};
    use crate::core::api_tokens::Refused;
    use crate::store::MemoryStore;
    use crate::store::{ApiToken, SharedStore};

    /// A revocation heard (here, or over the bus: both call `forget`) is refused at the
    /// next request, however long the cached look-up would still be trusted: the bound on
    /// the cache is for messages missed, never a wait for ones heard.
    #[tokio::test]
    async fn a_revocation_heard_is_refused_at_once_however_long_the_cache_would_trust_it() {
        let store: SharedStore = Arc::new(MemoryStore::new());
        let secret = new_secret();
        store
            .add_api_token(ApiToken {
                id: "t1".into(),
                name: "crm".into(),
                scopes: vec!["read".into()],
                bot: None,
                hash: hash(&secret),
                hint: secret[..8].to_string(),
                created_at: 0,
                created_by: "admin".into(),
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
            })
            .await
            .unwrap();
        let tokens = ApiTokens {
            ttl: Duration::from_secs(3_600),
            ..ApiTokens::new(store.clone(), None)
        };
        assert!(tokens.verify(&secret).await.is_ok());
        store.revoke_api_token("t1", 1).await.unwrap();
        // Not heard: the cached look-up still stands (for an hour here; a second in a hub).
        assert!(tokens.verify(&secret).await.is_ok());
        tokens.forget("t1");
        match tokens.verify(&secret).await {
            Err(Refusal::Invalid(why, _)) => assert_eq!(why, Refused::Revoked),
            other => panic!("a revoked token heard of: {:?}", other.map(|t| t.id)),
        }
    }
}
