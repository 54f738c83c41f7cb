//! The stored shape of an account, shared by the backends that serialise it.
//!
//! The public `Account` has no serde on purpose, so its password hash cannot be
//! serialised into a response by accident; the stores convert through this
//! record instead. The id is named `_id`, MongoDB's primary key; the embedded
//! store's JSON carries the same name.

use serde::{Deserialize, Serialize};

use super::{Account, Millis, Role};

#[derive(Serialize, Deserialize)]
pub(super) struct AccountRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
    pub categories: Vec<String>,
    pub max_chats: u8,
    pub enabled: bool,
    pub created_at: Millis,
}

impl From<&Account> for AccountRecord {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id.clone(),
            username: a.username.clone(),
            display_name: a.display_name.clone(),
            role: a.role,
            password_hash: a.password_hash.clone(),
            categories: a.categories.clone(),
            max_chats: a.max_chats,
            enabled: a.enabled,
            created_at: a.created_at,
        }
    }
}

impl From<AccountRecord> for Account {
    fn from(a: AccountRecord) -> Self {
        Self {
            id: a.id,
            username: a.username,
            display_name: a.display_name,
            role: a.role,
            password_hash: a.password_hash,
            categories: a.categories,
            max_chats: a.max_chats,
            enabled: a.enabled,
            created_at: a.created_at,
        }
    }
}
