//! Buddy chat messages across nodes (docs/cluster.md §15): off the routing events stream.
//!
//! The sender's node stamps a message in its chat's own log (`cluster::buddy_chat_log`),
//! which places it in the stream's order by `p`. Every node that gets a line (its own
//! stamp's reply, a line another node published, a read of the log) holds it until the
//! line is next in its chat's seq order and the replica can judge it
//! (`core::presence::stamps::verdict`): kept lines are recorded, delivered to the
//! members' pages here, archived by the chat's archiving node and acknowledged on the
//! sender's; the sender's node then publishes it to the other nodes holding a page of
//! either member or archiving the chat. Dropped lines (stamped after the chat's end) are
//! refused to their sender. A node reads a chat's log when it finds a gap, when a page
//! here joins a running chat (the welcome waits for it), when it inherits a chat's
//! archive, when its channel was cut, and when a chat it holds a member of or archives
//! ends (the archiving node's closing waits for the lines stamped before the end).

pub(super) mod state;

use std::collections::VecDeque;

use self::state::{AfterRead, Ended};
use super::desk::{BuddyChat, Refusal, Roster};
use crate::cluster::buddy_chat_log::{BuddyClaim, LogRead};
use crate::cluster::buddy_line::BuddyLine;
use crate::core::presence::stamps::{ChatAt, EntryId, Verdict, verdict};
use crate::core::presence::{BuddyChatId, BuddyId};
use crate::hub::buddy_events::BuddyEvent;
use crate::hub::cluster::link::BuddyOutgoing;
use crate::hub::delivery::{ConnId, Delivery, Outbound, Recipient, SenderCopy};
use crate::hub::service::HubState;
use crate::hub::transcript::{Author, Stamped, Transcript, stamped};
use crate::store::{ArchiveEvent, ArchivedMessage, ConversationClosed, Side};

/// Ended chats whose end a node keeps, for lines that reach it after the end: the most
/// recent 10,000 (under a kilobyte each: the end, the archive's opening and closing).
/// A line of a chat ended longer ago than that is dropped unread; its sender's node, where
/// it was kept, had published it long since.
const ENDED_KEPT: usize = 10_000;
/// Lines a node holds for one chat at most while it waits for a gap's read or its replica:
/// a log's worth. Beyond it the newest wait in the log for the next read.
const PENDING_PER_CHAT: usize = crate::cluster::buddy_chat_log::LOG_BOUND;
/// How recent an end must be for a node to read the chat's log again after its channel
/// was cut, or for the heir of a lost archiving node to archive it again: the lines and
/// the closing of an older end were handled long before (milliseconds after it).
const RECENT_END_MS: u64 = 5 * 60 * 1_000;
/// A running chat's latest kept lines a node writes back to its log after Redis lost its
/// data: more than a chat has in flight at the moment of a loss (stamped, not yet
/// published), which is a line or two per member.
const CLAIM_TAIL: u64 = 16;

/// Where a chat stands for the lines of it.
enum Standing {
    Running {
        roster: Roster,
        chat: BuddyChatId,
        last_seq: u64,
    },
    Ended {
        at: EntryId,
        last_seq: u64,
    },
    Unknown,
}

impl HubState {
    /// `me`'s message in a cluster: checked against the replica (a running chat of theirs)
    /// and sent to be stamped in the chat's log.
    pub(super) fn buddy_send_across(
        &mut self,
        conn: ConnId,
        me: BuddyId,
        roster: Roster,
        chat: Option<&str>,
        (id, at, text, client_id): (String, i64, String, Option<String>),
        files: Vec<crate::attachments::AttachmentMeta>,
    ) -> Result<(), Refusal> {
        let chat = self.buddy_chat(me, roster, chat)?;
        let log = &self.buddies.chats[&(roster, chat)];
        // Never below a seq this node has seen (the counter starts there if Redis lost it).
        let held = self
            .buddies
            .lines
            .pending
            .get(&log.wire_id)
            .and_then(|lines| lines.keys().next_back().copied())
            .unwrap_or(0);
        let message = BuddyOutgoing {
            conn,
            chat: log.wire_id.clone(),
            sender: me.0,
            id,
            at,
            text,
            client_id,
            floor: log.transcript.last_seq().max(held),
            files: crate::attachments::files_json(&files),
        };
        if self.buddy_stamp_call(message) {
            Ok(())
        } else {
            Err((
                crate::hub::cluster::link::UNAVAILABLE,
                "the cluster is too busy; try again shortly".to_string(),
            ))
        }
    }

    /// This node's message, stamped: held until the replica keeps or drops it.
    pub(in crate::hub) fn buddy_stamped(&mut self, conn: ConnId, line: BuddyLine) {
        let last = match self.buddy_standing(&line.chat) {
            Standing::Running { last_seq, .. } | Standing::Ended { last_seq, .. } => last_seq,
            Standing::Unknown => 0,
        };
        if line.seq <= last {
            // Sent again after Redis applied the first late: that one was judged here already.
            return self.buddy_answer_again(conn, &line);
        }
        self.buddies
            .lines
            .awaiting
            .insert((line.chat.clone(), line.seq), (conn, line.client_id.clone()));
        self.buddy_line_arrived(line);
    }

    /// A line from another node, or this node's own: held in its chat's order.
    pub(in crate::hub) fn buddy_line_arrived(&mut self, line: BuddyLine) {
        let chat = line.chat.clone();
        let pending = self.buddies.lines.pending.entry(chat.clone()).or_default();
        if pending.len() < PENDING_PER_CHAT || pending.contains_key(&line.seq) {
            pending.insert(line.seq, line);
        }
        self.buddy_drain(&chat, true);
    }

    /// A read of a chat's log: its lines join the held ones, then what waited for it runs.
    pub(in crate::hub) fn buddy_log_read(&mut self, chat: String, read: Option<LogRead>) {
        let reads = self.buddies.lines.reading.get_mut(&chat);
        let actions = reads.and_then(VecDeque::pop_front).unwrap_or_default();
        if self.buddies.lines.reading.get(&chat).is_some_and(VecDeque::is_empty) {
            self.buddies.lines.reading.remove(&chat);
        }
        self.buddy_lines_read(&chat, read, &actions);
        self.buddy_after_read(actions);
    }

    /// A read of a chat's log made again with every chat's (`buddy_lines_resync`): its
    /// lines join the held ones. Nothing waits for it, and it answers none of the reads
    /// under way (`reading`), which the router's queue answers in their order.
    pub(in crate::hub) fn buddy_log_reread(&mut self, chat: String, read: Option<LogRead>) {
        self.buddy_lines_read(&chat, read, &[]);
    }

    fn buddy_lines_read(&mut self, chat: &str, read: Option<LogRead>, actions: &[AfterRead]) {
        if let Some(read) = read {
            self.buddy_take_read(chat, read, actions);
        }
        // No read again from here: a gap the log could not fill waits for the next line or
        // the replica's next batch (a read failing on an absent Redis must not loop).
        self.buddy_drain(chat, false);
    }

    /// The lines of a read, held; what the log no longer has below them skipped; and, for
    /// an heir, the archive written again.
    fn buddy_take_read(&mut self, chat: &str, read: LogRead, actions: &[AfterRead]) {
        // What the log no longer holds below its first line, nobody can give this node.
        if let Some(first) = read.first {
            self.buddy_skip_to(chat, first.saturating_sub(1));
        }
        if actions.iter().any(|a| matches!(a, AfterRead::Rearchive)) {
            self.buddy_archive_again(chat, &read.lines);
        }
        let pending = self.buddies.lines.pending.entry(chat.to_string()).or_default();
        for line in read.lines {
            pending.insert(line.seq, line);
        }
        // The log holds nothing at all (expired, or lost with Redis's data): the lines
        // missing below the held ones are in no log; go on from the held ones.
        if read.first.is_none()
            && let Some(lowest) = pending.keys().next().copied()
        {
            self.buddy_skip_to(chat, lowest - 1);
        }
        // A hole in the log below its newest line (a line lost with Redis's data that no
        // claim wrote back) is in no log either: go on from the next line held.
        let next = match self.buddy_standing(chat) {
            Standing::Running { last_seq, .. } | Standing::Ended { last_seq, .. } => last_seq + 1,
            Standing::Unknown => return,
        };
        let Some(pending) = self.buddies.lines.pending.get(chat) else {
            return;
        };
        if read.newest.is_some_and(|newest| next < newest)
            && !pending.contains_key(&next)
            && let Some(held) = pending.range(next..).next().map(|(seq, _)| *seq)
        {
            self.buddy_skip_to(chat, held - 1);
        }
    }

    fn buddy_after_read(&mut self, actions: Vec<AfterRead>) {
        for action in actions {
            match action {
                AfterRead::Welcome { conn, who } => self.buddy_welcome_now(conn, who),
                AfterRead::Close(closing) => {
                    let chat = closing.id.clone();
                    self.archive.push_closing(ArchiveEvent::Closed(closing));
                    let _ = self.buddy_expire_call(chat);
                }
                AfterRead::Rearchive | AfterRead::CatchUp => {}
            }
        }
    }

    /// The replica applied more of the events stream: the lines that waited for it.
    pub(in crate::hub) fn buddy_lines_caught_up(&mut self) {
        if self.buddies.lines.pending.is_empty() {
            return;
        }
        let chats: Vec<String> = self.buddies.lines.pending.keys().cloned().collect();
        for chat in chats {
            self.buddy_drain(&chat, true);
        }
    }

    /// The replica loaded a restore's routing state: lines wait for its buddy list.
    pub(in crate::hub) fn buddy_lines_await_restore(&mut self) {
        self.buddies.lines.restore_due = true;
    }

    /// The restore's buddy list is loaded: lines are judged against it.
    pub(in crate::hub) fn buddy_lines_restored(&mut self) {
        self.buddies.lines.restore_due = false;
        self.buddy_lines_caught_up();
    }

    /// Reads `chat`'s log after `after`; `then` waits for the read. A gap's read (`then`
    /// empty) joins a read under way.
    pub(super) fn buddy_read(&mut self, chat: &str, after: u64, then: Vec<AfterRead>) {
        let reads = self.buddies.lines.reading.entry(chat.to_string()).or_default();
        if then.is_empty() && !reads.is_empty() {
            return;
        }
        reads.push_back(then);
        if !self.buddy_read_call(chat.to_string(), after) {
            // The router's queue is full (Redis slow or away): what waited for this read
            // runs with what this node has.
            let then = self
                .buddies
                .lines
                .reading
                .get_mut(chat)
                .and_then(VecDeque::pop_back)
                .unwrap_or_default();
            if self.buddies.lines.reading.get(chat).is_some_and(VecDeque::is_empty) {
                self.buddies.lines.reading.remove(chat);
            }
            self.buddy_after_read(then);
        }
    }

    /// This node's channel was cut (or every claim is in after Redis lost its data): what
    /// was published meanwhile is in the logs of the chats with a page of a member or the
    /// archive here (running, or recently ended). They are read again, however many,
    /// outside the router's queue (`hub::cluster::rereads`), as the customers' chats are: a
    /// read dropped for a full queue left a missed line waiting for its chat's next line.
    pub(in crate::hub) fn buddy_lines_resync(&mut self) {
        let here = self.buddy_node().unwrap_or("").to_string();
        let mut chats = vec![];
        for ((roster, chat), log) in &self.buddies.chats {
            let members = self.buddies.presence_ref(*roster).chat_members(*chat);
            if members.is_some_and(|m| self.buddy_holds_one(m, &here)) || log.archiver == here {
                chats.push((log.wire_id.clone(), log.transcript.last_seq()));
            }
        }
        let now = self.buddy_applied().ms;
        for (wire, ended) in &self.buddies.lines.ended {
            let recent = now.saturating_sub(ended.at.ms) < RECENT_END_MS;
            if recent && (self.buddy_holds_one(ended.members, &here) || ended.archiver == here) {
                chats.push((wire.clone(), ended.last_seq));
            }
        }
        self.buddy_reread(chats);
    }

    /// What this node holds of each running buddy chat, for its claim after Redis lost its
    /// data (`cluster::buddy_chat_log::claim`): the highest seq, and the latest lines (the
    /// last [`CLAIM_TAIL`] kept and every one held waiting), so that a line stamped just
    /// before the loss, which only some nodes got, is written back to the chat's log.
    pub(in crate::hub) fn buddy_claims(&self) -> Vec<BuddyClaim> {
        let mut claims = vec![];
        for log in self.buddies.chats.values() {
            let chat = &log.wire_id;
            let kept = log.transcript.last_seq();
            let mut lines = kept_lines(chat, &log.transcript, kept.saturating_sub(CLAIM_TAIL));
            if let Some(held) = self.buddies.lines.pending.get(chat) {
                lines.extend(held.values().filter(|l| l.seq > kept).cloned());
            }
            let highest = lines.last().map_or(kept, |l| l.seq.max(kept));
            if highest > 0 {
                claims.push(BuddyClaim {
                    chat: chat.clone(),
                    highest,
                    lines,
                });
            }
        }
        claims
    }

    /// The restored buddy list had more of these chats than this node (`BuddyDesk::load`:
    /// each with the last seq this node had): where this node archives one, the lines it
    /// had not kept go to the archive (which holds each seq once, and would otherwise
    /// wait for them before the chat's next line).
    pub(in crate::hub) fn buddy_archive_gained(&mut self, gained: Vec<(String, u64)>) {
        let here = self.buddy_node().unwrap_or("").to_string();
        for (wire, after) in gained {
            let Some(log) = self
                .buddies
                .chat_by_wire
                .get(&wire)
                .and_then(|key| self.buddies.chats.get(key))
                .filter(|log| log.archiver == here)
            else {
                continue;
            };
            let lines = kept_lines(&wire, &log.transcript, after);
            self.buddy_archive_again(&wire, &lines);
        }
    }

    fn buddy_holds_one(&self, (a, b): (BuddyId, BuddyId), node: &str) -> bool {
        [a, b]
            .iter()
            .any(|m| self.buddies.holders.page_nodes(*m).iter().any(|n| n == node))
    }

    /// A chat ended in the replica (the stream entry being applied ended it): its end is
    /// kept for late lines; the node archiving it reads its log before the closing, and a
    /// node holding a page of a member reads it for the lines it may have missed.
    pub(super) fn buddy_chat_over(
        &mut self,
        members: (BuddyId, BuddyId),
        chat: &BuddyChat,
        closing: ConversationClosed,
    ) {
        let here = self.buddy_node().unwrap_or("").to_string();
        let (wire, last_seq) = (chat.wire_id.clone(), chat.transcript.last_seq());
        let archiving = chat.archiver == here;
        let holding = self.buddy_holds_one(members, &here);
        let at = self.buddy_applied();
        let lines = &mut self.buddies.lines;
        lines.ended.insert(
            wire.clone(),
            Ended {
                members,
                at,
                last_seq,
                archiver: chat.archiver.clone(),
                opened: chat.opened.clone(),
                closing: closing.clone(),
            },
        );
        lines.ended_order.push_back(wire.clone());
        if lines.ended_order.len() > ENDED_KEPT
            && let Some(old) = lines.ended_order.pop_front()
        {
            lines.ended.remove(&old);
            let dropped = lines.pending.remove(&old).unwrap_or_default();
            for line in dropped.into_values() {
                self.buddy_refuse(&line);
            }
        }
        if archiving {
            self.buddy_read(&wire, last_seq, vec![AfterRead::Close(closing)]);
        } else if holding {
            self.buddy_read(&wire, last_seq, vec![AfterRead::CatchUp]);
        } else {
            self.buddy_drain(&wire, true);
        }
    }

    /// A node was lost (made by `heir`): the recently ended chats it archived are archived
    /// again by the heir, closing included (it may have died before its last read).
    pub(super) fn buddy_lines_node_lost(&mut self, lost: &str, heir: &str) {
        let here = self.buddy_node().unwrap_or("").to_string();
        let now = self.buddy_applied().ms;
        let mut again = vec![];
        for (wire, ended) in self.buddies.lines.ended.iter_mut().filter(|(_, e)| e.archiver == lost) {
            ended.archiver = heir.to_string();
            if heir == here && now.saturating_sub(ended.at.ms) < RECENT_END_MS {
                again.push((wire.clone(), ended.opened.clone(), ended.closing.clone()));
            }
        }
        for (wire, opened, closing) in again {
            self.archive.push_opening(ArchiveEvent::Opened(opened));
            self.buddy_read(&wire, 0, vec![AfterRead::Rearchive, AfterRead::Close(closing)]);
        }
    }

    fn buddy_standing(&self, chat: &str) -> Standing {
        if let Some(&(roster, id)) = self.buddies.chat_by_wire.get(chat)
            && let Some(log) = self.buddies.chats.get(&(roster, id))
        {
            return Standing::Running {
                roster,
                chat: id,
                last_seq: log.transcript.last_seq(),
            };
        }
        match self.buddies.lines.ended.get(chat) {
            Some(ended) => Standing::Ended {
                at: ended.at,
                last_seq: ended.last_seq,
            },
            None => Standing::Unknown,
        }
    }

    fn buddy_skip_to(&mut self, chat: &str, seq: u64) {
        if let Some(&key) = self.buddies.chat_by_wire.get(chat)
            && let Some(log) = self.buddies.chats.get_mut(&key)
        {
            log.transcript.skip_to(seq);
        } else if let Some(ended) = self.buddies.lines.ended.get_mut(chat) {
            ended.last_seq = ended.last_seq.max(seq);
        }
    }

    /// Keeps or drops `chat`'s held lines in seq order while the replica can judge them;
    /// at a gap, reads the log if `may_read`.
    fn buddy_drain(&mut self, chat: &str, may_read: bool) {
        if self.buddies.lines.restore_due {
            return;
        }
        let applied = self.buddy_applied();
        loop {
            let standing = self.buddy_standing(chat);
            let Some(lines) = self.buddies.lines.pending.get_mut(chat) else {
                return;
            };
            let (next, at) = match standing {
                Standing::Running { last_seq, .. } => (last_seq + 1, ChatAt::Running),
                Standing::Ended { at, last_seq } => (last_seq + 1, ChatAt::EndedAt(at)),
                Standing::Unknown => {
                    // Not started as far as this replica has applied: wait for it; else a
                    // chat this node does not know (ended long ago): nobody keeps these.
                    let behind = lines
                        .values()
                        .next()
                        .and_then(entry)
                        .is_some_and(|p| verdict(p, applied, ChatAt::Unknown) == Verdict::Wait);
                    if !behind {
                        let lines = self.buddies.lines.pending.remove(chat).unwrap_or_default();
                        for line in lines.into_values() {
                            self.buddy_refuse(&line);
                        }
                    }
                    return;
                }
            };
            // Judged already (kept, dropped or skipped): an own line is answered as it was.
            let mut stale = vec![];
            while lines.first_key_value().is_some_and(|(seq, _)| *seq < next) {
                stale.extend(lines.pop_first().map(|(_, line)| line));
            }
            let line = lines.get(&next).map(|line| (entry(line), line.sender));
            let empty = lines.is_empty();
            for line in stale {
                if let Some((conn, _)) = self.buddies.lines.awaiting.remove(&(line.chat.clone(), line.seq)) {
                    self.buddy_answer_again(conn, &line);
                }
            }
            let Some((p, sender)) = line else {
                if empty {
                    self.buddies.lines.pending.remove(chat);
                } else if may_read {
                    // A line is missing before the held ones: the log has it.
                    self.buddy_read(chat, next - 1, vec![]);
                }
                return;
            };
            let member = self
                .buddy_members(chat)
                .is_some_and(|(a, b)| sender == a.0 || sender == b.0);
            let judged = match p {
                Some(p) if member => verdict(p, applied, at),
                _ => {
                    tracing::error!(
                        chat,
                        seq = next,
                        "a buddy line with no place in the stream or from someone not in its chat"
                    );
                    Verdict::Drop
                }
            };
            let lines = self.buddies.lines.pending.get_mut(chat).expect("held just now");
            match judged {
                Verdict::Wait => return,
                Verdict::Keep => {
                    let line = lines.remove(&next).expect("just seen");
                    self.buddy_keep(line);
                }
                Verdict::Drop => {
                    let line = lines.remove(&next).expect("just seen");
                    // The seq is taken, by a line nobody keeps.
                    self.buddy_skip_to(chat, line.seq);
                    self.buddy_refuse(&line);
                }
            }
        }
    }

    /// The members of a running or recently ended chat, inviter first.
    fn buddy_members(&self, chat: &str) -> Option<(BuddyId, BuddyId)> {
        if let Some(&(roster, id)) = self.buddies.chat_by_wire.get(chat) {
            return self.buddies.presence_ref(roster).chat_members(id);
        }
        self.buddies.lines.ended.get(chat).map(|e| e.members)
    }

    /// A line that belongs to its chat (a member's, next in seq order): recorded (a running
    /// chat), delivered to the members' pages here, archived here if this node archives the
    /// chat, acknowledged and published if this node stamped it.
    fn buddy_keep(&mut self, line: BuddyLine) {
        let here = self.buddy_node().unwrap_or("").to_string();
        let Some((a, b)) = self.buddy_members(&line.chat) else {
            return self.buddy_refuse(&line);
        };
        let author = Author::buddy(line.sender, line.sender == a.0);
        let client_id = line.client_id.as_deref();
        let stamp = stamped(
            line.chat.as_str(),
            line.seq,
            (&line.id, line.at),
            author,
            (line.text.clone(), line.attachments()),
            client_id,
        );
        let (archiver, Stamped { frame, ack, event }) = match self.buddy_standing(&line.chat) {
            Standing::Running { roster, chat, .. } => {
                let log = self.buddies.chats.get_mut(&(roster, chat)).expect("a running chat");
                (log.archiver.clone(), log.transcript.record_stamped(line.seq, stamp))
            }
            Standing::Ended { .. } => {
                let ended = self.buddies.lines.ended.get_mut(&line.chat).expect("an ended chat");
                ended.last_seq = line.seq;
                (ended.archiver.clone(), stamp)
            }
            Standing::Unknown => return self.buddy_refuse(&line),
        };
        let sender = BuddyId(line.sender);
        let peer = if sender == a { b } else { a };
        let archived = if archiver == here {
            self.archive.push_message(event)
        } else {
            None
        };
        let frame = Outbound::Frame(frame);
        self.delivery.deliver(&Recipient::Buddy(peer), &frame);
        match self.buddies.lines.awaiting.remove(&(line.chat.clone(), line.seq)) {
            Some((conn, _)) => {
                self.acknowledge(
                    Recipient::Buddy(sender),
                    SenderCopy::sent_from(conn, ack, frame),
                    archived,
                );
                self.messages_relayed.increment(1);
                let mut nodes: Vec<String> = self.buddies.holders.page_nodes(a);
                nodes.extend(self.buddies.holders.page_nodes(b));
                nodes.push(archiver);
                nodes.sort();
                nodes.dedup();
                nodes.retain(|node| *node != here);
                if !nodes.is_empty() {
                    let _ = self.buddy_publish_call(nodes, line);
                }
            }
            // Sent from a page on another node: the sender's pages here never had its text.
            None => self.delivery.deliver(&Recipient::Buddy(sender), &frame),
        }
    }

    /// A line nobody keeps: its page here, if it was sent from one, is told.
    fn buddy_refuse(&mut self, line: &BuddyLine) {
        if let Some((conn, client_id)) = self.buddies.lines.awaiting.remove(&(line.chat.clone(), line.seq)) {
            self.error_to_conn(conn, "not_in_chat", "you are not in a chat", client_id);
        }
    }

    /// An own line whose seq this node had judged already (a message sent again after
    /// Redis applied the first late, or a line skipped): acknowledged if the line kept at
    /// that seq is this one, else refused.
    fn buddy_answer_again(&mut self, conn: ConnId, line: &BuddyLine) {
        let kept = match self.buddy_standing(&line.chat) {
            Standing::Running { roster, chat, .. } => self
                .buddies
                .chats
                .get(&(roster, chat))
                .and_then(|log| log.transcript.after(line.seq - 1).into_iter().next())
                .is_some_and(|m| m.seq == line.seq && m.id == line.id),
            Standing::Ended { at, .. } => entry(line).is_some_and(|p| p < at),
            Standing::Unknown => false,
        };
        if !kept {
            return self.error_to_conn(conn, "not_in_chat", "you are not in a chat", line.client_id.clone());
        }
        let Stamped { ack, .. } = stamped(
            line.chat.as_str(),
            line.seq,
            (&line.id, line.at),
            Author::buddy(line.sender, false),
            (String::new(), Vec::new()),
            line.client_id.as_deref(),
        );
        self.send_encoded_to_conn(conn, Outbound::Frame(ack));
    }

    /// This node inherited the archive of `chat`: the lines of its log that belong to it
    /// go to the archive again.
    fn buddy_archive_again(&mut self, chat: &str, lines: &[BuddyLine]) {
        let applied = self.buddy_applied();
        let at = match self.buddy_standing(chat) {
            Standing::Running { .. } => ChatAt::Running,
            Standing::Ended { at, .. } => ChatAt::EndedAt(at),
            Standing::Unknown => return,
        };
        let Some((inviter, other)) = self.buddy_members(chat) else {
            return;
        };
        for line in lines {
            let member = line.sender == inviter.0 || line.sender == other.0;
            if !member || entry(line).is_none_or(|p| verdict(p, applied, at) != Verdict::Keep) {
                continue;
            }
            let from = if line.sender == inviter.0 {
                Side::Customer
            } else {
                Side::Agent
            };
            let message = ArchivedMessage {
                attachments: line.attachments(),
                ..ArchivedMessage::plain(line.id.clone(), line.seq, from, line.text.clone(), line.at)
            };
            self.archive.push_message(ArchiveEvent::Message {
                conversation_id: chat.to_string().into(),
                message,
            });
        }
    }

    /// The welcome of a page whose join waited for its chat's log (still `joining` until
    /// now, so a second `buddy_join` on it is refused and a restore closes it).
    fn buddy_welcome_now(&mut self, conn: ConnId, who: BuddyId) {
        if !self.buddies.joining.remove(&conn) {
            // Closed by a restore of the buddy list meanwhile: it joins again.
            return;
        }
        if !self.buddies.people.contains_key(&who) {
            // Gone from the list meanwhile (a restore that does not have them): join again.
            return self.close_conn(conn, 1012, "the buddy list changed; join again");
        }
        if self.conn_role(conn).is_none() {
            // Gone before its welcome: count its close, as any other.
            return self.buddy_submit(BuddyEvent::PageClosed { who: who.0 }, None, None);
        }
        self.set_who(conn, Recipient::Buddy(who));
        let welcome = self.buddy_welcome(who);
        self.send_to_conn(conn, &welcome);
    }
}

/// The lines a transcript keeps of chat `chat` after `after`, as lines of its log. Kept by a
/// replica, each belongs to its chat whatever the stream holds: `p` is the stream's start.
fn kept_lines(chat: &str, transcript: &Transcript, after: u64) -> Vec<BuddyLine> {
    transcript
        .after(after)
        .into_iter()
        .map(|m| BuddyLine {
            chat: chat.to_string(),
            seq: m.seq,
            p: "0-0".to_string(),
            sender: m.sender.unwrap_or_default(),
            id: m.id,
            at: m.at,
            text: m.text,
            client_id: m.client_id,
            files: crate::attachments::files_json(&m.attachments),
        })
        .collect()
}

/// A line's place in the events stream; `None` if unreadable (then nobody keeps it).
fn entry(line: &BuddyLine) -> Option<EntryId> {
    EntryId::parse(&line.p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attachments::AttachmentMeta;

    /// What a node writes back to a chat's log after Redis lost its data keeps a line's
    /// files: read back, the line carries the same ones.
    #[test]
    fn kept_lines_carry_their_files() {
        let file = AttachmentMeta {
            id: "f1".into(),
            name: "shot.png".into(),
            mime: "image/png".into(),
            size: 42,
            thumbnail: true,
        };
        let mut transcript = Transcript::new(10);
        let line = stamped(
            "c",
            1,
            ("m1", 5),
            Author::buddy(7, true),
            ("".into(), vec![file.clone()]),
            None,
        );
        transcript.record_stamped(1, line);
        let plain = stamped("c", 2, ("m2", 6), Author::buddy(8, false), ("hi".into(), vec![]), None);
        transcript.record_stamped(2, plain);
        let lines = kept_lines("c", &transcript, 0);
        assert_eq!(lines[0].attachments(), vec![file]);
        assert_eq!((lines[0].sender, lines[1].files.as_str()), (7, ""));
        let published = serde_json::to_string(&lines[0]).unwrap();
        assert_eq!(serde_json::from_str::<BuddyLine>(&published).unwrap(), lines[0]);
    }
}
