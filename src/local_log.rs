//! An append-only log of records on local disk: one redb file, one table of encoded records
//! keyed by an increasing number, in the order they were appended. Each append is one
//! durable commit (it returns once the records are on disk); records are read back in
//! order and removed from the front once whatever they were kept for is done.
//!
//! What keeps acknowledgements alive through a crash when the store cannot take them yet:
//! the archive's spool ([`crate::archive::spool`]) and the webhook journal
//! ([`crate::webhooks::journal`]). Opened in memory ([`LocalLog::in_memory`]) it is the
//! same queue with nothing kept, for a hub whose store keeps nothing either.
//!
//! A disk that fails a write (full, an I/O error) does not leave the log refusing: redb
//! refuses every write after a failed commit until its file is opened again, so a failed
//! write closes the file, opens it again and tries again a few times with a growing pause
//! ([`WRITE_TRIES`]) before it reports the error; the next write opens it again if that
//! failed too. A commit whose answer was lost may be on disk after all and is then
//! written twice: both logs' readers take a record twice harmlessly.
//!
//! A record that cannot be decoded (damaged, or written by a newer version) can be moved
//! aside ([`LocalLog::set_aside`]) into a table of its own in the same file, kept for an
//! operator, so that it does not stop the records behind it.

use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

/// A log holds little and is read from the front: a small page cache is plenty.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

/// Tries of one write, the file opened again before each after the first, and the pause
/// before each: a passing fault is ridden out, a lasting one reported within a second.
const WRITE_TRIES: [Duration; 3] = [Duration::ZERO, Duration::from_millis(50), Duration::from_millis(500)];

/// The table records that cannot be decoded are moved to, in every log's file.
const SET_ASIDE: &str = "set_aside";

/// What a log is: its file in `DATA_DIR`, its table, its name in messages, and what an
/// operator does with a damaged file.
pub struct Kind {
    pub file: &'static str,
    pub table: &'static str,
    /// "archive spool", "webhook journal".
    pub what: &'static str,
    /// What moving a damaged file away does: "start with an empty spool (events it held
    /// are then lost)".
    pub instead: &'static str,
}

#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {message}")]
pub struct LogError {
    what: &'static str,
    path: PathBuf,
    message: String,
}

/// The open log. Its methods block on disk I/O: call them off the async threads.
pub struct LocalLog {
    /// `None` once a failed write closed the file and opening it again failed too: the
    /// next write tries again.
    db: RwLock<Option<Database>>,
    /// The file; `None` in memory (nothing to open again).
    file: Option<PathBuf>,
    path: PathBuf,
    kind: &'static Kind,
    /// Records held, as of the last commit seen.
    held: AtomicU64,
    /// Records set aside, as of the last commit seen.
    set_aside: AtomicU64,
}

impl LocalLog {
    /// Opens (creating if missing) the log of `kind` in `dir`, creating `dir` too. A file
    /// that cannot be opened (damaged) is named in the error with what to do about it.
    pub fn open(dir: &Path, kind: &'static Kind) -> Result<Self, LogError> {
        let path = dir.join(kind.file);
        let fail = |e: &dyn std::fmt::Display| LogError {
            what: kind.what,
            path: path.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let existed = path.exists();
        let db = open_file(&path, kind).map_err(|e| match existed {
            true => fail(&format!(
                "cannot be opened ({e}): the file is damaged; stop the hub and move it away to {}",
                kind.instead
            )),
            false => fail(&e),
        })?;
        Self::ready(db, Some(path), kind)
    }

    /// Opens (creating) and closes the log of `kind` in `dir`: a damaged or unwritable one
    /// stops start-up, the error naming `DATA_DIR`.
    pub fn check_opens(dir: &Path, kind: &'static Kind) -> Result<(), crate::store::Unusable> {
        Self::open(dir, kind)
            .map(drop)
            .map_err(|e| crate::store::Unusable(format!("DATA_DIR={}: {e}", dir.display())))
    }

    /// A log in memory: kept only while the process runs.
    pub fn in_memory(kind: &'static Kind) -> Result<Self, LogError> {
        let open = || -> Result<Database, redb::Error> {
            let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
            create_tables(&db, kind)?;
            Ok(db)
        };
        let db = open().map_err(|e| LogError {
            what: kind.what,
            path: PathBuf::from("(memory)"),
            message: e.to_string(),
        })?;
        Self::ready(db, None, kind)
    }

    /// The log over `db`, its counts read.
    fn ready(db: Database, file: Option<PathBuf>, kind: &'static Kind) -> Result<Self, LogError> {
        let log = Self {
            db: RwLock::new(Some(db)),
            path: file.clone().unwrap_or_else(|| PathBuf::from("(memory)")),
            file,
            kind,
            held: AtomicU64::new(0),
            set_aside: AtomicU64::new(0),
        };
        log.run(|db| {
            let tx = db.begin_read()?;
            log.count(&tx.open_table(log.records())?, &tx.open_table(set_aside())?)
        })?;
        Ok(log)
    }

    fn records(&self) -> TableDefinition<'static, u64, &'static [u8]> {
        TableDefinition::new(self.kind.table)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn error(&self, e: impl std::fmt::Display) -> LogError {
        LogError {
            what: self.kind.what,
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Records held (appended, not yet removed or set aside), as of the last commit.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Records set aside as undecodable, kept in the file for an operator.
    pub fn set_aside_count(&self) -> u64 {
        self.set_aside.load(Ordering::Relaxed)
    }

    /// Notes the counts of `records` and `aside` as of the transaction they were read in.
    fn count(
        &self,
        records: &impl ReadableTableMetadata,
        aside: &impl ReadableTableMetadata,
    ) -> Result<(), redb::Error> {
        self.held.store(records.len()?, Ordering::Relaxed);
        self.set_aside.store(aside.len()?, Ordering::Relaxed);
        Ok(())
    }

    /// Runs `op` on the open file (opening it again first if a failed write left it closed).
    fn run<T>(&self, op: impl FnOnce(&Database) -> Result<T, redb::Error>) -> Result<T, LogError> {
        if self.db.read().unwrap_or_else(|e| e.into_inner()).is_none() {
            self.reopen()?;
        }
        let db = self.db.read().unwrap_or_else(|e| e.into_inner());
        match db.as_ref() {
            Some(db) => op(db).map_err(|e| self.error(e)),
            None => Err(self.error("closed after a failed write")),
        }
    }

    /// Runs the write `op`, tried again as [`WRITE_TRIES`] says with the file opened
    /// again before each new try (redb refuses every write after a failed commit until
    /// then); the last try's error if none succeeded.
    fn write<T>(&self, op: impl Fn(&Database) -> Result<T, redb::Error>) -> Result<T, LogError> {
        let mut failed = None;
        for (n, pause) in WRITE_TRIES.into_iter().enumerate() {
            std::thread::sleep(pause);
            if n > 0
                && let Err(e) = self.reopen()
            {
                failed = Some(e);
                continue;
            }
            match self.run(&op) {
                Ok(done) => return Ok(done),
                Err(e) => failed = Some(e),
            }
        }
        Err(failed.expect("at least one try"))
    }

    /// Closes the file and opens it again: what redb needs after a failed commit.
    fn reopen(&self) -> Result<(), LogError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        // redb opens a file once per process: the failed one is closed first.
        drop(db.take());
        *db = Some(open_file(file, self.kind).map_err(|e| self.error(format!("cannot be opened again: {e}")))?);
        Ok(())
    }

    /// The records in `keys`, in order, at most `limit` of them, each decoded from JSON
    /// (every record is JSON-encoded).
    pub fn read<T: serde::de::DeserializeOwned>(
        &self,
        keys: impl RangeBounds<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, T)>, LogError> {
        self.read_encoded(keys, limit)?
            .into_iter()
            .map(|(key, bytes)| {
                serde_json::from_slice(&bytes)
                    .map(|record| (key, record))
                    .map_err(|e| self.error(format!("record {key} is unreadable: {e}")))
            })
            .collect()
    }

    /// The records in `keys`, in order, at most `limit` of them, as stored.
    pub fn read_encoded(&self, keys: impl RangeBounds<u64>, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        self.run(|db| {
            let tx = db.begin_read()?;
            let table = tx.open_table(self.records())?;
            let mut records = vec![];
            for entry in table.range(keys)?.take(limit) {
                let (key, value) = entry?;
                records.push((key.value(), value.value().to_vec()));
            }
            Ok(records)
        })
    }

    /// Appends encoded records in one durable commit: it returns once they are on disk,
    /// with the key of the first; the others follow it.
    pub fn append(&self, records: &[Vec<u8>]) -> Result<u64, LogError> {
        self.write(|db| {
            let tx = db.begin_write()?;
            let first = {
                let mut table = tx.open_table(self.records())?;
                let first = match table.last()? {
                    Some((key, _)) => key.value() + 1,
                    None => 1,
                };
                for (key, bytes) in (first..).zip(records) {
                    table.insert(key, bytes.as_slice())?;
                }
                self.count(&table, &tx.open_table(set_aside())?)?;
                first
            };
            tx.commit()?;
            Ok(first)
        })
    }

    /// Removes every record up to and including `last`: they are done with.
    pub fn remove_through(&self, last: u64) -> Result<(), LogError> {
        self.write(|db| {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(self.records())?;
                table.retain_in(..=last, |_, _| false)?;
                self.count(&table, &tx.open_table(set_aside())?)?;
            }
            Ok(tx.commit()?)
        })
    }

    /// Moves the records `keys` out of the log into its set-aside table (same keys, same
    /// bytes), where they stay for an operator.
    pub fn set_aside(&self, keys: &[u64]) -> Result<(), LogError> {
        self.write(|db| {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(self.records())?;
                let mut aside = tx.open_table(set_aside())?;
                for key in keys {
                    if let Some(bytes) = table.remove(key)? {
                        aside.insert(key, bytes.value())?;
                    }
                }
                self.count(&table, &aside)?;
            }
            Ok(tx.commit()?)
        })
    }
}

fn set_aside() -> TableDefinition<'static, u64, &'static [u8]> {
    TableDefinition::new(SET_ASIDE)
}

/// Opens (creating) the redb file at `path` with both of `kind`'s tables. A file that
/// makes redb panic (its consistency checks do in debug builds) is an error here too.
fn open_file(path: &Path, kind: &Kind) -> Result<Database, redb::Error> {
    let open = || -> Result<Database, redb::Error> {
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(path)?;
        create_tables(&db, kind)?;
        Ok(db)
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(open))
        .unwrap_or_else(|_| Err(redb::StorageError::Corrupted("its structure is inconsistent".into()).into()))
}

/// Creates `kind`'s tables in `db` where missing.
fn create_tables(db: &Database, kind: &Kind) -> Result<(), redb::Error> {
    let tx = db.begin_write()?;
    tx.open_table(TableDefinition::<u64, &[u8]>::new(kind.table))?;
    tx.open_table(set_aside())?;
    Ok(tx.commit()?)
}
