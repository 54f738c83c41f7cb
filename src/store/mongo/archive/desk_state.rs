//! The archive's copy of each conversation's status and labels, on MongoDB.
//!
//! A conversation's record (`conversation_records`, `mongo/conversations.rs`) is the truth
//! of its status and labels; the archive's listing, search and export filter on them
//! together with the archive's own fields (category, agent, time, words), exactly and with
//! the total counted by the server. A join at read time would cost a record lookup per
//! candidate (or an `$in` of every matching record, unbounded), so each record's `status`,
//! `labels` and `version` are copied onto its conversation's document (`desk_status`,
//! `desk_labels`, `desk_version`): one small update when a record changes (a status set, a
//! label put on, a pairing: a few per conversation), none per message, so the archive's
//! writes stay as cheap as they were.
//!
//! A copy never goes back in time: it is written only over an older version, or none. An
//! opening stored after its record's change is given the copy as it is stored (the
//! opening first, then a read of the records), so of "record changed" and "opening stored"
//! the later one copies, in either order. A document without a copy (no record: a buddy
//! chat, or one archived before statuses and not migrated yet) passes no status or label
//! filter, as on the other stores.
//! A copy a failed write left behind is made good by the repair of the records marked
//! `copy_pending` (`mongo/conversations.rs`), at start and every minute.
//! Databases from before the copy get it once at start-up
//! ([`MongoStore::copy_old_desk_state`]), which leaves a marker in `migrations`.

use super::*;
use crate::store::mongo::conversations::{CONVERSATION_RECORDS, status_word};
use crate::store::{ConversationRecord, ConversationStatus, ConversationStore};

pub(in crate::store::mongo) const DESK_STATUS: &str = "desk_status";
pub(in crate::store::mongo) const DESK_LABELS: &str = "desk_labels";
const DESK_VERSION: &str = "desk_version";

/// The `migrations` marker saying every record's copy was made.
const COPIED_MARKER: &str = "desk_state";

/// The update statement that copies `record` onto its conversation's document, unless the
/// document holds this version or a later one.
fn copy_statement(record: &ConversationRecord) -> StoreResult<Document> {
    let version = i64::try_from(record.version).map_err(unavailable)?;
    let status = status_word(record.status);
    Ok(doc! {
        "q": {"_id": &record.id, "$or": [{DESK_VERSION: {"$exists": false}}, {DESK_VERSION: {"$lt": version}}]},
        "u": {"$set": {DESK_STATUS: status, DESK_LABELS: &record.labels, DESK_VERSION: version}},
    })
}

/// The part of a listing's query that `filter`'s status and label make (`None`: neither).
pub(in crate::store::mongo) fn desk_query(filter: &ConversationFilter) -> Option<Document> {
    if !filter.on_desk_state() {
        return None;
    }
    let mut query = Document::new();
    if let Some(label) = &filter.label {
        // A document without a copy carries no label.
        query.insert(DESK_LABELS, label.as_str());
    }
    if !filter.statuses.is_empty() {
        let words: Vec<&str> = filter.statuses.iter().map(|s| status_word(*s)).collect();
        query.insert(DESK_STATUS, doc! {"$in": words});
    }
    Some(query)
}

/// Does a conversation document (read with the copy's fields) pass `filter`'s status and label?
pub(in crate::store::mongo) fn desk_passes(d: &Document, filter: &ConversationFilter) -> bool {
    let copied: Option<ConversationStatus> = d.get(DESK_STATUS).and_then(|s| bson::from_bson(s.clone()).ok());
    let labels: Vec<String> = d
        .get_array(DESK_LABELS)
        .map(|ls| ls.iter().filter_map(|l| l.as_str().map(String::from)).collect())
        .unwrap_or_default();
    passes_state(filter, copied, &labels)
}

/// [`desk_passes`] on what was read of a document: the copy's status (`None`: no copy,
/// which passes neither filter, as [`ConversationFilter::admits`] says) and labels.
pub(in crate::store::mongo) fn passes_state(
    filter: &ConversationFilter,
    copied: Option<ConversationStatus>,
    labels: &[String],
) -> bool {
    match copied {
        Some(status) => filter.admits_state(status, labels),
        None => !filter.on_desk_state(),
    }
}

impl MongoStore {
    /// Copies each of `records` onto its conversation's document (see the module comment).
    pub(in crate::store::mongo) async fn copy_desk_state(&self, records: &[ConversationRecord]) -> StoreResult<()> {
        for chunk in records.chunks(UPDATE_CHUNK) {
            let statements = chunk.iter().map(copy_statement).collect::<StoreResult<Vec<_>>>()?;
            if let Some((_, code, message)) = self.update_command(statements, false).await?.into_iter().next() {
                return Err(unavailable(format!(
                    "copying a conversation's status: {message} ({code})"
                )));
            }
        }
        Ok(())
    }

    /// Just after openings `ids` were stored: the copies of those that have a record.
    pub(super) async fn copy_desk_state_of(&self, ids: &[String]) -> StoreResult<()> {
        let records = self.conversation_records(ids).await?;
        self.copy_desk_state(&records).await
    }

    /// Once per database: every record's copy (records stored before the copy existed).
    pub(in crate::store::mongo) async fn copy_old_desk_state(&self) -> StoreResult<()> {
        if self.migrated(COPIED_MARKER).await? {
            return Ok(());
        }
        let records = self.collection(CONVERSATION_RECORDS);
        let mut cursor = records.find(doc! {}).await.map_err(unavailable)?;
        let (mut batch, mut copied) = (Vec::new(), 0u64);
        while let Some(record) = cursor.try_next().await.map_err(unavailable)? {
            batch.push(record);
            if batch.len() == UPDATE_CHUNK {
                self.copy_desk_state(&std::mem::take(&mut batch)).await?;
                copied += UPDATE_CHUNK as u64;
            }
        }
        copied += batch.len() as u64;
        self.copy_desk_state(&batch).await?;
        if copied > 0 {
            tracing::info!(copied, "copied the conversations' statuses and labels onto the archive");
        }
        self.mark_migrated(COPIED_MARKER).await
    }
}
