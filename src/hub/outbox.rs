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
//! slots up front). The connection's waker is kept under the queue's lock, stored when
//! the connection finds the queue empty and kept across wake-ups: a spawned task's waker
//! is the same at every poll, so a wake-up costs no registration (an `AtomicWaker`, taken
//! at each wake and stored again at each poll, was a third of the relay thread's user
//! time a message spent outside the socket code over a thousand connections).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use axum::extract::ws::Utf8Bytes;

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
    /// The connection's task, woken when there is something to take; stored by
    /// [`Outbox::take_into`] when it finds nothing, kept until the connection is gone.
    waker: Option<Waker>,
}

impl Queue {
    /// The connection's waker, to wake once the lock is released.
    fn to_wake(&self) -> Option<Waker> {
        self.waker.clone()
    }
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

/// What [`Outbox::take_into`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Took {
    /// Frames (maybe none), and the close to send once they are written.
    Frames(Option<(u16, &'static str)>),
    /// Nothing to do: the waker given is stored, to be woken when there is.
    /// `new_waker`: it is not the one stored before (the first, or the task's changed).
    Nothing { new_waker: bool },
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
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock, but a poisoned queue is still a valid queue.
        crate::poison::lock(&self.queue)
    }

    /// Queues a frame without waiting.
    pub fn push(&self, frame: Utf8Bytes) -> Pushed {
        let mut queue = self.lock();
        if queue.gone || queue.closing || self.is_kicked() {
            return Pushed::Dropped;
        }
        if queue.frames.len() >= self.capacity {
            queue.frames = VecDeque::new();
            self.kicked.store(true, Ordering::Release);
            let waker = queue.to_wake();
            drop(queue);
            wake(waker);
            return Pushed::JustKicked;
        }
        let was_empty = queue.frames.is_empty();
        queue.frames.push_back(frame);
        // A non-empty queue has a wake-up pending already: the connection takes everything at once.
        let waker = if was_empty { queue.to_wake() } else { None };
        drop(queue);
        wake(waker);
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
        let waker = queue.to_wake();
        drop(queue);
        wake(waker);
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

    /// Takes everything queued into `spare` (the connection's own queue, empty), giving the
    /// outbox `spare`'s buffer in exchange: a busy connection's two buffers go back and forth,
    /// so pushing a frame allocates nothing (a fresh queue allocated at each wake-up was two
    /// allocations a relayed message, its frame's and its acknowledgement's). With nothing
    /// to do, `waker` is stored (checked and stored under the lock a push takes, so no
    /// push is missed) and woken by the next push, close or kick.
    pub fn take_into(&self, spare: &mut VecDeque<Utf8Bytes>, waker: &Waker) -> Took {
        debug_assert!(
            spare.is_empty(),
            "a connection takes more only once it wrote what it had"
        );
        let mut queue = self.lock();
        if !queue.frames.is_empty() || queue.close.is_some() {
            std::mem::swap(&mut queue.frames, spare);
            return Took::Frames(queue.close.take());
        }
        let new_waker = !queue.waker.as_ref().is_some_and(|stored| stored.will_wake(waker));
        if new_waker {
            queue.waker = Some(waker.clone());
        }
        drop(queue);
        if new_waker && self.is_kicked() {
            // Kicked before this waker was stored: the kick's wake-up went to the one before
            // (or to none), so this one is woken now and the connection sees the kick.
            waker.wake_by_ref();
        }
        Took::Nothing { new_waker }
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
        queue.waker = None;
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
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
        let waker = Waker::noop();
        assert_eq!(
            outbox.take_into(&mut spare, waker),
            Took::Nothing { new_waker: true },
            "nothing to do"
        );
        outbox.push(frame("a"));
        outbox.push(frame("b"));
        assert_eq!(outbox.take_into(&mut spare, waker), Took::Frames(None));
        assert_eq!(spare, [frame("a"), frame("b")]);
        assert!(
            outbox.lock().frames.capacity() >= 8,
            "the spare's room went to the outbox"
        );
        spare.clear();
        outbox.push(frame("bye"));
        outbox.close(4000, "replaced");
        assert_eq!(
            outbox.take_into(&mut spare, waker),
            Took::Frames(Some((4000, "replaced")))
        );
        assert_eq!(spare, [frame("bye")]);
        outbox.release_buffer(64);
        assert!(outbox.lock().frames.capacity() > 0, "within what may be kept");
        outbox.release_buffer(0);
        assert_eq!(outbox.lock().frames.capacity(), 0, "freed");
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Wakes {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// The waker stored when the connection found nothing is woken by the first push, close
    /// or kick after, and stays stored: it is not given again at each wake-up.
    #[test]
    fn the_waker_stored_once_is_woken_by_each_first_push() {
        let outbox = Outbox::new(2);
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut spare = VecDeque::new();
        assert_eq!(outbox.take_into(&mut spare, &waker), Took::Nothing { new_waker: true });
        outbox.push(frame("a"));
        outbox.push(frame("b"));
        assert_eq!(wakes.count(), 1, "one wake-up for what one take gets");
        assert_eq!(outbox.take_into(&mut spare, &waker), Took::Frames(None));
        spare.clear();
        assert_eq!(
            outbox.take_into(&mut spare, &waker),
            Took::Nothing { new_waker: false },
            "the same waker is not stored again"
        );
        outbox.push(frame("c"));
        assert_eq!(wakes.count(), 2, "woken without being given again");
        outbox.push(frame("d"));
        assert_eq!(outbox.push(frame("e")), Pushed::JustKicked);
        assert_eq!(wakes.count(), 3, "the kick wakes it");
        let closing = Outbox::new(2);
        assert!(matches!(closing.take_into(&mut spare, &waker), Took::Nothing { .. }));
        closing.close(4000, "replaced");
        assert_eq!(wakes.count(), 4, "a close wakes it");
        closing.shut();
        assert!(closing.lock().waker.is_none(), "a gone connection's waker is let go");
    }

    /// A kick before the connection first stored its waker had no one to wake: storing it
    /// wakes it, so the connection sees the kick.
    #[test]
    fn a_kick_before_the_waker_is_stored_wakes_it_when_stored() {
        let outbox = Outbox::new(1);
        outbox.push(frame("a"));
        assert_eq!(outbox.push(frame("b")), Pushed::JustKicked);
        let wakes = Arc::new(Wakes::default());
        let mut spare = VecDeque::new();
        assert_eq!(
            outbox.take_into(&mut spare, &Waker::from(wakes.clone())),
            Took::Nothing { new_waker: true }
        );
        assert_eq!(wakes.count(), 1);
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
