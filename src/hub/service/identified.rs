//! A joining customer's identity (`join.identifier` with `identifier_hash`), checked
//! against the desk's identity secret before the join goes on: the secret is read from the
//! shared store off the hub's task (each time, so a rotation or a disabling holds at once
//! on every node), then the join goes on as asked, with the identity kept in the
//! customer's details only when its hash verified. Anything else is ignored, silently:
//! the customer joins as an anonymous visitor, and nothing tells them why.

use super::HubState;
use super::continuing::JoinAsked;
use crate::hub::delivery::ConnId;
use crate::hub::{Command, tell};

impl HubState {
    /// Checks `identifier` off the hub's task; the join goes on in [`HubState::identity_checked`].
    pub(super) fn verify_identity(&self, conn: ConnId, mut asked: JoinAsked, identifier: String, hash: Option<String>) {
        let (store, hub) = (self.archive.store(), self.timers.clone());
        tokio::spawn(async move {
            asked.profile.identity = crate::identity_secret::verify(&store, Some(&identifier), hash.as_deref()).await;
            let asked = Box::new(asked);
            tell(&hub, Command::IdentityChecked { conn, asked }).await;
        });
    }

    /// A join whose identity was checked goes on as asked.
    pub(super) fn identity_checked(&mut self, conn: ConnId, asked: JoinAsked) {
        // Gone, or joined some other way meanwhile (a second `join`): nothing to do.
        if self.conns.get(&conn).is_none_or(|c| c.who.is_some()) {
            return;
        }
        if let Err((code, message)) = self.join_as_asked(conn, asked) {
            self.error_to_conn(conn, code, message, None);
        }
    }
}
