//! A token's rate as this node applies it (`core::token_rate`'s rule): counted in Redis
//! over all nodes when the hub runs as a cluster (`cluster::token_rate`), so N nodes
//! behind a balancer do not give a token N times its rate; counted by this node alone
//! without Redis, and whenever Redis does not answer. Redis is asked on the rates' own
//! connection, never the routing's (`cluster::token_rate::connection`). Redis away never refuses a request:
//! the node's own count takes over at once (a token may then get up to its rate on each
//! node), it is logged once, and Redis is asked again at most every [`RETRY_REDIS`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cluster::node::Cluster;
use crate::core::token_rate::{self as rule, Admission};

/// How long a request waits for Redis's count before this node counts it alone: long
/// enough that a loaded Redis or node is not taken for an outage (which would give a token
/// its rate on each node); while Redis is away only one request a [`RETRY_REDIS`] waits it.
pub const REDIS_WAIT: Duration = Duration::from_secs(1);
/// After Redis did not answer, requests are counted here alone for this long before
/// Redis is asked again: an outage costs each request nothing, not a wait each.
pub const RETRY_REDIS: Duration = Duration::from_secs(1);
/// Due times kept here before the lapsed ones are dropped.
const TABLE_CAPACITY: usize = 1_024;

/// The rate of every token on this node.
pub struct TokenRate {
    /// The rates' own connection to Redis, when the hub runs as a cluster.
    redis: Option<redis::aio::ConnectionManager>,
    /// Token id → when its next request is due, on [`TokenRate::started`]'s clock (ms).
    here: Mutex<HashMap<String, i64>>,
    started: Instant,
    /// When Redis last failed to count, while it has not answered since.
    redis_failed: Mutex<Option<Instant>>,
}

impl TokenRate {
    pub fn new(cluster: Option<Cluster>) -> Self {
        let redis = cluster.and_then(|c| match crate::cluster::token_rate::connection(&c, REDIS_WAIT) {
            Ok(conn) => Some(conn),
            Err(e) => {
                // Only a configuration this code never makes fails here; said should it ever.
                tracing::error!(error = %e, "API token rates: no connection to Redis; each node counts its own requests");
                None
            }
        });
        Self {
            redis,
            here: Mutex::default(),
            started: Instant::now(),
            redis_failed: Mutex::default(),
        }
    }

    /// Counts a request of token `id`: `Err` with how long to wait when it is over its rate.
    pub async fn admit(&self, id: &str) -> Result<(), Duration> {
        if let Some(redis) = &self.redis
            && self.redis_worth_asking()
        {
            let asked =
                tokio::time::timeout(REDIS_WAIT, crate::cluster::token_rate::admit(&mut redis.clone(), id)).await;
            match asked {
                Ok(Ok(wait_ms)) => {
                    self.redis_answered();
                    return wait_ms.map_or(Ok(()), |ms| Err(wait(ms)));
                }
                Ok(Err(e)) => self.redis_failed(&e.to_string()),
                Err(_) => self.redis_failed("no answer in time"),
            }
        }
        self.admit_here(id)
    }

    fn admit_here(&self, id: &str) -> Result<(), Duration> {
        let now = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let mut here = self.here.lock().unwrap_or_else(|e| e.into_inner());
        match rule::admit(here.get(id).copied(), now) {
            Admission::Admitted { next_due } => {
                if here.len() >= TABLE_CAPACITY && !here.contains_key(id) {
                    // A token whose due time has passed is as one never seen.
                    here.retain(|_, due| *due > now);
                }
                here.insert(id.to_string(), next_due);
                Ok(())
            }
            Admission::Refused { wait_ms } => Err(wait(wait_ms)),
        }
    }

    /// Redis is asked while it answers; once it did not, by one request a [`RETRY_REDIS`]
    /// (this call claims the try: the others meanwhile count here, not wait as well).
    fn redis_worth_asking(&self) -> bool {
        let mut failed = self.failed_at();
        match *failed {
            None => true,
            Some(at) if at.elapsed() >= RETRY_REDIS => {
                *failed = Some(Instant::now());
                true
            }
            Some(_) => false,
        }
    }

    /// When Redis last failed (a plain time: a panic while holding it leaves it usable).
    fn failed_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.redis_failed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn redis_failed(&self, why: &str) {
        let first = self.failed_at().replace(Instant::now()).is_none();
        if first {
            tracing::warn!(
                error = why,
                "API token rates: Redis does not answer; each node counts its own requests until it does"
            );
        }
    }

    fn redis_answered(&self) {
        let was_failing = self.failed_at().take().is_some();
        if was_failing {
            tracing::info!("API token rates: counted in Redis over all nodes again");
        }
    }
}

fn wait(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms.max(1)).unwrap_or(1))
}
