//! Conversations' lasting state in the embedded store: one table by id, and the indexes
//! changed in the same write transaction as the record: the customer's conversations
//! (customer key, opened at, id), the snoozes by time (until, id), and the conversations
//! not resolved (what inboxes mostly list; a list that asks for resolved ones walks all).

use std::collections::HashSet;

use async_trait::async_trait;

use super::{EmbeddedStore, ReadableTable, TableDefinition, all, create, decode, put, unavailable};
use crate::store::{
    ConversationRecord, ConversationStatus, ConversationStore, InboxQuery, Millis, StoreError, StoreResult,
    longest_waiting_first,
};

/// Conversation id → JSON [`ConversationRecord`].
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversation_records");
/// (customer key, opened at, conversation id): a customer's conversations.
const BY_CUSTOMER: TableDefinition<(&str, i64, &str), ()> = TableDefinition::new("conversation_records_by_customer");
/// (snoozed until, conversation id): the snoozes, earliest first.
const SNOOZES: TableDefinition<(i64, &str), ()> = TableDefinition::new("conversation_snoozes");
/// Conversation id of each conversation not resolved.
const UNRESOLVED: TableDefinition<&str, ()> = TableDefinition::new("conversation_records_unresolved");

/// Creates the tables in a new (or older) store file, at open.
pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&RECORDS, &BY_CUSTOMER, &SNOOZES, &UNRESOLVED])
}

/// A listing's status and label filters, checked in its read transaction against the
/// records table: one point read per candidate, and none when the filter asks nothing of
/// them.
pub(super) struct DeskCheck {
    records: redb::ReadOnlyTable<&'static str, &'static [u8]>,
}

impl DeskCheck {
    /// `None` when `filter` has no status or label to check.
    pub(super) fn of(
        tx: &redb::ReadTransaction,
        filter: &crate::store::ConversationFilter,
    ) -> StoreResult<Option<Self>> {
        if !filter.on_desk_state() {
            return Ok(None);
        }
        let records = tx.open_table(RECORDS).map_err(unavailable)?;
        Ok(Some(Self { records }))
    }

    /// Does conversation `id` pass `filter`'s status and label?
    pub(super) fn admits(&self, filter: &crate::store::ConversationFilter, id: &str) -> StoreResult<bool> {
        let record = match self.records.get(id).map_err(unavailable)? {
            Some(found) => Some(decode::<ConversationRecord>(found.value())?),
            None => None,
        };
        Ok(filter.admits(record.as_ref()))
    }
}

/// Reads the records of `ids` (those still there).
fn records_of(
    records: &impl ReadableTable<&'static str, &'static [u8]>,
    ids: impl IntoIterator<Item = String>,
) -> StoreResult<Vec<ConversationRecord>> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(rec) = records.get(id.as_str()).map_err(unavailable)? {
            out.push(decode::<ConversationRecord>(rec.value())?);
        }
    }
    Ok(out)
}

/// Every record `query` asks for, in no order and without its limit: from the unresolved
/// index unless it asks for resolved ones too.
fn matching(tx: &redb::ReadTransaction, query: &InboxQuery) -> StoreResult<Vec<ConversationRecord>> {
    let records = tx.open_table(RECORDS).map_err(unavailable)?;
    let wants_resolved = query.statuses.is_empty() || query.statuses.contains(&ConversationStatus::Resolved);
    let mut out = if wants_resolved {
        all::<ConversationRecord>(&records)?
    } else {
        let unresolved = tx.open_table(UNRESOLVED).map_err(unavailable)?;
        let mut ids = Vec::new();
        for row in unresolved.iter().map_err(unavailable)? {
            ids.push(row.map_err(unavailable)?.0.value().to_string());
        }
        records_of(&records, ids)?
    };
    out.retain(|r| query.matches(r));
    Ok(out)
}

/// Erases conversation `id`'s record and its index entries (a customer's data erased on
/// request), in the erasure's transaction.
pub(super) fn erase(tx: &redb::WriteTransaction, id: &str) -> StoreResult<()> {
    let mut records = tx.open_table(RECORDS).map_err(unavailable)?;
    let Some(old) = records_of(&records, [id.to_string()])?.pop() else {
        return Ok(());
    };
    let mut by_customer = tx.open_table(BY_CUSTOMER).map_err(unavailable)?;
    for key in &old.customer_keys {
        by_customer
            .remove((key.as_str(), old.opened_at, id))
            .map_err(unavailable)?;
    }
    if let Some(until) = old.snoozed_until {
        tx.open_table(SNOOZES)
            .map_err(unavailable)?
            .remove((until, id))
            .map_err(unavailable)?;
    }
    tx.open_table(UNRESOLVED)
        .map_err(unavailable)?
        .remove(id)
        .map_err(unavailable)?;
    records.remove(id).map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl ConversationStore for EmbeddedStore {
    async fn conversation_record(&self, id: &str) -> StoreResult<ConversationRecord> {
        let id = id.to_string();
        self.read(move |tx| {
            let records = tx.open_table(RECORDS).map_err(unavailable)?;
            records_of(&records, [id])?.pop().ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn put_conversation_record(&self, record: &ConversationRecord) -> StoreResult<()> {
        let record = record.clone();
        self.write(move |tx| put_record(tx, &record)).await
    }

    async fn put_conversation_records(&self, records: &[ConversationRecord]) -> StoreResult<Vec<StoreResult<()>>> {
        let records = records.to_vec();
        // One transaction, one durable commit (and one fold) for the lot: a refusal stores
        // nothing of its record (`put_record` checks before it writes), any other failure
        // aborts them all.
        self.write(move |tx| {
            let mut refused: HashSet<&str> = HashSet::new();
            let mut answers = Vec::with_capacity(records.len());
            for record in &records {
                let answer = if refused.contains(record.id.as_str()) {
                    Err(StoreError::Conflict)
                } else {
                    match put_record(tx, record) {
                        Ok(()) => Ok(()),
                        Err(e @ (StoreError::Conflict | StoreError::NotFound)) => Err(e),
                        Err(e) => return Err(e),
                    }
                };
                if answer.is_err() {
                    refused.insert(record.id.as_str());
                }
                answers.push(answer);
            }
            Ok(answers)
        })
        .await
    }

    async fn conversation_records(&self, ids: &[String]) -> StoreResult<Vec<ConversationRecord>> {
        let ids = ids.to_vec();
        self.read(move |tx| {
            let records = tx.open_table(RECORDS).map_err(unavailable)?;
            records_of(&records, ids)
        })
        .await
    }

    async fn inbox(&self, query: &InboxQuery) -> StoreResult<Vec<ConversationRecord>> {
        let query = query.clone();
        self.read(move |tx| {
            let mut out = matching(tx, &query)?;
            out.sort_by(longest_waiting_first);
            out.truncate(query.limit);
            Ok(out)
        })
        .await
    }

    async fn count_inbox(&self, query: &InboxQuery) -> StoreResult<u64> {
        let query = query.clone();
        self.read(move |tx| Ok(matching(tx, &query)?.len() as u64)).await
    }

    async fn customer_conversation_records(
        &self,
        customer_key: &str,
        limit: usize,
    ) -> StoreResult<Vec<ConversationRecord>> {
        let key = customer_key.to_string();
        self.read(move |tx| {
            let records = tx.open_table(RECORDS).map_err(unavailable)?;
            let by_customer = tx.open_table(BY_CUSTOMER).map_err(unavailable)?;
            let range = by_customer
                .range((key.as_str(), i64::MIN, "")..=(key.as_str(), i64::MAX, "\u{10FFFF}"))
                .map_err(unavailable)?;
            let mut ids = Vec::new();
            // Newest first: the range backwards.
            for row in range.rev().take(limit) {
                ids.push(row.map_err(unavailable)?.0.value().2.to_string());
            }
            records_of(&records, ids)
        })
        .await
    }

    async fn snoozes_due(&self, now: Millis, limit: usize) -> StoreResult<Vec<ConversationRecord>> {
        self.read(move |tx| {
            let records = tx.open_table(RECORDS).map_err(unavailable)?;
            let snoozes = tx.open_table(SNOOZES).map_err(unavailable)?;
            let mut ids = Vec::new();
            for row in snoozes
                .range((i64::MIN, "")..=(now, "\u{10FFFF}"))
                .map_err(unavailable)?
                .take(limit)
            {
                ids.push(row.map_err(unavailable)?.0.value().1.to_string());
            }
            records_of(&records, ids)
        })
        .await
    }
}

/// Stores `record` as `put_conversation_record` says, in `tx`: a refusal (`Conflict`,
/// `NotFound`) is decided before anything is written.
fn put_record(tx: &redb::WriteTransaction, record: &ConversationRecord) -> StoreResult<()> {
    let mut records = tx.open_table(RECORDS).map_err(unavailable)?;
    let mut by_customer = tx.open_table(BY_CUSTOMER).map_err(unavailable)?;
    let mut snoozes = tx.open_table(SNOOZES).map_err(unavailable)?;
    let mut unresolved = tx.open_table(UNRESOLVED).map_err(unavailable)?;
    let id = record.id.as_str();
    let stored = match records.get(id).map_err(unavailable)? {
        Some(rec) => Some(decode::<ConversationRecord>(rec.value())?),
        None => None,
    };
    match (&stored, record.version) {
        // An erased conversation is never stored again.
        (None, 1) if super::erased::is_erased(&super::erased::tombstones(tx)?, id)? => {
            return Err(StoreError::NotFound);
        }
        (None, 1) => {}
        (None, _) => return Err(StoreError::NotFound),
        (Some(stored), version) if version > 1 && stored.version == version - 1 => {}
        (Some(_), _) => return Err(StoreError::Conflict),
    }
    // Out of the indexes as it was, into them as it is.
    if let Some(old) = &stored {
        for key in &old.customer_keys {
            by_customer
                .remove((key.as_str(), old.opened_at, id))
                .map_err(unavailable)?;
        }
        if let Some(until) = old.snoozed_until {
            snoozes.remove((until, id)).map_err(unavailable)?;
        }
    }
    for key in &record.customer_keys {
        by_customer
            .insert((key.as_str(), record.opened_at, id), ())
            .map_err(unavailable)?;
    }
    if let (ConversationStatus::Snoozed, Some(until)) = (record.status, record.snoozed_until) {
        snoozes.insert((until, id), ()).map_err(unavailable)?;
    }
    if record.status == ConversationStatus::Resolved {
        unresolved.remove(id).map_err(unavailable)?;
    } else {
        unresolved.insert(id, ()).map_err(unavailable)?;
    }
    put(&mut records, id, record)
}
