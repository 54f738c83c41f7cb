//! Conversations' lasting state in MongoDB: collection `conversation_records`, `_id` the
//! conversation's id. A change is a `replace_one` filtered on the version it replaces, so
//! of two nodes changing one conversation at once, one wins and the other is told
//! `Conflict`. Indexes serve the inbox (holder, status, status_since), a customer's
//! conversations (customer_keys, opened_at) and the snoozes (status, snoozed_until).
//!
//! Each change is copied onto the conversation's archive document (its status and labels,
//! `mongo/archive/desk_state.rs`) by a second write. So that no failure between the two
//! leaves the copy behind for good, a record is written with `copy_pending` and loses it
//! once its copy is made; the records still marked (the copy failed, or the process died
//! between the writes) are copied again at start-up and every
//! [`crate::store::REPAIR_EVERY`] ([`ConversationStore::repair_record_copies`]).

use async_trait::async_trait;

use bson::{Document, doc};
use futures_util::TryStreamExt;
use mongodb::IndexModel;

use super::{MongoStore, Named, ensure_indexes, insert_new, unavailable};
use crate::store::{
    ConversationRecord, ConversationStatus, ConversationStore, Holder, InboxQuery, Millis, StoreError, StoreResult,
};

pub(super) fn status_word(status: ConversationStatus) -> &'static str {
    match status {
        ConversationStatus::Open => "open",
        ConversationStatus::Pending => "pending",
        ConversationStatus::Snoozed => "snoozed",
        ConversationStatus::Resolved => "resolved",
    }
}

/// The filter of an inbox query (what `InboxQuery::matches` says, as MongoDB reads it).
fn inbox_filter(query: &InboxQuery) -> Document {
    let mut filter = Document::new();
    match &query.holder {
        Holder::Anyone => {}
        Holder::Nobody => {
            filter.insert("holder", bson::Bson::Null);
        }
        Holder::Agent(agent) => {
            filter.insert("holder", agent.as_str());
        }
    }
    if !query.statuses.is_empty() {
        let statuses: Vec<&str> = query.statuses.iter().map(|s| status_word(*s)).collect();
        filter.insert("status", doc! {"$in": statuses});
    }
    if let Some(category) = &query.category {
        filter.insert("category", category.as_str());
    }
    if let Some(label) = &query.label {
        filter.insert("labels", label.as_str());
    }
    filter
}

/// Set on a record whose copy onto its archive document may not be made yet.
const COPY_PENDING: &str = "copy_pending";

/// How many marked records one pass of the repair copies at a time.
const REPAIR_BATCH: usize = 500;

/// `record` as its document, marked [`COPY_PENDING`].
fn pending_document(record: &ConversationRecord) -> StoreResult<Document> {
    let mut document = bson::to_document(record).map_err(unavailable)?;
    document.insert(COPY_PENDING, true);
    Ok(document)
}

/// The conversation records, typed; and the same collection's documents as they are
/// written (with the copy mark `pending_document` adds).
pub(super) const CONVERSATION_RECORDS: Named<ConversationRecord> = Named::new("conversation_records");
const RECORD_DOCUMENTS: Named<Document> = Named::new("conversation_records");

impl MongoStore {
    /// The copies of `records` were made: unmarked, each only as the version copied (a
    /// newer change keeps its own mark until its own copy).
    async fn copies_made(&self, records: &[ConversationRecord]) -> StoreResult<()> {
        for record in records {
            let version = i64::try_from(record.version).map_err(unavailable)?;
            self.collection(RECORD_DOCUMENTS)
                .update_one(
                    doc! {"_id": &record.id, "version": version, COPY_PENDING: true},
                    doc! {"$unset": {COPY_PENDING: ""}},
                )
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Copies the records still marked [`COPY_PENDING`] onto their archive documents: how
    /// many. The marked records are read in batches by id, each batch going on after the
    /// last id of the one before, so a record whose copy keeps failing is passed over, not
    /// read again and again: a batch whose copy fails is copied one record at a time, each
    /// record copied is unmarked, and those that fail are left marked for the next pass
    /// (logged in one line a batch).
    pub(super) async fn copy_pending_records(&self) -> StoreResult<u64> {
        let mut copied = 0u64;
        let mut after: Option<String> = None;
        loop {
            let mut filter = doc! {COPY_PENDING: true};
            if let Some(last) = &after {
                filter.insert("_id", doc! {"$gt": last});
            }
            let marked = self.find_records(filter, doc! {"_id": 1}, REPAIR_BATCH).await?;
            let Some(last) = marked.last() else {
                return Ok(copied);
            };
            after = Some(last.id.clone());
            copied += match self.copy_desk_state(&marked).await {
                Ok(()) => {
                    self.copies_made(&marked).await?;
                    marked.len() as u64
                }
                Err(_) => self.copy_one_by_one(&marked).await?,
            };
            if marked.len() < REPAIR_BATCH {
                return Ok(copied);
            }
        }
    }

    /// Copies each of `records` on its own (their copy as one batch failed): how many were
    /// copied, each of them unmarked; those that fail stay marked, logged in one line (the
    /// first's id and error, and how many): a server that went away mid-pass fails them all,
    /// which must not be a line each.
    async fn copy_one_by_one(&self, records: &[ConversationRecord]) -> StoreResult<u64> {
        let mut copied = 0u64;
        let mut failed: Option<(&str, StoreError)> = None;
        let mut failures = 0usize;
        for record in records {
            let one = std::slice::from_ref(record);
            match self.copy_desk_state(one).await {
                Ok(()) => {
                    self.copies_made(one).await?;
                    copied += 1;
                }
                Err(e) => {
                    failures += 1;
                    failed.get_or_insert((record.id.as_str(), e));
                }
            }
        }
        if let Some((first, error)) = failed {
            tracing::warn!(
                conversation = first,
                error = %error,
                failures,
                "conversations' statuses could not be copied onto their archives; the next repair tries again"
            );
        }
        Ok(copied)
    }

    pub(super) async fn create_conversation_record_indexes(&self) -> StoreResult<()> {
        let indexes = [
            doc! {"holder": 1, "status": 1, "status_since": 1},
            doc! {"customer_keys": 1, "opened_at": -1},
            doc! {"status": 1, "snoozed_until": 1},
            doc! {COPY_PENDING: 1},
        ]
        .map(|keys| IndexModel::builder().keys(keys).build());
        ensure_indexes(&self.collection(CONVERSATION_RECORDS), indexes).await
    }

    /// `record`, just stored, copied onto its archive document (`mongo/archive/desk_state.rs`)
    /// and unmarked. The change stands either way: a copy that failed is logged, and the
    /// repair (or the record's next change, or the opening's store) copies it.
    async fn copied_to_archive(&self, record: &ConversationRecord) -> StoreResult<()> {
        let record = std::slice::from_ref(record);
        let copied = match self.copy_desk_state(record).await {
            Ok(()) => self.copies_made(record).await,
            Err(e) => Err(e),
        };
        if let Err(e) = copied {
            tracing::warn!(conversation = %record[0].id, error = %e, "a conversation's status was not copied onto its archive yet; the repair will");
        }
        Ok(())
    }

    async fn find_records(
        &self,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> StoreResult<Vec<ConversationRecord>> {
        let cursor = self
            .collection(CONVERSATION_RECORDS)
            .find(filter)
            .sort(sort)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(unavailable)?;
        cursor.try_collect().await.map_err(unavailable)
    }
}

#[async_trait]
impl ConversationStore for MongoStore {
    async fn conversation_record(&self, id: &str) -> StoreResult<ConversationRecord> {
        self.collection(CONVERSATION_RECORDS)
            .find_one(doc! {"_id": id})
            .await
            .map_err(unavailable)?
            .ok_or(StoreError::NotFound)
    }

    async fn put_conversation_record(&self, record: &ConversationRecord) -> StoreResult<()> {
        // The version this change replaces, as MongoDB keeps it.
        let before = i64::try_from(record.version).map_err(|_| StoreError::Conflict)? - 1;
        if record.version == 1 {
            // An erased conversation is never stored again.
            if !self.erased_among(&[record.id.as_str()]).await?.is_empty() {
                return Err(StoreError::NotFound);
            }
            insert_new(&self.collection(RECORD_DOCUMENTS), &pending_document(record)?).await?;
            return self.copied_to_archive(record).await;
        }
        let replaced = self
            .collection(RECORD_DOCUMENTS)
            .replace_one(doc! {"_id": &record.id, "version": before}, pending_document(record)?)
            .await
            .map_err(unavailable)?;
        if replaced.matched_count == 1 {
            return self.copied_to_archive(record).await;
        }
        // Not the version before: another change came first, or there is none.
        match self.conversation_record(&record.id).await {
            Ok(_) => Err(StoreError::Conflict),
            Err(e) => Err(e),
        }
    }

    async fn conversation_records(&self, ids: &[String]) -> StoreResult<Vec<ConversationRecord>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let found: Vec<ConversationRecord> = self
            .collection(CONVERSATION_RECORDS)
            .find(doc! {"_id": {"$in": ids}})
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        let mut by_id: std::collections::HashMap<String, ConversationRecord> =
            found.into_iter().map(|r| (r.id.clone(), r)).collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    async fn inbox(&self, query: &InboxQuery) -> StoreResult<Vec<ConversationRecord>> {
        self.find_records(inbox_filter(query), doc! {"status_since": 1, "_id": 1}, query.limit)
            .await
    }

    async fn count_inbox(&self, query: &InboxQuery) -> StoreResult<u64> {
        self.collection(CONVERSATION_RECORDS)
            .count_documents(inbox_filter(query))
            .await
            .map_err(unavailable)
    }

    async fn customer_conversation_records(
        &self,
        customer_key: &str,
        limit: usize,
    ) -> StoreResult<Vec<ConversationRecord>> {
        self.find_records(
            doc! {"customer_keys": customer_key},
            doc! {"opened_at": -1, "_id": -1},
            limit,
        )
        .await
    }

    async fn repair_record_copies(&self) -> StoreResult<u64> {
        self.copy_pending_records().await
    }

    async fn snoozes_due(&self, now: Millis, limit: usize) -> StoreResult<Vec<ConversationRecord>> {
        self.find_records(
            doc! {"status": "snoozed", "snoozed_until": {"$lte": now}},
            doc! {"snoozed_until": 1, "_id": 1},
            limit,
        )
        .await
    }
}
