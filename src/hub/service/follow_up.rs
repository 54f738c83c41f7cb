//! An agent writing into a conversation of theirs whose customer is not there (they left
//! and the grace period ran out, or they wait in line to continue it): nothing the agent
//! writes meanwhile is lost. Each line is stamped with the conversation's next `seq`,
//! archived and acknowledged like any message; the customer sees it when they continue the
//! conversation (its latest lines come with `chat_started`).
//!
//! The `seq` must follow the conversation's last line, which only the store knows once its
//! chat is over; so the first line of a run reads it (after this node's archive stored what
//! it was handed) while later ones wait in order, and the hub keeps the count from then on
//! ([`FollowUps`]). A customer continuing the conversation meanwhile takes the count and the
//! lines over when their chat opens (`open_chat`), so the live chat goes on after them; a
//! line whose read comes back after the chat opened goes into the live chat instead.
//!
//! Only the agent whose list the conversation is in may write (an admin too is refused:
//! they are not in the conversation).
//!
//! On several nodes the seq is drawn from the conversation's counter in Redis instead
//! (`cluster::conversation_seq`), which its live chats count on from too, so an agent
//! writing on one node and the customer continuing on another never share a seq; a line
//! written while a customer continues it (waiting, or in a chat another node holds) is
//! refused `conversation_live`: it belongs in that chat, which reaches the agent shortly.
//! The line takes its room in the archive before the seq is drawn: a seq drawn for a line
//! the archive then refused would be a gap.

use std::collections::{HashMap, VecDeque};

use uuid::Uuid;

use super::HubState;
use super::continuing::{Continued, EARLIER_LINES};
use crate::clock::now_ms;
use crate::cluster::bus::AdminChange;
use crate::core::routing::{AgentId, ChatId, Party};
use crate::hub::cluster::link::{RouterCall, UNAVAILABLE};
use crate::hub::delivery::{ConnId, Outbound, Recipient, SenderCopy};
use crate::hub::follow_up_line::{ELSEWHERE, FollowUpLine as Asked, Outcome, SeqRefused, Writer};
use crate::hub::transcript::{self, Author, Stamped};
use crate::hub::{Command, tell};
use crate::protocol::{ChatMessage, From};
use crate::store::{SharedStore, StoreError};

/// Conversations with lines followed up on at most, kept by the hub: beyond it, those with
/// nothing waiting are forgotten (the store has their lines; a next line reads it again).
const KEPT: usize = 10_000;

/// The lines written into one conversation while its customer is away.
#[derive(Default)]
pub(in crate::hub) struct FollowUps {
    /// The last seq used; `None` while the store is read.
    last_seq: Option<u64>,
    /// The agent whose list it is in, once read.
    pub(super) holder: Option<AgentId>,
    /// Lines waiting for the read, in the order written.
    waiting: Vec<Asked>,
    /// Lines stamped while away (a customer continuing it sees them even before the store does).
    lines: Vec<ChatMessage>,
}

/// What the store says of a conversation followed up on.
#[derive(Debug)]
pub(crate) struct Read {
    last_seq: u64,
    holder: Option<AgentId>,
}

/// The table the hub keeps: by conversation id.
pub(in crate::hub) type Table = HashMap<String, FollowUps>;

/// On several nodes, the lines stamped here that the archive may not hold yet, oldest
/// first: (conversation, seq, the archive's number of the line). A node claims them when
/// Redis lost its data, so that the conversation's counter goes on after them
/// ([`HubState::conversation_seqs_here`]); dropped once they are in the store (held in
/// this node's spool during an outage, they are not yet where the restore reads).
pub(in crate::hub) type Unstored = VecDeque<(String, u64, u64)>;

/// `text` cut to `max` characters, the cut marked.
fn clipped(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn not_yours() -> (&'static str, String) {
    ("unknown_chat", "no such conversation in your list".to_string())
}

impl HubState {
    /// An agent's `message` into conversation `id`, which has no live chat here.
    pub(super) fn follow_up(
        &mut self,
        conn: ConnId,
        agent: AgentId,
        id: String,
        (text, files): (String, Vec<crate::attachments::AttachmentMeta>),
        client_id: Option<String>,
    ) -> Result<(), (&'static str, String)> {
        // A chat handed to a category's line keeps its own count while it waits.
        if self.continuing.values().any(|log| log.wire_id() == id) {
            return Err(not_yours());
        }
        // With files, the text may be empty (as a mail's line).
        self.check_mail_line(&text, &files)?;
        let asked = Asked {
            conn,
            agent,
            text,
            files,
            client_id,
            mailed: false,
            writer: Writer::Agent,
            outcome: None,
            room: None,
        };
        self.follow_up_line(id, asked)
    }

    /// A customer's `message` while they wait in line to continue their conversation: a
    /// line of it like any other (the conversation's next `seq`, archived, acknowledged
    /// once durable), which its holder sees now and the agent who takes it finds in its
    /// lines at pairing. Files wait for the chat (they are checked against a chat's uploads).
    pub(super) fn customer_line_while_waiting(
        &mut self,
        conn: ConnId,
        customer: crate::core::routing::CustomerId,
        (text, files): (String, usize),
        client_id: Option<String>,
    ) -> Result<(), (&'static str, String)> {
        let Some(id) = self
            .customers
            .get(&customer)
            .and_then(|info| info.continues.as_ref())
            .map(|continued| continued.id.clone())
        else {
            return Err(super::customers::waiting_not_in_chat());
        };
        if files > 0 {
            return Err((
                "not_in_chat",
                "files can be sent once an agent has taken the conversation".to_string(),
            ));
        }
        self.check_message(&text)?;
        let asked = Asked {
            conn,
            agent: AgentId(String::new()),
            text,
            files: Vec::new(),
            client_id,
            mailed: true,
            writer: Writer::CustomerWaiting(customer),
            outcome: None,
            room: None,
        };
        self.follow_up_line(id, asked)
    }

    /// A mail the customer of conversation `id` sent back (`inbound`): their line in it,
    /// in its live chat when they are in one held here, else stamped like a line to an away
    /// customer, for whoever holds it, and the conversation open again. `outcome` hears
    /// whether it was (refused: the mail stays unflagged and is offered again).
    pub(super) fn line_by_mail(
        &mut self,
        id: String,
        (text, files): (String, Vec<crate::attachments::AttachmentMeta>),
        outcome: Outcome,
    ) {
        // The whole mail is in the mailbox; the conversation gets what a chat line may hold.
        let text = clipped(&text, self.settings.max_message_len);
        let result = match self.live_chat_of(&id) {
            Err(refusal) => Err(refusal),
            Ok(Some(chat)) => self
                .relay_by_mail(chat, ELSEWHERE, (text, files))
                .map(|()| outcome.tell(Ok(()))),
            Ok(None) => self.check_mail_line(&text, &files).and_then(|()| {
                let asked = Asked {
                    conn: ELSEWHERE,
                    agent: AgentId(String::new()),
                    text,
                    files,
                    client_id: None,
                    mailed: true,
                    writer: Writer::CustomerByMail,
                    outcome: Some(outcome.clone()),
                    room: None,
                };
                self.follow_up_line(id.clone(), asked)
            }),
        };
        if let Err((code, message)) = result {
            outcome.tell(Err(format!("{code}: {message}")));
        }
    }

    /// The live chat of conversation `id` that a line from elsewhere may go into here
    /// (`None`: none, the line is one to an away customer), or why neither may be: it waits
    /// in a category's line after a transfer (its count is its own until paired), or its
    /// customer is held by another node (only that node may speak for them).
    fn live_chat_of(&self, id: &str) -> Result<Option<ChatId>, (&'static str, String)> {
        let waiting = || {
            (
                "conversation_live",
                "the conversation is in a line after a transfer; try again".to_string(),
            )
        };
        if self.continuing.values().any(|log| log.wire_id() == id) {
            return Err(waiting());
        }
        let Some(chat) = self.chat_by_wire.get(id).copied() else {
            return Ok(None);
        };
        match self.routing.chat_sides(chat) {
            Some((customer, _)) if self.chats.contains_key(&chat) => {
                if self.cluster.is_some() && !self.customers.contains_key(&customer) {
                    return Err((
                        "conversation_live",
                        "its customer is in a chat on another node; try again".to_string(),
                    ));
                }
                Ok(Some(chat))
            }
            _ => Err(waiting()),
        }
    }

    /// Line `text` of `agent` into conversation `id`, written elsewhere than on a socket (an
    /// answer to an offline message, which went by mail): the conversation has it too, in
    /// its live chat when its customer is here, else as a line to an away customer.
    /// Refusals are logged: the answer itself is stored with its message and mailed.
    pub(super) fn line_from_elsewhere(&mut self, agent: AgentId, id: String, text: String) {
        let result = match self.live_chat_of(&id) {
            Err(refusal) => Err(refusal),
            Ok(Some(chat)) if self.routing.chat_sides(chat).is_some_and(|(_, a)| *a == agent) => {
                self.relay(chat, (Party::Agent, ELSEWHERE), text, None)
            }
            Ok(Some(_)) => Err(not_yours()),
            Ok(None) => self.check_message(&text).and_then(|()| {
                let asked = Asked {
                    conn: ELSEWHERE,
                    agent,
                    text,
                    files: Vec::new(),
                    client_id: None,
                    mailed: true,
                    writer: Writer::Agent,
                    outcome: None,
                    room: None,
                };
                self.follow_up_line(id.clone(), asked)
            }),
        };
        if let Err((code, message)) = result {
            tracing::warn!(conversation = %id, code, message, "an answer by mail did not become a line of its conversation");
        }
    }

    /// A line for conversation `id`: stamped once its count is known.
    fn follow_up_line(&mut self, id: String, asked: Asked) -> Result<(), (&'static str, String)> {
        if let Some(entry) = self.follow_ups.get_mut(&id) {
            if entry.last_seq.is_none() {
                entry.waiting.push(asked);
                return Ok(());
            }
            return self.stamp_follow_up(&id, asked);
        }
        self.forget_some_follow_ups();
        self.follow_ups.insert(
            id.clone(),
            FollowUps {
                waiting: vec![asked],
                ..FollowUps::default()
            },
        );
        let (archive, hub) = (self.archive.clone(), self.timers.clone());
        tokio::spawn(async move {
            let read = if !archive.stored_through_now().await {
                Err(StoreError::Unavailable("the archive store is down".to_string()))
            } else {
                read(&archive.store(), &id).await
            };
            tell(&hub, Command::FollowUpRead { id, read }).await;
        });
        Ok(())
    }

    /// The store's answer for conversation `id`: the waiting lines are stamped in order
    /// (or go into its live chat, which opened meanwhile), or refused.
    pub(super) fn follow_up_read(&mut self, id: String, read: Result<Read, StoreError>) {
        let Some(mut entry) = self.follow_ups.remove(&id) else {
            return;
        };
        let waiting = std::mem::take(&mut entry.waiting);
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                let refusal = match e {
                    StoreError::NotFound => not_yours(),
                    other => {
                        tracing::warn!(conversation = %id, error = %other, "a conversation to write into could not be read");
                        super::archive_behind()
                    }
                };
                for asked in waiting {
                    self.refuse_line(
                        &id,
                        asked.conn,
                        asked.outcome,
                        refusal.0,
                        refusal.1.clone(),
                        asked.client_id,
                    );
                }
                return;
            }
        };
        // Its customer came back meanwhile: the lines go into the live chat.
        if let Some(chat) = self.chat_by_wire.get(&id).copied() {
            for asked in waiting {
                let (conn, client_id, outcome) = (asked.conn, asked.client_id.clone(), asked.outcome.clone());
                let result = match (self.live_chat_of(&id), self.routing.chat_sides(chat)) {
                    (Err(refusal), _) => Err(refusal),
                    (_, Some((customer, _))) if asked.writer == Writer::CustomerWaiting(customer) => {
                        self.relay(chat, (Party::Customer, conn), asked.text, asked.client_id)
                    }
                    (_, Some(_)) if asked.writer == Writer::CustomerByMail => {
                        self.relay_by_mail(chat, conn, (asked.text, asked.files))
                    }
                    (_, Some((_, owner))) if *owner == asked.agent && asked.files.is_empty() => {
                        self.relay(chat, (Party::Agent, conn), asked.text, asked.client_id)
                    }
                    (_, Some((_, owner))) if *owner == asked.agent => {
                        self.relay_checked_files(chat, (Party::Agent, conn), (asked.text, asked.files), asked.client_id)
                    }
                    // Its chat is known here before its sides (another node paired it and
                    // this node's routing has not caught up): the line belongs in that chat,
                    // which reaches its agent within moments, as when Redis refuses its seq.
                    (_, None) => Err((
                        "conversation_live",
                        "the customer is back: write in their chat, which opens for you shortly".to_string(),
                    )),
                    _ => Err(not_yours()),
                };
                match result {
                    Ok(()) => {
                        if let Some(outcome) = outcome {
                            outcome.tell(Ok(()));
                        }
                    }
                    Err((code, message)) => self.refuse_line(&id, conn, outcome, code, message, client_id),
                }
            }
            return;
        }
        // A customer waiting to continue it counts from where its own read ended, if later.
        let continuing = self
            .customers
            .values()
            .filter_map(|info| info.continues.as_ref())
            .find(|c| c.id == id)
            .map_or(0, |c| c.last_seq);
        entry.last_seq = Some(read.last_seq.max(continuing));
        entry.holder = read.holder;
        self.follow_ups.insert(id.clone(), entry);
        for asked in waiting {
            let (conn, client_id, outcome) = (asked.conn, asked.client_id.clone(), asked.outcome.clone());
            if let Err((code, message)) = self.stamp_follow_up(&id, asked) {
                self.refuse_line(&id, conn, outcome, code, message, client_id);
            }
        }
    }

    /// Stamps, archives and acknowledges one line of conversation `id`, whose count is
    /// known (on several nodes, once Redis drew its seq: [`HubState::follow_up_seq`]).
    fn stamp_follow_up(&mut self, id: &str, mut asked: Asked) -> Result<(), (&'static str, String)> {
        let entry = self.follow_ups.get(id).expect("stamped only once read");
        if asked.writer == Writer::Agent && entry.holder.as_ref() != Some(&asked.agent) {
            return Err(not_yours());
        }
        let archived = entry.last_seq.unwrap_or(0);
        if self.cluster.is_some() {
            // Room first: a seq Redis drew for a line the archive then refused would be a gap.
            asked.room = Some(self.hold_room()?);
            let call = RouterCall::ConversationSeq {
                id: id.to_string(),
                archived,
                asked: Box::new(asked),
            };
            if !self.call(call) {
                return Err((UNAVAILABLE, "the cluster is too busy; try again shortly".to_string()));
            }
            return Ok(());
        }
        self.stamp_line(id, archived + 1, asked)
    }

    /// Redis's seq for a line of conversation `id` (or why none), on several nodes.
    pub(super) fn follow_up_seq(&mut self, id: String, asked: Asked, drawn: Result<u64, SeqRefused>) {
        let (conn, client_id, outcome) = (asked.conn, asked.client_id.clone(), asked.outcome.clone());
        let result = match drawn {
            Ok(seq) => self.stamp_line(&id, seq, asked),
            Err(SeqRefused::Live) => Err((
                "conversation_live",
                "the customer is back: write in their chat, which opens for you shortly".to_string(),
            )),
            Err(SeqRefused::Unavailable(message)) => Err((UNAVAILABLE, message)),
        };
        if let Err((code, message)) = result {
            self.refuse_line(&id, conn, outcome, code, message, client_id);
        }
    }

    /// Tells whoever asked for a line of conversation `id` that it was refused: its
    /// socket, or the caller waiting on `outcome`; a line from elsewhere nobody waits for
    /// is logged.
    fn refuse_line(
        &mut self,
        id: &str,
        conn: ConnId,
        outcome: Option<Outcome>,
        code: &'static str,
        message: String,
        client_id: Option<String>,
    ) {
        match outcome {
            Some(outcome) => outcome.tell(Err(format!("{code}: {message}"))),
            None if conn == ELSEWHERE => {
                tracing::warn!(conversation = %id, code, message, "a line written elsewhere did not become a line of its conversation");
            }
            None => self.error_to_conn(conn, code, message, client_id),
        }
    }

    /// Stamps line `asked` of conversation `id` with `seq`, archives it and acknowledges it
    /// once durable.
    fn stamp_line(&mut self, id: &str, seq: u64, mut asked: Asked) -> Result<(), (&'static str, String)> {
        let room = match asked.room.take() {
            Some(room) => room,
            None => self.hold_room()?,
        };
        if let Some(outcome) = &asked.outcome {
            outcome.tell(Ok(()));
        }
        let entry = self.follow_ups.entry(id.to_string()).or_default();
        let message_id = Uuid::now_v7().to_string();
        let at = now_ms();
        let author = match asked.writer {
            Writer::Agent => Author::AGENT,
            Writer::CustomerByMail => Author::CUSTOMER_BY_MAIL,
            Writer::CustomerWaiting(_) => Author::CUSTOMER,
        };
        let Stamped { frame, ack, event } = transcript::stamped(
            id,
            seq,
            (&message_id, at),
            author,
            (asked.text.clone(), asked.files.clone()),
            asked.client_id.as_deref(),
        );
        let archived = room.push(event);
        if let (Some(_), Some(number)) = (&self.cluster, archived) {
            let stored = self.archive.progress.borrow().stored;
            while self.unstored_lines.front().is_some_and(|(_, _, n)| *n <= stored) {
                self.unstored_lines.pop_front();
            }
            self.unstored_lines.push_back((id.to_string(), seq, number));
        }
        if !asked.mailed {
            self.follow_up_mail.written(&self.archive, &self.settings, id, seq, at);
        }
        entry.last_seq = Some(entry.last_seq.unwrap_or(0).max(seq));
        let line = ChatMessage {
            attachments: asked.files,
            chat_id: id.to_string(),
            id: message_id,
            seq,
            from: if asked.writer.is_customer() {
                From::Customer
            } else {
                From::Agent
            },
            sender: None,
            text: asked.text,
            at,
            client_id: None,
            via: (asked.writer == Writer::CustomerByMail).then_some(crate::store::Via::Email),
        };
        entry.lines.push(line.clone());
        let holder = entry.holder.clone();
        if let Writer::CustomerWaiting(customer) = asked.writer {
            // Their pairing's `chat_started` shows it (on several nodes this table forgets
            // it at once, below).
            if let Some(continued) = self
                .customers
                .get_mut(&customer)
                .and_then(|info| info.continues.as_mut())
                .filter(|continued| continued.id == id)
            {
                continued.last_seq = continued.last_seq.max(seq);
                continued.earlier.push(line);
                let skip = continued.earlier.len().saturating_sub(EARLIER_LINES);
                continued.earlier.drain(..skip);
            }
        }
        // On several nodes its count is Redis's and its holder may change on another node:
        // the next line reads the store afresh (a count or holder kept here could be stale
        // by the time it is written).
        if self.cluster.is_some() && self.follow_ups.get(id).is_some_and(|e| e.waiting.is_empty()) {
            self.follow_ups.remove(id);
        }
        if let Writer::CustomerWaiting(customer) = asked.writer {
            // Its holder sees it as it comes (their console shows the conversation's lines);
            // the customer's socket gets its `ack`, their other tabs the line. A parked
            // conversation opens again.
            if let Some(holder) = holder {
                self.tell_elsewhere(&holder, frame.as_str());
                let copy = SenderCopy::sent_from(ELSEWHERE, ack.clone(), Outbound::Frame(frame.clone()));
                self.acknowledge(Recipient::Agent(holder), copy, archived);
            }
            let copy = SenderCopy::sent_from(asked.conn, ack, Outbound::Frame(frame));
            self.acknowledge(Recipient::Customer(customer), copy, archived);
            self.customer_wrote_while_waiting(id, at);
            return Ok(());
        }
        if asked.writer == Writer::CustomerByMail {
            // Whoever holds it hears it (once stored, as any line) and has it open again.
            if let Some(holder) = holder {
                self.tell_elsewhere(&holder, frame.as_str());
                let copy = SenderCopy::sent_from(ELSEWHERE, ack, Outbound::Frame(frame));
                self.acknowledge(Recipient::Agent(holder.clone()), copy, archived);
                self.conversation_continued(id, &holder);
            }
            return Ok(());
        }
        let copy = SenderCopy::sent_from(asked.conn, ack, Outbound::Frame(frame));
        self.acknowledge(Recipient::Agent(asked.agent), copy, archived);
        Ok(())
    }

    /// Room in the archive for one line, or the refusal (counted) for want of it.
    fn hold_room(&self) -> Result<crate::archive::HeldMessageRoom, (&'static str, String)> {
        self.archive.try_hold_message().ok_or_else(|| {
            self.archive.refused("new chat messages are refused");
            super::archive_behind()
        })
    }

    /// On several nodes, `frame` goes to `holder`'s connections on the other nodes too,
    /// through the admin bus, once this node's archive holds the line (as its
    /// acknowledgement waits for here): the node that stamped a customer's line (the one
    /// reading the mailbox) is often not the one their agent is connected to.
    fn tell_elsewhere(&self, holder: &AgentId, frame: &str) {
        let Some(bus) = self.bus.clone() else { return };
        let (archive, agent, frame) = (self.archive.clone(), holder.0.clone(), frame.to_string());
        tokio::spawn(async move {
            if !archive.stored_through_now().await {
                tracing::warn!(%agent, "a line by mail was not stored in time; its agent on another node sees it in the history");
                return;
            }
            if let Err(e) = bus.publish(AdminChange::Line { agent, frame }).await {
                tracing::warn!(error = %e, "the other nodes were not told of a line by mail; its agent sees it in the history");
            }
        });
    }

    /// A continued conversation about to open as a live chat: the lines its agent wrote
    /// while the customer was away go with it, and its count goes on after them. (Lines
    /// still waiting for the store's read stay: they go into the live chat once read.)
    pub(super) fn with_follow_ups(&mut self, mut continued: Box<Continued>) -> Box<Continued> {
        let ready = self
            .follow_ups
            .get(&continued.id)
            .is_some_and(|entry| entry.last_seq.is_some());
        if let Some(entry) = ready.then(|| self.follow_ups.remove(&continued.id)).flatten() {
            continued.last_seq = continued.last_seq.max(entry.last_seq.unwrap_or(0));
            continued
                .earlier
                .retain(|m| !entry.lines.iter().any(|l| l.seq == m.seq));
            continued.earlier.extend(entry.lines);
            continued.earlier.sort_by_key(|m| m.seq);
            let skip = continued.earlier.len().saturating_sub(EARLIER_LINES);
            continued.earlier.drain(..skip);
        }
        continued
    }

    /// The highest seq this node knows of each conversation whose counter Redis may have
    /// lost with its data: a customer here waiting to continue it (from where their join
    /// settled), a line to an away customer stamped here and not yet written. (Its chats'
    /// seqs are claimed with them.)
    pub(super) fn conversation_seqs_here(&self) -> Vec<(String, u64)> {
        // Stored, not merely durable: a line held in this node's spool during a store
        // outage is in no store the restore reads.
        let stored = self.archive.progress.borrow().stored;
        let mut seqs: HashMap<&str, u64> = HashMap::new();
        let waiting = self.customers.values().filter_map(|info| info.continues.as_ref());
        let unstored = self.unstored_lines.iter().filter(|(_, _, n)| *n > stored);
        for (id, seq) in waiting
            .map(|c| (c.id.as_str(), c.last_seq))
            .chain(unstored.map(|(id, seq, _)| (id.as_str(), *seq)))
        {
            let highest = seqs.entry(id).or_default();
            *highest = (*highest).max(seq);
        }
        seqs.into_iter().map(|(id, seq)| (id.to_string(), seq)).collect()
    }

    /// Keeps the table bounded: conversations with nothing waiting are forgotten first.
    fn forget_some_follow_ups(&mut self) {
        if self.follow_ups.len() < KEPT {
            return;
        }
        self.follow_ups.retain(|_, entry| entry.last_seq.is_none());
    }
}

/// The conversation's last seq and holder, as stored.
async fn read(store: &SharedStore, id: &str) -> Result<Read, StoreError> {
    let record = store.conversation_record(id).await?;
    let archived = store.conversation(id).await?;
    Ok(Read {
        last_seq: archived.messages.iter().map(|m| m.seq).max().unwrap_or(0),
        holder: record.holder.map(AgentId),
    })
}
