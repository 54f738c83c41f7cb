//! Transcripts by mail: a customer asks for their chat's transcript — on their websocket
//! during the chat (`transcript`), or over HTTP after it with the chat's rating token
//! (`POST /api/transcripts`) — and gets it once, through the durable mail outbox.
//!
//! [`request`] stores the ask as an outbox mail whose id names the conversation and a slot
//! (`core::transcript_requests`: one mail per address and live session, a few addresses
//! per conversation),
//! and keeps the address with the conversation (`Store::set_customer_email`). The outbox
//! worker (`appointments::mailer`), on any node, sends it once the chat is archived closed,
//! made then from the shared archive ([`mail`]): so it holds the whole chat whichever node
//! the customer or the agent was on, and never a note (`store::transcripts`).

pub mod mail;

use crate::core::transcript_requests::{self as rules, Ask};
use crate::mail::QueuedMail;
use crate::store::{MailPurpose, Millis, OutboxMail, Store, StoreError};

/// What an ask did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// A new mail waits in the outbox.
    Queued,
    /// This address was asked for already: that mail (waiting, or sent with nothing said
    /// since), nothing new.
    AlreadyAsked,
}

/// Why an ask was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No address given now, nor when joining.
    #[error("say which email address to send the transcript to")]
    EmailRequired,
    /// The conversation's transcript went to as many addresses as it may.
    #[error(
        "this chat's transcript was sent to {} addresses (or {} times) already",
        rules::MAX_ADDRESSES,
        rules::MAX_MAILS
    )]
    TooMany,
    /// The conversation is not in the archive (erased, or never archived).
    #[error("there is no such chat")]
    NotFound,
    #[error(transparent)]
    Store(StoreError),
}

/// Where the transcript of `conversation` goes: `email` (valid, when given) or the one the
/// customer gave before, stored with the conversation. With `must_be_archived`, a
/// conversation not in the archive is refused (`NotFound`); without, the ask waits for its
/// opening (an ask in the first moment of a chat).
pub async fn request(
    store: &dyn Store,
    conversation: &str,
    email: Option<String>,
    must_be_archived: bool,
    now: Millis,
) -> Result<(Requested, String), Refused> {
    let stored = match store.customer_transcript(conversation).await {
        Ok(t) => Some(t),
        Err(StoreError::NotFound) if !must_be_archived => None,
        Err(StoreError::NotFound) => return Err(Refused::NotFound),
        Err(e) => return Err(Refused::Store(e)),
    };
    // What a mail sent before must hold to be this ask's: the conversation's last line.
    let last_line_at = stored.as_ref().and_then(|t| t.messages.iter().map(|m| m.at).max());
    let given_before = stored.and_then(|t| t.opened.customer.email);
    let email = email.or(given_before).ok_or(Refused::EmailRequired)?;
    // Of two asks racing for a slot, the store's unique id lets one in; the other reads again.
    for _ in 0..=rules::MAX_ADDRESSES {
        let mails = store
            .mails_by_id_prefix(&rules::id_prefix(conversation))
            .await
            .map_err(Refused::Store)?;
        let slots = mails.iter().filter_map(|m| {
            Some(rules::Stored {
                slot: rules::slot_of(&m.id, conversation)?,
                to: m.to.as_str(),
                current: rules::current(m.sent_at, last_line_at),
            })
        });
        let slot = match rules::decide(slots, &email) {
            Ask::Again { .. } => return Ok((Requested::AlreadyAsked, email)),
            Ask::TooMany => return Err(Refused::TooMany),
            Ask::New { slot } => slot,
        };
        match store.add_mail(waiting_mail(conversation, slot, &email, now)).await {
            Ok(()) => {
                keep_email(store, conversation, &email).await;
                return Ok((Requested::Queued, email));
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(Refused::Store(e)),
        }
    }
    Err(Refused::Store(StoreError::Unavailable(
        "the transcript's mail slots kept changing".into(),
    )))
}

/// The address is kept with the conversation so the agent's panel and a later visit find
/// the customer by it (best effort: the mail does not depend on it; a conversation whose
/// opening is not stored yet gets it when the mail is sent).
pub async fn keep_email(store: &dyn Store, conversation: &str, email: &str) {
    match store.set_customer_email(conversation, email).await {
        Ok(()) | Err(StoreError::NotFound) => {}
        Err(e) => tracing::warn!(conversation, error = %e, "a transcript's address was not kept with its chat"),
    }
}

/// The outbox entry of an ask: its body is made when it is sent.
fn waiting_mail(conversation: &str, slot: u32, email: &str, now: Millis) -> OutboxMail {
    QueuedMail {
        id: rules::mail_id(conversation, slot),
        about: conversation.to_string(),
        purpose: MailPurpose::Transcript,
        to: email.to_string(),
        subject: "The transcript of your chat".to_string(),
        text: "Made from the archive when sent, once the chat has ended.".to_string(),
        attachments: vec![],
    }
    .due(now)
}
