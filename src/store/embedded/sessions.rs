//! Sessions in the embedded store: one table by id, with an index by
//! account (revoking all of an account's sessions) and one by expiry (sweeping
//! without reading every session). The three change together in one transaction.

use serde::{Deserialize, Serialize};

use super::{EmbeddedStore, ReadableTable, TableDefinition, decode, encode, unavailable};
use crate::store::{Millis, StoreError, StoreResult, StoredSession};

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
    tx.open_table(SESSIONS).map_err(unavailable)?;
    tx.open_table(SESSIONS_BY_ACCOUNT).map_err(unavailable)?;
    tx.open_table(SESSIONS_BY_EXPIRY).map_err(unavailable)?;
    Ok(())
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

impl EmbeddedStore {
    pub(super) async fn insert_session(&self, session: StoredSession) -> StoreResult<()> {
        self.write(move |tx| {
            let mut sessions = tx.open_table(SESSIONS).map_err(unavailable)?;
            if sessions.get(session.id.as_str()).map_err(unavailable)?.is_some() {
                return Err(StoreError::Conflict);
            }
            let rec = SessionRec {
                account_id: session.account_id.clone(),
                expires_at: session.expires_at,
            };
            sessions
                .insert(session.id.as_str(), encode(&rec)?.as_slice())
                .map_err(unavailable)?;
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

    pub(super) async fn find_session(&self, id: &str) -> StoreResult<StoredSession> {
        let id = id.to_string();
        self.read(move |tx| {
            let sessions = tx.open_table(SESSIONS).map_err(unavailable)?;
            let guard = sessions
                .get(id.as_str())
                .map_err(unavailable)?
                .ok_or(StoreError::NotFound)?;
            let rec: SessionRec = decode(guard.value())?;
            Ok(StoredSession {
                id: id.clone(),
                account_id: rec.account_id,
                expires_at: rec.expires_at,
            })
        })
        .await
    }

    pub(super) async fn remove_session(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |tx| Ok(remove(tx, &id)?.is_some())).await
    }

    pub(super) async fn remove_sessions_of(&self, account_id: &str) -> StoreResult<Vec<String>> {
        let account_id = account_id.to_string();
        self.write(move |tx| {
            let ids: Vec<String> = {
                let by_account = tx.open_table(SESSIONS_BY_ACCOUNT).map_err(unavailable)?;
                let rows = by_account.range((account_id.as_str(), "")..).map_err(unavailable)?;
                let mut ids = Vec::new();
                for row in rows {
                    let (key, _) = row.map_err(unavailable)?;
                    let (account, id) = key.value();
                    if account != account_id {
                        break;
                    }
                    ids.push(id.to_string());
                }
                ids
            };
            for id in &ids {
                remove(tx, id)?;
            }
            Ok(ids)
        })
        .await
    }

    pub(super) async fn sweep_expired_sessions(&self, now: Millis) -> StoreResult<u64> {
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
