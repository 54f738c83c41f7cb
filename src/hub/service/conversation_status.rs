//! Conversations' statuses as the desk changes them: a paired chat opens its conversation
//! in its agent's list, a transfer moves it, a chat ended on purpose resolves it (one its
//! customer merely left stays open), and an agent sets `open`, `pending`, `snoozed` or
//! `resolved` with `set_conversation_status`. The changes go to the store through the
//! ordered writer (`conversations::writer`); what took effect comes back here and goes to
//! the agent whose list the conversation is in.
//!
//! The node that archives a chat (its customer's) records its changes; on several nodes two
//! may both record one (a chat archived from two nodes), which the writer applies once.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::HubState;
use crate::archive::Archive;
use crate::clock::now_ms;
use crate::cluster::bus::AdminChange;
use crate::conversations::writer::{Asker, Automatic, Notify, Origin, Work, Writer};
use crate::conversations::{ConversationError, Conversations, OpeningKnown};
use crate::core::conversation::{Change, Refusal, Rules, Status};
use crate::core::routing::{AgentId, CategoryId, ChatId, CustomerId};
use crate::hub::delivery::{ConnId, Recipient};
use crate::hub::{Command, tell};
use crate::protocol::ServerFrame;
use crate::store::{Account, ConversationRecord, ConversationStatus, CustomerProfile, Role};

/// A status change an agent asked for, as the frame names it.
pub(in crate::hub) struct StatusAsked {
    pub conversation_id: String,
    pub status: String,
    pub until: Option<i64>,
    pub client_id: Option<String>,
}

/// Starts the writer of this hub's conversation changes. What took effect on its own comes
/// back as `Command::ConversationChanged` (an asker hears through their answer); on several
/// nodes every change also goes out on the admin bus, for a holder connected elsewhere.
pub(in crate::hub) fn writer(
    archive: &Archive,
    settings: &crate::config::Settings,
    hub: mpsc::WeakSender<Command>,
    cluster: Option<crate::cluster::node::Cluster>,
) -> Writer {
    let conversations =
        Conversations::new(archive.store(), rules(settings)).answering_within(settings.archive.write_timeout);
    let webhooks = archive.clone();
    let notify: Notify = Arc::new(move |record, origin, change| {
        let woken = snooze_ran_out(&record, origin, change.as_ref());
        // The asker hears once the change's webhook event is on local disk (at once for none).
        let durable: crate::conversations::writer::Durable = match (change, webhooks.webhooks()) {
            (Some(change), Some(hooks)) => {
                let ticket = hooks.emit(crate::webhooks::event::Event::status_changed(
                    &record,
                    change.from,
                    record.status_since,
                ));
                let hooks = hooks.clone();
                Box::pin(async move { hooks.journaled_through(ticket).await })
            }
            _ => Box::pin(std::future::ready(())),
        };
        if let Some(cluster) = &cluster {
            let (cluster, record) = (cluster.clone(), record.clone());
            tokio::spawn(async move {
                let id = record.id.clone();
                if let Err(e) = cluster.publish(AdminChange::Conversation { record, woken }).await {
                    tracing::warn!(conversation = %id, error = %e, "other nodes were not told of a conversation's status");
                }
            });
        }
        // A full hub queue drops the news, not the change: the record is stored.
        if origin == Origin::Automatic
            && let Some(tx) = hub.upgrade()
        {
            let _ = tx.try_send(Command::ConversationChanged { record, woken });
        }
        durable
    });
    Writer::start(conversations, notify)
}

/// Did this change open `record` because its snooze ran out? The writer on its own took it
/// from snoozed to open, and marked it "Snooze ended" (a customer's line into a snoozed
/// conversation opens it too, without the mark).
fn snooze_ran_out(record: &ConversationRecord, origin: Origin, change: Option<&Change>) -> bool {
    origin == Origin::Automatic
        && change.is_some_and(|c| matches!(c.from, Status::Snoozed { .. }) && c.to == Status::Open)
        && record.snooze_ended_at.is_some()
}

/// The conversation rules the desk's settings make.
pub(super) fn rules(settings: &crate::config::Settings) -> Rules {
    Rules {
        sticky_ms: i64::try_from(settings.conversation_sticky.as_millis()).unwrap_or(i64::MAX),
        ..Rules::default()
    }
}

impl HubState {
    /// A chat this node archives was paired: its conversation is in `agent`'s list.
    pub(super) fn conversation_opened(
        &self,
        id: &str,
        category: &CategoryId,
        profile: &CustomerProfile,
        agent: &AgentId,
    ) {
        // Only the browser's own key and a verified identity find a customer's
        // conversations: an email anyone can type.
        let customer_keys = profile.record_keys();
        self.conversation_writer.push(Work::Automatic(Automatic::Opened {
            id: id.to_string(),
            category: category.0.to_string(),
            customer_keys,
            agent: agent.clone(),
            at: now_ms(),
        }));
    }

    /// A customer continuing conversation `id` was paired with `agent`: open again, theirs.
    pub(super) fn conversation_continued(&self, id: &str, agent: &AgentId) {
        self.conversation_writer.push(Work::Automatic(Automatic::Continued {
            id: id.to_string(),
            agent: agent.clone(),
            at: now_ms(),
        }));
    }

    /// A customer's line went into running chat `chat` at `at`: a parked conversation opens
    /// again (its holder hears so when the writer has stored it). Nothing to do, and
    /// nothing allocated, unless it was parked.
    pub(super) fn customer_line_in(&self, chat: ChatId, at: i64) {
        let Some(log) = self.chats.get(&chat) else {
            return;
        };
        if log.live.customer_wrote(at) {
            self.conversation_writer.push(Work::Automatic(Automatic::CustomerWrote {
                id: log.wire_id().to_string(),
                at,
            }));
        }
    }

    /// A customer waiting in line to continue conversation `id` wrote into it at `at`: it
    /// is open again if it was parked (a reopen when it was resolved), before any agent
    /// takes it.
    pub(super) fn customer_wrote_while_waiting(&self, id: &str, at: i64) {
        self.conversation_writer
            .push(Work::Automatic(Automatic::CustomerWrote { id: id.to_string(), at }));
    }

    /// This node made a log of a running chat (conversation `id`) anew: its sides came
    /// here from other nodes, or it reaps one. The conversation's record is read once, so a
    /// customer's line into a chat parked before still opens it; a line recorded here before
    /// the answer opens it when the answer comes (`status_told`). News heard meanwhile is
    /// newer and wins (`status_told` keeps the newest version).
    pub(super) fn read_status_of(&self, id: String) {
        let (store, hub) = (self.archive.store(), self.timers.clone());
        tokio::spawn(async move {
            let record = store
                .conversation_record(&id)
                .await
                .inspect_err(|e| tracing::debug!(conversation = %id, error = %e, "a moved chat's status was not read"))
                .ok();
            tell(&hub, Command::ConversationStatusRead { record }).await;
        });
    }

    /// The answer of [`Self::read_status_of`]: the chat learns its status, and a customer's
    /// line recorded before it opens the conversation if it was parked before that line.
    pub(super) fn conversation_status_read(&mut self, record: Option<ConversationRecord>) {
        if let Some(record) = record {
            self.status_told(&record);
        }
    }

    /// What this node's running chat of `record`, if any, knows of its status. Heard after
    /// a customer's line recorded here that came after the park (the read of a log made
    /// anew, or another node's change on the bus, behind the line), that line opens it
    /// again; the writer opens it once, whichever nodes hand it the line.
    fn status_told(&self, record: &ConversationRecord) {
        let Some(log) = self.chat_by_wire.get(&record.id).and_then(|chat| self.chats.get(chat)) else {
            return;
        };
        let parked = record.status != ConversationStatus::Open;
        if let Some(at) = log.live.status_told(record.version, parked, record.status_since) {
            self.conversation_writer.push(Work::Automatic(Automatic::CustomerWrote {
                id: record.id.clone(),
                at,
            }));
        }
    }

    /// A chat this node archives went to `agent`.
    pub(super) fn conversation_assigned(&self, id: &str, agent: &AgentId) {
        self.conversation_writer.push(Work::Automatic(Automatic::Assigned {
            id: id.to_string(),
            agent: agent.clone(),
            at: now_ms(),
        }));
    }

    /// A chat this node archives was ended on purpose by its customer or its agent (a
    /// conversation not stored yet is stored as `opening` and this end make it).
    pub(super) fn conversation_resolved(&self, id: &str, opening: OpeningKnown) {
        self.conversation_resolved_at(id, opening, now_ms());
    }

    /// As [`HubState::conversation_resolved`], the chat ended at `at`: a status set since
    /// (the conversation continued meanwhile) stands.
    pub(super) fn conversation_resolved_at(&self, id: &str, opening: OpeningKnown, at: i64) {
        self.conversation_writer.push(Work::Automatic(Automatic::Resolved {
            id: id.to_string(),
            opening,
            at,
        }));
    }

    /// What this node knows of the opening of the chat `log` keeps, for a conversation
    /// its end stores first (`Conversations::resolve_ended`).
    pub(super) fn opening_known(&self, log: &super::ChatLog) -> OpeningKnown {
        OpeningKnown {
            category: log.category.0.to_string(),
            customer_keys: self.customer_profile(log.customer).record_keys(),
            agent: Some(log.agent.clone()),
            paired_at: log.started_at,
        }
    }

    /// What `customer` told of themselves, as this node knows it: theirs if connected
    /// here, else as the cluster replicated it (empty when unknown).
    pub(super) fn customer_profile(&self, customer: CustomerId) -> CustomerProfile {
        self.customers
            .get(&customer)
            .map(|info| info.profile.clone())
            .or_else(|| self.cluster.as_ref().map(|c| c.remote_profile(customer)))
            .unwrap_or_default()
    }

    /// An agent's `set_conversation_status`.
    pub(super) fn set_conversation_status(
        &mut self,
        conn: ConnId,
        agent: AgentId,
        asked: StatusAsked,
    ) -> Result<(), (&'static str, String)> {
        let now = now_ms();
        let to = wanted_status(&asked.status, asked.until)?;
        let admin = self.agents.get(&agent).is_some_and(|a| a.account.role == Role::Admin);
        if to == Status::Resolved
            && let Some(&chat) = self.chat_by_wire.get(&asked.conversation_id)
        {
            // Resolving a live chat is ending it: the customer is told and may rate it.
            if self.routing.chat_sides(chat).is_some_and(|(_, owner)| *owner == agent) {
                return self.agent_ends_chat(agent, chat);
            }
            // Only its agent ends a live chat; anyone else learns nothing of it here.
            if admin {
                return Err((
                    "conversation_live",
                    "its customer is chatting with its agent now: they end it".to_string(),
                ));
            }
        }
        let by = if admin {
            Asker::Admin
        } else {
            Asker::Agent(agent.clone())
        };
        let answer = self
            .write_status(asked.conversation_id, by, to, now)
            .ok_or_else(store_behind)?;
        let (timers, client_id) = (self.timers.clone(), asked.client_id);
        tokio::spawn(async move {
            let answer = answer.await.unwrap_or_else(|_| {
                Err(ConversationError::Store(crate::store::StoreError::Unavailable(
                    "the hub is shutting down".to_string(),
                )))
            });
            let command = Command::ConversationStatusAnswer {
                conn,
                asker: agent,
                client_id,
                answer,
            };
            tell(&timers, command).await;
        });
        Ok(())
    }

    /// A status change asked over HTTP (`PUT /api/conversations/{id}/status`) by `by`, an
    /// agent (their own conversations) or an admin (any): checked and written as the
    /// frame's, except that a live chat is not resolved here (its agent ends it from the
    /// console), so nobody's chat ends under them from the API.
    pub(super) fn set_conversation_status_asked(
        &mut self,
        by: &Account,
        id: String,
        status: &str,
        until: Option<i64>,
        reply: oneshot::Sender<Result<ConversationRecord, (&'static str, String)>>,
    ) {
        let to = match wanted_status(status, until) {
            Ok(to) => to,
            Err(refused) => {
                let _ = reply.send(Err(refused));
                return;
            }
        };
        // Said only to its agent or an admin: anyone else learns nothing of it (the writer
        // answers them as for a conversation not theirs).
        let may_know = |chat: &ChatId| {
            by.role == Role::Admin
                || self
                    .routing
                    .chat_sides(*chat)
                    .is_some_and(|(_, owner)| owner.0 == by.id)
        };
        if to == Status::Resolved
            && let Some(chat) = self.chat_by_wire.get(&id)
            && may_know(chat)
        {
            let _ = reply.send(Err((
                "conversation_live",
                "its customer is chatting with its agent now: the agent ends the chat".to_string(),
            )));
            return;
        }
        let by = match by.role {
            Role::Admin => Asker::Admin,
            Role::Agent => Asker::Agent(AgentId(by.id.clone())),
        };
        let Some(answer) = self.write_status(id, by, to, now_ms()) else {
            let _ = reply.send(Err(store_behind()));
            return;
        };
        let timers = self.timers.clone();
        tokio::spawn(async move {
            let answer = match answer.await {
                Ok(Ok(record)) => Ok(record),
                Ok(Err(e)) => Err(status_refused(e)),
                Err(_) => Err(store_behind()),
            };
            // Its holder's consoles here hear the new status as for an automatic change
            // (the writer tells the other nodes).
            if let Ok(record) = &answer {
                let record = record.clone();
                tell(&timers, Command::ConversationChanged { record, woken: false }).await;
            }
            let _ = reply.send(answer);
        });
    }

    /// Hands a status change to the conversations' writer (`by` checked there against the
    /// record): the record as written, or why not, comes on the receiver. `None`: the
    /// writer's queue is full (the store is behind).
    fn write_status(
        &self,
        id: String,
        by: Asker,
        to: Status,
        at: i64,
    ) -> Option<oneshot::Receiver<Result<ConversationRecord, ConversationError>>> {
        let (reply, answer) = oneshot::channel();
        self.conversation_writer
            .push(Work::SetStatus { id, by, to, at, reply })
            .then_some(answer)
    }

    /// The answer to an agent's `set_conversation_status`: the new status to the asker's
    /// connection and to every connection of the conversation's holder here.
    pub(super) fn conversation_status_answer(
        &mut self,
        conn: ConnId,
        asker: AgentId,
        client_id: Option<String>,
        answer: Result<ConversationRecord, ConversationError>,
    ) {
        match answer {
            Ok(record) => {
                self.status_told(&record);
                let frame = status_frame(&record, client_id);
                if record.holder.as_deref() != Some(asker.0.as_str()) {
                    self.send_to_conn(conn, &frame);
                }
                self.tell_holder(&record, &frame);
            }
            Err(e) => {
                let (code, message) = status_refused(e);
                self.error_to_conn(conn, code, message, client_id);
            }
        }
    }

    /// A change the writer made on its own (an opening, a transfer, an end, a snooze that
    /// ran out): the conversation's holder, where connected here, hears its status.
    pub(super) fn conversation_changed(&mut self, record: ConversationRecord, woken: bool) {
        self.status_told(&record);
        // Lines followed up on here check the holder this node read: a reassignment moves it.
        if let Some(entry) = self.follow_ups.get_mut(&record.id) {
            entry.holder = record.holder.clone().map(AgentId);
        }
        let frame = status_frame(&record, None);
        self.tell_holder(&record, &frame);
        if woken {
            self.tell_listers(&record);
        }
    }

    /// A snooze ran out: every agent connected here who may list the conversation (in their
    /// "all" or "unassigned" view: admins, and agents serving its category) but its holder
    /// (told by `conversation_status`) hears `snooze_ended`, so their inbox holds it anew.
    fn tell_listers(&mut self, record: &ConversationRecord) {
        let frame = ServerFrame::SnoozeEnded {
            conversation_id: record.id.clone(),
            holder: record.holder.clone(),
            category: record.category.clone(),
            since: record.status_since,
        };
        let listers: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(id, info)| {
                info.conn.is_some()
                    && record.holder.as_deref() != Some(id.0.as_str())
                    && (info.account.role == Role::Admin || info.account.categories.contains(&record.category))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for agent in listers {
            self.send(Recipient::Agent(agent), &frame);
        }
    }

    /// Whether a customer is live in conversation `id`: `None` when not; else the agent
    /// paired with them (`None` while they wait). A first chat here is found by its wire
    /// id; a continued one, and on several nodes any, by the routing's live conversations.
    pub(super) fn conversation_live(&self, id: &str) -> Option<Option<AgentId>> {
        if let Some(&chat) = self.chat_by_wire.get(id) {
            return Some(self.routing.chat_sides(chat).map(|(_, agent)| agent.clone()));
        }
        let customer = self
            .routing
            .conversation_customer(&crate::core::routing::ConversationId(id.to_string()))?;
        let chat = self.routing.customer_chat(customer);
        Some(
            chat.and_then(|chat| self.routing.chat_sides(chat))
                .map(|(_, agent)| agent.clone()),
        )
    }

    fn tell_holder(&mut self, record: &ConversationRecord, frame: &ServerFrame) {
        if let Some(holder) = &record.holder {
            let holder = AgentId(holder.clone());
            if self.agents.get(&holder).is_some_and(|a| a.conn.is_some()) {
                self.send(Recipient::Agent(holder), frame);
            }
        }
    }
}

/// The status a request names (`until`: a snooze's end, ms since the epoch), or why not.
fn wanted_status(status: &str, until: Option<i64>) -> Result<Status, (&'static str, String)> {
    match (status, until) {
        ("open", None) => Ok(Status::Open),
        ("pending", None) => Ok(Status::Pending),
        ("resolved", None) => Ok(Status::Resolved),
        ("snoozed", Some(until)) => Ok(Status::Snoozed { until }),
        ("snoozed", None) => Err(("bad_frame", "a snooze needs `until` (ms since the epoch)".to_string())),
        ("open" | "pending" | "resolved", Some(_)) => Err(("bad_frame", "only a snooze takes `until`".to_string())),
        (other, _) => Err((
            "invalid_status",
            format!("a conversation's status is open, pending, snoozed or resolved, not {other:?}"),
        )),
    }
}

/// Why a status change was not made, as its asker is told.
fn status_refused(e: ConversationError) -> (&'static str, String) {
    match e {
        // Another's conversation gets the answer of none at all: nothing of it is told.
        ConversationError::Refused(Refusal::NotYours) | ConversationError::NotFound => {
            ("unknown_conversation", "no such conversation in your list".to_string())
        }
        ConversationError::Refused(refusal) => (refusal.code(), refusal_message(refusal)),
        ConversationError::Store(_) => store_behind(),
    }
}

fn status_frame(record: &ConversationRecord, client_id: Option<String>) -> ServerFrame {
    ServerFrame::ConversationStatus {
        conversation_id: record.id.clone(),
        status: record.status,
        snoozed_until: record.snoozed_until,
        since: record.status_since,
        labels: record.labels.clone(),
        client_id,
    }
}

fn refusal_message(refusal: Refusal) -> String {
    match refusal {
        Refusal::SnoozeInPast => "a snooze ends after now".to_string(),
        Refusal::SnoozeTooFar => "a snooze ends within a year".to_string(),
        _ => "that change is not allowed".to_string(),
    }
}

fn store_behind() -> (&'static str, String) {
    (
        "store_unavailable",
        "the store is not answering; the status was not changed: try again shortly".to_string(),
    )
}
