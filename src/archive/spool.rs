//! The write-ahead spool: archive events kept on local disk while the store is
//! down, so that an acknowledgement given during an outage survives a stop or a
//! crash of the hub.
//!
//! One redb file (`archive-spool.redb` in `DATA_DIR`), one table of events keyed by
//! an increasing number, in the order the hub produced them. The writer appends
//! every event it cannot put in the store (one durable commit per batch, before the
//! senders are acknowledged), removes them once the store has taken them, and on
//! start-up hands back whatever a previous process left, to be written first.
//! Writing an event twice is harmless: stores apply events by their natural ids.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::store::{ArchiveEvent, Unusable};

/// The spool's file name inside `DATA_DIR`.
pub const FILE_NAME: &str = "archive-spool.redb";

/// Spool key → one event, JSON-encoded.
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("spooled_events");

/// The spool holds little and is read once at start-up: a small page cache is plenty.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("archive spool {path}: {message}")]
pub struct SpoolError {
    path: PathBuf,
    message: String,
}

/// The open spool file. Its methods block on disk I/O: call them off the async threads.
pub struct Spool {
    db: Database,
    path: PathBuf,
}

/// What can be checked of the spool without opening it (`check-config`, and `serve`
/// before it waits for MongoDB): `DATA_DIR` can be a directory and an existing spool
/// file is a non-empty redb file. An empty one is refused rather than taken for a new,
/// empty spool: it may be what is left of events acknowledged during an outage.
pub fn preflight(dir: &Path) -> Result<(), Unusable> {
    crate::store::check_data_dir(dir)?;
    crate::store::check_redb_file(
        dir,
        FILE_NAME,
        "an archive spool",
        "start with an empty spool (events it held are then lost)",
    )
}

/// Checks the spool as [`preflight`] does, then opens (creating) and closes it: proves
/// `DATA_DIR` is writable before the hub waits for MongoDB, so an unusable one stops
/// start-up at once instead of after the database answers.
pub fn check_usable(dir: &Path) -> Result<(), Unusable> {
    preflight(dir)?;
    Spool::open(dir)
        .map(drop)
        .map_err(|e| Unusable(format!("DATA_DIR={}: {e}", dir.display())))
}

impl Spool {
    /// Opens (creating if missing) the spool in `dir`, creating `dir` too.
    pub fn open(dir: &Path) -> Result<Self, SpoolError> {
        let path = dir.join(FILE_NAME);
        let fail = |e: &dyn std::fmt::Display| SpoolError {
            path: path.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| fail(&e))?;
        let tx = db.begin_write().map_err(|e| fail(&e))?;
        tx.open_table(EVENTS).map_err(|e| fail(&e))?;
        tx.commit().map_err(|e| fail(&e))?;
        Ok(Self { db, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: impl std::fmt::Display) -> SpoolError {
        SpoolError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Every event held, in order, with its key.
    pub fn load(&self) -> Result<Vec<(u64, ArchiveEvent)>, SpoolError> {
        let tx = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = tx.open_table(EVENTS).map_err(|e| self.error(e))?;
        let mut events = vec![];
        for entry in table.iter().map_err(|e| self.error(e))? {
            let (key, value) = entry.map_err(|e| self.error(e))?;
            let event = serde_json::from_slice(value.value())
                .map_err(|e| self.error(format!("event {} is unreadable: {e}", key.value())))?;
            events.push((key.value(), event));
        }
        Ok(events)
    }

    /// Appends encoded events (see [`encode`]) in one durable commit: it returns once
    /// they are on disk, with the key of the first; the others follow it.
    pub fn append(&self, events: &[Vec<u8>]) -> Result<u64, SpoolError> {
        let tx = self.db.begin_write().map_err(|e| self.error(e))?;
        let first = {
            let mut table = tx.open_table(EVENTS).map_err(|e| self.error(e))?;
            let first = match table.last().map_err(|e| self.error(e))? {
                Some((key, _)) => key.value() + 1,
                None => 1,
            };
            for (key, bytes) in (first..).zip(events) {
                table.insert(key, bytes.as_slice()).map_err(|e| self.error(e))?;
            }
            first
        };
        tx.commit().map_err(|e| self.error(e))?;
        Ok(first)
    }

    /// Removes every event up to and including `last`: the store has them.
    pub fn remove_through(&self, last: u64) -> Result<(), SpoolError> {
        let tx = self.db.begin_write().map_err(|e| self.error(e))?;
        {
            let mut table = tx.open_table(EVENTS).map_err(|e| self.error(e))?;
            table.retain_in(..=last, |_, _| false).map_err(|e| self.error(e))?;
        }
        tx.commit().map_err(|e| self.error(e))
    }
}

/// An event as the spool stores it.
pub fn encode(event: &ArchiveEvent) -> Vec<u8> {
    serde_json::to_vec(event).expect("archive events are plain data")
}

#[cfg(test)]
mod tests;
