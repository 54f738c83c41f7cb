//! Chat messages between nodes (`docs/cluster.md` §7): a checked message goes
//! to Redis to be stamped (its chat's seq drawn and logged by a fenced script); each node
//! records every line of its chats in seq order, holding lines that come past a gap until
//! the chat's log fills it; typing and drafts go to the peer's node only. The node that
//! archives a chat reads its log once more after the chat ends and archives what it had
//! not recorded before the closing: an acknowledged line may reach it (pub/sub) after
//! the end's event (the events stream), and would otherwise be in no archive.

use uuid::Uuid;

use super::super::HubState;
use super::SENT_HERE_MAX;
use crate::clock::now_ms;
use crate::cluster::chat_log::{ChatLine, LOG_BOUND, LogRead, NodeMessage};
use crate::core::routing::{ChatId, Party};
use crate::hub::cluster::link::{QueuedMessage, RouterCall, UNAVAILABLE};
use crate::hub::cluster::rereads::Log;
use crate::hub::delivery::{ConnId, Delivery, Outbound, Recipient, SenderCopy};
use crate::hub::transcript::{Author, Stamped, Transcript, stamped};
use crate::protocol::ServerFrame;
use crate::store::{ArchiveEvent, ConversationClosed, EndReason, InferredClosing, Side};

/// A chat's latest recorded lines a node writes back into its log after Redis lost its
/// data: more than a chat has in flight at the moment of a loss (stamped, not yet read by
/// the other side's node), which is a line or two per side.
const CLAIM_TAIL: u64 = 16;

/// An ended chat this node archives, waiting for the last read of its log before its closing.
pub(in crate::hub::service) struct ClosingArchive {
    wire_id: String,
    /// Only the seq recorded so far: stamps the archive events of the lines read.
    transcript: Transcript,
    closed: ConversationClosed,
    /// A chat this node let go of when fenced: its archive's room for the closing was
    /// given back, so the closing is written past it (`push_inherited_closing`).
    let_go: bool,
    /// Where its read once every claim is in stands (after Redis lost its data).
    after_claims: AfterClaims,
}

/// An ended chat's last read that found its claims still coming after Redis lost its data
/// (`LogRead::restoring`): a claim still to come may write back lines above a hole of its
/// log, which that read stopped at; so the log is read once more once every claim is in,
/// and the closing waits for that read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterClaims {
    /// No read found the claims coming (yet).
    NotNeeded,
    /// One did: read again once every claim is in (`Command::EveryClaimIn`).
    Waiting,
    /// Read again, once: whatever that read finds, the closing goes after it.
    ReadAgain,
}

impl ClosingArchive {
    /// Takes a read of the chat's log: the lines after what was recorded, each with its
    /// archive event, stepping over what no log holds (`LogRead::in_order`); and whether
    /// the closing may be written now (not when the read found the chat's claims still
    /// coming and the log was not read again since).
    fn take(&mut self, read: LogRead) -> (Vec<(ArchiveEvent, ChatLine)>, bool) {
        let done = !read.restoring || self.after_claims == AfterClaims::ReadAgain;
        let taken = self.transcript.take_read(&self.wire_id, read);
        let taken = taken.into_iter().map(|(stamped, line)| (stamped.event, line)).collect();
        (taken, done)
    }
}

impl HubState {
    /// Sends a checked message to be stamped by Redis; it is recorded and delivered when
    /// the stamp comes back (`chat_lines`).
    pub(in crate::hub::service) fn cluster_relay(
        &mut self,
        chat: ChatId,
        (from, origin): (Party, ConnId),
        (text, files): (String, Vec<crate::attachments::AttachmentMeta>),
        (client_id, via): (Option<String>, Option<crate::store::Via>),
    ) -> Result<(), (&'static str, String)> {
        let files = crate::attachments::files_json(&files);
        self.read_before_the_new_agents_line(chat, from)?;
        let log = self.chats.get(&chat).expect("chats in routing have a log");
        let sender = match from {
            Party::Customer => Recipient::Customer(log.customer),
            _ => Recipient::Agent(log.agent.clone()),
        };
        let id = Uuid::now_v7().to_string();
        let cluster = self.cluster_mut();
        if cluster.sent_here.len() >= SENT_HERE_MAX {
            cluster.sent_here.clear();
        }
        cluster.sent_here.insert(id.clone(), origin);
        let call = RouterCall::Message(QueuedMessage {
            chat,
            from,
            sender,
            id,
            at: now_ms(),
            text,
            client_id,
            files,
            via,
        });
        if !self.call(call) {
            return Err((UNAVAILABLE, "the cluster is too busy; the message was not sent".into()));
        }
        Ok(())
    }

    /// The read that says where the earlier agent's lines end (`earlier_through_the_read`)
    /// could not be queued (the router's queue was full): queued again before the new
    /// agent's first line, so that line cannot be counted as the earlier agent's; that line
    /// is refused while the read cannot be queued.
    fn read_before_the_new_agents_line(&mut self, chat: ChatId, from: Party) -> Result<(), (&'static str, String)> {
        let Some(last) = self
            .chats
            .get(&chat)
            .filter(|log| from == Party::Agent && log.earlier_through_the_read)
            .map(|log| log.live.last_seq())
        else {
            return Ok(());
        };
        if !self.is_filling(chat) {
            self.fill(chat, last);
        }
        if !self.is_filling(chat) {
            return Err((UNAVAILABLE, "the cluster is too busy; the message was not sent".into()));
        }
        Ok(())
    }

    /// `chat` ended and this node archives it (recorded up to `last_seq`): its closing is
    /// written after the chat's log has been read once more.
    pub(in crate::hub::service) fn close_after_last_read(
        &mut self,
        chat: ChatId,
        last_seq: u64,
        closed: ConversationClosed,
    ) {
        self.cluster_mut().let_go.remove(&chat);
        self.closing_archive(chat, last_seq, closed, false);
    }

    /// A chat this node let go of when fenced (`ClusterState::let_go`) ended: its closing
    /// is written here, after the last read of its log, and its status resolved when it
    /// ended on purpose, as for a chat it still held.
    pub(in crate::hub::service) fn close_let_go(&mut self, chat: ChatId, ended_by: Side, reason: EndReason) {
        let Some(kept) = self.cluster.as_mut().and_then(|c| c.let_go.remove(&chat)) else {
            return;
        };
        // Ended on purpose, it is done, as for a chat this node still held (`close_chat`).
        if reason == EndReason::Ended {
            self.conversation_resolved(&kept.wire_id, kept.opening);
        }
        let closed = ConversationClosed {
            id: kept.wire_id,
            // When the end applied in Redis, not when this node replays it.
            ended_at: self.cluster_mut().stream_time(),
            ended_by,
            reason,
            inferred: None,
        };
        self.closing_archive(chat, kept.last_seq, closed, true);
    }

    /// The chats this node let go of that a snapshot it loaded no longer runs: they ended
    /// in events it skipped, and it would never replay their end. Their closing is written
    /// here, dated by the snapshot (when it is known they had ended) and said as a
    /// disconnection, how they ended being lost with the events: so their conversations
    /// stay open, as a chat whose customer went, not resolved. As inferred: the node that
    /// applied the end writes the real one, which replaces it whenever it comes.
    pub(in crate::hub::service) fn close_let_go_ended_unseen(&mut self) {
        let routing = &self.routing;
        let Some(ended) = self.cluster.as_mut().map(|c| c.let_go_not_in(routing)) else {
            return;
        };
        let ended_at = self.cluster_mut().stream_time();
        for (chat, kept) in ended {
            let closed = ConversationClosed {
                id: kept.wire_id,
                ended_at,
                ended_by: Side::System,
                reason: EndReason::Disconnect,
                // The node that applied the end (the reaper that inherited it) writes the
                // real closing: this one closes this visit until it comes.
                inferred: Some(InferredClosing {
                    visit_paired_at: kept.opening.paired_at,
                }),
            };
            self.closing_archive(chat, kept.last_seq, closed, true);
        }
    }

    /// Writes `closed`, the closing of the ended chat `chat`, after a last read of its log
    /// archives the lines after `last_seq`; `let_go`: this node reserved no room for it.
    pub(super) fn closing_archive(&mut self, chat: ChatId, last_seq: u64, closed: ConversationClosed, let_go: bool) {
        let entry = ClosingArchive {
            wire_id: closed.id.clone(),
            transcript: Transcript::from_parts(last_seq, vec![], 1),
            closed,
            let_go,
            after_claims: AfterClaims::NotNeeded,
        };
        self.read_before_closing(chat, entry);
    }

    /// Has the router read the ended chat's log after what `entry` recorded; its closing
    /// waits for the read (`chat_closing_lines`).
    fn read_before_closing(&mut self, chat: ChatId, entry: ClosingArchive) {
        let after = entry.transcript.last_seq();
        if self.call(RouterCall::ClosingRead { chat, after }) {
            self.cluster_mut().closing.insert(chat, entry);
        } else {
            tracing::warn!(
                chat = chat.0,
                "the router's queue is full: an ended chat is archived as recorded"
            );
            self.push_closing_of(entry);
        }
    }

    /// The last read of an ended chat's log: the lines after what was recorded, then the
    /// closing — or, where the read found the chat's claims still coming after Redis lost
    /// its data, the log read once more once they are in, and the closing after that read.
    pub(in crate::hub::service) fn chat_closing_lines(&mut self, chat: ChatId, read: LogRead) {
        let Some(mut entry) = self.cluster_mut().closing.remove(&chat) else {
            return;
        };
        let (taken, done) = entry.take(read);
        for (event, line) in taken {
            let archived = self.archive.push_message(event);
            let archived = archived.or_else(|| Some(self.archive.last_handed()));
            self.acknowledge_own_line_of_ended_chat(&entry.wire_id, &line, archived);
        }
        if done {
            self.push_closing_of(entry);
        } else if self.cluster_mut().claims_coming {
            entry.after_claims = AfterClaims::Waiting;
            self.cluster_mut().closing.insert(chat, entry);
        } else {
            // Every claim came in while the read was on its way.
            self.read_closing_again(chat, entry);
        }
    }

    /// Reads an ended chat's log once more, every claim being in, before its closing.
    fn read_closing_again(&mut self, chat: ChatId, mut entry: ClosingArchive) {
        entry.after_claims = AfterClaims::ReadAgain;
        self.read_before_closing(chat, entry);
    }

    /// Every node that took part in the restore after Redis lost its data claimed its
    /// chats (their lines written back to their logs), or the claim window is over: the
    /// ended chats whose last read found their claims coming are read again, then every
    /// running chat's log.
    pub(in crate::hub::service) fn every_claim_in(&mut self) {
        let cluster = self.cluster_mut();
        cluster.claims_coming = false;
        let waiting: Vec<ChatId> = cluster
            .closing
            .iter()
            .filter(|(_, entry)| entry.after_claims == AfterClaims::Waiting)
            .map(|(chat, _)| *chat)
            .collect();
        for chat in waiting {
            if let Some(entry) = self.cluster_mut().closing.remove(&chat) {
                self.read_closing_again(chat, entry);
            }
        }
        self.chat_resync();
    }

    fn push_closing_of(&self, entry: ClosingArchive) {
        if entry.let_go {
            self.archive.push_inherited_closing(ArchiveEvent::Closed(entry.closed));
        } else {
            self.archive.push_closing(ArchiveEvent::Closed(entry.closed));
        }
    }

    /// Shutting down: the closings still waiting for their last read are written as recorded.
    pub(in crate::hub::service) fn flush_closings(&mut self) {
        let pending: Vec<ClosingArchive> = self.cluster_mut().closing.drain().map(|(_, entry)| entry).collect();
        for entry in pending {
            self.push_closing_of(entry);
        }
    }

    pub(in crate::hub::service) fn is_filling(&self, chat: ChatId) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.filling.contains(&chat))
    }

    pub(in crate::hub::service) fn fill(&mut self, chat: ChatId, after: u64) {
        if self.cluster_mut().filling.insert(chat) && !self.call(RouterCall::Fill { chat, after }) {
            self.cluster_mut().filling.remove(&chat);
        }
    }

    /// Stamped lines: this node's own (the script's reply) or a peer node's (pub/sub).
    pub(in crate::hub::service) fn chat_lines(&mut self, lines: Vec<ChatLine>) {
        for line in lines {
            self.accept_line(line);
        }
    }

    /// A read of `chat`'s log (a gap's fill, or every chat read again): its lines taken in
    /// seq order, stepping over what no log holds any more (`LogRead::in_order`).
    pub(in crate::hub::service) fn chat_log_read(&mut self, chat: ChatId, read: LogRead) {
        let read_up_to = read.lines.iter().map(|line| line.seq).max();
        // Marked as filling while its lines are taken: a line it holds past a hole that a
        // claim still to come may fill is held, not read again (the read once every claim
        // is in does).
        self.cluster_mut().filling.insert(chat);
        for (floor, line) in read.in_order() {
            if let Some(floor) = floor {
                self.skip_what_no_log_holds(chat, floor);
            }
            self.accept_line(line);
        }
        self.cluster_mut().filling.remove(&chat);
        self.earlier_agent_through_the_read(chat);
        self.chat_read_for_resume(chat);
        // Still a gap after the read (messages stamped after it, past it): read again.
        // Not for a gap inside what the read saw (a restored chat's hole that a claim
        // still to come may fill: the read once every claim is in does), which would read
        // the same again.
        if let Some(read_up_to) = read_up_to
            && let Some(held) = self.cluster_mut().ahead.get(&chat)
            && held.keys().next().is_some_and(|lowest| *lowest > read_up_to + 1)
            && let Some(last) = self.chats.get(&chat).map(|log| log.live.last_seq())
        {
            self.fill(chat, last);
        }
    }

    /// A chat handed to an agent here, which kept no log of it, has its log read: the
    /// earlier agent's lines end with what it holds (their snapshots name them so).
    fn earlier_agent_through_the_read(&mut self, chat: ChatId) {
        let Some(log) = self.chats.get_mut(&chat).filter(|log| log.earlier_through_the_read) else {
            return;
        };
        log.earlier_through_the_read = false;
        let through = log.live.last_seq();
        let handed = log.handed_over.as_mut().map(|t| &mut t.earlier_agents);
        for earlier in [Some(&mut log.earlier_agents), handed].into_iter().flatten() {
            if let Some(last) = earlier.last_mut() {
                last.through_seq = through;
            }
        }
    }

    /// An own message sent again that Redis had stamped before (`line`, the first
    /// sending's; `sent`, this sending's id). Not recorded here yet: it is recorded as that
    /// line, in its turn, and this sending's connection gets the ack. Recorded already —
    /// the chat went on past it (a page that moved to another node, or lost its connection,
    /// before its ack came, and sends what it has not seen acknowledged) — it is neither
    /// recorded nor delivered again, and the connection gets the ack of the first: its
    /// seq, id and time (once the archive has what it was handed, if it archives the chat),
    /// unless it had the line already (its ack, or the whole message: sent again as the
    /// answer was on its way), which it does not get twice.
    pub(in crate::hub::service) fn chat_sent_again(&mut self, sent: &str, line: ChatLine) {
        let origin = self.cluster_mut().sent_here.remove(sent);
        let Some(log) = self.chats.get(&line.chat) else {
            return;
        };
        if line.seq > log.live.last_seq() {
            if let Some(origin) = origin {
                self.cluster_mut().sent_here.insert(line.id.clone(), origin);
            }
            return self.accept_line(line);
        }
        let had_it = |origin: &ConnId| {
            self.cluster
                .as_ref()
                .and_then(|cluster| cluster.delivered_here.get(&line.id))
                .is_some_and(|conns| conns.contains(origin))
        };
        let Some(origin) = origin.filter(|o| !had_it(o)) else {
            return;
        };
        let archived = log.archived_here.then(|| self.archive.last_handed());
        let wire_id = log.wire_id().to_string();
        self.ack_line_to(origin, &wire_id, &line, archived);
    }

    /// Acknowledges `line` to the connection it was sent from here, if any, once the archive
    /// has what it was handed up to `archived` (`None`: at once, the chat's log holding it):
    /// its chat ended here before Redis answered for it.
    fn acknowledge_own_line_of_ended_chat(&mut self, wire_id: &str, line: &ChatLine, archived: Option<u64>) {
        if let Some(origin) = self.cluster_mut().sent_here.remove(&line.id) {
            self.ack_line_to(origin, wire_id, line, archived);
        }
    }

    /// Acknowledges `line` of chat `wire_id` to connection `origin`, if it is still here,
    /// once the archive has what it was handed up to `archived` (`None`: at once).
    fn ack_line_to(&mut self, origin: ConnId, wire_id: &str, line: &ChatLine, archived: Option<u64>) {
        let Some(conn) = self.conns.get(&origin) else {
            return;
        };
        let Stamped { ack, .. } = stamped(
            wire_id,
            line.seq,
            (&line.id, line.at),
            Author::of(line.from, line.via),
            (String::new(), Vec::new()),
            line.client_id.as_deref(),
        );
        let copy = SenderCopy::sent_from(conn.handle.id, ack.clone(), Outbound::Frame(ack));
        self.direct
            .acks
            .acknowledge(archived, std::slice::from_ref(&conn.handle), copy);
    }

    /// The chat's log holds no line between the next seq this node needs and `floor` + 1
    /// (a line of the log's read, `LogRead::in_order`): the lines between are in no log
    /// any more — trimmed, or lost with Redis's data (a node that takes a chat on after a
    /// restore finds its log starting after the claimed seq; the claims may leave a hole) —
    /// so it goes on after them instead of holding every later line, unrecorded and
    /// unacknowledged, for a gap nothing can fill. (Found by scenario 4: a customer who
    /// resumed on a third node after Redis came back empty got none of the chat's lines
    /// from then on, and the agent's acknowledged lines were archived by nobody.) Those
    /// lines were archived by the node that archived the chat then, or by every node that
    /// held them when the data was lost (`archive_kept_lines_of_every_chat`).
    fn skip_what_no_log_holds(&mut self, chat: ChatId, floor: u64) {
        let Some(log) = self.chats.get_mut(&chat) else { return };
        if floor > log.live.last_seq() {
            tracing::warn!(
                chat = chat.0,
                from = log.live.last_seq() + 1,
                to = floor,
                "lines of a chat are in no log any more (trimmed, or lost with Redis's data): going on after them"
            );
            log.live.skip_to(floor);
        }
    }

    /// Records and delivers a chat's message in seq order: the next one at once, a later
    /// one held while the gap before it is read from the log, an old one ignored.
    fn accept_line(&mut self, line: ChatLine) {
        let chat = line.chat;
        let Some(last) = self.chats.get(&chat).map(|log| log.live.last_seq()) else {
            // The chat ended here while Redis stamped this node's own line (an agent's answer
            // right before their `end_chat`): the line is in the chat's log, so its sender is
            // acknowledged as for a line of a running chat, or, where this node archives the
            // chat, once its last read has it (`chat_closing_lines`).
            // (Its id as every node derives it: a chat continuing an earlier conversation
            // is named by that conversation, which this node no longer knows.)
            if !self.cluster_mut().closing.contains_key(&chat) {
                let wire_id = self.cluster_mut().wire_id(chat);
                self.acknowledge_own_line_of_ended_chat(&wire_id, &line, None);
            }
            return;
        };
        if line.seq <= last {
            return;
        }
        if line.seq > last + 1 {
            let held = self.cluster_mut().ahead.entry(chat).or_default();
            if held.len() < LOG_BOUND {
                held.insert(line.seq, line);
            }
            return self.fill(chat, last);
        }
        self.record_line(line);
        // Then whatever was held for after it.
        loop {
            let next = self.chats.get(&chat).map(|log| log.live.last_seq() + 1);
            let cluster = self.cluster_mut();
            let Some(held) = cluster.ahead.get_mut(&chat) else {
                break;
            };
            let line = next.and_then(|n| held.remove(&n));
            held.retain(|seq, _| next.is_some_and(|n| *seq > n));
            if held.is_empty() {
                cluster.ahead.remove(&chat);
            }
            match line {
                Some(line) => self.record_line(line),
                None => break,
            }
        }
    }

    fn record_line(&mut self, line: ChatLine) {
        let sent_from = self.cluster_mut().sent_here.remove(&line.id);
        let Some(log) = self.chats.get_mut(&line.chat) else {
            return;
        };
        let (chat, from, at) = (line.chat, line.from, line.at);
        // A line with a client id may be sent again (`chat_sent_again`).
        let sent_again_as = line.client_id.is_some().then(|| line.id.clone());
        let Stamped { frame, ack, event } = record(&mut log.live.line().transcript, log.wire_id(), line);
        let archived = if log.archived_here {
            self.archive.push_message(event)
        } else {
            None
        };
        let (customer, agent) = (log.customer, log.agent.clone());
        let (sender, peer) = match from {
            Party::Customer => (Recipient::Customer(customer), Recipient::Agent(agent)),
            _ => (Recipient::Agent(agent), Recipient::Customer(customer)),
        };
        if let Some(id) = sent_again_as {
            let conns = self.delivery.connections(&sender).iter().map(|c| c.id).collect();
            let cluster = self.cluster_mut();
            if cluster.delivered_here.len() >= SENT_HERE_MAX {
                cluster.delivered_here.clear();
            }
            cluster.delivered_here.insert(id, conns);
        }
        let frame = Outbound::Frame(frame);
        self.delivery.deliver(&peer, &frame);
        let copy = match sent_from {
            // The sending connection gets the compact acknowledgement, as on one node.
            Some(origin) => SenderCopy::sent_from(origin, ack, frame),
            // Sent through another node: a sender connected here (another tab, or back
            // after a drop) has not seen it, so it goes out whole, after the archive has it
            // if it is ours.
            None => SenderCopy::whole_everywhere(frame),
        };
        self.acknowledge(sender, copy, archived);
        self.messages_relayed.increment(1);
        if from == Party::Customer {
            self.customer_line_in(chat, at);
        }
    }

    pub(in crate::hub::service) fn chat_signal(&mut self, signal: NodeMessage) {
        match signal {
            NodeMessage::Typing { chat, from, active } => self.tell_typing(chat, from, active),
            NodeMessage::Draft { chat, text } => {
                let Some(log) = self.chats.get(&chat) else { return };
                if !self.settings.draft_preview {
                    return;
                }
                let to = Recipient::Agent(log.agent.clone());
                let frame = ServerFrame::Draft {
                    chat_id: log.wire_id().to_string(),
                    text,
                };
                self.send(to, &frame);
            }
            NodeMessage::Line(line) => self.accept_line(line),
            NodeMessage::BuddyTyping { chat, from, active } => self.buddy_typing_arrived(&chat, from, active),
            NodeMessage::BuddyLine(line) => self.buddy_line_arrived(line),
        }
    }

    /// What this node writes back into its chats' logs with its claim after Redis lost
    /// its data (`cluster::restore::Claims::lines`): of each chat, the last
    /// [`CLAIM_TAIL`] lines it recorded and those it holds past a gap. A line stamped and
    /// acknowledged just before the loss may have reached only this node (its pub/sub
    /// message to the other side's node lost with the cut): the other node reads it from
    /// the log once every claim is in (`Command::EveryClaimIn`), in its place, instead of
    /// going on past it.
    pub(in crate::hub::service) fn lines_to_write_back(&self) -> Vec<ChatLine> {
        let mut lines = vec![];
        for (chat, log) in &self.chats {
            let recorded = log.live.after(log.live.last_seq().saturating_sub(CLAIM_TAIL));
            lines.extend(recorded.into_iter().map(|m| ChatLine {
                chat: *chat,
                seq: m.seq,
                from: match m.from {
                    crate::protocol::From::Customer => Party::Customer,
                    _ => Party::Agent,
                },
                files: crate::attachments::files_json(&m.attachments),
                id: m.id,
                at: m.at,
                text: m.text,
                client_id: m.client_id,
                via: m.via,
            }));
            if let Some(held) = self.cluster.as_ref().and_then(|c| c.ahead.get(chat)) {
                lines.extend(held.values().cloned());
            }
        }
        lines
    }

    /// The chat channel was cut: whatever was published meanwhile is in the chats' logs.
    /// So after Redis lost its data, once every node's claim is in: the lines only
    /// another node had were written back to them (`lines_to_write_back`). Every chat's
    /// log is read, however many: outside the router's queue (`hub::cluster::rereads`).
    pub(in crate::hub::service) fn chat_resync(&mut self) {
        self.buddy_lines_resync();
        let chats: Vec<(Log, u64)> = self
            .chats
            .iter()
            .map(|(chat, log)| (Log::Chat(*chat), log.live.last_seq()))
            .collect();
        self.cluster_mut().reread(chats);
    }
}

/// Records a line as Redis stamped it, next in `transcript` (seq order is the caller's).
fn record(transcript: &mut Transcript, wire_id: &str, line: ChatLine) -> Stamped {
    let files = line.attachments();
    let stamp = stamped(
        wire_id,
        line.seq,
        (&line.id, line.at),
        Author::of(line.from, line.via),
        (line.text, files),
        line.client_id.as_deref(),
    );
    transcript.record_stamped(line.seq, stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended_at(last_seq: u64) -> ClosingArchive {
        ClosingArchive {
            wire_id: "w1".into(),
            transcript: Transcript::from_parts(last_seq, vec![], 1),
            closed: ConversationClosed {
                id: "w1".into(),
                ended_at: 0,
                ended_by: Side::Agent,
                reason: EndReason::Ended,
                inferred: None,
            },
            let_go: false,
            after_claims: AfterClaims::NotNeeded,
        }
    }

    fn read(seqs: impl IntoIterator<Item = u64>, restoring: bool) -> LogRead {
        LogRead {
            lines: seqs.into_iter().map(|seq| ChatLine::for_test(ChatId(1), seq)).collect(),
            restoring,
        }
    }

    fn seqs(taken: &[(ArchiveEvent, ChatLine)]) -> Vec<u64> {
        taken.iter().map(|(_, line)| line.seq).collect()
    }

    /// An ended chat recorded up to 3 whose last read finds its claims still coming, line
    /// 4 not written back yet: nothing past the hole is archived, and the closing waits for
    /// the read once every claim is in, which archives 4..6 — and only one such read.
    #[test]
    fn a_closing_read_while_the_claims_are_coming_waits_for_one_read_after_them() {
        let mut entry = ended_at(3);
        let (taken, done) = entry.take(read([5, 6], true));
        assert!(seqs(&taken).is_empty(), "nothing past the hole while restoring");
        assert!(!done, "the closing waits for the read once every claim is in");
        entry.after_claims = AfterClaims::ReadAgain;
        let (taken, done) = entry.take(read([4, 5, 6], false));
        assert_eq!(seqs(&taken), [4, 5, 6]);
        assert!(done);
        // Read again once only: even a read still restoring then closes.
        let mut entry = ended_at(3);
        entry.after_claims = AfterClaims::ReadAgain;
        let (_, done) = entry.take(read([4], true));
        assert!(done, "one read after the claims, whatever it finds");
    }

    /// After the claims, with lines 1..7 and 9..24 in the log, an ended chat recorded up to
    /// 4 archives 5..7 and 9..24: only the hole (8) is skipped.
    #[test]
    fn a_closing_read_steps_over_a_hole_of_the_log() {
        let mut entry = ended_at(4);
        let (taken, done) = entry.take(read((5..=7).chain(9..=24), false));
        assert_eq!(seqs(&taken), (5..=7).chain(9..=24).collect::<Vec<_>>());
        assert!(done);
        assert_eq!(entry.transcript.last_seq(), 24);
    }
}
