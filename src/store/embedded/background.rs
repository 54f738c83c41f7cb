//! The embedded store's deferred archive work: folding held events into redb
//! and checkpointing a full journal, on one thread of its own at a lower CPU priority.
//!
//! Why: an archive batch is durable (and acknowledged) once it is in the journal; the
//! fold into redb (a few ms of CPU for 4,000 to 16,000 events) and a journal's checkpoint (a
//! fold and a durable redb commit, ~10 ms) can wait. Run on tokio's blocking pool, at
//! the priority of the websocket thread and of the journal's appends, they took the
//! core from them: with the hub on one core, a fold starting just before a frame came
//! in held that frame and the acknowledgements behind it for up to a scheduler slice
//! (profiled at 10k msg/s: the hand-off to the blocking pool waited up to 3.8 ms at
//! p99, and the acknowledgements' release up to 7.7 ms, against 1.5 ms on the memory
//! store). Niced, the thread runs in the time the others leave, and yields the core
//! as soon as one of them wakes. It still gets a share under full load (nice 10 weighs
//! about a tenth of a normal thread), and if it falls behind, the journals' turn-taking
//! holds appends until a checkpoint is done, so held events stay bounded by two journals.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use redb::Database;

use super::super::journal::Journal;
use super::Archiving;

/// The fold thread's nice value: below the hub's threads (0), not starved under load.
pub const FOLD_NICE: i32 = 10;

/// Work for the thread.
pub enum Job {
    /// Fold what is held into redb (one non-durable commit).
    Fold,
    /// Checkpoint a full journal, then give it back as the spare.
    Retire(Journal),
}

/// The thread and the way to it. Dropping it lets the job in hand finish, then joins
/// the thread, so the database is closed when the store's last handle is gone (a test
/// may open the same directory again at once).
pub struct Background {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    pub fn start(db: Arc<Database>, archiving: Arc<Archiving>) -> std::io::Result<Self> {
        // Two jobs at most wait: a fold is sent only when none is scheduled
        // (`Archiving::fold_scheduled`) and a retire only with the spare journal in hand,
        // which the one before gave back when it ended.
        let (jobs, rx) = sync_channel(2);
        let thread = std::thread::Builder::new()
            .name("archive-fold".into())
            .spawn(move || run(&db, &archiving, rx))?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Hands a job to the thread. Should it be gone (it panicked), the job runs here.
    pub fn send(&self, job: Job, db: &Database, archiving: &Archiving) {
        if let Some(Err(std::sync::mpsc::SendError(job))) = self.jobs.as_ref().map(|jobs| jobs.send(job)) {
            tracing::error!("embedded store: the archive's fold thread is gone; folding on the caller's thread");
            perform(job, db, archiving);
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: &Database, archiving: &Archiving, jobs: Receiver<Job>) {
    crate::niced::lower_this_thread(FOLD_NICE, "archive's fold thread");
    while let Ok(job) = jobs.recv() {
        perform(job, db, archiving);
    }
}

fn perform(job: Job, db: &Database, archiving: &Archiving) {
    match job {
        Job::Fold => {
            // A failure leaves the events held for the next fold (and in the journal for
            // the next start).
            if let Err(e) = archiving.fold(db) {
                tracing::warn!(error = %e, "embedded store: folding archived events into redb failed; retrying with the next");
            }
        }
        Job::Retire(journal) => archiving.retire(db, journal),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::EmbeddedStore;
    use super::super::tests::{message, opened, said};
    use crate::store::*;

    /// The nice value of this process's thread named `name`, if one runs.
    fn nice_of_thread(name: &str) -> Option<i64> {
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // Fields after the command's closing parenthesis: state is field 3, nice field 19.
            let after = &stat[stat.rfind(')')? + 2..];
            return after.split(' ').nth(16)?.parse().ok();
        }
        None
    }

    /// A fold of held events (and a journal's checkpoint) competes with nothing on the
    /// acknowledgement's path: on a busy core the websocket thread and the journal's
    /// appends come first. So it runs on a thread of its own, niced.
    #[tokio::test]
    async fn folds_run_on_a_niced_thread_of_their_own() {
        let dir = std::env::temp_dir().join(format!("switchboard-fold-{}", uuid::Uuid::new_v4().simple()));
        let store = EmbeddedStore::open(&dir).await.unwrap();
        store.archive(&[opened("c", None, 1, 1)]).await.unwrap();
        // Enough held events for a background fold.
        let batch: Vec<ArchiveEvent> = (1..=1_500u64)
            .map(|seq| {
                said(
                    "c",
                    message(format!("m{seq}"), seq, Side::Customer, "hello", seq as Millis),
                )
            })
            .collect();
        store.archive(&batch).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let nice = loop {
            if let Some(nice) = nice_of_thread("archive-fold") {
                break nice;
            }
            assert!(Instant::now() < deadline, "no thread named archive-fold");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(
            nice >= i64::from(super::FOLD_NICE),
            "the fold thread runs at nice {nice}"
        );
        let read = store.conversation("c").await.unwrap();
        assert_eq!(read.messages.len(), 1_500);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
