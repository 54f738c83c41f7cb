//! Webhooks in MongoDB: collections `webhooks` (`_id` the endpoint's id) and
//! `webhook_deliveries` (`_id` the delivery's id), indexed for the deliverer (pending by
//! `seq`) and for each endpoint's log (newest first).

use async_trait::async_trait;

use bson::doc;
use mongodb::Collection;

use super::{MongoStore, all, index, insert_new, matched, one, replace_existing, unavailable};
use crate::store::{StoreResult, WebhookDelivery, WebhookEndpoint, WebhookStore};

impl MongoStore {
    fn webhooks(&self) -> Collection<WebhookEndpoint> {
        self.db.collection("webhooks")
    }

    fn webhook_deliveries(&self) -> Collection<WebhookDelivery> {
        self.db.collection("webhook_deliveries")
    }

    pub(super) async fn create_webhook_indexes(&self) -> StoreResult<()> {
        self.webhook_deliveries()
            .create_indexes([
                index(doc! {"status": 1, "seq": 1}, "status_seq"),
                index(doc! {"endpoint_id": 1, "seq": -1}, "endpoint_seq"),
            ])
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl WebhookStore for MongoStore {
    async fn add_webhook(&self, endpoint: WebhookEndpoint) -> StoreResult<()> {
        insert_new(&self.webhooks(), &endpoint).await
    }

    async fn webhooks(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        all(self.webhooks().find(doc! {}).sort(doc! {"created_at": 1, "_id": 1})).await
    }

    async fn webhook(&self, id: &str) -> StoreResult<WebhookEndpoint> {
        one(self.webhooks().find_one(doc! {"_id": id})).await
    }

    async fn put_webhook(&self, endpoint: WebhookEndpoint) -> StoreResult<()> {
        replace_existing(&self.webhooks(), &endpoint.id, &endpoint).await
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        let done = self
            .webhooks()
            .delete_one(doc! {"_id": id})
            .await
            .map_err(unavailable)?;
        matched(done.deleted_count)?;
        self.webhook_deliveries()
            .delete_many(doc! {"endpoint_id": id})
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn add_delivery(&self, delivery: WebhookDelivery) -> StoreResult<()> {
        insert_new(&self.webhook_deliveries(), &delivery).await
    }

    async fn put_delivery(&self, delivery: WebhookDelivery) -> StoreResult<()> {
        replace_existing(&self.webhook_deliveries(), &delivery.id, &delivery).await
    }

    async fn pending_deliveries(&self, of: &[String], limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        all(self
            .webhook_deliveries()
            .find(doc! {"status": "pending", "endpoint_id": {"$in": of}})
            .sort(doc! {"seq": 1})
            .limit(limit))
        .await
    }

    async fn deliveries_of(&self, endpoint_id: &str, limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        all(self
            .webhook_deliveries()
            .find(doc! {"endpoint_id": endpoint_id})
            .sort(doc! {"seq": -1})
            .limit(limit))
        .await
    }

    async fn last_delivery_seq(&self) -> StoreResult<u64> {
        let last = self
            .webhook_deliveries()
            .find_one(doc! {})
            .sort(doc! {"seq": -1})
            .await
            .map_err(unavailable)?;
        Ok(last.map_or(0, |d| d.seq))
    }
}
