//! Inbound mail keys in MongoDB: collection `inbound_mail`, `_id` the key, so the server
//! refuses a second record (duplicate key) atomically, even between nodes.

use async_trait::async_trait;

use bson::doc;
use serde::{Deserialize, Serialize};

use super::{MongoStore, Named, by_id};
use crate::store::{InboundMailStore, Millis, StoreError, StoreResult};

#[derive(Serialize, Deserialize)]
struct InboundDoc {
    #[serde(rename = "_id")]
    key: String,
    at: Millis,
}

const INBOUND_MAIL: Named<InboundDoc> = Named::new("inbound_mail");

#[async_trait]
impl InboundMailStore for MongoStore {
    async fn inbound_seen(&self, key: &str) -> StoreResult<bool> {
        Ok(by_id(&self.collection(INBOUND_MAIL), key).await?.is_some())
    }

    async fn first_seen(&self, key: &str, at: Millis) -> StoreResult<bool> {
        let doc = InboundDoc {
            key: key.to_string(),
            at,
        };
        match self
            .collection(INBOUND_MAIL)
            .insert_one(doc)
            .await
            .map_err(super::conflict_or_unavailable)
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
