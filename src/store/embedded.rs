//! The embedded on-disk store: the zero-config default, one redb file
//! (`switchboard.redb`) in the data directory.
//!
//! Why it is built this way:
//! - redb is a pure-Rust, crash-safe (copy-on-write B-trees, atomic commits)
//!   key-value store with no server to run, which is what "zero-config" asks for.
//!   Its API is synchronous, so every transaction runs on tokio's blocking pool
//!   (`spawn_blocking`) and never stalls the async workers or holds a lock
//!   across the caller's `.await`.
//! - A durable redb commit is the expensive part (it copies and checksums every
//!   page it touches, then fsyncs). So `archive` makes a batch durable by writing
//!   it to the archive journal (`archive-journal.log`, one `fdatasync`, see
//!   [`super::journal`]) and folds ~1,000 events at a time into redb in one
//!   non-durable commit; every ~16,000 messages one durable redb commit makes them
//!   permanent and the journal starts again, and opening the store replays it. Two
//!   journals take turns so that commit runs off the acknowledgement's path (see
//!   [`Archiving`]); folds and checkpoints run on a niced thread of their own
//!   ([`background`]), so they never take the core from relaying and appends.
//!   Every read and write first folds what is held, so callers see every archived
//!   event. Other data (accounts, categories, …) is committed durably as before.
//! - Messages are not stored inside a conversation record (that would rewrite
//!   an ever-growing value on every message). Since schema 3 (issue 14) each message
//!   is a row of an append-ordered log plus a share of a per-conversation index of
//!   runs ([`message_log`]): every insert goes to the log's rightmost leaf, so leaves
//!   fill (a row per message keyed by conversation left them half full with many
//!   conversations interleaved), and the append stays idempotent by seq (a seq names
//!   one message of its conversation), as the reference store does. Schema 1 kept a
//!   `(conversation_id, message_id) -> seq` table, schema 2 rows keyed
//!   `(conversation_id, seq, message_id)`; opening such a file moves its messages into
//!   the log, drops the old tables, compacts the file once and marks it version 3 (a
//!   build that reads an older version refuses a newer file with a message naming both
//!   versions, never misreads it). Schema 4 stores the hub's message ids (UUIDs) as 16
//!   bytes instead of 36 characters; a version 3 file is only marked 4 on open (its
//!   records read as they are).
//! - Listings use secondary indexes keyed `(…, paired_at, conversation_id)`
//!   and walked in reverse, so "newest first" is the natural key order and a
//!   time range is a key range. The agent and category filters each have
//!   their own index; any remaining filter is checked against the record.
//! - Schema 2's `messages` row values were compact binary records (issue 14, see
//!   [`message_value`]) or JSON in files written before; both are read when migrating.
//! - Other values are JSON via private mirror structs: a well-kept, self-describing
//!   format that survives adding optional fields, and the public model types
//!   (some of which hold secrets such as password hashes) stay free of serde.
//!   The key layout is fixed; `meta` records a schema version for future
//!   migrations.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::journal::{self, Journal};
use super::record::{AccountRecord, ClosedRecord};
use super::*;

// ---- sessions in the shared store (issue 15) ----
mod sessions;
// ---- rooms and 1-to-1 video (issue 16) ----
mod rooms;
// ---- appointments (issue 17) ----
mod appointments;
// ---- appointment mail outbox (issue 17) ----
mod outbox;
// ---- compact archive records (issue 14) ----
mod message_value;
// ---- messages in an append-ordered log (issue 14, schema 3) ----
mod message_log;
// ---- folds and checkpoints on a niced thread (issue 14) ----
mod background;

/// The file name inside the data directory.
pub const FILE_NAME: &str = "switchboard.redb";
const SCHEMA_VERSION: u64 = 4;
/// The version whose message records all hold their id as text; schema 4 (issue 14)
/// stores the hub's UUID ids as 16 bytes, and reads version 3's records as they are, so
/// opening such a file only marks it 4 (a build reading 3 then refuses it, never misreads it).
const SCHEMA_V3: u64 = 3;
/// The version with one `messages` row per message keyed by conversation (see
/// [`message_log`]); opened files of it are migrated.
const SCHEMA_V2: u64 = 2;
/// The version before the `message_ids` table was dropped; opened files of it are migrated.
const SCHEMA_V1: u64 = 1;
/// redb's own default page cache (1 GiB), for callers that do not choose one.
pub const DEFAULT_CACHE_BYTES: usize = 1 << 30;

/// Free-form counters and the schema version.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Account id -> JSON account.
const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
/// Username -> account id (unique).
const ACCOUNTS_BY_USERNAME: TableDefinition<&str, &str> = TableDefinition::new("accounts_by_username");
/// Category id -> JSON category (with its creation position).
const CATEGORIES: TableDefinition<&str, &[u8]> = TableDefinition::new("categories");
/// Creation position -> category id; iterating gives creation order.
const CATEGORY_ORDER: TableDefinition<u64, &str> = TableDefinition::new("category_order");
/// Conversation id -> JSON {opened, closed}.
const CONVERSATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversations");
/// (conversation id, message id) -> seq: schema version 1 only, dropped by the migration.
const MESSAGE_IDS_V1: TableDefinition<(&str, &str), u64> = TableDefinition::new("message_ids");
/// (paired_at, conversation id) -> (); every conversation.
const BY_PAIRED: TableDefinition<(i64, &str), ()> = TableDefinition::new("conversations_by_paired");
/// (agent id, paired_at, conversation id) -> ().
const BY_AGENT: TableDefinition<(&str, i64, &str), ()> = TableDefinition::new("conversations_by_agent");
/// (category id, paired_at, conversation id) -> (); only conversations with a category.
const BY_CATEGORY: TableDefinition<(&str, i64, &str), ()> = TableDefinition::new("conversations_by_category");

const NEXT_CATEGORY_POS: &str = "next_category_pos";

/// The on-disk store. Cheap to clone and share: the database handle is behind an `Arc`.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// Archive batches durable in the journal and not yet in redb (see [`journal`]).
    archiving: Arc<Archiving>,
    /// The niced thread that folds and checkpoints (see [`background`]).
    background: Arc<background::Background>,
}

/// Archive events since redb last took them: durable in the journal, folded into redb
/// in one non-durable commit per [`FOLD_EVENTS`], off the acknowledgement's path (and
/// before any transaction, so every read sees everything archived). One commit for many
/// batches is what makes redb cheap here: each page a commit touches is copied and
/// checksummed once per commit. Locks, only ever taken on the blocking pool and in this
/// order: `journal`, `spare`, `folding`, `unfolded`, then redb's write lock (a background
/// checkpoint, on the niced [`background`] thread, takes `folding`, `unfolded`, redb's,
/// then `spare`, never `journal`).
///
/// Two journal files take turns (issue 14): when the one appended to is full, appends go
/// on in the other at once and the full one is checkpointed (one durable redb commit) on
/// another thread, off the acknowledgement's path; it is the spare again once that commit
/// is done. Only if the second fills before the first's checkpoint ends does an append wait.
struct Archiving {
    /// The journal appended to. Held by an append.
    journal: Mutex<Journal>,
    /// The other journal, when no checkpoint is using it; `None` while one is.
    spare: Mutex<Option<Spare>>,
    /// Signalled when the spare comes back.
    spare_back: Condvar,
    /// Held by a fold for its whole commit, so folds apply events in the order appended.
    folding: Mutex<()>,
    /// In journal order.
    unfolded: Mutex<Vec<ArchiveEvent>>,
    /// A background fold is scheduled and has not started: no need for another.
    fold_scheduled: AtomicBool,
}

/// Events held before they are folded into redb: bounds the memory they take (~300 KB of
/// short messages) and the work of the read that folds them.
const FOLD_EVENTS: usize = 1_000;

/// The journal not appended to.
struct Spare {
    journal: Journal,
    /// Its events are durable in redb (it was cleared); `false` after a failed checkpoint.
    checkpointed: bool,
}

/// Gives a retired journal back as the spare when its checkpoint ends, even by a panic.
struct Retired<'a> {
    archiving: &'a Archiving,
    journal: Option<Journal>,
    checkpointed: bool,
}

impl Drop for Retired<'_> {
    fn drop(&mut self) {
        if let Some(journal) = self.journal.take() {
            *lock(&self.archiving.spare) = Some(Spare {
                journal,
                checkpointed: self.checkpointed,
            });
            self.archiving.spare_back.notify_all();
        }
    }
}

impl Archiving {
    /// The spare journal, waiting for a checkpoint still running on it.
    fn take_spare(&self) -> Spare {
        let mut spare = lock(&self.spare);
        loop {
            if let Some(taken) = spare.take() {
                return taken;
            }
            spare = self
                .spare_back
                .wait(spare)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// The background checkpoint of a full journal: folds everything held (its events
    /// among them), makes it durable, and gives the journal back as the spare, cleared.
    fn retire(&self, db: &Database, journal: Journal) {
        let mut retired = Retired {
            archiving: self,
            journal: Some(journal),
            checkpointed: false,
        };
        let durable = self
            .fold(db)
            .and_then(|()| db.begin_write().map_err(unavailable)?.commit().map_err(unavailable));
        match durable {
            Ok(()) => {
                if let Some(journal) = retired.journal.as_mut() {
                    journal.clear();
                }
                retired.checkpointed = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "embedded store: a journal checkpoint failed; the next switch retries it");
            }
        }
    }

    /// Applies the unfolded events to redb in one non-durable commit: visible to readers,
    /// on disk at the next durable commit (the journal holds them until then).
    fn fold(&self, db: &Database) -> StoreResult<()> {
        let _folding = lock(&self.folding);
        self.fold_scheduled.store(false, Ordering::Relaxed);
        let events = std::mem::take(&mut *lock(&self.unfolded));
        if events.is_empty() {
            return Ok(());
        }
        let applied = (|| {
            let mut tx = db.begin_write().map_err(unavailable)?;
            tx.set_durability(redb::Durability::None).map_err(unavailable)?;
            apply(&tx, &events)?;
            tx.commit().map_err(unavailable)
        })();
        if applied.is_err() {
            // Back in front, in order: the next fold or read tries them again.
            let mut unfolded = lock(&self.unfolded);
            let later = std::mem::replace(&mut *unfolded, events);
            unfolded.extend(later);
        }
        applied
    }

    /// With the journal locked (nothing appended meanwhile): folds everything it holds,
    /// makes it durable with one durable (empty) redb commit, which makes every commit
    /// before it durable, and starts the journal again.
    fn checkpoint(&self, db: &Database, journal: &mut Journal) -> StoreResult<()> {
        self.fold(db)?;
        db.begin_write().map_err(unavailable)?.commit().map_err(unavailable)?;
        journal.clear();
        Ok(())
    }
}

impl EmbeddedStore {
    /// Opens (creating if missing) `dir/switchboard.redb`, creating `dir` too, with redb's
    /// default cache.
    pub async fn open(dir: &Path) -> StoreResult<Self> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES).await
    }

    /// Opens (creating if missing) `dir/switchboard.redb` with a page cache of at most
    /// `cache_bytes`. An existing file must be a Switchboard store: an empty file, one
    /// that is not redb, a damaged one or another program's database is refused, never
    /// taken for a new store (that would create a fresh admin over someone's data).
    pub async fn open_with_cache(dir: &Path, cache_bytes: usize) -> StoreResult<Self> {
        let dir = dir.to_path_buf();
        blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| unavailable(format!("create {}: {e}", dir.display())))?;
            let path = dir.join(FILE_NAME);
            let mut builder = redb::Builder::new();
            builder.set_cache_size(cache_bytes);
            let db = match std::fs::metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => builder.create(&path),
                Err(e) => return Err(unavailable(format!("{}: {e}", path.display()))),
                Ok(m) if !m.is_file() => return Err(unavailable(format!("{} is not a file", path.display()))),
                Ok(m) if m.len() == 0 => {
                    return Err(unavailable(format!(
                        "{} is empty (0 bytes), not a Switchboard store; move it away to start a new store",
                        path.display()
                    )));
                }
                // Verify every page: a damaged file is refused instead of trusted (a plain
                // open of one may even panic). It costs one read of the file per start-up.
                Ok(_) => builder.set_check_integrity_on_open(true).open(&path),
            }
            .map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
            let mut db = db;
            let mut migrated_from = None;
            let tx = db.begin_write().map_err(unavailable)?;
            {
                // A file with tables but no schema version was written by something else.
                let foreign = tx.list_tables().map_err(unavailable)?.next().is_some();
                // Create every table up front so read transactions never meet a missing one.
                let mut meta = tx.open_table(META).map_err(unavailable)?;
                let version = meta.get("schema_version").map_err(unavailable)?.map(|v| v.value());
                match version {
                    None if foreign => {
                        return Err(unavailable(format!(
                            "{} holds tables but no Switchboard schema version: not a Switchboard store",
                            path.display()
                        )));
                    }
                    None => {
                        meta.insert("schema_version", SCHEMA_VERSION).map_err(unavailable)?;
                    }
                    Some(SCHEMA_VERSION) => {}
                    Some(SCHEMA_V3) => {
                        meta.insert("schema_version", SCHEMA_VERSION).map_err(unavailable)?;
                        tracing::info!(
                            "{} marked schema version {SCHEMA_VERSION} (was {SCHEMA_V3}): new message ids are stored as 16 bytes",
                            path.display()
                        );
                    }
                    Some(found @ (SCHEMA_V1 | SCHEMA_V2)) => {
                        // Version 2 dropped the message-id index (see the module comment),
                        // version 3 moved messages into the log.
                        meta.insert("schema_version", SCHEMA_VERSION).map_err(unavailable)?;
                        migrated_from = Some(found);
                    }
                    Some(other) => {
                        return Err(unavailable(format!(
                            "{FILE_NAME} has schema version {other}, this build reads {SCHEMA_VERSION}"
                        )));
                    }
                }
                tx.open_table(ACCOUNTS).map_err(unavailable)?;
                tx.open_table(ACCOUNTS_BY_USERNAME).map_err(unavailable)?;
                tx.open_table(CATEGORIES).map_err(unavailable)?;
                tx.open_table(CATEGORY_ORDER).map_err(unavailable)?;
                tx.open_table(CONVERSATIONS).map_err(unavailable)?;
                message_log::create_tables(&tx)?;
                tx.open_table(BY_PAIRED).map_err(unavailable)?;
                tx.open_table(BY_AGENT).map_err(unavailable)?;
                tx.open_table(BY_CATEGORY).map_err(unavailable)?;
                sessions::create_tables(&tx)?;
                // ---- rooms and 1-to-1 video (issue 16) ----
                rooms::create_tables(&tx)?;
                appointments::create_tables(&tx)?;
                outbox::create_tables(&tx)?;
                outbox::create_desk_tables(&tx)?;
            }
            if let Some(found) = migrated_from {
                if found == SCHEMA_V1 {
                    tx.delete_table(MESSAGE_IDS_V1).map_err(unavailable)?;
                }
                let moved = message_log::migrate_v2(&tx)?;
                tracing::info!(messages = moved, "moved archived messages into the message log");
            }
            tx.commit().map_err(unavailable)?;
            if let Some(found) = migrated_from {
                // Give the dropped tables' pages back to the file system, once.
                db.compact().map_err(unavailable)?;
                tracing::info!(
                    "{} migrated from schema version {found} to {SCHEMA_VERSION}",
                    path.display()
                );
            }
            let journals = replay_journals(&db, &dir)?;
            let (journal, spare) = journals;
            let db = Arc::new(db);
            let archiving = Arc::new(Archiving {
                journal: Mutex::new(journal),
                spare: Mutex::new(Some(Spare {
                    journal: spare,
                    checkpointed: true,
                })),
                spare_back: Condvar::new(),
                folding: Mutex::new(()),
                unfolded: Mutex::new(Vec::new()),
                fold_scheduled: AtomicBool::new(false),
            });
            let background = background::Background::start(db.clone(), archiving.clone())
                .map_err(|e| unavailable(format!("cannot start the archive's fold thread: {e}")))?;
            Ok(Self {
                db,
                archiving,
                background: Arc::new(background),
            })
        })
        .await
    }

    /// Runs `f` in one write transaction on the blocking pool; commits only if `f` succeeds.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (db, archiving) = (self.db.clone(), self.archiving.clone());
        blocking(move || {
            archiving.fold(&db)?;
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
        })
        .await
    }

    /// Runs `f` in one read transaction (a consistent snapshot) on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (db, archiving) = (self.db.clone(), self.archiving.clone());
        blocking(move || {
            // A read sees every archived event: those still held are folded in first.
            archiving.fold(&db)?;
            let tx = db.begin_read().map_err(unavailable)?;
            f(&tx)
        })
        .await
    }
}

/// The first bytes of every redb file (redb's own header magic, PNG-style).
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Is `file` a redb file at all? Reads its first bytes only, so `check-config` can tell a
/// stray or random file from a store without opening (and locking) it.
pub fn check_header(file: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut head = [0u8; REDB_MAGIC.len()];
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if head == REDB_MAGIC {
        Ok(())
    } else {
        Err(format!("{} is not a redb file", file.display()))
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> StoreResult<T> + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("storage task failed: {e}")))?
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {e}"))
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(unavailable)
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| unavailable(format!("corrupt record: {e}")))
}

// ---- private mirrors of the model types: the on-disk format ----

#[derive(Serialize, Deserialize)]
struct CategoryRec {
    id: String,
    name: String,
    /// Creation position; the key of its `category_order` row.
    pos: u64,
}

#[derive(Serialize, Deserialize)]
struct OpenedRec {
    id: String,
    kind: ConversationKind,
    category: Option<String>,
    customer_name: String,
    agent_id: String,
    agent_name: String,
    queued_at: Millis,
    paired_at: Millis,
}

#[derive(Serialize, Deserialize)]
struct ConversationRec {
    opened: OpenedRec,
    closed: Option<ClosedRecord>,
}

impl ConversationRec {
    fn new(o: &ConversationOpened) -> Self {
        Self {
            opened: OpenedRec {
                id: o.id.clone(),
                kind: o.kind,
                category: o.category.clone(),
                customer_name: o.customer_name.clone(),
                agent_id: o.agent_id.clone(),
                agent_name: o.agent_name.clone(),
                queued_at: o.queued_at,
                paired_at: o.paired_at,
            },
            closed: None,
        }
    }

    fn opened(&self) -> ConversationOpened {
        let o = &self.opened;
        ConversationOpened {
            id: o.id.clone(),
            kind: o.kind,
            category: o.category.clone(),
            customer_name: o.customer_name.clone(),
            agent_id: o.agent_id.clone(),
            agent_name: o.agent_name.clone(),
            queued_at: o.queued_at,
            paired_at: o.paired_at,
        }
    }

    fn closed(&self) -> Option<ConversationClosed> {
        self.closed.as_ref().map(|c| c.of(&self.opened.id))
    }
}

// ---- transaction bodies ----

fn get_account<T: ReadableTable<&'static str, &'static [u8]>>(table: &T, id: &str) -> StoreResult<Account> {
    let guard = table.get(id).map_err(unavailable)?.ok_or(StoreError::NotFound)?;
    Ok(decode::<AccountRecord>(guard.value())?.into())
}

fn load_record<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    id: &str,
) -> StoreResult<Option<ConversationRec>> {
    match table.get(id).map_err(unavailable)? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

fn apply(tx: &redb::WriteTransaction, batch: &[ArchiveEvent]) -> StoreResult<()> {
    let mut conversations = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
    let mut messages = message_log::Writer::open(tx)?;
    let mut by_paired = tx.open_table(BY_PAIRED).map_err(unavailable)?;
    let mut by_agent = tx.open_table(BY_AGENT).map_err(unavailable)?;
    let mut by_category = tx.open_table(BY_CATEGORY).map_err(unavailable)?;
    // Each conversation's kept messages of the batch, appended together after the batch's
    // openings and closings, in seq order: they take consecutive log positions, one index
    // run (see [`message_log`]). Only the order across conversations changes, which
    // nothing reads (as in the journal's replay).
    let mut grouped: Vec<(&str, Vec<&ArchivedMessage>)> = Vec::new();
    let mut group_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for event in batch {
        match event {
            ArchiveEvent::Opened(opened) => {
                if conversations.get(opened.id.as_str()).map_err(unavailable)?.is_some() {
                    continue; // first opening wins, as in the reference store
                }
                let rec = ConversationRec::new(opened);
                conversations
                    .insert(opened.id.as_str(), encode(&rec)?.as_slice())
                    .map_err(unavailable)?;
                let id = opened.id.as_str();
                messages.number(id)?;
                by_paired.insert((opened.paired_at, id), ()).map_err(unavailable)?;
                by_agent
                    .insert((opened.agent_id.as_str(), opened.paired_at, id), ())
                    .map_err(unavailable)?;
                if let Some(category) = &opened.category {
                    by_category
                        .insert((category.as_str(), opened.paired_at, id), ())
                        .map_err(unavailable)?;
                }
            }
            ArchiveEvent::Message {
                conversation_id,
                message,
            } => {
                let conv = conversation_id.as_str();
                // Looked up once per conversation and batch, not per message: it is stored
                // from its opening on (below, or an earlier batch) and never removed.
                let group = match group_of.get(conv) {
                    Some(group) => *group,
                    None => {
                        if conversations.get(conv).map_err(unavailable)?.is_none() {
                            continue; // a message for an unknown conversation is dropped, as in the reference store
                        }
                        grouped.push((conv, Vec::new()));
                        group_of.insert(conv, grouped.len() - 1);
                        grouped.len() - 1
                    }
                };
                grouped[group].1.push(message);
            }
            ArchiveEvent::Closed(closed) => {
                let Some(mut rec) = load_record(&conversations, &closed.id)? else {
                    continue;
                };
                if rec.closed.is_some() {
                    continue; // the first close wins
                }
                rec.closed = Some(ClosedRecord::from(closed));
                conversations
                    .insert(closed.id.as_str(), encode(&rec)?.as_slice())
                    .map_err(unavailable)?;
            }
        }
    }
    for (conv, mut group) in grouped {
        group.sort_by_key(|message| message.seq); // stable: of one seq, the first wins
        let number = messages.number(conv)?;
        // Idempotent: a seq already taken is a retry (a seq names one message).
        messages.append_sorted(number, &group)?;
    }
    messages.finish()
}

/// Locks one of the archive's mutexes. A panic while holding one leaves its data usable:
/// the journal holds whole records only, and events are applied idempotently.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Opens the two archive journals in `dir` and applies what a previous process left in
/// them (it stopped or crashed before redb's next durable commit) in one durable commit.
/// Which journal is older is not recorded, so their events are applied openings first,
/// then messages, then closings: a message is never met before its conversation, and
/// within each kind the order does not matter (events apply idempotently by their ids).
fn replay_journals(db: &Database, dir: &Path) -> StoreResult<(Journal, Journal)> {
    let (mut journal, mut events) = Journal::open(dir).map_err(unavailable)?;
    let (mut second, more) = Journal::open_file(dir, journal::SECOND_FILE_NAME).map_err(unavailable)?;
    events.extend(more);
    events.sort_by_key(|event| match event {
        ArchiveEvent::Opened(_) => 0,
        ArchiveEvent::Message { .. } => 1,
        ArchiveEvent::Closed(_) => 2,
    });
    if !events.is_empty() {
        tracing::info!(
            events = events.len(),
            "replaying the archive journal into the embedded store"
        );
        let tx = db.begin_write().map_err(unavailable)?;
        apply(&tx, &events)?;
        tx.commit().map_err(unavailable)?;
    }
    journal.clear();
    second.clear();
    Ok((journal, second))
}

/// Walks an index newest first, yielding conversation ids in `[from, to)` of paired time.
fn list_ids(tx: &redb::ReadTransaction, filter: &ConversationFilter) -> StoreResult<Vec<(String, bool)>> {
    // (id, needs a record check for the filters the chosen index does not cover)
    let from = filter.from.unwrap_or(i64::MIN);
    // paired_at == i64::MAX cannot occur for real millisecond times; it is the open upper end.
    let to = filter.to.unwrap_or(i64::MAX);
    if from >= to {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    if let Some(agent) = &filter.agent_id {
        let table = tx.open_table(BY_AGENT).map_err(unavailable)?;
        let range = (
            Bound::Included((agent.as_str(), from, "")),
            Bound::Excluded((agent.as_str(), to, "")),
        );
        let recheck = filter.category.is_some();
        for row in table.range::<(&str, i64, &str)>(range).map_err(unavailable)?.rev() {
            let (key, _) = row.map_err(unavailable)?;
            out.push((key.value().2.to_string(), recheck));
        }
    } else if let Some(category) = &filter.category {
        let table = tx.open_table(BY_CATEGORY).map_err(unavailable)?;
        let range = (
            Bound::Included((category.as_str(), from, "")),
            Bound::Excluded((category.as_str(), to, "")),
        );
        for row in table.range::<(&str, i64, &str)>(range).map_err(unavailable)?.rev() {
            let (key, _) = row.map_err(unavailable)?;
            out.push((key.value().2.to_string(), false));
        }
    } else {
        let table = tx.open_table(BY_PAIRED).map_err(unavailable)?;
        let range = (Bound::Included((from, "")), Bound::Excluded((to, "")));
        for row in table.range::<(i64, &str)>(range).map_err(unavailable)?.rev() {
            let (key, _) = row.map_err(unavailable)?;
            out.push((key.value().1.to_string(), false));
        }
    }
    Ok(out)
}

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|tx| {
            tx.open_table(META).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn create_account(&self, account: Account) -> StoreResult<()> {
        self.write(move |tx| {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(unavailable)?;
            let mut by_username = tx.open_table(ACCOUNTS_BY_USERNAME).map_err(unavailable)?;
            if accounts.get(account.id.as_str()).map_err(unavailable)?.is_some()
                || by_username
                    .get(account.username.as_str())
                    .map_err(unavailable)?
                    .is_some()
            {
                return Err(StoreError::Conflict);
            }
            accounts
                .insert(account.id.as_str(), encode(&AccountRecord::from(&account))?.as_slice())
                .map_err(unavailable)?;
            by_username
                .insert(account.username.as_str(), account.id.as_str())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn update_account(&self, account: Account) -> StoreResult<()> {
        self.write(move |tx| {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(unavailable)?;
            let mut by_username = tx.open_table(ACCOUNTS_BY_USERNAME).map_err(unavailable)?;
            if let Some(owner) = by_username.get(account.username.as_str()).map_err(unavailable)?
                && owner.value() != account.id
            {
                return Err(StoreError::Conflict);
            }
            let old = get_account(&accounts, &account.id)?;
            if old.username != account.username {
                by_username.remove(old.username.as_str()).map_err(unavailable)?;
                by_username
                    .insert(account.username.as_str(), account.id.as_str())
                    .map_err(unavailable)?;
            }
            accounts
                .insert(account.id.as_str(), encode(&AccountRecord::from(&account))?.as_slice())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn account(&self, id: &str) -> StoreResult<Account> {
        let id = id.to_string();
        self.read(move |tx| get_account(&tx.open_table(ACCOUNTS).map_err(unavailable)?, &id))
            .await
    }

    async fn account_by_username(&self, username: &str) -> StoreResult<Account> {
        let username = username.to_string();
        self.read(move |tx| {
            let by_username = tx.open_table(ACCOUNTS_BY_USERNAME).map_err(unavailable)?;
            let id = by_username
                .get(username.as_str())
                .map_err(unavailable)?
                .ok_or(StoreError::NotFound)?
                .value()
                .to_string();
            get_account(&tx.open_table(ACCOUNTS).map_err(unavailable)?, &id)
        })
        .await
    }

    async fn accounts(&self) -> StoreResult<Vec<Account>> {
        self.read(|tx| {
            let accounts = tx.open_table(ACCOUNTS).map_err(unavailable)?;
            let mut out: Vec<Account> = Vec::with_capacity(accounts.len().map_err(unavailable)? as usize);
            for row in accounts.iter().map_err(unavailable)? {
                let (_, value) = row.map_err(unavailable)?;
                out.push(decode::<AccountRecord>(value.value())?.into());
            }
            // Oldest first, like the reference store's insertion order (ties by id).
            out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
            Ok(out)
        })
        .await
    }

    async fn categories(&self) -> StoreResult<Vec<Category>> {
        self.read(|tx| {
            let order = tx.open_table(CATEGORY_ORDER).map_err(unavailable)?;
            let categories = tx.open_table(CATEGORIES).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in order.iter().map_err(unavailable)? {
                let (_, id) = row.map_err(unavailable)?;
                let guard = categories
                    .get(id.value())
                    .map_err(unavailable)?
                    .ok_or_else(|| unavailable("category index out of step"))?;
                let rec: CategoryRec = decode(guard.value())?;
                out.push(Category {
                    id: rec.id,
                    name: rec.name,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn create_category(&self, category: Category) -> StoreResult<()> {
        self.write(move |tx| {
            let mut categories = tx.open_table(CATEGORIES).map_err(unavailable)?;
            if categories.get(category.id.as_str()).map_err(unavailable)?.is_some() {
                return Err(StoreError::Conflict);
            }
            let mut meta = tx.open_table(META).map_err(unavailable)?;
            let pos = meta
                .get(NEXT_CATEGORY_POS)
                .map_err(unavailable)?
                .map(|v| v.value())
                .unwrap_or(0);
            meta.insert(NEXT_CATEGORY_POS, pos + 1).map_err(unavailable)?;
            let rec = CategoryRec {
                id: category.id.clone(),
                name: category.name,
                pos,
            };
            categories
                .insert(category.id.as_str(), encode(&rec)?.as_slice())
                .map_err(unavailable)?;
            tx.open_table(CATEGORY_ORDER)
                .map_err(unavailable)?
                .insert(pos, category.id.as_str())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn rename_category(&self, id: &str, name: &str) -> StoreResult<()> {
        let (id, name) = (id.to_string(), name.to_string());
        self.write(move |tx| {
            let mut categories = tx.open_table(CATEGORIES).map_err(unavailable)?;
            let mut rec: CategoryRec = {
                let guard = categories
                    .get(id.as_str())
                    .map_err(unavailable)?
                    .ok_or(StoreError::NotFound)?;
                decode(guard.value())?
            };
            rec.name = name;
            categories
                .insert(id.as_str(), encode(&rec)?.as_slice())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn delete_category(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |tx| {
            let mut categories = tx.open_table(CATEGORIES).map_err(unavailable)?;
            let rec: CategoryRec = {
                let guard = categories
                    .remove(id.as_str())
                    .map_err(unavailable)?
                    .ok_or(StoreError::NotFound)?;
                decode(guard.value())?
            };
            tx.open_table(CATEGORY_ORDER)
                .map_err(unavailable)?
                .remove(rec.pos)
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn archive(&self, batch: &[ArchiveEvent]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let batch = batch.to_vec();
        let (db, archiving) = (self.db.clone(), self.archiving.clone());
        let (fold_now, full) = blocking(move || {
            let mut journal = lock(&archiving.journal);
            let mut full = None;
            if journal.len() >= journal::CHECKPOINT_BYTES {
                // Waits only if the other journal's checkpoint is still running.
                let mut spare = archiving.take_spare();
                if spare.checkpointed {
                    full = Some(std::mem::replace(&mut *journal, spare.journal));
                } else {
                    // Its checkpoint failed: one durable commit now covers both journals.
                    let done = archiving.checkpoint(&db, &mut journal);
                    if done.is_ok() {
                        spare.journal.clear();
                        spare.checkpointed = true;
                    }
                    *lock(&archiving.spare) = Some(spare);
                    done?;
                }
            }
            // Durable from here: the archive acknowledges the batch once this returns.
            journal.append(&batch).map_err(unavailable)?;
            let mut unfolded = lock(&archiving.unfolded);
            unfolded.extend(batch);
            let fold_now = unfolded.len() >= FOLD_EVENTS && !archiving.fold_scheduled.swap(true, Ordering::Relaxed);
            Ok((fold_now, full))
        })
        .await?;
        // Off the acknowledgement's path (the batch is durable already), on the niced
        // thread: appends go on in the other journal meanwhile.
        if let Some(full) = full {
            self.background
                .send(background::Job::Retire(full), &self.db, &self.archiving);
        } else if fold_now {
            self.background.send(background::Job::Fold, &self.db, &self.archiving);
        }
        Ok(())
    }

    async fn conversations(&self, filter: &ConversationFilter, page: Page) -> StoreResult<(Vec<Conversation>, u64)> {
        let filter = filter.clone();
        self.read(move |tx| {
            let conversations = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
            let mut total = 0u64;
            let mut hits = Vec::new();
            for (id, recheck) in list_ids(tx, &filter)? {
                let in_page = total >= page.offset && (hits.len() as u64) < page.limit;
                if recheck || in_page {
                    let Some(rec) = load_record(&conversations, &id)? else {
                        continue;
                    };
                    if recheck && !super::memory::matches(&filter, &rec.opened()) {
                        continue;
                    }
                    if in_page {
                        hits.push(rec);
                    }
                }
                total += 1;
            }
            let mut out = Vec::with_capacity(hits.len());
            for rec in hits {
                let messages = message_log::load(tx, &rec.opened.id)?;
                out.push(Conversation {
                    opened: rec.opened(),
                    closed: rec.closed(),
                    messages,
                });
            }
            Ok((out, total))
        })
        .await
    }

    async fn conversation(&self, id: &str) -> StoreResult<Conversation> {
        let id = id.to_string();
        self.read(move |tx| {
            let conversations = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
            let rec = load_record(&conversations, &id)?.ok_or(StoreError::NotFound)?;
            let messages = message_log::load(tx, &id)?;
            Ok(Conversation {
                opened: rec.opened(),
                closed: rec.closed(),
                messages,
            })
        })
        .await
    }

    // ---- sessions in the shared store (issue 15): in `embedded/sessions.rs` ----
    async fn create_session(&self, session: StoredSession) -> StoreResult<()> {
        self.insert_session(session).await
    }

    async fn session(&self, id: &str) -> StoreResult<StoredSession> {
        self.find_session(id).await
    }

    async fn delete_session(&self, id: &str) -> StoreResult<bool> {
        self.remove_session(id).await
    }

    async fn delete_sessions_of(&self, account_id: &str) -> StoreResult<Vec<String>> {
        self.remove_sessions_of(account_id).await
    }

    async fn sweep_sessions(&self, now: Millis) -> StoreResult<u64> {
        self.sweep_expired_sessions(now).await
    }

    // ---- rooms and 1-to-1 video (issue 16) ----
    async fn create_room(&self, room: Room) -> StoreResult<()> {
        self.rooms_create(room).await
    }

    async fn room(&self, id: &str) -> StoreResult<Room> {
        self.rooms_get(id).await
    }

    async fn open_room_of(&self, agent_id: &str) -> StoreResult<Option<Room>> {
        self.rooms_open_of(agent_id).await
    }

    async fn update_room(&self, room: Room) -> StoreResult<Room> {
        self.rooms_update(room).await
    }

    async fn guest_for(&self, guest: Guest) -> StoreResult<Guest> {
        self.rooms_guest_for(guest).await
    }

    async fn save_call_log(&self, log: CallLog) -> StoreResult<()> {
        self.rooms_save_call_log(log).await
    }

    async fn call_logs(&self, agent_id: Option<&str>, page: Page) -> StoreResult<(Vec<CallLog>, u64)> {
        self.rooms_call_logs(agent_id, page).await
    }

    // ---- appointments (issue 17): in `embedded/appointments.rs` ----
    async fn book_appointment(&self, appointment: Appointment) -> StoreResult<()> {
        self.insert_appointment(appointment).await
    }

    async fn appointment(&self, id: &str) -> StoreResult<Appointment> {
        self.find_appointment(id).await
    }

    async fn appointment_by_token(&self, token_hash: &str) -> StoreResult<Appointment> {
        self.find_appointment_by_token(token_hash).await
    }

    async fn cancel_appointment(&self, id: &str, at: Millis) -> StoreResult<Cancellation> {
        self.mark_appointment_cancelled(id, at).await
    }

    async fn appointments(
        &self,
        from: Millis,
        to: Millis,
        representative: Option<&str>,
    ) -> StoreResult<Vec<Appointment>> {
        self.appointments_between(from, to, representative).await
    }

    // ---- appointment mail outbox (issue 17): in `embedded/outbox.rs` ----
    async fn book_appointment_with_mail(&self, appointment: Appointment, mail: OutboxMail) -> StoreResult<()> {
        self.book_with_mail(appointment, mail).await
    }

    async fn cancel_appointment_with_mail(&self, id: &str, at: Millis, mail: OutboxMail) -> StoreResult<Cancellation> {
        self.cancel_with_mail(id, at, mail).await
    }

    async fn claim_mails(
        &self,
        node: &str,
        now: Millis,
        claim_until: Millis,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>> {
        self.claim_due_mails(node, now, claim_until, limit).await
    }

    async fn finish_mail(&self, id: &str, node: &str, outcome: MailOutcome) -> StoreResult<bool> {
        self.finish_claimed_mail(id, node, outcome).await
    }

    async fn mail(&self, id: &str) -> StoreResult<OutboxMail> {
        self.find_mail(id).await
    }

    async fn mails(&self, status: Option<MailStatus>, page: Page) -> StoreResult<(Vec<OutboxMail>, u64)> {
        self.list_mails(status, page).await
    }

    // ---- desk settings (issue 17): in `embedded/outbox.rs` ----
    async fn desk_setting(&self, key: &str) -> StoreResult<Option<String>> {
        self.read_desk_setting(key).await
    }

    async fn set_desk_setting(&self, key: &str, value: Option<String>) -> StoreResult<()> {
        self.write_desk_setting(key, value).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Several journal checkpoints (each a durable redb commit, then the journal starting
    /// again in place) lose nothing, read back at once and after a reopen.
    #[tokio::test]
    async fn archive_across_journal_checkpoints_reads_back_whole() {
        let dir = Scratch(std::env::temp_dir().join(format!("switchboard-ckpt-{}", uuid::Uuid::new_v4().simple())));
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        let opened = ArchiveEvent::Opened(ConversationOpened {
            id: "c".into(),
            kind: ConversationKind::Service,
            category: None,
            customer_name: "Carla".into(),
            agent_id: "ann".into(),
            agent_name: "Ann".into(),
            queued_at: 1,
            paired_at: 1,
        });
        store.archive(&[opened]).await.unwrap();
        // ~1.1 KB a message: 4 MiB (a checkpoint) every ~3,800.
        let total = 12_000u64;
        for first in (1..=total).step_by(500) {
            let batch: Vec<ArchiveEvent> = (first..first + 500)
                .map(|seq| ArchiveEvent::Message {
                    conversation_id: "c".into(),
                    message: ArchivedMessage {
                        id: format!("m{seq}"),
                        seq,
                        from: Side::Customer,
                        text: "x".repeat(1_000),
                        at: seq as Millis,
                    },
                })
                .collect();
            store.archive(&batch).await.unwrap();
        }
        assert_eq!(store.conversation("c").await.unwrap().messages.len() as u64, total);
        drop(store);
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        let seqs: Vec<u64> = store
            .conversation("c")
            .await
            .unwrap()
            .messages
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "after a reopen");
    }

    /// A crash while one journal was being checkpointed leaves events in both, the
    /// conversation's opening possibly in the file that looks newer: the replay applies
    /// openings first, so no message is dropped as one of an unknown conversation.
    #[tokio::test]
    async fn both_journals_are_replayed_openings_first() {
        let dir = Scratch(std::env::temp_dir().join(format!("switchboard-two-{}", uuid::Uuid::new_v4().simple())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let opened = ArchiveEvent::Opened(ConversationOpened {
            id: "c".into(),
            kind: ConversationKind::Service,
            category: None,
            customer_name: "Carla".into(),
            agent_id: "ann".into(),
            agent_name: "Ann".into(),
            queued_at: 1,
            paired_at: 1,
        });
        let message = |seq: u64| ArchiveEvent::Message {
            conversation_id: "c".into(),
            message: ArchivedMessage {
                id: format!("m{seq}"),
                seq,
                from: Side::Customer,
                text: format!("text {seq}"),
                at: seq as Millis,
            },
        };
        {
            let (mut first, _) = Journal::open(&dir.0).unwrap();
            first.append(&[message(2)]).unwrap();
            let (mut second, _) = Journal::open_file(&dir.0, journal::SECOND_FILE_NAME).unwrap();
            second.append(&[opened, message(1)]).unwrap();
        }
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        let seqs: Vec<u64> = store
            .conversation("c")
            .await
            .unwrap()
            .messages
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(seqs, [1, 2]);
    }

    /// Writes ~5 MB of archive through a store with `cache_bytes` of page cache, reads it
    /// all back, and returns how many pages the cache evicted.
    async fn evictions_after_a_long_run(cache_bytes: usize) -> u64 {
        let dir = Scratch(std::env::temp_dir().join(format!("switchboard-cache-{}", uuid::Uuid::new_v4().simple())));
        let store = EmbeddedStore::open_with_cache(&dir.0, cache_bytes).await.unwrap();
        for c in 0..20 {
            let id = format!("conversation-{c}");
            let mut batch = vec![ArchiveEvent::Opened(ConversationOpened {
                id: id.clone(),
                kind: ConversationKind::Service,
                category: Some("general".into()),
                customer_name: "Carla".into(),
                agent_id: "ann".into(),
                agent_name: "Ann".into(),
                queued_at: c,
                paired_at: c,
            })];
            batch.extend((1..=500).map(|seq| ArchiveEvent::Message {
                conversation_id: id.clone(),
                message: ArchivedMessage {
                    id: uuid::Uuid::now_v7().to_string(),
                    seq,
                    from: Side::Customer,
                    text: "x".repeat(100),
                    at: seq as Millis,
                },
            }));
            store.archive(&batch).await.unwrap();
        }
        for c in 0..20 {
            let read = store.conversation(&format!("conversation-{c}")).await.unwrap();
            assert_eq!(read.messages.len(), 500);
        }
        store.db.cache_stats().evictions()
    }

    /// A version 1 file (with the message-id table) and a version 2 file (messages keyed
    /// by conversation, binary or JSON values) are migrated on open: the old tables are
    /// gone, every message reads as before, retries still do not duplicate.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn version_1_and_2_files_are_migrated() {
        for old_version in [SCHEMA_V1, SCHEMA_V2] {
            let dir = Scratch(
                std::env::temp_dir().join(format!("switchboard-v{old_version}-{}", uuid::Uuid::new_v4().simple())),
            );
            let opened = ArchiveEvent::Opened(ConversationOpened {
                id: "c1".into(),
                kind: ConversationKind::Service,
                category: None,
                customer_name: "Carla".into(),
                agent_id: "ann".into(),
                agent_name: "Ann".into(),
                queued_at: 1,
                paired_at: 2,
            });
            let message = |seq: u64| ArchivedMessage {
                id: format!("m{seq}"),
                seq,
                from: Side::Agent,
                text: format!("text {seq}"),
                at: 3,
            };
            let event = |seq: u64| ArchiveEvent::Message {
                conversation_id: "c1".into(),
                message: message(seq),
            };
            {
                let store = EmbeddedStore::open(&dir.0).await.unwrap();
                store.archive(&[opened]).await.unwrap();
                store.conversation("c1").await.unwrap();
                // Make it what that version wrote: its version number, its message rows
                // (m1 binary, m2 JSON as before issue 14) and, for version 1, message-id rows.
                let tx = store.db.begin_write().unwrap();
                {
                    tx.open_table(META)
                        .unwrap()
                        .insert("schema_version", old_version)
                        .unwrap();
                    tx.delete_table(message_log::LOG).unwrap();
                    tx.delete_table(message_log::INDEX).unwrap();
                    tx.delete_table(message_log::NUMBERS).unwrap();
                    let mut rows = tx.open_table(message_log::MESSAGES_V2).unwrap();
                    rows.insert(("c1", 1, "m1"), message_value::encode(&message(1)).as_slice())
                        .unwrap();
                    let json = serde_json::to_vec(&super::super::record::MessageRecord::from(&message(2))).unwrap();
                    rows.insert(("c1", 2, "m2"), json.as_slice()).unwrap();
                    if old_version == SCHEMA_V1 {
                        let mut ids = tx.open_table(MESSAGE_IDS_V1).unwrap();
                        ids.insert(("c1", "m1"), 1).unwrap();
                        ids.insert(("c1", "m2"), 2).unwrap();
                    }
                }
                tx.commit().unwrap();
            }
            let store = EmbeddedStore::open(&dir.0).await.unwrap();
            let tx = store.db.begin_read().unwrap();
            let version = tx
                .open_table(META)
                .unwrap()
                .get("schema_version")
                .unwrap()
                .unwrap()
                .value();
            assert_eq!(version, SCHEMA_VERSION);
            assert!(
                tx.open_table(MESSAGE_IDS_V1).is_err(),
                "the message-id table is dropped"
            );
            assert!(
                tx.open_table(message_log::MESSAGES_V2).is_err(),
                "the old messages table is dropped"
            );
            drop(tx);
            assert_eq!(
                store.conversation("c1").await.unwrap().messages,
                [message(1), message(2)],
                "version {old_version}"
            );
            store.archive(&[event(2), event(3), event(2)]).await.unwrap();
            let seqs: Vec<u64> = store
                .conversation("c1")
                .await
                .unwrap()
                .messages
                .iter()
                .map(|m| m.seq)
                .collect();
            assert_eq!(seqs, [1, 2, 3], "version {old_version}");
        }
    }

    /// Schema 4 stores the hub's message ids as 16 bytes (`message_log`): a version 3 file
    /// (ids as text) is marked 4 on open and reads as before, its records unchanged, and
    /// new messages go beside them. A build reading 4 refuses a newer file, naming both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_3_file_is_marked_4_and_a_newer_one_is_refused() {
        let dir = Scratch(std::env::temp_dir().join(format!("switchboard-v3-{}", uuid::Uuid::new_v4().simple())));
        let opened = ArchiveEvent::Opened(ConversationOpened {
            id: "c1".into(),
            kind: ConversationKind::Service,
            category: None,
            customer_name: "Carla".into(),
            agent_id: "ann".into(),
            agent_name: "Ann".into(),
            queued_at: 1,
            paired_at: 2,
        });
        let message = |seq: u64| ArchivedMessage {
            id: uuid::Uuid::now_v7().hyphenated().to_string(),
            seq,
            from: Side::Agent,
            text: format!("text {seq}"),
            at: 3,
        };
        let (first, second) = (message(1), message(2));
        let version_of = |store: &EmbeddedStore| {
            let tx = store.db.begin_read().unwrap();
            let meta = tx.open_table(META).unwrap();
            meta.get("schema_version").unwrap().unwrap().value()
        };
        {
            let store = EmbeddedStore::open(&dir.0).await.unwrap();
            store.archive(&[opened]).await.unwrap();
            store.conversation("c1").await.unwrap();
            // What version 3 wrote: the id as text (a 0x02 record).
            let tx = store.db.begin_write().unwrap();
            {
                tx.open_table(META).unwrap().insert("schema_version", 3).unwrap();
                let mut text_record = Vec::new();
                text_record.push(0x02);
                text_record.push(message_value::side_byte(first.from));
                text_record.extend_from_slice(&first.at.to_le_bytes());
                text_record.extend_from_slice(&(first.id.len() as u16).to_le_bytes());
                text_record.extend_from_slice(first.id.as_bytes());
                text_record.extend_from_slice(first.text.as_bytes());
                let number = tx
                    .open_table(message_log::NUMBERS)
                    .unwrap()
                    .get("c1")
                    .unwrap()
                    .unwrap()
                    .value();
                tx.open_table(message_log::LOG)
                    .unwrap()
                    .insert(0, text_record.as_slice())
                    .unwrap();
                tx.open_table(message_log::INDEX)
                    .unwrap()
                    .insert((number, 1), (0, 1))
                    .unwrap();
                tx.open_table(META).unwrap().insert("next_message_position", 1).unwrap();
            }
            tx.commit().unwrap();
        }
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        assert_eq!(version_of(&store), 4);
        store
            .archive(&[ArchiveEvent::Message {
                conversation_id: "c1".into(),
                message: second.clone(),
            }])
            .await
            .unwrap();
        assert_eq!(store.conversation("c1").await.unwrap().messages, [first, second]);
        let tx = store.db.begin_write().unwrap();
        tx.open_table(META).unwrap().insert("schema_version", 5).unwrap();
        tx.commit().unwrap();
        drop(store);
        let refused = EmbeddedStore::open(&dir.0)
            .await
            .err()
            .expect("a newer file is refused")
            .to_string();
        assert!(refused.contains("schema version 5, this build reads 4"), "{refused}");
    }

    /// Bytes per archived message on a run shaped like the benchmark's: 100 chats
    /// interleaved, 100-byte texts, batches as the archive writer makes them, 100,000
    /// messages, measured after a checkpoint (a reopen). With one row per message keyed by
    /// conversation (schema 2) leaves split half full: 382 B of pages and a 64 MiB file
    /// (673 B) a message. With the log (schema 3) pages took 169 B a message and the file
    /// 336 B (32 MiB: redb grows a file by doubling it up to 4 GiB, so the file is up to
    /// twice the pages in use plus those freed since the last durable commit). With the
    /// UUID ids as 16 bytes (schema 4) rows take 135 B, pages 145 B and the file 168 B
    /// (16 MiB); pages must stay within 160 B a message, rows within 150, the file within
    /// 400. The two journals are a fixed 16 MiB beside it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_archived_message_takes_a_bounded_share_of_the_file() {
        let dir = Scratch(std::env::temp_dir().join(format!("switchboard-size-{}", uuid::Uuid::new_v4().simple())));
        let store = EmbeddedStore::open_with_cache(&dir.0, 16 << 20).await.unwrap();
        let chats = 100u64;
        let opened: Vec<ArchiveEvent> = (0..chats)
            .map(|c| {
                ArchiveEvent::Opened(ConversationOpened {
                    id: uuid::Uuid::now_v7().to_string(),
                    kind: ConversationKind::Service,
                    category: Some("general".into()),
                    customer_name: format!("Customer {c}"),
                    agent_id: uuid::Uuid::now_v7().to_string(),
                    agent_name: format!("Agent {c}"),
                    queued_at: c as Millis,
                    paired_at: c as Millis,
                })
            })
            .collect();
        let ids: Vec<String> = opened
            .iter()
            .map(|e| match e {
                ArchiveEvent::Opened(o) => o.id.clone(),
                _ => unreachable!(),
            })
            .collect();
        store.archive(&opened).await.unwrap();
        let per_chat = 1_000u64;
        let mut batch = Vec::new();
        for seq in 1..=per_chat {
            for id in &ids {
                batch.push(ArchiveEvent::Message {
                    conversation_id: id.clone(),
                    message: ArchivedMessage {
                        id: uuid::Uuid::now_v7().to_string(),
                        seq,
                        from: if seq % 2 == 0 { Side::Agent } else { Side::Customer },
                        text: "x".repeat(100),
                        at: 1_795_279_801_122 + seq as Millis,
                    },
                });
            }
            if batch.len() >= 200 {
                store.archive(&batch).await.unwrap();
                batch.clear();
            }
        }
        store.archive(&batch).await.unwrap();
        drop(store);
        // Reopened: everything in redb, as after a stop (once a background fold let go of it).
        let mut reopened = EmbeddedStore::open(&dir.0).await;
        for _ in 0..100 {
            if reopened.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            reopened = EmbeddedStore::open(&dir.0).await;
        }
        let store = reopened.unwrap();
        assert_eq!(
            store.conversation(&ids[7]).await.unwrap().messages.len() as u64,
            per_chat
        );
        let stats = store.db.begin_write().unwrap().stats().unwrap();
        drop(store);
        let messages = chats * per_chat;
        let file = std::fs::metadata(dir.0.join(FILE_NAME)).unwrap().len();
        let directory: u64 = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|entry| entry.unwrap().metadata().unwrap().len())
            .sum();
        eprintln!(
            "{messages} messages: rows {} B, pages {} B ({} leaf, {} branch), file {} B, directory {} B a message",
            stats.stored_bytes() / messages,
            stats.allocated_pages() * stats.page_size() as u64 / messages,
            stats.leaf_pages(),
            stats.branch_pages(),
            file / messages,
            directory / messages
        );
        const FILE_BYTES_PER_MESSAGE: u64 = 400;
        let per_message = file / messages;
        assert!(
            per_message <= FILE_BYTES_PER_MESSAGE,
            "{per_message} bytes of file a message"
        );
        let rows = stats.stored_bytes() / messages;
        assert!(rows <= 150, "{rows} bytes of rows a message");
        let pages = stats.allocated_pages() * stats.page_size() as u64 / messages;
        assert!(pages <= 160, "{pages} bytes of pages a message");
    }

    /// `EMBEDDED_CACHE_MB` bounds redb's page cache: with 1 MiB the cache gives pages back
    /// while a long run writes and reads; with redb's default (1 GiB, what the hub used
    /// before the setting) it keeps every page it ever touched.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_page_cache_is_bounded_by_the_setting() {
        assert!(
            evictions_after_a_long_run(1 << 20).await > 0,
            "a 1 MiB cache evicted nothing"
        );
        assert_eq!(evictions_after_a_long_run(DEFAULT_CACHE_BYTES).await, 0);
    }
}
