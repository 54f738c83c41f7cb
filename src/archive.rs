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
//! Every event gets a sequence number, and the writer publishes how far it has
//! committed ([`Progress`]). The hub holds a sender's acknowledgement of a
//! message until the batch holding it is committed, so an acknowledged message
//! survives even a crash of the hub. While the store is down the writer says
//! so (`degraded`) and the hub acknowledges from the buffer instead: relaying
//! goes on, and the buffer is written once the store is back.

mod room;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use self::room::Room;
use crate::store::{ArchiveEvent, SharedStore};

/// A store call that takes longer than this counts as failed (a hung database must
/// show as degraded, not stall acknowledgements silently).
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// First and longest wait between retries of a failed batch.
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
}

/// How far the writer has got: every event up to `committed` is in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub committed: u64,
    /// The last write failed; events are held in the buffer until the store is back.
    pub degraded: bool,
}

/// The hub's handle on the archive. Cheap to clone.
#[derive(Clone)]
pub struct Archive {
    tx: mpsc::Sender<(u64, ArchiveEvent)>,
    next_seq: Arc<AtomicU64>,
    /// What the archive may still take; the writer gives room back as the store takes events.
    /// Locked briefly by the hub task and the writer, never across an `.await`.
    room: Arc<Mutex<Room>>,
    pub status: Arc<ArchiveStatus>,
    pub progress: watch::Receiver<Progress>,
}

impl Archive {
    /// Starts the writer task; it ends once every handle is dropped and the buffer is written.
    pub fn start(store: SharedStore, capacity: usize) -> (Self, JoinHandle<()>) {
        // `capacity` events at most: the room never admits more than that, so the
        // channel never refuses what the room admitted.
        let (tx, rx) = mpsc::channel(capacity);
        let status = Arc::new(ArchiveStatus::default());
        status.capacity.store(capacity, Ordering::Relaxed);
        let room = Arc::new(Mutex::new(Room::new(capacity)));
        let (progress_tx, progress) = watch::channel(Progress::default());
        let task = tokio::spawn(write_loop(store, rx, status.clone(), room.clone(), progress_tx));
        (
            Self {
                tx,
                next_seq: Arc::new(AtomicU64::new(1)),
                room,
                status,
                progress,
            },
            task,
        )
    }

    fn room(&self) -> std::sync::MutexGuard<'_, Room> {
        // The lock guards plain arithmetic; a panic while holding it leaves it consistent.
        self.room.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Is there room for one more chat message? The hub asks before accepting one; a
    /// refusal is counted, shown on the health endpoints and logged (once per overflow).
    pub fn has_room_for_message(&self) -> bool {
        let ok = self.room().has_room_for_message();
        if !ok {
            self.refused("new chat messages are refused");
        }
        ok
    }

    /// How many conversations may open now, each with room for its opening and its
    /// closing. None (the archive is full) is shown and logged as an overflow: the hub
    /// then pairs nobody until the store has taken some of the backlog.
    pub fn openings_available(&self) -> usize {
        let n = self.room().openings_available();
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

    /// Queues a chat message the hub checked room for; returns its sequence number,
    /// or `None` (counted and logged) if there was no room after all.
    pub fn push_message(&self, event: ArchiveEvent) -> Option<u64> {
        if !self.room().admit_message() {
            self.refused("new chat messages are refused");
            return None;
        }
        self.send(event)
    }

    /// Queues a conversation's opening and reserves room for its closing. The hub opens
    /// a conversation only after [`Archive::openings_available`] said there is room, so
    /// `false` (logged) means a fault in that accounting.
    pub fn push_opening(&self, event: ArchiveEvent) -> bool {
        if !self.room().admit_opening() {
            self.refused("a conversation opened without room for it");
            tracing::error!("archive: a conversation's opening was refused although room was checked");
            return false;
        }
        self.send(event).is_some()
    }

    /// Queues a conversation's closing, in the room reserved when it opened.
    pub fn push_closing(&self, event: ArchiveEvent) {
        if !self.room().admit_closing() {
            self.refused("a closing found no room");
            tracing::error!("archive: a conversation's closing found no room reserved for it");
            return;
        }
        self.send(event);
    }

    /// Hands an admitted event to the writer without waiting; returns its sequence number.
    fn send(&self, event: ArchiveEvent) -> Option<u64> {
        // Only the hub task pushes, so numbers enter the channel in order.
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send((seq, event)) {
            Ok(()) => {
                self.status.backlog.fetch_add(1, Ordering::Relaxed);
                Some(seq)
            }
            Err(_) => {
                // The room admitted it, so the channel has space unless the writer is gone
                // (the hub is shutting down after a writer panic).
                self.room().written(1);
                tracing::error!("archive: the writer is gone; an event could not be queued");
                None
            }
        }
    }
}

async fn write_loop(
    store: SharedStore,
    mut rx: mpsc::Receiver<(u64, ArchiveEvent)>,
    status: Arc<ArchiveStatus>,
    room: Arc<Mutex<Room>>,
    progress: watch::Sender<Progress>,
) {
    // Events written in one store call at most: the store knows what suits it.
    let max_batch = store.max_batch().max(1);
    let mut numbered = Vec::with_capacity(max_batch);
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut numbered, max_batch).await > 0 {
        let last = numbered.last().map_or(0, |(seq, _)| *seq);
        batch.extend(numbered.drain(..).map(|(_, event)| event));
        let mut backoff = BACKOFF_START;
        loop {
            let written = tokio::time::timeout(WRITE_TIMEOUT, store.archive(&batch))
                .await
                .unwrap_or_else(|_| Err(crate::store::StoreError::Unavailable("the write timed out".into())));
            match written {
                Ok(()) => {
                    progress.send_replace(Progress {
                        committed: last,
                        degraded: false,
                    });
                    if status.degraded.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            backend = store.backend(),
                            "archive store reachable again; writing the backlog"
                        );
                    }
                    status.backlog.fetch_sub(batch.len(), Ordering::Relaxed);
                    status.events_written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    let below_half = {
                        let mut room = room.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        room.written(batch.len());
                        room.below_half()
                    };
                    if below_half && status.overflowing.swap(false, Ordering::Relaxed) {
                        tracing::warn!(
                            "archive buffer drained below half; chat messages and new conversations are accepted again"
                        );
                    }
                    break;
                }
                Err(e) => {
                    status.write_errors.fetch_add(1, Ordering::Relaxed);
                    progress.send_modify(|p| p.degraded = true);
                    if !status.degraded.swap(true, Ordering::Relaxed) {
                        tracing::error!(backend = store.backend(), error = %e, "archive write failed; holding events and retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::store::*;

    /// The memory store, taking at most 3 events a call and recording each call's size.
    #[derive(Default)]
    struct Small {
        inner: MemoryStore,
        calls: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl Store for Small {
        fn backend(&self) -> &'static str {
            "memory"
        }
        fn max_batch(&self) -> usize {
            3
        }
        async fn ping(&self) -> StoreResult<()> {
            Ok(())
        }
        async fn create_account(&self, a: Account) -> StoreResult<()> {
            self.inner.create_account(a).await
        }
        async fn update_account(&self, a: Account) -> StoreResult<()> {
            self.inner.update_account(a).await
        }
        async fn account(&self, id: &str) -> StoreResult<Account> {
            self.inner.account(id).await
        }
        async fn account_by_username(&self, u: &str) -> StoreResult<Account> {
            self.inner.account_by_username(u).await
        }
        async fn accounts(&self) -> StoreResult<Vec<Account>> {
            self.inner.accounts().await
        }
        async fn categories(&self) -> StoreResult<Vec<Category>> {
            self.inner.categories().await
        }
        async fn create_category(&self, c: Category) -> StoreResult<()> {
            self.inner.create_category(c).await
        }
        async fn rename_category(&self, id: &str, name: &str) -> StoreResult<()> {
            self.inner.rename_category(id, name).await
        }
        async fn delete_category(&self, id: &str) -> StoreResult<()> {
            self.inner.delete_category(id).await
        }
        async fn archive(&self, batch: &[ArchiveEvent]) -> StoreResult<()> {
            self.calls.lock().unwrap().push(batch.len());
            self.inner.archive(batch).await
        }
        async fn conversations(&self, f: &ConversationFilter, p: Page) -> StoreResult<(Vec<Conversation>, u64)> {
            self.inner.conversations(f, p).await
        }
        async fn conversation(&self, id: &str) -> StoreResult<Conversation> {
            self.inner.conversation(id).await
        }
    }

    #[tokio::test]
    async fn batches_are_no_larger_than_the_store_takes() {
        let store = Arc::new(Small::default());
        let (archive, task) = Archive::start(store.clone(), 100);
        for seq in 1..=10 {
            archive.push_message(ArchiveEvent::Closed(ConversationClosed {
                id: format!("c{seq}"),
                ended_at: 1,
                ended_by: Side::Agent,
                reason: EndReason::Ended,
            }));
        }
        drop(archive);
        task.await.unwrap();
        let calls = store.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().sum::<usize>(), 10);
        assert!(calls.iter().all(|n| (1..=3).contains(n)), "{calls:?}");
    }
}
