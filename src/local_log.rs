//! An append-only log of records on local disk: one redb file, one table of encoded records
//! keyed by an increasing number, in the order they were appended. Each append is one
//! durable commit (it returns once the records are on disk); records are read back in
//! order and removed from the front once whatever they were kept for is done.
//!
//! What keeps acknowledgements alive through a crash when the store cannot take them yet:
//! the archive's spool ([`crate::archive::spool`]) and the webhook journal
//! ([`crate::webhooks::journal`]). Opened in memory ([`LocalLog::in_memory`]) it is the
//! same queue with nothing kept, for a hub whose store keeps nothing either.

use std::ops::RangeBounds;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// A log holds little and is read from the front: a small page cache is plenty.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {message}")]
pub struct LogError {
    what: &'static str,
    path: PathBuf,
    message: String,
}

/// The open log. Its methods block on disk I/O: call them off the async threads.
pub struct LocalLog {
    db: Database,
    path: PathBuf,
    /// What the log is, for errors ("archive spool").
    what: &'static str,
    table: &'static str,
}

impl LocalLog {
    /// Opens (creating if missing) the log `file` in `dir`, creating `dir` too, with its
    /// records in `table`; `what` names it in errors.
    pub fn open(dir: &Path, file: &str, table: &'static str, what: &'static str) -> Result<Self, LogError> {
        let path = dir.join(file);
        let fail = |e: &dyn std::fmt::Display| LogError {
            what,
            path: path.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| fail(&e))?;
        Self::ready(db, path, table, what)
    }

    /// A log in memory: kept only while the process runs.
    pub fn in_memory(table: &'static str, what: &'static str) -> Result<Self, LogError> {
        let path = PathBuf::from("(memory)");
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| LogError {
                what,
                path: path.clone(),
                message: e.to_string(),
            })?;
        Self::ready(db, path, table, what)
    }

    /// The log over `db`, its table created.
    fn ready(db: Database, path: PathBuf, table: &'static str, what: &'static str) -> Result<Self, LogError> {
        let log = Self { db, path, what, table };
        let tx = log.db.begin_write().map_err(|e| log.error(e))?;
        tx.open_table(log.definition()).map_err(|e| log.error(e))?;
        tx.commit().map_err(|e| log.error(e))?;
        Ok(log)
    }

    fn definition(&self) -> TableDefinition<'static, u64, &'static [u8]> {
        TableDefinition::new(self.table)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn error(&self, e: impl std::fmt::Display) -> LogError {
        LogError {
            what: self.what,
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// The records in `keys`, in order, at most `limit` of them, each decoded from JSON
    /// (every record is JSON-encoded).
    pub fn read<T: serde::de::DeserializeOwned>(
        &self,
        keys: impl RangeBounds<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, T)>, LogError> {
        let tx = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = tx.open_table(self.definition()).map_err(|e| self.error(e))?;
        let mut records = vec![];
        for entry in table.range(keys).map_err(|e| self.error(e))?.take(limit) {
            let (key, value) = entry.map_err(|e| self.error(e))?;
            let record = serde_json::from_slice(value.value())
                .map_err(|e| self.error(format!("record {} is unreadable: {e}", key.value())))?;
            records.push((key.value(), record));
        }
        Ok(records)
    }

    /// Appends encoded records in one durable commit: it returns once they are on disk,
    /// with the key of the first; the others follow it.
    pub fn append(&self, records: &[Vec<u8>]) -> Result<u64, LogError> {
        let tx = self.db.begin_write().map_err(|e| self.error(e))?;
        let first = {
            let mut table = tx.open_table(self.definition()).map_err(|e| self.error(e))?;
            let first = match table.last().map_err(|e| self.error(e))? {
                Some((key, _)) => key.value() + 1,
                None => 1,
            };
            for (key, bytes) in (first..).zip(records) {
                table.insert(key, bytes.as_slice()).map_err(|e| self.error(e))?;
            }
            first
        };
        tx.commit().map_err(|e| self.error(e))?;
        Ok(first)
    }

    /// Removes every record up to and including `last`: they are done with.
    pub fn remove_through(&self, last: u64) -> Result<(), LogError> {
        let tx = self.db.begin_write().map_err(|e| self.error(e))?;
        {
            let mut table = tx.open_table(self.definition()).map_err(|e| self.error(e))?;
            table.retain_in(..=last, |_, _| false).map_err(|e| self.error(e))?;
        }
        tx.commit().map_err(|e| self.error(e))
    }
}
