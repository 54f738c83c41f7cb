//! Sending mail and SMS behind one [`Sender`] trait (room invitations, appointments,
//! offline messages, transcripts).
//!
//! - mail goes through real SMTP (`lettre`) when `SMTP_URL` is set, every mail built by
//!   [`compose`] the same way (MIME, UTF-8);
//! - SMS go to an HTTP webhook (`SMS_WEBHOOK_URL`, a JSON body `{"to","text"}`), so any
//!   SMS gateway can be plugged in behind a small adapter;
//! - otherwise each channel falls back to [`LogOnly`], the zero-config default, which
//!   writes what would be sent to the log.
//!
//! A sender that fails returns [`SendError`] with a message meant for the person who
//! asked for the sending: nothing is dropped silently.

mod compose;
mod log_only;
mod smtp;
mod webhook;

use std::sync::Arc;

use async_trait::async_trait;

pub use compose::compose;
pub use log_only::LogOnly;
pub use smtp::Smtp;
pub use webhook::SmsWebhook;

use crate::config::Settings;
use crate::store::{MailAttachment, MailPurpose, MailStatus, Millis, OutboxMail};

/// A mail for the outbox: what each kind of mail (an appointment's, an offline message's,
/// a transcript) says; [`Self::due`] starts the outbox's bookkeeping the same for all.
pub struct QueuedMail {
    /// The outbox id, the same each time the same mail is made, so it is written once.
    pub id: String,
    /// What it is about: the appointment, offline message or conversation id.
    pub about: String,
    pub purpose: MailPurpose,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub attachments: Vec<MailAttachment>,
}

impl QueuedMail {
    /// The outbox entry: pending, never tried, due at `now`.
    pub fn due(self, now: Millis) -> OutboxMail {
        OutboxMail {
            id: self.id,
            appointment_id: self.about,
            purpose: self.purpose,
            to: self.to,
            subject: self.subject,
            text: self.text,
            attachments: self.attachments,
            status: MailStatus::Pending,
            attempts: 0,
            due_at: now,
            claimed_by: None,
            claim_until: None,
            last_error: None,
            created_at: now,
            sent_at: None,
        }
    }
}

/// One thing to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    /// A mail address or an E.164 phone number, as the channel expects.
    pub to: String,
    /// Mail only; SMS have none.
    pub subject: String,
    pub text: String,
    /// Mail only: files sent beside the text (the calendar invitation).
    pub attachments: Vec<Attachment>,
    /// Mail only: what names this mail across retries (its outbox id), so a receiver that
    /// got it twice (a resend after a crash) can tell. [`compose`] makes it the left side
    /// of the `Message-ID`, on the desk's domain; `None`: a fresh one.
    pub message_key: Option<String>,
    /// Mail only: an HTML version of `text`, sent beside it as `multipart/alternative`.
    pub html: Option<String>,
    /// Mail only: the token of the reply address. [`compose`] sets `Reply-To` to the
    /// sender's address plus-addressed with it (`desk+<token>@domain`).
    pub reply_token: Option<String>,
    /// Mail only: the key of the mail this one answers (named like `message_key`):
    /// [`compose`] sets `In-Reply-To` and `References` to its `Message-ID`, so mail clients
    /// show the two in one thread.
    pub thread_key: Option<String>,
}

impl Outgoing {
    /// What outbox entry `mail` sends as stored (subject, text, files), named by its id.
    /// Entries store what was said, never a rendered mail, so one written by any version
    /// is built by today's [`compose`].
    pub fn queued(mail: &OutboxMail) -> Self {
        Outgoing {
            to: mail.to.clone(),
            subject: mail.subject.clone(),
            text: mail.text.clone(),
            attachments: mail
                .attachments
                .iter()
                .map(|a| Attachment {
                    filename: a.filename.clone(),
                    content_type: a.content_type.clone(),
                    content: a.content.clone(),
                })
                .collect(),
            message_key: Some(mail.id.clone()),
            html: None,
            reply_token: None,
            thread_key: None,
        }
    }
}

/// A text file sent with a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// The full MIME type with parameters, e.g. `text/calendar; method=REQUEST; charset=utf-8`.
    pub content_type: String,
    pub content: String,
}

/// Why a sending failed, for people: it names the channel and the cause.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    /// The relay refused it for good (an SMTP 5xx): trying again cannot help.
    pub permanent: bool,
}

impl SendError {
    /// A failure that may pass (a relay down, slow, or refusing for now).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }
}

/// A way to deliver a message to a person.
#[async_trait]
pub trait Sender: Send + Sync + 'static {
    /// "mail" or "sms", for logs and errors.
    fn channel(&self) -> &'static str;
    /// Delivers `message` (hands it to the relay or gateway), or says why not.
    async fn send(&self, message: &Outgoing) -> Result<(), SendError>;
    /// Whether what it sends reaches the person: false for one that only logs (no relay
    /// configured, or one that could not be set up).
    fn delivers(&self) -> bool {
        true
    }
}

/// The configured sender of each channel.
#[derive(Clone)]
pub struct Senders {
    pub mail: Arc<dyn Sender>,
    pub sms: Arc<dyn Sender>,
}

impl Senders {
    /// SMTP and the webhook where configured, logging elsewhere. Settings were validated
    /// at start-up, so building cannot fail on their form.
    pub fn from_settings(settings: &Settings) -> Self {
        let mail: Arc<dyn Sender> = match &settings.mail.smtp_url {
            Some(url) => match Smtp::new(url, &settings.mail.from) {
                Ok(smtp) => Arc::new(smtp),
                Err(e) => {
                    tracing::error!(error = %e, "SMTP_URL cannot be used; mail is only logged");
                    Arc::new(LogOnly::new("mail"))
                }
            },
            None => Arc::new(LogOnly::new("mail")),
        };
        let sms: Arc<dyn Sender> = match &settings.sms_webhook_url {
            Some(url) => Arc::new(SmsWebhook::new(url.clone())),
            None => Arc::new(LogOnly::new("sms")),
        };
        Self { mail, sms }
    }
}
