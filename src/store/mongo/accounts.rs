//! Accounts and sessions in MongoDB. Accounts: collection `accounts`, `_id` the account id,
//! a unique index on `username`. Sessions: collection `sessions`, `_id` the SHA-256 of the
//! token. `expires_at` is a BSON date so a TTL index lets the server delete expired
//! sessions itself (its monitor runs about once a minute, so a lookup still compares
//! the expiry); an index on `account_id` serves revoking all of an account's sessions.

use async_trait::async_trait;

use bson::{DateTime, doc};
use mongodb::options::IndexOptions;
use serde::{Deserialize, Serialize};

use super::{
    MongoStore, Named, all, all_oldest_first, conflict_or_unavailable, delete_by_id, ensure_indexes, index, index_with,
    insert_new, matched, one, unavailable,
};
use crate::store::{Account, AccountStore, Millis, StoreResult, StoredSession};

#[derive(Serialize, Deserialize)]
struct SessionDoc {
    #[serde(rename = "_id")]
    id: String,
    account_id: String,
    expires_at: DateTime,
}

const SESSIONS: Named<SessionDoc> = Named::new("sessions");

impl MongoStore {
    pub(super) async fn create_session_indexes(&self) -> StoreResult<()> {
        let expiring = index_with(
            doc! {"expires_at": 1},
            IndexOptions::builder()
                .name("expiry_ttl".to_string())
                .expire_after(std::time::Duration::ZERO)
                .build(),
        );
        let by_account = index(doc! {"account_id": 1}, "account");
        ensure_indexes(&self.collection(SESSIONS), [expiring, by_account]).await
    }
}

#[async_trait]
impl AccountStore for MongoStore {
    async fn create_account(&self, account: Account) -> StoreResult<()> {
        insert_new(&self.accounts, &account).await
    }

    async fn update_account(&self, account: Account) -> StoreResult<()> {
        let result = self
            .accounts
            .replace_one(doc! {"_id": &account.id}, &account)
            .await
            .map_err(conflict_or_unavailable)?;
        matched(result.matched_count)
    }

    async fn account(&self, id: &str) -> StoreResult<Account> {
        one(self.accounts.find_one(doc! {"_id": id})).await
    }

    async fn account_by_username(&self, username: &str) -> StoreResult<Account> {
        one(self.accounts.find_one(doc! {"username": username})).await
    }

    async fn accounts(&self) -> StoreResult<Vec<Account>> {
        all_oldest_first(&self.accounts).await
    }

    async fn create_session(&self, session: StoredSession) -> StoreResult<()> {
        let doc = SessionDoc {
            id: session.id,
            account_id: session.account_id,
            expires_at: DateTime::from_millis(session.expires_at),
        };
        insert_new(&self.collection(SESSIONS), &doc).await
    }

    async fn session(&self, id: &str) -> StoreResult<StoredSession> {
        let found = one(self.collection(SESSIONS).find_one(doc! {"_id": id})).await?;
        Ok(StoredSession {
            id: found.id,
            account_id: found.account_id,
            expires_at: found.expires_at.timestamp_millis(),
        })
    }

    async fn delete_session(&self, id: &str) -> StoreResult<bool> {
        Ok(delete_by_id(&self.collection(SESSIONS), id).await? > 0)
    }

    /// The account's sessions found, then deleted by id: a session opened in between (a
    /// sign-in with the new password) is neither reported nor deleted.
    async fn delete_sessions_of(&self, account_id: &str) -> StoreResult<Vec<String>> {
        let found = all(self.collection(SESSIONS).find(doc! {"account_id": account_id})).await?;
        let ids: Vec<String> = found.into_iter().map(|s| s.id).collect();
        if !ids.is_empty() {
            self.collection(SESSIONS)
                .delete_many(doc! {"_id": {"$in": ids.clone()}})
                .await
                .map_err(unavailable)?;
        }
        Ok(ids)
    }

    async fn sweep_sessions(&self, now: Millis) -> StoreResult<u64> {
        let result = self
            .collection(SESSIONS)
            .delete_many(doc! {"expires_at": {"$lte": DateTime::from_millis(now)}})
            .await
            .map_err(unavailable)?;
        Ok(result.deleted_count)
    }
}
