//! Tests of `archive`.

use super::*;
use crate::store::*;

/// The memory store, taking at most 3 events a call and recording each call's size.
fn small() -> Arc<MemoryStore> {
    let mut store = MemoryStore::default();
    store.max_batch = Some(3);
    Arc::new(store)
}

/// Conversation `id` closed: an event the archive (and its spool) takes for any id.
pub(super) fn closed(id: &str) -> ArchiveEvent {
    ArchiveEvent::closed_for_tests(id)
}

/// Group commit: with `group_commit_ms` set, events arriving one by one soon after a
/// write wait for the next one together (each write, on the embedded store, is an
/// fdatasync), where without it each is written alone.
#[tokio::test]
async fn events_arriving_soon_after_a_write_share_the_next_one() {
    for (window_ms, most_calls) in [(0, 10), (500, 4)] {
        let store = small();
        let (archive, task) = Archive::start(store.clone(), 100, None).unwrap();
        archive.status.group_commit_ms.store(window_ms, Ordering::Relaxed);
        for seq in 1..=10 {
            archive.push_message(closed(&format!("c{seq}")));
            // Time for the writer to take it (and, without a window, to write it).
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(archive);
        task.await.unwrap();
        let calls = store.archive_calls.lock().unwrap().clone();
        assert_eq!(calls.iter().sum::<usize>(), 10);
        if window_ms == 0 {
            assert_eq!(calls.len(), most_calls, "one write each: {calls:?}");
        } else {
            // The first at once, the nine after it in the store's largest batches (3).
            assert!(calls.len() <= most_calls, "{calls:?}");
        }
    }
}

#[tokio::test]
async fn batches_are_no_larger_than_the_store_takes() {
    let store = small();
    let (archive, task) = Archive::start(store.clone(), 100, None).unwrap();
    for seq in 1..=10 {
        archive.push_message(closed(&format!("c{seq}")));
    }
    drop(archive);
    task.await.unwrap();
    let calls = store.archive_calls.lock().unwrap().clone();
    assert_eq!(calls.iter().sum::<usize>(), 10);
    assert!(calls.iter().all(|n| (1..=3).contains(n)), "{calls:?}");
}

/// During a store outage events held in the spool are durable (acknowledged) but not
/// stored: `stored` stays behind `committed` until the store has them, so what reads the
/// store (a restore after Redis lost its data) is not told they are there.
#[tokio::test]
async fn spooled_events_count_as_stored_only_once_the_store_has_them() {
    let store = small();
    store.archive_down.store(true, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let spool = spool::Spool::open(dir.path()).unwrap();
    let (archive, task) = Archive::start(store.clone(), 100, Some(spool)).unwrap();
    let mut progress = archive.progress.clone();
    for seq in 1..=3 {
        archive.push_message(closed(&format!("c{seq}")));
    }
    let held = *progress.wait_for(|p| p.committed >= 3).await.unwrap();
    assert!(held.degraded, "{held:?}");
    assert_eq!(held.stored, 0, "spooled, not stored: {held:?}");
    store.archive_down.store(false, Ordering::Relaxed);
    let written = tokio::time::timeout(Duration::from_secs(30), progress.wait_for(|p| p.stored >= 3))
        .await
        .expect("the store took the spooled events once back")
        .map(|p| *p)
        .unwrap();
    assert_eq!((written.committed, written.stored), (3, 3), "{written:?}");
    drop(archive);
    task.await.unwrap();
}

/// A store that is slow, not down: it takes a small write in time but not the whole
/// backlog. Retried whole, the same too-large write timed out again and again and the
/// backlog was never written (each retry costs what the last did); the writer now halves
/// what a write that timed out tried, and doubles it back after each that lands quickly.
#[tokio::test]
async fn a_store_too_slow_for_the_whole_backlog_still_gets_it_in_smaller_writes() {
    let store = Arc::new(MemoryStore::default());
    store.archive_hangs_above.store(2, Ordering::Relaxed);
    store.archive_down.store(true, Ordering::Relaxed);
    let (archive, task) = Archive::start(store.clone(), 100, None).unwrap();
    archive.status.write_timeout_ms.store(50, Ordering::Relaxed);
    let mut progress = archive.progress.clone();
    for seq in 1..=10 {
        archive.push_message(closed(&format!("c{seq}")));
    }
    // Held while the store is down, so the backlog is whole when it answers again.
    progress.wait_for(|p| p.degraded).await.unwrap();
    store.archive_down.store(false, Ordering::Relaxed);
    let written = tokio::time::timeout(Duration::from_secs(20), progress.wait_for(|p| p.stored >= 10))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the backlog was written in writes the store could take: {:?} {:?}",
                store.archive_calls.lock().unwrap(),
                *archive.progress.borrow()
            )
        })
        .map(|p| *p)
        .unwrap();
    assert_eq!(written.stored, 10, "{written:?}");
    drop(archive);
    task.await.unwrap();
}
