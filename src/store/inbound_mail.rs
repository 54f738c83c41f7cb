//! Mail received from the desk's mailbox, remembered by key (its `Message-ID`, else a hash
//! of the raw mail), so a mail fetched twice — a second poll, a restart, the IMAP server
//! restored from a backup, the same mail in two folders — is handled once.

use async_trait::async_trait;

use super::{Millis, StoreResult};

#[async_trait]
pub trait InboundMailStore: Send + Sync {
    /// Whether a mail with this key was recorded already (nothing changes).
    async fn inbound_seen(&self, key: &str) -> StoreResult<bool>;
    /// Records the mail with this key as handled at `at`: `true` the first time, `false`
    /// when it was recorded already (of concurrent calls exactly one gets `true`).
    async fn first_seen(&self, key: &str, at: Millis) -> StoreResult<bool>;
}
