//! The MongoDB store, on the official `mongodb` driver.
//!
//! Why it is built this way:
//! - Conversations and their messages live apart. A `conversations` document
//!   holds a conversation's opening and closing facts (what the listing
//!   indexes need); its messages live in `message_buckets`, the "bucket
//!   pattern": usually one document per conversation per archive batch, holding
//!   that batch's messages of the conversation. A batch is written with ONE
//!   unordered `insert_many`, so the server's work per batch is one small
//!   document per conversation, whatever the length of the chats. The earlier
//!   schema embedded every message in the conversation document and appended
//!   with `$push`; SecantusDB (the MongoDB-wire server the tests and the bench
//!   run on) decodes, updates and re-encodes the whole document for each
//!   update, so appending cost grew with the chat (500 chats: ~1,400 msg/s at
//!   100 messages a chat, ~300 msg/s at 400), while a bucket insert costs the
//!   same at any length (~0.3 ms a document plus ~13 µs a message there).
//! - The more messages a bucket holds, the cheaper each: hence [`Store::max_batch`]
//!   is 20,000 here (see there), and a bucket is cut only past
//!   [`BUCKET_MAX_BYTES`] (far below the 16 MiB document limit).
//! - Each message is stored ONCE, whatever a write that hung does later. A write
//!   sent to a frozen server times out here, but the server still carries it out
//!   when it thaws, after the archive writer has retried with the events that
//!   came meanwhile: grouped differently. So a bucket's key cannot be derived
//!   from the batch (the earlier layout keyed `<conversation_id>:<first>-<last>`
//!   and stored a message twice that way, in `…:80-80` and `…:80-296`).
//!   Instead a conversation's buckets take the slots 0, 1, 2 … with no gap,
//!   keyed `_id: "<conversation_id>#<slot>"`, and a writer takes slot n only
//!   knowing every seq the slots below hold, and puts in it only messages none
//!   of them holds. A write that finds slot n taken (duplicate key, 11000) reads
//!   what it holds, takes those messages off its own and tries n + 1; a
//!   conversation's bucket n + 1 is sent only once slot n is known. So a hung
//!   write and its retry claim the same slot and the server lets one win; a
//!   second hub, or this one restarted, reads a conversation's slots and seqs
//!   before its first write to it (`mongo/archive/chain.rs` holds the rule).
//!   What the store learns of each conversation (next slot, stored seqs as
//!   ranges) is remembered, so a batch costs no read: bounded by [`KNOWN_MAX`],
//!   and forgetting costs a read, never a wrong write.
//! - Why slots and not the other idempotent layouts (measured with pymongo on
//!   SecantusDB, 500 chats, 40 messages each a batch; the bucket inserts: ~60k
//!   msg/s): one document per message, `_id: "<conversation_id>:<seq>"`, is the
//!   simplest but ~0.3 ms a document, 3,300 msg/s; fixed seq ranges per bucket
//!   (slot k holds seqs kN+1..(k+1)N) filled by upserts that `$set` each message
//!   under its seq made 8,400 msg/s at N = 100 and 5,200 at 256 (every update
//!   re-encodes the bucket, ~3 ms a statement), `$addToSet` 3,000; a unique
//!   multikey index on (`conversation_id`, `messages.seq`), which SecantusDB does
//!   enforce across documents, 8,500 (~0.1 ms an index entry). The bench needs
//!   20,000 msg/s into MongoDB; slots keep the plain inserts. They need nothing
//!   but `_id` uniqueness, unordered inserts and finds with a projection on
//!   `messages.seq`, so MongoDB itself behaves as SecantusDB does.
//! - Databases written by the earlier layout are read as they are, not migrated:
//!   their buckets (`<conversation_id>:<first>-<last>`, no slot) are merged with
//!   the new ones on reading, one message per seq, and a writer reading a
//!   conversation's chain counts their seqs as stored, so no new bucket repeats
//!   them. Copies the earlier layout already stored stay in the collection (the
//!   reads drop them). A hub of the earlier version writing to the same database
//!   at the same time as this one (a rolling upgrade) follows no slots and can
//!   still store a message twice.
//! - Messages for a conversation that was never opened are dropped, as in the
//!   reference store, and so are those that precede its opening in a batch.
//!   Knowing which conversations exist would cost a query per batch (and
//!   SecantusDB's `$in` costs more per id the longer its list: 500 ids take
//!   0.3–0.4 s, 32 take ~4 ms), so the store remembers the ids it has opened or
//!   seen; conversations are never deleted, so the memory cannot go stale. Only
//!   ids it does not know (another hub's, or from before a restart) are
//!   looked up, in chunks of [`IN_CHUNK`].
//! - Every other write is idempotent on natural ids too, with no transactions
//!   (so a standalone server works): an opening is an upsert with
//!   `$setOnInsert` only, a close `$set`s `closed` only where it is null or
//!   older (the latest close wins: a continued conversation closes again). A batch's openings go in one `update` command and
//!   its closings in another, not one round trip each.
//! - Reading a conversation is one find on the conversation and one on its
//!   buckets (a listing page: one per [`IN_CHUNK`] conversations), by an index
//!   on `conversation_id` alone: a compound index with `first_seq` would let
//!   the server sort, but made inserts up to ~20 % slower on SecantusDB, and
//!   sorting the gathered messages here is cheap (as is reading a chain).
//!   Conversations written by the earlier schema still read correctly: their
//!   embedded `messages` are merged with any buckets.
//! - Indexes are created at start-up for each listing query; listing is
//!   filter + sort `paired_at` desc (`_id` desc breaks ties, as in the
//!   reference store) + skip/limit, with `count_documents` for the total.
//! - Transfers (`ArchiveEvent::Transferred`) are pushed into the conversation
//!   document with a conditional update (idempotent, see `transfer_all`), and
//!   every agent they name is added to its `served_by` array. An agent's listing
//!   is the conversations whose `agent_id` (the agent now) is theirs OR whose
//!   `served_by` holds them; not one `$or` query, which SecantusDB answers with a
//!   collection scan, but each side by its own index (`agent_paired`, and the
//!   multikey `served_paired`), merged here (see `list_of_agent`). A database of
//!   an earlier version needs nothing: a document without `served_by` was never
//!   transferred, and `agent_id` alone finds it.
//!   The indexes are ASCENDING (`{agent_id: 1, paired_at: 1, _id: 1}` …):
//!   MongoDB walks them backwards for the descending sort, so they serve
//!   exactly as well as descending ones, and SecantusDB mishandles range
//!   bounds on descending index fields (an inclusive `$gte` on the boundary
//!   value drops it, for finds and counts alike), while ascending ones match
//!   MongoDB's results.
//! - Agents' notes (`ArchiveEvent::Note`) are documents of their own in
//!   `conversation_notes`, `_id` {conversation_id, id}: kept before their
//!   conversation's opening, and once, by the server's `_id` uniqueness alone (one
//!   unordered insert per batch, a duplicate key taken as "kept already"; see
//!   `mongo/notes.rs`). Only reading one conversation gathers them.
//! - Short server-selection and connect timeouts (2 s unless the URI sets its
//!   own) so an outage surfaces quickly as `StoreError::Unavailable`.
//! - Every write asks for a durable write concern (see [`durable_write_concern`]):
//!   journaled (`j: true`), and acknowledged by a majority when the deployment is a
//!   replica set (or a sharded cluster). MongoDB's default, `w: 1` without the
//!   journal, acknowledges a write the server can still lose when it is killed: a
//!   SIGKILL of the server lost the last 1 to 8 acknowledged messages that way. The
//!   URI's own `w`, `journal` and `wtimeoutMS` options win, field by field, so an
//!   operator can still trade durability for speed. `update_command` builds its
//!   command by hand, so it carries the same concern explicitly.

use std::collections::{HashMap, HashSet};
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{Acknowledgment, ClientOptions, DatabaseOptions, IndexOptions, WriteConcern};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use super::record::{ClosedRecord, Transfer};
use super::*;

// ---- staff accounts and sessions ----
mod accounts;
// ---- categories and desk settings ----
mod desk;
// ---- rooms and 1-to-1 video ----
mod rooms;
// ---- appointments ----
mod appointments;
// ---- appointment mail outbox ----
mod outbox;
// ---- offline messages ----
mod offline;
// ---- the facts the reports read, and their cache ----
mod reports;
// ---- the archive: conversations and their message buckets ----
mod archive;
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
mod erasure;
// ---- reply addresses of follow-up mails ----
mod reply_tokens;
// mail customers send back, each handled once
mod inbound_mail;
// ---- webhooks: endpoints and their deliveries ----
mod webhooks;
// ---- API tokens ----
mod api_tokens;
// ---- attachments: files in chunks, shared by every node ----
pub mod attachments;
use archive::{BucketDoc, CUSTOMER_KEYS, Chain, ConversationDoc, SEARCH_TERMS, SERVED_BY};
use desk::CategoryDoc;

const TIMEOUT: Duration = Duration::from_secs(2);
const DUPLICATE_KEY: i32 = 11000;
/// Ids in one `$in` at most: on SecantusDB a long list costs more per id (measured on
/// `_id`: 32 ids ~4 ms, 100 ids ~20 ms, 500 ids 0.3–0.4 s).
const IN_CHUNK: usize = 32;
/// Message bytes in one bucket at most (roughly counted), far below the 16 MiB
/// document limit even with one more message of the longest kind on top.
const BUCKET_MAX_BYTES: usize = 4 << 20;
/// Statements in one `update` command at most, well under the server's limits.
const UPDATE_CHUNK: usize = 1_000;
/// Conversation ids remembered as existing, and conversations' chains of buckets, at
/// most; past it the memory starts afresh (forgetting costs only a look-up, never a wrong
/// answer).
const KNOWN_MAX: usize = 200_000;
/// How long a majority write waits for the other members before it fails (and the
/// archive retries it): long enough for a lagging secondary, shorter than the archive
/// writer's own time-out, so a stuck replication shows as an error, not a hang.
const MAJORITY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why [`MongoStore::connect_or_refuse`] failed.
#[derive(Debug)]
pub(super) enum ConnectFailure {
    /// The server did not answer; it may later.
    Unreachable(StoreError),
    /// It can never work as configured; the message says why.
    Refused(String),
}

/// The MongoDB-backed store. Cheap to clone: the driver's client is a shared pool.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    accounts: Collection<Account>,
    categories: Collection<CategoryDoc>,
    conversations: Collection<ConversationDoc>,
    buckets: Collection<BucketDoc>,
    /// Conversations known to exist in the database (see the module comment).
    known: Arc<Mutex<HashSet<String>>>,
    /// What this store knows of conversations' buckets: slots taken, seqs stored.
    chains: Arc<Mutex<HashMap<String, Chain>>>,
    /// The first agent line's time this store wrote for each conversation (reports):
    /// later agent lines cost no write. Bounded as `known`; forgetting costs a `$min`
    /// that changes nothing.
    first_agent_known: Arc<Mutex<HashMap<String, Millis>>>,
    /// What every write asks of the server (see [`durable_write_concern`]).
    write_concern: WriteConcern,
    /// Entries per chunk of the reports' per-day cache (`mongo/reports.rs`).
    report_chunk_entries: usize,
    /// Every day older than the ones readied each time has been readied once by this
    /// process (`mongo/reports.rs`, `ready_days`).
    older_days_readied: Arc<std::sync::atomic::AtomicBool>,
}

impl MongoStore {
    /// Connects to `uri`, uses database `db`, checks the server answers and creates the indexes.
    pub async fn connect(uri: &str, db: &str) -> StoreResult<Self> {
        Self::connect_or_refuse(uri, db).await.map_err(|e| match e {
            ConnectFailure::Unreachable(e) => e,
            ConnectFailure::Refused(why) => unavailable(why),
        })
    }

    /// As [`MongoStore::connect`], telling a server that does not answer (worth waiting
    /// for) from one that can never work: a URI the driver refuses, or credentials the
    /// server refuses.
    pub(super) async fn connect_or_refuse(uri: &str, db: &str) -> Result<Self, ConnectFailure> {
        let mut options = ClientOptions::parse(uri).await.map_err(|e| match e.kind.as_ref() {
            // A host name that does not resolve (yet) may be a DNS hiccup or a service not up.
            ErrorKind::DnsResolve { .. } => ConnectFailure::Unreachable(unavailable(e)),
            _ => ConnectFailure::Refused(format!("the driver refuses it: {e}")),
        })?;
        options.server_selection_timeout.get_or_insert(TIMEOUT);
        options.connect_timeout.get_or_insert(TIMEOUT);
        options.app_name.get_or_insert_with(|| "switchboard".to_string());
        let from_uri = options.write_concern.take();
        let client = Client::with_options(options).map_err(|e| ConnectFailure::Refused(e.to_string()))?;
        // `hello` tells a replica set (`setName`) or a sharded cluster (`msg: "isdbgrid"`)
        // from a standalone server; it is also the first sign the server answers.
        let hello = client
            .database("admin")
            .run_command(doc! {"hello": 1})
            .await
            .map_err(|e| match e.kind.as_ref() {
                ErrorKind::Authentication { .. } => {
                    ConnectFailure::Refused(format!("the server refuses the credentials: {e}"))
                }
                _ => ConnectFailure::Unreachable(unavailable(e)),
            })?;
        let replicated = hello.get_str("setName").is_ok() || hello.get_str("msg") == Ok("isdbgrid");
        let write_concern = durable_write_concern(from_uri.as_ref(), replicated);
        tracing::info!(
            write_concern = ?write_concern,
            replica_set = replicated,
            "MongoDB writes ask for this write concern (MONGODB_URI's w, journal and wtimeoutMS override it)"
        );
        let db = client.database_with_options(
            db,
            DatabaseOptions::builder().write_concern(write_concern.clone()).build(),
        );
        let store = Self {
            accounts: db.collection("accounts"),
            categories: db.collection("categories"),
            conversations: db.collection("conversations"),
            buckets: db.collection("message_buckets"),
            known: Arc::default(),
            chains: Arc::default(),
            first_agent_known: Arc::default(),
            write_concern,
            report_chunk_entries: reports::CHUNK,
            older_days_readied: Arc::default(),
            db,
        };
        store.ping().await.map_err(ConnectFailure::Unreachable)?;
        store.create_indexes().await.map_err(ConnectFailure::Unreachable)?;
        // Conversations archived by a build before the reports get their first agent line
        // noted, once per database, without holding up the start.
        tokio::spawn({
            let store = store.clone();
            async move {
                if let Err(e) = store.backfill_first_agent_lines().await {
                    tracing::warn!(error = %e, "noting old conversations' first agent lines failed; tried again at the next start");
                }
            }
        });
        Ok(store)
    }

    /// Splits each day of the reports' cache into chunks of `entries` (tests: a day over
    /// one chunk without 10,000 conversations).
    #[doc(hidden)]
    pub fn with_report_chunk_entries(mut self, entries: usize) -> Self {
        self.report_chunk_entries = entries.max(1);
        self
    }

    /// The write concern every write of this store carries.
    pub fn write_concern(&self) -> &WriteConcern {
        &self.write_concern
    }

    async fn create_indexes(&self) -> StoreResult<()> {
        ensure_indexes(&self.accounts, [unique_index(doc! {"username": 1}, "username_unique")]).await?;
        ensure_indexes(&self.categories, [index(doc! {"order": 1}, "creation_order")]).await?;
        ensure_indexes(
            &self.conversations,
            [
                // Ascending on purpose (see the module comment); walked backwards for newest first.
                index(doc! {"agent_id": 1, "paired_at": 1, "_id": 1}, "agent_paired"),
                // Multikey: every agent a transfer names (see `list_of_agent`).
                index(doc! {SERVED_BY: 1, "paired_at": 1, "_id": 1}, "served_paired"),
                index(doc! {"category": 1, "paired_at": 1, "_id": 1}, "category_paired"),
                index(doc! {"paired_at": 1, "_id": 1}, "paired"),
                // Multikey: a customer's email and visitor key (see `mongo/customers.rs`).
                index(doc! {CUSTOMER_KEYS: 1, "paired_at": 1, "_id": 1}, "customer_paired"),
                // Multikey: the names' search terms (see `mongo/archive/search.rs`).
                index(doc! {SEARCH_TERMS: 1}, "search_terms"),
            ],
        )
        .await?;
        // One field only: the reader sorts the gathered messages itself (see the module comment).
        ensure_indexes(
            &self.buckets,
            [
                index(doc! {"conversation_id": 1}, "conversation"),
                // Multikey: the messages' search terms (see `mongo/archive/search.rs`).
                index(doc! {SEARCH_TERMS: 1}, "search_terms"),
            ],
        )
        .await?;
        self.create_session_indexes().await?;
        // ---- rooms and 1-to-1 video ----
        self.create_room_indexes().await?;
        self.create_appointment_indexes().await?;
        self.create_outbox_indexes().await?;
        self.create_canned_indexes().await?;
        self.create_reply_token_indexes().await?;
        self.create_webhook_indexes().await?;
        self.create_api_token_indexes().await?;
        self.create_conversation_record_indexes().await?;
        self.create_offline_indexes().await?;
        self.create_note_indexes().await?;
        self.create_report_indexes().await?;
        self.index_old_documents().await?;
        self.copy_old_desk_state().await?;
        Ok(())
    }
}

/// The write concern the store asks for: journaled, and majority-acknowledged on a
/// replicated deployment (with [`MAJORITY_TIMEOUT`]). Each of `w`, `journal` and
/// `wtimeoutMS` that the URI sets wins over these defaults.
pub fn durable_write_concern(from_uri: Option<&WriteConcern>, replicated: bool) -> WriteConcern {
    let uri = from_uri.cloned().unwrap_or_default();
    let w = uri.w.or(Some(if replicated {
        Acknowledgment::Majority
    } else {
        Acknowledgment::Nodes(1)
    }));
    let waits_for_others = !matches!(w, Some(Acknowledgment::Nodes(0 | 1)));
    WriteConcern::builder()
        .w(w)
        .journal(uri.journal.or(Some(true)))
        .w_timeout(uri.w_timeout.or_else(|| waits_for_others.then_some(MAJORITY_TIMEOUT)))
        .build()
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("mongodb: {e}"))
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

fn conflict_or_unavailable(e: mongodb::error::Error) -> StoreError {
    if is_duplicate_key(&e) {
        StoreError::Conflict
    } else {
        unavailable(e)
    }
}

/// A collection's name and the type its documents read as, declared once as a constant
/// beside its concern's code (`const ROOMS: Named<RoomDoc> = Named::new("rooms")`) and
/// opened with [`MongoStore::collection`]: the name is written in one place, and no
/// accessor method of the store shadows a trait method of the same name.
struct Named<T>(&'static str, PhantomData<fn() -> T>);

impl<T> Named<T> {
    const fn new(name: &'static str) -> Self {
        Self(name, PhantomData)
    }
}

impl MongoStore {
    /// The collection `named` names, its documents read as its type.
    fn collection<T: Send + Sync>(&self, named: Named<T>) -> Collection<T> {
        self.db.collection(named.0)
    }
}

// ---- the shapes every collection's code repeats: a find gathered, one document or
// `NotFound`, a page with its total, an index by name ----

/// Every document a find (as the driver's builder gives it: filtered, sorted …) returns.
async fn all<T>(find: impl IntoFuture<Output = mongodb::error::Result<mongodb::Cursor<T>>>) -> StoreResult<Vec<T>>
where
    T: serde::de::DeserializeOwned + Send + Sync + Unpin,
{
    find.await
        .map_err(unavailable)?
        .try_collect()
        .await
        .map_err(unavailable)
}

/// Every document of `collection`, oldest first (by `created_at`, then id: as
/// [`super::oldest_first`] orders them).
async fn all_oldest_first<T>(collection: &Collection<T>) -> StoreResult<Vec<T>>
where
    T: serde::de::DeserializeOwned + Send + Sync + Unpin,
{
    all(collection.find(doc! {}).sort(doc! {"created_at": 1, "_id": 1})).await
}

/// The document a `find_one` (or `find_one_and_update`) returns; `NotFound` when none.
async fn one<T>(find: impl IntoFuture<Output = mongodb::error::Result<Option<T>>>) -> StoreResult<T> {
    find.await.map_err(unavailable)?.ok_or(StoreError::NotFound)
}

/// Creates `indexes` on `collection`, those it has already being no change.
async fn ensure_indexes<T: Send + Sync>(
    collection: &Collection<T>,
    indexes: impl IntoIterator<Item = IndexModel>,
) -> StoreResult<()> {
    collection.create_indexes(indexes).await.map_err(unavailable)?;
    Ok(())
}

/// The listings' order: newest first by `field`, ties by `_id`, newest first too (the
/// memory and embedded stores list in the same order).
fn newest_first(field: &str) -> Document {
    doc! {field: -1, "_id": -1}
}

/// One page of the documents `query` matches in `sort` order, and how many match in all.
async fn page_of<T>(
    collection: &Collection<T>,
    query: Document,
    sort: Document,
    page: Page,
) -> StoreResult<(Vec<T>, u64)>
where
    T: serde::de::DeserializeOwned + Send + Sync + Unpin,
{
    let total = collection.count_documents(query.clone()).await.map_err(unavailable)?;
    // Mongo reads limit 0 as "no limit", so an empty page never reaches the server.
    if page.limit == 0 || page.offset >= total {
        return Ok((Vec::new(), total));
    }
    let found = collection
        .find(query)
        .sort(sort)
        .skip(page.offset)
        .limit(i64::try_from(page.limit).unwrap_or(i64::MAX));
    Ok((all(found).await?, total))
}

/// An index on `keys` named `name`.
fn index(keys: Document, name: &str) -> IndexModel {
    index_with(keys, IndexOptions::builder().name(name.to_string()).build())
}

/// An index on `keys` with `options` (its name among them).
fn index_with(keys: Document, options: IndexOptions) -> IndexModel {
    IndexModel::builder().keys(keys).options(options).build()
}

/// A unique index on `keys` named `name`.
fn unique_index(keys: Document, name: &str) -> IndexModel {
    index_with(
        keys,
        IndexOptions::builder().name(name.to_string()).unique(true).build(),
    )
}

/// Options of a `find_one_and_update` that answers the document as it is after the update.
fn updated_after() -> mongodb::options::FindOneAndUpdateOptions {
    mongodb::options::FindOneAndUpdateOptions::builder()
        .return_document(mongodb::options::ReturnDocument::After)
        .build()
}

/// Stores `value` as a new document; `Conflict` when its `_id` (or another unique key)
/// is taken.
async fn insert_new<T: serde::Serialize + Send + Sync>(collection: &Collection<T>, value: &T) -> StoreResult<()> {
    collection.insert_one(value).await.map_err(conflict_or_unavailable)?;
    Ok(())
}

/// Writes `value` over the document `_id`; `NotFound` when there is none.
async fn replace_existing<T: serde::Serialize + Send + Sync>(
    collection: &Collection<T>,
    id: &str,
    value: &T,
) -> StoreResult<()> {
    let done = collection
        .replace_one(doc! {"_id": id}, value)
        .await
        .map_err(unavailable)?;
    matched(done.matched_count)
}

/// The document `id` names, if there is one.
async fn by_id<T>(collection: &Collection<T>, id: &str) -> StoreResult<Option<T>>
where
    T: serde::de::DeserializeOwned + Send + Sync + Unpin,
{
    collection.find_one(doc! {"_id": id}).await.map_err(unavailable)
}

/// Deletes the document `id` names; how many it deleted (0: there was none).
async fn delete_by_id<T: Send + Sync>(collection: &Collection<T>, id: &str) -> StoreResult<u64> {
    let done = collection.delete_one(doc! {"_id": id}).await.map_err(unavailable)?;
    Ok(done.deleted_count)
}

/// `Ok` when a write by id matched (`count` > 0), else `NotFound`.
fn matched(count: u64) -> StoreResult<()> {
    if count == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

fn filter_doc(filter: &ConversationFilter) -> Document {
    let mut d = Document::new();
    if let Some(category) = &filter.category {
        d.insert("category", category);
    }
    if let Some(agent) = &filter.agent_id {
        d.insert("agent_id", agent);
    }
    if let Some(desk) = archive::desk_state::desk_query(filter) {
        d.extend(desk);
    }
    let mut paired = Document::new();
    if let Some(from) = filter.from {
        paired.insert("$gte", from);
    }
    if let Some(to) = filter.to {
        paired.insert("$lt", to);
    }
    if !paired.is_empty() {
        d.insert("paired_at", paired);
    }
    d
}

#[async_trait]
impl Store for MongoStore {
    fn backend(&self) -> &'static str {
        "mongodb"
    }

    /// Larger than the default: a batch costs ~0.3 ms per conversation in it (one bucket
    /// each) plus ~13 µs per message on SecantusDB, so a lagging archive catches up only
    /// if its batches can grow. With 500 chats, 2,000 events made buckets of ~4 messages
    /// and archived ~12k msg/s (bench, 25k offered); 20,000 keeps up with the 25k.
    fn max_batch(&self) -> usize {
        20_000
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.run_command(doc! {"ping": 1}).await.map_err(unavailable)?;
        Ok(())
    }

    async fn shared_attachments(
        &self,
    ) -> Option<std::io::Result<(crate::attachments::SharedAttachmentStore, Vec<u8>)>> {
        Some(
            attachments::MongoAttachmentStore::open(&self.db)
                .await
                .map(|(store, key)| (Arc::new(store) as crate::attachments::SharedAttachmentStore, key)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_journaled_and_majority_on_a_replica_set_unless_the_uri_says_otherwise() {
        let rs = durable_write_concern(None, true);
        assert_eq!(rs.w, Some(Acknowledgment::Majority));
        assert_eq!(rs.journal, Some(true));
        assert_eq!(rs.w_timeout, Some(MAJORITY_TIMEOUT));
        let alone = durable_write_concern(None, false);
        assert_eq!(
            (alone.w, alone.journal, alone.w_timeout),
            (Some(Acknowledgment::Nodes(1)), Some(true), None)
        );
        // The URI's options win field by field.
        let parsed = |uri: &str| mongodb::options::ConnectionString::parse(uri).unwrap().write_concern;
        let fast = durable_write_concern(parsed("mongodb://h/?w=1&journal=false").as_ref(), true);
        assert_eq!((fast.w, fast.journal), (Some(Acknowledgment::Nodes(1)), Some(false)));
        let two = durable_write_concern(parsed("mongodb://h/?w=2&wtimeoutMS=500").as_ref(), false);
        assert_eq!(
            (two.w, two.journal, two.w_timeout),
            (
                Some(Acknowledgment::Nodes(2)),
                Some(true),
                Some(Duration::from_millis(500))
            )
        );
    }
}
