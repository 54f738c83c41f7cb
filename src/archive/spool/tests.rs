//! Tests of the write-ahead spool.

use super::*;
use crate::archive::tests::closed;
use crate::store::{ConversationNote, ConversationTransferred};

/// A fresh directory for one test's spool.
fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("switchboard-spool-{}", uuid::Uuid::new_v4().simple()))
}

/// Two events (JSON like every spooled event) appended, then loaded after a reopen: they
/// come back as they went in, under keys 1 and 2.
fn assert_two_come_back_whole(first: ArchiveEvent, second: ArchiveEvent) {
    let dir = temp_dir();
    {
        let spool = Spool::open(&dir).unwrap();
        spool.append(&[encode(&first), encode(&second)]).unwrap();
    }
    let spool = Spool::open(&dir).unwrap();
    assert_eq!(spool.load().unwrap(), vec![(1, first), (2, second)]);
    drop(spool);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A transfer (JSON like every spooled event) comes back as it went in, nulls included.
#[test]
fn a_transfer_comes_back_whole() {
    let to_line = ArchiveEvent::Transferred(ConversationTransferred {
        id: "c".into(),
        at: 10,
        after_seq: 4,
        from_agent_id: "ann".into(),
        from_agent_name: "Ann".into(),
        to_agent_id: None,
        to_agent_name: None,
        to_category: Some("sales".into()),
        note: "wants a refund — ✓".into(),
    });
    let taken = ArchiveEvent::Transferred(ConversationTransferred {
        id: "c".into(),
        at: 20,
        after_seq: 4,
        from_agent_id: "ann".into(),
        from_agent_name: "Ann".into(),
        to_agent_id: Some("bob".into()),
        to_agent_name: Some("Bob".into()),
        to_category: Some("sales".into()),
        note: String::new(),
    });
    assert_two_come_back_whole(to_line, taken);
}

/// An agent's note (JSON like every spooled event) comes back as it went in.
#[test]
fn a_note_comes_back_whole() {
    let note = |id: &str, text: &str| {
        ArchiveEvent::Note(ConversationNote {
            conversation_id: "c".into(),
            id: id.into(),
            at: 10,
            agent_id: "ann".into(),
            agent_name: "Ann \"the\" agent".into(),
            text: text.into(),
        })
    };
    assert_two_come_back_whole(note("n1", "VIP — ünïcödé ✓\nsecond line"), note("n2", ""));
}

#[test]
fn events_come_back_in_order_after_a_reopen_and_leave_once_removed() {
    let dir = temp_dir();
    {
        let spool = Spool::open(&dir).unwrap();
        assert_eq!(spool.append(&[encode(&closed("a")), encode(&closed("b"))]).unwrap(), 1);
        assert_eq!(spool.append(&[encode(&closed("c"))]).unwrap(), 3);
    }
    let spool = Spool::open(&dir).unwrap();
    let loaded = spool.load().unwrap();
    assert_eq!(loaded, vec![(1, closed("a")), (2, closed("b")), (3, closed("c"))]);
    spool.remove_through(2).unwrap();
    assert_eq!(spool.load().unwrap(), vec![(3, closed("c"))]);
    assert_eq!(
        spool.append(&[encode(&closed("d"))]).unwrap(),
        4,
        "keys keep increasing"
    );
    spool.remove_through(4).unwrap();
    assert!(spool.load().unwrap().is_empty());
    assert_eq!(
        spool.append(&[encode(&closed("e"))]).unwrap(),
        1,
        "an empty spool starts again"
    );
    drop(spool);
    let _ = std::fs::remove_dir_all(&dir);
}
