//! Webhooks in MongoDB: collections `webhooks` (`_id` the endpoint's id) and
//! `webhook_deliveries` (`_id` the delivery's id), indexed for the deliverer (pending by
//! `seq`), for each endpoint's log (newest first) and for the retention sweep (settled by
//! age); `webhook_delivery_seq` holds one counter, the last `seq` handed out;
//! `webhook_settings` one document, the admins' choice on private addresses.
//!
//! A claim and the recording of an attempt are each one conditional update of one
//! document (the server applies it atomically: of two nodes claiming at once one gets
//! it), as the mail outbox's are (`mongo/outbox.rs`). The counter is one `$inc`, so every
//! node's deliveries share one sequence; it is raised to the highest `seq` stored when a
//! node connects (a database written before the counter existed).

use async_trait::async_trait;

use bson::{Document, doc};

use super::{
    MongoStore, Named, all, all_oldest_first, by_id, delete_by_id, ensure_indexes, index, insert_new, is_duplicate_key,
    matched, one, replace_existing, unavailable, updated_after,
};
use crate::store::{
    DeliveryClaim, Millis, PrivateAddressesChoice, StoreError, StoreResult, WebhookDelivery, WebhookEndpoint,
    WebhookStore,
};

/// The `_id` of the one counter document.
const SEQ_ID: &str = "last";
/// The `_id` of the admins' choice on private addresses.
const PRIVATE_ADDRESSES_ID: &str = "private_addresses";

/// The admins' choice on private addresses as stored, under its fixed `_id`.
#[derive(serde::Serialize, serde::Deserialize)]
struct PrivateAddressesDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(flatten)]
    choice: PrivateAddressesChoice,
}

const WEBHOOKS: Named<WebhookEndpoint> = Named::new("webhooks");
const WEBHOOK_DELIVERIES: Named<WebhookDelivery> = Named::new("webhook_deliveries");
const WEBHOOK_DELIVERY_SEQ: Named<Document> = Named::new("webhook_delivery_seq");
const WEBHOOK_SETTINGS: Named<PrivateAddressesDoc> = Named::new("webhook_settings");

impl MongoStore {
    pub(super) async fn create_webhook_indexes(&self) -> StoreResult<()> {
        ensure_indexes(
            &self.collection(WEBHOOK_DELIVERIES),
            [
                index(doc! {"status": 1, "seq": 1}, "status_seq"),
                index(doc! {"endpoint_id": 1, "seq": -1}, "endpoint_seq"),
                // The retention sweep: settled deliveries by age.
                index(doc! {"status": 1, "created_at": 1}, "status_created_at"),
            ],
        )
        .await?;
        // The counter never below a `seq` stored ($max only raises it, whoever runs first).
        let stored = self
            .collection(WEBHOOK_DELIVERIES)
            .find_one(doc! {})
            .sort(doc! {"seq": -1})
            .await
            .map_err(unavailable)?
            .map_or(0, |d| d.seq);
        let counter = self.collection(WEBHOOK_DELIVERY_SEQ);
        let raise = || {
            counter
                .update_one(
                    doc! {"_id": SEQ_ID},
                    doc! {"$max": {"value": i64::try_from(stored).unwrap_or(i64::MAX)}},
                )
                .upsert(true)
        };
        match raise().await {
            Ok(_) => Ok(()),
            // Two nodes creating the counter at once: the loser's retry finds it.
            Err(e) if is_duplicate_key(&e) => raise().await.map(|_| ()).map_err(unavailable),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl WebhookStore for MongoStore {
    async fn add_webhook(&self, endpoint: WebhookEndpoint) -> StoreResult<()> {
        insert_new(&self.collection(WEBHOOKS), &endpoint).await
    }

    async fn webhooks(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        all_oldest_first(&self.collection(WEBHOOKS)).await
    }

    async fn webhook(&self, id: &str) -> StoreResult<WebhookEndpoint> {
        one(self.collection(WEBHOOKS).find_one(doc! {"_id": id})).await
    }

    async fn put_webhook(&self, endpoint: WebhookEndpoint) -> StoreResult<()> {
        replace_existing(&self.collection(WEBHOOKS), &endpoint.id, &endpoint).await
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        matched(delete_by_id(&self.collection(WEBHOOKS), id).await?)?;
        self.collection(WEBHOOK_DELIVERIES)
            .delete_many(doc! {"endpoint_id": id})
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn webhook_private_addresses(&self) -> StoreResult<Option<PrivateAddressesChoice>> {
        Ok(by_id(&self.collection(WEBHOOK_SETTINGS), PRIVATE_ADDRESSES_ID)
            .await?
            .map(|d| d.choice))
    }

    async fn set_webhook_private_addresses(&self, choice: PrivateAddressesChoice) -> StoreResult<()> {
        let stored = PrivateAddressesDoc {
            id: PRIVATE_ADDRESSES_ID.into(),
            choice,
        };
        let settings = self.collection(WEBHOOK_SETTINGS);
        let write = || {
            settings
                .replace_one(doc! {"_id": PRIVATE_ADDRESSES_ID}, &stored)
                .upsert(true)
        };
        match write().await {
            Ok(_) => Ok(()),
            // Two admins' first choices at once: the loser's retry replaces the winner's.
            Err(e) if is_duplicate_key(&e) => write().await.map(|_| ()).map_err(unavailable),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn add_delivery(&self, delivery: WebhookDelivery) -> StoreResult<()> {
        insert_new(&self.collection(WEBHOOK_DELIVERIES), &delivery).await
    }

    async fn claim_delivery(&self, delivery: &WebhookDelivery, claim: DeliveryClaim) -> StoreResult<bool> {
        let DeliveryClaim { node, now, until } = claim;
        let done = self
            .collection(WEBHOOK_DELIVERIES)
            .update_one(
                doc! {
                    "_id": &delivery.id,
                    "status": "pending",
                    "due_at": {"$lte": now},
                    "$or": [{"claim_until": null}, {"claim_until": {"$lte": now}}],
                },
                doc! {"$set": {"claimed_by": node, "claim_until": until}},
            )
            .await
            .map_err(unavailable)?;
        Ok(done.matched_count > 0)
    }

    async fn finish_delivery(&self, delivery: WebhookDelivery, node: &str) -> StoreResult<bool> {
        let done = self
            .collection(WEBHOOK_DELIVERIES)
            .replace_one(
                doc! {"_id": &delivery.id, "status": "pending", "claimed_by": node},
                &delivery,
            )
            .await
            .map_err(unavailable)?;
        if done.matched_count > 0 {
            return Ok(true);
        }
        // Nothing matched: NotFound for a delivery that is not there at all, as the others say.
        match self
            .collection(WEBHOOK_DELIVERIES)
            .find_one(doc! {"_id": &delivery.id})
            .await
        {
            Ok(Some(_)) => Ok(false),
            Ok(None) => Err(StoreError::NotFound),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn pending_deliveries(&self, of: &[String], limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        all(self
            .collection(WEBHOOK_DELIVERIES)
            .find(doc! {"status": "pending", "endpoint_id": {"$in": of}})
            .sort(doc! {"seq": 1})
            .limit(limit))
        .await
    }

    async fn dying_deliveries(&self, limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        all(self
            .collection(WEBHOOK_DELIVERIES)
            .find(doc! {"status": "dying"})
            .sort(doc! {"seq": 1})
            .limit(limit))
        .await
    }

    async fn bury_delivery(&self, delivery: &WebhookDelivery) -> StoreResult<()> {
        self.collection(WEBHOOK_DELIVERIES)
            .update_one(
                doc! {"_id": &delivery.id, "status": "dying"},
                doc! {"$set": {"status": "dead"}},
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn deliveries_of(&self, endpoint_id: &str, limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        all(self
            .collection(WEBHOOK_DELIVERIES)
            .find(doc! {"endpoint_id": endpoint_id})
            .sort(doc! {"seq": -1})
            .limit(limit))
        .await
    }

    async fn next_delivery_seq(&self) -> StoreResult<u64> {
        let counter = self.collection(WEBHOOK_DELIVERY_SEQ);
        let bump = || {
            counter
                .find_one_and_update(doc! {"_id": SEQ_ID}, doc! {"$inc": {"value": 1_i64}})
                .with_options(updated_after())
                .upsert(true)
        };
        let counter = match bump().await {
            Ok(c) => c,
            Err(e) if is_duplicate_key(&e) => bump().await.map_err(unavailable)?,
            Err(e) => return Err(unavailable(e)),
        };
        let value = match counter.as_ref().and_then(|c| c.get("value")) {
            Some(bson::Bson::Int64(v)) => *v,
            Some(bson::Bson::Int32(v)) => i64::from(*v),
            other => return Err(unavailable(format!("the webhook delivery counter reads {other:?}"))),
        };
        u64::try_from(value).map_err(|_| unavailable(format!("the webhook delivery counter reads {value}")))
    }

    async fn prune_deliveries(&self, before: Millis) -> StoreResult<u64> {
        // One delete_many: a node pruning beside another deletes only what is still there.
        let done = self
            .collection(WEBHOOK_DELIVERIES)
            .delete_many(doc! {"status": {"$in": ["delivered", "dead"]}, "created_at": {"$lt": before}})
            .await
            .map_err(unavailable)?;
        Ok(done.deleted_count)
    }
}
