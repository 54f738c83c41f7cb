//! The mail outbox: appointment mail waiting to be sent, as stored.
//!
//! A mail is written by the same store call that books or cancels its appointment, so a
//! booking never exists without its confirmation waiting somewhere (see each backend for
//! how). A worker on every node claims due mails with a lease (`claimed_by` until
//! `claim_until`): while the lease runs no other node can claim the mail, so two nodes
//! never send it at once; a node that dies mid-send leaves a lease that simply runs out.
//! Marking a mail sent or failed succeeds only for the node holding its claim and only
//! while it is pending, so a mail is marked sent exactly once.

use async_trait::async_trait;

use super::{Millis, Page, StoreError, StoreResult};

/// What a mail tells its customer; with `appointment_id`, what its sending depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailPurpose {
    /// Sent once the appointment exists.
    Confirmation,
    /// Sent once the appointment is cancelled.
    Cancellation,
    /// Sent once the appointment is moved to another slot (at the sequence in the mail's id).
    Reschedule,
    // ---- offline messages ----
    /// A new offline message, to the desk's address (`OFFLINE_MAIL_TO`); its
    /// `appointment_id` names the offline message.
    OfflineMessage,
    /// An agent's answer to an offline message, to its customer; its `appointment_id`
    /// names the offline message, its id ends with the reply's id.
    OfflineReply,
    // ---- transcripts by mail ----
    /// A chat's transcript, to its customer; its `appointment_id` names the conversation.
    /// Its body is made from the archive when it is sent, once the chat is archived closed
    /// (`transcripts::mail`); until then the stored `text` only says so.
    Transcript,
    // ---- follow-ups by mail ----
    /// Lines an agent wrote to a customer who left, to the customer; its `appointment_id`
    /// names the conversation, its id the first line's seq (`conversations::follow_up_mail`).
    /// Its body is made from the archive when it is sent; the stored `text` only says so.
    FollowUp,
    // ---- admins told ----
    /// A webhook endpoint the deliverer disabled, to an admin (`ADMIN_MAIL_TO`); its
    /// `appointment_id` names the endpoint, its id the delivery that died
    /// (`webhooks::disabled_mail`). Sent as stored.
    WebhookDisabled,
}

/// Where a mail is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    /// Waiting for its `due_at` (a first try or a retry), or being sent under a claim.
    Pending,
    /// Handed to the mail relay.
    Sent,
    /// Written to the log only: the node that took it sends no mail (no `SMTP_URL`), and
    /// no node that sends mail took it within `LEFT_TO_SENDING_NODES`. Never tried again;
    /// admins see it as not sent.
    Logged,
    /// Given up on after its last attempt failed; admins see it with its last error.
    Dead,
    /// Refused for good: the relay rejected it permanently (a 5xx), or a delivery failure
    /// report about it came back; its last error says why. Never tried again.
    Bounced,
}

/// One text attachment (the ICS invitation).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailAttachment {
    pub filename: String,
    /// The full MIME type with its parameters, e.g. `text/calendar; method=REQUEST`.
    pub content_type: String,
    pub content: String,
}

/// A mail in the outbox, stored as it is by the serialising backends, without its id:
/// they key it by the id (the embedded store's row key, MongoDB's `_id` beside these
/// fields) and put it back when reading.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboxMail {
    /// Derived from the appointment and the purpose (see `appointments::mails`), so
    /// writing it twice is one mail, and the Message-ID derived from it is stable.
    #[serde(skip)]
    pub id: String,
    /// The appointment it is about; for the offline purposes, the offline message.
    pub appointment_id: String,
    pub purpose: MailPurpose,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub attachments: Vec<MailAttachment>,
    pub status: MailStatus,
    /// Failed sending attempts so far.
    pub attempts: u32,
    /// Not claimed before this instant (the first try: when written; later: the backoff).
    pub due_at: Millis,
    /// The node holding the claim, if it was ever claimed.
    pub claimed_by: Option<String>,
    /// The claim's end: after it, another node may claim the mail again.
    pub claim_until: Option<Millis>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub sent_at: Option<Millis>,
}

impl OutboxMail {
    /// Whether a claim at `now` may take it.
    pub fn claimable(&self, now: Millis) -> bool {
        self.status == MailStatus::Pending && self.due_at <= now && self.claim_until.is_none_or(|c| c <= now)
    }
}

/// How a sending attempt ended, for [`super::OutboxStore::finish_mail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    Sent {
        at: Millis,
    },
    /// Only written to the log (a node that sends no mail): [`MailStatus::Logged`].
    Logged {
        at: Millis,
    },
    /// Try again at `retry_at`.
    Retry {
        error: String,
        retry_at: Millis,
    },
    /// No more attempts.
    Dead {
        error: String,
    },
    /// Refused for good by the relay (a 5xx): no more attempts, and it counts as bounced.
    Bounced {
        error: String,
    },
    // ---- transcripts by mail ----
    /// Not sent, and not a failure: what it waits for is not there yet (a transcript's
    /// chat still running). Claimable again at `until`; `attempts` unchanged.
    Later {
        until: Millis,
    },
}

/// `outcome` applied to a pending, claimed mail: the claim ends, and the mail is sent,
/// due again later with one more failed attempt, or dead. Every backend stores the result.
pub fn apply_outcome(mail: &mut OutboxMail, outcome: MailOutcome) {
    mail.claim_until = None;
    match outcome {
        MailOutcome::Sent { at } => {
            mail.status = MailStatus::Sent;
            mail.sent_at = Some(at);
        }
        MailOutcome::Logged { at } => {
            mail.status = MailStatus::Logged;
            mail.sent_at = Some(at);
        }
        MailOutcome::Retry { error, retry_at } => {
            mail.attempts += 1;
            mail.due_at = retry_at;
            mail.last_error = Some(error);
        }
        MailOutcome::Dead { error } => {
            mail.attempts += 1;
            mail.status = MailStatus::Dead;
            mail.last_error = Some(error);
        }
        MailOutcome::Bounced { error } => {
            mail.attempts += 1;
            mail.status = MailStatus::Bounced;
            mail.last_error = Some(error);
        }
        MailOutcome::Later { until } => {
            mail.due_at = until;
        }
    }
}

/// Stores `mail` unless a mail with its id is stored already, which is then no error: for
/// a mail whose id names what it tells of, written again by a retry or by another node.
pub async fn add_mail_once(store: &(impl OutboxStore + ?Sized), mail: OutboxMail) -> StoreResult<()> {
    match store.add_mail(mail).await {
        Ok(()) | Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The mail outbox: mails added, claimed by one node at a time, finished, listed.
/// (Mails written with an appointment or an offline message go in through
/// [`super::AppointmentStore`] and [`super::OfflineStore`], in the same write as what they tell of.)
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Stores `mail` unless a mail with its id is stored: then `Conflict`, nothing written
    /// (a unique key decides, so of two racing writers of one id exactly one succeeds).
    async fn add_mail(&self, mail: OutboxMail) -> StoreResult<()>;
    /// Claims up to `limit` mails claimable at `now` ([`OutboxMail::claimable`]) for
    /// `node` until `until`, oldest due first, and returns them as claimed. Each
    /// mail's claim is one atomic step: of concurrent claimers exactly one gets it.
    async fn claim_mails(&self, node: &str, now: Millis, until: Millis, limit: usize) -> StoreResult<Vec<OutboxMail>>;
    /// Records how `node`'s attempt at mail `id` ended (a retry raises `attempts`).
    /// Changes only a pending mail whose claim `node` holds, and ends the claim; false
    /// (nothing changed) otherwise, e.g. when its lease ran out and another node took it.
    async fn finish_mail(&self, id: &str, node: &str, outcome: MailOutcome) -> StoreResult<bool>;
    /// One mail by id; `NotFound` when absent.
    async fn mail(&self, id: &str) -> StoreResult<OutboxMail>;
    /// Mails (of one status when given), newest created first, and the total count
    /// before paging.
    async fn mails(&self, status: Option<MailStatus>, page: Page) -> StoreResult<(Vec<OutboxMail>, u64)>;
    /// The mails whose id starts with `prefix`, by id.
    async fn mails_by_id_prefix(&self, prefix: &str) -> StoreResult<Vec<OutboxMail>>;
    /// A delivery failure report came back about mail `id`: it is [`MailStatus::Bounced`]
    /// whatever it was, with `reason` as its last error, its claim ended (so a worker
    /// sending it still cannot mark it sent). False when it was bounced already (nothing
    /// changed); `NotFound` when absent.
    async fn bounce_mail(&self, id: &str, reason: &str) -> StoreResult<bool>;
}

/// `mail` as [`OutboxStore::bounce_mail`] leaves it; false when it was bounced already.
pub fn apply_bounce(mail: &mut OutboxMail, reason: &str) -> bool {
    if mail.status == MailStatus::Bounced {
        return false;
    }
    mail.status = MailStatus::Bounced;
    mail.last_error = Some(reason.to_string());
    mail.claim_until = None;
    true
}
