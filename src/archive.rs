//! The archive writer: every conversation event goes through a bounded buffer
//! to the store, in batches, retried with backoff while the store is down.
//!
//! The hub never waits on the database. It hands events to [`Archive::push`];
//! one task drains them in batches (one store call per batch, which is how
//! archiving keeps up with the relay) and retries a failed batch until it is
//! written, so an outage delays the archive but loses nothing. Retrying is safe
//! because every event carries its natural id and stores apply them
//! idempotently. When the buffer is full the hub refuses new chat messages
//! (the sender gets an error, so nothing acknowledged is ever dropped) and the
//! state is reported loudly in the log and on the health endpoints.
//!
//! Every event gets a sequence number, and the writer publishes how far it has
//! committed ([`Progress`]). The hub holds a sender's acknowledgement of a
//! message until the batch holding it is committed, so an acknowledged message
//! survives even a crash of the hub. While the store is down the writer says
//! so (`degraded`) and the hub acknowledges from the buffer instead: relaying
//! goes on, and the buffer is written once the store is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

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
    /// The buffer was full at some point since the last successful write.
    pub overflowing: AtomicBool,
    pub write_errors: AtomicU64,
    pub events_written: AtomicU64,
    /// Events refused because the buffer was full (never acknowledged messages).
    pub refused: AtomicU64,
    pub capacity: AtomicUsize,
    /// When the write in flight started (ms since the epoch), 0 when none is.
    pub write_started_ms: AtomicU64,
    /// A write taking longer than this many ms counts as slow (0: never); set by the caller.
    pub slow_after_ms: AtomicU64,
    /// The last write was slow and events were waiting behind it.
    pub last_write_slow: AtomicBool,
}

impl ArchiveStatus {
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
        let now = crate::hub::now_ms().max(1) as u64;
        self.write_started_ms.store(now, Ordering::Relaxed);
        now
    }

    fn write_ended(&self, started: u64, more_waiting: bool) {
        let took = (crate::hub::now_ms() as u64).saturating_sub(started);
        let threshold = self.slow_after_ms.load(Ordering::Relaxed);
        let slow = threshold != 0 && took > threshold && more_waiting;
        self.last_write_slow.store(slow, Ordering::Relaxed);
        self.write_started_ms.store(0, Ordering::Relaxed);
    }
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
    pub status: Arc<ArchiveStatus>,
    pub progress: watch::Receiver<Progress>,
}

impl Archive {
    /// Starts the writer task; it ends once every handle is dropped and the buffer is written.
    pub fn start(store: SharedStore, capacity: usize) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity);
        let status = Arc::new(ArchiveStatus::default());
        status.capacity.store(capacity, Ordering::Relaxed);
        let (progress_tx, progress) = watch::channel(Progress::default());
        let task = tokio::spawn(write_loop(store, rx, status.clone(), progress_tx));
        (
            Self {
                tx,
                next_seq: Arc::new(AtomicU64::new(1)),
                status,
                progress,
            },
            task,
        )
    }

    /// Is there room for `n` more messages? The hub asks before accepting one. A
    /// slice of the buffer is kept for the openings and closings of conversations,
    /// which cannot be refused, so a full buffer never drops those.
    pub fn has_room(&self, n: usize) -> bool {
        let reserve = (self.tx.max_capacity() / 16).max(16);
        self.tx.capacity() >= n + reserve
    }

    /// Queues an event without waiting and returns its sequence number, or `None`
    /// (said loudly) when the buffer is full.
    pub fn push(&self, event: ArchiveEvent) -> Option<u64> {
        // Only the hub task pushes, so numbers enter the channel in order.
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send((seq, event)) {
            Ok(()) => {
                self.status.backlog.fetch_add(1, Ordering::Relaxed);
                Some(seq)
            }
            Err(_) => {
                self.status.refused.fetch_add(1, Ordering::Relaxed);
                if !self.status.overflowing.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        capacity = self.status.capacity.load(Ordering::Relaxed),
                        "ARCHIVE BUFFER FULL: the store is not keeping up or is down; new chat messages are refused until it drains"
                    );
                }
                None
            }
        }
    }
}

async fn write_loop(
    store: SharedStore,
    mut rx: mpsc::Receiver<(u64, ArchiveEvent)>,
    status: Arc<ArchiveStatus>,
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
            let started = status.write_started();
            let written = tokio::time::timeout(WRITE_TIMEOUT, store.archive(&batch))
                .await
                .unwrap_or_else(|_| Err(crate::store::StoreError::Unavailable("the write timed out".into())));
            status.write_ended(started, !rx.is_empty());
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
                    if status.overflowing.load(Ordering::Relaxed) && rx.capacity() > rx.max_capacity() / 2 {
                        status.overflowing.store(false, Ordering::Relaxed);
                        tracing::warn!("archive buffer drained below half; chat messages are accepted again");
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
            archive.push(ArchiveEvent::Closed(ConversationClosed {
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
