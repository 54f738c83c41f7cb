//! Conversations' lasting state, in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn conversation_record(&self, id: &str) -> StoreResult<ConversationRecord> {
        self.with(|s| s.records.get(id).cloned().ok_or(StoreError::NotFound))
    }

    async fn put_conversation_record(&self, record: &ConversationRecord) -> StoreResult<()> {
        self.with(|s| {
            let stored = s.records.get(&record.id).map(|r| r.version);
            match (stored, record.version) {
                // An erased conversation is never stored again.
                (None, 1) if s.erased.contains(&record.id) => return Err(StoreError::NotFound),
                (None, 1) => {}
                (None, _) => return Err(StoreError::NotFound),
                (Some(stored), version) if version > 1 && stored == version - 1 => {}
                (Some(_), _) => return Err(StoreError::Conflict),
            }
            s.records.insert(record.id.clone(), record.clone());
            Ok(())
        })
    }

    async fn conversation_records(&self, ids: &[String]) -> StoreResult<Vec<ConversationRecord>> {
        self.with(|s| Ok(ids.iter().filter_map(|id| s.records.get(id).cloned()).collect()))
    }

    async fn inbox(&self, query: &InboxQuery) -> StoreResult<Vec<ConversationRecord>> {
        self.with(|s| {
            let mut out: Vec<ConversationRecord> = s.records.values().filter(|r| query.matches(r)).cloned().collect();
            out.sort_by(longest_waiting_first);
            out.truncate(query.limit);
            Ok(out)
        })
    }

    async fn count_inbox(&self, query: &InboxQuery) -> StoreResult<u64> {
        self.with(|s| Ok(s.records.values().filter(|r| query.matches(r)).count() as u64))
    }

    async fn customer_conversation_records(
        &self,
        customer_key: &str,
        limit: usize,
    ) -> StoreResult<Vec<ConversationRecord>> {
        self.with(|s| {
            let mut out: Vec<ConversationRecord> = s
                .records
                .values()
                .filter(|r| r.customer_keys.iter().any(|k| k == customer_key))
                .cloned()
                .collect();
            out.sort_by(|a, b| (b.opened_at, &b.id).cmp(&(a.opened_at, &a.id)));
            out.truncate(limit);
            Ok(out)
        })
    }

    async fn snoozes_due(&self, now: Millis, limit: usize) -> StoreResult<Vec<ConversationRecord>> {
        self.with(|s| {
            let mut out: Vec<ConversationRecord> = s
                .records
                .values()
                .filter(|r| r.status == ConversationStatus::Snoozed && r.snoozed_until.is_some_and(|t| t <= now))
                .cloned()
                .collect();
            out.sort_by_key(|r| (r.snoozed_until, r.id.clone()));
            out.truncate(limit);
            Ok(out)
        })
    }
}
