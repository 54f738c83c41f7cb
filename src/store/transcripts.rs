//! A conversation as its customer may be mailed it: the opening (their details, the
//! agent's name), the closing, the chat's messages and the rating — and nothing else.
//!
//! Agents' internal notes are kept in a table (collection) of their own; the store's
//! [`super::CustomerStore::customer_transcript`] never reads it, and [`CustomerTranscript`] has no
//! field that could hold one. So a transcript mail cannot contain a note, whatever its
//! builder does: there is no filter to forget.

use super::{ArchivedMessage, ConversationClosed, ConversationOpened, Rating};

/// What a customer's transcript is made of (see the module comment: never notes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerTranscript {
    pub opened: ConversationOpened,
    /// `None` while the chat runs (or its closing is not archived yet).
    pub closed: Option<ConversationClosed>,
    /// The chat's messages in seq order.
    pub messages: Vec<ArchivedMessage>,
    pub rating: Option<Rating>,
}
