//! What of a conversation archive search reads, and when a conversation matches: shared
//! by every store (the memory store's scan, and the check each indexed store makes of the
//! candidates its index gives), so the three answer alike.
//!
//! A conversation matches a query ([`crate::core::search`]) when its names hold every
//! word of it, or one of its messages does:
//! - its names are its customer's name and the names of every agent who served it (its
//!   agent now, and those a transfer names);
//! - a message matches alone: words spread over two messages do not make a match, so a
//!   hit is always one message that can be shown.
//!
//! Agents' internal notes, transfer notes and the customer's email are not searched.
//!
//! Each store's index holds the terms of a conversation's names and messages together
//! ([`conversation_terms`]): a candidate holds every word somewhere, and the rule above is
//! checked against the text before it counts.

use std::collections::BTreeSet;

use super::{ArchivedMessage, Conversation, ConversationOpened, ConversationTransferred};
pub use crate::core::search::SearchQuery;
use crate::core::search::term_set;

/// The names of a conversation that search reads: its customer's, and every agent's who
/// served it.
pub fn names<'a>(
    opened: &'a ConversationOpened,
    transfers: &'a [ConversationTransferred],
) -> impl Iterator<Item = &'a str> + 'a {
    [opened.customer_name.as_str(), opened.agent_name.as_str()]
        .into_iter()
        .chain(
            transfers
                .iter()
                .flat_map(|t| std::iter::once(t.from_agent_name.as_str()).chain(t.to_agent_name.as_deref())),
        )
}

/// The terms of a conversation's names.
pub fn name_terms(opened: &ConversationOpened, transfers: &[ConversationTransferred]) -> BTreeSet<String> {
    term_set(names(opened, transfers))
}

/// Every term an index holds for a conversation: its names' and its messages'.
pub fn conversation_terms(
    opened: &ConversationOpened,
    transfers: &[ConversationTransferred],
    messages: &[ArchivedMessage],
) -> BTreeSet<String> {
    term_set(names(opened, transfers).chain(messages.iter().map(|m| m.text.as_str())))
}

/// Do the conversation's names hold every word of `query`?
pub fn names_match(query: &SearchQuery, opened: &ConversationOpened, transfers: &[ConversationTransferred]) -> bool {
    query.matches_terms(&name_terms(opened, transfers))
}

/// The first message holding every word of `query`.
pub fn first_hit<'a>(query: &SearchQuery, messages: &'a [ArchivedMessage]) -> Option<&'a ArchivedMessage> {
    messages.iter().find(|m| query.matches(&m.text))
}

/// Does conversation `c` match `query` (see the module comment)?
pub fn matches(query: &SearchQuery, c: &Conversation) -> bool {
    names_match(query, &c.opened, &c.transfers) || first_hit(query, &c.messages).is_some()
}
