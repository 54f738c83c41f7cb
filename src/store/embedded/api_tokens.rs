//! API tokens in the embedded store: tokens by id, and their ids by the secret's hash.

use async_trait::async_trait;

use super::{EmbeddedStore, TableDefinition, create, find, load, put, put_new_indexed, rows, unavailable};
use crate::store::{ApiToken, ApiTokenStore, Millis, StoreError, StoreResult, oldest_first};

/// Token id → JSON [`ApiToken`].
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_tokens");
/// Secret's hash → token id.
const BY_HASH: TableDefinition<&str, &str> = TableDefinition::new("api_tokens_by_hash");

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&TOKENS, &BY_HASH])
}

/// Changes a stored token with `change`; the token as it is now.
fn update(tx: &redb::WriteTransaction, id: &str, change: impl FnOnce(&mut ApiToken)) -> StoreResult<ApiToken> {
    let mut table = tx.open_table(TOKENS).map_err(unavailable)?;
    let Some(mut token) = find::<ApiToken>(&table, id)? else {
        return Err(StoreError::NotFound);
    };
    change(&mut token);
    put(&mut table, id, &token)?;
    Ok(token)
}

#[async_trait]
impl ApiTokenStore for EmbeddedStore {
    async fn add_api_token(&self, token: ApiToken) -> StoreResult<()> {
        self.write_apart(move |tx| put_new_indexed(tx, TOKENS, BY_HASH, &token.id, token.hash.as_str(), &token))
            .await
    }

    async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        Ok(oldest_first(self.read_apart(rows(TOKENS)).await?))
    }

    async fn api_token_by_hash(&self, hash: &str) -> StoreResult<ApiToken> {
        let hash = hash.to_string();
        self.read_apart(move |tx| {
            let by_hash = tx.open_table(BY_HASH).map_err(unavailable)?;
            let Some(id) = by_hash.get(hash.as_str()).map_err(unavailable)? else {
                return Err(StoreError::NotFound);
            };
            load(&tx.open_table(TOKENS).map_err(unavailable)?, id.value())
        })
        .await
    }

    async fn revoke_api_token(&self, id: &str, at: Millis) -> StoreResult<ApiToken> {
        let id = id.to_string();
        self.write_apart(move |tx| {
            update(tx, &id, |t| {
                t.revoked_at.get_or_insert(at);
            })
        })
        .await
    }

    async fn touch_api_token(&self, id: &str, at: Millis) -> StoreResult<()> {
        let id = id.to_string();
        self.write_apart(move |tx| {
            update(tx, &id, |t| {
                t.last_used_at = Some(t.last_used_at.map_or(at, |was| was.max(at)))
            })
            .map(drop)
        })
        .await
    }
}
