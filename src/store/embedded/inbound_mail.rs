//! Inbound mail keys in the embedded store: key → when it was handled, checked and
//! inserted in one write transaction (redb has one writer at a time).

use async_trait::async_trait;

use super::{EmbeddedStore, ReadableTable, TableDefinition, create, unavailable};
use crate::store::{InboundMailStore, Millis, StoreResult};

/// Mail key → ms since the epoch it was handled.
const INBOUND_MAIL: TableDefinition<&str, i64> = TableDefinition::new("inbound_mail");

/// Creates the table in a new (or older) store file, at open.
pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&INBOUND_MAIL])
}

#[async_trait]
impl InboundMailStore for EmbeddedStore {
    async fn inbound_seen(&self, key: &str) -> StoreResult<bool> {
        let key = key.to_string();
        self.read(move |tx| {
            let table = tx.open_table(INBOUND_MAIL).map_err(unavailable)?;
            Ok(table.get(key.as_str()).map_err(unavailable)?.is_some())
        })
        .await
    }

    async fn first_seen(&self, key: &str, at: Millis) -> StoreResult<bool> {
        let key = key.to_string();
        self.write(move |tx| {
            let mut table = tx.open_table(INBOUND_MAIL).map_err(unavailable)?;
            if table.get(key.as_str()).map_err(unavailable)?.is_some() {
                return Ok(false);
            }
            table.insert(key.as_str(), at).map_err(unavailable)?;
            Ok(true)
        })
        .await
    }
}
