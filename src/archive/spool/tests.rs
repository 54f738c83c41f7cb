//! Tests of the write-ahead spool.

use super::*;
use crate::store::{ConversationClosed, ConversationNote, ConversationTransferred, EndReason, Side};

fn closed(id: &str) -> ArchiveEvent {
    ArchiveEvent::Closed(ConversationClosed {
        id: id.into(),
        ended_at: 1,
        ended_by: Side::Agent,
        reason: EndReason::Ended,
    })
}

/// A transfer (JSON like every spooled event) comes back as it went in, nulls included.
#[test]
fn a_transfer_comes_back_whole() {
    let dir = std::env::temp_dir().join(format!("switchboard-spool-{}", uuid::Uuid::new_v4().simple()));
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
    {
        let spool = Spool::open(&dir).unwrap();
        spool.append(&[encode(&to_line), encode(&taken)]).unwrap();
    }
    let spool = Spool::open(&dir).unwrap();
    assert_eq!(spool.load().unwrap(), vec![(1, to_line), (2, taken)]);
    drop(spool);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An agent's note (JSON like every spooled event) comes back as it went in.
#[test]
fn a_note_comes_back_whole() {
    let dir = std::env::temp_dir().join(format!("switchboard-spool-{}", uuid::Uuid::new_v4().simple()));
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
    let (first, empty) = (note("n1", "VIP — ünïcödé ✓\nsecond line"), note("n2", ""));
    {
        let spool = Spool::open(&dir).unwrap();
        spool.append(&[encode(&first), encode(&empty)]).unwrap();
    }
    let spool = Spool::open(&dir).unwrap();
    assert_eq!(spool.load().unwrap(), vec![(1, first), (2, empty)]);
    drop(spool);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn events_come_back_in_order_after_a_reopen_and_leave_once_removed() {
    let dir = std::env::temp_dir().join(format!("switchboard-spool-{}", uuid::Uuid::new_v4().simple()));
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
