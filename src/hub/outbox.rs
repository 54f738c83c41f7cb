//! The queue of encoded frames from the hub to one connection.
//!
//! The hub never waits on a connection: it pushes frames and moves on. The
//! connection's task takes the whole queue at each wake-up and writes it in one
//! go, so a burst costs one write to the socket. The queue is bounded: a client
//! that stops reading fills it and is kicked (closed with 1008) rather than
//! allowed to grow the hub's memory.
//!
//! Lighter than a channel on purpose: idle connections are most connections,
//! and an empty outbox is one small allocation (a channel allocates a block of
//! slots up front). A waker is stored only while the connection's task waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;

use crate::protocol::{ClientFrame, MessageFrame};

/// Identifies one websocket connection for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A running chat as the outbox of one of its sides' connections knows it: what the
/// connection needs to relay a message itself (the direct path). The live chat
/// (`live_chat::LiveChat`) is the one implementation; the outbox holds it as this trait
/// because the chat, in turn, holds its sides' outboxes.
pub trait DirectChat: Send + Sync + std::fmt::Debug {
    /// The id frames name the chat by.
    fn wire_id(&self) -> &str;
    /// A side's connection went: the chat is suspended until the hub resumes it.
    fn connection_gone(self: Arc<Self>);
    /// A frame from connection `from` (this `outbox`'s) for the chat: relayed here when
    /// the chat allows it, else handed back for the hub.
    fn relay(&self, from: ConnId, outbox: &Outbox, message: MessageFrame<'_>) -> Relayed;
}

/// What the direct path did with a frame.
pub enum Relayed {
    Done,
    /// Hand it to the hub.
    ToHub(ClientFrame),
}

/// One connection's outbox; shared by the hub (which pushes) and the connection (which takes).
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    /// Set once the outbox overflowed; checked without the lock on every wake-up.
    kicked: AtomicBool,
    /// The connection's frames handed to the hub and not yet handled by it: while any
    /// waits, its messages do not take the direct path (`live_chat::may_relay`).
    at_hub: AtomicU32,
    waker: AtomicWaker,
    /// Frames held at most before the connection is kicked (`OUTBOUND_BUFFER`).
    capacity: usize,
}

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Utf8Bytes>,
    /// Send this close frame once `frames` are written; nothing pushed after it is kept.
    close: Option<(u16, &'static str)>,
    closing: bool,
    /// The connection's task has ended: pushes are dropped.
    gone: bool,
    /// The running chats this connection is a side of, as the hub last resumed them
    /// (`live_chat`): its messages to them take the direct path. Empty for nearly all.
    chats: Vec<Arc<dyn DirectChat>>,
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The outbox was full: the connection is kicked and this frame dropped.
    JustKicked,
    /// Dropped: the connection was kicked, is closing, or is gone.
    Dropped,
}

/// What the connection takes at one wake-up.
#[derive(Debug, Default)]
pub struct Taken {
    pub frames: VecDeque<Utf8Bytes>,
    /// Close with this code and reason after writing `frames`.
    pub close: Option<(u16, &'static str)>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::default(),
            kicked: AtomicBool::new(false),
            at_hub: AtomicU32::new(0),
            waker: AtomicWaker::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock, but a poisoned queue is still a valid queue.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a frame without waiting.
    pub fn push(&self, frame: Utf8Bytes) -> Pushed {
        let mut queue = self.lock();
        if queue.gone || queue.closing || self.is_kicked() {
            return Pushed::Dropped;
        }
        if queue.frames.len() >= self.capacity {
            queue.frames = VecDeque::new();
            drop(queue);
            self.kicked.store(true, Ordering::Release);
            self.waker.wake();
            return Pushed::JustKicked;
        }
        let was_empty = queue.frames.is_empty();
        queue.frames.push_back(frame);
        drop(queue);
        // A non-empty queue has a wake-up pending already: the connection takes everything at once.
        if was_empty {
            self.waker.wake();
        }
        Pushed::Queued
    }

    /// May a bot's line be queued now ([`crate::core::bot_lines::bot_line_fits`])?
    pub fn has_room_for_a_bot_line(&self) -> bool {
        crate::core::bot_lines::bot_line_fits(self.lock().frames.len(), self.capacity)
    }

    /// Asks for a close frame after what is queued; later pushes are dropped.
    pub fn close(&self, code: u16, reason: &'static str) {
        let mut queue = self.lock();
        if queue.gone || queue.closing {
            return;
        }
        queue.closing = true;
        queue.close = Some((code, reason));
        drop(queue);
        self.waker.wake();
    }

    /// The connection hands the hub a frame.
    pub fn sent_to_hub(&self) {
        self.at_hub.fetch_add(1, Ordering::AcqRel);
    }

    /// The hub handled one of the connection's frames.
    pub fn handled_by_hub(&self) {
        self.at_hub.fetch_sub(1, Ordering::AcqRel);
    }

    /// How many of the connection's frames wait in the hub's queue.
    pub fn frames_at_hub(&self) -> u32 {
        self.at_hub.load(Ordering::Acquire)
    }

    /// The connection is now a side of `chat` (called under the chat's lock).
    pub fn know_chat(&self, chat: Arc<dyn DirectChat>) {
        let mut queue = self.lock();
        if !queue.gone && !queue.chats.iter().any(|c| same_chat(c, &*chat)) {
            queue.chats.push(chat);
        }
    }

    /// The connection is no longer a side of `chat` (called under the chat's lock).
    pub fn forget_chat(&self, chat: &dyn DirectChat) {
        self.lock().chats.retain(|c| !same_chat(c, chat));
    }

    /// The chats this connection was a side of, forgotten (it is detached from them).
    pub fn take_chats(&self) -> Vec<Arc<dyn DirectChat>> {
        std::mem::take(&mut self.lock().chats)
    }

    /// The running chat a message is for, if the connection is a side of it: the one named
    /// by `chat_id`, else the connection's only chat (a customer's frames need not name
    /// it; an agent's that do not name it are refused by the hub, through `LiveChat::relay`).
    pub fn chat_for(&self, message: &MessageFrame<'_>) -> Option<Arc<dyn DirectChat>> {
        let named = message.chat_id;
        let queue = self.lock();
        let named = named.and_then(|wire| queue.chats.iter().find(|c| c.wire_id() == wire));
        match named {
            Some(chat) => Some(chat.clone()),
            None if queue.chats.len() == 1 => queue.chats.first().cloned(),
            None => None,
        }
    }

    pub fn is_kicked(&self) -> bool {
        self.kicked.load(Ordering::Acquire)
    }

    /// Registers the connection task's waker; call before checking for work.
    pub fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Takes everything queued into `spare` (the connection's own queue, empty), giving the
    /// outbox `spare`'s buffer in exchange: a busy connection's two buffers go back and forth,
    /// so pushing a frame allocates nothing (a fresh queue allocated at each wake-up was two
    /// allocations a relayed message, its frame's and its acknowledgement's). `None` when
    /// there is nothing to do; else the close to send once the frames are written.
    pub fn take_into(&self, spare: &mut VecDeque<Utf8Bytes>) -> Option<Option<(u16, &'static str)>> {
        debug_assert!(
            spare.is_empty(),
            "a connection takes more only once it wrote what it had"
        );
        let mut queue = self.lock();
        if queue.frames.is_empty() && queue.close.is_none() {
            return None;
        }
        std::mem::swap(&mut queue.frames, spare);
        Some(queue.close.take())
    }

    /// Frees the queue's buffer if it is empty and holds more than `keep` slots (0: any).
    pub fn release_buffer(&self, keep: usize) {
        let mut queue = self.lock();
        if queue.frames.is_empty() && queue.frames.capacity() > keep {
            queue.frames = VecDeque::new();
        }
    }

    /// Takes everything queued, or `None` when there is nothing to do.
    pub fn take(&self) -> Option<Taken> {
        let mut queue = self.lock();
        if queue.frames.is_empty() && queue.close.is_none() {
            return None;
        }
        Some(Taken {
            frames: std::mem::take(&mut queue.frames),
            close: queue.close.take(),
        })
    }

    /// The connection's task has ended: drop what is queued and whatever comes later.
    pub fn shut(&self) {
        let mut queue = self.lock();
        queue.gone = true;
        queue.frames = VecDeque::new();
        queue.chats = Vec::new();
    }
}

/// The same chat: compared by address (the data part; vtables may differ between codegen units).
fn same_chat(known: &Arc<dyn DirectChat>, chat: &dyn DirectChat) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(known), chat as *const dyn DirectChat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &'static str) -> Utf8Bytes {
        Utf8Bytes::from_static(s)
    }

    /// The connection's queue and the outbox's trade buffers: frames come out in order, the
    /// outbox keeps the spare's room (no allocation at the next push), and an empty buffer
    /// is freed on request.
    #[test]
    fn taking_into_a_spare_trades_buffers_and_keeps_the_order() {
        let outbox = Outbox::new(64);
        let mut spare: VecDeque<Utf8Bytes> = VecDeque::with_capacity(8);
        assert!(outbox.take_into(&mut spare).is_none(), "nothing to do");
        outbox.push(frame("a"));
        outbox.push(frame("b"));
        assert_eq!(outbox.take_into(&mut spare), Some(None));
        assert_eq!(spare, [frame("a"), frame("b")]);
        assert!(
            outbox.lock().frames.capacity() >= 8,
            "the spare's room went to the outbox"
        );
        spare.clear();
        outbox.push(frame("bye"));
        outbox.close(4000, "replaced");
        assert_eq!(outbox.take_into(&mut spare), Some(Some((4000, "replaced"))));
        assert_eq!(spare, [frame("bye")]);
        outbox.release_buffer(64);
        assert!(outbox.lock().frames.capacity() > 0, "within what may be kept");
        outbox.release_buffer(0);
        assert_eq!(outbox.lock().frames.capacity(), 0, "freed");
    }

    #[test]
    fn frames_come_out_in_order_and_all_at_once() {
        let outbox = Outbox::new(4);
        assert_eq!(outbox.push(frame("a")), Pushed::Queued);
        assert_eq!(outbox.push(frame("b")), Pushed::Queued);
        let taken = outbox.take().expect("two frames");
        assert_eq!(taken.frames, [frame("a"), frame("b")]);
        assert!(taken.close.is_none());
        assert!(outbox.take().is_none());
    }

    #[test]
    fn a_full_outbox_kicks_its_connection_and_keeps_nothing() {
        let outbox = Outbox::new(2);
        outbox.push(frame("a"));
        outbox.push(frame("b"));
        assert_eq!(outbox.push(frame("c")), Pushed::JustKicked);
        assert!(outbox.is_kicked());
        assert_eq!(outbox.push(frame("d")), Pushed::Dropped);
        assert!(outbox.take().is_none(), "a kicked connection writes nothing more");
    }

    #[test]
    fn a_close_follows_the_frames_before_it_and_ends_the_queue() {
        let outbox = Outbox::new(4);
        outbox.push(frame("bye"));
        outbox.close(4000, "replaced");
        assert_eq!(outbox.push(frame("late")), Pushed::Dropped);
        let taken = outbox.take().expect("a frame and a close");
        assert_eq!(taken.frames, [frame("bye")]);
        assert_eq!(taken.close, Some((4000, "replaced")));
        assert!(outbox.take().is_none());
    }

    #[test]
    fn a_gone_connection_takes_no_more_frames() {
        let outbox = Outbox::new(4);
        outbox.push(frame("a"));
        outbox.shut();
        assert_eq!(outbox.push(frame("b")), Pushed::Dropped);
        assert!(outbox.take().is_none());
    }
}
