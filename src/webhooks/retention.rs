//! The delivery log's retention: a sweep, once an hour on every node, deletes the settled
//! deliveries (delivered, or given up and their endpoint disabled) created longer ago than
//! `WEBHOOK_DELIVERY_RETENTION_DAYS`, so the log does not grow for ever. Pending and dying
//! deliveries are never swept: they are still owed a send or a disabling.
//!
//! One node's sweep would do; every node runs one because the store's delete is
//! conditional and idempotent ([`crate::store::WebhookStore::prune_deliveries`]): two at
//! once delete each delivery once between them, and a node that dies is covered by the
//! others without any election.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::store::{Millis, SharedStore, StoreResult};

/// How often each node sweeps (and once at start-up).
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The creation time before which a settled delivery is swept at `now`.
pub fn swept_before(now: Millis, retention: Duration) -> Millis {
    now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
}

/// Deletes the settled deliveries older than `retention` at `now`; how many.
pub async fn sweep(store: &SharedStore, retention: Duration, now: Millis) -> StoreResult<u64> {
    store.prune_deliveries(swept_before(now, retention)).await
}

/// Sweeps every [`SWEEP_EVERY`] until `shutdown`; a store outage waits for the next one.
pub async fn run(store: SharedStore, retention: Duration, shutdown: CancellationToken) {
    let mut ticks = crate::ticks::Ticks::new(SWEEP_EVERY, &shutdown);
    while ticks.next().await {
        match sweep(&store, retention, now_ms()).await {
            Ok(0) => {}
            Ok(swept) => tracing::info!(swept, "old webhook deliveries swept from the log"),
            Err(e) => tracing::warn!(error = %e, "could not sweep old webhook deliveries; trying again later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{DeliveryStatus, MemoryStore, WebhookDelivery};

    const DAY: Millis = 24 * 3600 * 1000;

    #[test]
    fn the_cutoff_is_the_retention_before_now_and_never_overflows() {
        assert_eq!(swept_before(40 * DAY, Duration::from_secs(30 * 24 * 3600)), 10 * DAY);
        assert_eq!(swept_before(i64::MIN, Duration::from_secs(1)), i64::MIN);
        assert_eq!(swept_before(0, Duration::MAX), -i64::MAX);
    }

    /// Of deliveries 31 and 29 days old, delivered or pending, the sweep takes only the
    /// delivered one past the retention (every status: the store's contract test); a
    /// second sweep finds nothing more.
    #[tokio::test]
    async fn a_sweep_deletes_old_settled_deliveries_and_keeps_the_rest() {
        let store: SharedStore = Arc::new(MemoryStore::new());
        let now = 100 * DAY;
        let old_delivered = WebhookDelivery::for_test(1, DeliveryStatus::Delivered, now - 31 * DAY);
        let old_pending = WebhookDelivery::for_test(2, DeliveryStatus::Pending, now - 31 * DAY);
        let new_delivered = WebhookDelivery::for_test(3, DeliveryStatus::Delivered, now - 29 * DAY);
        for d in [old_delivered, old_pending, new_delivered] {
            store.add_delivery(d).await.unwrap();
        }
        let retention = Duration::from_secs(30 * 24 * 3600);
        assert_eq!(sweep(&store, retention, now).await.unwrap(), 1);
        assert_eq!(sweep(&store, retention, now).await.unwrap(), 0);
        let mut kept = WebhookDelivery::seqs_of_a(&*store).await;
        kept.sort_unstable();
        assert_eq!(kept, [2, 3], "the old delivered one (1) is gone");
    }
}
