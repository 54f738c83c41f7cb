//! The conversation archive's interface; its records are defined in the parent module,
//! as every concern reads them.

use super::{ArchiveEvent, Conversation, ConversationFilter, ConversationNote, Page, StoreResult};
use async_trait::async_trait;

/// The conversation archive: the writer's batches in, listings, search and whole
/// conversations (with their agents' notes) out.
#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Applies a batch of archive events in order. Idempotent per event.
    async fn archive(&self, batch: &[ArchiveEvent]) -> StoreResult<()>;
    /// Conversations matching `filter`, newest paired first, and the total count before paging.
    async fn conversations(&self, filter: &ConversationFilter, page: Page) -> StoreResult<(Vec<Conversation>, u64)>;
    /// One conversation, whole: its messages, transfers, rating and notes.
    async fn conversation(&self, id: &str) -> StoreResult<Conversation>;
    /// The agents' notes on conversation `conversation_id`, in `at` order, then by id:
    /// kept even when the conversation's opening is not stored (yet). An unknown
    /// conversation has none (an empty list, not `NotFound`).
    async fn conversation_notes(&self, conversation_id: &str) -> StoreResult<Vec<ConversationNote>>;
}
