//! The tombstones of erasure on request in the embedded store: the ids of the erased
//! conversations (`erased_conversations`), which `apply` and a new rating consult so that
//! nothing of an erased conversation is stored again (`erasure` writes them).

use redb::{ReadableTable, TableDefinition};

use super::unavailable;
use crate::store::StoreResult;

/// Erased conversation id → ().
pub(super) const ERASED: TableDefinition<&str, ()> = TableDefinition::new("erased_conversations");

/// The tombstones, opened for reading in a write transaction (`apply`).
pub(super) type Tombstones<'tx> = redb::Table<'tx, &'static str, ()>;

pub(super) fn tombstones(tx: &redb::WriteTransaction) -> StoreResult<Tombstones<'_>> {
    tx.open_table(ERASED).map_err(unavailable)
}

pub(super) fn is_erased(table: &Tombstones<'_>, id: &str) -> StoreResult<bool> {
    Ok(table.get(id).map_err(unavailable)?.is_some())
}
