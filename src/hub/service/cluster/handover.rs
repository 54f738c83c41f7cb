//! Who archives a chat once its customer's node is gone (`docs/cluster.md` §13).
//!
//! The customer's node archives a chat (opening, messages, closing); the agent's node
//! archives nothing. When the customer's node dies, the reaper's `node_lost` hands the
//! customer to the reaper, which runs their grace timer — and from then on archives their
//! chat: what it kept of the chat (the agent's messages acked since the death, which no
//! one archived), then every line, and the closing when the grace period runs out. Without
//! this a killed node's customer who never came back left the chat open in the archive and
//! the agent's last messages acked but never archived. The store applies messages by
//! (chat, seq), so archiving again what the dead node had archived changes nothing.
//!
//! A node that takes a chat's archiving on (the reaper here, or the node a customer
//! resumes on, `adopt_chat`) archives its opening first: the customer's node may never
//! have written it — it was stopped (SIGSTOP) when the chat was paired, and woke fenced —
//! and the stores drop the messages of a conversation never opened. Openings apply once
//! by id (the first wins), so one written before changes nothing.

use super::super::HubState;
use crate::core::routing::{ChatId, CustomerId, Decision};
use crate::store::{ArchiveEvent, ConversationKind, ConversationOpened};

impl HubState {
    /// The chats of the customers a `node_lost` this node made handed to it (their grace
    /// timers run here): from `out`, the transition's decisions, once applied.
    pub(in crate::hub::service) fn inherited_chats(&self, out: &[Decision]) -> Vec<ChatId> {
        out.iter()
            .filter_map(|d| match d {
                Decision::CustomerGraceStarted { customer, .. } => self.routing.customer_chat(*customer),
                _ => None,
            })
            .collect()
    }

    /// The customers whose grace runs here though this node does not hold them as its own
    /// (`self.customers`): a lost node's, handed over by a `node_lost` this node made —
    /// those in a chat, which this node archives since (`inherit_archiving`), and those
    /// waiting (`inherited_waiting`) — while the routing domain still has them.
    pub(in crate::hub::service) fn customers_in_our_care(&self) -> Vec<CustomerId> {
        let chatting = (self.chats.iter())
            .filter(|(chat, log)| {
                log.archived_here
                    && !self.customers.contains_key(&log.customer)
                    && self.routing.customer_chat(log.customer) == Some(**chat)
            })
            .map(|(_, log)| log.customer);
        let waiting = (self.cluster.iter())
            .flat_map(|cluster| cluster.inherited_waiting.iter().copied())
            .filter(|customer| {
                !self.customers.contains_key(customer) && self.routing.customer_category(*customer).is_some()
            });
        chatting.chain(waiting).collect()
    }

    /// The waiting customers a `node_lost` this node made handed to it.
    pub(in crate::hub::service) fn inherited_waiting(&self, out: &[Decision]) -> Vec<CustomerId> {
        out.iter()
            .filter_map(|d| match d {
                Decision::CustomerGraceStarted { customer, .. } if self.routing.customer_chat(*customer).is_none() => {
                    Some(*customer)
                }
                _ => None,
            })
            .collect()
    }

    /// This node archives `chat` from now on: opens its log of it if neither side is here
    /// (read from the chat's log in Redis), and archives what it already kept.
    pub(in crate::hub::service) fn inherit_archiving(&mut self, chat: ChatId) {
        if !self.chats.contains_key(&chat) && !self.open_log_for_archive(chat) {
            return;
        }
        if self.chats.get(&chat).is_none_or(|log| log.archived_here) {
            return;
        }
        self.archive_from_now_on(chat);
        let last = self.chats.get(&chat).map_or(0, |log| log.live.last_seq());
        // Lines published to the dead node meanwhile are only in the chat's log.
        self.fill(chat, last);
    }

    /// This node archives `chat` from now on: its opening (which the customer's old node
    /// may never have written), then every line it kept. The store applies both once.
    pub(in crate::hub::service) fn archive_from_now_on(&mut self, chat: ChatId) {
        if self.chats.get(&chat).is_none_or(|log| log.archived_here) {
            return;
        }
        let Some(opened) = self.opening_of(chat) else { return };
        // Running already: its messages are kept only after its opening, room or not.
        let created_by_it = self.chats[&chat].created_by_it;
        let reserved = self.archive.push_handover_opening(opened, created_by_it);
        let log = self.chats.get_mut(&chat).expect("looked up above");
        log.archived_here = true;
        log.closing_reserved = reserved;
        for event in log.live.archive_events() {
            self.archive.push_message(event);
        }
    }

    /// Redis lost its data, and the chats' logs with it: a line this node recorded (and
    /// maybe acknowledged to its sender here) may now never reach the chat's archiving
    /// node. So this node archives what it kept of every chat it logs without archiving
    /// it — the opening first, as a hand-over does; it writes no closing. The store keeps
    /// each once, whichever node's copy comes first.
    pub(in crate::hub::service) fn archive_kept_lines_of_every_chat(&mut self) {
        let chats: Vec<ChatId> = self
            .chats
            .iter()
            .filter(|(_, log)| !log.archived_here && log.live.last_seq() > 0)
            .map(|(chat, _)| *chat)
            .collect();
        for chat in chats {
            let Some(opened) = self.opening_of(chat) else { continue };
            if self
                .archive
                .push_handover_opening(opened, self.chats[&chat].created_by_it)
            {
                self.archive.release_closing();
            }
            for event in self.chats[&chat].live.archive_events() {
                self.archive.push_message(event);
            }
        }
    }

    /// The archive's opening of a chat this node logs, from what every replica knows.
    fn opening_of(&self, chat: ChatId) -> Option<ArchiveEvent> {
        let log = self.chats.get(&chat)?;
        let cluster = self.cluster.as_ref();
        let queued_at = self
            .customers
            .get(&log.customer)
            .map(|info| info.queued_at)
            .or_else(|| cluster.and_then(|c| c.remote_queued_at(log.customer)))
            .unwrap_or(log.started_at);
        let customer = self.customer_profile(log.customer);
        let opened = ArchiveEvent::Opened(ConversationOpened {
            id: log.wire_id().to_string(),
            kind: ConversationKind::Service,
            category: Some(log.category.0.to_string()),
            customer_name: log.customer_name.clone(),
            agent_id: log.agent.0.clone(),
            agent_name: log.agent_name.clone(),
            queued_at: queued_at.min(log.started_at),
            paired_at: log.started_at,
            customer,
        });
        Some(opened)
    }

    /// Another node archives `chat` from now on: this one writes nothing more of it, and
    /// gives back the room it held for the closing.
    pub(in crate::hub::service) fn stop_archiving(&mut self, chat: ChatId) {
        let Some(log) = self.chats.get_mut(&chat) else { return };
        log.archived_here = false;
        if std::mem::take(&mut log.closing_reserved) {
            self.archive.release_closing();
        }
    }

    /// Closes this node's log of a chat that goes on elsewhere.
    pub(in crate::hub::service) fn drop_chat_log(&mut self, chat: ChatId) {
        self.stop_archiving(chat);
        if let Some(log) = self.remove_chat(chat) {
            self.chat_by_wire.remove(log.wire_id());
            self.cluster_mut().chat_closed(chat);
        }
    }

    /// A customer this node archived for (inherited, not connected here) resumed on another
    /// node: that node archives now; this one keeps the log only while it holds the agent.
    pub(in crate::hub::service) fn hand_on_archiving(&mut self, customer: CustomerId) {
        if self.customers.contains_key(&customer) {
            return;
        }
        let Some(chat) = self.routing.customer_chat(customer) else {
            return;
        };
        let Some(log) = self.chats.get(&chat) else { return };
        if !log.archived_here {
            return;
        }
        if self.agents.contains_key(&log.agent) {
            self.stop_archiving(chat);
        } else {
            self.drop_chat_log(chat);
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
        let (customer_name, _) = cluster.remote_customer(customer);
        let agent_name = cluster.agent_name(&agent).unwrap_or_default();
        self.keep_log_of_remote_chat(chat, category, (customer, customer_name), (agent, agent_name));
        true
    }
}
