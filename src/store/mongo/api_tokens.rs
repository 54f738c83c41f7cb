//! API tokens in MongoDB: collection `api_tokens` (`_id` the token's id), with a unique
//! index on the secret's hash, which every request carrying a token is looked up by.

use async_trait::async_trait;

use bson::doc;

use super::{MongoStore, Named, all_oldest_first, ensure_indexes, insert_new, matched, one, unavailable, unique_index};
use crate::store::{ApiToken, ApiTokenStore, Millis, StoreResult};

const API_TOKENS: Named<ApiToken> = Named::new("api_tokens");

impl MongoStore {
    pub(super) async fn create_api_token_indexes(&self) -> StoreResult<()> {
        ensure_indexes(
            &self.collection(API_TOKENS),
            [unique_index(doc! {"hash": 1}, "hash_unique")],
        )
        .await
    }
}

#[async_trait]
impl ApiTokenStore for MongoStore {
    async fn add_api_token(&self, token: ApiToken) -> StoreResult<()> {
        insert_new(&self.collection(API_TOKENS), &token).await
    }

    async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        all_oldest_first(&self.collection(API_TOKENS)).await
    }

    async fn api_token_by_hash(&self, hash: &str) -> StoreResult<ApiToken> {
        one(self.collection(API_TOKENS).find_one(doc! {"hash": hash})).await
    }

    async fn revoke_api_token(&self, id: &str, at: Millis) -> StoreResult<ApiToken> {
        // Only a first revocation sets the time; a second finds it set and changes nothing.
        self.collection(API_TOKENS)
            .update_one(doc! {"_id": id, "revoked_at": null}, doc! {"$set": {"revoked_at": at}})
            .await
            .map_err(unavailable)?;
        one(self.collection(API_TOKENS).find_one(doc! {"_id": id})).await
    }

    async fn touch_api_token(&self, id: &str, at: Millis) -> StoreResult<()> {
        let done = self
            .collection(API_TOKENS)
            .update_one(doc! {"_id": id}, doc! {"$max": {"last_used_at": at}})
            .await
            .map_err(unavailable)?;
        matched(done.matched_count)
    }
}
