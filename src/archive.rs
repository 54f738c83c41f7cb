//! The archive writer: every conversation event goes through a bounded buffer
//! to the store, in batches, retried with backoff while the store is down.
//!
//! The hub never waits on the database. It hands events to the `push_*` methods;
//! one task drains them in batches (one store call per batch, which is how
//! archiving keeps up with the relay) and retries a failed batch until it is
//! written, so an outage delays the archive but loses nothing. Retrying is safe
//! because every event carries its natural id and stores apply them
//! idempotently. What the buffer may still take is kept by [`room::Room`]: when it
//! is full the hub refuses new chat messages (the sender gets an error, so nothing
//! acknowledged is ever dropped) and opens no new conversation (customers stay
//! queued), but a conversation's closing always fits, in the slot reserved for it
//! when it opened. Refusals are counted and reported loudly in the log and on the
//! health endpoints.
//!
//! Every event gets a sequence number, and the writer publishes how far events
//! are durable ([`Progress`]). The hub holds a sender's acknowledgement of a
//! message until then, so an acknowledged message survives even a crash of the
//! hub. While the store is down the writer says so (`degraded`) and appends
//! what it holds to a write-ahead [`spool::Spool`] on local disk (a remote
//! store only; the embedded store is local disk already): an event is durable
//! once spooled, so relaying and acknowledging go on, and a stop or a crash
//! during the outage loses nothing — the next start replays the spool. A spool
//! that cannot be written refuses new messages, as a full buffer does.

mod room;
pub mod spool;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::room::Room;
use self::spool::Spool;
use crate::store::{ArchiveEvent, ConversationOpened, SharedStore, StoreError};

/// A store call that takes longer than this counts as failed (a hung database must
/// show as degraded, not stall acknowledgements silently), unless the caller sets
/// [`ArchiveStatus::write_timeout_ms`] (`ARCHIVE_WRITE_TIMEOUT_MS`).
/// Shutdown waits longer than this for the writer (see `server::archive_drain`).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// First and longest wait between retries of a failed batch.
/// How long [`Archive::stored_through_now`] waits: a group commit, with room for a slow disk.
pub const CATCH_UP: Duration = Duration::from_secs(3);

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Live figures of the archive, shared with health and metrics.
#[derive(Debug, Default)]
pub struct ArchiveStatus {
    /// Events accepted but not yet written.
    pub backlog: AtomicUsize,
    /// The last write failed and the writer is retrying.
    pub degraded: AtomicBool,
    /// The buffer filled (a message was refused or a new conversation held back) and has
    /// not drained below half since.
    pub overflowing: AtomicBool,
    pub write_errors: AtomicU64,
    pub events_written: AtomicU64,
    /// Chat messages and buddy chat openings refused because the archive was full (never
    /// acknowledged).
    pub refused: AtomicU64,
    pub capacity: AtomicUsize,
    /// The spool could not be written during an outage (its disk is full or failing).
    pub spool_failed: AtomicBool,
    /// When the write in flight started (ms since the epoch), 0 when none is.
    pub write_started_ms: AtomicU64,
    /// A write taking longer than this many ms counts as slow (0: never); set by the caller.
    pub slow_after_ms: AtomicU64,
    /// The last write was slow and events were waiting behind it.
    pub last_write_slow: AtomicBool,
    // ---- the default configuration fast ----
    /// The least time in ms between the starts of two writes (`ARCHIVE_GROUP_COMMIT_MS`),
    /// set by the caller; 0: each write starts once the last ended.
    pub group_commit_ms: AtomicU64,
    /// How long one store call may take before it counts as failed, in ms
    /// (`ARCHIVE_WRITE_TIMEOUT_MS`), set by the caller; 0: [`WRITE_TIMEOUT`].
    pub write_timeout_ms: AtomicU64,
}

impl ArchiveStatus {
    /// How long one store call may take before it counts as failed.
    pub fn write_timeout(&self) -> Duration {
        match self.write_timeout_ms.load(Ordering::Relaxed) {
            0 => WRITE_TIMEOUT,
            ms => Duration::from_millis(ms),
        }
    }

    /// Are writes slow now: the one in flight has taken longer than `slow_after_ms`, or
    /// the last one did while more events waited behind it? Acknowledgements wait on
    /// these writes, so a stalled store shows here long before a write times out.
    pub fn is_slow(&self, now_ms: u64) -> bool {
        let threshold = self.slow_after_ms.load(Ordering::Relaxed);
        if threshold == 0 {
            return false;
        }
        let started = self.write_started_ms.load(Ordering::Relaxed);
        let in_flight_slow = started != 0 && now_ms.saturating_sub(started) > threshold;
        in_flight_slow || self.last_write_slow.load(Ordering::Relaxed)
    }

    /// The writer's bookkeeping around one store call (see [`ArchiveStatus::is_slow`]).
    fn write_started(&self) -> u64 {
        let now = crate::clock::now_ms().max(1) as u64;
        self.write_started_ms.store(now, Ordering::Relaxed);
        now
    }

    /// Ends the write `write_started` began: how long it took.
    fn write_ended(&self, started: u64, more_waiting: bool) -> Duration {
        let took = (crate::clock::now_ms() as u64).saturating_sub(started);
        let threshold = self.slow_after_ms.load(Ordering::Relaxed);
        let slow = threshold != 0 && took > threshold && more_waiting;
        self.last_write_slow.store(slow, Ordering::Relaxed);
        self.write_started_ms.store(0, Ordering::Relaxed);
        Duration::from_millis(took)
    }
}

/// Room taken for one chat message ([`Archive::try_reserve_message`]): given back
/// unless the message is pushed. It borrows the handle, or (a [`HeldMessageRoom`]) owns
/// a clone of it.
#[must_use]
pub struct MessageRoom<'a> {
    archive: std::borrow::Cow<'a, Archive>,
    used: bool,
}

/// Room taken for one chat message that travels with it while its seq is drawn elsewhere
/// (a line to an away customer on several nodes: Redis draws it), [`Archive::try_hold_message`]:
/// a [`MessageRoom`] holding its own handle. Given back unless the message is pushed.
pub type HeldMessageRoom = MessageRoom<'static>;

impl MessageRoom<'_> {
    /// Queues the message in the room taken for it; returns its sequence number.
    pub fn push(mut self, event: ArchiveEvent) -> Option<u64> {
        self.used = true;
        self.archive.push_admitted(event)
    }
}

impl Drop for MessageRoom<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.archive.room().written(1);
        }
    }
}

/// How far the writer has got: every event up to `committed` is durable, in the store
/// or (during an outage) in the spool on local disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub committed: u64,
    /// Every event up to this one is in the store itself, where every node reads it: below
    /// `committed` while an outage holds events in this node's spool.
    pub stored: u64,
    /// The last write failed; events are held (and spooled) until the store is back.
    pub degraded: bool,
}

/// An event handed to the writer: its sequence number, the event, and the webhook journal's
/// ticket of the webhook event it makes (0: none), which its commit waits for.
type Queued = (u64, ArchiveEvent, u64);

/// The hub's handle on the archive. Cheap to clone.
#[derive(Clone)]
pub struct Archive {
    tx: mpsc::Sender<Queued>,
    next_seq: Arc<AtomicU64>,
    /// What the archive may still take; the writer gives room back as the store takes events.
    /// Locked briefly by the hub task and the writer, never across an `.await`.
    room: Arc<Mutex<Room>>,
    pub status: Arc<ArchiveStatus>,
    pub progress: watch::Receiver<Progress>,
    /// Where chats' openings and lines are told as webhook events, once set
    /// ([`Archive::tell_webhooks`]). The writer commits an event only once its webhook
    /// event is journaled.
    webhooks: Arc<std::sync::OnceLock<crate::webhooks::Webhooks>>,
    /// The store it writes to, for the reads the hub makes of what it archived (a chat's
    /// notes for an agent who takes the chat over).
    store: SharedStore,
}

impl Archive {
    /// Starts the writer task; it ends once every handle is dropped and the buffer is
    /// written (or, during a store outage, spooled). With a spool, whatever a previous
    /// process left in it is written to the store first.
    pub fn start(
        store: SharedStore,
        capacity: usize,
        spool: Option<Spool>,
    ) -> Result<(Self, JoinHandle<()>), spool::SpoolError> {
        // `capacity` events at most: the room never admits more than that, so the
        // channel never refuses what the room admitted.
        let (tx, rx) = mpsc::channel(capacity);
        let status = Arc::new(ArchiveStatus::default());
        status.capacity.store(capacity, Ordering::Relaxed);
        let mut room = Room::new(capacity);
        let mut backlog = Backlog::default();
        if let Some(spool) = &spool {
            let replayed = spool.load()?;
            if !replayed.is_empty() {
                tracing::warn!(
                    events = replayed.len(),
                    spool = %spool.path().display(),
                    "replaying {} archive events spooled during a store outage",
                    replayed.len()
                );
            }
            room.hold_replayed(replayed.len());
            status.backlog.store(replayed.len(), Ordering::Relaxed);
            for (key, event) in replayed {
                backlog.push(0, Some(key), event);
            }
        }
        let room = Arc::new(Mutex::new(room));
        let (progress_tx, progress) = watch::channel(Progress::default());
        let webhooks: Arc<std::sync::OnceLock<crate::webhooks::Webhooks>> = Arc::default();
        let writer = Writer {
            webhooks: webhooks.clone(),
            store: store.clone(),
            spool: spool.map(Arc::new),
            status: status.clone(),
            room: room.clone(),
            progress: progress_tx,
            backlog,
            degraded: false,
        };
        let task = tokio::spawn(write_loop(writer, rx));
        Ok((
            Self {
                tx,
                next_seq: Arc::new(AtomicU64::new(1)),
                room,
                status,
                progress,
                webhooks,
                store,
            },
            task,
        ))
    }

    /// Waits until every event handed to the archive before this call is written (in the
    /// store, or spooled during an outage), or until `deadline`: what the hub has told
    /// anyone is then readable from the store. Usually one group commit.
    pub async fn written_through_now(&self, deadline: Instant) {
        let target = self.last_handed();
        let mut progress = self.progress.clone();
        let caught_up = progress.wait_for(|p| p.committed >= target);
        let _ = tokio::time::timeout_at(deadline, caught_up).await;
    }

    /// Waits until event `seq` is written (in the store, or spooled during an outage): what
    /// a socket's `ack` waits for. False when `deadline` came first.
    pub async fn written_through(&self, seq: u64, deadline: Instant) -> bool {
        let mut progress = self.progress.clone();
        let written = progress.wait_for(|p| p.committed >= seq);
        matches!(tokio::time::timeout_at(deadline, written).await, Ok(Ok(_)))
    }

    /// The sequence number of the last event handed to the archive (0: none yet): once
    /// `Progress::committed` reaches it, every event handed before this call is durable.
    pub fn last_handed(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// Waits (at most [`CATCH_UP`]) until every event handed to the archive before this
    /// call is in the store; `false` while the store is down (what it was handed may be only
    /// spooled, so a read would miss it). For reads that must see every line relayed so
    /// far, such as the last `seq` of a conversation about to go on.
    pub async fn stored_through_now(&self) -> bool {
        self.written_through_now(Instant::now() + CATCH_UP).await;
        !self.status.degraded.load(Ordering::Relaxed)
    }

    /// From now on, conversations opened and their customers' and agents' lines are
    /// emitted as webhook events as they are queued here (never waiting on them), and each
    /// is committed (its sender acknowledged) once its webhook event is journaled too.
    pub fn tell_webhooks(&self, webhooks: crate::webhooks::Webhooks) {
        let _ = self.webhooks.set(webhooks);
    }

    /// The webhooks set by [`Archive::tell_webhooks`], for the events others emit.
    pub fn webhooks(&self) -> Option<&crate::webhooks::Webhooks> {
        self.webhooks.get()
    }

    /// The webhook event `event` makes, if any.
    fn webhook_event(&self, event: &ArchiveEvent) -> Option<crate::webhooks::event::Event> {
        self.webhooks.get().and_then(|w| w.event_of(event))
    }

    /// Emits `hook` for the archive event about to be queued (under the room's lock, so
    /// journal tickets follow sequence numbers): its journal ticket, 0 for none.
    fn emit(&self, hook: Option<crate::webhooks::event::Event>) -> u64 {
        match (hook, self.webhooks.get()) {
            (Some(hook), Some(w)) => w.emit(hook),
            _ => 0,
        }
    }

    /// The store this archive writes to.
    pub fn store(&self) -> SharedStore {
        self.store.clone()
    }

    /// The store is down and the spool cannot hold what would be acknowledged: refuse,
    /// as a full buffer does.
    fn spool_unusable(&self) -> bool {
        self.status.spool_failed.load(Ordering::Relaxed) && self.status.degraded.load(Ordering::Relaxed)
    }

    fn room(&self) -> std::sync::MutexGuard<'_, Room> {
        // The lock guards plain arithmetic; a panic while holding it leaves it consistent.
        crate::poison::lock(&self.room)
    }

    /// Is there room for one more chat message? The hub asks before accepting one; a
    /// refusal is counted, shown on the health endpoints and logged (once per overflow).
    pub fn has_room_for_message(&self) -> bool {
        let ok = !self.spool_unusable() && self.room().has_room_for_message();
        if !ok {
            self.refused("new chat messages are refused");
        }
        ok
    }

    /// How many conversations may open now, each with room for its opening and its
    /// closing. None (the archive is full) is shown and logged as an overflow: the hub
    /// then pairs nobody until the store has taken some of the backlog.
    pub fn openings_available(&self) -> usize {
        let n = if self.spool_unusable() {
            0
        } else {
            self.room().openings_available()
        };
        if n == 0 {
            self.overflowing("new conversations wait (customers stay queued)");
        }
        n
    }

    /// Counts a refusal (a message, a buddy chat) for want of room.
    pub fn refused(&self, what: &str) {
        self.status.refused.fetch_add(1, Ordering::Relaxed);
        self.overflowing(what);
    }

    fn overflowing(&self, what: &str) {
        if !self.status.overflowing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                capacity = self.status.capacity.load(Ordering::Relaxed),
                "ARCHIVE BUFFER FULL: the store is not keeping up or is down; {what} until it drains"
            );
        }
    }

    /// Takes room for one chat message before it is stamped, so that a message stamped
    /// (then delivered and acknowledged) is always queued: chat messages are pushed by
    /// connections' tasks as well as the hub's, and a check made before stamping could be
    /// overtaken. A refusal is not counted: the caller says what it refuses
    /// ([`Archive::refused`]) or hands the message on to whoever will.
    pub fn try_reserve_message(&self) -> Option<MessageRoom<'_>> {
        self.admit_reserved().then(|| MessageRoom {
            archive: std::borrow::Cow::Borrowed(self),
            used: false,
        })
    }

    /// [`Archive::try_reserve_message`], the room held apart from this handle: for a
    /// message whose seq is drawn elsewhere first (a seq drawn for a message the archive
    /// then refused would be a gap).
    pub fn try_hold_message(&self) -> Option<HeldMessageRoom> {
        self.admit_reserved().then(|| MessageRoom {
            archive: std::borrow::Cow::Owned(self.clone()),
            used: false,
        })
    }

    fn admit_reserved(&self) -> bool {
        !self.spool_unusable() && self.room().admit_message()
    }

    /// Queues a chat message in room already taken for it.
    fn push_admitted(&self, event: ArchiveEvent) -> Option<u64> {
        let hook = self.webhook_event(&event);
        let room = self.room();
        let ticket = self.emit(hook);
        self.send(room, event, ticket)
    }

    /// Queues a chat message the hub checked room for; returns its sequence number,
    /// or `None` (counted and logged) if there was no room after all.
    pub fn push_message(&self, event: ArchiveEvent) -> Option<u64> {
        let hook = self.webhook_event(&event);
        let mut room = self.room();
        if !room.admit_message() {
            drop(room);
            self.refused("new chat messages are refused");
            return None;
        }
        let ticket = self.emit(hook);
        self.send(room, event, ticket)
    }

    /// Queues the record of a customer who left the line unserved (for the reports), as
    /// a message is: refused (counted and logged) when the buffer has no room. Nobody was
    /// told it is kept, so nothing acknowledged is lost then.
    pub fn push_abandoned(&self, abandoned: crate::store::QueueAbandoned) {
        let mut room = self.room();
        if !room.admit_message() {
            drop(room);
            self.refused("a record of a customer who left the line is dropped");
            return;
        }
        self.send(room, ArchiveEvent::Abandoned(abandoned), 0);
    }

    /// Queues a conversation's opening and reserves room for its closing. The hub opens
    /// a conversation only after [`Archive::openings_available`] said there is room;
    /// `false` only when the writer is gone.
    pub fn push_opening(&self, event: ArchiveEvent) -> bool {
        let hook = self.webhook_event(&event);
        self.queue_opening(event, hook)
    }

    /// An opening queued, with its closing reserved, and `hook` emitted for it.
    fn queue_opening(&self, event: ArchiveEvent, hook: Option<crate::webhooks::event::Event>) -> bool {
        let mut room = self.room();
        if !room.admit_opening() {
            // Room was checked before pairing, but chat messages relayed by connections'
            // tasks meanwhile may have taken it: the promised opening is kept past the
            // capacity (by at most what they took), as its chat is running already.
            room.admit_opening_anyway();
            tracing::debug!("archive: a conversation's opening was admitted past the capacity");
        }
        let ticket = self.emit(hook);
        self.send(room, event, ticket).is_some()
    }

    /// Queues the opening of conversation `opened` once more, as [`Archive::push_opening`]
    /// does, when a customer continues it or a person takes it from a bot: its webhook
    /// event is `conversation.assigned` (from `previous`), not a second creation.
    pub fn push_reopening(&self, opened: ConversationOpened, previous: Option<&str>) -> bool {
        let hook = self.webhooks.get().and_then(|w| w.reopened(&opened, previous));
        self.queue_opening(ArchiveEvent::Opened(opened), hook)
    }

    /// Queues the opening of a running conversation this node takes the archiving of over
    /// from another node, with its closing reserved, room or not ([`Room::admit_opening_anyway`]).
    /// `created_by_its_chat`: the chat is the conversation's first (not one continuing it,
    /// nor one handed on through a line); then its `conversation.created` goes too, before
    /// the lines this node archives after it: each node making a conversation's events makes
    /// them from its creation on, so whichever node's reach the store first, they are
    /// numbered in order (the store keeps each event once). A conversation created earlier
    /// was told of then: told again, an endpoint registered since would get a creation
    /// after the events that followed it.
    pub fn push_handover_opening(&self, event: ArchiveEvent, created_by_its_chat: bool) -> bool {
        let hook = created_by_its_chat.then(|| self.webhook_event(&event)).flatten();
        let mut room = self.room();
        room.admit_opening_anyway();
        let ticket = self.emit(hook);
        self.send(room, event, ticket).is_some()
    }

    /// Queues a conversation's closing, in the room reserved when it opened.
    pub fn push_closing(&self, event: ArchiveEvent) {
        // Forgets a buddy chat's id (its lines are no events).
        let _ = self.webhook_event(&event);
        let mut room = self.room();
        if !room.admit_closing() {
            drop(room);
            self.refused("a closing found no room");
            tracing::error!("archive: a conversation's closing found no room reserved for it");
            return;
        }
        self.send(room, event, 0);
    }

    /// Queues the closing of a conversation another node opened and can no longer close (it
    /// died): room or not ([`Room::admit_closing_anyway`]), this node reserved none for it.
    pub fn push_inherited_closing(&self, event: ArchiveEvent) {
        let mut room = self.room();
        room.admit_closing_anyway();
        self.send(room, event, 0);
    }

    /// This node will not write the closing of a conversation whose opening it queued:
    /// another node archives it now. Frees the slot reserved for that closing.
    pub fn release_closing(&self) {
        self.room().release_closing();
    }

    /// Hands an admitted event to the writer without waiting; returns its sequence number.
    /// `ticket`: the webhook journal's ticket of its webhook event (0: none), which the
    /// writer waits for before it counts the event committed.
    ///
    /// Called under the room's lock, held until the event is in the channel: the hub task
    /// and connections' tasks (chat messages on the direct path) both push, and numbers
    /// must enter the channel in order.
    fn send(&self, mut room: std::sync::MutexGuard<'_, Room>, event: ArchiveEvent, ticket: u64) -> Option<u64> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send((seq, event, ticket)) {
            Ok(()) => {
                self.status.backlog.fetch_add(1, Ordering::Relaxed);
                Some(seq)
            }
            Err(_) => {
                // The room admitted it, so the channel has space unless the writer is gone
                // (the hub is shutting down after a writer panic).
                room.written(1);
                tracing::error!("archive: the writer is gone; an event could not be queued");
                None
            }
        }
    }
}

/// Events accepted and not yet in the store, in order. The first `spooled` are in the
/// spool too: a prefix, because once a write fails everything held is spooled, and so is
/// every later event while the store stays down.
#[derive(Default)]
struct Backlog {
    events: VecDeque<ArchiveEvent>,
    /// Per event: the hub's sequence number (0 for one replayed from the spool) and its spool key.
    meta: VecDeque<(u64, Option<u64>)>,
    spooled: usize,
    /// The highest sequence number received.
    last_seq: u64,
}

impl Backlog {
    fn len(&self) -> usize {
        self.events.len()
    }

    fn all_spooled(&self) -> bool {
        self.spooled == self.len()
    }

    /// Every event up to this sequence number is in the store (those replayed from the
    /// spool at start-up, numbered 0, came before any of this run's).
    fn stored_through(&self) -> u64 {
        match self.meta.iter().find(|(seq, _)| *seq > 0) {
            Some((seq, _)) => seq - 1,
            None => self.last_seq,
        }
    }

    /// Every event up to this sequence number is in the store or in the spool.
    fn durable_through(&self) -> u64 {
        match self.meta.get(self.spooled) {
            Some((seq, _)) => seq.saturating_sub(1),
            None => self.last_seq,
        }
    }

    fn push(&mut self, seq: u64, key: Option<u64>, event: ArchiveEvent) {
        if key.is_some() {
            debug_assert!(self.all_spooled(), "spooled events form a prefix");
            self.spooled += 1;
        }
        self.last_seq = self.last_seq.max(seq);
        self.meta.push_back((seq, key));
        self.events.push_back(event);
    }
}

/// The writer task's state.
struct Writer {
    store: SharedStore,
    /// The webhook journal an event's webhook event must be in before the event is committed.
    webhooks: Arc<std::sync::OnceLock<crate::webhooks::Webhooks>>,
    spool: Option<Arc<Spool>>,
    status: Arc<ArchiveStatus>,
    room: Arc<Mutex<Room>>,
    progress: watch::Sender<Progress>,
    backlog: Backlog,
    /// The last store write failed: new events go to the spool before they are acknowledged.
    degraded: bool,
}

impl Writer {
    /// Publishes how far events are durable, and whether the store is failing.
    fn publish(&self) {
        self.publish_through(self.backlog.durable_through());
    }

    /// Publishes that every event up to `committed` is durable.
    fn publish_through(&self, committed: u64) {
        let progress = Progress {
            committed,
            stored: self.backlog.stored_through().min(committed),
            degraded: self.degraded,
        };
        self.progress.send_if_modified(|p| {
            let changed = *p != progress;
            *p = progress;
            changed
        });
    }

    /// Writes events to the spool in one durable commit, off the async threads; returns
    /// the key of the first, or `None` (said loudly, and refused from then on) when the
    /// spool's disk fails.
    async fn spool(&self, events: Vec<Vec<u8>>) -> Option<u64> {
        let spool = self.spool.clone()?;
        let result = tokio::task::spawn_blocking(move || spool.append(&events))
            .await
            .unwrap_or_else(|e| panic!("the spool's thread failed: {e}"));
        match result {
            Ok(first) => {
                if self.status.spool_failed.swap(false, Ordering::Relaxed) {
                    tracing::warn!("archive spool writable again; acknowledgements resume during the outage");
                }
                Some(first)
            }
            Err(e) => {
                if !self.status.spool_failed.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        error = %e,
                        "ARCHIVE SPOOL UNWRITABLE during a store outage: new chat messages and conversations are refused until the store or the spool is back"
                    );
                }
                None
            }
        }
    }

    /// Spools every held event not yet spooled (the store just failed).
    async fn spool_backlog(&mut self) {
        if self.spool.is_none() || self.backlog.all_spooled() {
            return;
        }
        let from = self.backlog.spooled;
        let encoded = self.backlog.events.iter().skip(from).map(spool::encode).collect();
        if let Some(first) = self.spool(encoded).await {
            for (i, meta) in self.backlog.meta.iter_mut().skip(from).enumerate() {
                meta.1 = Some(first + i as u64);
            }
            self.backlog.spooled = self.backlog.len();
        }
    }

    /// Waits until the webhook events of `events` are journaled: before they count as
    /// committed (spooled or stored), so an acknowledged line's event survives a crash. At
    /// once when none made one (no endpoint enabled).
    async fn journal_webhooks(&self, events: &[Queued]) {
        let ticket = events.iter().map(|(_, _, ticket)| *ticket).max().unwrap_or(0);
        if ticket > 0
            && let Some(webhooks) = self.webhooks.get()
        {
            webhooks.journaled_through(ticket).await;
        }
    }

    /// Takes newly queued events: into the spool first while the store is down.
    async fn take(&mut self, incoming: &mut Vec<Queued>) {
        if incoming.is_empty() {
            return;
        }
        self.journal_webhooks(incoming).await;
        let first = if self.degraded && self.backlog.all_spooled() {
            self.spool(incoming.iter().map(|(_, e, _)| spool::encode(e)).collect())
                .await
        } else {
            None
        };
        for (i, (seq, event, _)) in incoming.drain(..).enumerate() {
            self.backlog.push(seq, first.map(|k| k + i as u64), event);
        }
        self.publish();
    }

    /// One store call with the oldest held events, at most `batch`; how it ended.
    /// While the store is known to be down, events queued meanwhile are spooled (and so
    /// acknowledged) as they arrive, so a hanging store does not hold acknowledgements
    /// until its write times out.
    async fn write_front(&mut self, batch: usize, rx: &mut mpsc::Receiver<Queued>, open: &mut bool) -> Written {
        let n = self.backlog.len().min(batch);
        // Events queued during the write, with their spool keys: the spooled ones come
        // first (a prefix, as in the backlog). No cap beyond the room's: the room admits
        // at most the buffer's capacity, held here or in the backlog.
        let mut arrived: Vec<(u64, Option<u64>, ArchiveEvent, u64)> = vec![];
        let started = self.status.write_started();
        let mut timed_out = false;
        self.backlog.events.make_contiguous();
        let written = {
            let events = &self.backlog.events.as_slices().0[..n];
            let write = tokio::time::timeout(self.status.write_timeout(), self.store.archive(events));
            tokio::pin!(write);
            let spooling = self.degraded && self.spool.is_some();
            loop {
                let mut incoming = Vec::new();
                tokio::select! {
                    result = &mut write => {
                        break match result {
                            Ok(written) => written,
                            Err(_) => {
                                timed_out = true;
                                Err(StoreError::Unavailable("the write timed out".into()))
                            }
                        };
                    }
                    got = rx.recv_many(&mut incoming, self.store.max_batch().max(1)), if *open && spooling => {
                        if got == 0 {
                            *open = false;
                        }
                        // Spooled only while everything before them is: the spool keeps order.
                        let in_order = self.backlog.all_spooled() && arrived.last().is_none_or(|(_, key, _, _)| key.is_some());
                        let first = if in_order && !incoming.is_empty() {
                            self.journal_webhooks(&incoming).await;
                            self.spool(incoming.iter().map(|(_, e, _)| spool::encode(e)).collect()).await
                        } else {
                            None
                        };
                        let through = incoming.last().map(|(seq, _, _)| *seq);
                        for (i, (seq, event, ticket)) in incoming.into_iter().enumerate() {
                            // A spooled event's webhook event is journaled: no ticket to wait for again.
                            let ticket = if first.is_some() { 0 } else { ticket };
                            arrived.push((seq, first.map(|k| k + i as u64), event, ticket));
                        }
                        if let (Some(_), Some(through)) = (first, through) {
                            // Everything up to them is durable: their senders are acknowledged now.
                            self.publish_through(through);
                        }
                        if !*open && self.backlog.all_spooled() && arrived.iter().all(|(_, key, _, _)| key.is_some()) {
                            // Stopping, and all held is on local disk: the next start writes it,
                            // so shutdown need not wait out the hung write.
                            break Err(StoreError::Unavailable("stopping during an outage".into()));
                        }
                    }
                }
            }
        };
        let more_waiting = self.backlog.len() > n || !arrived.is_empty() || !rx.is_empty();
        let took = self.status.write_ended(started, more_waiting);
        let outcome = match written {
            Ok(()) => {
                let last_key = self.backlog.meta.range(..n).rev().find_map(|(_, key)| *key);
                self.backlog.events.drain(..n);
                self.backlog.meta.drain(..n);
                self.backlog.spooled = self.backlog.spooled.saturating_sub(n);
                if let (Some(last), Some(spool)) = (last_key, self.spool.clone()) {
                    // A failure here leaves events the store has in the spool: replayed once more, harmlessly.
                    let removed = tokio::task::spawn_blocking(move || spool.remove_through(last)).await;
                    if let Ok(Err(e)) = removed {
                        tracing::warn!(error = %e, "archive spool: written events could not be removed");
                    }
                }
                if self.degraded {
                    self.degraded = false;
                    self.status.degraded.store(false, Ordering::Relaxed);
                    tracing::info!(
                        backend = self.store.backend(),
                        "archive store reachable again; writing the backlog"
                    );
                }
                self.status.backlog.fetch_sub(n, Ordering::Relaxed);
                self.status.events_written.fetch_add(n as u64, Ordering::Relaxed);
                let below_half = {
                    let mut room = crate::poison::lock(&self.room);
                    room.written(n);
                    room.below_half()
                };
                if below_half && self.status.overflowing.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        "archive buffer drained below half; chat messages and new conversations are accepted again"
                    );
                }
                Written::Landed { took }
            }
            Err(e) => {
                self.status.write_errors.fetch_add(1, Ordering::Relaxed);
                if !self.degraded {
                    self.degraded = true;
                    self.status.degraded.store(true, Ordering::Relaxed);
                    tracing::error!(backend = self.store.backend(), error = %e, "archive write failed; holding events and retrying");
                }
                self.spool_backlog().await;
                if timed_out {
                    Written::TimedOut { tried: n }
                } else {
                    Written::Failed
                }
            }
        };
        let spooled_prefix = arrived.iter().take_while(|(_, key, _, _)| key.is_some()).count();
        let mut unspooled: Vec<Queued> = vec![];
        for (i, (seq, key, event, ticket)) in arrived.into_iter().enumerate() {
            if i < spooled_prefix {
                self.backlog.push(seq, key, event);
            } else {
                unspooled.push((seq, event, ticket));
            }
        }
        self.publish();
        self.take(&mut unspooled).await;
        outcome
    }
}

/// How a store write ended: what the writer's next write is sized by.
#[derive(Debug, Clone, Copy)]
enum Written {
    Landed {
        took: Duration,
    },
    /// No answer within the write timeout to a write of `tried` events: the store may be
    /// slow rather than down.
    TimedOut {
        tried: usize,
    },
    /// Refused or unreachable: says nothing of the size.
    Failed,
}

async fn write_loop(mut writer: Writer, mut rx: mpsc::Receiver<Queued>) {
    // Events written in one store call at most: the store knows what suits it.
    let max_batch = writer.store.max_batch().max(1);
    let mut incoming = Vec::with_capacity(max_batch);
    let mut open = true;
    // The most events the next write takes: half of what a write that timed out tried,
    // and twice as many (up to `max_batch`) after one that landed well within the timeout.
    // A store that is slow rather than down times out on the whole backlog every time (a
    // retry costs what the last try did), so only a smaller write gets it through; and a
    // size that took most of the timeout is kept, not doubled into the next timeout.
    let mut batch = max_batch;
    let mut backoff = BACKOFF_START;
    // When the next attempt at a failed write is due; `None`: now.
    let mut retry_at: Option<Instant> = None;
    // When the last write started: the next waits out `group_commit_ms` from it.
    let mut last_write: Option<Instant> = None;
    loop {
        let due = retry_at.is_none_or(|at| at <= Instant::now());
        if open {
            if writer.backlog.len() == 0 {
                if rx.recv_many(&mut incoming, max_batch).await == 0 {
                    open = false;
                }
            } else if due {
                // Whatever else has queued, without waiting.
                while incoming.len() < max_batch {
                    match rx.try_recv() {
                        Ok(event) => incoming.push(event),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
            } else {
                // Waiting to retry: new events are taken (and spooled) meanwhile.
                let at = retry_at.expect("not due means a retry is planned");
                tokio::select! {
                    got = rx.recv_many(&mut incoming, max_batch) => if got == 0 { open = false },
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
        }
        writer.take(&mut incoming).await;
        if writer.backlog.len() == 0 {
            if open {
                continue;
            }
            return;
        }
        if !open && writer.degraded && writer.spool.is_some() && writer.backlog.all_spooled() {
            // Stopping during an outage: nothing held is lost, the next start writes it.
            // What is held, by kind: the log then says which events the next start replays.
            let held: Vec<&str> = writer
                .backlog
                .events
                .iter()
                .map(|e| match e {
                    ArchiveEvent::Opened(_) => "opened",
                    ArchiveEvent::Message { .. } => "message",
                    ArchiveEvent::Transferred(_) => "transferred",
                    ArchiveEvent::Note(_) => "note",
                    ArchiveEvent::Closed(_) => "closed",
                    ArchiveEvent::Abandoned(_) => "abandoned",
                })
                .collect();
            tracing::warn!(
                spooled = writer.backlog.len(),
                held = ?held,
                spool = %writer.spool.as_ref().map(|s| s.path().display().to_string()).unwrap_or_default(),
                "stopping during an archive store outage: {} events are spooled on local disk and will be replayed into the store at the next start",
                writer.backlog.len()
            );
            return;
        }
        if retry_at.is_none_or(|at| at <= Instant::now()) {
            // Group commit: under load, writes start at most once per `group_commit_ms`, so
            // one write (one fdatasync) covers every event that came meanwhile, not a few.
            // After a quiet spell the last write is long past and nothing waits.
            let spacing = Duration::from_millis(writer.status.group_commit_ms.load(Ordering::Relaxed));
            if let Some(next) = last_write.map(|at| at + spacing)
                && open
                && !writer.degraded
                && writer.backlog.len() < batch
                && Instant::now() < next
            {
                // Events that come meanwhile are taken at the top of the loop.
                tokio::time::sleep_until(next).await;
                continue;
            }
            last_write = Some(Instant::now());
            match writer.write_front(batch, &mut rx, &mut open).await {
                Written::Landed { took } => {
                    if took < writer.status.write_timeout() / 4 {
                        batch = batch.saturating_mul(2).min(max_batch);
                    }
                    backoff = BACKOFF_START;
                    retry_at = None;
                }
                failed => {
                    if let Written::TimedOut { tried } = failed {
                        batch = (tried / 2).max(1);
                    }
                    retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        } else if !open {
            tokio::time::sleep_until(retry_at.expect("not due means a retry is planned")).await;
        }
    }
}

#[cfg(test)]
mod tests;
