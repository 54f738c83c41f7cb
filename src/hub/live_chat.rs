//! The direct path: a running chat's messages stamped, relayed, archived and
//! acknowledged on the sending connection's own task, not on the hub task.
//!
//! Each customer–agent chat of a single node has a [`LiveChat`]: its transcript (so
//! its seq) and, while the chat is *direct*, the connections of its two sides, all
//! under one lock. A connection that knows the chat (its outbox lists it) and is one
//! of a side's connections takes the lock, stamps its message, hands it to the archive
//! and to the other side's outboxes, and queues its own acknowledgement in the
//! [`AckQueue`] — never waiting for the hub task, so a node's chats use all its cores.
//!
//! The hub task stays the owner of everything else. Whenever it must see or change a
//! chat (a snapshot for a welcome or resume, a connection attached or gone, a transfer,
//! the end) it *suspends* the chat first ([`LiveChat::line`]): under the lock, so every
//! message stamped before is already in the transcript and the outboxes, and every
//! later one goes through the hub's queue, behind what the hub is doing. At the end of
//! its batch the hub [`resumes`](LiveChat::resume) the chat with the sides' connections
//! as its delivery table then says.
//!
//! Invariants (see [`may_relay`], the rule, and its property test):
//! - one chat's messages are stamped in one order (one lock), which both sides see;
//! - one connection's frames keep their order: while any of them waits in the hub's
//!   queue (its outbox counts them), its messages go there too;
//! - only a connection the hub counted as a side's at the last resume may relay
//!   (a connection taken over or detached falls back to the hub, which refuses it).
//!
//! Not here: clusters (a chat's seq comes from its log in Redis, so every message goes
//! through the hub task's router), buddy chats, typing and drafts (always the hub's).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use smallvec::SmallVec;
use tokio::sync::watch;

use super::delivery::{ConnHandle, Outbound, SenderCopy};
use super::outbox::{ConnId, DirectChat, Outbox, Relayed};
use super::transcript::{Author, Stamped, Transcript};
use crate::archive::{Archive, Progress};
use crate::core::routing::ChatId;
use crate::poison::lock;
use crate::protocol::MessageFrame;
use crate::store::ArchiveEvent;

/// Why a message's text is refused before it is stamped (length, blank), if it is.
pub fn text_refusal(text: &str, max_chars: usize) -> Option<(&'static str, String)> {
    crate::core::attachments::text_refusal(text, max_chars, false)
}

/// The rule of the direct path, pure: a message may skip the hub when its chat is direct
/// and none of its connection's earlier frames waits in the hub's queue (so a
/// connection's frames are handled in the order it sent them, whichever way each goes).
pub fn may_relay(chat_direct: bool, frames_at_hub: u32) -> bool {
    chat_direct && frames_at_hub == 0
}

/// What the direct path shares across chats: the archive, the acknowledgements waiting
/// on it, the chats the hub suspended since its last batch. One per hub.
pub struct Shared {
    archive: Archive,
    pub acks: AckQueue,
    max_message_chars: usize,
    relayed: metrics::Counter,
    /// Changes of who may speak for whom (a session revoked, an account changed) asked of
    /// the hub and not yet applied: while any is, every message goes through the hub.
    pauses: Arc<AtomicU32>,
    /// Chats suspended since the hub last resumed them (pushed when one stops being direct).
    /// Weak: a chat holds this, and the archive handle here must go when the hub does.
    suspended: Mutex<Vec<Weak<LiveChat>>>,
}

impl Shared {
    pub fn new(
        archive: Archive,
        max_message_chars: usize,
        relayed: metrics::Counter,
        pauses: Arc<AtomicU32>,
    ) -> Arc<Self> {
        Arc::new(Self {
            acks: AckQueue::new(archive.progress.clone()),
            archive,
            max_message_chars,
            relayed,
            pauses,
            suspended: Mutex::default(),
        })
    }

    fn paused(&self) -> bool {
        self.pauses.load(Ordering::Acquire) > 0
    }

    /// The chats suspended since the last call, for the hub to resume.
    pub fn take_suspended(&self) -> Vec<Arc<LiveChat>> {
        let suspended = std::mem::take(&mut *lock(&self.suspended));
        suspended.iter().filter_map(Weak::upgrade).collect()
    }
}

/// The direct path paused while it lives: carried by a command that changes who may
/// speak for whom, dropped once the hub applied it (or if it was never sent).
pub struct DirectPause(Arc<AtomicU32>);

impl DirectPause {
    pub fn new(pauses: &Arc<AtomicU32>) -> Self {
        pauses.fetch_add(1, Ordering::AcqRel);
        Self(pauses.clone())
    }
}

impl Drop for DirectPause {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for DirectPause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectPause")
    }
}

/// A chat as the direct path sees it.
pub struct LiveChat {
    pub chat: ChatId,
    /// Shared with every message's archive event, which would otherwise copy it.
    pub wire_id: Arc<str>,
    shared: Arc<Shared>,
    line: Mutex<Line>,
}

/// A chat's state under its lock.
pub struct Line {
    pub transcript: Transcript,
    /// The hub resumed the chat and has not suspended it since.
    direct: bool,
    /// Each side's connections as of the last resume; used only while the chat is direct.
    customer: SmallVec<[ConnHandle; 1]>,
    agent: SmallVec<[ConnHandle; 1]>,
    /// Its conversation is parked (pending, snoozed, resolved) as last told: the customer's
    /// next line goes through the hub, which opens it again. One flag read under the lock
    /// the relay holds anyway: the per-message cost of reopening.
    parked: bool,
    /// The version of the conversation's record that set `parked`: news older than it
    /// (reordered across nodes) changes nothing.
    status_version: u64,
    /// When the customer's last line recorded here was stamped (ms since the epoch): news
    /// of a park that comes after it opens the conversation again if the line came after
    /// the park (`status_told`).
    customer_line_at: Option<i64>,
}

impl LiveChat {
    /// A chat just recorded by the hub: suspended until the hub's batch ends.
    pub fn new(chat: ChatId, wire_id: Arc<str>, transcript: Transcript, shared: &Arc<Shared>) -> Arc<Self> {
        let live = Arc::new(Self {
            chat,
            wire_id,
            shared: shared.clone(),
            line: Mutex::new(Line {
                transcript,
                direct: false,
                customer: SmallVec::new(),
                agent: SmallVec::new(),
                parked: false,
                status_version: 0,
                customer_line_at: None,
            }),
        });
        lock(&shared.suspended).push(Arc::downgrade(&live));
        live
    }

    /// The chat's line for the hub task, which now owns it: suspended until the batch ends.
    pub fn line(self: &Arc<Self>) -> MutexGuard<'_, Line> {
        let mut line = lock(&self.line);
        if std::mem::replace(&mut line.direct, false) {
            lock(&self.shared.suspended).push(Arc::downgrade(self));
        }
        line
    }

    /// The seq of the chat's last message (the hub owns the chat now).
    pub fn last_seq(self: &Arc<Self>) -> u64 {
        self.line().transcript.last_seq()
    }

    /// The kept messages after `seq` (the hub owns the chat now).
    pub fn after(self: &Arc<Self>, seq: u64) -> Vec<crate::protocol::ChatMessage> {
        self.line().transcript.after(seq)
    }

    /// The kept messages as archive events (the hub owns the chat now).
    pub fn archive_events(self: &Arc<Self>) -> Vec<crate::store::ArchiveEvent> {
        self.line().transcript.archive_events()
    }

    /// Goes on after `seq` (`Transcript::skip_to`; the hub owns the chat now).
    pub fn skip_to(self: &Arc<Self>, seq: u64) {
        self.line().transcript.skip_to(seq);
    }

    /// The chat's line for the hub's own relay of a message, which changes nobody's
    /// connections: the chat stays direct if it was.
    pub fn line_for_relay(&self) -> MutexGuard<'_, Line> {
        lock(&self.line)
    }

    /// Suspends the chat (a side's connection came or went).
    pub fn suspend(self: &Arc<Self>) {
        drop(self.line());
    }

    /// Asks the hub to resume the chat at the end of its batch (it is among the running
    /// chats again).
    pub fn resume_later(self: &Arc<Self>) {
        lock(&self.shared.suspended).push(Arc::downgrade(self));
    }

    /// The hub is done with the chat for now: it is direct again, between these connections.
    pub fn resume(self: &Arc<Self>, customer: &[ConnHandle], agent: &[ConnHandle]) {
        let mut line = lock(&self.line);
        let line = &mut *line;
        let before: SmallVec<[ConnHandle; 2]> = line.customer.drain(..).chain(line.agent.drain(..)).collect();
        line.customer.extend(customer.iter().cloned());
        line.agent.extend(agent.iter().cloned());
        for gone in before
            .iter()
            .filter(|c| !customer.iter().chain(agent).any(|n| n.id == c.id))
        {
            gone.outbox.forget_chat(&**self);
        }
        for new in customer.iter().chain(agent) {
            new.outbox.know_chat(self.clone());
        }
        line.direct = true;
    }

    /// Its conversation's record at `version` says it is `parked` (not open) since `since`,
    /// or not; news of an older version than the last told is ignored. Heard after a
    /// customer's line that came after the park (a node learns a status late: its read, or
    /// the bus, behind the line): that line's time, for the caller to open it again with,
    /// once (it is not parked from now on). The chat stays direct.
    pub fn status_told(&self, version: u64, parked: bool, since: i64) -> Option<i64> {
        let mut line = lock(&self.line);
        if version <= line.status_version {
            return None;
        }
        line.status_version = version;
        let opened_by = parked
            .then(|| crate::core::conversation::line_opens_what_it_heard_of_late(since, line.customer_line_at))
            .flatten();
        line.parked = parked && opened_by.is_none();
        opened_by
    }

    /// A customer's line stamped at `at` went in: whether its conversation was parked (it
    /// is not from now on; the caller opens it again, once).
    pub fn customer_wrote(&self, at: i64) -> bool {
        let mut line = lock(&self.line);
        line.customer_line_at = line.customer_line_at.max(Some(at));
        std::mem::take(&mut line.parked)
    }

    /// The chat left this node's running chats (it ended, or waits in a line after a
    /// transfer): its messages go through the hub, and its connections forget it. Only
    /// the hub resumes it, if it is running again.
    pub fn withdraw(&self) {
        let mut guard = lock(&self.line);
        let line = &mut *guard;
        line.direct = false;
        for conn in line.customer.drain(..).chain(line.agent.drain(..)) {
            conn.outbox.forget_chat(self);
        }
    }
}

/// The direct path: a side's connection relays a message itself, under the chat's lock.
impl DirectChat for LiveChat {
    fn wire_id(&self) -> &str {
        &self.wire_id
    }

    fn connection_gone(self: Arc<Self>) {
        self.suspend();
    }

    /// A frame from connection `from` (its `outbox`) for this chat: a message relayed here
    /// if [`may_relay`] and `from` is one of a side's connections, else handed back for the hub.
    fn relay(&self, from: ConnId, outbox: &Outbox, message: MessageFrame<'_>) -> Relayed {
        let mut line = lock(&self.line);
        // The side `from` speaks for: the customer (true) or the agent (false).
        let from_customer = if line.customer.iter().any(|c| c.id == from) {
            Some(true)
        } else if line.agent.iter().any(|c| c.id == from) {
            Some(false)
        } else {
            None
        };
        let text_ok = |text: &str| text_refusal(text, self.shared.max_message_chars).is_none();
        // An agent names the chat; a customer's frame is for their only chat, named or not.
        let named_here = |chat_id: Option<&str>| from_customer == Some(true) || chat_id == Some(&*self.wire_id);
        let from_customer = match from_customer {
            Some(from_customer)
                if may_relay(line.direct && !self.shared.paused(), outbox.frames_at_hub())
                // A customer's line into a parked conversation opens it: the hub's to do.
                && !(from_customer && line.parked)
                && named_here(message.chat_id)
                && text_ok(&message.text)
                // Files are checked against their uploads by the hub.
                && message.attachments.is_empty() =>
            {
                from_customer
            }
            // Anything else, or a refusal, is the hub's to answer, in order.
            _ => return Relayed::ToHub(message.into_owned()),
        };
        // Room in the archive is taken before the stamp: a stamped message is queued.
        let Some(room) = self.shared.archive.try_reserve_message() else {
            return Relayed::ToHub(message.into_owned());
        };
        let author = if from_customer { Author::CUSTOMER } else { Author::AGENT };
        let Stamped { frame, ack, event } = line.transcript.record(
            self.wire_id.clone(),
            author,
            message.text.into_owned(),
            message.client_id,
        );
        if from_customer && let ArchiveEvent::Message { message, .. } = &event {
            // Its stamp, for news of a park that comes after this line (`status_told`).
            line.customer_line_at = Some(message.at);
        }
        let archived = room.push(event);
        let line = &*line;
        let (senders, peers) = if from_customer {
            (&line.customer, &line.agent)
        } else {
            (&line.agent, &line.customer)
        };
        let frame = Outbound::Frame(frame);
        for peer in peers {
            peer.send(frame.clone());
        }
        self.shared
            .acks
            .acknowledge(archived, senders, SenderCopy::sent_from(from, ack, frame));
        self.shared.relayed.increment(1);
        Relayed::Done
    }
}

impl std::fmt::Debug for LiveChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveChat")
            .field("chat", &self.chat.0)
            .field("wire_id", &self.wire_id)
            .finish()
    }
}

/// A sender's copy held for the archive, and the connections it goes to.
type HeldAck = (SmallVec<[ConnHandle; 1]>, SenderCopy);

/// Senders' copies of messages waiting for the archive to commit them, by archive seq.
/// Pushed by the hub and by connections; released by the hub when the archive moves on.
pub struct AckQueue {
    progress: watch::Receiver<Progress>,
    /// In archive seq order. Almost always one connection each: inline, so holding an ack
    /// allocates nothing. Seqs are drawn in order and pushed almost in order (several
    /// connections stamp at once), so an insertion lands at or near the back.
    pending: Mutex<VecDeque<(u64, HeldAck)>>,
}

impl AckQueue {
    fn new(progress: watch::Receiver<Progress>) -> Self {
        Self {
            progress,
            pending: Mutex::default(),
        }
    }

    /// The sender's copy goes out once the message is durable (archive seq `archived`;
    /// `None`: nothing to wait for), to the sender's connections of now: the chat may end
    /// (and its connections go) before the commit.
    pub fn acknowledge(&self, archived: Option<u64>, conns: &[ConnHandle], copy: SenderCopy) {
        // Under the queue's lock: a release that read an older progress is either before
        // this (and this sees the newer one) or after (and sends what this queues).
        let mut pending = lock(&self.pending);
        match archived {
            Some(seq) if seq > self.progress.borrow().committed => {
                let at = pending.iter().rposition(|(held, _)| *held < seq).map_or(0, |i| i + 1);
                pending.insert(at, (seq, (conns.iter().cloned().collect(), copy)));
            }
            _ => {
                drop(pending);
                copy.send_to(conns);
            }
        }
    }

    /// Sends the acknowledgements the archive's progress now allows.
    pub fn release(&self) {
        // Sent under the queue's lock (an outbox's push never comes back here): no list of
        // the released is built, and they go out in seq order.
        let mut pending = lock(&self.pending);
        let committed = self.progress.borrow().committed;
        while pending.front().is_some_and(|(seq, _)| *seq <= committed) {
            if let Some((_, (conns, copy))) = pending.pop_front() {
                copy.send_to(&conns);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use proptest::prelude::*;

    fn conn(id: u64) -> ConnHandle {
        ConnHandle {
            id: ConnId(id),
            outbox: Arc::new(Outbox::new(64)),
        }
    }

    fn message(text: &str) -> MessageFrame<'_> {
        MessageFrame::new(Some("w1"), text, None)
    }

    /// A direct chat between customer connection 1 and agent connection 2, over an
    /// archive of `capacity` events.
    fn direct_chat(capacity: usize) -> (Arc<LiveChat>, ConnHandle, ConnHandle, Arc<AtomicU32>, Archive) {
        let (archive, _writer) = Archive::start(Arc::new(MemoryStore::new()), capacity, None).expect("no spool");
        let pauses = Arc::new(AtomicU32::new(0));
        let shared = Shared::new(archive.clone(), 100, metrics::Counter::noop(), pauses.clone());
        let live = LiveChat::new(ChatId(1), "w1".into(), Transcript::new(10), &shared);
        let (customer, agent) = (conn(1), conn(2));
        live.resume(std::slice::from_ref(&customer), std::slice::from_ref(&agent));
        (live, customer, agent, pauses, archive)
    }

    fn relayed(live: &LiveChat, from: &ConnHandle, text: &str) -> bool {
        matches!(live.relay(from.id, &from.outbox, message(text)), Relayed::Done)
    }

    /// Only a side's connection of the last resume relays, and not while the chat is
    /// suspended, a change of who may speak for whom is pending, or the connection has
    /// frames waiting in the hub's queue.
    #[tokio::test]
    async fn only_a_sides_connection_relays_and_only_while_nothing_is_pending() {
        let (live, customer, agent, pauses, _archive) = direct_chat(100);
        assert!(relayed(&live, &customer, "hi"));
        assert!(relayed(&live, &agent, "hello"));
        assert_eq!(live.last_seq(), 2, "stamped; and `last_seq` suspends the chat");
        assert!(!relayed(&live, &customer, "suspended"));
        live.resume(std::slice::from_ref(&customer), std::slice::from_ref(&agent));
        assert!(!relayed(&live, &conn(3), "a stranger"));
        let pause = DirectPause::new(&pauses);
        assert!(!relayed(&live, &agent, "a revoked session's?"));
        drop(pause);
        assert!(relayed(&live, &agent, "applied"));
        customer.outbox.sent_to_hub();
        assert!(!relayed(&live, &customer, "behind an earlier frame"));
        customer.outbox.handled_by_hub();
        assert!(relayed(&live, &customer, "in order"));
        // A parked conversation: the customer's lines go to the hub (which opens it), the
        // agent's stay direct; news older than the last told changes nothing.
        assert_eq!(live.status_told(3, true, i64::MAX), None, "parked after every line");
        assert_eq!(live.status_told(2, false, 0), None);
        assert!(!relayed(&live, &customer, "back from pending"));
        assert!(relayed(&live, &agent, "still direct"));
        assert!(live.customer_wrote(10) && !live.customer_wrote(11), "opened once");
        assert!(relayed(&live, &customer, "open again"));
        // News of a park since before that line, heard after it: the line opens it again
        // (the caller is handed its time), once, and the chat stays direct.
        assert!(live.status_told(4, true, 11).is_some());
        assert_eq!(live.status_told(5, true, i64::MAX), None, "parked after the line");
        assert!(!relayed(&live, &customer, "into the newer park"));
        // Withdrawn (ended): never again, and the connections forget the chat.
        live.withdraw();
        assert!(!relayed(&live, &customer, "after the end"));
        assert!(customer.outbox.chat_for(&message("x")).is_none());
    }

    /// Room in the archive is taken before the stamp: when there is none, the message is
    /// handed to the hub unstamped, and a reservation not used is given back.
    #[tokio::test]
    async fn a_message_is_stamped_only_with_room_taken_for_it() {
        let (live, customer, _agent, _pauses, archive) = direct_chat(1);
        let taken = archive.try_reserve_message().expect("one slot");
        assert!(!relayed(&live, &customer, "no room"));
        assert_eq!(lock(&live.line).transcript.last_seq(), 0, "nothing stamped");
        drop(taken);
        assert!(relayed(&live, &customer, "room again"));
        assert_eq!(lock(&live.line).transcript.last_seq(), 1);
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// The connection sends a frame: a message (relayed here if the rule allows) or
        /// another frame (always the hub's).
        Send {
            message: bool,
        },
        /// The hub takes the oldest frame it was handed.
        HubTakes,
        /// The hub suspends the chat (it works on it) or resumes it (its batch is done).
        Suspend,
        Resume,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => any::<bool>().prop_map(|message| Step::Send { message }),
            3 => Just(Step::HubTakes),
            1 => Just(Step::Suspend),
            2 => Just(Step::Resume),
        ]
    }

    proptest! {
        /// Whatever the hub does, a connection's frames are handled in the order it sent
        /// them (the direct path never overtakes a frame waiting in the hub's queue),
        /// nothing relays directly while the chat is suspended, and each frame is handled once.
        #[test]
        fn a_connections_frames_are_handled_in_the_order_sent(steps in prop::collection::vec(step(), 1..200)) {
            let mut direct = false;
            let mut hub_queue = std::collections::VecDeque::new();
            let mut handled = vec![];
            let mut sent = 0u32;
            for step in steps {
                match step {
                    Step::Send { message } => {
                        sent += 1;
                        if message && may_relay(direct, hub_queue.len() as u32) {
                            prop_assert!(direct);
                            handled.push(sent);
                        } else {
                            hub_queue.push_back(sent);
                        }
                    }
                    Step::HubTakes => handled.extend(hub_queue.pop_front()),
                    Step::Suspend => direct = false,
                    Step::Resume => direct = true,
                }
            }
            handled.extend(hub_queue.drain(..));
            prop_assert_eq!(handled, (1..=sent).collect::<Vec<_>>());
        }
    }
}
