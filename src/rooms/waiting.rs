//! The waiting room of appointments: who opened their appointment's link and waits for
//! the representative to start the call. The customer's page asks to join every few
//! seconds while it waits; each ask marks them waiting for [`WAITING_TTL_MS`], so a
//! customer who closed the page drops off the list by themselves. With several nodes the
//! marks live in Redis (`{sb}:waiting:<appointment>`, expiring), so the representative's
//! node sees a customer waiting on another; on one node, in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::cluster::node::Cluster;

/// How long one ask keeps a customer on the waiting list: a few of the page's retries.
pub const WAITING_TTL_MS: i64 = 30_000;

/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Waiting {
    /// Appointment id → (waiting since, last seen), ms. Used without a cluster.
    local: Arc<Mutex<HashMap<String, (i64, i64)>>>,
}

fn key(appointment: &str) -> String {
    format!("{{sb}}:waiting:{appointment}")
}

impl Waiting {
    /// The customer of `appointment` asked to join at `now` and was told to wait.
    pub async fn mark(&self, cluster: Option<&Cluster>, appointment: &str, now: i64) {
        if let Some(c) = cluster {
            // The first ask's time stays (NX); every ask extends the mark's life.
            let mut conn = c.conn();
            let k = key(appointment);
            let result: redis::RedisResult<()> = redis::pipe()
                .cmd("SET")
                .arg(&k)
                .arg(now)
                .arg("NX")
                .ignore()
                .cmd("PEXPIRE")
                .arg(&k)
                .arg(WAITING_TTL_MS)
                .ignore()
                .query_async(&mut conn)
                .await;
            if let Err(e) = result {
                tracing::warn!(appointment, error = %e, "could not mark a customer waiting in Redis");
            }
            return;
        }
        let mut local = self.local.lock().expect("not poisoned");
        local.retain(|_, (_, seen)| now - *seen <= WAITING_TTL_MS);
        let since = local.get(appointment).map_or(now, |(since, _)| *since);
        local.insert(appointment.to_string(), (since, now));
    }

    /// The customer was let in (or the call is over): off the list.
    pub async fn clear(&self, cluster: Option<&Cluster>, appointment: &str) {
        if let Some(c) = cluster {
            let mut conn = c.conn();
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(key(appointment)).query_async(&mut conn).await;
            return;
        }
        self.local.lock().expect("not poisoned").remove(appointment);
    }

    /// Since when each of `appointments` has its customer waiting (`None`: not waiting).
    pub async fn since(&self, cluster: Option<&Cluster>, appointments: &[String], now: i64) -> Vec<Option<i64>> {
        if appointments.is_empty() {
            return Vec::new();
        }
        if let Some(c) = cluster {
            let mut conn = c.conn();
            let keys: Vec<String> = appointments.iter().map(|a| key(a)).collect();
            return match redis::cmd("MGET")
                .arg(keys)
                .query_async::<Vec<Option<i64>>>(&mut conn)
                .await
            {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the waiting customers from Redis");
                    vec![None; appointments.len()]
                }
            };
        }
        let local = self.local.lock().expect("not poisoned");
        appointments
            .iter()
            .map(|a| {
                local
                    .get(a)
                    .filter(|(_, seen)| now - *seen <= WAITING_TTL_MS)
                    .map(|(since, _)| *since)
            })
            .collect()
    }
}
