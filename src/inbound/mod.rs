//! Mail customers send back to the desk's mailbox, read over IMAP (`IMAP_URL`; off while
//! unset): polled by one task a node (`poller`), parsed with `mail-parser` (`parse`),
//! decided by the pure rules of `core::inbound_mail`, handed to an [`InboundSink`] once per
//! mail (`InboundMailStore` remembers each by key), then flagged on the server (`\Seen`
//! and `$SwitchboardDone`), never deleted.
//!
//! Order per mail: skip (and flag) when its key is recorded already; otherwise decide,
//! deliver, record, flag. A crash between delivering and recording delivers it again on
//! the next poll, so a sink must be idempotent by [`InboundMail::key`] (the archive is,
//! when a line's id is made from the key).

pub mod conversations;
pub mod files;
pub mod imap;
pub mod parse;
pub mod poller;

use async_trait::async_trait;

use crate::core::inbound_mail::Decision;

/// One mail as decided, for the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMail {
    /// What makes it count once: `id:<Message-ID>` or `sha256:<hex of the raw mail>`.
    pub key: String,
    pub message_id: Option<String>,
    /// The raw mail's size in bytes.
    pub size: usize,
    pub decision: Decision,
    /// The mail as fetched, headers and all (empty when it was never downloaded).
    pub raw: Vec<u8>,
}

/// Where decided mails go: the conversation they thread into, a new one, a bounce record.
#[async_trait]
pub trait InboundSink: Send + Sync {
    /// Carries out `mail`'s decision. `Err`: nothing is recorded or flagged, and the mail
    /// is offered again on the next poll.
    async fn deliver(&self, mail: &InboundMail) -> Result<(), String>;
}

/// The sink until mails become conversation lines: each decision is logged (never its
/// text), so an operator sees what would happen.
pub struct LogSink;

#[async_trait]
impl InboundSink for LogSink {
    async fn deliver(&self, mail: &InboundMail) -> Result<(), String> {
        match &mail.decision {
            Decision::Drop(reason) => {
                tracing::info!(key = %mail.key, size = mail.size, reason = reason.as_str(), detail = ?reason, "inbound mail dropped")
            }
            Decision::Bounce { original_ids, reason } => {
                tracing::info!(key = %mail.key, ?original_ids, ?reason, "inbound mail is a bounce")
            }
            Decision::Thread { tokens, ids, .. } => {
                tracing::info!(key = %mail.key, tokens = tokens.len(), ?ids, "inbound mail answers a conversation")
            }
            Decision::New { category, .. } => {
                tracing::info!(key = %mail.key, %category, "inbound mail starts a conversation")
            }
        }
        Ok(())
    }
}
