//! Webhook endpoints and deliveries, in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn add_webhook(&self, endpoint: WebhookEndpoint) -> StoreResult<()> {
        self.with(|s| add_new(&mut s.webhooks, endpoint, |e, new| e.id == new.id))
    }

    async fn webhooks(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        Ok(oldest_first(self.with(|s| s.webhooks.clone())))
    }

    async fn webhook(&self, id: &str) -> StoreResult<WebhookEndpoint> {
        self.with(|s| s.webhooks.iter().find(|e| e.id == id).cloned())
            .ok_or(StoreError::NotFound)
    }

    async fn put_webhook(&self, endpoint: WebhookEndpoint) -> StoreResult<()> {
        #[cfg(test)]
        if self.webhook_puts_down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::Unavailable("webhook endpoints are down (test)".into()));
        }
        self.with(|s| match s.webhooks.iter_mut().find(|e| e.id == endpoint.id) {
            Some(stored) => {
                *stored = endpoint;
                Ok(())
            }
            None => Err(StoreError::NotFound),
        })
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        self.with(|s| {
            let before = s.webhooks.len();
            s.webhooks.retain(|e| e.id != id);
            if s.webhooks.len() == before {
                return Err(StoreError::NotFound);
            }
            s.deliveries.retain(|_, d| d.endpoint_id != id);
            Ok(())
        })
    }

    async fn webhook_private_addresses(&self) -> StoreResult<Option<PrivateAddressesChoice>> {
        Ok(self.with(|s| s.webhook_private_addresses.clone()))
    }

    async fn set_webhook_private_addresses(&self, choice: PrivateAddressesChoice) -> StoreResult<()> {
        self.with(|s| s.webhook_private_addresses = Some(choice));
        Ok(())
    }

    async fn add_delivery(&self, delivery: WebhookDelivery) -> StoreResult<()> {
        self.with(|s| {
            if s.deliveries.values().any(|d| d.id == delivery.id) {
                return Err(StoreError::Conflict);
            }
            s.deliveries.insert((delivery.seq, delivery.id.clone()), delivery);
            Ok(())
        })
    }

    async fn claim_delivery(&self, delivery: &WebhookDelivery, claim: DeliveryClaim) -> StoreResult<bool> {
        self.with(|s| match s.deliveries.get_mut(&(delivery.seq, delivery.id.clone())) {
            Some(d) if d.claimable(claim.now) => {
                d.claimed_by = Some(claim.node);
                d.claim_until = Some(claim.until);
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    async fn finish_delivery(&self, delivery: WebhookDelivery, node: &str) -> StoreResult<bool> {
        self.with(|s| match s.deliveries.get_mut(&(delivery.seq, delivery.id.clone())) {
            Some(stored) if stored.claimed_by(node) => {
                *stored = delivery;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(StoreError::NotFound),
        })
    }

    async fn pending_deliveries(&self, of: &[String], limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        Ok(self.with(|s| {
            s.deliveries
                .values()
                .filter(|d| d.status == DeliveryStatus::Pending && of.contains(&d.endpoint_id))
                .take(limit)
                .cloned()
                .collect()
        }))
    }

    async fn dying_deliveries(&self, limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        Ok(self.with(|s| {
            s.deliveries
                .values()
                .filter(|d| d.status == DeliveryStatus::Dying)
                .take(limit)
                .cloned()
                .collect()
        }))
    }

    async fn bury_delivery(&self, delivery: &WebhookDelivery) -> StoreResult<()> {
        self.with(|s| {
            if let Some(d) = s.deliveries.get_mut(&(delivery.seq, delivery.id.clone()))
                && d.status == DeliveryStatus::Dying
            {
                d.status = DeliveryStatus::Dead;
            }
        });
        Ok(())
    }

    async fn deliveries_of(&self, endpoint_id: &str, limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        Ok(self.with(|s| {
            s.deliveries
                .values()
                .rev()
                .filter(|d| d.endpoint_id == endpoint_id)
                .take(limit)
                .cloned()
                .collect()
        }))
    }

    async fn next_delivery_seq(&self) -> StoreResult<u64> {
        self.with(|s| {
            let stored = s.deliveries.keys().next_back().map_or(0, |(seq, _)| *seq);
            s.delivery_seq = s.delivery_seq.max(stored) + 1;
            Ok(s.delivery_seq)
        })
    }

    async fn prune_deliveries(&self, before: Millis) -> StoreResult<u64> {
        Ok(self.with(|s| {
            let stored = s.deliveries.len();
            s.deliveries.retain(|_, d| !d.prunable(before));
            (stored - s.deliveries.len()) as u64
        }))
    }
}
