//! Customers in MongoDB: each conversation document carries `customer_keys` (its
//! customer's email, lower-cased, and visitor key), multikey-indexed with the paired
//! time, so a customer's earlier conversations are one indexed query; an email given
//! during or after the chat is set on the document with its key.

use bson::doc;

use super::archive::CUSTOMER_KEYS;
use super::{MongoStore, unavailable};
use crate::store::{Conversation, CustomerKey, CustomerProfile, Page, StoreError, StoreResult};

impl MongoStore {
    pub(super) async fn list_customer(&self, key: &CustomerKey, limit: u64) -> StoreResult<Vec<Conversation>> {
        let (found, _) = self
            .list(doc! {CUSTOMER_KEYS: key.indexed()}, Page { offset: 0, limit })
            .await?;
        Ok(found)
    }

    pub(super) async fn set_email(&self, id: &str, email: &str) -> StoreResult<()> {
        let found = self
            .conversations
            .clone_with_type::<bson::Document>()
            .find_one(doc! {"_id": id})
            .projection(doc! {"customer": 1})
            .await
            .map_err(unavailable)?
            .ok_or(StoreError::NotFound)?;
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
}
