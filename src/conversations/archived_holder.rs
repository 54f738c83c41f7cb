//! The archive names a conversation's agent by its hand-overs (`ArchiveEvent::Transferred`),
//! its record names its holder. A live chat's moves are archived by the hub as they happen;
//! a conversation nobody is live in changes holder in its record only (put in another
//! agent's list from the inbox, an offline message taken). [`archive_holder`] brings the
//! archive in line: a hand-over from the agent it names (nobody: taken from its category's
//! line) to the holder, after its last line. So the lines up to then stay their writer's
//! (`core::conversation::line_authors`), and the transcript, the export and the customer's
//! list name the holder, as do the lines the holder writes next.
//!
//! It is safe to write again, from any node: it is dated by the holder's turn in the record
//! (when they were given it), so a second write is the same hand-over, which the archive
//! keeps once ([`ConversationTransferred::same_as`]); and once the archive names the holder,
//! nothing is written at all.

use crate::store::{ArchiveEvent, ConversationRecord, ConversationTransferred, SharedStore, StoreError, StoreResult};

/// Archives the hand-over of conversation `record` to its holder (named `holder_name`),
/// unless the archive names them already, or has no such conversation (its opening not
/// stored: nothing of it would be kept).
pub async fn archive_holder(store: &SharedStore, record: &ConversationRecord, holder_name: &str) -> StoreResult<()> {
    let Some(holder) = &record.holder else {
        return Ok(());
    };
    let archived = match store.conversation(&record.id).await {
        Ok(archived) => archived,
        Err(StoreError::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    if archived.opened.agent_id == *holder {
        return Ok(());
    }
    let from = &archived.opened;
    let hand_over = ConversationTransferred {
        id: record.id.clone(),
        at: record.holder_turn_at,
        after_seq: archived.messages.iter().map(|m| m.seq).max().unwrap_or(0),
        from_agent_id: from.agent_id.clone(),
        from_agent_name: from.agent_name.clone(),
        to_agent_id: Some(holder.clone()),
        to_agent_name: Some(holder_name.to_string()),
        // Nobody had it: taken from its category's line.
        to_category: from.agent_id.is_empty().then(|| record.category.clone()),
        note: String::new(),
    };
    store.archive(&[ArchiveEvent::Transferred(hand_over)]).await
}
