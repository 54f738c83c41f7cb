//! The webhooks' settings: where deliveries may go, how long a node holds one it
//! claimed, how long its log is kept (`WEBHOOK_*`), and whom a disabled endpoint is
//! mailed to (`ADMIN_MAIL_TO`).

use std::time::Duration;

use super::{ConfigError, Reader};

/// `WEBHOOK_*` settings and `ADMIN_MAIL_TO`.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `WEBHOOK_ALLOW_PRIVATE`: whether webhooks (endpoints and webhook bots) may reach
    /// loopback, link-local and private addresses (a receiver on the hub's own network):
    /// `Some(true)` always, `Some(false)` never, `None` (unset) as the admins chose on the
    /// admin page, off until they do. Refused URLs are refused at registration and at
    /// delivery (`webhooks::private_addresses`).
    pub allow_private: Option<bool>,
    /// `WEBHOOK_LEASE_SECS`: how long a delivery a node claimed is that node's alone to
    /// send; longer than one attempt may take, so two nodes never send it at once, and
    /// how long a delivery waits after its node died mid-send.
    pub lease: Duration,
    /// `ADMIN_MAIL_TO`: the admins' addresses (comma separated) told by mail, through the
    /// outbox, when the hub disables a webhook endpoint; empty: the log and the admin page
    /// only say so.
    pub admin_mail_to: Vec<String>,
    /// `WEBHOOK_DELIVERY_RETENTION_DAYS`: how long a settled delivery (delivered, or given
    /// up) stays in its endpoint's log before the periodic sweep deletes it; pending ones
    /// are never swept.
    pub delivery_retention: Duration,
}

impl WebhookSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            allow_private: r.optional_flag("WEBHOOK_ALLOW_PRIVATE")?,
            // At least 15 s: an attempt takes at most 10 s (`webhooks::deliver::TIMEOUT`).
            lease: Duration::from_secs(r.ranged::<u64>("WEBHOOK_LEASE_SECS", 60, 15..=3_600)?),
            admin_mail_to: r.mailboxes("ADMIN_MAIL_TO")?,
            delivery_retention: Duration::from_secs(
                24 * 3600 * r.ranged::<u64>("WEBHOOK_DELIVERY_RETENTION_DAYS", 30, 1..=3_650)?,
            ),
        })
    }
}
