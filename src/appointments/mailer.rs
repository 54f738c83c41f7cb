//! The outbox worker: one per node, sending appointment mail from the store's outbox.
//!
//! Every `OUTBOX_POLL_SECS` it claims a batch of due mails for `OUTBOX_LEASE_SECS` (the
//! store makes each claim atomic, so several nodes never hold one mail at once), sends
//! each through the configured mail sender with a `Message-ID` derived from the mail's id,
//! and records the outcome only under its own claim: sent; or failed, tried again after
//! the capped exponential backoff of `core::mail_retry`; or, after `OUTBOX_MAX_ATTEMPTS`
//! failures, dead (logged, and listed for admins); a follow-up to a customer who left that
//! the relay refuses for good (a 5xx) is bounced at once, never retried. A node killed between sending and
//! recording leaves a claim that runs out, and the mail is sent again with the same
//! `Message-ID` (at least once, never twice at the same time). A node whose mail is only
//! logged (no `SMTP_URL`) claims a mail only once it has been due for
//! `LEFT_TO_SENDING_NODES`, so that nodes on its store that send mail get it first, and
//! records it `logged`, not sent: admins list it as not sent.
//!
//! Before sending, the mail's appointment is checked to be as the mail says (it exists;
//! for a cancellation, it is cancelled): on MongoDB the mail is written just before its
//! booking or cancellation (`store/mongo/outbox.rs`), and a crash between leaves a mail
//! for something that never happened. Such a mail waits out `ORPHAN_GRACE` (the other
//! write may still be on its way) and is then given up, never sent.
//!
//! Transcripts and follow-ups to a customer who left are made from the archive when they
//! are sent (`transcripts::mail`, `conversations::follow_up_mail`): the entry stores only
//! whom and what conversation it is for.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::core::mail_retry::{AfterFailure, RetryPolicy};
use crate::mail::{Outgoing, Sender};
use crate::store::{
    AppointmentStatus, ConversationKind, EndReason, MailOutcome, MailPurpose, OutboxMail, SharedStore, StoreError,
};

/// Mails claimed per round. One: a claimed mail is then sent within one SMTP timeout
/// (15 s), well inside the shortest lease (30 s), so its claim never runs out mid-send; a
/// full round is followed at once by the next, so a backlog still drains without pause.
const BATCH: usize = 1;
/// How long a mail whose appointment is not (yet) as it says may wait before it is given up.
const ORPHAN_GRACE: Duration = Duration::from_secs(60);
/// On MongoDB a booking's mail is written just before the booking (no transaction), so a
/// worker may claim the mail in between. For a mail this young the appointment is looked
/// for again every `LOOK_AGAIN` rather than leaving the claim to run out (a whole lease,
/// which delayed such a mail by `OUTBOX_LEASE_SECS`: seen as a missing mail in the
/// two-hub MongoDB test on a loaded machine).
const YOUNG_MAIL: Duration = Duration::from_secs(5);
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// How long a node whose mail is only logged (no `SMTP_URL`) leaves a due mail to the
/// nodes on its store that send mail before it claims (logs) it: every node should have
/// the same `SMTP_URL` (docs/operations.md), and when one has none, the mail its bookings
/// put in the outbox still goes out through the others. Alone, it logs each mail this
/// much later.
const LEFT_TO_SENDING_NODES: Duration = Duration::from_secs(600);

/// Runs the worker until `shutdown`.
pub async fn run(store: SharedStore, mail: Arc<dyn Sender>, settings: Arc<Settings>, shutdown: CancellationToken) {
    let worker = Worker {
        store,
        mail,
        node: settings.cluster.node_id.clone(),
        lease: settings.outbox.lease,
        policy: RetryPolicy {
            first_ms: settings.outbox.retry_first.as_millis() as i64,
            max_ms: settings.outbox.retry_max.as_millis() as i64,
            max_attempts: settings.outbox.max_attempts,
        },
        settings: settings.clone(),
    };
    tracing::info!(node = %worker.node, "appointment mail worker started");
    loop {
        let full = match worker.round(&shutdown).await {
            Ok(claimed) => claimed == BATCH,
            Err(e) => {
                tracing::warn!(error = %e, "the mail outbox could not be read; trying again");
                false
            }
        };
        if shutdown.is_cancelled() {
            break;
        }
        if !full {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(settings.outbox.poll) => {}
            }
        }
    }
    tracing::info!("appointment mail worker stopped");
}

struct Worker {
    store: SharedStore,
    mail: Arc<dyn Sender>,
    node: String,
    lease: Duration,
    policy: RetryPolicy,
    /// For transcript mails: the rating token's secret, the desk's name, zone and address.
    settings: Arc<Settings>,
}

impl Worker {
    /// Claims and handles one batch; returns how many mails were claimed.
    async fn round(&self, shutdown: &CancellationToken) -> Result<usize, StoreError> {
        let now = crate::clock::now_ms();
        let until = now + self.lease.as_millis() as i64;
        // A node whose mail is only logged leaves each mail to the nodes that send it:
        // claimed here, it would be recorded sent and never reach anyone.
        let due_by = if self.mail.delivers() {
            now
        } else {
            now - LEFT_TO_SENDING_NODES.as_millis() as i64
        };
        let claimed = self.store.claim_mails(&self.node, due_by, until, BATCH).await?;
        let count = claimed.len();
        for mail in claimed {
            if shutdown.is_cancelled() {
                // Its claim runs out and another round (here or on another node) sends it.
                break;
            }
            self.handle(mail).await?;
        }
        Ok(count)
    }

    async fn handle(&self, mail: OutboxMail) -> Result<(), StoreError> {
        // ---- transcripts by mail: made from the archive now, once the chat is closed ----
        if mail.purpose == MailPurpose::Transcript {
            return match self.transcript_of(&mail).await? {
                Some(outgoing) => self.send(&mail, outgoing).await,
                None => Ok(()),
            };
        }
        // ---- follow-ups by mail: made from the archive now ----
        if mail.purpose == MailPurpose::FollowUp {
            return match crate::conversations::follow_up_mail::outgoing(self.store.as_ref(), &self.settings, &mail)
                .await?
            {
                Ok(outgoing) => self.send(&mail, outgoing).await,
                Err(error) => {
                    tracing::warn!(mail = %mail.id, "{error}");
                    self.store
                        .finish_mail(&mail.id, &self.node, MailOutcome::Dead { error })
                        .await
                        .map(|_| ())
                }
            };
        }
        // ---- admins told: nothing to agree with, sent as stored ----
        if mail.purpose == MailPurpose::WebhookDisabled {
            return self.send(&mail, Outgoing::queued(&mail)).await;
        }
        if !self.appointment_agrees_soon(&mail).await? {
            let age = crate::clock::now_ms() - mail.created_at;
            if age >= ORPHAN_GRACE.as_millis() as i64 {
                let error = "not sent: what it announces was never stored (the booking, move or \
                             cancellation failed after the mail was written) or was overtaken by a later change"
                    .to_string();
                tracing::warn!(mail = %mail.id, "{error}");
                self.store
                    .finish_mail(&mail.id, &self.node, MailOutcome::Dead { error })
                    .await?;
            }
            // Else leave the claim to run out and look again then.
            return Ok(());
        }
        self.send(&mail, Outgoing::queued(&mail)).await
    }

    /// Sends `outgoing`, the content of `mail`, and records how it went under the claim.
    async fn send(&self, mail: &OutboxMail, outgoing: Outgoing) -> Result<(), StoreError> {
        let now = || crate::clock::now_ms();
        let outcome = match self.mail.send(&outgoing).await {
            Ok(()) if self.mail.delivers() => {
                metrics::counter!("switchboard_outbox_sent_total").increment(1);
                tracing::info!(mail = %mail.id, to = %mail.to, "appointment mail sent");
                MailOutcome::Sent { at: now() }
            }
            // Written to the log by a node that sends no mail, after no node that does took
            // it: recorded as such, so admins (and the console's marks) never read it as sent.
            Ok(()) => {
                tracing::warn!(mail = %mail.id, to = %mail.to, "mail only logged: no node that sends mail took it");
                MailOutcome::Logged { at: now() }
            }
            // A follow-up refused for good (a 5xx) bounced: the console says so at once,
            // rather than after every retry (the other purposes keep their retries, and
            // admins see them dead in the end).
            Err(e) if e.permanent && mail.purpose == MailPurpose::FollowUp => {
                metrics::counter!("switchboard_outbox_dead_total").increment(1);
                tracing::warn!(mail = %mail.id, to = %mail.to, error = %e, "follow-up mail refused for good: bounced");
                MailOutcome::Bounced { error: e.to_string() }
            }
            Err(e) => match self.policy.after_failure(mail.attempts, now()) {
                AfterFailure::RetryAt(retry_at) => {
                    metrics::counter!("switchboard_outbox_failed_total").increment(1);
                    tracing::warn!(mail = %mail.id, attempt = mail.attempts + 1, error = %e,
                        "appointment mail not sent; trying again in {} s", (retry_at - now()).max(0) / 1000);
                    MailOutcome::Retry {
                        error: e.to_string(),
                        retry_at,
                    }
                }
                AfterFailure::GiveUp => {
                    metrics::counter!("switchboard_outbox_dead_total").increment(1);
                    tracing::error!(mail = %mail.id, to = %mail.to, attempts = mail.attempts + 1, error = %e,
                        "appointment mail given up after its last attempt; admins see it in /api/admin/mails");
                    MailOutcome::Dead { error: e.to_string() }
                }
            },
        };
        if !self.store.finish_mail(&mail.id, &self.node, outcome).await? {
            // The lease ran out mid-send and another node claimed it: it may go out twice,
            // with the same Message-ID. A lease longer than the SMTP timeout prevents this.
            tracing::warn!(mail = %mail.id, "the mail's claim was lost while sending it");
        }
        Ok(())
    }

    /// A transcript mail's content made from the archive, when its chat is archived closed;
    /// `None` when it is not sent now (it waits, recorded as `Later`, or is given up).
    async fn transcript_of(&self, mail: &OutboxMail) -> Result<Option<Outgoing>, StoreError> {
        use crate::core::transcript_requests::{WhenToSend, ended_for, when_to_send};
        let conversation = &mail.appointment_id;
        let transcript = match self.store.customer_transcript(conversation).await {
            Ok(t) => Some(t),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        // A continued conversation keeps its earlier closing while it runs again.
        let ended = transcript.as_ref().is_some_and(|t| {
            let last_line_at = t.messages.iter().map(|m| m.at).max();
            ended_for(mail.created_at, t.closed.as_ref().map(|c| c.ended_at), last_line_at)
        });
        let now = crate::clock::now_ms();
        let wait = match when_to_send(transcript.is_some(), ended, mail.created_at, now) {
            WhenToSend::Now => None,
            WhenToSend::LookAgainAt(until) => Some(MailOutcome::Later { until }),
            WhenToSend::GiveUp => {
                let error = if transcript.is_some() {
                    "not sent: the chat was not archived closed within a day"
                } else {
                    "not sent: the chat is not in the archive (erased, or never archived)"
                };
                tracing::warn!(mail = %mail.id, "{error}");
                Some(MailOutcome::Dead { error: error.into() })
            }
        };
        if let Some(outcome) = wait {
            self.store.finish_mail(&mail.id, &self.node, outcome).await?;
            return Ok(None);
        }
        let Some(transcript) = transcript else { return Ok(None) };
        if transcript.opened.customer.email.is_none() {
            crate::transcripts::keep_email(self.store.as_ref(), conversation, &mail.to).await;
        }
        // A link to rate it while it is not rated: a fresh token, valid 7 days from this mail.
        let may_rate = transcript.rating.is_none()
            && transcript.closed.as_ref().is_some_and(|c| c.reason == EndReason::Ended)
            && transcript.opened.kind == ConversationKind::Service;
        let token = may_rate.then(|| {
            crate::ratings::issue(
                &self.settings,
                conversation,
                &transcript.opened.agent_id,
                crate::ratings::now_secs(),
            )
        });
        let base_url = self.settings.base_url_without_request();
        let name = crate::desk_name::desk_name(self.store.as_ref(), &self.settings).await;
        let desk = crate::transcripts::mail::Desk {
            name: &name,
            zone: &self.settings.appointments.zone,
            base_url: &base_url,
        };
        let made = crate::transcripts::mail::make(&transcript, &desk, token.as_deref());
        Ok(Some(Outgoing {
            subject: made.subject,
            text: made.text,
            html: Some(made.html),
            ..Outgoing::queued(mail)
        }))
    }

    /// Whether the mail's appointment is as the mail announces, looking again for a moment
    /// while the mail is young (its appointment may be being written right now).
    async fn appointment_agrees_soon(&self, mail: &OutboxMail) -> Result<bool, StoreError> {
        loop {
            if self.appointment_agrees(mail).await? {
                return Ok(true);
            }
            if crate::clock::now_ms() - mail.created_at >= YOUNG_MAIL.as_millis() as i64 {
                return Ok(false);
            }
            tokio::time::sleep(LOOK_AGAIN).await;
        }
    }

    /// Whether the mail's appointment is as the mail announces.
    async fn appointment_agrees(&self, mail: &OutboxMail) -> Result<bool, StoreError> {
        // ---- offline messages: the message (and for a reply, the reply) is stored ----
        if matches!(mail.purpose, MailPurpose::OfflineMessage | MailPurpose::OfflineReply) {
            return match self.store.offline_message(&mail.appointment_id).await {
                Ok(m) => Ok(match mail.purpose {
                    MailPurpose::OfflineReply => crate::offline::reply_of_mail(&mail.id)
                        .is_some_and(|reply| m.replies.iter().any(|r| r.id == reply)),
                    _ => true,
                }),
                Err(StoreError::NotFound) => Ok(false),
                Err(e) => Err(e),
            };
        }
        match self.store.appointment(&mail.appointment_id).await {
            Ok(a) => Ok(match mail.purpose {
                MailPurpose::Confirmation => true,
                MailPurpose::Cancellation => a.status == AppointmentStatus::Cancelled,
                // Sent only while the appointment is at the sequence it announces: a move
                // that never landed (MongoDB, module comment) or one overtaken by a later
                // move or a cancellation is not sent.
                MailPurpose::Reschedule => {
                    super::mails::announced_sequence(&mail.id) == Some(a.sequence)
                        && a.status == AppointmentStatus::Booked
                }
                MailPurpose::OfflineMessage
                | MailPurpose::OfflineReply
                | MailPurpose::Transcript
                | MailPurpose::FollowUp
                | MailPurpose::WebhookDisabled => false,
            }),
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
