//! How the desk is set up: its categories and the settings admins keep in the store.

use super::StoreResult;
use async_trait::async_trait;

/// A service category customers queue for. The id is stable; the name can be renamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub id: String,
    pub name: String,
}

/// How the desk is set up: the categories customers queue for, and the settings
/// admins store through the admin API (appointment hours).
#[async_trait]
pub trait DeskStore: Send + Sync {
    /// Categories in creation order.
    async fn categories(&self) -> StoreResult<Vec<Category>>;
    async fn create_category(&self, category: Category) -> StoreResult<()>;
    async fn rename_category(&self, id: &str, name: &str) -> StoreResult<()>;
    async fn delete_category(&self, id: &str) -> StoreResult<()>;
    /// The value an admin stored under `key` (an opaque text, JSON by convention); `None`
    /// when none is stored (the settings' default applies).
    async fn desk_setting(&self, key: &str) -> StoreResult<Option<String>>;
    /// Stores `value` under `key`, replacing what was there; `None` removes it.
    async fn set_desk_setting(&self, key: &str, value: Option<String>) -> StoreResult<()>;
}
