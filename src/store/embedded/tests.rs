//! The embedded store's own tests (the contract suite in `tests/contract` runs on every store).

use redb::ReadableTableMetadata;

use super::*;

/// A scratch directory removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    /// A fresh directory in the system's temporary one, its name saying what it is for.
    fn new(what: &str) -> Self {
        Scratch(std::env::temp_dir().join(format!("switchboard-{what}-{}", uuid::Uuid::new_v4().simple())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The opening of service conversation `id`: Carla served by Ann.
fn opening(id: &str, category: Option<&str>, queued_at: Millis, paired_at: Millis) -> ConversationOpened {
    ConversationOpened {
        id: id.into(),
        kind: ConversationKind::Service,
        category: category.map(str::to_string),
        customer_name: "Carla".into(),
        agent_id: "ann".into(),
        agent_name: "Ann".into(),
        queued_at,
        paired_at,
        customer: Default::default(),
    }
}

/// [`opening`] as an archive event.
pub(super) fn opened(id: &str, category: Option<&str>, queued_at: Millis, paired_at: Millis) -> ArchiveEvent {
    ArchiveEvent::Opened(opening(id, category, queued_at, paired_at))
}

/// A message with its id, seq, side, text and time.
pub(super) fn message(
    id: impl Into<crate::store::MessageId>,
    seq: u64,
    from: Side,
    text: impl Into<String>,
    at: Millis,
) -> ArchivedMessage {
    ArchivedMessage::plain(id, seq, from, text, at)
}

/// Message `seq` ("text <seq>" at 3) with a UUIDv7 id, as the hub names messages.
fn text_line(seq: u64, from: Side) -> ArchivedMessage {
    message(
        uuid::Uuid::now_v7().hyphenated().to_string(),
        seq,
        from,
        format!("text {seq}"),
        3,
    )
}

/// `message` said in conversation `conversation_id`, as an archive event.
pub(super) fn said(conversation_id: &str, message: ArchivedMessage) -> ArchiveEvent {
    ArchiveEvent::Message {
        conversation_id: conversation_id.into(),
        message,
    }
}

/// Conversation `id` (at seq 1) handed by Ann to agent `to` (id, name) at `at`, with `note`.
fn from_ann(id: &str, at: Millis, to: (&str, &str), note: &str) -> ConversationTransferred {
    ConversationTransferred {
        id: id.into(),
        at,
        after_seq: 1,
        from_agent_id: "ann".into(),
        from_agent_name: "Ann".into(),
        to_agent_id: Some(to.0.into()),
        to_agent_name: Some(to.1.into()),
        to_category: None,
        note: note.into(),
    }
}

/// Conversation `id` ended by its agent at `at`.
fn closed(id: &str, at: Millis) -> ArchiveEvent {
    ArchiveEvent::Closed(ConversationClosed {
        id: id.into(),
        ended_at: at,
        ended_by: Side::Agent,
        reason: EndReason::Ended,
        inferred: None,
    })
}

/// The seqs of conversation `id`'s messages, as `store` reads them.
async fn seqs(store: &EmbeddedStore, id: &str) -> Vec<u64> {
    let messages = store.conversation(id).await.unwrap().messages;
    messages.iter().map(|m| m.seq).collect()
}

/// Several journal checkpoints (each a durable redb commit, then the journal starting
/// again in place) lose nothing, read back at once and after a reopen.
#[tokio::test]
async fn archive_across_journal_checkpoints_reads_back_whole() {
    let dir = Scratch::new("ckpt");
    let store = EmbeddedStore::open(&dir.0).await.unwrap();
    store.archive(&[opened("c", None, 1, 1)]).await.unwrap();
    // ~1.1 KB a message: 4 MiB (a checkpoint) every ~3,800.
    let total = 12_000u64;
    for first in (1..=total).step_by(500) {
        let batch: Vec<ArchiveEvent> = (first..first + 500)
            .map(|seq| {
                said(
                    "c",
                    message(format!("m{seq}"), seq, Side::Customer, "x".repeat(1_000), seq as Millis),
                )
            })
            .collect();
        store.archive(&batch).await.unwrap();
    }
    assert_eq!(store.conversation("c").await.unwrap().messages.len() as u64, total);
    drop(store);
    let store = EmbeddedStore::open(&dir.0).await.unwrap();
    assert_eq!(
        seqs(&store, "c").await,
        (1..=total).collect::<Vec<_>>(),
        "after a reopen"
    );
}

/// A crash while one journal was being checkpointed leaves events in both, the
/// conversation's opening possibly in the file that looks newer: the replay applies
/// openings first, so no message is dropped as one of an unknown conversation.
#[tokio::test]
async fn both_journals_are_replayed_openings_first() {
    let dir = Scratch::new("two");
    std::fs::create_dir_all(&dir.0).unwrap();
    let line = |seq: u64| {
        said(
            "c",
            message(
                format!("m{seq}"),
                seq,
                Side::Customer,
                format!("text {seq}"),
                seq as Millis,
            ),
        )
    };
    {
        let (mut first, _) = Journal::open(&dir.0).unwrap();
        first.append(&[line(2)]).unwrap();
        let (mut second, _) = Journal::open_file(&dir.0, journal::SECOND_FILE_NAME).unwrap();
        second.append(&[opened("c", None, 1, 1), line(1)]).unwrap();
    }
    let store = EmbeddedStore::open(&dir.0).await.unwrap();
    assert_eq!(seqs(&store, "c").await, [1, 2]);
}

/// Transfers left in the journals are replayed after the openings and messages, before
/// the closings, whichever file they are in: a transfer is never dropped as one of an
/// unknown conversation, and its agents find the conversation after a reopen.
#[tokio::test]
async fn transfers_are_replayed_from_the_journals_and_indexed_by_agent() {
    let dir = Scratch::new("transfer");
    std::fs::create_dir_all(&dir.0).unwrap();
    let to_bob = from_ann("c", 7, ("bob", "Bob"), "a refund");
    {
        let (mut first, _) = Journal::open(&dir.0).unwrap();
        first
            .append(&[ArchiveEvent::Transferred(to_bob.clone()), closed("c", 9)])
            .unwrap();
        let (mut second, _) = Journal::open_file(&dir.0, journal::SECOND_FILE_NAME).unwrap();
        second
            .append(&[
                opened("c", Some("sales"), 1, 5),
                said("c", message("m1", 1, Side::Customer, "hello", 6)),
                ArchiveEvent::Transferred(to_bob.clone()),
            ])
            .unwrap();
    }
    let by = |agent: &str| ConversationFilter {
        agent_id: Some(agent.into()),
        ..ConversationFilter::default()
    };
    let page = Page { offset: 0, limit: 10 };
    for round in ["replayed", "after a reopen"] {
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        let c = store.conversation("c").await.unwrap();
        assert_eq!(c.transfers, vec![to_bob.clone()], "{round}");
        assert_eq!(
            (c.opened.agent_id.as_str(), c.opened.agent_name.as_str()),
            ("bob", "Bob")
        );
        assert!(c.closed.is_some(), "{round}");
        for agent in ["ann", "bob"] {
            let (found, total) = store.conversations(&by(agent), page).await.unwrap();
            assert_eq!((found, total), (vec![c.clone()], 1), "{agent}, {round}");
        }
        assert_eq!(store.conversations(&by("cid"), page).await.unwrap().1, 0);
    }
}

/// Agents' notes left in the journals are replayed whichever file they are in, before or
/// after their conversation's opening, each kept once (one is in both files), and stay
/// after a reopen; a note of a conversation never opened is kept and read alone.
#[tokio::test]
async fn notes_are_replayed_from_the_journals_once_each() {
    let dir = Scratch::new("notes");
    std::fs::create_dir_all(&dir.0).unwrap();
    let note = |conversation_id: &str, id: &str, at: Millis| ConversationNote {
        conversation_id: conversation_id.into(),
        id: id.into(),
        at,
        agent_id: "ann".into(),
        agent_name: "Ann".into(),
        text: format!("{id}: wants a refund — ✓"),
    };
    let (early, late, orphan) = (note("c", "n1", 6), note("c", "n2", 8), note("gone", "n3", 7));
    {
        let (mut first, _) = Journal::open(&dir.0).unwrap();
        first
            .append(&[
                ArchiveEvent::Note(late.clone()),
                closed("c", 9),
                ArchiveEvent::Note(orphan.clone()),
            ])
            .unwrap();
        let (mut second, _) = Journal::open_file(&dir.0, journal::SECOND_FILE_NAME).unwrap();
        second
            .append(&[
                ArchiveEvent::Note(early.clone()),
                opened("c", Some("sales"), 1, 5),
                ArchiveEvent::Note(late.clone()),
            ])
            .unwrap();
    }
    for round in ["replayed", "after a reopen"] {
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        let c = store.conversation("c").await.unwrap();
        assert_eq!(c.notes, vec![early.clone(), late.clone()], "{round}");
        assert!(c.closed.is_some(), "{round}");
        assert_eq!(store.conversation_notes("c").await.unwrap(), c.notes, "{round}");
        assert_eq!(
            store.conversation_notes("gone").await.unwrap(),
            vec![orphan.clone()],
            "{round}"
        );
        assert!(
            matches!(store.conversation("gone").await, Err(StoreError::NotFound)),
            "{round}"
        );
    }
}

/// Writes ~5 MB of archive through a store with `cache_bytes` of page cache, reads it
/// all back, and returns how many pages the cache evicted.
async fn evictions_after_a_long_run(cache_bytes: usize) -> u64 {
    let dir = Scratch::new("cache");
    let store = EmbeddedStore::open_with_cache(&dir.0, cache_bytes).await.unwrap();
    for c in 0..20 {
        let id = format!("conversation-{c}");
        let mut batch = vec![opened(&id, Some("general"), c, c)];
        batch.extend((1..=500).map(|seq| {
            said(
                &id,
                message(
                    uuid::Uuid::now_v7().to_string(),
                    seq,
                    Side::Customer,
                    "x".repeat(100),
                    seq as Millis,
                ),
            )
        }));
        store.archive(&batch).await.unwrap();
    }
    for c in 0..20 {
        let read = store.conversation(&format!("conversation-{c}")).await.unwrap();
        assert_eq!(read.messages.len(), 500);
    }
    store.db.cache_stats().evictions()
}

/// A version 1 file (with the message-id table) and a version 2 file (messages keyed
/// by conversation, binary or JSON values) are migrated on open: the old tables are
/// gone, every message reads as before, retries still do not duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_and_2_files_are_migrated() {
    for old_version in [SCHEMA_V1, SCHEMA_V2] {
        let dir = Scratch::new(&format!("v{old_version}"));
        let line = |seq: u64| message(format!("m{seq}"), seq, Side::Agent, format!("text {seq}"), 3);
        let event = |seq: u64| said("c1", line(seq));
        {
            let store = EmbeddedStore::open(&dir.0).await.unwrap();
            store.archive(&[opened("c1", None, 1, 2)]).await.unwrap();
            store.conversation("c1").await.unwrap();
            // Make it what that version wrote: its version number, its message rows
            // (m1 binary, m2 JSON as before the binary records) and, for version 1, message-id rows.
            let tx = store.db.begin_write().unwrap();
            {
                tx.open_table(META)
                    .unwrap()
                    .insert("schema_version", old_version)
                    .unwrap();
                tx.delete_table(message_log::LOG).unwrap();
                tx.delete_table(message_log::INDEX).unwrap();
                tx.delete_table(message_log::NUMBERS).unwrap();
                let mut rows = tx.open_table(message_log::MESSAGES_V2).unwrap();
                rows.insert(("c1", 1, "m1"), message_value::encode(&line(1)).as_slice())
                    .unwrap();
                let json = serde_json::to_vec(&line(2)).unwrap();
                rows.insert(("c1", 2, "m2"), json.as_slice()).unwrap();
                if old_version == SCHEMA_V1 {
                    let mut ids = tx.open_table(MESSAGE_IDS_V1).unwrap();
                    ids.insert(("c1", "m1"), 1).unwrap();
                    ids.insert(("c1", "m2"), 2).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        assert_eq!(schema_version(&store), SCHEMA_VERSION);
        let tx = store.db.begin_read().unwrap();
        assert!(
            tx.open_table(MESSAGE_IDS_V1).is_err(),
            "the message-id table is dropped"
        );
        assert!(
            tx.open_table(message_log::MESSAGES_V2).is_err(),
            "the old messages table is dropped"
        );
        drop(tx);
        assert_eq!(
            store.conversation("c1").await.unwrap().messages,
            [line(1), line(2)],
            "version {old_version}"
        );
        store.archive(&[event(2), event(3), event(2)]).await.unwrap();
        assert_eq!(seqs(&store, "c1").await, [1, 2, 3], "version {old_version}");
    }
}

/// Schema 4 stores the hub's message ids as 16 bytes (`message_log`): a version 3 file
/// (ids as text) is marked 4 on open and reads as before, its records unchanged, and
/// new messages go beside them. A build reading 4 refuses a newer file, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_3_file_is_marked_current_and_a_newer_one_is_refused() {
    let dir = Scratch::new("v3");
    let line = |seq: u64| text_line(seq, Side::Agent);
    let (first, second) = (line(1), line(2));
    {
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        store.archive(&[opened("c1", None, 1, 2)]).await.unwrap();
        store.conversation("c1").await.unwrap();
        // What version 3 wrote: the id as text (a 0x02 record).
        let tx = store.db.begin_write().unwrap();
        {
            tx.open_table(META).unwrap().insert("schema_version", 3).unwrap();
            let mut text_record = Vec::new();
            text_record.push(0x02);
            text_record.push(message_value::side_byte(first.from));
            text_record.extend_from_slice(&first.at.to_le_bytes());
            text_record.extend_from_slice(&(first.id.len() as u16).to_le_bytes());
            text_record.extend_from_slice(first.id.as_bytes());
            text_record.extend_from_slice(first.text.as_bytes());
            let number = tx
                .open_table(message_log::NUMBERS)
                .unwrap()
                .get("c1")
                .unwrap()
                .unwrap()
                .value();
            tx.open_table(message_log::LOG)
                .unwrap()
                .insert(0, text_record.as_slice())
                .unwrap();
            tx.open_table(message_log::INDEX)
                .unwrap()
                .insert((number, 1), (0, 1))
                .unwrap();
            tx.open_table(META).unwrap().insert("next_message_position", 1).unwrap();
        }
        tx.commit().unwrap();
    }
    let store = EmbeddedStore::open(&dir.0).await.unwrap();
    assert_eq!(schema_version(&store), SCHEMA_VERSION);
    store.archive(&[said("c1", second.clone())]).await.unwrap();
    assert_eq!(store.conversation("c1").await.unwrap().messages, [first, second]);
    let tx = store.db.begin_write().unwrap();
    tx.open_table(META)
        .unwrap()
        .insert("schema_version", SCHEMA_VERSION + 1)
        .unwrap();
    tx.commit().unwrap();
    drop(store);
    let refused = EmbeddedStore::open(&dir.0)
        .await
        .err()
        .expect("a newer file is refused")
        .to_string();
    assert!(refused.contains("schema version 7, this build reads 6"), "{refused}");
}

/// Bytes per archived message on a run shaped like the benchmark's: 100 chats
/// interleaved, 100-byte texts, batches as the archive writer makes them, 100,000
/// messages, measured after a checkpoint (a reopen). With one row per message keyed by
/// conversation (schema 2) leaves split half full: 382 B of pages and a 64 MiB file
/// (673 B) a message. With the log (schema 3) pages took 169 B a message and the file
/// 336 B (32 MiB: redb grows a file by doubling it up to 4 GiB, so the file is up to
/// twice the pages in use plus those freed since the last durable commit). With the
/// UUID ids as 16 bytes (schema 4) rows take 135 B, pages 145 B and the file 168 B
/// (16 MiB); pages must stay within 160 B a message, rows within 150, the file within
/// 400. The two journals are a fixed 16 MiB beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_message_takes_a_bounded_share_of_the_file() {
    let dir = Scratch::new("size");
    let store = EmbeddedStore::open_with_cache(&dir.0, 16 << 20).await.unwrap();
    let chats = 100u64;
    let opened: Vec<ArchiveEvent> = (0..chats)
        .map(|c| {
            ArchiveEvent::Opened(ConversationOpened {
                customer_name: format!("Customer {c}"),
                agent_id: uuid::Uuid::now_v7().to_string(),
                agent_name: format!("Agent {c}"),
                ..opening(
                    &uuid::Uuid::now_v7().to_string(),
                    Some("general"),
                    c as Millis,
                    c as Millis,
                )
            })
        })
        .collect();
    let ids: Vec<String> = opened
        .iter()
        .map(|e| match e {
            ArchiveEvent::Opened(o) => o.id.clone(),
            _ => unreachable!(),
        })
        .collect();
    store.archive(&opened).await.unwrap();
    let per_chat = 1_000u64;
    let mut batch = Vec::new();
    for seq in 1..=per_chat {
        for id in &ids {
            let from = if seq % 2 == 0 { Side::Agent } else { Side::Customer };
            let at = 1_795_279_801_122 + seq as Millis;
            batch.push(said(
                id,
                message(uuid::Uuid::now_v7().to_string(), seq, from, "x".repeat(100), at),
            ));
        }
        if batch.len() >= 200 {
            store.archive(&batch).await.unwrap();
            batch.clear();
        }
    }
    store.archive(&batch).await.unwrap();
    drop(store);
    // Reopened: everything in redb, as after a stop (once a background fold let go of it).
    let mut reopened = EmbeddedStore::open(&dir.0).await;
    for _ in 0..100 {
        if reopened.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        reopened = EmbeddedStore::open(&dir.0).await;
    }
    let store = reopened.unwrap();
    assert_eq!(
        store.conversation(&ids[7]).await.unwrap().messages.len() as u64,
        per_chat
    );
    let stats = store.db.begin_write().unwrap().stats().unwrap();
    drop(store);
    let messages = chats * per_chat;
    let file = std::fs::metadata(dir.0.join(FILE_NAME)).unwrap().len();
    let directory: u64 = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    eprintln!(
        "{messages} messages: rows {} B, pages {} B ({} leaf, {} branch), file {} B, directory {} B a message",
        stats.stored_bytes() / messages,
        stats.allocated_pages() * stats.page_size() as u64 / messages,
        stats.leaf_pages(),
        stats.branch_pages(),
        file / messages,
        directory / messages
    );
    const FILE_BYTES_PER_MESSAGE: u64 = 400;
    let per_message = file / messages;
    assert!(
        per_message <= FILE_BYTES_PER_MESSAGE,
        "{per_message} bytes of file a message"
    );
    let rows = stats.stored_bytes() / messages;
    assert!(rows <= 150, "{rows} bytes of rows a message");
    let pages = stats.allocated_pages() * stats.page_size() as u64 / messages;
    assert!(pages <= 160, "{pages} bytes of pages a message");
}

/// `EMBEDDED_CACHE_MB` bounds redb's page cache: with 1 MiB the cache gives pages back
/// while a long run writes and reads; with redb's default (1 GiB, what the hub used
/// before the setting) it keeps every page it ever touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_cache_is_bounded_by_the_setting() {
    assert!(
        evictions_after_a_long_run(1 << 20).await > 0,
        "a 1 MiB cache evicted nothing"
    );
    assert_eq!(evictions_after_a_long_run(DEFAULT_CACHE_BYTES).await, 0);
}

/// The search postings hold nothing of an erased conversation (nor of a retry's text that
/// was never stored): erasing every conversation leaves the table empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_search_postings() {
    let dir = Scratch::new("postings");
    let store = EmbeddedStore::open(&dir.0).await.unwrap();
    let opened = |id: &str| {
        ArchiveEvent::Opened(ConversationOpened {
            customer_name: "Carla Ünïcode".into(),
            ..opening(id, None, 1, 2)
        })
    };
    let line = |id: &str, seq: u64, text: &str| said(id, message(format!("{id}-{seq}"), seq, Side::Customer, text, 3));
    store
        .archive(&[
            opened("c1"),
            line("c1", 1, "passport 1234"),
            opened("c2"),
            line("c2", 1, "visa"),
        ])
        .await
        .unwrap();
    store
        .archive(&[ArchiveEvent::Transferred(from_ann(
            "c1",
            5,
            ("bo", "Bo Ærø"),
            "over to you",
        ))])
        .await
        .unwrap();
    store.archive(&[line("c1", 2, "another word")]).await.unwrap();
    // A seq taken already is a retry: its text (here another) is neither stored nor posted.
    store.archive(&[line("c2", 1, "strangers elsewhere")]).await.unwrap();
    let strangers = ConversationFilter {
        text: Some(SearchQuery::parse("strangers").unwrap()),
        ..Default::default()
    };
    assert_eq!(
        store
            .conversations(&strangers, Page { offset: 0, limit: 10 })
            .await
            .unwrap()
            .1,
        0
    );
    let postings = |store: &EmbeddedStore| {
        let tx = store.db.begin_read().unwrap();
        tx.open_table(redb::TableDefinition::<(&str, &str), ()>::new("search_terms"))
            .unwrap()
            .len()
            .unwrap()
    };
    store.ping().await.unwrap(); // folds what is held
    assert!(postings(&store) > 0);
    store
        .erase_conversations(&["c1".to_string(), "c2".to_string()])
        .await
        .unwrap();
    assert_eq!(postings(&store), 0);
}

/// A file written before search existed (schema 4, no postings) is indexed when opened
/// and marked schema 5: its old conversations are found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_4_file_is_indexed_for_search_when_opened() {
    let dir = Scratch::new("v4");
    {
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        store
            .archive(&[
                ArchiveEvent::Opened(ConversationOpened {
                    customer_name: "Olga".into(),
                    ..opening("old", None, 1, 2)
                }),
                said("old", message("m1", 1, Side::Customer, "Where is my invoice?", 3)),
            ])
            .await
            .unwrap();
        store.ping().await.unwrap();
        // Make it what schema 4 wrote: no postings.
        let tx = store.db.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert("schema_version", SCHEMA_V4)
            .unwrap();
        tx.delete_table(redb::TableDefinition::<(&str, &str), ()>::new("search_terms"))
            .unwrap();
        tx.commit().unwrap();
    }
    let store = EmbeddedStore::open(&dir.0).await.unwrap();
    assert_eq!(schema_version(&store), SCHEMA_VERSION);
    for typed in ["invoice", "olga", "where is my invoice"] {
        let filter = ConversationFilter {
            text: Some(SearchQuery::parse(typed).unwrap()),
            ..Default::default()
        };
        let (found, total) = store
            .conversations(&filter, Page { offset: 0, limit: 10 })
            .await
            .unwrap();
        assert_eq!((found.len(), total), (1, 1), "{typed}");
    }
}

/// A file archived by a build before the reports (no first-agent-line rows, no backfill
/// mark) gets every conversation's first agent line noted once when opened, so its old
/// conversations do not count as unanswered.
#[tokio::test]
async fn a_file_from_before_the_reports_has_its_first_agent_lines_backfilled_once() {
    let dir = Scratch::new("backfill");
    let line = |seq: u64, from: Side, at: Millis| said("old", message(format!("m{seq}"), seq, from, "x", at));
    {
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        store
            .archive(&[
                opened("old", Some("sales"), 1_000, 2_000),
                line(1, Side::Customer, 2_100),
                line(2, Side::Agent, 2_500),
                line(3, Side::Agent, 2_900),
            ])
            .await
            .unwrap();
    }
    {
        // As an older build left it: neither the rows nor the mark.
        let db = redb::Database::open(dir.0.join(FILE_NAME)).unwrap();
        let tx = db.begin_write().unwrap();
        tx.delete_table(reports::FIRST_AGENT_AT).unwrap();
        tx.open_table(META).unwrap().remove(reports::BACKFILLED).unwrap();
        tx.commit().unwrap();
    }
    let store = EmbeddedStore::open(&dir.0).await.unwrap();
    let facts = store.report_facts(0, 10_000).await.unwrap();
    assert_eq!(facts.conversations[0].first_agent_at, Some(2_500));
}

/// Schema 6 writes a fold's consecutive messages as one block (`message_log`): a version
/// 5 file (a record per message) is marked 6 on open, its messages read as they are, and
/// new ones, stored in a block, follow them in the same conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_5_file_is_marked_current_and_its_messages_read_beside_blocks() {
    let dir = Scratch::new("v5");
    let line = |seq: u64| text_line(seq, Side::Customer);
    let written: Vec<ArchivedMessage> = (1..=6).map(line).collect();
    {
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        store.archive(&[opened("c1", None, 1, 2)]).await.unwrap();
        store.ping().await.unwrap();
        // What version 5 wrote: a record per message, as `append` still writes them.
        let tx = store.db.begin_write().unwrap();
        {
            let mut writer = message_log::Writer::open(&tx).unwrap();
            let number = writer.number("c1").unwrap();
            for m in &written[..3] {
                writer.append(number, &m.borrowed()).unwrap();
            }
            writer.finish().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert("schema_version", SCHEMA_V5)
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let store = EmbeddedStore::open(&dir.0).await.unwrap();
    assert_eq!(schema_version(&store), SCHEMA_VERSION);
    let later: Vec<ArchiveEvent> = written[3..].iter().map(|m| said("c1", m.clone())).collect();
    store.archive(&later).await.unwrap();
    assert_eq!(store.conversation("c1").await.unwrap().messages, written);
}

/// The schema version `store`'s file is marked with.
fn schema_version(store: &EmbeddedStore) -> u64 {
    let tx = store.db.begin_read().unwrap();
    let meta = tx.open_table(META).unwrap();
    meta.get("schema_version").unwrap().unwrap().value()
}

/// Pruning in batches smaller than what is due takes every settled old delivery, a batch a
/// transaction, and leaves the pending one however old.
#[tokio::test]
async fn deliveries_are_pruned_in_batches_until_none_is_left() {
    let dir = Scratch::new("prune-batches");
    let store = EmbeddedStore::open(&dir.0).await.unwrap();
    for seq in 1..=6u64 {
        let status = if seq == 3 {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Delivered
        };
        store
            .add_delivery(WebhookDelivery::for_test(seq, status, 10))
            .await
            .unwrap();
    }
    assert_eq!(store.prune_deliveries_in_batches(100, 2).await.unwrap(), 5);
    assert_eq!(WebhookDelivery::seqs_of_a(&store).await, [3], "the pending one only");
    assert_eq!(store.prune_deliveries_in_batches(100, 2).await.unwrap(), 0);
}

/// The sweeps' looks at tables the archive's fold never writes (webhook deliveries, desk
/// settings and categories, API tokens, the mail outbox) leave the held events to the fold
/// thread instead of folding them on the caller's thread; a read of the archive still sees
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeps_reads_leave_the_fold_to_its_thread() {
    let dir = Scratch::new("apart");
    let store = EmbeddedStore::open(&dir.0).await.unwrap();
    // One event: far below a background fold's batch, so nothing folds it but a caller.
    store.archive(&[opened("c1", None, 1, 2)]).await.unwrap();
    let held = |store: &EmbeddedStore| lock(&store.archiving.unfolded).events;
    assert_eq!(held(&store), 1);
    store.webhook_private_addresses().await.unwrap();
    store.dying_deliveries(10).await.unwrap();
    assert!(store.webhooks().await.unwrap().is_empty());
    store.pending_deliveries(&["e1".to_string()], 10).await.unwrap();
    store.desk_setting("hours").await.unwrap();
    store.categories().await.unwrap();
    store.api_tokens().await.unwrap();
    store.claim_mails("alpha", 10, 20, 10).await.unwrap();
    assert_eq!(held(&store), 1, "a sweep's read folded the archive");
    // The archive's own reads fold first, as before.
    assert!(store.conversation("c1").await.is_ok());
    assert_eq!(held(&store), 0);
}

/// A fold gives each conversation it touches an index row and a posting whatever its
/// messages, so over many chats a fold of `FOLD_EVENTS` cost twice the CPU a message of
/// one over few: the next fold waits for `FOLD_EVENTS_PER_CONVERSATION` events a
/// conversation of the last (bounded), and reads still see every event held.
#[tokio::test]
async fn folds_wait_for_more_events_when_they_spread_over_many_conversations() {
    let scratch = Scratch::new("fold-spread");
    let store = EmbeddedStore::open(&scratch.0).await.unwrap();
    let chats = 300u64;
    let openings: Vec<ArchiveEvent> = (0..chats).map(|c| opened(&format!("c{c}"), None, 1, 1)).collect();
    store.archive(&openings).await.unwrap();
    let lines: Vec<ArchiveEvent> = (0..chats)
        .map(|c| said(&format!("c{c}"), message(format!("m{c}-1"), 1, Side::Customer, "hi", 2)))
        .collect();
    store.archive(&lines).await.unwrap();
    // A read folds what is held: 300 conversations' messages.
    assert_eq!(store.conversation("c0").await.unwrap().messages.len(), 1);
    let fold_at = store.archiving.fold_at.load(Ordering::Relaxed);
    assert_eq!(fold_at, 300 * FOLD_EVENTS_PER_CONVERSATION);
    assert_eq!(
        Archiving::fold_at_after(10_000),
        FOLD_EVENTS_MAX,
        "bounded however many conversations"
    );
    assert_eq!(Archiving::fold_at_after(3), FOLD_EVENTS, "never below FOLD_EVENTS");

    // More than FOLD_EVENTS held and not folded: a read sees them all the same.
    let seqs = (FOLD_EVENTS as u64 + 500) / chats;
    let more: Vec<ArchiveEvent> = (2..2 + seqs)
        .flat_map(|seq| {
            (0..chats).map(move |c| {
                said(
                    &format!("c{c}"),
                    message(format!("m{c}-{seq}"), seq, Side::Agent, "ok", 3),
                )
            })
        })
        .collect();
    assert!(more.len() > FOLD_EVENTS && more.len() < fold_at);
    store.archive(&more).await.unwrap();
    assert!(
        lock(&store.archiving.unfolded).events > FOLD_EVENTS,
        "held, not folded yet"
    );
    let read = store.conversation("c299").await.unwrap();
    assert_eq!(read.messages.len() as u64, 1 + seqs);
}
