//! A customer's earlier conversations, email and transcript, in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl CustomerStore for MemoryStore {
    async fn customer_conversations(&self, key: &CustomerKey, limit: u64) -> StoreResult<Vec<Conversation>> {
        self.with(|s| {
            let hits: Vec<&Conversation> = s
                .conversations
                .iter()
                .filter(|c| key.matches(&c.opened.customer))
                .collect();
            Ok(s.newest_paired(hits, Page { offset: 0, limit }).0)
        })
    }

    async fn set_customer_email(&self, id: &str, email: &str) -> StoreResult<()> {
        self.with(|s| {
            let index = *s.by_id.get(id).ok_or(StoreError::NotFound)?;
            s.conversations[index].opened.customer.email = Some(email.to_string());
            Ok(())
        })
    }

    async fn customer_transcript(&self, id: &str) -> StoreResult<CustomerTranscript> {
        self.with(|s| {
            let index = *s.by_id.get(id).ok_or(StoreError::NotFound)?;
            // The notes live in `s.notes`, which this never reads.
            let c = &s.conversations[index];
            Ok(CustomerTranscript {
                opened: c.opened.clone(),
                closed: c.closed.clone(),
                messages: c.messages.clone(),
                rating: s.ratings.get(id).cloned(),
            })
        })
    }
}
