//! Canned replies: short texts an agent inserts into the composer by a shortcut.
//!
//! The desk's list is kept by admins (`owner` is `None`) and each agent may keep their
//! own (`owner` is their account id). A shortcut is unique per owner: a unique key of
//! every backend decides, never a check followed by an insert. A reply applies to every
//! category when `categories` is empty, else only to those named.

use super::StoreResult;
use async_trait::async_trait;

use super::Millis;

/// One canned reply as stored; the serialising backends store it without its id: they
/// key it by the id (the embedded store's row key, MongoDB's `_id` beside these fields)
/// and put it back when reading.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CannedReply {
    #[serde(skip)]
    pub id: String,
    /// `None`: the desk's (admins keep it); `Some(account id)`: that agent's own.
    pub owner: Option<String>,
    /// `[a-z0-9_-]{1,32}`, unique per owner.
    pub shortcut: String,
    pub title: String,
    /// May name `{customer}`, `{customer_first_name}` and `{agent}`, filled in by the console.
    pub text: String,
    /// Category ids it applies to; empty: all (and absent in replies stored before).
    #[serde(default)]
    pub categories: Vec<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl CannedReply {
    /// Does it apply to a chat in `category` (a chat with no category: only replies for all)?
    pub fn applies_to(&self, category: Option<&str>) -> bool {
        self.categories.is_empty() || category.is_some_and(|c| self.categories.iter().any(|x| x == c))
    }

    /// The key "one shortcut per owner" is kept on: the desk's owner is the empty string
    /// (no account id is empty).
    pub fn owner_key(&self) -> &str {
        self.owner.as_deref().unwrap_or("")
    }
}

/// Canned replies, the desk's and each agent's own.
#[async_trait]
pub trait CannedStore: Send + Sync {
    /// The canned replies of one owner (`None`: the desk's; `Some(account id)`: that
    /// agent's own), by shortcut.
    async fn canned_replies(&self, owner: Option<&str>) -> StoreResult<Vec<CannedReply>>;
    /// One canned reply by id; `NotFound` when absent.
    async fn canned_reply(&self, id: &str) -> StoreResult<CannedReply>;
    /// Stores a new canned reply. `Conflict` when its id is taken or its owner already
    /// has a reply with its shortcut (a unique key of the backend decides).
    async fn create_canned_reply(&self, reply: CannedReply) -> StoreResult<()>;
    /// Replaces the reply with `reply.id` (its owner and `created_at` are kept as stored).
    /// `NotFound` when absent; `Conflict` when another reply of the owner has the shortcut.
    async fn update_canned_reply(&self, reply: CannedReply) -> StoreResult<()>;
    /// Deletes one canned reply; true when it was there.
    async fn delete_canned_reply(&self, id: &str) -> StoreResult<bool>;
}
