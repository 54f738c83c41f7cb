//! A customer's rating of a conversation: stored once per conversation, beside it.
//!
//! The first rating wins and a second is refused (`Conflict`): a unique key of every
//! backend (the conversation's id) decides, so two ratings racing cannot both be kept.
//! A rating is kept apart from the conversation's archive record, so it may arrive before
//! the archive writer has stored the conversation's closing; reading a conversation
//! joins it in.

use super::StoreResult;
use async_trait::async_trait;

use super::Millis;
use crate::rating_scale::RatingScale;

/// A customer's rating of one conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Rating {
    /// 1 to 5 (stars) or 0/1 (thumbs down/up).
    pub score: u8,
    pub scale: RatingScale,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When it was given, ms since the epoch.
    pub at: Millis,
}

/// Customers' ratings of their conversations.
#[async_trait]
pub trait RatingStore: Send + Sync {
    /// Stores the customer's rating of conversation `id`, once: `Conflict` when it was
    /// rated already (nothing changed; of concurrent ratings exactly one is kept). The
    /// conversation need not be archived yet; reading it later returns the rating.
    async fn rate_conversation(&self, id: &str, rating: Rating) -> StoreResult<()>;
}
