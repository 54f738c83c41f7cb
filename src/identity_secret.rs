//! The desk's identity secret (`core::identity`): made by the hub when an admin asks (shown
//! to them once, for their site's server), kept as a desk setting in the shared store so
//! every node verifies against the same one, and read afresh at each use, so a new secret
//! or a disabled one holds on every node at once (old hashes stop verifying).

use serde::{Deserialize, Serialize};

use crate::store::{SharedStore, StoreResult};

/// The store key of the secret.
const KEY: &str = "identity_secret";

/// The secret as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdentitySecret {
    /// 64 hex digits (32 random bytes); the HMAC key is this text.
    pub secret: String,
    /// When it was made (ms since the Unix epoch).
    pub created_at: i64,
}

/// The secret in force; `None` when none is set (or it is unreadable: nothing verifies).
pub async fn load(store: &SharedStore) -> StoreResult<Option<IdentitySecret>> {
    let Some(raw) = store.desk_setting(KEY).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_str(&raw)
        .inspect_err(|e| tracing::error!(error = %e, "the stored identity secret is unreadable; no identity verifies"))
        .ok())
}

/// Makes a new secret and stores it, replacing any before it.
pub async fn rotate(store: &SharedStore) -> StoreResult<IdentitySecret> {
    let made = IdentitySecret {
        secret: hex::encode(rand::random::<[u8; 32]>()),
        created_at: crate::clock::now_ms(),
    };
    let stored = serde_json::to_string(&made).expect("a secret serialises");
    store.set_desk_setting(KEY, Some(stored)).await?;
    Ok(made)
}

/// Removes the secret: identities are ignored from now on.
pub async fn disable(store: &SharedStore) -> StoreResult<()> {
    store.set_desk_setting(KEY, None).await
}

/// The identifier, verified against the secret in force. A store that cannot be read
/// verifies nothing (the customer goes on as an anonymous visitor).
pub async fn verify(store: &SharedStore, identifier: Option<&str>, hash: Option<&str>) -> Option<String> {
    identifier?;
    let secret = load(store)
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "the identity secret could not be read; the identity is ignored"))
        .ok()
        .flatten()?;
    crate::core::identity::verified(Some(&secret.secret), identifier, hash)
}
