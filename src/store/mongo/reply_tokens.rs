//! Reply tokens in MongoDB: collection `reply_tokens`, `_id` the token, with an index on
//! the conversation so its least token is found without a scan. Remembering is an upsert
//! that only ever inserts (`$setOnInsert`), so a token is never rebound and two nodes
//! remembering one at once both succeed.

use async_trait::async_trait;

use bson::doc;
use serde::{Deserialize, Serialize};

use super::{MongoStore, Named, by_id, ensure_indexes, index, unavailable};
use crate::store::{ReplyTokenStore, StoreResult};

#[derive(Serialize, Deserialize)]
struct TokenDoc {
    #[serde(rename = "_id")]
    token: String,
    conversation_id: String,
}

const REPLY_TOKENS: Named<TokenDoc> = Named::new("reply_tokens");

impl MongoStore {
    pub(super) async fn create_reply_token_indexes(&self) -> StoreResult<()> {
        let by_conversation = index(doc! {"conversation_id": 1, "_id": 1}, "conversation_token");
        ensure_indexes(&self.collection(REPLY_TOKENS), [by_conversation]).await
    }
}

#[async_trait]
impl ReplyTokenStore for MongoStore {
    async fn remember(&self, token: &str, conversation_id: &str) -> StoreResult<()> {
        self.collection(REPLY_TOKENS)
            .update_one(
                doc! {"_id": token},
                doc! {"$setOnInsert": {"conversation_id": conversation_id}},
            )
            .upsert(true)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn conversation_of(&self, token: &str) -> StoreResult<Option<String>> {
        Ok(by_id(&self.collection(REPLY_TOKENS), token)
            .await?
            .map(|d| d.conversation_id))
    }

    async fn token_of(&self, conversation_id: &str) -> StoreResult<Option<String>> {
        let found = self
            .collection(REPLY_TOKENS)
            .find_one(doc! {"conversation_id": conversation_id})
            .sort(doc! {"_id": 1})
            .await
            .map_err(unavailable)?;
        Ok(found.map(|d| d.token))
    }
}
