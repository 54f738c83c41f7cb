//! Tests of the webhook journal.

use super::*;

/// A fresh directory for one test's journal.
fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("switchboard-journal-{}", uuid::Uuid::new_v4().simple()))
}

fn event(n: u64) -> Event {
    Event {
        id: format!("e{n}"),
        event_type: "message.created",
        ordering_key: "c".into(),
        created_at: n as i64,
        data: serde_json::json!({"n": n}),
    }
}

/// Events made by several tasks are written, the wait for each ticket ends, and a reopened
/// file holds them in ticket order; what was removed stays removed.
#[tokio::test]
async fn events_are_written_in_ticket_order_and_kept_until_removed() {
    let dir = temp_dir();
    {
        let journal = Journal::start(JournalFile::open(&dir).unwrap());
        let mut tasks = vec![];
        for n in 0..4 {
            let journal = journal.clone();
            tasks.push(tokio::spawn(async move {
                let mut last = 0;
                for i in 0..25 {
                    last = journal.add(event(n * 100 + i));
                }
                journal.written_through(last).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        journal.written_through(journal.last_ticket()).await;
        let held = journal.file.front(usize::MAX).unwrap().events;
        assert_eq!(held.len(), 100);
        journal.file.remove_through(held[39].0).unwrap();
        // The writer ends once the handle is gone, and lets go of the file.
        let file = journal.file.clone();
        drop(journal);
        while std::sync::Arc::strong_count(&file) > 1 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    let file = JournalFile::open(&dir).unwrap();
    let held = file.front(usize::MAX).unwrap().events;
    assert_eq!(held.len(), 60, "the first 40 were removed");
    // Each task's events keep their order: tickets were given in the order made.
    for n in 0..4u64 {
        let mine: Vec<u64> = held
            .iter()
            .filter_map(|(_, e)| e.id[1..].parse::<u64>().ok())
            .filter(|id| id / 100 == n)
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
    }
    let body: serde_json::Value = serde_json::from_str(&held[0].1.body).unwrap();
    assert_eq!(body["type"], "message.created");
    drop(file);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A record that is not a journaled event is moved to the set-aside table, answered once
/// with why, and the events around it are read; the counts follow, and survive a reopening.
#[test]
fn an_undecodable_record_is_set_aside_and_the_others_read() {
    let dir = temp_dir();
    {
        let file = JournalFile::open(&dir).unwrap();
        file.append(&[Journaled::from(&event(1))]).unwrap();
        file.0.append(&[b"{\"from\": \"a newer version\"}".to_vec()]).unwrap();
        file.append(&[Journaled::from(&event(3))]).unwrap();
        assert_eq!(file.backlog(), 3);

        let front = file.front(10).unwrap();
        let ids: Vec<&str> = front.events.iter().map(|(_, e)| e.id.as_str()).collect();
        assert_eq!(ids, ["e1", "e3"]);
        assert_eq!(front.set_aside.len(), 1);
        assert_eq!(front.set_aside[0].0, 2, "set aside under its key");
        assert_eq!((file.backlog(), file.set_aside()), (2, 1));
        assert!(file.front(10).unwrap().set_aside.is_empty(), "set aside once");
    }
    let file = JournalFile::open(&dir).unwrap();
    assert_eq!((file.backlog(), file.set_aside()), (2, 1));
    std::fs::remove_dir_all(&dir).unwrap();
}
