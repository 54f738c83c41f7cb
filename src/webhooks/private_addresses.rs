//! Whether webhooks (endpoints and webhook bots) may reach loopback, link-local and private
//! addresses: the operator's `WEBHOOK_ALLOW_PRIVATE` when it is set (always, or never),
//! else the admins' choice in the store (`PrivateAddressesChoice`, off until made), as
//! `core::webhooks::private_allowed` rules.
//!
//! A URL an admin gives is checked against the choice as stored now ([`allowed_now`]). A
//! delivery or a bot's call is checked against the choice this node read last
//! ([`PrivateAddresses`]): read again with the endpoints, on the admin bus's `webhooks`
//! message (sent by the node where an admin changed it) and at the deliverer's look every
//! half second (a message missed while Redis was away), so every node honours a change
//! within a second. Two readings crossing leave the older answer for at most that long.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::core::webhooks::private_allowed;
use crate::store::{SharedStore, StoreResult};

/// This node's answer, shared by its deliverer and its webhook bots' calls. Cheap to clone.
#[derive(Clone)]
pub struct PrivateAddresses {
    /// `WEBHOOK_ALLOW_PRIVATE`, `None` when unset.
    operator: Option<bool>,
    /// The admins' choice as last read (false until read).
    admins: Arc<AtomicBool>,
}

impl PrivateAddresses {
    /// The operator's word (`WEBHOOK_ALLOW_PRIVATE`); the admins' choice is read by
    /// [`PrivateAddresses::refresh`].
    pub fn new(operator: Option<bool>) -> Self {
        Self {
            operator,
            admins: Arc::default(),
        }
    }

    /// Whether a webhook may go to such an address now.
    pub fn allowed(&self) -> bool {
        private_allowed(self.operator, Some(self.admins.load(Ordering::Relaxed)))
    }

    /// Reads the admins' choice again, while it is theirs to make (the operator left
    /// `WEBHOOK_ALLOW_PRIVATE` unset); a change is logged on each node.
    pub async fn refresh(&self, store: &SharedStore) -> StoreResult<()> {
        if self.operator.is_some() {
            return Ok(());
        }
        let allowed = store.webhook_private_addresses().await?.is_some_and(|c| c.allowed);
        if self.admins.swap(allowed, Ordering::Relaxed) != allowed {
            tracing::info!(
                allowed,
                "webhooks' private addresses: the admins' choice applies on this node"
            );
        }
        Ok(())
    }
}

/// Whether a webhook may go to such an address, with the admins' choice as `store` holds
/// it now: for a URL an admin gives (a webhook endpoint's, a webhook bot's).
pub async fn allowed_now(operator: Option<bool>, store: &SharedStore) -> StoreResult<bool> {
    if operator.is_some() {
        return Ok(private_allowed(operator, None));
    }
    let admins = store.webhook_private_addresses().await?.map(|c| c.allowed);
    Ok(private_allowed(None, admins))
}
