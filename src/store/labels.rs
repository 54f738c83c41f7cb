//! Labels admins define for tagging conversations ("billing", "VIP", "bug"): an id that
//! stays, a name people read, a colour. Which conversations carry which label is kept on
//! the conversation's record (`ConversationRecord::labels`, by id); this keeps only the
//! desk's list of them.

use async_trait::async_trait;

use super::{Millis, StoreResult};

/// One label as stored; the serialising backends key it by `id`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Label {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    /// `#rrggbb`.
    pub colour: String,
    pub created_at: Millis,
}

/// The desk's labels.
#[async_trait]
pub trait LabelStore: Send + Sync {
    /// Every label, by name.
    async fn labels(&self) -> StoreResult<Vec<Label>>;
    /// Stores a new label; `Conflict` when its id is taken (the backend's key decides).
    async fn create_label(&self, label: Label) -> StoreResult<()>;
    /// Replaces the name and colour of the label with `label.id` (its `created_at` stays);
    /// `NotFound` when there is none.
    async fn update_label(&self, label: Label) -> StoreResult<()>;
    /// Deletes a label; `NotFound` when there is none. Conversations keep its id (a label
    /// made again under that id shows on them again); views show only defined labels.
    async fn delete_label(&self, id: &str) -> StoreResult<()>;
}

/// The listing's order: by name, any case, then by id.
pub fn by_name(a: &Label, b: &Label) -> std::cmp::Ordering {
    (a.name.to_lowercase(), &a.id).cmp(&(b.name.to_lowercase(), &b.id))
}
