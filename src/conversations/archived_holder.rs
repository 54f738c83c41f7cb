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
//!
//! The hand-over comes after the highest of the archive's lines and, on several nodes, the
//! conversation's seq counter in Redis (`cluster::conversation_seq::drawn`): the earlier
//! holder's lines numbered on another node may not be archived yet, and are theirs.
//!
//! An inbox move archives it after the record changed and the consoles and hooks were told
//! ([`archive_holder_soon`]): the move stands, so a store that refuses the hand-over does
//! not turn it into a failure; it is tried again in the background until the store takes
//! it, each time for the record as it is then (a later move is archived, not this one).

use std::time::Duration;

use crate::archive::Archive;
use crate::cluster::conversation_seq;
use crate::cluster::node::Cluster;
use crate::store::deadline::write_within;
use crate::store::retrying;
use crate::store::{ArchiveEvent, ConversationRecord, ConversationTransferred, SharedStore, StoreError, StoreResult};

/// Where a hand-over is archived: the store, and this node's archive, whose lines of the
/// conversation go in first (the hand-over comes after them), and on several nodes the
/// cluster, whose counter numbered lines of other nodes; each try given `limit`.
#[derive(Clone)]
pub struct HandOvers {
    pub store: SharedStore,
    pub archive: Archive,
    pub cluster: Option<Cluster>,
    pub limit: Duration,
}

/// Archives the hand-over of conversation `record` to its holder (named `holder_name`)
/// now, or, when the store does not take it within the limit, in the background (see the
/// module comment).
pub async fn archive_holder_soon(place: HandOvers, record: ConversationRecord, holder_name: String) {
    let id = record.id.clone();
    let Err(e) = write_within(place.limit, archive_after_lines(place.clone(), record, holder_name)).await else {
        return;
    };
    tracing::warn!(conversation = %id, error = %e, "a reassignment's hand-over waits for the store");
    retrying::in_background("a reassignment's hand-over", id.clone(), None, move || {
        let (place, id) = (place.clone(), id.clone());
        async move {
            let again = async {
                let record = place.store.conversation_record(&id).await?;
                let name = match &record.holder {
                    Some(holder) => match place.store.account(holder).await {
                        Ok(account) => account.display_name,
                        Err(StoreError::NotFound) => String::new(),
                        Err(e) => return Err(e),
                    },
                    None => return Ok(()),
                };
                write_within(place.limit, archive_after_lines(place, record, name)).await
            };
            again.await.is_ok()
        }
    });
}

/// [`archive_holder`] once this node's archive handed the store what it had, after every
/// line the cluster numbered too.
async fn archive_after_lines(place: HandOvers, record: ConversationRecord, holder_name: String) -> StoreResult<()> {
    place.archive.stored_through_now().await;
    let drawn = match &place.cluster {
        Some(cluster) => conversation_seq::drawn(&mut cluster.conn(), &record.id)
            .await
            .map_err(|e| StoreError::Unavailable(format!("the conversation's seq in Redis: {e}")))?,
        None => 0,
    };
    archive_holder(&place.store, &record, &holder_name, drawn).await
}

/// Archives the hand-over of conversation `record` to its holder (named `holder_name`)
/// after its last archived line, or line `drawn` if that is later, unless the archive
/// names them already, or has no such conversation (its opening not stored: nothing of it
/// would be kept).
pub async fn archive_holder(
    store: &SharedStore,
    record: &ConversationRecord,
    holder_name: &str,
    drawn: u64,
) -> StoreResult<()> {
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
        after_seq: archived.messages.iter().map(|m| m.seq).max().unwrap_or(0).max(drawn),
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
