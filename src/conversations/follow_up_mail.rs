//! Follow-ups by mail: what an agent writes into a conversation whose customer left
//! (`hub::service::follow_up`) also goes to the customer by mail when their email is on
//! file, through the durable mail outbox, several lines in one mail.
//!
//! **Batches.** The first line of a batch writes one outbox entry (purpose `FollowUp`),
//! its id made of the conversation and that line's seq ([`mail_id`]), `created_at` the
//! line's time and due `FOLLOW_UP_MAIL_DELAY_SECS` later (plus a moment for the archive).
//! A later line whose time falls within that window joins the batch and writes nothing; one
//! after it starts the next batch. Nothing of the mail's text is stored: when the outbox
//! worker sends it, [`outgoing`] reads the batch's lines from the archive (the agent's
//! lines from its first seq on, written within its window, before the next batch's first
//! seq). So a node killed at any point loses no line that was acknowledged and in a
//! written batch, and the outbox sends each batch once (its id is the same whoever writes
//! it, its `Message-ID` derived from it).
//!
//! Each node hands its lines to one task, in order ([`FollowUpMail::written`]); it decides
//! from the store, not from memory, so a restart in the middle of a window joins the batch
//! already written. The task waits for the archive to hold the line before it decides.
//!
//! **Replies and threads.** Every follow-up mail's `Reply-To` is `MAIL_FROM` plus-addressed
//! with the conversation's reply token (`desk+<token>@domain`: 26 base32 characters of 128
//! random bits, bound to the conversation in [`crate::store::ReplyTokenStore`], so an answer
//! by mail can be matched to it), and its `In-Reply-To`/`References` name the
//! conversation's root `Message-ID`, derived from the conversation id ([`thread_key`]), so
//! a customer's mail client shows all mails of a conversation as one thread.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::archive::Archive;
use crate::config::Settings;
use crate::mail::{Outgoing, QueuedMail};
use crate::store::{
    ArchivedMessage, Conversation, MailPurpose, MailStatus, Millis, OutboxMail, Side, Store, StoreError,
};

/// Past the window's end, how long the mail waits for the archive to hold its last lines.
const ARCHIVE_MARGIN: Duration = Duration::from_secs(2);
/// Attempts at placing a line while the store fails, the pause doubling from `FIRST_PAUSE`.
const ATTEMPTS: u32 = 6;
const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// The outbox id of the batch of conversation `conversation` starting at line `first_seq`.
pub fn mail_id(conversation: &str, first_seq: u64) -> String {
    format!("{}{first_seq}", prefix(conversation))
}

/// What every batch id of `conversation` starts with.
fn prefix(conversation: &str) -> String {
    format!("follow-up:{conversation}:")
}

/// The outbox id of the follow-up mail whose `Message-ID` (without angle brackets) is
/// `message_id`, on the desk's `domain`: `follow-up.<conversation>.<seq>@domain`, as
/// `mail::compose` makes it from [`mail_id`].
pub fn mail_of_message_id(message_id: &str, domain: &str) -> Option<String> {
    let (left, at) = message_id.trim().rsplit_once('@')?;
    if !at.eq_ignore_ascii_case(domain) {
        return None;
    }
    let (conversation, seq) = left.strip_prefix("follow-up.")?.rsplit_once('.')?;
    let seq: u64 = seq.parse().ok()?;
    (!conversation.is_empty()).then(|| mail_id(conversation, seq))
}

/// The first seq of batch `id` ([`mail_id`]).
fn first_seq_of(id: &str) -> Option<u64> {
    id.rsplit_once(':')?.1.parse().ok()
}

/// The key of conversation `conversation`'s root `Message-ID`, which every follow-up mail
/// of it answers (`In-Reply-To`, `References`).
pub fn thread_key(conversation: &str) -> String {
    format!("conversation:{conversation}")
}

/// A fresh reply token: 128 random bits as 26 lowercase base32 characters.
pub fn new_token() -> String {
    let bits: [u8; 16] = rand::random();
    data_encoding::BASE32_NOPAD.encode(&bits).to_ascii_lowercase()
}

/// One line the hub stamped into a conversation whose customer is away.
struct Line {
    conversation: String,
    seq: u64,
    at: Millis,
}

/// The hub's handle: hands lines to this node's task, started with the first line.
#[derive(Default)]
pub struct FollowUpMail {
    lines: Option<mpsc::UnboundedSender<Line>>,
}

impl FollowUpMail {
    /// Line `seq` of `conversation`, stamped at `at` and handed to `archive`, may go out by
    /// mail: its batch is found or written. Never waits.
    pub fn written(&mut self, archive: &Archive, settings: &Settings, conversation: &str, seq: u64, at: Millis) {
        let line = Line {
            conversation: conversation.to_string(),
            seq,
            at,
        };
        let lines = self.lines.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(rx, archive.clone(), settings.follow_up_mail_delay));
            tx
        });
        if let Err(e) = lines.send(line) {
            tracing::error!(conversation = %e.0.conversation, "the follow-up mail task is gone; the line is not mailed");
        }
    }
}

/// Places each line in turn until the hub drops its handle.
async fn run(mut lines: mpsc::UnboundedReceiver<Line>, archive: Archive, delay: Duration) {
    while let Some(line) = lines.recv().await {
        let mut pause = FIRST_PAUSE;
        for attempt in 1..=ATTEMPTS {
            match place(&archive, &line, delay).await {
                Ok(()) => break,
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(conversation = %line.conversation, seq = line.seq, error = %e,
                        "a follow-up line's mail could not be placed yet; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => tracing::error!(conversation = %line.conversation, seq = line.seq, error = %e,
                    "a follow-up line is not mailed: the store kept failing"),
            }
        }
    }
}

/// Finds the batch `line` belongs to, or writes a new one starting with it; nothing when
/// the customer gave no email.
async fn place(archive: &Archive, line: &Line, delay: Duration) -> Result<(), StoreError> {
    if !archive.stored_through_now().await {
        return Err(StoreError::Unavailable("the archive store is down".into()));
    }
    let store = archive.store();
    let conversation = match store.conversation(&line.conversation).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    let Some(email) = conversation.opened.customer.email.clone() else {
        return Ok(());
    };
    let batches = store.mails_by_id_prefix(&prefix(&line.conversation)).await?;
    let window = delay.as_millis() as Millis;
    let joined = batches
        .iter()
        .filter_map(|m| Some((first_seq_of(&m.id)?, m)))
        .max_by_key(|(first, _)| *first)
        .is_some_and(|(first, m)| first <= line.seq && line.at < m.created_at + window);
    if joined {
        return Ok(());
    }
    let mut mail = QueuedMail {
        id: mail_id(&line.conversation, line.seq),
        about: line.conversation.clone(),
        purpose: MailPurpose::FollowUp,
        to: email,
        subject: "Follow-up to your conversation".to_string(),
        text: "Made from the archive when sent: the agent's lines of its window.".to_string(),
        attachments: vec![],
    }
    .due(line.at);
    mail.due_at = line.at + window + ARCHIVE_MARGIN.as_millis() as Millis;
    crate::store::add_mail_once(&*store, mail).await
}

/// The agent's lines batch `mail` carries, of `conversation`, given every batch of it
/// (`batches`) and the window (`FOLLOW_UP_MAIL_DELAY_SECS`).
pub fn lines_of<'a>(
    conversation: &'a Conversation,
    batches: &[OutboxMail],
    mail: &OutboxMail,
    delay: Duration,
) -> Vec<&'a ArchivedMessage> {
    let Some(first) = first_seq_of(&mail.id) else {
        return Vec::new();
    };
    let next = batches
        .iter()
        .filter_map(|m| first_seq_of(&m.id))
        .filter(|s| *s > first)
        .min()
        .unwrap_or(u64::MAX);
    let until = mail.created_at + delay.as_millis() as Millis;
    conversation
        .messages
        .iter()
        .filter(|m| m.from == Side::Agent && m.seq >= first && m.seq < next && m.at < until)
        .collect()
}

/// Batch `mail`'s content, made from the archive now: `Ok(Err(why))` when it cannot be
/// sent (its conversation erased, no line of it archived) and is given up.
pub async fn outgoing(
    store: &dyn Store,
    settings: &Settings,
    mail: &OutboxMail,
) -> Result<Result<Outgoing, String>, StoreError> {
    let id = &mail.appointment_id;
    let conversation = match store.conversation(id).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => return Ok(Err("not sent: the conversation is not in the archive".into())),
        Err(e) => return Err(e),
    };
    let batches = store.mails_by_id_prefix(&prefix(id)).await?;
    let lines = lines_of(&conversation, &batches, mail, settings.follow_up_mail_delay);
    if lines.is_empty() {
        return Ok(Err("not sent: none of its lines is in the archive".into()));
    }
    let token = match store.token_of(id).await? {
        Some(token) => token,
        None => {
            let token = new_token();
            store.remember(&token, id).await?;
            token
        }
    };
    let desk = crate::desk_name::desk_name(store, settings).await;
    let opened = &conversation.opened;
    // A file is named with its size: the customer fetches it in the chat (links expire).
    let said: Vec<String> = lines
        .iter()
        .map(|m| crate::transcripts::mail::said_with_files(m))
        .collect();
    let text = format!(
        "Hello {name},\n\n{agent} wrote to you in your conversation with {desk}:\n\n{said}\n\n\
         Answer this mail to reply, or come back to the chat to continue it.\n",
        name = opened.customer_name,
        agent = opened.agent_name,
        said = said.join("\n\n"),
    );
    Ok(Ok(Outgoing {
        subject: format!("Re: Your conversation with {desk}"),
        text,
        reply_token: Some(token),
        thread_key: Some(thread_key(id)),
        ..Outgoing::queued(mail)
    }))
}

/// How a batch stands, for the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Waiting for its window to end, or being tried again.
    Queued,
    /// Handed to the mail relay.
    Sent,
    /// Not sent: written to the log only, as no node sends mail (no `SMTP_URL`).
    Logged,
    /// Given up after its last attempt.
    Failed,
    /// Refused for good: the relay rejected it, or a delivery failure report about it
    /// came back (`error` says why).
    Bounced,
}

impl From<MailStatus> for Delivery {
    fn from(status: MailStatus) -> Self {
        match status {
            MailStatus::Pending => Self::Queued,
            MailStatus::Sent => Self::Sent,
            MailStatus::Logged => Self::Logged,
            MailStatus::Dead => Self::Failed,
            MailStatus::Bounced => Self::Bounced,
        }
    }
}

/// Conversation `conversation`'s follow-up batches, oldest first, each with the lines it
/// carries (those archived so far).
pub async fn batches(
    store: &dyn Store,
    conversation: &Conversation,
    delay: Duration,
) -> Result<Vec<(OutboxMail, Vec<u64>)>, StoreError> {
    let mut batches = store.mails_by_id_prefix(&prefix(&conversation.opened.id)).await?;
    batches.sort_by_key(|m| first_seq_of(&m.id));
    Ok(batches
        .iter()
        .map(|m| {
            let seqs = lines_of(conversation, &batches, m, delay)
                .iter()
                .map(|l| l.seq)
                .collect();
            (m.clone(), seqs)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_26_lowercase_base32_characters_and_fresh_each_time() {
        let token = new_token();
        assert_eq!(token.len(), 26, "{token}");
        assert!(crate::core::inbound_mail::has_a_tokens_shape(&token), "{token}");
        assert_ne!(token, new_token());
    }

    #[test]
    fn a_batch_id_names_its_first_seq_even_when_the_conversation_id_has_colons() {
        assert_eq!(first_seq_of(&mail_id("c1", 7)), Some(7));
        assert_eq!(first_seq_of(&mail_id("a:b", 12)), Some(12));
        assert!(mail_id("c1", 7).starts_with(&prefix("c1")));
    }

    #[test]
    fn a_follow_up_message_id_names_its_outbox_mail_on_the_desks_domain_only() {
        let c = "0193a6c4-1b2e-7c3d-9e8f-0123456789ab";
        assert_eq!(
            mail_of_message_id(&format!("follow-up.{c}.7@Desk.Example"), "desk.example"),
            Some(mail_id(c, 7))
        );
        assert_eq!(
            mail_of_message_id(&format!("follow-up.{c}.7@other.example"), "desk.example"),
            None
        );
        assert_eq!(
            mail_of_message_id(&format!("conversation.{c}@desk.example"), "desk.example"),
            None
        );
        assert_eq!(
            mail_of_message_id(&format!("follow-up.{c}.x@desk.example"), "desk.example"),
            None
        );
    }
}
