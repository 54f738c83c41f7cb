//! Staff accounts (agents and admins) and their signed-in sessions.

use super::{Millis, StoreResult};
use async_trait::async_trait;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    Admin,
}

/// An agent or admin account, stored as it is by the serialising backends (the id as
/// `_id`, MongoDB's primary key; the embedded store's JSON carries the same name). The API
/// shows it only as `http::AccountView`, which has no password hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// PHC string from argon2; never leaves the server.
    pub password_hash: String,
    /// Category ids this agent serves.
    pub categories: Vec<String>,
    /// Concurrent chats this agent may hold, 1 to 4.
    pub max_chats: u8,
    pub enabled: bool,
    pub created_at: Millis,
}

/// A signed-in session as stored: shared by every node, so a restart or a
/// reconnect to another node keeps staff signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The SHA-256 of the session's token (`auth::session_id`); the token itself is never stored.
    pub id: String,
    pub account_id: String,
    pub expires_at: Millis,
}

/// Staff accounts and their signed-in sessions (shared by every node, so a
/// restart or a reconnect to another node keeps staff signed in).
#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn create_account(&self, account: Account) -> StoreResult<()>;
    async fn update_account(&self, account: Account) -> StoreResult<()>;
    async fn account(&self, id: &str) -> StoreResult<Account>;
    async fn account_by_username(&self, username: &str) -> StoreResult<Account>;
    async fn accounts(&self) -> StoreResult<Vec<Account>>;
    /// Stores a new session; `Conflict` if its id is taken.
    async fn create_session(&self, session: StoredSession) -> StoreResult<()>;
    /// A session by id, as stored (expired or not: the caller compares `expires_at`, as an
    /// expired one may linger until swept); `NotFound` when absent.
    async fn session(&self, id: &str) -> StoreResult<StoredSession>;
    /// Deletes one session; true when it was there.
    async fn delete_session(&self, id: &str) -> StoreResult<bool>;
    /// Deletes every session of an account and returns their ids.
    async fn delete_sessions_of(&self, account_id: &str) -> StoreResult<Vec<String>>;
    /// Deletes the sessions expired at `now` (`expires_at <= now`); returns how many.
    async fn sweep_sessions(&self, now: Millis) -> StoreResult<u64>;
}
