//! The MongoDB store, on the official `mongodb` driver.
//!
//! Why it is built this way:
//! - One document per conversation, with its messages embedded in a `messages`
//!   array: the history API always reads a whole conversation, so one read of
//!   one document answers it, and a chat is far below the 16 MiB document limit.
//!   Accounts and categories are small collections of their own.
//! - Every write is idempotent on natural ids, with no transactions (so a
//!   standalone server works):
//!   * Opened: upsert by `_id` with `$setOnInsert` only — a retry matches the
//!     existing document and changes nothing.
//!   * Message: pushed only by an update whose filter says the id is not in the
//!     array yet (`"messages.id": {$ne | $nin}`), so a retry matches nothing.
//!   * Closed: `$set` only where `closed` is still null — the first close wins.
//! - Batches: consecutive messages of one conversation are grouped. We first
//!   read the ids already stored (a projection on `messages.id`), drop those,
//!   and push the rest in ONE update, `$push: {$each: [...], $sort: {seq: 1}}`,
//!   guarded by `"messages.id": {$nin: [the ids pushed]}`. If that guard fails
//!   (a concurrent writer stored one of them in between), we fall back to one
//!   `$ne`-guarded push per message. A `$nin` guard alone would be wrong: on a
//!   partial retry it would refuse the new messages along with the old ones.
//!   `$sort` keeps the stored array in seq order even for late retries.
//! - Event order within a batch is kept where it matters: a conversation's
//!   pending messages are flushed before a later `Opened` of that id, so the
//!   result equals applying the events one by one (the reference store drops
//!   messages for a conversation it has not seen opened, and so do we).
//! - Indexes are created at start-up for each listing query; listing is
//!   filter + sort `paired_at` desc (`_id` desc breaks ties, as in the
//!   reference store) + skip/limit, with `count_documents` for the total.
//!   The indexes are ASCENDING (`{agent_id: 1, paired_at: 1, _id: 1}` …):
//!   MongoDB walks them backwards for the descending sort, so they serve
//!   exactly as well as descending ones, and SecantusDB (the MongoDB-wire
//!   server the tests run on) mishandles range bounds on descending index
//!   fields (an inclusive `$gte` on the boundary value drops it, for finds and
//!   counts alike), while ascending ones match MongoDB's results.
//! - Short server-selection and connect timeouts (2 s unless the URI sets its
//!   own) so an outage surfaces quickly as `StoreError::Unavailable`.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use super::record::{AccountRecord, ClosedRecord, MessageRecord};
use super::*;

const TIMEOUT: Duration = Duration::from_secs(2);
const DUPLICATE_KEY: i32 = 11000;

/// The MongoDB-backed store. Cheap to clone: the driver's client is a shared pool.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    accounts: Collection<AccountRecord>,
    categories: Collection<CategoryDoc>,
    conversations: Collection<ConversationDoc>,
}

impl MongoStore {
    /// Connects to `uri`, uses database `db`, checks the server answers and creates the indexes.
    pub async fn connect(uri: &str, db: &str) -> StoreResult<Self> {
        let mut options = ClientOptions::parse(uri).await.map_err(unavailable)?;
        options.server_selection_timeout.get_or_insert(TIMEOUT);
        options.connect_timeout.get_or_insert(TIMEOUT);
        options.app_name.get_or_insert_with(|| "switchboard".to_string());
        let client = Client::with_options(options).map_err(unavailable)?;
        let db = client.database(db);
        let store = Self {
            accounts: db.collection("accounts"),
            categories: db.collection("categories"),
            conversations: db.collection("conversations"),
            db,
        };
        store.ping().await?;
        store.create_indexes().await?;
        Ok(store)
    }

    async fn create_indexes(&self) -> StoreResult<()> {
        let named = |keys: Document, name: &str, unique: bool| {
            IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(name.to_string())
                        .unique(unique.then_some(true))
                        .build(),
                )
                .build()
        };
        self.accounts
            .create_index(named(doc! {"username": 1}, "username_unique", true))
            .await
            .map_err(unavailable)?;
        self.categories
            .create_index(named(doc! {"order": 1}, "creation_order", false))
            .await
            .map_err(unavailable)?;
        self.conversations
            .create_indexes([
                // Ascending on purpose (see the module comment); walked backwards for newest first.
                named(doc! {"agent_id": 1, "paired_at": 1, "_id": 1}, "agent_paired", false),
                named(doc! {"category": 1, "paired_at": 1, "_id": 1}, "category_paired", false),
                named(doc! {"paired_at": 1, "_id": 1}, "paired", false),
            ])
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn open(&self, o: &ConversationOpened) -> StoreResult<()> {
        let fresh = ConversationDoc::new(o);
        let mut set = bson::to_document(&fresh).map_err(unavailable)?;
        set.remove("_id");
        let upsert = || {
            self.conversations
                .update_one(doc! {"_id": &o.id}, doc! {"$setOnInsert": set.clone()})
                .upsert(true)
        };
        match upsert().await {
            Ok(_) => Ok(()),
            // Two upserts of the same new id raced; the loser retries and now matches the winner's document.
            Err(e) if is_duplicate_key(&e) => upsert().await.map(|_| ()).map_err(unavailable),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn close(&self, c: &ConversationClosed) -> StoreResult<()> {
        let closed = bson::to_bson(&ClosedRecord::from(c)).map_err(unavailable)?;
        self.conversations
            .update_one(
                doc! {"_id": &c.id, "closed": Bson::Null},
                doc! {"$set": {"closed": closed}},
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Appends `messages` (in batch order) to one conversation, skipping ids already stored.
    /// Appends each conversation's new messages with as few round trips as the
    /// server allows: one `update` command carries a guarded `$push` for every
    /// conversation of the batch. The guard (`last_seq` below the batch's first
    /// seq) makes a statement match nothing when any of its messages is stored
    /// already (a retry after a partial write) or the conversation is unknown; then
    /// those fall back to the careful path that reads the ids first. Messages arrive
    /// in seq order, so the fast path appends without sorting or scanning the array.
    async fn push_many(&self, pending: &[(&str, Vec<&ArchivedMessage>)]) -> StoreResult<()> {
        /// Command size at most, well under the server's 16 MiB document limit.
        const MAX_COMMAND_BYTES: usize = 8 << 20;
        let mut chunk: Vec<(&str, &[&ArchivedMessage])> = Vec::new();
        let mut statements = Vec::new();
        let mut bytes = 0;
        for (index, (id, messages)) in pending.iter().enumerate() {
            let first_seq = messages.first().map_or(0, |m| m.seq) as i64;
            let last_seq = messages.iter().map(|m| m.seq).max().unwrap_or(0) as i64;
            let docs = messages
                .iter()
                .map(|m| bson::to_bson(&MessageRecord::from(*m)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(unavailable)?;
            bytes += messages.iter().map(|m| m.text.len() + 128).sum::<usize>();
            statements.push(doc! {
                "q": {"_id": *id, "last_seq": {"$lt": first_seq}},
                "u": {"$push": {"messages": {"$each": docs}}, "$set": {"last_seq": last_seq}},
            });
            chunk.push((id, messages.as_slice()));
            if bytes >= MAX_COMMAND_BYTES || index + 1 == pending.len() {
                let reply = self
                    .db
                    .run_command(doc! {
                        "update": self.conversations.name(),
                        "updates": std::mem::take(&mut statements),
                        "ordered": false,
                    })
                    .await
                    .map_err(unavailable)?;
                let matched = reply
                    .get_i32("n")
                    .map(i64::from)
                    .or_else(|_| reply.get_i64("n"))
                    .unwrap_or(0);
                let failed = reply.get_array("writeErrors").is_ok_and(|e| !e.is_empty());
                if failed || matched != chunk.len() as i64 {
                    for (id, messages) in chunk.drain(..) {
                        self.push_messages(id, messages).await?;
                    }
                }
                chunk.clear();
                bytes = 0;
            }
        }
        Ok(())
    }

    async fn push_messages(&self, conversation_id: &str, messages: &[&ArchivedMessage]) -> StoreResult<()> {
        let raw: Collection<Document> = self.conversations.clone_with_type();
        let Some(existing) = raw
            .find_one(doc! {"_id": conversation_id})
            .projection(doc! {"messages.id": 1})
            .await
            .map_err(unavailable)?
        else {
            return Ok(()); // unknown conversation: dropped, as in the reference store
        };
        let mut seen: HashSet<String> = existing
            .get_array("messages")
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_document()?.get_str("id").ok().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let fresh: Vec<&ArchivedMessage> = messages.iter().copied().filter(|m| seen.insert(m.id.clone())).collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = fresh.iter().map(|m| m.id.as_str()).collect();
        let top = fresh.iter().map(|m| m.seq).max().unwrap_or(0) as i64;
        let docs = fresh
            .iter()
            .map(|m| bson::to_bson(&MessageRecord::from(*m)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        let pushed = raw
            .update_one(
                doc! {"_id": conversation_id, "messages.id": {"$nin": ids}},
                doc! {"$push": {"messages": {"$each": docs.clone(), "$sort": {"seq": 1}}}, "$max": {"last_seq": top}},
            )
            .await
            .map_err(unavailable)?;
        if pushed.matched_count == 1 {
            return Ok(());
        }
        // Someone stored some of these in between: fall back to one guarded push per message.
        for (m, d) in fresh.iter().zip(docs) {
            raw.update_one(
                doc! {"_id": conversation_id, "messages.id": {"$ne": &m.id}},
                doc! {"$push": {"messages": {"$each": [d], "$sort": {"seq": 1}}}, "$max": {"last_seq": m.seq as i64}},
            )
            .await
            .map_err(unavailable)?;
        }
        Ok(())
    }
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

fn filter_doc(filter: &ConversationFilter) -> Document {
    let mut d = Document::new();
    if let Some(category) = &filter.category {
        d.insert("category", category);
    }
    if let Some(agent) = &filter.agent_id {
        d.insert("agent_id", agent);
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

// ---- the document shapes: private mirrors of the model types ----

#[derive(Serialize, Deserialize)]
struct CategoryDoc {
    #[serde(rename = "_id")]
    id: String,
    name: String,
    /// A UUIDv7 taken at creation: sorts in creation order (monotonic within a process).
    order: String,
}

#[derive(Serialize, Deserialize)]
struct ConversationDoc {
    #[serde(rename = "_id")]
    id: String,
    kind: ConversationKind,
    category: Option<String>,
    customer_name: String,
    agent_id: String,
    agent_name: String,
    queued_at: Millis,
    paired_at: Millis,
    closed: Option<ClosedRecord>,
    #[serde(default)]
    messages: Vec<MessageRecord>,
    /// The highest `seq` stored: the cheap guard that makes appends idempotent
    /// without scanning the messages (a conversation's messages arrive in seq order).
    #[serde(default)]
    last_seq: i64,
}

impl ConversationDoc {
    fn new(o: &ConversationOpened) -> Self {
        Self {
            id: o.id.clone(),
            kind: o.kind,
            category: o.category.clone(),
            customer_name: o.customer_name.clone(),
            agent_id: o.agent_id.clone(),
            agent_name: o.agent_name.clone(),
            queued_at: o.queued_at,
            paired_at: o.paired_at,
            last_seq: 0,
            closed: None,
            messages: Vec::new(),
        }
    }
}

impl From<ConversationDoc> for Conversation {
    fn from(d: ConversationDoc) -> Self {
        let mut messages: Vec<ArchivedMessage> = d.messages.into_iter().map(ArchivedMessage::from).collect();
        // Stored sorted already ($push ... $sort); a stable sort here guards documents written by other tools.
        messages.sort_by_key(|m| m.seq);
        Conversation {
            closed: d.closed.map(|c| c.of(&d.id)),
            opened: ConversationOpened {
                id: d.id,
                kind: d.kind,
                category: d.category,
                customer_name: d.customer_name,
                agent_id: d.agent_id,
                agent_name: d.agent_name,
                queued_at: d.queued_at,
                paired_at: d.paired_at,
            },
            messages,
        }
    }
}

#[async_trait]
impl Store for MongoStore {
    fn backend(&self) -> &'static str {
        "mongodb"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.run_command(doc! {"ping": 1}).await.map_err(unavailable)?;
        Ok(())
    }

    async fn create_account(&self, account: Account) -> StoreResult<()> {
        self.accounts
            .insert_one(AccountRecord::from(&account))
            .await
            .map_err(conflict_or_unavailable)?;
        Ok(())
    }

    async fn update_account(&self, account: Account) -> StoreResult<()> {
        let id = account.id.clone();
        let result = self
            .accounts
            .replace_one(doc! {"_id": id}, AccountRecord::from(&account))
            .await
            .map_err(conflict_or_unavailable)?;
        if result.matched_count == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn account(&self, id: &str) -> StoreResult<Account> {
        let found = self.accounts.find_one(doc! {"_id": id}).await.map_err(unavailable)?;
        found.map(Account::from).ok_or(StoreError::NotFound)
    }

    async fn account_by_username(&self, username: &str) -> StoreResult<Account> {
        let found = self
            .accounts
            .find_one(doc! {"username": username})
            .await
            .map_err(unavailable)?;
        found.map(Account::from).ok_or(StoreError::NotFound)
    }

    async fn accounts(&self) -> StoreResult<Vec<Account>> {
        let cursor = self
            .accounts
            .find(doc! {})
            .sort(doc! {"created_at": 1, "_id": 1})
            .await
            .map_err(unavailable)?;
        let docs: Vec<AccountRecord> = cursor.try_collect().await.map_err(unavailable)?;
        Ok(docs.into_iter().map(Account::from).collect())
    }

    async fn categories(&self) -> StoreResult<Vec<Category>> {
        let cursor = self
            .categories
            .find(doc! {})
            .sort(doc! {"order": 1, "_id": 1})
            .await
            .map_err(unavailable)?;
        let docs: Vec<CategoryDoc> = cursor.try_collect().await.map_err(unavailable)?;
        Ok(docs.into_iter().map(|c| Category { id: c.id, name: c.name }).collect())
    }

    async fn create_category(&self, category: Category) -> StoreResult<()> {
        let doc = CategoryDoc {
            id: category.id,
            name: category.name,
            order: uuid::Uuid::now_v7().to_string(),
        };
        self.categories.insert_one(doc).await.map_err(conflict_or_unavailable)?;
        Ok(())
    }

    async fn rename_category(&self, id: &str, name: &str) -> StoreResult<()> {
        let result = self
            .categories
            .update_one(doc! {"_id": id}, doc! {"$set": {"name": name}})
            .await
            .map_err(unavailable)?;
        if result.matched_count == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn delete_category(&self, id: &str) -> StoreResult<()> {
        let result = self
            .categories
            .delete_one(doc! {"_id": id})
            .await
            .map_err(unavailable)?;
        if result.deleted_count == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn archive(&self, batch: &[ArchiveEvent]) -> StoreResult<()> {
        // Messages waiting to be pushed, grouped per conversation in order of first appearance.
        let mut pending: Vec<(&str, Vec<&ArchivedMessage>)> = Vec::new();
        for event in batch {
            match event {
                ArchiveEvent::Opened(o) => {
                    // Keep one-by-one semantics: messages before this Opened go first.
                    if let Some(i) = pending.iter().position(|(id, _)| *id == o.id) {
                        let (id, messages) = pending.remove(i);
                        self.push_messages(id, &messages).await?;
                    }
                    self.open(o).await?;
                }
                ArchiveEvent::Message {
                    conversation_id,
                    message,
                } => match pending.iter_mut().find(|(id, _)| *id == conversation_id.as_str()) {
                    Some((_, messages)) => messages.push(message),
                    None => pending.push((conversation_id, vec![message])),
                },
                // Closing is independent of the messages, so it need not wait for them.
                ArchiveEvent::Closed(c) => self.close(c).await?,
            }
        }
        self.push_many(&pending).await
    }

    async fn conversations(&self, filter: &ConversationFilter, page: Page) -> StoreResult<(Vec<Conversation>, u64)> {
        let query = filter_doc(filter);
        let total = self
            .conversations
            .count_documents(query.clone())
            .await
            .map_err(unavailable)?;
        // Mongo reads limit 0 as "no limit", so an empty page never reaches the server.
        if page.limit == 0 || page.offset >= total {
            return Ok((Vec::new(), total));
        }
        let cursor = self
            .conversations
            .find(query)
            .sort(doc! {"paired_at": -1, "_id": -1})
            .skip(page.offset)
            .limit(i64::try_from(page.limit).unwrap_or(i64::MAX))
            .await
            .map_err(unavailable)?;
        let docs: Vec<ConversationDoc> = cursor.try_collect().await.map_err(unavailable)?;
        Ok((docs.into_iter().map(Conversation::from).collect(), total))
    }

    async fn conversation(&self, id: &str) -> StoreResult<Conversation> {
        let found = self
            .conversations
            .find_one(doc! {"_id": id})
            .await
            .map_err(unavailable)?;
        found.map(Conversation::from).ok_or(StoreError::NotFound)
    }
}
