//! An offline message as a conversation, so the team works one list: the conversation has
//! the message's id, opens `open` without an agent (its record marked `offline`), has the
//! customer as a live chat's opening records them (the browser's visitor key and a
//! verified identity find it, so the customer lists and continues it), the message as its
//! first line, and the agent who took or answered it as its holder. Each answer by mail
//! becomes its agent's next line through the hub (`Hub::answer_by_mail`), which numbers
//! every line of a conversation (in its live chat, or to an away customer; on several
//! nodes through Redis): a line appended here could take a seq the hub gives another.
//!
//! The offline message is the truth and is stored first (with its mail, in one write, as
//! before); the conversation is then brought in line with it by [`sync`], which only adds
//! what is missing: the archive keeps each event once (an opening by its id, a line by its
//! id or seq), the record is opened once ([`Conversations::open`] answers the one
//! stored) and assigned by compare-and-set. So a conversation write that fails after the message was stored
//! loses nothing: [`sync`] is run again (soon after, and by the staff listing for any
//! message whose record is missing) and finishes it, however often it runs.

use std::time::Duration;

use crate::conversations::archived_holder::archive_holder;
use crate::conversations::{ConversationError, Conversations};
use crate::core::conversation::Rules;
use crate::core::routing::AgentId;
use crate::store::retrying;
use crate::store::{
    ArchiveEvent, ArchivedMessage, ConversationKind, ConversationOpened, ConversationRecord, OfflineMessage,
    SharedStore, Side, StoreError,
};

/// How long a conversation that could not be written is tried again in the background.
const RETRY_FOR: Duration = Duration::from_secs(300);

/// The conversation of message `m` as it should be, adding whatever is missing; the record
/// as stored now, or `None` for a message left before offline messages were conversations
/// (it has no customer keys: it stays an offline message only).
pub async fn sync(store: &SharedStore, m: &OfflineMessage) -> Result<Option<ConversationRecord>, ConversationError> {
    let Some(customer) = &m.customer else {
        return Ok(None);
    };
    // The opening and the first line first: a record is never listed without its line.
    let opening = ConversationOpened {
        id: m.id.clone(),
        kind: ConversationKind::Service,
        category: Some(m.category.clone()),
        customer_name: m.name.clone(),
        agent_id: String::new(),
        agent_name: String::new(),
        queued_at: m.created_at,
        paired_at: m.created_at,
        customer: customer.clone(),
    };
    let first = line(&m.id, &m.id, 1, Side::Customer, &m.text, m.created_at);
    store.archive(&[ArchiveEvent::Opened(opening), first]).await?;
    let conversations = Conversations::new(store.clone(), Rules::default());
    let mut record = conversations
        .open(&m.id, &m.category, customer.record_keys(), m.created_at, true)
        .await?;
    // Whoever took or answered it has it, unless it went to someone since.
    if let (None, Some(taker)) = (&record.holder, &m.taken_by) {
        let agent = AgentId(taker.clone());
        let at = m.replies.first().map_or(m.created_at, |r| r.at);
        (_, record) = conversations
            .change(&m.id, false, |c, _| {
                if c.holder().is_none() {
                    c.assigned(agent.clone(), at);
                }
                Ok(())
            })
            .await?;
    }
    name_its_agent(store, &record).await?;
    Ok(Some(record))
}

/// [`sync`] now; when the store refuses, logged and tried again in the background for a
/// while (the message itself is stored: only the conversation lags, and the staff listing
/// finishes one whose record is missing even after a restart). The record when written now.
pub async fn sync_soon(store: &SharedStore, m: &OfflineMessage) -> Option<ConversationRecord> {
    match sync(store, m).await {
        Ok(record) => record,
        Err(e) => {
            tracing::warn!(message = %m.id, error = ?e, "an offline message's conversation waits for the store");
            let (store, m) = (store.clone(), m.clone());
            let id = m.id.clone();
            retrying::in_background("an offline message's conversation", id, Some(RETRY_FOR), move || {
                let (store, m) = (store.clone(), m.clone());
                async move { sync(&store, &m).await.is_ok() }
            });
            None
        }
    }
}

/// The archive names the conversation's agent once it has one (the customer's list shows
/// them; they may read it): archived as taken from its category's line
/// (`conversations::archived_holder`).
async fn name_its_agent(store: &SharedStore, record: &ConversationRecord) -> Result<(), ConversationError> {
    let Some(holder) = &record.holder else {
        return Ok(());
    };
    let name = match store.account(holder).await {
        Ok(account) => account.display_name,
        Err(StoreError::NotFound) => String::new(),
        Err(e) => return Err(e.into()),
    };
    // After the lines archived so far only: any drawn since are answers by mail, by the agent
    // who answered it (its holder once answered).
    Ok(archive_holder(store, record, &name, 0).await?)
}

fn line(conversation: &str, id: &str, seq: u64, from: Side, text: &str, at: crate::store::Millis) -> ArchiveEvent {
    ArchiveEvent::Message {
        conversation_id: conversation.into(),
        message: ArchivedMessage::plain(id, seq, from, text, at),
    }
}
