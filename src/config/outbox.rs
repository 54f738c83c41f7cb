//! The mail outbox's settings: how often each node's mail worker looks for due mail,
//! how long a claimed mail is its alone, and how it retries (`OUTBOX_*`).

use std::time::Duration;

use super::{ConfigError, Reader};

/// `OUTBOX_*` settings.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// `OUTBOX_POLL_SECS`: how often each node's mail worker looks for due mail.
    pub poll: Duration,
    /// `OUTBOX_LEASE_SECS`: how long a claimed mail is this node's alone; longer than one
    /// SMTP delivery may take, so two nodes never send it at once.
    pub lease: Duration,
    /// `OUTBOX_RETRY_FIRST_SECS`: the pause after a mail's first failed attempt; it doubles
    /// with each further failure up to `OUTBOX_RETRY_MAX_SECS`.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// `OUTBOX_MAX_ATTEMPTS`: failed attempts after which a mail is dead (admins see it).
    pub max_attempts: u32,
}

impl OutboxSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        let outbox = Self {
            poll: r.positive_seconds("OUTBOX_POLL_SECS", 2.0)?,
            lease: Duration::from_secs(r.ranged::<u64>("OUTBOX_LEASE_SECS", 120, 30..=3_600)?),
            retry_first: r.positive_seconds("OUTBOX_RETRY_FIRST_SECS", 30.0)?,
            retry_max: r.positive_seconds("OUTBOX_RETRY_MAX_SECS", 3_600.0)?,
            max_attempts: r.ranged::<u32>("OUTBOX_MAX_ATTEMPTS", 12, 1..=100)?,
        };
        if outbox.retry_max < outbox.retry_first {
            return Err(ConfigError {
                var: "OUTBOX_RETRY_MAX_SECS",
                value: format!("{}", outbox.retry_max.as_secs_f64()),
                reason: "must be at least OUTBOX_RETRY_FIRST_SECS".into(),
            });
        }
        Ok(outbox)
    }
}
