//! Reply tokens in MongoDB: collection `reply_tokens`, `_id` the token, with an index on
//! the conversation so its least token is found without a scan. Remembering is an upsert
//! that only ever inserts (`$setOnInsert`), so a token is never rebound and two nodes
//! remembering one at once both succeed.

use async_trait::async_trait;

use bson::doc;
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use super::{MongoStore, index, unavailable};
use crate::store::{ReplyTokenStore, StoreResult};

#[derive(Serialize, Deserialize)]
struct TokenDoc {
    #[serde(rename = "_id")]
    token: String,
    conversation_id: String,
}

impl MongoStore {
    fn reply_tokens(&self) -> Collection<TokenDoc> {
        self.db.collection("reply_tokens")
    }

    pub(super) async fn create_reply_token_indexes(&self) -> StoreResult<()> {
        let by_conversation = index(doc! {"conversation_id": 1, "_id": 1}, "conversation_token");
        self.reply_tokens()
            .create_index(by_conversation)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl ReplyTokenStore for MongoStore {
    async fn remember(&self, token: &str, conversation_id: &str) -> StoreResult<()> {
        self.reply_tokens()
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
        let found = self
            .reply_tokens()
            .find_one(doc! {"_id": token})
            .await
            .map_err(unavailable)?;
        Ok(found.map(|d| d.conversation_id))
    }

    async fn token_of(&self, conversation_id: &str) -> StoreResult<Option<String>> {
        let found = self
            .reply_tokens()
            .find_one(doc! {"conversation_id": conversation_id})
            .sort(doc! {"_id": 1})
            .await
            .map_err(unavailable)?;
        Ok(found.map(|d| d.token))
    }
}
