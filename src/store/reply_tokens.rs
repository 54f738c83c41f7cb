//! Reply tokens: the unguessable part of a follow-up mail's reply address
//! (`desk+<token>@domain`), bound to the conversation the mail came from, so that the
//! customer's answer by mail finds its way back into it. A conversation may have several
//! tokens (two nodes making its first mail at once each remember one): every one of them
//! leads to it, and [`ReplyTokenStore::token_of`] picks the same one each time.

use async_trait::async_trait;

use super::StoreResult;

/// Tokens of reply addresses, each bound to one conversation.
#[async_trait]
pub trait ReplyTokenStore: Send + Sync {
    /// Binds `token` to `conversation_id`. Idempotent; a token is never rebound to another
    /// conversation (the first binding stays).
    async fn remember(&self, token: &str, conversation_id: &str) -> StoreResult<()>;
    /// The conversation `token` is bound to, if any.
    async fn conversation_of(&self, token: &str) -> StoreResult<Option<String>>;
    /// A token bound to `conversation_id`, the least of them when there are several (so the
    /// same one each time), if any.
    async fn token_of(&self, conversation_id: &str) -> StoreResult<Option<String>>;
}
