//! Accounts (by id, and a unique index by username) and sessions in the embedded store.
//! Sessions: one table by id, with an index by
//! account (revoking all of an account's sessions) and one by expiry (sweeping
//! without reading every session). The three change together in one transaction.

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use super::{
    ACCOUNTS, ACCOUNTS_BY_USERNAME, EmbeddedStore, ReadableTable, TableDefinition, create, decode, id_under,
    keys_under, load, put, put_new_indexed, refuse_held, row, rows, unavailable,
};
use crate::store::{Account, AccountStore, Millis, StoreError, StoreResult, StoredSession, oldest_first};

/// Session id (the SHA-256 of its token) → JSON [`SessionRec`].
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (account id, session id), for revoking all of an account's sessions.
const SESSIONS_BY_ACCOUNT: TableDefinition<(&str, &str), ()> = TableDefinition::new("sessions_by_account");
/// (expiry, session id), for sweeping expired sessions in order.
const SESSIONS_BY_EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("sessions_by_expiry");

#[derive(Serialize, Deserialize)]
struct SessionRec {
    account_id: String,
    expires_at: Millis,
}

/// Creates the session tables in a new (or older) store file, at open.
pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&SESSIONS, &SESSIONS_BY_ACCOUNT, &SESSIONS_BY_EXPIRY])
}

/// Removes one session and its index rows; the removed session, if it was there.
fn remove(tx: &redb::WriteTransaction, id: &str) -> StoreResult<Option<SessionRec>> {
    let rec: SessionRec = {
        let mut sessions = tx.open_table(SESSIONS).map_err(unavailable)?;
        let Some(guard) = sessions.remove(id).map_err(unavailable)? else {
            return Ok(None);
        };
        decode(guard.value())?
    };
    tx.open_table(SESSIONS_BY_ACCOUNT)
        .map_err(unavailable)?
        .remove((rec.account_id.as_str(), id))
        .map_err(unavailable)?;
    tx.open_table(SESSIONS_BY_EXPIRY)
        .map_err(unavailable)?
        .remove((rec.expires_at, id))
        .map_err(unavailable)?;
    Ok(Some(rec))
}

#[async_trait]
impl AccountStore for EmbeddedStore {
    async fn create_account(&self, account: Account) -> StoreResult<()> {
        self.write(move |tx| {
            put_new_indexed(
                tx,
                ACCOUNTS,
                ACCOUNTS_BY_USERNAME,
                &account.id,
                account.username.as_str(),
                &account,
            )
        })
        .await
    }

    async fn update_account(&self, account: Account) -> StoreResult<()> {
        self.write(move |tx| {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(unavailable)?;
            let mut by_username = tx.open_table(ACCOUNTS_BY_USERNAME).map_err(unavailable)?;
            if let Some(owner) = by_username.get(account.username.as_str()).map_err(unavailable)?
                && owner.value() != account.id
            {
                return Err(StoreError::Conflict);
            }
            let old = load::<Account>(&accounts, &account.id)?;
            if old.username != account.username {
                by_username.remove(old.username.as_str()).map_err(unavailable)?;
                by_username
                    .insert(account.username.as_str(), account.id.as_str())
                    .map_err(unavailable)?;
            }
            put(&mut accounts, account.id.as_str(), &account)?;
            Ok(())
        })
        .await
    }

    async fn account(&self, id: &str) -> StoreResult<Account> {
        self.read(row(ACCOUNTS, id)).await
    }

    async fn account_by_username(&self, username: &str) -> StoreResult<Account> {
        let username = username.to_string();
        self.read(move |tx| {
            let id = id_under(&tx.open_table(ACCOUNTS_BY_USERNAME).map_err(unavailable)?, &username)?;
            load::<Account>(&tx.open_table(ACCOUNTS).map_err(unavailable)?, &id)
        })
        .await
    }

    async fn accounts(&self) -> StoreResult<Vec<Account>> {
        // Oldest first, like the reference store's insertion order (ties by id).
        Ok(oldest_first(self.read(rows(ACCOUNTS)).await?))
    }

    async fn create_session(&self, session: StoredSession) -> StoreResult<()> {
        self.write(move |tx| {
            let mut sessions = tx.open_table(SESSIONS).map_err(unavailable)?;
            refuse_held(&sessions, session.id.as_str())?;
            let rec = SessionRec {
                account_id: session.account_id.clone(),
                expires_at: session.expires_at,
            };
            put(&mut sessions, session.id.as_str(), &rec)?;
            tx.open_table(SESSIONS_BY_ACCOUNT)
                .map_err(unavailable)?
                .insert((session.account_id.as_str(), session.id.as_str()), ())
                .map_err(unavailable)?;
            tx.open_table(SESSIONS_BY_EXPIRY)
                .map_err(unavailable)?
                .insert((session.expires_at, session.id.as_str()), ())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str) -> StoreResult<StoredSession> {
        let rec: SessionRec = self.read(row(SESSIONS, id)).await?;
        Ok(StoredSession {
            id: id.to_string(),
            account_id: rec.account_id,
            expires_at: rec.expires_at,
        })
    }

    async fn delete_session(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |tx| Ok(remove(tx, &id)?.is_some())).await
    }

    async fn delete_sessions_of(&self, account_id: &str) -> StoreResult<Vec<String>> {
        let account_id = account_id.to_string();
        self.write(move |tx| {
            let ids = keys_under(&tx.open_table(SESSIONS_BY_ACCOUNT).map_err(unavailable)?, &account_id)?;
            for id in &ids {
                remove(tx, id)?;
            }
            Ok(ids)
        })
        .await
    }

    async fn sweep_sessions(&self, now: Millis) -> StoreResult<u64> {
        self.write(move |tx| {
            let expired: Vec<String> = {
                let by_expiry = tx.open_table(SESSIONS_BY_EXPIRY).map_err(unavailable)?;
                let mut ids = Vec::new();
                for row in by_expiry.range(..=(now, "\u{10ffff}")).map_err(unavailable)? {
                    let (key, _) = row.map_err(unavailable)?;
                    ids.push(key.value().1.to_string());
                }
                ids
            };
            for id in &expired {
                remove(tx, id)?;
            }
            Ok(expired.len() as u64)
        })
        .await
    }
}
