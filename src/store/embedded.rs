//! The embedded on-disk store: the zero-config default, one redb file
//! (`switchboard.redb`) in the data directory.
//!
//! Why it is built this way:
//! - redb is a pure-Rust, crash-safe (copy-on-write B-trees, atomic commits)
//!   key-value store with no server to run, which is what "zero-config" asks for.
//!   Its API is synchronous, so every transaction runs on tokio's blocking pool
//!   (`spawn_blocking`) and never stalls the async workers or holds a lock
//!   across the caller's `.await`.
//! - A durable redb commit is the expensive part (it copies and checksums every page it
//!   touches, then fsyncs). So `archive` makes a batch durable by writing it to the
//!   archive journal (`archive-journal.log`, one `fdatasync`, see [`super::journal`])
//!   and folds 4,000 to 16,000 events at a time (more when they spread over many
//!   conversations) into redb in one non-durable commit; every ~16,000 messages one
//!   durable redb commit makes them permanent and the journal starts again, and opening
//!   the store replays it. Two journals take turns so that commit runs off the
//!   acknowledgement's path (see [`Archiving`]); folds and checkpoints run on a niced
//!   thread of their own ([`background`]), so they never take the core from relaying
//!   and appends. Every read and write first folds what is held, so callers see every
//!   archived event; those of tables the fold never writes (webhooks, desk settings,
//!   API tokens, the mail outbox, polled by sweeps several times a second) skip it and
//!   leave it to that thread. Other data (accounts, categories, …) is committed durably
//!   as before.
//! - Messages are not stored inside a conversation record (that would rewrite
//!   an ever-growing value on every message). Since schema 3 each message
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
//!   records read as they are). Schema 6 writes a conversation's consecutive messages
//!   of one fold as one block row; a version 5 file is only marked 6.
//! - Listings use secondary indexes keyed `(…, paired_at, conversation_id)`
//!   and walked in reverse, so "newest first" is the natural key order and a
//!   time range is a key range. The agent and category filters each have
//!   their own index; any remaining filter is checked against the record. The
//!   agent index has a row for every agent who served a conversation: its first
//!   agent, and each agent a transfer names (from or to), so an agent's listing
//!   finds the conversations they handed on as well as those they took.
//! - Agents' notes on conversations have a table of their own keyed (conversation
//!   id, note id) ([`notes`]), not a place in the conversation record: a note is kept
//!   before its conversation's opening is stored, and a retry finds its key taken.
//! - Schema 2's `messages` row values were compact binary records (see
//!   [`message_value`]) or JSON in files written before; both are read when migrating.
//! - Other values are JSON via private mirror structs: a well-kept, self-describing
//!   format that survives adding optional fields, and the public model types
//!   (some of which hold secrets such as password hashes) stay free of serde.
//!   The key layout is fixed; `meta` records a schema version for future
//!   migrations.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::journal::{self, Journal};
use super::record::{ClosedRecord, Transfer};
use super::*;
use crate::poison::lock;

// ---- how a call reaches the tables: folded first or apart ----
mod access;
use access::{row, rows, write_row};
// ---- staff accounts and sessions ----
mod accounts;
// ---- categories and desk settings ----
mod desk;
// ---- the archive as its callers see it (the writer is here) ----
mod archive;
// ---- rooms and 1-to-1 video ----
mod rooms;
// ---- appointments ----
mod appointments;
// ---- appointment mail outbox ----
mod outbox;
// ---- offline messages ----
mod offline;
// ---- compact archive records ----
mod message_value;
// ---- messages in an append-ordered log (schema 3) ----
mod message_log;
// ---- folds and checkpoints on a niced thread ----
mod background;
// ---- canned replies and ratings ----
mod canned;
mod conversations;
mod labels;
mod ratings;
// ---- agents' notes on conversations ----
mod notes;
// ---- customers: their details, earlier conversations ----
mod customers;
// ---- a customer's data erased on request ----
mod erased;
mod erasure;
// mail customers send back, each handled once
mod inbound_mail;
// ---- the facts the reports read ----
mod reports;
// ---- archive search: postings ----
mod search_index;
// ---- reply addresses of follow-up mails ----
mod reply_tokens;
// ---- webhooks: endpoints and their deliveries ----
mod webhooks;
// ---- API tokens ----
mod api_tokens;

/// The file name inside the data directory.
pub const FILE_NAME: &str = "switchboard.redb";
const SCHEMA_VERSION: u64 = 6;
/// The version before message blocks (see [`message_log`]): its rows read as they are,
/// so opening such a file only marks it 6 (a build reading 5 then refuses it, never
/// misreads a block).
const SCHEMA_V5: u64 = 5;
/// The version before the search postings ([`search_index`]): opening such a file (or an
/// older one) indexes its conversations once and marks it 5.
const SCHEMA_V4: u64 = 4;
/// The version whose message records all hold their id as text; schema 4
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
/// Conversation id -> JSON {opened, closed, transfers?}.
const CONVERSATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversations");
/// (conversation id, message id) -> seq: schema version 1 only, dropped by the migration.
const MESSAGE_IDS_V1: TableDefinition<(&str, &str), u64> = TableDefinition::new("message_ids");
/// (paired_at, conversation id) -> (); every conversation.
const BY_PAIRED: TableDefinition<(i64, &str), ()> = TableDefinition::new("conversations_by_paired");
/// (agent id, paired_at, conversation id) -> (): a row for each agent who served the
/// conversation (its first agent, and the from and to agents of its transfers).
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

/// Archive events since redb last took them: durable in the journal, folded into redb in
/// one non-durable commit per [`FOLD_EVENTS`] or more ([`Archiving::fold_at_after`]), off
/// the acknowledgement's path (and before any transaction, so every read sees everything
/// archived). One commit for many batches is what makes redb cheap here: each page a commit
/// touches is copied and checksummed once per commit. Locks, only ever taken on the
/// blocking pool and in this order: `journal`, `spare`, `folding`, `unfolded`, then redb's
/// write lock (a background checkpoint, on the niced [`background`] thread, takes
/// `folding`, `unfolded`, redb's, then `spare`, never `journal`).
///
/// Two journal files take turns: when the one appended to is full, appends go
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
    /// In journal order: the journal's own records, decoded only by the fold.
    unfolded: Mutex<Unfolded>,
    /// A background fold is scheduled and has not started: no need for another.
    fold_scheduled: AtomicBool,
    /// The held events that schedule a fold: [`FOLD_EVENTS`], or more when the last fold
    /// spread its messages over many conversations ([`Archiving::fold_at_after`]).
    fold_at: AtomicUsize,
}

/// Events held before they are folded into redb, over few conversations (over many, see
/// [`FOLD_EVENTS_PER_CONVERSATION`]): the size of such a fold (~1.2 MB of short messages)
/// and the work of the read that folds them. Larger folds cost less a
/// message (one commit, and one block row a conversation: `message_log`): 4,000 instead
/// of 1,000 took the hub's CPU at 30k msg/s over 500 chats from 94 to 76 % with blocks
/// (medians of three runs in one sitting, bench/README.md).
const FOLD_EVENTS: usize = 4_000;

/// Held events a conversation, at least, before a fold: a fold writes each conversation
/// it touches one index row and one posting (and copies their leaves), whatever its
/// messages, so over 500 chats a fold of 4,000 events (8 a conversation) cost the fold
/// thread twice the CPU a message of one over 100 chats (bench/README.md). With this many
/// a conversation the per-conversation work stays a small share of the fold's.
const FOLD_EVENTS_PER_CONVERSATION: usize = 32;

/// The most events a fold waits for, however many conversations: it bounds the fold's
/// size (~5 MB of short messages), not what is held (appends go on while a fold waits
/// its turn; the two journals' turn-taking bounds that, `background`). About what a
/// journal holds before its checkpoint (`journal::CHECKPOINT_BYTES`), which folds
/// everything held anyway.
const FOLD_EVENTS_MAX: usize = 16_000;

/// Batches appended and not yet folded, as the journal wrote them.
#[derive(Default)]
struct Unfolded {
    records: Vec<journal::Record>,
    /// The events they hold.
    events: usize,
}

impl Unfolded {
    fn push(&mut self, record: journal::Record) {
        self.events += record.events();
        self.records.push(record);
    }
}

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
        let held = std::mem::take(&mut *lock(&self.unfolded));
        if held.records.is_empty() {
            return Ok(());
        }
        let applied = (|| {
            // Chat messages are read in place from the records, not copied out.
            let mut events = Vec::with_capacity(held.events);
            for record in &held.records {
                record.decode_into(&mut events).map_err(unavailable)?;
            }
            let mut tx = db.begin_write().map_err(unavailable)?;
            tx.set_durability(redb::Durability::None).map_err(unavailable)?;
            let conversations = apply(&tx, &events)?;
            tx.commit().map_err(unavailable)?;
            Ok(conversations)
        })();
        match applied {
            Ok(conversations) => {
                self.fold_at
                    .store(Self::fold_at_after(conversations), Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                // Back in front, in order: the next fold or read tries them again.
                let mut unfolded = lock(&self.unfolded);
                let later = std::mem::replace(&mut *unfolded, held);
                unfolded.events += later.events;
                unfolded.records.extend(later.records);
                Err(e)
            }
        }
    }

    /// The held events that schedule the next fold, after one that gave messages to
    /// `conversations` conversations: the chats talking now are about the same a fold
    /// later.
    fn fold_at_after(conversations: usize) -> usize {
        conversations
            .saturating_mul(FOLD_EVENTS_PER_CONVERSATION)
            .clamp(FOLD_EVENTS, FOLD_EVENTS_MAX)
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
            // Written before search existed: its conversations are indexed once, below.
            let mut backfill = false;
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
                    Some(SCHEMA_V5) => {
                        meta.insert("schema_version", SCHEMA_VERSION).map_err(unavailable)?;
                        tracing::info!(
                            "{} marked schema version {SCHEMA_VERSION} (was {SCHEMA_V5}): new messages are stored in blocks",
                            path.display()
                        );
                    }
                    Some(found @ (SCHEMA_V3 | SCHEMA_V4)) => {
                        meta.insert("schema_version", SCHEMA_VERSION).map_err(unavailable)?;
                        backfill = true;
                        tracing::info!(
                            "{} marked schema version {SCHEMA_VERSION} (was {found}): new message ids are stored as 16 bytes, and the archive is indexed for search",
                            path.display()
                        );
                    }
                    Some(found @ (SCHEMA_V1 | SCHEMA_V2)) => {
                        // Version 2 dropped the message-id index (see the module comment),
                        // version 3 moved messages into the log.
                        meta.insert("schema_version", SCHEMA_VERSION).map_err(unavailable)?;
                        migrated_from = Some(found);
                        backfill = true;
                    }
                    Some(other) => {
                        return Err(unavailable(format!(
                            "{FILE_NAME} has schema version {other}, this build reads {SCHEMA_VERSION}"
                        )));
                    }
                }
                create(&tx, &[&ACCOUNTS, &ACCOUNTS_BY_USERNAME, &CATEGORIES, &CATEGORY_ORDER, &CONVERSATIONS])?;
                message_log::create_tables(&tx)?;
                create(&tx, &[&BY_PAIRED, &BY_AGENT, &BY_CATEGORY])?;
                accounts::create_tables(&tx)?;
                // ---- rooms and 1-to-1 video ----
                rooms::create_tables(&tx)?;
                appointments::create_tables(&tx)?;
                outbox::create_tables(&tx)?;
                desk::create_tables(&tx)?;
                canned::create_tables(&tx)?;
                conversations::create_tables(&tx)?;
                labels::create_tables(&tx)?;
                ratings::create_tables(&tx)?;
                offline::create_tables(&tx)?;
                notes::create_tables(&tx)?;
                reports::create_tables(&tx)?;
                customers::create_tables(&tx)?;
                erasure::create_tables(&tx)?;
                search_index::create_tables(&tx)?;
                reply_tokens::create_tables(&tx)?;
                inbound_mail::create_tables(&tx)?;
                webhooks::create_tables(&tx)?;
                api_tokens::create_tables(&tx)?;
            }
            if let Some(found) = migrated_from {
                if found == SCHEMA_V1 {
                    tx.delete_table(MESSAGE_IDS_V1).map_err(unavailable)?;
                }
                let moved = message_log::migrate_v2(&tx)?;
                tracing::info!(messages = moved, "moved archived messages into the message log");
            }
            if backfill {
                let indexed = search_index::backfill(&tx)?;
                tracing::info!(conversations = indexed, "indexed the archive for search");
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
            reports::backfill(&db)?;
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
                unfolded: Mutex::new(Unfolded::default()),
                fold_scheduled: AtomicBool::new(false),
                fold_at: AtomicUsize::new(FOLD_EVENTS),
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

// ---- the shapes every table's code repeats: a JSON row by key, a unique key, a page ----

/// A table a concern's `create_tables` makes sure of, whatever its key and value types.
trait Created {
    fn create(&self, tx: &redb::WriteTransaction) -> StoreResult<()>;
}

impl<K: redb::Key + 'static, V: redb::Value + 'static> Created for TableDefinition<'_, K, V> {
    fn create(&self, tx: &redb::WriteTransaction) -> StoreResult<()> {
        tx.open_table(*self).map_err(unavailable)?;
        Ok(())
    }
}

/// Creates `tables` where the file has not got them yet (a new or older file, at open),
/// so read transactions never meet a missing one.
fn create(tx: &redb::WriteTransaction, tables: &[&dyn Created]) -> StoreResult<()> {
    tables.iter().try_for_each(|table| table.create(tx))
}

/// The JSON row under `key` in `table`, decoded, if there is one.
fn find<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> StoreResult<Option<T>> {
    match table.get(key).map_err(unavailable)? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// The JSON row under `key` in `table`, decoded; `NotFound` when there is none.
fn load<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> StoreResult<T> {
    find(table, key)?.ok_or(StoreError::NotFound)
}

/// Every JSON row of `table`, decoded, in key order.
fn all<T: serde::de::DeserializeOwned>(table: &impl ReadableTable<&'static str, &'static [u8]>) -> StoreResult<Vec<T>> {
    let mut out = Vec::with_capacity(table.len().map_err(unavailable)? as usize);
    for row in table.iter().map_err(unavailable)? {
        let (_, value) = row.map_err(unavailable)?;
        out.push(decode(value.value())?);
    }
    Ok(out)
}

/// Writes `value` as the JSON row under `key`, over any row there.
fn put<T: Serialize>(table: &mut JsonRows<'_>, key: &str, value: &T) -> StoreResult<()> {
    table.insert(key, encode(value)?.as_slice()).map_err(unavailable)?;
    Ok(())
}

/// A table of JSON rows by string key, open in a write.
type JsonRows<'t> = redb::Table<'t, &'static str, &'static [u8]>;

/// Writes `value` as a new JSON row under `key`; `Conflict` when `table` holds the key.
fn put_new<T: Serialize>(table: &mut JsonRows<'_>, key: &str, value: &T) -> StoreResult<()> {
    refuse_held(table, key)?;
    put(table, key, value)
}

/// Writes `value` as the new JSON row `id` of `rows`, and `id` under `key` in `index`, the
/// rows' unique index; `Conflict` (nothing written) when either holds its key already.
fn put_new_indexed<'k, K, T>(
    tx: &redb::WriteTransaction,
    rows: TableDefinition<&'static str, &'static [u8]>,
    index: TableDefinition<K, &'static str>,
    id: &str,
    key: K::SelfType<'k>,
    value: &T,
) -> StoreResult<()>
where
    K: redb::Key + 'static,
    K::SelfType<'k>: Copy,
    T: Serialize,
{
    let mut rows = tx.open_table(rows).map_err(unavailable)?;
    let mut index = tx.open_table(index).map_err(unavailable)?;
    refuse_held(&rows, id)?;
    refuse_held(&index, key)?;
    index.insert(key, id).map_err(unavailable)?;
    put(&mut rows, id, value)
}

/// Writes `value` over the JSON row under `key`; `NotFound` when there is none (and
/// `Unavailable` when the row there does not read as a `T`).
fn replace<T: Serialize + serde::de::DeserializeOwned>(
    table: &mut JsonRows<'_>,
    key: &str,
    value: &T,
) -> StoreResult<()> {
    if find::<T>(table, key)?.is_none() {
        return Err(StoreError::NotFound);
    }
    put(table, key, value)
}

/// Does `table` hold `key`? Asked inside the write that would take a unique key, so
/// the answer stands until it commits.
fn holds<'k, K: redb::Key + 'static, V: redb::Value + 'static>(
    table: &impl ReadableTable<K, V>,
    key: impl std::borrow::Borrow<K::SelfType<'k>>,
) -> StoreResult<bool> {
    Ok(table.get(key).map_err(unavailable)?.is_some())
}

/// `Conflict` when `table` holds `key`: a unique key refused inside the write that
/// would take it again.
fn refuse_held<'k, K: redb::Key + 'static, V: redb::Value + 'static>(
    table: &impl ReadableTable<K, V>,
    key: impl std::borrow::Borrow<K::SelfType<'k>>,
) -> StoreResult<()> {
    if holds(table, key)? {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

/// The id an index row of `table` keeps under `key`; `NotFound` when there is none.
fn id_under(table: &impl ReadableTable<&'static str, &'static str>, key: &str) -> StoreResult<String> {
    let guard = table.get(key).map_err(unavailable)?.ok_or(StoreError::NotFound)?;
    Ok(guard.value().to_string())
}

/// The second halves of the keys `(first, _)` of `index`, in key order: what an index of
/// pairs holds under one first half (an account's sessions, an endpoint's deliveries).
fn keys_under<V: redb::Value + 'static>(
    index: &impl ReadableTable<(&'static str, &'static str), V>,
    first: &str,
) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    for row in index.range((first, "")..).map_err(unavailable)? {
        let (key, _) = row.map_err(unavailable)?;
        let (under, second) = key.value();
        if under != first {
            break;
        }
        out.push(second.to_string());
    }
    Ok(out)
}

/// One page of the records a `(created at, id)` index lists, newest first: `read` gives
/// an id's record, or `None` for one the listing passes over. With how many it gave in all.
fn newest_page<T>(
    index: &impl ReadableTable<(i64, &'static str), ()>,
    page: Page,
    mut read: impl FnMut(&str) -> StoreResult<Option<T>>,
) -> StoreResult<(Vec<T>, u64)> {
    let (mut items, mut total) = (Vec::new(), 0u64);
    for row in index.iter().map_err(unavailable)?.rev() {
        let (key, _) = row.map_err(unavailable)?;
        let Some(item) = read(key.value().1)? else {
            continue;
        };
        if total >= page.offset && (items.len() as u64) < page.limit {
            items.push(item);
        }
        total += 1;
    }
    Ok((items, total))
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
struct ConversationRec {
    /// Its agent is the one who has it now (see [`add_transfer`]). Stored in the opening's
    /// own serde form, the one the journal keeps too (its `customer` absent in records
    /// written before customers' details were kept).
    opened: ConversationOpened,
    closed: Option<ClosedRecord>,
    /// In `at` order, then arrival order. Absent when empty (and in records written
    /// before transfers existed, which read as they are).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    transfers: Vec<Transfer>,
}

impl ConversationRec {
    fn new(o: &ConversationOpened) -> Self {
        Self {
            opened: o.clone(),
            closed: None,
            transfers: Vec::new(),
        }
    }

    fn opened(&self) -> ConversationOpened {
        self.opened.clone()
    }

    fn closed(&self) -> Option<ConversationClosed> {
        self.closed.as_ref().map(|c| c.of(&self.opened.id))
    }

    fn transfers(&self) -> Vec<ConversationTransferred> {
        self.transfers.iter().map(|t| t.of(&self.opened.id)).collect()
    }

    /// Applies `transfer` by the reference rule ([`add_transfer`]); true when it was new.
    fn add_transfer(&mut self, transfer: &ConversationTransferred) -> bool {
        let mut transfers = self.transfers();
        if !add_transfer(&mut self.opened, &mut transfers, transfer) {
            return false;
        }
        self.transfers = transfers.iter().map(Transfer::from).collect();
        true
    }

    /// The whole conversation, with the messages, rating and notes read apart.
    fn into_conversation(
        self,
        messages: Vec<ArchivedMessage>,
        rating: Option<Rating>,
        notes: Vec<ConversationNote>,
    ) -> Conversation {
        Conversation {
            opened: self.opened(),
            closed: self.closed(),
            transfers: self.transfers(),
            messages,
            rating,
            notes,
        }
    }
}

// ---- transaction bodies ----

fn load_record(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> StoreResult<Option<ConversationRec>> {
    find(table, id)
}

/// Returns how many conversations it gave messages to.
fn apply(tx: &redb::WriteTransaction, batch: &[journal::Decoded<'_>]) -> StoreResult<usize> {
    let mut conversations = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
    let mut messages = message_log::Writer::open(tx)?;
    let mut by_paired = tx.open_table(BY_PAIRED).map_err(unavailable)?;
    let mut by_agent = tx.open_table(BY_AGENT).map_err(unavailable)?;
    let mut by_category = tx.open_table(BY_CATEGORY).map_err(unavailable)?;
    let mut note_table = notes::open(tx)?;
    let mut by_customer = customers::open(tx)?;
    let mut report_tables = reports::Writer::open(tx)?;
    let erased = erased::tombstones(tx)?;
    let mut postings = search_index::open(tx)?;
    // Each conversation's kept messages of the batch, appended together after the batch's
    // openings and closings, in seq order: they take consecutive log positions, one index
    // run (see [`message_log`]). Only the order across conversations changes, which
    // nothing reads (as in the journal's replay).
    let mut grouped: Vec<(&str, Vec<ArchivedMessageRef<'_>>)> = Vec::new();
    let mut group_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for event in batch {
        // A chat message, borrowed from the journal's record or from a decoded event.
        let (conv, message) = match event {
            journal::Decoded::Message {
                conversation_id,
                message,
            } => (*conversation_id, *message),
            journal::Decoded::Event(ArchiveEvent::Message {
                conversation_id,
                message,
            }) => (&**conversation_id, message.borrowed()),
            journal::Decoded::Event(event) => {
                match event {
                    ArchiveEvent::Message { .. } => {} // taken above
                    // Erased on request: nothing of it is kept again (it needs no more checks: a
                    // message, transfer or closing needs its opening, which is never stored again).
                    ArchiveEvent::Opened(opened) if erased::is_erased(&erased, &opened.id)? => {}
                    ArchiveEvent::Note(note) if erased::is_erased(&erased, &note.conversation_id)? => {}
                    ArchiveEvent::Opened(opened) => {
                        if holds(&conversations, opened.id.as_str())? {
                            continue; // first opening wins, as in the reference store
                        }
                        let rec = ConversationRec::new(opened);
                        put(&mut conversations, opened.id.as_str(), &rec)?;
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
                        customers::index(&mut by_customer, &opened.customer, opened.paired_at, id)?;
                        search_index::add(&mut postings, &search::name_terms(opened, &[]), id)?;
                    }
                    ArchiveEvent::Transferred(transfer) => {
                        let Some(mut rec) = load_record(&conversations, &transfer.id)? else {
                            continue; // a transfer of an unknown conversation is dropped, as a message is
                        };
                        if !rec.add_transfer(transfer) {
                            continue; // kept once
                        }
                        put(&mut conversations, transfer.id.as_str(), &rec)?;
                        // The agents it names served it: listed for each (a set, so once each).
                        let (id, paired_at) = (transfer.id.as_str(), rec.opened.paired_at);
                        for agent in std::iter::once(&transfer.from_agent_id).chain(&transfer.to_agent_id) {
                            by_agent
                                .insert((agent.as_str(), paired_at, id), ())
                                .map_err(unavailable)?;
                        }
                        // The agents it names are found by their names from now on.
                        let names =
                            std::iter::once(transfer.from_agent_name.as_str()).chain(transfer.to_agent_name.as_deref());
                        search_index::add(&mut postings, &crate::core::search::term_set(names), id)?;
                    }
                    ArchiveEvent::Note(note) => {
                        // Kept whether or not its conversation is stored (yet); once by its key.
                        notes::insert(&mut note_table, note)?;
                    }
                    ArchiveEvent::Abandoned(abandoned) => report_tables.abandoned(abandoned)?,
                    ArchiveEvent::Closed(closed) => {
                        let Some(mut rec) = load_record(&conversations, &closed.id)? else {
                            continue;
                        };
                        if !closed.replaces(rec.closed().as_ref()) {
                            // The reference rule: the later visit's (a conversation continued
                            // after it ended closes again later), the real over an inferred
                            // one; a retry or a second writer changes nothing.
                            continue;
                        }
                        rec.closed = Some(ClosedRecord::from(closed));
                        put(&mut conversations, closed.id.as_str(), &rec)?;
                    }
                }
                continue;
            }
        };
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
    let touched = grouped.len();
    for (conv, mut group) in grouped {
        group.sort_by_key(|message| message.seq); // stable: of one seq, the first wins
        report_tables.agent_lines(conv, &group)?;
        let number = messages.number(conv)?;
        // Idempotent: a seq already taken is a retry (a seq names one message).
        let appended = messages.append_sorted(number, &group)?;
        // The search terms of what was stored, and only of that (erasure finds them again
        // from the stored text): each distinct term of the group once.
        let terms = crate::core::search::term_set(appended.iter().map(|m| m.text));
        search_index::add(&mut postings, &terms, conv)?;
    }
    messages.finish()?;
    Ok(touched)
}

/// Opens the two archive journals in `dir` and applies what a previous process left in
/// them (it stopped or crashed before redb's next durable commit) in one durable commit.
/// Which journal is older is not recorded, so their events are applied openings first,
/// then messages and notes, transfers, then closings: a message or a transfer is never
/// met before its conversation, and within each kind the order does not matter (events
/// apply idempotently by their ids, and transfers by their time whatever their arrival).
/// A note needs no opening and nothing needs it, so any rank would do; it ranks with the
/// messages, the other thing said during the chat, and so before the transfer or closing
/// the hub recorded after it, as it was produced.
fn replay_journals(db: &Database, dir: &Path) -> StoreResult<(Journal, Journal)> {
    let (mut journal, mut events) = Journal::open(dir).map_err(unavailable)?;
    let (mut second, more) = Journal::open_file(dir, journal::SECOND_FILE_NAME).map_err(unavailable)?;
    events.extend(more);
    events.sort_by_key(|event| match event {
        ArchiveEvent::Opened(_) => 0,
        ArchiveEvent::Message { .. } | ArchiveEvent::Note(_) | ArchiveEvent::Abandoned(_) => 1,
        ArchiveEvent::Transferred(_) => 2,
        ArchiveEvent::Closed(_) => 3,
    });
    if !events.is_empty() {
        tracing::info!(
            events = events.len(),
            "replaying the archive journal into the embedded store"
        );
        let events: Vec<journal::Decoded<'_>> = events.into_iter().map(journal::Decoded::Event).collect();
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
}

#[cfg(test)]
mod tests;
