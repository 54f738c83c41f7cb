//! Webhooks in the embedded store: endpoints by id; deliveries by an id that sorts by
//! `seq` (`<seq, 20 digits>-<endpoint>`), with the pending ones and each endpoint's listed
//! in their own tables so neither the deliverer nor the log scans every delivery. redb
//! runs one write transaction at a time, so a claim (read the row, rewrite it claimed)
//! and the next `seq` (read the counter, write it raised) are atomic. The admins' choice on
//! private addresses is one row of its own table.

use async_trait::async_trait;

use super::{
    EmbeddedStore, ReadableTable, TableDefinition, create, decode, find, keys_under, load, put, put_new, refuse_held,
    replace, row, rows, unavailable, write_row,
};
use crate::store::{
    DeliveryClaim, DeliveryStatus, Millis, PrivateAddressesChoice, StoreError, StoreResult, WebhookDelivery,
    WebhookEndpoint, WebhookStore, oldest_first,
};

/// Endpoint id → JSON [`WebhookEndpoint`].
const WEBHOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhooks");
/// Delivery key → JSON [`WebhookDelivery`].
const DELIVERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_deliveries");
/// Delivery key → (): the pending ones, in order.
const PENDING: TableDefinition<&str, ()> = TableDefinition::new("webhook_deliveries_pending");
/// Delivery key → (): the dying ones (given up, their endpoint's disabling not recorded yet).
const DYING: TableDefinition<&str, ()> = TableDefinition::new("webhook_deliveries_dying");
/// (endpoint id, delivery key) → (): an endpoint's deliveries, in order.
const BY_ENDPOINT: TableDefinition<(&str, &str), ()> = TableDefinition::new("webhook_deliveries_by_endpoint");
/// Delivery id → its key: ids are unique (the same event written by two nodes is one).
const IDS: TableDefinition<&str, &str> = TableDefinition::new("webhook_delivery_ids");
/// [`LAST_SEQ`] → the last `seq` handed out.
const SEQ: TableDefinition<&str, u64> = TableDefinition::new("webhook_delivery_seq");
const LAST_SEQ: &str = "last";
/// [`PRIVATE_ADDRESSES`] → JSON [`PrivateAddressesChoice`].
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_settings");
const PRIVATE_ADDRESSES: &str = "private_addresses";

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(
        tx,
        &[
            &WEBHOOKS,
            &DELIVERIES,
            &PENDING,
            &DYING,
            &BY_ENDPOINT,
            &SEQ,
            &IDS,
            &SETTINGS,
        ],
    )
}

/// The row key of a delivery: sorts as its `seq`, unique as its id.
fn key(d: &WebhookDelivery) -> String {
    format!("{:020}-{}", d.seq, d.id)
}

/// Lists the delivery at `k` among the pending or the dying ones as `status` says, and
/// nowhere once it is delivered or dead.
fn listed(tx: &redb::WriteTransaction, k: &str, status: DeliveryStatus) -> StoreResult<()> {
    for (table, holds) in [
        (PENDING, status == DeliveryStatus::Pending),
        (DYING, status == DeliveryStatus::Dying),
    ] {
        let mut table = tx.open_table(table).map_err(unavailable)?;
        if holds {
            table.insert(k, ()).map_err(unavailable)?;
        } else {
            table.remove(k).map_err(unavailable)?;
        }
    }
    Ok(())
}

#[async_trait]
impl WebhookStore for EmbeddedStore {
    async fn add_webhook(&self, endpoint: WebhookEndpoint) -> StoreResult<()> {
        self.write_apart(write_row(WEBHOOKS, endpoint.id.clone(), endpoint, put_new))
            .await
    }

    async fn webhooks(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        Ok(oldest_first(self.read_apart(rows(WEBHOOKS)).await?))
    }

    async fn webhook(&self, id: &str) -> StoreResult<WebhookEndpoint> {
        self.read_apart(row(WEBHOOKS, id)).await
    }

    async fn put_webhook(&self, endpoint: WebhookEndpoint) -> StoreResult<()> {
        self.write_apart(write_row(WEBHOOKS, endpoint.id.clone(), endpoint, replace))
            .await
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.write_apart(move |tx| {
            if tx
                .open_table(WEBHOOKS)
                .map_err(unavailable)?
                .remove(id.as_str())
                .map_err(unavailable)?
                .is_none()
            {
                return Err(StoreError::NotFound);
            }
            let mut by_endpoint = tx.open_table(BY_ENDPOINT).map_err(unavailable)?;
            let keys = keys_under(&by_endpoint, &id)?;
            let mut deliveries = tx.open_table(DELIVERIES).map_err(unavailable)?;
            let mut pending = tx.open_table(PENDING).map_err(unavailable)?;
            let mut dying = tx.open_table(DYING).map_err(unavailable)?;
            let mut ids = tx.open_table(IDS).map_err(unavailable)?;
            for k in &keys {
                if let Some(d) = find::<WebhookDelivery>(&deliveries, k.as_str())? {
                    ids.remove(d.id.as_str()).map_err(unavailable)?;
                }
                by_endpoint.remove((id.as_str(), k.as_str())).map_err(unavailable)?;
                deliveries.remove(k.as_str()).map_err(unavailable)?;
                pending.remove(k.as_str()).map_err(unavailable)?;
                dying.remove(k.as_str()).map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn webhook_private_addresses(&self) -> StoreResult<Option<PrivateAddressesChoice>> {
        self.read_apart(|tx| find(&tx.open_table(SETTINGS).map_err(unavailable)?, PRIVATE_ADDRESSES))
            .await
    }

    async fn set_webhook_private_addresses(&self, choice: PrivateAddressesChoice) -> StoreResult<()> {
        self.write_apart(move |tx| {
            put(
                &mut tx.open_table(SETTINGS).map_err(unavailable)?,
                PRIVATE_ADDRESSES,
                &choice,
            )
        })
        .await
    }

    async fn add_delivery(&self, delivery: WebhookDelivery) -> StoreResult<()> {
        self.write_apart(move |tx| {
            let k = key(&delivery);
            let mut ids = tx.open_table(IDS).map_err(unavailable)?;
            refuse_held(&ids, delivery.id.as_str())?;
            let mut deliveries = tx.open_table(DELIVERIES).map_err(unavailable)?;
            refuse_held(&deliveries, k.as_str())?;
            put(&mut deliveries, k.as_str(), &delivery)?;
            ids.insert(delivery.id.as_str(), k.as_str()).map_err(unavailable)?;
            listed(tx, k.as_str(), delivery.status)?;
            tx.open_table(BY_ENDPOINT)
                .map_err(unavailable)?
                .insert((delivery.endpoint_id.as_str(), k.as_str()), ())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn claim_delivery(&self, delivery: &WebhookDelivery, claim: DeliveryClaim) -> StoreResult<bool> {
        let k = key(delivery);
        self.write_apart(move |tx| {
            let mut deliveries = tx.open_table(DELIVERIES).map_err(unavailable)?;
            let Some(mut stored) = find::<WebhookDelivery>(&deliveries, k.as_str())? else {
                return Ok(false);
            };
            if !stored.claimable(claim.now) {
                return Ok(false);
            }
            stored.claimed_by = Some(claim.node);
            stored.claim_until = Some(claim.until);
            put(&mut deliveries, k.as_str(), &stored)?;
            Ok(true)
        })
        .await
    }

    async fn finish_delivery(&self, delivery: WebhookDelivery, node: &str) -> StoreResult<bool> {
        let node = node.to_string();
        self.write_apart(move |tx| {
            let k = key(&delivery);
            let mut deliveries = tx.open_table(DELIVERIES).map_err(unavailable)?;
            let stored: WebhookDelivery = load(&deliveries, k.as_str())?;
            if !stored.claimed_by(&node) {
                return Ok(false);
            }
            put(&mut deliveries, k.as_str(), &delivery)?;
            listed(tx, k.as_str(), delivery.status)?;
            Ok(true)
        })
        .await
    }

    async fn pending_deliveries(&self, of: &[String], limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        let of = of.to_vec();
        self.read_apart(move |tx| {
            let pending = tx.open_table(PENDING).map_err(unavailable)?;
            let deliveries = tx.open_table(DELIVERIES).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in pending.iter().map_err(unavailable)? {
                if out.len() == limit {
                    break;
                }
                let (k, _) = row.map_err(unavailable)?;
                // A delivery's key holds its endpoint's id (its id is `<event>-<endpoint>`,
                // or `<event>-<endpoint>-<seq>` sent again): another endpoint's backlog is
                // passed over without decoding it.
                if !of.iter().any(|endpoint| k.value().contains(endpoint.as_str())) {
                    continue;
                }
                let delivery: WebhookDelivery = load(&deliveries, k.value())?;
                if of.contains(&delivery.endpoint_id) {
                    out.push(delivery);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn dying_deliveries(&self, limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        self.read_apart(move |tx| {
            let dying = tx.open_table(DYING).map_err(unavailable)?;
            let deliveries = tx.open_table(DELIVERIES).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in dying.iter().map_err(unavailable)?.take(limit) {
                let (k, _) = row.map_err(unavailable)?;
                out.push(load(&deliveries, k.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn bury_delivery(&self, delivery: &WebhookDelivery) -> StoreResult<()> {
        let k = key(delivery);
        self.write_apart(move |tx| {
            let mut deliveries = tx.open_table(DELIVERIES).map_err(unavailable)?;
            let Some(mut stored) = find::<WebhookDelivery>(&deliveries, k.as_str())? else {
                return Ok(());
            };
            if stored.status != DeliveryStatus::Dying {
                return Ok(());
            }
            stored.status = DeliveryStatus::Dead;
            put(&mut deliveries, k.as_str(), &stored)?;
            listed(tx, k.as_str(), stored.status)
        })
        .await
    }

    async fn deliveries_of(&self, endpoint_id: &str, limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        let endpoint = endpoint_id.to_string();
        self.read_apart(move |tx| {
            let by_endpoint = tx.open_table(BY_ENDPOINT).map_err(unavailable)?;
            let deliveries = tx.open_table(DELIVERIES).map_err(unavailable)?;
            let mut out = Vec::new();
            for k in keys_under(&by_endpoint, &endpoint)?.iter().rev().take(limit) {
                out.push(load(&deliveries, k)?);
            }
            Ok(out)
        })
        .await
    }

    async fn next_delivery_seq(&self) -> StoreResult<u64> {
        self.write_apart(|tx| {
            let stored = match tx
                .open_table(DELIVERIES)
                .map_err(unavailable)?
                .last()
                .map_err(unavailable)?
            {
                Some((_, value)) => decode::<WebhookDelivery>(value.value())?.seq,
                None => 0,
            };
            let mut seq = tx.open_table(SEQ).map_err(unavailable)?;
            let last = seq.get(LAST_SEQ).map_err(unavailable)?.map_or(0, |v| v.value());
            let next = last.max(stored) + 1;
            seq.insert(LAST_SEQ, next).map_err(unavailable)?;
            Ok(next)
        })
        .await
    }

    async fn prune_deliveries(&self, before: Millis) -> StoreResult<u64> {
        self.prune_deliveries_in_batches(before, PRUNE_BATCH).await
    }
}

/// Settled deliveries deleted in one write transaction at most: a first sweep over a long
/// log does not hold redb's one writer (the archive's fold, every desk write) for long.
const PRUNE_BATCH: usize = 1_000;

impl EmbeddedStore {
    /// [`WebhookStore::prune_deliveries`], `batch` deliveries a write transaction. The
    /// log's keys run in `seq` order, so the oldest come first: each batch walks past only
    /// the pending and dying ones (kept, undecoded) and the rows it deletes.
    pub(super) async fn prune_deliveries_in_batches(&self, before: Millis, batch: usize) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let pruned = self
                .write_apart(move |tx| {
                    let doomed: Vec<WebhookDelivery> = {
                        let deliveries = tx.open_table(DELIVERIES).map_err(unavailable)?;
                        let pending = tx.open_table(PENDING).map_err(unavailable)?;
                        let dying = tx.open_table(DYING).map_err(unavailable)?;
                        let mut out = Vec::new();
                        for row in deliveries.iter().map_err(unavailable)? {
                            if out.len() == batch {
                                break;
                            }
                            let (k, value) = row.map_err(unavailable)?;
                            // Those still owed a send or a disabling are passed over undecoded.
                            if pending.get(k.value()).map_err(unavailable)?.is_some()
                                || dying.get(k.value()).map_err(unavailable)?.is_some()
                            {
                                continue;
                            }
                            let delivery: WebhookDelivery = decode(value.value())?;
                            if delivery.prunable(before) {
                                out.push(delivery);
                            }
                        }
                        out
                    };
                    let mut deliveries = tx.open_table(DELIVERIES).map_err(unavailable)?;
                    let mut by_endpoint = tx.open_table(BY_ENDPOINT).map_err(unavailable)?;
                    let mut ids = tx.open_table(IDS).map_err(unavailable)?;
                    for d in &doomed {
                        let k = key(d);
                        deliveries.remove(k.as_str()).map_err(unavailable)?;
                        by_endpoint
                            .remove((d.endpoint_id.as_str(), k.as_str()))
                            .map_err(unavailable)?;
                        ids.remove(d.id.as_str()).map_err(unavailable)?;
                    }
                    Ok(doomed.len())
                })
                .await?;
            total += pruned as u64;
            if pruned < batch {
                return Ok(total);
            }
        }
    }
}
