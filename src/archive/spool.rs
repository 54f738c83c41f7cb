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

use std::path::Path;

use crate::local_log::{Kind, LocalLog, LogError};
use crate::store::{ArchiveEvent, Unusable};

/// The spool's file name inside `DATA_DIR`.
pub const FILE_NAME: &str = "archive-spool.redb";

/// The spool's file, its table of spool key → one event (JSON-encoded), and what to do
/// with a damaged one.
pub static KIND: Kind = Kind {
    file: FILE_NAME,
    table: "spooled_events",
    what: "archive spool",
    instead: "start with an empty spool (events it held are then lost)",
};

pub type SpoolError = LogError;

/// The open spool file. Its methods block on disk I/O: call them off the async threads.
pub struct Spool(LocalLog);

/// What can be checked of the spool without opening it (`check-config`, and `serve`
/// before it waits for MongoDB): `DATA_DIR` can be a directory and an existing spool
/// file is a non-empty redb file. An empty one is refused rather than taken for a new,
/// empty spool: it may be what is left of events acknowledged during an outage.
pub fn preflight(dir: &Path) -> Result<(), Unusable> {
    crate::store::check_data_dir(dir)?;
    crate::store::check_redb_file(dir, FILE_NAME, "an archive spool", KIND.instead)
}

/// Checks the spool as [`preflight`] does, then opens (creating) and closes it: proves
/// `DATA_DIR` is writable before the hub waits for MongoDB, so an unusable one stops
/// start-up at once instead of after the database answers.
pub fn check_usable(dir: &Path) -> Result<(), Unusable> {
    preflight(dir)?;
    LocalLog::check_opens(dir, &KIND)
}

impl Spool {
    /// Opens (creating if missing) the spool in `dir`, creating `dir` too.
    pub fn open(dir: &Path) -> Result<Self, SpoolError> {
        LocalLog::open(dir, &KIND).map(Self)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Every event held, in order, with its key.
    pub fn load(&self) -> Result<Vec<(u64, ArchiveEvent)>, SpoolError> {
        self.0.read(.., usize::MAX)
    }

    /// Appends encoded events (see [`encode`]) in one durable commit: it returns once
    /// they are on disk, with the key of the first; the others follow it.
    pub fn append(&self, events: &[Vec<u8>]) -> Result<u64, SpoolError> {
        self.0.append(events)
    }

    /// Removes every event up to and including `last`: the store has them.
    pub fn remove_through(&self, last: u64) -> Result<(), SpoolError> {
        self.0.remove_through(last)
    }
}

/// An event as the spool stores it.
pub fn encode(event: &ArchiveEvent) -> Vec<u8> {
    serde_json::to_vec(event).expect("archive events are plain data")
}

#[cfg(test)]
mod tests;
