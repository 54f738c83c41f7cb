//! Canned replies in the embedded store: one table by id, and the unique key
//! (owner, shortcut) → id (the desk's owner is the empty string), changed together in one
//! write transaction, so a shortcut taken is refused inside the transaction that would
//! take it again. Listing an owner's replies walks that key's range: by shortcut.

use async_trait::async_trait;

use super::{
    EmbeddedStore, ReadableTable, TableDefinition, create, decode, load, put, put_new_indexed, row, unavailable,
};
use crate::store::{CannedReply, CannedStore, StoreError, StoreResult};

/// Reply id → JSON [`CannedReply`] (without its id).
const CANNED: TableDefinition<&str, &[u8]> = TableDefinition::new("canned_replies");
/// (owner or "", shortcut) → reply id: one shortcut per owner.
const CANNED_BY_SHORTCUT: TableDefinition<(&str, &str), &str> = TableDefinition::new("canned_by_shortcut");

/// Creates the canned reply tables in a new (or older) store file, at open.
pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&CANNED, &CANNED_BY_SHORTCUT])
}

#[async_trait]
impl CannedStore for EmbeddedStore {
    async fn canned_replies(&self, owner: Option<&str>) -> StoreResult<Vec<CannedReply>> {
        let owner = owner.unwrap_or("").to_string();
        self.read(move |tx| {
            let keys = tx.open_table(CANNED_BY_SHORTCUT).map_err(unavailable)?;
            let replies = tx.open_table(CANNED).map_err(unavailable)?;
            let mut out = Vec::new();
            let range = keys.range((owner.as_str(), "")..).map_err(unavailable)?;
            for row in range {
                let (key, id) = row.map_err(unavailable)?;
                if key.value().0 != owner {
                    break;
                }
                let id = id.value().to_string();
                if let Some(rec) = replies.get(id.as_str()).map_err(unavailable)? {
                    out.push(CannedReply {
                        id,
                        ..decode(rec.value())?
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn canned_reply(&self, id: &str) -> StoreResult<CannedReply> {
        let reply: CannedReply = self.read(row(CANNED, id)).await?;
        Ok(CannedReply {
            id: id.to_string(),
            ..reply
        })
    }

    async fn create_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        self.write(move |tx| {
            let key = (reply.owner_key(), reply.shortcut.as_str());
            put_new_indexed(tx, CANNED, CANNED_BY_SHORTCUT, &reply.id, key, &reply)
        })
        .await
    }

    async fn update_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        self.write(move |tx| {
            let mut replies = tx.open_table(CANNED).map_err(unavailable)?;
            let mut keys = tx.open_table(CANNED_BY_SHORTCUT).map_err(unavailable)?;
            let stored: CannedReply = load(&replies, &reply.id)?;
            let owner = stored.owner.clone().unwrap_or_default();
            if stored.shortcut != reply.shortcut {
                if keys
                    .get((owner.as_str(), reply.shortcut.as_str()))
                    .map_err(unavailable)?
                    .is_some()
                {
                    return Err(StoreError::Conflict);
                }
                keys.remove((owner.as_str(), stored.shortcut.as_str()))
                    .map_err(unavailable)?;
                keys.insert((owner.as_str(), reply.shortcut.as_str()), reply.id.as_str())
                    .map_err(unavailable)?;
            }
            let rec = CannedReply {
                owner: stored.owner,
                created_at: stored.created_at,
                ..reply
            };
            put(&mut replies, rec.id.as_str(), &rec)?;
            Ok(())
        })
        .await
    }

    async fn delete_canned_reply(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |tx| {
            let mut replies = tx.open_table(CANNED).map_err(unavailable)?;
            let stored: CannedReply = {
                let Some(guard) = replies.remove(id.as_str()).map_err(unavailable)? else {
                    return Ok(false);
                };
                decode(guard.value())?
            };
            tx.open_table(CANNED_BY_SHORTCUT)
                .map_err(unavailable)?
                .remove((stored.owner.as_deref().unwrap_or(""), stored.shortcut.as_str()))
                .map_err(unavailable)?;
            Ok(true)
        })
        .await
    }
}
