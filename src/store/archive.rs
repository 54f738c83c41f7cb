//! The conversation archive's interface; its records are defined in the parent module,
//! as every concern reads them.

use std::sync::Arc;

use super::{ArchiveEvent, Conversation, ConversationFilter, ConversationNote, Page, StoreResult};
use async_trait::async_trait;

/// A batch of archive events shared between the archive's writer, which keeps it until
/// the store took it (to write it again after a failure), and a store that holds events
/// after the call (the embedded store, until its fold): both hold it, neither copies it.
pub type SharedBatch = Arc<Vec<ArchiveEvent>>;

/// The conversation archive: the writer's batches in, listings, search and whole
/// conversations (with their agents' notes) out.
#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Applies a batch of archive events in order. Idempotent per event.
    async fn archive(&self, batch: &[ArchiveEvent]) -> StoreResult<()>;
    /// [`ArchiveStore::archive`] for the writer's shared batch: a store that keeps the
    /// events after the call keeps the batch itself instead of a copy of each event.
    async fn archive_shared(&self, batch: SharedBatch) -> StoreResult<()> {
        self.archive(&batch).await
    }
    /// Conversations matching `filter`, newest paired first, and the total count before paging.
    async fn conversations(&self, filter: &ConversationFilter, page: Page) -> StoreResult<(Vec<Conversation>, u64)>;
    /// One conversation, whole: its messages, transfers, rating and notes.
    async fn conversation(&self, id: &str) -> StoreResult<Conversation>;
    /// The agents' notes on conversation `conversation_id`, in `at` order, then by id:
    /// kept even when the conversation's opening is not stored (yet). An unknown
    /// conversation has none (an empty list, not `NotFound`).
    async fn conversation_notes(&self, conversation_id: &str) -> StoreResult<Vec<ConversationNote>>;
}
