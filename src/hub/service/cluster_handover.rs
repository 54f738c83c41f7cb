//! Who archives a chat once its customer's node is gone (issue 15, `docs/cluster.md` §13).
//!
//! The customer's node archives a chat (opening, messages, closing); the agent's node
//! archives nothing. When the customer's node dies, the reaper's `node_lost` hands the
//! customer to the reaper, which runs their grace timer — and from then on archives their
//! chat: what it kept of the chat (the agent's messages acked since the death, which no
//! one archived), then every line, and the closing when the grace period runs out. Without
//! this a killed node's customer who never came back left the chat open in the archive and
//! the agent's last messages acked but never archived. The store applies messages by
//! (chat, seq), so archiving again what the dead node had archived changes nothing.

use super::{ChatLog, HubState, TRANSCRIPT_LIMIT};
use crate::core::routing::{ChatId, CustomerId, Decision};
use crate::hub::now_ms;
use crate::hub::transcript::Transcript;

impl HubState {
    /// The chats of the customers a `node_lost` this node made handed to it (their grace
    /// timers run here): from `out`, the transition's decisions, once applied.
    pub(super) fn inherited_chats(&self, out: &[Decision]) -> Vec<ChatId> {
        out.iter()
            .filter_map(|d| match d {
                Decision::CustomerGraceStarted { customer, .. } => self.routing.customer_chat(*customer),
                _ => None,
            })
            .collect()
    }

    /// This node archives `chat` from now on: opens its log of it if neither side is here
    /// (read from the chat's log in Redis), and archives what it already kept.
    pub(super) fn inherit_archiving(&mut self, chat: ChatId) {
        if !self.chats.contains_key(&chat) && !self.open_log_for_archive(chat) {
            return;
        }
        let Some(log) = self.chats.get_mut(&chat) else { return };
        if log.archived_here {
            return;
        }
        log.archived_here = true;
        for event in log.transcript.archive_events() {
            self.archive.push_message(event);
        }
        let last = log.transcript.last_seq();
        // Lines published to the dead node meanwhile are only in the chat's log.
        self.fill(chat, last);
    }

    /// A customer this node archived for (inherited, not connected here) resumed on another
    /// node: that node archives now; this one keeps the log only while it holds the agent.
    pub(super) fn hand_on_archiving(&mut self, customer: CustomerId) {
        if self.customers.contains_key(&customer) {
            return;
        }
        let Some(chat) = self.routing.customer_chat(customer) else {
            return;
        };
        let Some(log) = self.chats.get_mut(&chat) else { return };
        if !log.archived_here {
            return;
        }
        log.archived_here = false;
        if !self.agents.contains_key(&log.agent)
            && let Some(log) = self.chats.remove(&chat)
        {
            self.chat_by_wire.remove(&log.wire_id);
            self.cluster_mut().chat_closed(chat);
        }
    }

    /// Opens a log of a running chat neither side of which is here (the reaper of a node
    /// that held the customer, the agent on a third node); false if it is not running.
    fn open_log_for_archive(&mut self, chat: ChatId) -> bool {
        let Some((customer, agent)) = self.routing.chat_sides(chat).map(|(c, a)| (c, a.clone())) else {
            return false;
        };
        let Some(category) = self.routing.chat_category(chat).cloned() else {
            return false;
        };
        let cluster = self.cluster.as_ref().expect("called in a cluster only");
        let wire_id = cluster.wire_id(chat);
        let (customer_name, _) = cluster.remote_customer(customer);
        let agent_name = cluster.agent_name(&agent).unwrap_or_default();
        self.chats.insert(
            chat,
            ChatLog {
                wire_id: wire_id.clone(),
                category,
                customer,
                agent,
                customer_name,
                agent_name,
                started_at: now_ms(),
                transcript: Transcript::new(TRANSCRIPT_LIMIT),
                archived_here: false,
            },
        );
        self.chat_by_wire.insert(wire_id, chat);
        true
    }
}
