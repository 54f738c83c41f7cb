//! Where a decided mail goes: a customer's answer becomes their line in the conversation it
//! answers (found by its reply token first, then by the desk's `Message-ID`s it answers),
//! through the hub, which numbers every line of a conversation and opens it again for
//! whoever holds it; a mail that answers nothing becomes an offline message, which is a
//! conversation in its category's line (`offline::conversation`).
//!
//! The token decides, never the `From` alone: a `From` other than the conversation's
//! customer's address is shown on the line. A mail without our token that answers one of
//! our `Message-ID`s (which are no secret: they carry the conversation's id) is a line of
//! it only from the customer's own address; otherwise it starts a new one.
//!
//! The files a line's mail carries are kept as uploads are (`super::files`); a refused
//! one is noted in the line's text. A mail that starts a conversation names its files in
//! the offline message's text (offline messages carry text only).
//!
//! A delivery failure report about one of the desk's follow-up mails (named by the
//! `Message-ID` it returns) marks that mail bounced in the outbox, with the report's
//! reason, so the console shows it; a report about anything else is only logged.

use async_trait::async_trait;

use super::{InboundMail, InboundSink, LogSink};
use crate::core::inbound_mail::{Decision, Written};
use crate::hub::Hub;
use crate::store::{CustomerProfile, OfflineMessage, SharedStore, StoreError};

/// Mails become conversation lines, or offline messages.
pub struct ConversationSink {
    pub store: SharedStore,
    pub hub: Hub,
    /// The domain of the desk's `Message-ID`s (`MAIL_FROM`'s).
    pub domain: String,
    /// Where the files a line's mail carries are kept (`super::files`).
    pub attachments: crate::attachments::Attachments,
}

/// The conversation a desk `Message-ID` (without angle brackets) belongs to: a follow-up
/// mail's (`follow-up.<id>.<n>`), a conversation's thread root (`conversation.<id>`) or an
/// answer to an offline message (`offline-<id>.reply-<r>`), on the desk's `domain`.
pub fn conversation_of_message_id(message_id: &str, domain: &str) -> Option<String> {
    let (left, at) = message_id.rsplit_once('@')?;
    if !at.eq_ignore_ascii_case(domain) {
        return None;
    }
    let id = if let Some(rest) = left.strip_prefix("conversation.") {
        rest
    } else if let Some(rest) = left.strip_prefix("follow-up.") {
        rest.rsplit_once('.')?.0
    } else if let Some(rest) = left.strip_prefix("offline-") {
        rest.split_once(".reply-")?.0
    } else {
        return None;
    };
    (!id.is_empty()).then(|| id.to_string())
}

impl ConversationSink {
    /// The conversation a mail answers: its reply token's (true), else one of the ids it
    /// answers (false).
    async fn answered(&self, tokens: &[String], ids: &[String]) -> Result<Option<(String, bool)>, String> {
        for token in tokens {
            if let Some(id) = self.store.conversation_of(token).await.map_err(|e| e.to_string())? {
                return Ok(Some((id, true)));
            }
        }
        Ok(ids
            .iter()
            .find_map(|id| conversation_of_message_id(id, &self.domain))
            .map(|id| (id, false)))
    }

    /// Customer `written`'s line in conversation `id` (mail `key`), its sender shown when
    /// not its customer, with the files the mail carries (a refused one noted in its text).
    /// Found by an id it answers rather than by its token (ids are no secret): only from
    /// the customer's own address; `false` when not a line of it.
    async fn line(&self, mail: &InboundMail, id: &str, by_token: bool, written: &Written) -> Result<bool, String> {
        let key = mail.key.as_str();
        let conversation = match self.store.conversation(id).await {
            Ok(conversation) => conversation,
            Err(StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e.to_string()),
        };
        let customer = conversation.opened.customer.email.unwrap_or_default();
        if !by_token && !customer.eq_ignore_ascii_case(&written.from) {
            return Ok(false);
        }
        let text = match customer.eq_ignore_ascii_case(&written.from) {
            true => written.text.clone(),
            false => format!(
                "(by mail from {}, not the customer's address)\n{}",
                written.from, written.text
            ),
        };
        let mut kept = super::files::keep(&self.attachments, id, key, &written.files).await?;
        // A mail with a file refused is not kept whole: the refused file is inside it, and
        // a download would hand it out after all. The mailbox still has it.
        if !kept.notes.is_empty() {
            kept.notes.push(super::files::ORIGINAL_ONLY_IN_MAILBOX.to_string());
        } else if !mail.raw.is_empty() {
            match super::files::keep_original(&self.attachments, id, key, &mail.raw).await? {
                Ok(original) => kept.files.push(original),
                Err(note) => kept.notes.push(note),
            }
        }
        let text = kept.noted(text);
        self.hub.line_by_mail(id, text, kept.files).await?;
        Ok(true)
    }

    /// A delivery failure report about the mails `original_ids`: each that is one of the
    /// desk's follow-up mails is marked bounced (a second report changes nothing).
    async fn bounced(&self, original_ids: &[String], reason: Option<&str>) -> Result<(), String> {
        let reason = reason.unwrap_or("a delivery failure report came back");
        for id in original_ids {
            let Some(mail) = crate::conversations::follow_up_mail::mail_of_message_id(id, &self.domain) else {
                continue;
            };
            match self.store.bounce_mail(&mail, reason).await {
                Ok(changed) => tracing::info!(%mail, changed, %reason, "follow-up mail bounced"),
                Err(StoreError::NotFound) => {
                    tracing::info!(%mail, "a bounce names a follow-up mail the outbox does not hold")
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// A mail answering nothing: an offline message in `category` (so a conversation in
    /// its line), named by the mail's key so a second delivery is the same message.
    async fn offline_message(&self, key: &str, category: &str, written: &Written) -> Result<(), String> {
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes()).to_string();
        let name = written.from.split('@').next().unwrap_or("customer").to_string();
        let mut text = match written.subject.trim() {
            "" => written.text.clone(),
            subject => format!("{subject}\n\n{}", written.text),
        };
        // An offline message carries text alone: its files are named, never dropped unsaid.
        for file in &written.files {
            text.push_str(&format!(
                "\n(attachment {} not kept: a message that starts a conversation carries text only; it is in the mailbox)",
                file.name
            ));
        }
        let message = OfflineMessage {
            id: id.clone(),
            category: category.to_string(),
            name,
            email: written.from.clone(),
            text,
            created_at: crate::clock::now_ms(),
            customer: Some(CustomerProfile {
                email: Some(written.from.clone()),
                ..CustomerProfile::default()
            }),
            ..OfflineMessage::default()
        };
        match self.store.offline_message(&id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                // It came to the desk's own mailbox: no copy to the desk.
                self.store
                    .add_offline_message(message.clone(), None)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(e.to_string()),
        }
        crate::offline::conversation::sync_soon(&self.store, &message).await;
        Ok(())
    }
}

#[async_trait]
impl InboundSink for ConversationSink {
    async fn deliver(&self, mail: &InboundMail) -> Result<(), String> {
        match &mail.decision {
            Decision::Thread {
                tokens,
                ids,
                category,
                written,
            } => match self.answered(tokens, ids).await? {
                Some((id, by_token)) if self.line(mail, &id, by_token, written).await? => Ok(()),
                _ => self.offline_message(&mail.key, category, written).await,
            },
            Decision::New { category, written } => self.offline_message(&mail.key, category, written).await,
            Decision::Bounce { original_ids, reason } => {
                LogSink.deliver(mail).await?;
                self.bounced(original_ids, reason.as_deref()).await
            }
            Decision::Drop(_) => LogSink.deliver(mail).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::conversation_of_message_id as of;

    #[test]
    fn the_desks_message_ids_name_their_conversation_and_nothing_else_does() {
        let id = "0193a6c4-1b2e-7c3d-9e8f-0123456789ab";
        assert_eq!(
            of(&format!("conversation.{id}@desk.example"), "desk.example").as_deref(),
            Some(id)
        );
        assert_eq!(
            of(&format!("follow-up.{id}.7@DESK.example"), "desk.example").as_deref(),
            Some(id)
        );
        assert_eq!(
            of(&format!("offline-{id}.reply-abc@desk.example"), "desk.example").as_deref(),
            Some(id)
        );
        assert_eq!(
            of(&format!("conversation.{id}@elsewhere.example"), "desk.example"),
            None
        );
        assert_eq!(of("someone@desk.example", "desk.example"), None);
        assert_eq!(of("conversation.@desk.example", "desk.example"), None);
        assert_eq!(of("no-at-sign", "desk.example"), None);
    }
}
