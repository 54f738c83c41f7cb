//! Conversations archived before conversations had statuses have no record. Each is
//! `resolved` (it ended), held by the agent who had it last, owned by the keys its opening
//! names: [`record_of`] says so from its archive, [`ensure`] stores that record unless one
//! is stored (version 1, so never over a record another node or the hub's writer stored
//! first), and [`run`] does it once for the whole archive at start-up, so the inbox's
//! `resolved` and `all` views list them. A continue of one the run has not reached yet
//! stores its record the same way (`hub::service::continuing`).
//!
//! Safe on several nodes and run again: every write is create-if-absent, and the run only
//! looks at conversations paired before its node started. The run's end is kept as a desk
//! setting, so later starts skip it.

use crate::conversations::write_back;
use crate::core::conversation::Conversation;
use crate::core::routing::AgentId;
use crate::store::{
    ConversationFilter, ConversationKind, ConversationRecord, ConversationStatus, Millis, Page, SharedStore, StoreError,
};

/// The desk setting that says the archive was migrated (its value: when the run started).
const DONE_KEY: &str = "conversations_migrated_at";

/// Conversations read per page of the run.
const PAGE: u64 = 200;

/// The record a conversation archived without one stands for: resolved when it ended,
/// held by its agent, owned by its opening's keys. `None`: it did not end (still live, or
/// cut off without a closing) or is not a customer's.
pub fn record_of(archived: &crate::store::Conversation) -> Option<ConversationRecord> {
    let opened = &archived.opened;
    let closed = archived.closed.as_ref()?;
    if opened.kind != ConversationKind::Service {
        return None;
    }
    let last_seq = archived.messages.iter().map(|m| m.seq).max().unwrap_or(0);
    let conversation = Conversation::migrated(
        Some(AgentId(opened.agent_id.clone())).filter(|a| !a.0.is_empty()),
        opened.paired_at,
        closed.ended_at,
        last_seq,
    );
    let mut record = ConversationRecord {
        customer_keys: opened.customer.record_keys(),
        opened_at: opened.paired_at,
        ..ConversationRecord::first(
            &opened.id,
            opened.category.as_deref().unwrap_or_default(),
            ConversationStatus::Resolved,
            closed.ended_at,
        )
    };
    write_back(&mut record, &conversation);
    Some(record)
}

/// Stores [`record_of`] `archived` unless a record is stored already; the record as stored
/// now. `NotFound` when it stands for none (it did not end).
pub async fn ensure(
    store: &SharedStore,
    archived: &crate::store::Conversation,
) -> Result<ConversationRecord, StoreError> {
    let record = record_of(archived).ok_or(StoreError::NotFound)?;
    match store.put_conversation_record(&record).await {
        Ok(()) => Ok(record),
        Err(StoreError::Conflict) => store.conversation_record(&record.id).await,
        Err(e) => Err(e),
    }
}

/// Gives every conversation paired before `started_at` without a record its record,
/// unless a run finished before; logs a failure (the next start tries again).
pub async fn run(store: SharedStore, started_at: Millis) {
    match migrate(&store, started_at).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(conversations = n, "conversations from before statuses are resolved"),
        Err(e) => {
            tracing::warn!(error = %e, "conversations from before statuses were not all given a status; the next start goes on")
        }
    }
}

/// [`run`]'s work: how many records it stored.
async fn migrate(store: &SharedStore, started_at: Millis) -> Result<u64, StoreError> {
    if store.desk_setting(DONE_KEY).await?.is_some() {
        return Ok(0);
    }
    // Paired before this start: a fixed set, so pages do not shift as chats go on.
    let filter = ConversationFilter {
        to: Some(started_at),
        ..ConversationFilter::default()
    };
    let (mut offset, mut stored) = (0, 0);
    loop {
        let (page, _) = store.conversations(&filter, Page { offset, limit: PAGE }).await?;
        if page.is_empty() {
            break;
        }
        offset += page.len() as u64;
        let ids: Vec<String> = page.iter().map(|c| c.opened.id.clone()).collect();
        let recorded = store.conversation_records(&ids).await?;
        for archived in page.iter().filter(|c| !recorded.iter().any(|r| r.id == c.opened.id)) {
            match ensure(store, archived).await {
                Ok(_) => stored += 1,
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
    }
    store.set_desk_setting(DONE_KEY, Some(started_at.to_string())).await?;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{ArchiveEvent, ConversationClosed, ConversationOpened, CustomerProfile, EndReason, Side};

    fn opened(id: &str, paired_at: Millis) -> ConversationOpened {
        ConversationOpened {
            id: id.into(),
            kind: ConversationKind::Service,
            category: Some("general".into()),
            customer_name: "Carla".into(),
            agent_id: "ann".into(),
            agent_name: "Ann".into(),
            queued_at: paired_at,
            paired_at,
            customer: CustomerProfile {
                visitor: Some("carla-browser-0001".into()),
                ..CustomerProfile::default()
            },
        }
    }

    fn closed(id: &str, ended_at: Millis) -> ConversationClosed {
        ConversationClosed {
            id: id.into(),
            ended_at,
            ended_by: Side::Customer,
            reason: EndReason::Ended,
            inferred: None,
        }
    }

    #[tokio::test]
    async fn an_ended_conversation_without_a_record_is_resolved_once_and_a_live_one_is_left() {
        let store: SharedStore = Arc::new(crate::store::MemoryStore::new());
        store
            .archive(&[
                ArchiveEvent::Opened(opened("old", 10)),
                ArchiveEvent::Closed(closed("old", 50)),
                ArchiveEvent::Opened(opened("live", 20)),
            ])
            .await
            .unwrap();
        assert_eq!(migrate(&store, 100).await.unwrap(), 1);
        let record = store.conversation_record("old").await.unwrap();
        assert_eq!(
            (
                record.status,
                record.holder.as_deref(),
                record.status_since,
                record.resolutions,
                record.version
            ),
            (ConversationStatus::Resolved, Some("ann"), 50, 1, 1)
        );
        assert_eq!(record.customer_keys, vec!["v:carla-browser-0001".to_string()]);
        assert!(matches!(
            store.conversation_record("live").await,
            Err(StoreError::NotFound)
        ));
        // Done once: a later start does nothing, even for one that lost its record.
        store
            .archive(&[
                ArchiveEvent::Opened(opened("older", 5)),
                ArchiveEvent::Closed(closed("older", 6)),
            ])
            .await
            .unwrap();
        assert_eq!(migrate(&store, 200).await.unwrap(), 0);
        // A record stored first stands.
        let first = store.conversation_record("old").await.unwrap();
        let archived = store.conversation("old").await.unwrap();
        assert_eq!(ensure(&store, &archived).await.unwrap(), first);
    }
}
