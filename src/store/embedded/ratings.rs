//! Ratings in the embedded store: conversation id → JSON rating, checked and inserted in
//! one write transaction (redb has one writer at a time), so a second rating is refused.

use async_trait::async_trait;

use super::{EmbeddedStore, TableDefinition, create, decode, put_new, unavailable};
use crate::store::{Rating, RatingStore, StoreError, StoreResult};

/// Conversation id → JSON [`Rating`].
pub(super) const RATINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("ratings");

/// Creates the ratings table in a new (or older) store file, at open.
pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&RATINGS])
}

/// The rating of conversation `id`, read in the caller's transaction.
pub(super) fn load(tx: &redb::ReadTransaction, id: &str) -> StoreResult<Option<Rating>> {
    let table = tx.open_table(RATINGS).map_err(unavailable)?;
    match table.get(id).map_err(unavailable)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

#[async_trait]
impl RatingStore for EmbeddedStore {
    async fn rate_conversation(&self, id: &str, rating: Rating) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |tx| {
            if super::erased::is_erased(&super::erased::tombstones(tx)?, &id)? {
                return Err(StoreError::NotFound); // erased on request
            }
            put_new(&mut tx.open_table(RATINGS).map_err(unavailable)?, &id, &rating)
        })
        .await
    }
}

/// Removes the rating of `id` (an erasure on request); 1 if there was one.
pub(super) fn erase(tx: &redb::WriteTransaction, id: &str) -> StoreResult<u64> {
    let mut table = tx.open_table(RATINGS).map_err(unavailable)?;
    Ok(u64::from(table.remove(id).map_err(unavailable)?.is_some()))
}
