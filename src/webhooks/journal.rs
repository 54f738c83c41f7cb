//! The webhook journal: every event, once made, on local disk before anyone is told its
//! action was done, until the store holds its deliveries.
//!
//! One [`LocalLog`] (`webhook-journal.redb` in `DATA_DIR`; in memory for `STORE=memory`,
//! which keeps nothing anyway). Events are numbered (tickets) as they are made, in the order
//! made; one task appends them in batches (one durable commit for all that came meanwhile,
//! a group commit) and publishes how far they are written ([`Journal::written_through`]):
//! an HTTP answer and a chat line's acknowledgement wait for their event's ticket. The
//! fan-out reads the journal from its front, writes the deliveries, then removes what it
//! wrote, so events made during a store outage wait on disk, not in memory, and the next
//! start hands on whatever a crash left. Handing an event on twice is harmless: a
//! delivery's id is the event's and the endpoint's, and the store keeps one.
//!
//! A disk that fails an append holds the tickets behind it unwritten (the append is tried
//! again until it is written), so nothing is acknowledged whose event is not on disk; a
//! record the fan-out cannot decode is set aside ([`JournalFile::front`]) rather than
//! stop the events behind it.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::event::Event;
use crate::local_log::{Kind, LocalLog, LogError};
use crate::store::Unusable;

/// The journal's file name inside `DATA_DIR`.
pub const FILE_NAME: &str = "webhook-journal.redb";

/// The journal's file, its table of key → one event (JSON-encoded), and what to do with
/// a damaged one.
pub static KIND: Kind = Kind {
    file: FILE_NAME,
    table: "webhook_events",
    what: "webhook journal",
    instead: "start with an empty journal (webhook events it held are then never sent)",
};

/// Events appended in one commit at most.
const BATCH: usize = 1_000;

/// An event as the journal keeps it: what its deliveries are made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journaled {
    pub id: String,
    pub event_type: String,
    pub ordering_key: String,
    /// The body sent, exactly as signed.
    pub body: String,
}

impl From<&Event> for Journaled {
    fn from(event: &Event) -> Self {
        Self {
            id: event.id.clone(),
            event_type: event.event_type.to_string(),
            ordering_key: event.ordering_key.clone(),
            body: event.body(),
        }
    }
}

/// What can be checked of the journal without opening it (as the archive spool's
/// `preflight`): an existing file is a non-empty redb file.
pub fn preflight(dir: &Path) -> Result<(), Unusable> {
    crate::store::check_redb_file(dir, FILE_NAME, "a webhook journal", KIND.instead)
}

/// Checks the journal as [`preflight`] does, then opens (creating) and closes it: a damaged
/// or unwritable one stops start-up before the hub serves (or waits for MongoDB).
pub fn check_usable(dir: &Path) -> Result<(), Unusable> {
    preflight(dir)?;
    LocalLog::check_opens(dir, &KIND)
}

/// The open journal file. Its methods block on disk I/O: call them off the async threads.
pub struct JournalFile(LocalLog);

impl JournalFile {
    /// Opens (creating if missing) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        LocalLog::open(dir, &KIND).map(Self)
    }

    /// A journal kept in memory only.
    pub fn in_memory() -> Result<Self, LogError> {
        LocalLog::in_memory(&KIND).map(Self)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Appends events in one durable commit.
    pub fn append(&self, events: &[Journaled]) -> Result<(), LogError> {
        let encoded: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).expect("a journaled event is plain data"))
            .collect();
        self.0.append(&encoded).map(drop)
    }

    /// The oldest events held, at most `limit`, with their keys. Records among them that
    /// cannot be decoded (damaged, or written by a newer version) are moved to the file's
    /// set-aside table first and answered in `set_aside`, with why.
    pub fn front(&self, limit: usize) -> Result<Front, LogError> {
        let mut front = Front::default();
        for (key, bytes) in self.0.read_encoded(.., limit)? {
            match serde_json::from_slice(&bytes) {
                Ok(event) => front.events.push((key, event)),
                Err(e) => front.set_aside.push((key, e.to_string())),
            }
        }
        if !front.set_aside.is_empty() {
            let keys: Vec<u64> = front.set_aside.iter().map(|(key, _)| *key).collect();
            self.0.set_aside(&keys)?;
        }
        Ok(front)
    }

    /// Removes every event up to and including key `last`: the store has their deliveries.
    pub fn remove_through(&self, last: u64) -> Result<(), LogError> {
        self.0.remove_through(last)
    }

    /// Events held: journaled, not yet handed on as deliveries.
    pub fn backlog(&self) -> u64 {
        self.0.held()
    }

    /// Records set aside as undecodable, kept in the file for an operator.
    pub fn set_aside(&self) -> u64 {
        self.0.set_aside_count()
    }

    /// Shows [`JournalFile::backlog`] and [`JournalFile::set_aside`] in the metrics.
    pub fn publish_counts(&self) {
        metrics::gauge!(crate::metrics::WEBHOOK_JOURNAL_BACKLOG).set(self.backlog() as f64);
        metrics::gauge!(crate::metrics::WEBHOOK_JOURNAL_SET_ASIDE).set(self.set_aside() as f64);
    }
}

/// The front of the journal: the events decoded, and the records set aside, with why.
#[derive(Debug, Default)]
pub struct Front {
    pub events: Vec<(u64, Journaled)>,
    pub set_aside: Vec<(u64, String)>,
}

/// The last ticket given, and the writer's queue of events with their tickets.
struct Tickets {
    last: u64,
    queue: mpsc::UnboundedSender<(u64, Event)>,
}

/// The handle events are journaled through. Cheap to clone.
#[derive(Clone)]
pub struct Journal {
    /// The last ticket given and the writer's queue: taken together, so tickets enter the
    /// queue in order whichever task makes an event.
    tickets: Arc<Mutex<Tickets>>,
    /// Every event up to this ticket is written.
    written: watch::Receiver<u64>,
    /// The file, read from its front and trimmed by the fan-out.
    pub file: Arc<JournalFile>,
    /// Marked changed each time events were appended: what the fan-out waits on.
    pub appended: watch::Receiver<()>,
}

impl Journal {
    /// Starts the task writing events to `file`.
    pub fn start(file: JournalFile) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (written_tx, written) = watch::channel(0);
        let (appended_tx, appended) = watch::channel(());
        let file = Arc::new(file);
        tokio::spawn(write(file.clone(), rx, written_tx, appended_tx));
        Self {
            tickets: Arc::new(Mutex::new(Tickets { last: 0, queue: tx })),
            written,
            file,
            appended,
        }
    }

    /// Queues `event` to be written; never waits. Its ticket: written once
    /// [`Journal::written_through`] it.
    pub fn add(&self, event: Event) -> u64 {
        let mut tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        tickets.last += 1;
        let ticket = tickets.last;
        if tickets.queue.send((ticket, event)).is_err() {
            tracing::error!("the webhook journal's writer is gone; an event is lost");
        }
        ticket
    }

    /// The last ticket given (0: none yet).
    pub fn last_ticket(&self) -> u64 {
        self.tickets.lock().unwrap_or_else(|e| e.into_inner()).last
    }

    /// Waits until every event up to `ticket` is written.
    pub async fn written_through(&self, ticket: u64) {
        if ticket == 0 {
            return;
        }
        let mut written = self.written.clone();
        // An error: the writer is gone (the hub stops); nothing more will be written.
        let _ = written.wait_for(|w| *w >= ticket).await;
    }
}

/// The first pause before a failed append is tried again, and the longest.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Appends what was queued meanwhile in one commit, then says how far events are written.
/// An append that fails (its disk full or failing) is tried again, with a growing pause,
/// until it is written: the tickets behind it stay unwritten meanwhile, so nothing waiting
/// for them (an HTTP answer, a chat line's acknowledgement) is told it is done.
async fn write(
    file: Arc<JournalFile>,
    mut rx: mpsc::UnboundedReceiver<(u64, Event)>,
    written: watch::Sender<u64>,
    appended: watch::Sender<()>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let through = batch.last().map_or(0, |(ticket, _)| *ticket);
        // The bodies are made here, off the hub's thread.
        let events: Arc<Vec<Journaled>> = Arc::new(batch.drain(..).map(|(_, e)| Journaled::from(&e)).collect());
        let mut pause = RETRY_FIRST;
        let mut failing = false;
        loop {
            let (file, events) = (file.clone(), events.clone());
            let result = tokio::task::spawn_blocking(move || file.append(&events))
                .await
                .unwrap_or_else(|e| panic!("the webhook journal's thread failed: {e}"));
            match result {
                Ok(()) => break,
                Err(e) => {
                    metrics::counter!(crate::metrics::WEBHOOK_JOURNAL_WRITE_FAILURES).increment(1);
                    if !failing {
                        tracing::error!(
                            error = %e,
                            "WEBHOOK JOURNAL UNWRITABLE (its disk is full or failing): the answers and acknowledgements of actions that make webhook events wait until it is written; trying again"
                        );
                    }
                    failing = true;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
        if failing {
            tracing::warn!("webhook journal writable again; waiting answers and acknowledgements go on");
        }
        file.publish_counts();
        appended.send_replace(());
        written.send_replace(through);
    }
}

#[cfg(test)]
mod tests;
