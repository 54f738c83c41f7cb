//! The settings of mail going out: through which relay, from whom, and the desk's
//! address that offline messages are mailed to.

use super::{ConfigError, Reader};

/// `SMTP_URL`, `MAIL_FROM` and `OFFLINE_MAIL_TO`.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Where mail goes out (`SMTP_URL`, e.g. `smtp://127.0.0.1:25`,
    /// `smtps://user:pass@mail.example.com`); unset: mail is only logged.
    pub smtp_url: Option<String>,
    /// The From of the hub's mail (`MAIL_FROM`).
    pub from: String,
    /// `OFFLINE_MAIL_TO`: the desk's address (`a@b.example` or `Desk <a@b.example>`) each
    /// new offline message is also mailed to, through the outbox; unset: none is mailed.
    pub offline_to: Option<String>,
}

impl MailSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            smtp_url: r.smtp_url("SMTP_URL")?,
            from: r.mailbox("MAIL_FROM", "Switchboard <switchboard@localhost>")?,
            offline_to: r.optional_mailbox("OFFLINE_MAIL_TO")?,
        })
    }
}
