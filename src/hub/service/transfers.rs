//! Transfers at the edge (the rules are `core::routing::transfers`): an agent's `transfer`
//! and `transfer_targets` frames, and carrying out a transfer the routing decided — the
//! customer told who they are with now, the old agent's chat ended (`transferred`), the new
//! agent given the chat with its transcript and the note, the archive's record of it.
//!
//! A chat handed to a category's line keeps its log on the node that archives it while
//! the customer waits (`continuing`), and goes on with it when they are paired again (the
//! same chat id and seq). Every node keeps the note until that pairing (`transfer_notes`):
//! the new agent may be on any of them.

use super::{ChatLog, HubState};
use crate::clock::now_ms;
use crate::core::conversation::line_authors::{HandOn, LineAuthors};
use crate::core::routing::{AgentId, CategoryId, ChatId, CustomerId};
use crate::hub::delivery::Recipient;
use crate::protocol::{
    ChatMessage, EarlierAgent, From, NamedLine, ServerFrame, TransferAgent, TransferCategory, TransferNote,
};
use crate::store::{ArchiveEvent, ConversationClosed, ConversationTransferred, EndReason, Side};

/// `lines` as the agent a chat was handed to reads them (`handed`: how it reached them, its
/// `earlier_agents` saying whose turn ended where): each line of an agent who had it before
/// names them, the agent's own lines (past every earlier turn) name nobody. So a page
/// names the lines the hub sends it, after a reload or a reconnect, without working out
/// where its own begin.
pub(super) fn named_for_agent(lines: Vec<ChatMessage>, handed: Option<&TransferNote>) -> Vec<NamedLine> {
    let turns = handed.into_iter().flat_map(|t| &t.earlier_agents).map(|e| HandOn {
        after_seq: e.through_seq,
        from_name: e.name.clone(),
    });
    let authors = LineAuthors::new(turns, "");
    lines
        .into_iter()
        .map(|line| NamedLine {
            agent_name: (line.from == From::Agent)
                .then(|| authors.earlier(line.seq))
                .flatten()
                .map(str::to_string),
            line,
        })
        .collect()
}

/// Longest transfer note, in characters (after trimming).
pub(super) const NOTE_MAX_CHARS: usize = 1_000;

/// A transfer the node carries out: who handed the chat on and their note; for a chat
/// handed to a category, kept until it is paired again.
#[derive(Debug, Clone)]
pub(super) struct PendingTransfer {
    pub(super) customer: CustomerId,
    pub(super) from: AgentId,
    pub(super) from_name: String,
    pub(super) note: String,
    /// The category's line it waits in (a transfer to a category); `None`: its agent went
    /// offline, and the customer waits in the line of the category it was in.
    pub(super) category: Option<CategoryId>,
    /// When the transfer applied (the record's `at`).
    pub(super) at: i64,
}

impl PendingTransfer {
    /// What the agent it goes to is told of it.
    pub(super) fn note_for_agent(&self) -> TransferNote {
        TransferNote {
            from_name: self.from_name.clone(),
            note: self.note.clone(),
            category: self.category.as_ref().map(|c| c.0.to_string()),
            // Filled from the chat's log where it is given (`give_to_new_agent`).
            earlier_agents: Vec::new(),
        }
    }
}

impl HubState {
    /// An agent's `transfer`: checked here (the note), decided by the routing.
    /// `category`, with `to_agent` only: the category the chat moves into.
    pub(super) fn transfer_frame(
        &mut self,
        id: AgentId,
        chat: ChatId,
        to_agent: Option<String>,
        to_category: Option<String>,
        category: Option<String>,
        note: Option<String>,
    ) -> Result<(), (&'static str, String)> {
        let note = valid_note(note)?;
        if !self.archive.has_room_for_message() {
            return Err((
                "archive_unavailable",
                "the archive is behind; try again shortly".to_string(),
            ));
        }
        let target = match (to_agent, to_category, category) {
            (Some(agent), None, category) => Ok((AgentId(agent), category.map(CategoryId::from))),
            (None, Some(category), None) => Err(CategoryId::from(category)),
            (None, Some(_), Some(_)) => {
                return Err((
                    "invalid_transfer",
                    "category goes with to_agent (the category the chat moves into)".to_string(),
                ));
            }
            _ => {
                return Err((
                    "invalid_transfer",
                    "name exactly one of to_agent and to_category".to_string(),
                ));
            }
        };
        if self.cluster.is_some() {
            let conn = self.agents.get(&id).and_then(|a| a.conn);
            let op = match target {
                Ok((to, category)) => crate::cluster::replica::RoutingOp::TransferToAgent {
                    chat,
                    by: id,
                    to,
                    category,
                    note,
                },
                Err(category) => crate::cluster::replica::RoutingOp::TransferToCategory {
                    chat,
                    by: id,
                    category,
                    note,
                },
            };
            self.route(op, conn);
            return Ok(());
        }
        let mut out = vec![];
        match &target {
            Ok((to, category)) => self
                .routing
                .transfer_to_agent(chat, &id, to, category.as_ref(), &mut out),
            Err(category) => self.routing.transfer_to_category(chat, &id, category, &mut out),
        }
        .map_err(|e| (e.code(), e.to_string()))?;
        self.note_transfer(chat, note, now_ms());
        self.apply(out);
        Ok(())
    }

    /// The note of a transfer about to be carried out (its decisions do not carry it), and
    /// when it was applied.
    pub(super) fn note_transfer(&mut self, chat: ChatId, note: String, at: i64) {
        self.transfer_note_now = Some((chat, note, at));
    }

    /// Who and where the agent's `chat` could be handed to now: every connected colleague
    /// (whatever categories they hold), and every category.
    pub(super) fn transfer_targets(&self, by: &AgentId, chat: ChatId) -> ServerFrame {
        let agents = self
            .routing
            .agents()
            .filter(|(agent, view)| *agent != by && view.connected)
            .map(|(agent, view)| {
                let load = view.chats.len() + view.offers.len();
                TransferAgent {
                    id: agent.0.clone(),
                    name: self.agent_display_name(agent),
                    categories: view.categories.iter().map(|c| c.0.to_string()).collect(),
                    can_take: view.available && load < usize::from(view.limit),
                    status: if view.busy {
                        "busy"
                    } else if view.available {
                        "available"
                    } else {
                        "away"
                    },
                    chats: view.chats.len(),
                    max_chats: view.limit,
                }
            })
            .collect();
        let categories = self
            .category_names
            .iter()
            .map(|(id, name)| {
                let category = CategoryId::from(id.as_str());
                let (open, agents_online) = self.desk_of(&category);
                TransferCategory {
                    id: id.clone(),
                    name: name.clone(),
                    open,
                    waiting: self.routing.waiting(&category),
                    agents_online,
                }
            })
            .collect();
        ServerFrame::TransferTargets {
            chat_id: self.wire(chat),
            agents,
            categories,
        }
    }

    /// An agent's name as people see it (their id when this node does not know it).
    pub(super) fn agent_display_name(&self, agent: &AgentId) -> String {
        self.agents
            .get(agent)
            .map(|a| a.account.display_name.clone())
            .or_else(|| self.cluster.as_ref().and_then(|c| c.agent_name(agent)))
            .unwrap_or_else(|| agent.0.clone())
    }

    /// The note of the transfer of `chat` being carried out, and when it applied.
    fn take_note(&mut self, chat: ChatId) -> (String, i64) {
        match self.transfer_note_now.take() {
            Some((noted, note, at)) if noted == chat => (note, at),
            _ => (String::new(), now_ms()),
        }
    }

    /// When `chat` was paired (again): the stream's time on several nodes, so that every
    /// node that records its taking from a line records the same `at`.
    fn paired_time(&self, chat: ChatId) -> i64 {
        self.cluster
            .as_ref()
            .and_then(|c| c.paired_at(chat))
            .unwrap_or_else(now_ms)
    }

    /// `chat` goes on with the agent `to` (the routing moved it), in `category` when it
    /// moved into one.
    pub(super) fn chat_transferred(
        &mut self,
        chat: ChatId,
        customer: CustomerId,
        from: AgentId,
        to: AgentId,
        category: Option<CategoryId>,
    ) {
        let (note, at) = self.take_note(chat);
        let from_name = self.agent_display_name(&from);
        let to_name = self.agent_display_name(&to);
        let held_here = self.chats.contains_key(&chat);
        if !held_here {
            // This node kept no log of the chat: in a cluster, the new agent may be ours.
            if self.cluster.is_some() && self.agents.contains_key(&to) {
                self.adopt_chat(chat);
            }
        }
        // Adopted here: where the earlier agent's lines end is the log as its read finds it,
        // a read under way or, when it could not be queued, one queued again before this
        // agent's first line (`cluster_relay`).
        let read_on_adopting = !held_here;
        let Some(log) = self.chats.get_mut(&chat) else { return };
        let after_seq = log.live.last_seq();
        log.earlier_through_the_read = read_on_adopting;
        log.agent = to.clone();
        log.agent_name.clone_from(&to_name);
        // Handed on, it is told as a transfer (its note), not as the continue its first
        // agent was told of: no reopen or wait of theirs in the new agent's snapshots.
        log.continued = super::ContinuedTold::default();
        log.earlier_agents.push(EarlierAgent {
            name: from_name.clone(),
            through_seq: after_seq,
        });
        if let Some(category) = &category {
            log.category = category.clone();
        }
        let wire_id = log.wire_id().to_string();
        if log.archived_here {
            let in_category = log.category.0.to_string();
            let transfer = ConversationTransferred {
                id: wire_id.clone(),
                at,
                after_seq,
                from_agent_id: from.0.clone(),
                from_agent_name: from_name.clone(),
                to_agent_id: Some(to.0.clone()),
                to_agent_name: Some(to_name.clone()),
                // The category it goes on in, when the transferring agent moved it.
                to_category: category.map(|c| c.0.to_string()),
                note: note.clone(),
            };
            self.record_transfer(transfer, &in_category, None);
            self.conversation_assigned(&wire_id, &to);
        }
        self.send(
            Recipient::Customer(customer),
            &ServerFrame::Transferred {
                chat_id: wire_id.clone(),
                peer_name: Some(to_name),
                category: None,
                category_name: None,
            },
        );
        self.tell_old_agent(&from, &wire_id);
        let transfer = TransferNote {
            from_name,
            note,
            category: None,
            earlier_agents: Vec::new(),
        };
        self.give_to_new_agent(chat, &to, transfer);
        // Handed on while its customer is away: the new agent is told so, as the first
        // was (else their console shows them connected until they come back or go).
        if !self.customer_connected(customer) {
            self.tell_peer(Recipient::Agent(to), chat, true);
        }
        self.keep_log_only_if_held(chat);
    }

    /// `chat` was handed to `category`'s line: its customer waits there (a `Queued`
    /// follows); the log waits with them where it is archived.
    pub(super) fn chat_to_category(&mut self, chat: ChatId, customer: CustomerId, from: AgentId, category: CategoryId) {
        let (
            PendingTransfer {
                from_name, note, at, ..
            },
            log,
        ) = self.hand_on(chat, customer, &from, Some(category.clone()));
        let Some(mut log) = log else {
            return;
        };
        // The chat is in that category's line now (and taken there, in that category).
        log.category = category.clone();
        log.earlier_agents.push(EarlierAgent {
            name: from_name.clone(),
            through_seq: log.live.last_seq(),
        });
        let wire_id = log.wire_id().to_string();
        if log.archived_here {
            let transfer = ConversationTransferred {
                id: wire_id.clone(),
                at,
                after_seq: log.live.last_seq(),
                from_agent_id: from.0.clone(),
                from_agent_name: from_name,
                to_agent_id: None,
                to_agent_name: None,
                to_category: Some(category.0.to_string()),
                note,
            };
            self.record_transfer(transfer, &category.0, None);
        }
        self.send(
            Recipient::Customer(customer),
            &self.transferred_to_line(wire_id.clone(), &category),
        );
        self.tell_old_agent(&from, &wire_id);
        self.keep_waiting_log(chat, customer, log);
    }

    /// `chat`'s agent went offline (past their grace period, disabled, logged out): both
    /// are told `agent_gone`, and its customer waits at the front of its category's line
    /// (a `Queued` follows) to go on in it with the next agent, as after a transfer to a
    /// category: every node keeps the hand-over note, the node that archives it its log.
    /// Its record stays open: the conversation goes on.
    pub(super) fn chat_withdrawn(&mut self, chat: ChatId, customer: CustomerId, from: AgentId) {
        let Some(mut log) = self.hand_on(chat, customer, &from, None).1 else {
            return;
        };
        log.earlier_agents.push(EarlierAgent {
            name: log.agent_name.clone(),
            through_seq: log.live.last_seq(),
        });
        let wire_id = log.wire_id().to_string();
        let frame = ServerFrame::ChatEnded {
            chat_id: wire_id.clone(),
            ended_by: From::System,
            reason: "agent_gone",
            rating: None,
        };
        self.send(Recipient::Customer(customer), &frame);
        self.chat_ended_to_agent(&from, &wire_id, From::System, "agent_gone");
        self.keep_waiting_log(chat, customer, log);
    }

    /// `chat` handed on by `from`, its customer to wait in `category`'s line (a transfer to
    /// a category, with the note being carried out) or, `None`, in the line of the category
    /// it was in (its agent went offline): the transfer kept on every node until the chat is
    /// paired again, the chat taken off the running ones. The transfer, and the chat's log
    /// where this node ran it.
    fn hand_on(
        &mut self,
        chat: ChatId,
        customer: CustomerId,
        from: &AgentId,
        category: Option<CategoryId>,
    ) -> (PendingTransfer, Option<ChatLog>) {
        let from_name = self.agent_display_name(from);
        let (note, at) = match category {
            Some(_) => self.take_note(chat),
            None => (
                format!("{from_name} went offline; the customer waited for the next agent."),
                now_ms(),
            ),
        };
        let pending = PendingTransfer {
            customer,
            from: from.clone(),
            from_name,
            note,
            category,
            at,
        };
        self.transfer_notes.insert(chat, pending.clone());
        let log = self.remove_chat(chat);
        if log.is_some()
            && let Some(cluster) = &mut self.cluster
        {
            cluster.chat_closed(chat);
        }
        (pending, log)
    }

    /// Archives transfer `t` (of a chat this node archives; in `category` now) and emits
    /// its webhook events: an agent handed it on (`taken_from_line` `None`), or an agent
    /// took it from the line it was handed to at that instant.
    pub(super) fn record_transfer(&self, t: ConversationTransferred, category: &str, taken_from_line: Option<i64>) {
        let hooks = self.archive.webhooks().cloned();
        if self
            .archive
            .push_message(ArchiveEvent::Transferred(t.clone()))
            .is_none()
        {
            return;
        }
        match (hooks, taken_from_line) {
            (Some(hooks), None) => hooks.handed_on(&t, category),
            (Some(hooks), Some(handed_at)) => hooks.taken_from_line(&t, category, handed_at),
            (None, _) => {}
        }
    }

    /// The log of `chat`, whose customer now waits in a line to go on in it: kept where it
    /// is archived or its customer is held, else let go.
    fn keep_waiting_log(&mut self, chat: ChatId, customer: CustomerId, log: ChatLog) {
        if log.archived_here || self.customers.contains_key(&customer) {
            // Its id still names it, so that the old agent is told it is not theirs.
            self.continuing.insert(chat, log);
        } else {
            self.chat_by_wire.remove(log.wire_id());
            if log.closing_reserved {
                self.archive.release_closing();
            }
        }
    }

    /// A pairing that continues a chat handed to a category: the log it waited with, if
    /// this node kept it, back among the running chats (with the new agent); the transfer
    /// recorded. `None` when the pairing is not such a one, or this node kept no log.
    pub(super) fn resume_continuing(
        &mut self,
        chat: ChatId,
        agent: &AgentId,
        category: &CategoryId,
    ) -> Option<PendingTransfer> {
        let pending = self.transfer_notes.remove(&chat)?;
        let agent_name = self.agent_display_name(agent);
        let at = self.paired_time(chat);
        if let Some(mut log) = self.continuing.remove(&chat) {
            log.agent = agent.clone();
            log.category = category.clone();
            log.agent_name.clone_from(&agent_name);
            // Taken from the line, it is told as a hand-over (its note), not as the
            // continue its earlier agent was told of: as in `chat_transferred`.
            log.continued = super::ContinuedTold::default();
            if log.archived_here {
                let transfer = ConversationTransferred {
                    id: log.wire_id().to_string(),
                    at,
                    after_seq: log.live.last_seq(),
                    from_agent_id: pending.from.0.clone(),
                    from_agent_name: pending.from_name.clone(),
                    to_agent_id: Some(agent.0.clone()),
                    to_agent_name: Some(agent_name),
                    to_category: pending.category.as_ref().map(|c| c.0.to_string()),
                    note: pending.note.clone(),
                };
                self.record_transfer(transfer, &category.0, Some(pending.at));
                self.conversation_assigned(log.wire_id(), agent);
            }
            self.chat_by_wire.insert(log.wire_id().to_string(), chat);
            let last = log.live.last_seq();
            self.insert_chat(chat, log);
            if self.cluster.is_some() {
                // Lines published before the transfer may have come after it.
                self.fill(chat, last);
            }
        }
        Some(pending)
    }

    /// What a customer back while they wait in a line after a transfer (`resumed` says
    /// only their place) is told of the chat they go on in: that it was handed on, and
    /// the lines said after `last_seq` (the agent's last words included).
    pub(super) fn continuing_frames(&self, customer: CustomerId, last_seq: u64) -> Vec<ServerFrame> {
        // Handed to a category (not withdrawn from an agent gone: that they were told).
        let pending = self
            .transfer_notes
            .iter()
            .find(|(_, pending)| pending.customer == customer);
        let handed = pending.is_some_and(|(_, pending)| pending.category.is_some());
        let Some(log) = self.continuing.values().find(|log| log.customer == customer) else {
            // Back on a node that kept no log of it (they came from another): told of the
            // transfer; the chat's lines come from its log when they are paired again.
            return pending
                .filter(|_| handed)
                .zip(self.cluster.as_ref())
                .map(|((chat, pending), cluster)| {
                    let category = pending
                        .category
                        .clone()
                        .unwrap_or_else(|| CategoryId::from(String::new()));
                    vec![self.transferred_to_line(cluster.wire_id(*chat), &category)]
                })
                .unwrap_or_default();
        };
        let mut frames = vec![];
        if handed {
            frames.push(self.transferred_to_line(log.wire_id().to_string(), &log.category));
        }
        frames.extend(log.live.after(last_seq).into_iter().map(ServerFrame::Message));
        frames
    }

    /// The chat as the agent it was handed to gets it: `chat_started` with the transcript
    /// this node has and who handed it on. The hand-over is kept with the chat on every
    /// node that keeps its log, not only the new agent's: their page may come back on any
    /// of them (its welcome's snapshot shows the note and names the earlier agents' lines),
    /// and a note of an earlier hand-over kept there must not stand for this one.
    pub(super) fn give_to_new_agent(&mut self, chat: ChatId, to: &AgentId, mut transfer: TransferNote) {
        let Some(log) = self.chats.get_mut(&chat) else { return };
        transfer.earlier_agents.clone_from(&log.earlier_agents);
        log.handed_over = Some(transfer.clone());
        let customer = log.customer;
        if !self.agents.contains_key(to) {
            return;
        }
        // Taken from the line by accepting an offer: the page matches the chat to its card.
        let offer_id = self.take_offer_told(customer);
        let log = &self.chats[&chat];
        let messages = named_for_agent(log.live.after(0), Some(&transfer));
        let frame = ServerFrame::ChatStarted {
            chat_id: log.wire_id().to_string(),
            category: log.category.0.to_string(),
            category_name: self.category_name(&log.category),
            peer_name: log.customer_name.clone(),
            started_at: log.started_at,
            video_request: false,
            offer_id,
            transfer: Some(transfer),
            messages: Some(messages),
            continued: false,
            reopened: false,
            queued_at: None,
        };
        self.send(Recipient::Agent(to.clone()), &frame);
        self.send_notes(to, chat);
    }

    fn tell_old_agent(&mut self, from: &AgentId, wire_id: &str) {
        let frame = ServerFrame::ChatEnded {
            chat_id: wire_id.to_string(),
            ended_by: From::Agent,
            reason: "transferred",
            rating: None,
        };
        self.send(Recipient::Agent(from.clone()), &frame);
    }

    /// In a cluster a node keeps a chat's log only while it holds one of its sides or
    /// archives it.
    fn keep_log_only_if_held(&mut self, chat: ChatId) {
        if self.cluster.is_none() {
            return;
        }
        let Some(log) = self.chats.get(&chat) else { return };
        if !log.archived_here && !self.customers.contains_key(&log.customer) && !self.agents.contains_key(&log.agent) {
            self.drop_chat_log(chat);
        }
    }

    /// A customer who waited in a line with a chat handed there left it (or was removed):
    /// that chat is over; the node that archives it closes it.
    pub(super) fn end_continuing(&mut self, customer: CustomerId, side: Side, reason: EndReason) {
        self.transfer_notes.retain(|_, pending| pending.customer != customer);
        let Some(chat) = self.continuing_chat_of(customer) else {
            return;
        };
        let log: ChatLog = self.continuing.remove(&chat).expect("found above");
        self.chat_by_wire.remove(log.wire_id());
        if !log.archived_here {
            if log.closing_reserved {
                self.archive.release_closing();
            }
            return;
        }
        let closed = ConversationClosed {
            id: log.wire_id().to_string(),
            ended_at: now_ms(),
            ended_by: side,
            reason,
            inferred: None,
        };
        if self.cluster.is_some() {
            self.close_after_last_read(chat, log.live.last_seq(), closed);
        } else {
            self.archive.push_closing(ArchiveEvent::Closed(closed));
        }
    }

    /// A waiting customer handed to this node by a `node_lost` (their node is gone) whose
    /// wait continues a chat handed to a category: this node archives that chat from now
    /// on — its opening and the transfer record again (kept once: the same id and `at`),
    /// its lines when they are paired again or its closing when they leave — so that it
    /// is never left open in the archive, nor its transfer unrecorded.
    pub(super) fn inherit_continuing(&mut self, customer: CustomerId) {
        let Some(chat) = self.routing.customer_continuing(customer) else {
            return;
        };
        if self.continuing.contains_key(&chat) {
            return;
        }
        let Some(pending) = self.transfer_notes.get(&chat).cloned() else {
            return;
        };
        let Some(category) = self.routing.customer_category(customer).cloned() else {
            return;
        };
        let Some(cluster) = self.cluster.as_ref() else { return };
        let wire_id = cluster.wire_id(chat);
        let (customer_name, _) = cluster.remote_customer(customer);
        let queued_at = cluster.remote_queued_at(customer).unwrap_or(pending.at);
        let reserved = self.archive.push_handover_opening(
            ArchiveEvent::Opened(crate::store::ConversationOpened {
                id: wire_id.clone(),
                kind: crate::store::ConversationKind::Service,
                category: Some(category.0.to_string()),
                customer_name: customer_name.clone(),
                agent_id: pending.from.0.clone(),
                agent_name: pending.from_name.clone(),
                queued_at: queued_at.min(pending.at),
                paired_at: pending.at,
                customer: cluster.remote_profile(customer),
            }),
            false,
        );
        // A chat withdrawn from an agent gone was recorded as theirs: only a hand-over to
        // a line is a transfer until it is paired again.
        if let Some(to) = &pending.category {
            let transfer = ConversationTransferred {
                id: wire_id.clone(),
                at: pending.at,
                after_seq: 0,
                from_agent_id: pending.from.0.clone(),
                from_agent_name: pending.from_name.clone(),
                to_agent_id: None,
                to_agent_name: None,
                to_category: Some(to.0.to_string()),
                note: pending.note.clone(),
            };
            // Its event made again here is the one its dead node made (the same id).
            self.record_transfer(transfer, &to.0, None);
        }
        self.chat_by_wire.insert(wire_id.clone(), chat);
        let live = self.new_line(chat, &wire_id);
        self.continuing.insert(
            chat,
            ChatLog {
                category,
                customer,
                agent: pending.from.clone(),
                customer_name,
                agent_name: pending.from_name,
                started_at: pending.at,
                live,
                archived_here: true,
                closing_reserved: reserved,
                earlier_agents: Vec::new(),
                rated_before: false,
                created_by_it: false,
                handed_over: None,
                earlier_through_the_read: false,
                // Handed on, it is told as a transfer (`chat_started` says no more).
                continued: super::ContinuedTold::default(),
            },
        );
    }

    /// Keeps, after the replica was reloaded, only the notes and logs of chats whose
    /// customer still waits to go on in them.
    pub(super) fn forget_transfers_not_in_routing(&mut self) {
        let routing = &self.routing;
        self.transfer_notes
            .retain(|chat, pending| routing.customer_continuing(pending.customer) == Some(*chat));
        let gone: Vec<CustomerId> = self
            .continuing
            .iter()
            .filter(|(chat, log)| self.routing.customer_continuing(log.customer) != Some(**chat))
            .map(|(_, log)| log.customer)
            .collect();
        for customer in gone {
            self.let_go_of_continuing(customer);
        }
    }

    /// A customer waiting after a transfer went to another node: the log of the chat they
    /// wait to go on in goes (the other node archives it; their pairing there reads it).
    pub(super) fn let_go_of_continuing(&mut self, customer: CustomerId) {
        let Some(chat) = self.continuing_chat_of(customer) else {
            return;
        };
        let log = self.continuing.remove(&chat).expect("found above");
        self.chat_by_wire.remove(log.wire_id());
        if log.closing_reserved {
            self.archive.release_closing();
        }
    }

    /// The chat whose log this node keeps while `customer` waits in a line after a transfer.
    fn continuing_chat_of(&self, customer: CustomerId) -> Option<ChatId> {
        self.continuing
            .iter()
            .find(|(_, log)| log.customer == customer)
            .map(|(chat, _)| *chat)
    }

    /// The hub stops: the chats waiting in a line after a transfer are closed as shut down.
    pub(super) fn end_all_continuing(&mut self) {
        let customers: Vec<CustomerId> = self.continuing.values().map(|log| log.customer).collect();
        for customer in customers {
            self.end_continuing(customer, Side::System, EndReason::Shutdown);
        }
    }
}

/// A transfer note, trimmed (blank: ""), refused when over [`NOTE_MAX_CHARS`] or holding
/// control characters other than line breaks.
fn valid_note(note: Option<String>) -> Result<String, (&'static str, String)> {
    let note = note.map(|n| n.trim().to_string()).unwrap_or_default();
    if crate::core::names::has_forbidden_text_char(&note) {
        return Err((
            "invalid_note",
            "a note may hold line breaks but no other control or text-direction character".to_string(),
        ));
    }
    if note.chars().count() > NOTE_MAX_CHARS {
        return Err((
            "note_too_long",
            format!("a transfer note has at most {NOTE_MAX_CHARS} characters"),
        ));
    }
    Ok(note)
}
