//! A customer waiting in line to continue a conversation whose page comes back on another
//! node than the one they joined on (several nodes): that node never read the conversation
//! (the join was the other's; it knows only its id and the seq the join settled on), so it
//! reads it from the store before it sends `customer_resumed`. Their `resumed` then carries
//! the conversation as their own node's would, and they go on writing into it from here.

use super::super::HubState;
use super::super::continuing::{Continued, LATE_LINES_WAIT, read_waiting};
use super::resume::PendingResume;
use crate::cluster::replica::Continues;
use crate::core::routing::CustomerId;
use crate::hub::{Command, tell};

impl HubState {
    /// `customer`, taken on here for a resume while they wait to continue `continues`: the
    /// conversation is read (up to the lines they saw stamped), then the resume goes on
    /// ([`HubState::continuing_read_for_resume`]).
    pub(in crate::hub::service) fn read_continuing_for_resume(
        &mut self,
        customer: CustomerId,
        continues: Continues,
        pending: PendingResume,
    ) {
        let through = continues.last_seq.max(pending.last_seq);
        self.cluster_mut().reading_conversation.insert(customer, pending);
        let (store, hub) = (self.archive.store(), self.timers.clone());
        let rules = super::super::conversation_status::rules(&self.settings);
        // A store that stopped answering: the resume goes on without it.
        let deadline = self.settings.archive.write_timeout + LATE_LINES_WAIT;
        // A line they wrote meanwhile may have opened it already: a reopen is the join's word.
        let reopened = continues.reopened;
        tokio::spawn(async move {
            let found = tokio::time::timeout(deadline, read_waiting(&store, &continues.id, through, &rules))
                .await
                .unwrap_or_else(|_| Err(("archive_unavailable", "the store did not answer".to_string())));
            let found = found.map(|mut c| {
                c.reopened |= reopened;
                Box::new(c)
            });
            tell(&hub, Command::ContinuingReadForResume { customer, found }).await;
        });
    }

    /// The conversation `customer` waits to continue, read for their resume here: kept as
    /// theirs (while they still wait), and the resume goes on. Unread, it goes on all the
    /// same: the page shows what it kept, and their lines wait for the chat.
    pub(in crate::hub::service) fn continuing_read_for_resume(
        &mut self,
        customer: CustomerId,
        found: Result<Box<Continued>, (&'static str, String)>,
    ) {
        let Some(pending) = self.cluster_mut().reading_conversation.remove(&customer) else {
            // Settled meanwhile (Redis lost its data): nothing to resume.
            return;
        };
        match found {
            Ok(continued) => {
                let waiting = self.routing.customer_chat(customer).is_none();
                if let Some(info) = self.customers.get_mut(&customer).filter(|_| waiting) {
                    info.continues = Some(continued);
                }
            }
            Err((code, message)) => {
                tracing::warn!(%code, %message, "a waiting customer's conversation was not read for their resume here; resumed without it");
            }
        }
        self.finish_resume(pending.conn, &pending.token, pending.last_seq, pending.taken_on);
    }
}
