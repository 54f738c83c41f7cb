//! API tokens as stored: what an admin created (a name, scopes, an optional bot name and
//! expiry), found by the SHA-256 of the secret, never the secret itself. A revoked token
//! stays listed (when and that it was revoked), and is refused from then on.

use async_trait::async_trait;

use super::{Millis, StoreResult};

/// One token an admin created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiToken {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    /// `read`, `bot`, `admin` (`core::api_tokens::SCOPES`), each once.
    pub scopes: Vec<String>,
    /// The bot it acts as, with the `bot` scope.
    pub bot: Option<String>,
    /// URL-safe base64 of the SHA-256 of the secret (`api_tokens::hash`); unique.
    pub hash: String,
    /// The secret's first characters (`sbt_` and 4 more), so an admin can tell tokens apart.
    pub hint: String,
    pub created_at: Millis,
    /// The account that created it.
    pub created_by: String,
    pub expires_at: Option<Millis>,
    /// Written at most once a minute per node (`core::api_tokens::LAST_USE_EVERY_MS`).
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

/// API tokens.
#[async_trait]
pub trait ApiTokenStore: Send + Sync {
    /// Stores a new token; `Conflict` when its id or hash is taken.
    async fn add_api_token(&self, token: ApiToken) -> StoreResult<()>;
    /// Every token, revoked ones included, oldest first.
    async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>>;
    /// The token whose secret hashes to `hash`; `NotFound` when none.
    async fn api_token_by_hash(&self, hash: &str) -> StoreResult<ApiToken>;
    /// Marks a token revoked at `at` (a second revocation keeps the first time); the token
    /// as it is now; `NotFound` when absent.
    async fn revoke_api_token(&self, id: &str, at: Millis) -> StoreResult<ApiToken>;
    /// Records a use at `at` (never moving it back); `NotFound` when absent.
    async fn touch_api_token(&self, id: &str, at: Millis) -> StoreResult<()>;
}
