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
//! within a second. The readings are numbered ([`super::readings`]): one answering after a
//! newer one is dropped. A reading that fails counts as "not allowed": webhook bots' calls
//! go on while the deliverer's rounds fail, and a node cut off from the store must not keep
//! an allowance the admins may have withdrawn meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::readings::Readings;
use crate::core::webhooks::private_allowed;
use crate::store::{PrivateAddressesChoice, SharedStore, StoreResult};

/// This node's answer, shared by its deliverer and its webhook bots' calls. Cheap to clone.
#[derive(Clone)]
pub struct PrivateAddresses {
    /// `WEBHOOK_ALLOW_PRIVATE`, `None` when unset.
    operator: Option<bool>,
    /// The admins' choice as last read (false until read, and after a reading failed).
    admins: Arc<AtomicBool>,
    readings: Readings,
}

impl PrivateAddresses {
    /// The operator's word (`WEBHOOK_ALLOW_PRIVATE`); the admins' choice is read by
    /// [`PrivateAddresses::refresh`].
    pub fn new(operator: Option<bool>) -> Self {
        Self {
            operator,
            admins: Arc::default(),
            readings: Readings::default(),
        }
    }

    /// Whether a webhook may go to such an address now.
    pub fn allowed(&self) -> bool {
        private_allowed(self.operator, Some(self.admins.load(Ordering::Relaxed)))
    }

    /// Reads the admins' choice again, while it is theirs to make (the operator left
    /// `WEBHOOK_ALLOW_PRIVATE` unset); a change is logged on each node. A failed reading
    /// leaves "not allowed", and its error is returned.
    pub async fn refresh(&self, store: &SharedStore) -> StoreResult<()> {
        if self.operator.is_some() {
            return Ok(());
        }
        let reading = self.readings.begin();
        let read = store.webhook_private_addresses().await;
        self.answered(reading, &read);
        read.map(drop)
    }

    /// Reading `reading` answered `read`: the admins' choice from now on (false when it
    /// failed), unless a newer reading answered first.
    fn answered(&self, reading: u64, read: &StoreResult<Option<PrivateAddressesChoice>>) {
        let allowed = matches!(read, Ok(Some(choice)) if choice.allowed);
        self.readings.answered(reading, || {
            if self.admins.swap(allowed, Ordering::Relaxed) != allowed {
                tracing::info!(
                    allowed,
                    read = read.is_ok(),
                    "webhooks' private addresses: the admins' choice applies on this node"
                );
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn choice(allowed: bool) -> StoreResult<Option<PrivateAddressesChoice>> {
        Ok(Some(PrivateAddressesChoice {
            allowed,
            changed_by: "admin".into(),
            changed_at: 0,
        }))
    }

    fn unreadable() -> StoreResult<Option<PrivateAddressesChoice>> {
        Err(StoreError::Unavailable("cut off".into()))
    }

    /// A deliverer's round that read the choice before an admin withdrew it, answering
    /// after the admin bus message's reading, leaves it withdrawn.
    #[test]
    fn a_reading_that_answers_late_does_not_undo_a_newer_one() {
        let private = PrivateAddresses::new(None);
        let (before_the_change, after_it) = (private.readings.begin(), private.readings.begin());
        private.answered(after_it, &choice(false));
        private.answered(before_the_change, &choice(true));
        assert!(!private.allowed(), "a stale reading allowed private addresses again");
    }

    #[test]
    fn a_failed_reading_withdraws_the_allowance() {
        let private = PrivateAddresses::new(None);
        private.answered(private.readings.begin(), &choice(true));
        assert!(private.allowed());
        private.answered(private.readings.begin(), &unreadable());
        assert!(
            !private.allowed(),
            "a node cut off from the store kept allowing private addresses"
        );
    }

    #[test]
    fn the_operator_decides_whatever_the_store_answers() {
        let always = PrivateAddresses::new(Some(true));
        always.answered(always.readings.begin(), &unreadable());
        assert!(always.allowed());
        let never = PrivateAddresses::new(Some(false));
        never.answered(never.readings.begin(), &choice(true));
        assert!(!never.allowed());
    }
}
