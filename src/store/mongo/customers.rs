//! Customers in MongoDB: each conversation document carries `customer_keys` (its
//! customer's email, lower-cased, and visitor key), multikey-indexed with the paired
//! time, so a customer's earlier conversations are one indexed query; an email given
//! during or after the chat is set on the document with its key. A transcript reads a
//! conversation without its notes (the `notes` collection is not queried).

use async_trait::async_trait;

use bson::doc;

use super::archive::CUSTOMER_KEYS;
use super::{MongoStore, one, unavailable};
use crate::store::{Conversation, CustomerKey, CustomerProfile, CustomerStore, CustomerTranscript, Page, StoreResult};

#[async_trait]
impl CustomerStore for MongoStore {
    async fn customer_conversations(&self, key: &CustomerKey, limit: u64) -> StoreResult<Vec<Conversation>> {
        let (found, _) = self
            .list(doc! {CUSTOMER_KEYS: key.indexed()}, Page { offset: 0, limit })
            .await?;
        Ok(found)
    }

    async fn set_customer_email(&self, id: &str, email: &str) -> StoreResult<()> {
        let raw = self.conversations.clone_with_type::<bson::Document>();
        let found = one(raw.find_one(doc! {"_id": id}).projection(doc! {"customer": 1})).await?;
        let mut customer: CustomerProfile = found
            .get_document("customer")
            .ok()
            .and_then(|c| bson::from_document(c.clone()).ok())
            .unwrap_or_default();
        customer.email = Some(email.to_string());
        let keys = customer.indexed_keys();
        self.conversations
            .update_one(
                doc! {"_id": id},
                doc! {"$set": {"customer.email": email, CUSTOMER_KEYS: keys}},
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn customer_transcript(&self, id: &str) -> StoreResult<CustomerTranscript> {
        let found = one(self.conversations.find_one(doc! {"_id": id})).await?;
        // `whole` joins the messages and the rating; the notes are only ever read by
        // `notes_of`, which this does not call.
        let c = self.whole(vec![found]).await?.remove(0);
        Ok(CustomerTranscript {
            opened: c.opened,
            closed: c.closed,
            messages: c.messages,
            rating: c.rating,
        })
    }
}
