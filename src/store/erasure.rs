//! Erasing a customer's data on request (a GDPR erasure): what each store removes, and the
//! log that says it was done. The stores remove whole conversations — messages, agents'
//! notes, rating, transfers, the customer's details — and keep each erased conversation's
//! id as a tombstone, so that nothing of it is archived again: an event still in a node's
//! spool or journal, or a late writer on another node, finds the tombstone and is dropped.

use super::{Page, StoreResult};
use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use super::Millis;

/// What one erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    pub conversations: u64,
    pub messages: u64,
    pub notes: u64,
    pub ratings: u64,
    /// Offline messages left with the customer's email.
    pub offline_messages: u64,
}

impl Erased {
    pub fn add(&mut self, other: Erased) {
        self.conversations += other.conversations;
        self.messages += other.messages;
        self.notes += other.notes;
        self.ratings += other.ratings;
        self.offline_messages += other.offline_messages;
    }
}

/// The log's record of one erasure. It names the customer only by a SHA-256 of the key
/// they were found by, so the log itself keeps nothing of theirs, yet a second request
/// for the same person can be matched to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub id: String,
    pub at: Millis,
    /// The username of the admin who asked.
    pub by: String,
    /// `email`, `visitor` or `conversation` (one conversation of a customer who gave neither).
    pub found_by: String,
    /// Hex SHA-256 of what they were found by (the lower-cased email, the visitor key or
    /// the conversation id).
    pub key_sha256: String,
    pub erased: Erased,
}

/// A customer's data erased on request, and the log that says it was done.
/// Erasing conversations reaches into the archive, the notes and the ratings in one
/// write: the erasure owns that transaction, so it sits here, not with the archive.
#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// Erases the conversations `ids` whole (messages, notes, rating, transfers, the
    /// customer's details) and keeps their ids as tombstones: from now on any archive
    /// event of them (an opening, a message, a note) is dropped and a rating refused
    /// (`NotFound`). Ids not stored are tombstoned too. Idempotent.
    async fn erase_conversations(&self, ids: &[String]) -> StoreResult<Erased>;
    /// Erases the offline messages left with `email` (any case), their replies included.
    async fn erase_offline_messages_of(&self, email: &str) -> StoreResult<u64>;
    async fn add_erasure_record(&self, record: ErasureRecord) -> StoreResult<()>;
    /// The erasure log, newest first.
    async fn erasure_records(&self, page: Page) -> StoreResult<(Vec<ErasureRecord>, u64)>;
}
