//! API tokens, in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl ApiTokenStore for MemoryStore {
    async fn add_api_token(&self, token: ApiToken) -> StoreResult<()> {
        self.with(|s| add_new(&mut s.api_tokens, token, |t, new| t.id == new.id || t.hash == new.hash))
    }

    async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        Ok(oldest_first(self.with(|s| s.api_tokens.clone())))
    }

    async fn api_token_by_hash(&self, hash: &str) -> StoreResult<ApiToken> {
        self.with(|s| s.api_tokens.iter().find(|t| t.hash == hash).cloned())
            .ok_or(StoreError::NotFound)
    }

    async fn revoke_api_token(&self, id: &str, at: Millis) -> StoreResult<ApiToken> {
        self.with(|s| match s.api_tokens.iter_mut().find(|t| t.id == id) {
            Some(t) => {
                t.revoked_at.get_or_insert(at);
                Ok(t.clone())
            }
            None => Err(StoreError::NotFound),
        })
    }

    async fn touch_api_token(&self, id: &str, at: Millis) -> StoreResult<()> {
        self.with(|s| match s.api_tokens.iter_mut().find(|t| t.id == id) {
            Some(t) => {
                t.last_used_at = Some(t.last_used_at.map_or(at, |was| was.max(at)));
                Ok(())
            }
            None => Err(StoreError::NotFound),
        })
    }
}
