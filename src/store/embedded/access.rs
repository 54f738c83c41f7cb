//! How the embedded store's calls reach its tables: each in one redb transaction on
//! tokio's blocking pool, with the archived events still held folded in first (`read`,
//! `write`: the default) or not (`read_apart`, `write_apart`: only for tables the fold
//! never writes); and what such a transaction runs for one JSON row ([`row`], [`rows`],
//! [`write_row`]), whichever way it reaches the table.

use redb::{Database, ReadableDatabase, TableDefinition};
use serde::de::DeserializeOwned;

use super::{EmbeddedStore, JsonRows, all, blocking, load, unavailable};
use crate::store::StoreResult;

/// What a read runs on its snapshot.
pub(super) trait Reading<T>: FnOnce(&redb::ReadTransaction) -> StoreResult<T> + Send + 'static {}
impl<T, F: FnOnce(&redb::ReadTransaction) -> StoreResult<T> + Send + 'static> Reading<T> for F {}

/// What a write runs in its transaction, which commits only if it succeeds.
pub(super) trait Writing<T>: FnOnce(&redb::WriteTransaction) -> StoreResult<T> + Send + 'static {}
impl<T, F: FnOnce(&redb::WriteTransaction) -> StoreResult<T> + Send + 'static> Writing<T> for F {}

/// A table of JSON rows by string key.
pub(super) type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// Does a call fold in the archived events still held before it runs?
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fold {
    /// Fold first, so the call sees every archived event: the default.
    First,
    /// Leave the fold to its niced thread ([`super::background`]): only for tables the
    /// fold ([`super::apply`]) never writes (webhooks, desk settings and categories, API
    /// tokens, the mail outbox), which read the same folded or not (redb runs one write
    /// transaction at a time). The sweeps that look at those tables several times a
    /// second would otherwise run the fold on the blocking pool, at the hub's priority.
    Skip,
}

impl EmbeddedStore {
    /// Runs `f` in one write transaction, once the archived events still held are folded in.
    pub(super) async fn write<T: Send + 'static>(&self, f: impl Writing<T>) -> StoreResult<T> {
        self.on_pool(Fold::First, move |db| in_write(db, f)).await
    }

    /// [`Self::write`] without the fold: only for tables the fold never writes ([`Fold::Skip`]).
    pub(super) async fn write_apart<T: Send + 'static>(&self, f: impl Writing<T>) -> StoreResult<T> {
        self.on_pool(Fold::Skip, move |db| in_write(db, f)).await
    }

    /// Runs `f` in one read transaction (a consistent snapshot), once the archived events
    /// still held are folded in.
    pub(super) async fn read<T: Send + 'static>(&self, f: impl Reading<T>) -> StoreResult<T> {
        self.on_pool(Fold::First, move |db| f(&db.begin_read().map_err(unavailable)?))
            .await
    }

    /// [`Self::read`] without the fold: only for tables the fold never writes ([`Fold::Skip`]).
    pub(super) async fn read_apart<T: Send + 'static>(&self, f: impl Reading<T>) -> StoreResult<T> {
        self.on_pool(Fold::Skip, move |db| f(&db.begin_read().map_err(unavailable)?))
            .await
    }

    /// Runs `f` on the blocking pool, after folding in the archived events still held
    /// when `fold` says so.
    async fn on_pool<T: Send + 'static>(
        &self,
        fold: Fold,
        f: impl FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (db, archiving) = (self.db.clone(), self.archiving.clone());
        blocking(move || {
            if fold == Fold::First {
                archiving.fold(&db)?;
            }
            f(&db)
        })
        .await
    }
}

/// Runs `f` in one write transaction of `db`; commits only if `f` succeeds.
fn in_write<T>(db: &Database, f: impl FnOnce(&redb::WriteTransaction) -> StoreResult<T>) -> StoreResult<T> {
    let tx = db.begin_write().map_err(unavailable)?;
    match f(&tx) {
        Ok(value) => {
            tx.commit().map_err(unavailable)?;
            Ok(value)
        }
        Err(e) => {
            tx.abort().map_err(unavailable)?;
            Err(e)
        }
    }
}

/// A read of the JSON row under `key` in `table`; `NotFound` when there is none.
pub(super) fn row<T: DeserializeOwned + 'static>(table: JsonTable, key: &str) -> impl Reading<T> {
    let key = key.to_string();
    move |tx| load(&tx.open_table(table).map_err(unavailable)?, &key)
}

/// A read of every JSON row of `table`, decoded, in key order.
pub(super) fn rows<T: DeserializeOwned + 'static>(table: JsonTable) -> impl Reading<Vec<T>> {
    move |tx| all(&tx.open_table(table).map_err(unavailable)?)
}

/// A write of `value` as the JSON row under `key` in `table`, the way `how` writes it:
/// [`super::put_new`] (a new row; `Conflict` when the key is taken) or
/// [`super::replace`] (over the row there; `NotFound` when there is none).
pub(super) fn write_row<T: Send + 'static>(
    table: JsonTable,
    key: String,
    value: T,
    how: fn(&mut JsonRows<'_>, &str, &T) -> StoreResult<()>,
) -> impl Writing<()> {
    move |tx| how(&mut tx.open_table(table).map_err(unavailable)?, &key, &value)
}
