//! Conversations' lasting state in MongoDB: collection `conversation_records`, `_id` the
//! conversation's id. A change is a `replace_one` filtered on the version it replaces, so
//! of two nodes changing one conversation at once, one wins and the other is told
//! `Conflict`. Indexes serve the inbox (holder, status, status_since), a customer's
//! conversations (customer_keys, opened_at) and the snoozes (status, snoozed_until).

use async_trait::async_trait;

use bson::{Document, doc};
use futures_util::TryStreamExt;
use mongodb::{Collection, IndexModel};

use super::{MongoStore, insert_new, unavailable};
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

impl MongoStore {
    fn records(&self) -> Collection<ConversationRecord> {
        self.db.collection("conversation_records")
    }

    pub(super) async fn create_conversation_record_indexes(&self) -> StoreResult<()> {
        let indexes = [
            doc! {"holder": 1, "status": 1, "status_since": 1},
            doc! {"customer_keys": 1, "opened_at": -1},
            doc! {"status": 1, "snoozed_until": 1},
        ]
        .map(|keys| IndexModel::builder().keys(keys).build());
        self.records().create_indexes(indexes).await.map_err(unavailable)?;
        Ok(())
    }

    /// `record`, just stored, copied onto its archive document (`mongo/archive/desk_state.rs`).
    /// The change stands either way: a copy that failed is logged, and the record's next
    /// change (or the opening's store) copies it.
    async fn copied_to_archive(&self, record: &ConversationRecord) -> StoreResult<()> {
        if let Err(e) = self.copy_desk_state(std::slice::from_ref(record)).await {
            tracing::warn!(conversation = %record.id, error = %e, "a conversation's status was not copied onto its archive");
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
            .records()
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
        self.records()
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
            insert_new(&self.records(), record).await?;
            return self.copied_to_archive(record).await;
        }
        let replaced = self
            .records()
            .replace_one(doc! {"_id": &record.id, "version": before}, record)
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
            .records()
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
        self.records()
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

    async fn snoozes_due(&self, now: Millis, limit: usize) -> StoreResult<Vec<ConversationRecord>> {
        self.find_records(
            doc! {"status": "snoozed", "snoozed_until": {"$lte": now}},
            doc! {"snoozed_until": 1, "_id": 1},
            limit,
        )
        .await
    }
}
