//! The storage contract: the SAME test functions run against every backend.
//!
//! Each contract test is an async fn over `&dyn Store`; the `contract!` macro
//! instantiates all of them once per backend with a fresh, empty store.
//!
//! MongoDB: the tests read the server's URI from `SWITCHBOARD_TEST_MONGODB_URI`
//! (each test uses its own database and drops it afterwards). When it is unset
//! they FAIL, so a missing server is never mistaken for a pass. `make test`
//! starts one (scripts/with-mongo.sh).

use std::path::PathBuf;

use switchboard::core::bots::{Outcome, TakenOver};
use switchboard::store::*;

// ---------- fixtures ----------

fn account(id: &str, username: &str, created_at: Millis) -> Account {
    Account {
        id: id.to_string(),
        username: username.to_string(),
        display_name: format!("{username} display"),
        role: Role::Agent,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_string(),
        categories: vec!["sales".to_string(), "support".to_string()],
        max_chats: 3,
        enabled: true,
        created_at,
    }
}

fn category(id: &str, name: &str) -> Category {
    Category {
        id: id.to_string(),
        name: name.to_string(),
    }
}

/// Categories by (id, name), in the order given.
fn categories_named(ids_and_names: &[(&str, &str)]) -> Vec<Category> {
    ids_and_names.iter().map(|(id, name)| category(id, name)).collect()
}

fn opened(id: &str, category: Option<&str>, agent: &str, paired_at: Millis) -> ConversationOpened {
    ConversationOpened {
        id: id.to_string(),
        kind: if category.is_some() {
            ConversationKind::Service
        } else {
            ConversationKind::Buddy
        },
        category: category.map(str::to_string),
        customer_name: format!("customer of {id}"),
        agent_id: agent.to_string(),
        agent_name: format!("{agent} name"),
        queued_at: paired_at - 5,
        paired_at,
        customer: Default::default(),
    }
}

fn open(id: &str, category: Option<&str>, agent: &str, paired_at: Millis) -> ArchiveEvent {
    ArchiveEvent::Opened(opened(id, category, agent, paired_at))
}

fn msg_id(conv: &str, seq: u64) -> String {
    format!("{conv}-m{seq}")
}

/// Line `seq` of `conv`, by `from`.
fn line(conv: &str, seq: u64, from: Side, text: &str, at: Millis) -> ArchiveEvent {
    ArchiveEvent::Message {
        conversation_id: conv.into(),
        message: ArchivedMessage::plain(msg_id(conv, seq), seq, from, text, at),
    }
}

/// Line `seq` of `conv`, a bot's (on the agent's side, `via: bot`).
fn bot_line(conv: &str, seq: u64, at: Millis) -> ArchiveEvent {
    let mut message = ArchivedMessage::plain(msg_id(conv, seq), seq, Side::Agent, "the bot's line", at);
    message.via = Some(Via::Bot);
    ArchiveEvent::Message {
        conversation_id: conv.into(),
        message,
    }
}

/// Line `seq` of `conv` at 1000 + `seq`: the customer's when odd, the agent's when even.
fn message(conv: &str, seq: u64) -> ArchiveEvent {
    let from = if seq % 2 == 1 { Side::Customer } else { Side::Agent };
    line(
        conv,
        seq,
        from,
        &format!("message {seq} of {conv} — ünïcödé ✓"),
        1_000 + seq as Millis,
    )
}

/// The archived message of [`message`] (`conv`'s line `seq`) itself.
fn archived_message(conv: &str, seq: u64) -> ArchivedMessage {
    let ArchiveEvent::Message { message, .. } = message(conv, seq) else {
        unreachable!("a message event")
    };
    message
}

fn close(id: &str, reason: EndReason, ended_at: Millis) -> ArchiveEvent {
    ArchiveEvent::Closed(ConversationClosed {
        id: id.to_string(),
        ended_at,
        ended_by: Side::Agent,
        reason,
        inferred: None,
    })
}

fn seqs(c: &Conversation) -> Vec<u64> {
    c.messages.iter().map(|m| m.seq).collect()
}

/// The seqs `store` reads back of conversation `id`.
async fn seqs_of(store: &dyn Store, id: &str) -> Vec<u64> {
    seqs(&store.conversation(id).await.unwrap())
}

fn ids(cs: &[Conversation]) -> Vec<&str> {
    cs.iter().map(|c| c.opened.id.as_str()).collect()
}

/// Fails, showing what came instead, unless `result` is the store's "not found".
#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: StoreResult<T>) {
    assert!(
        matches!(result, Err(StoreError::NotFound)),
        "not a NotFound: {result:?}"
    );
}

/// Fails, showing what came instead, unless `result` is the store's "conflict".
#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: StoreResult<T>) {
    assert!(
        matches!(result, Err(StoreError::Conflict)),
        "not a Conflict: {result:?}"
    );
}

const ALL: Page = Page { offset: 0, limit: 1000 };

/// Archives chat `id` whole: opened in sales by a1 at 10, one customer line, ended at 20.
async fn archive_a_short_chat(store: &dyn Store, id: &str) {
    store
        .archive(&[
            open(id, Some("sales"), "a1", 10),
            message(id, 1),
            close(id, EndReason::Ended, 20),
        ])
        .await
        .unwrap();
}

// ---------- the contract ----------

/// How many conversations everyone's listing holds.
async fn listed_total(store: &dyn Store) -> u64 {
    store
        .conversations(&ConversationFilter::default(), ALL)
        .await
        .unwrap()
        .1
}

async fn ping_and_name(store: &dyn Store) {
    store.ping().await.unwrap();
    assert!(["memory", "embedded", "mongodb"].contains(&store.backend()));
}

async fn accounts(store: &dyn Store) {
    assert!(store.accounts().await.unwrap().is_empty());
    assert_not_found(store.account("a1").await);
    assert_not_found(store.account_by_username("alice").await);

    let alice = account("a1", "alice", 100);
    let bob = account("a2", "bob", 200);
    store.create_account(alice.clone()).await.unwrap();
    store.create_account(bob.clone()).await.unwrap();

    // Conflicts: same id, or same username under another id.
    assert_conflict(store.create_account(account("a1", "carol", 300)).await);
    assert_conflict(store.create_account(account("a3", "alice", 300)).await);

    assert_eq!(store.account("a1").await.unwrap(), alice);
    assert_eq!(store.account_by_username("bob").await.unwrap(), bob);

    // Update: every field, including the username (the old name is freed).
    let mut alice2 = alice.clone();
    alice2.username = "alicia".to_string();
    alice2.display_name = "Alicia".to_string();
    alice2.role = Role::Admin;
    alice2.categories = vec!["billing".to_string()];
    alice2.max_chats = 1;
    alice2.enabled = false;
    alice2.password_hash = "new-hash".to_string();
    store.update_account(alice2.clone()).await.unwrap();
    assert_eq!(store.account("a1").await.unwrap(), alice2);
    assert_eq!(store.account_by_username("alicia").await.unwrap(), alice2);
    assert_not_found(store.account_by_username("alice").await);
    // The freed name can be taken again.
    store.create_account(account("a3", "alice", 300)).await.unwrap();

    // Update conflicts and unknown ids.
    let mut clash = bob.clone();
    clash.username = "alicia".to_string();
    assert_conflict(store.update_account(clash).await);
    assert_eq!(
        store.account("a2").await.unwrap(),
        bob,
        "a failed update changes nothing"
    );
    assert_not_found(store.update_account(account("zz", "zed", 1)).await);
    // Keeping one's own username is no conflict.
    let mut bob2 = bob.clone();
    bob2.display_name = "Robert".to_string();
    store.update_account(bob2.clone()).await.unwrap();

    let mut all = store.accounts().await.unwrap();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(all, vec![alice2, bob2, account("a3", "alice", 300)]);
}

async fn categories(store: &dyn Store) {
    assert!(store.categories().await.unwrap().is_empty());
    // Ids deliberately not in alphabetical order: the listing must follow creation order.
    for (id, name) in [("zeta", "Sales"), ("alpha", "Support"), ("mid", "Billing")] {
        store.create_category(category(id, name)).await.unwrap();
    }
    assert_conflict(store.create_category(category("alpha", "Other")).await);
    assert_eq!(
        store.categories().await.unwrap(),
        categories_named(&[("zeta", "Sales"), ("alpha", "Support"), ("mid", "Billing")])
    );

    store.rename_category("alpha", "Customer care").await.unwrap();
    assert_not_found(store.rename_category("nope", "X").await);
    store.delete_category("zeta").await.unwrap();
    assert_not_found(store.delete_category("zeta").await);
    assert_not_found(store.delete_category("nope").await);
    store.create_category(category("beta", "Returns")).await.unwrap();
    // A deleted id may be created again; it goes to the end.
    store.create_category(category("zeta", "Sales again")).await.unwrap();
    assert_eq!(
        store.categories().await.unwrap(),
        categories_named(&[
            ("alpha", "Customer care"),
            ("mid", "Billing"),
            ("beta", "Returns"),
            ("zeta", "Sales again")
        ])
    );
}

/// Three conversations interleaved in one batch come back as three separate, complete records.
async fn archive_three_conversations(store: &dyn Store) {
    let batch = vec![
        open("c1", Some("sales"), "a1", 10_000),
        open("c2", Some("support"), "a2", 20_000),
        message("c1", 1),
        message("c2", 1),
        open("c3", None, "bob", 30_000),
        message("c1", 2),
        message("c3", 1),
        message("c2", 2),
        message("c1", 3),
        close("c1", EndReason::Ended, 11_000),
        message("c3", 2),
        close("c3", EndReason::Disconnect, 31_000),
    ];
    store.archive(&batch).await.unwrap();
    // A later batch, with messages arriving out of seq order.
    store
        .archive(&[
            message("c2", 4),
            message("c2", 3),
            close("c2", EndReason::Shutdown, 21_000),
        ])
        .await
        .unwrap();

    let c1 = store.conversation("c1").await.unwrap();
    assert_eq!(c1.opened, opened("c1", Some("sales"), "a1", 10_000));
    assert_eq!(seqs(&c1), vec![1, 2, 3]);
    assert_eq!(
        c1.messages[0],
        archived_message("c1", 1),
        "a message comes back field for field"
    );
    assert_eq!(
        c1.closed,
        Some(ConversationClosed {
            id: "c1".into(),
            ended_at: 11_000,
            ended_by: Side::Agent,
            reason: EndReason::Ended,
            inferred: None,
        })
    );

    let c2 = store.conversation("c2").await.unwrap();
    assert_eq!(seqs(&c2), vec![1, 2, 3, 4]);
    assert!(c2.messages.iter().all(|m| m.id.starts_with("c2-")));
    assert_eq!(c2.closed.unwrap().reason, EndReason::Shutdown);

    let c3 = store.conversation("c3").await.unwrap();
    assert_eq!(c3.opened.kind, ConversationKind::Buddy);
    assert_eq!(c3.opened.category, None);
    assert_eq!(seqs(&c3), vec![1, 2]);
    assert_eq!(c3.closed.unwrap().reason, EndReason::Disconnect);

    let (all, total) = store.conversations(&ConversationFilter::default(), ALL).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(ids(&all), vec!["c3", "c2", "c1"]);
    assert_eq!(all[2], store.conversation("c1").await.unwrap());
}

/// The same batch applied twice (and retries overlapping new work) never duplicates anything.
async fn idempotence(store: &dyn Store) {
    let batch = vec![
        open("c1", Some("sales"), "a1", 10_000),
        message("c1", 1),
        message("c1", 2),
        open("c2", None, "bob", 20_000),
        message("c2", 1),
        close("c1", EndReason::Ended, 11_000),
    ];
    store.archive(&batch).await.unwrap();
    store.archive(&batch).await.unwrap();
    let c1 = store.conversation("c1").await.unwrap();
    assert_eq!(seqs(&c1), vec![1, 2]);
    assert_eq!(c1.closed.as_ref().unwrap().reason, EndReason::Ended);
    assert_eq!(seqs_of(store, "c2").await, vec![1]);

    // A retry that overlaps new work: old messages skipped, new ones kept, in order.
    store
        .archive(&[message("c2", 1), message("c2", 2), message("c2", 1), message("c2", 3)])
        .await
        .unwrap();
    assert_eq!(seqs_of(store, "c2").await, vec![1, 2, 3]);

    // A close no later than the kept one (a retry, a second writer's), or a second opening
    // with other facts, does not overwrite what is kept.
    store
        .archive(&[
            close("c1", EndReason::Shutdown, 11_000),
            close("c1", EndReason::Shutdown, 10_500),
            ArchiveEvent::Opened(ConversationOpened {
                agent_name: "someone else".into(),
                ..opened("c1", None, "zz", 1)
            }),
        ])
        .await
        .unwrap();
    let again = store.conversation("c1").await.unwrap();
    assert_eq!(again, c1);
    // A later close wins: the conversation was continued and ended again.
    store
        .archive(&[close("c1", EndReason::Disconnect, 99_000)])
        .await
        .unwrap();
    let later = store.conversation("c1").await.unwrap();
    assert_eq!(
        later.closed.as_ref().map(|c| (c.ended_at, c.reason)),
        Some((99_000, EndReason::Disconnect))
    );
    assert_eq!(later.messages, c1.messages);
    let (all, total) = store.conversations(&ConversationFilter::default(), ALL).await.unwrap();
    assert_eq!((ids(&all), total), (vec!["c2", "c1"], 2));

    // An empty batch is fine.
    store.archive(&[]).await.unwrap();
}

/// A closing a node infers from a snapshot, of the visit paired at `visit_paired_at`.
fn inferred(id: &str, ended_at: Millis, visit_paired_at: Millis) -> ArchiveEvent {
    ArchiveEvent::Closed(ConversationClosed {
        id: id.to_string(),
        ended_at,
        ended_by: Side::System,
        reason: EndReason::Disconnect,
        inferred: Some(InferredClosing { visit_paired_at }),
    })
}

/// Conversation `id`'s stored closing: when, how, and whether it was inferred.
async fn closing(store: &dyn Store, id: &str) -> Option<(Millis, EndReason, bool)> {
    let c = store.conversation(id).await.unwrap();
    c.closed.map(|c| (c.ended_at, c.reason, c.inferred.is_some()))
}

/// The real closing of an agent's end at `at`, as [`closing`] gives it.
fn ended(at: Millis) -> Option<(Millis, EndReason, bool)> {
    Some((at, EndReason::Ended, false))
}

/// An inferred closing (a disconnect) at `at`, as [`closing`] gives it.
fn inferred_end(at: Millis) -> Option<(Millis, EndReason, bool)> {
    Some((at, EndReason::Disconnect, true))
}

/// An inferred closing (one a node infers from a snapshot, dated later than the real end)
/// never replaces the real one of its visit, however late it is dated, and is stored,
/// as inferred, where none was.
async fn an_inferred_closing_never_replaces_the_real_one(store: &dyn Store) {
    let c1_closed = [
        open("c1", Some("sales"), "a1", 10_000),
        open("c2", Some("sales"), "a1", 10_000),
        close("c1", EndReason::Ended, 11_000),
    ];
    store.archive(&c1_closed).await.unwrap();
    let late = [inferred("c1", 12_000, 10_000), inferred("c2", 12_000, 10_000)];
    store.archive(&late).await.unwrap();
    assert_eq!(closing(store, "c1").await, ended(11_000), "the real closing stands");
    assert_eq!(
        closing(store, "c2").await,
        inferred_end(12_000),
        "where none was, it is the closing, kept as inferred"
    );
}

/// The node that applied the end writes the real closing after the node that inferred it
/// (its spool flushed later): the real one, dated earlier, replaces the inferred one; the
/// inferred one sent again changes nothing.
async fn a_real_closing_replaces_an_inferred_one_stored_first(store: &dyn Store) {
    store.archive(&[open("c1", Some("sales"), "a1", 10_000)]).await.unwrap();
    store.archive(&[inferred("c1", 12_000, 10_000)]).await.unwrap();
    store.archive(&[close("c1", EndReason::Ended, 11_000)]).await.unwrap();
    let why = "the real closing replaces the inferred one";
    assert_eq!(closing(store, "c1").await, ended(11_000), "{why}");
    store.archive(&[inferred("c1", 12_000, 10_000)]).await.unwrap();
    let why = "the inferred one again changes nothing";
    assert_eq!(closing(store, "c1").await, ended(11_000), "{why}");
}

/// A conversation continued after its first visit ended (closed really at 11 000): its
/// second visit, paired at 20 000, closed by an inferred closing, shows that end, not the
/// first visit's; the second visit's real closing replaces it, and the first visit's
/// closing arriving late replaces neither.
async fn an_inferred_closing_of_a_later_visit_replaces_the_earlier_visits(store: &dyn Store) {
    let first_visits = [
        open("c1", Some("sales"), "a1", 10_000),
        open("c2", Some("sales"), "a1", 10_000),
        close("c1", EndReason::Ended, 11_000),
        close("c2", EndReason::Ended, 11_000),
    ];
    store.archive(&first_visits).await.unwrap();
    let second_visit_lost = [inferred("c1", 25_000, 20_000), inferred("c2", 25_000, 20_000)];
    store.archive(&second_visit_lost).await.unwrap();
    for id in ["c1", "c2"] {
        let why = "the second visit's inferred closing replaces the first visit's";
        assert_eq!(closing(store, id).await, inferred_end(25_000), "{id}: {why}");
    }
    let real_ends = [
        close("c1", EndReason::Ended, 22_000),
        close("c2", EndReason::Ended, 11_000),
    ];
    store.archive(&real_ends).await.unwrap();
    let why = "the second visit's real closing replaces its inferred one";
    assert_eq!(closing(store, "c1").await, ended(22_000), "{why}");
    let why = "the first visit's closing, late, does not replace the second visit's";
    assert_eq!(closing(store, "c2").await, inferred_end(25_000), "{why}");
}

/// Events for a conversation that was never opened are dropped, and create nothing.
async fn unknown_conversation(store: &dyn Store) {
    assert_not_found(store.conversation("nope").await);
    store
        .archive(&[message("ghost", 1), close("ghost", EndReason::Expiry, 5)])
        .await
        .unwrap();
    assert_not_found(store.conversation("ghost").await);
    assert_eq!(listed_total(store).await, 0);
    // In one batch, what precedes the opening is dropped and what follows it is kept.
    store
        .archive(&[message("late", 1), open("late", None, "bob", 7), message("late", 2)])
        .await
        .unwrap();
    assert_eq!(seqs_of(store, "late").await, vec![2]);
    // A closing before the opening is dropped too; one after a known opening is kept.
    store
        .archive(&[close("early", EndReason::Ended, 8), open("early", None, "bob", 8)])
        .await
        .unwrap();
    assert_eq!(store.conversation("early").await.unwrap().closed, None);
    store
        .archive(&[
            message("early", 1),
            close("early", EndReason::Expiry, 9),
            open("early", None, "x", 1),
        ])
        .await
        .unwrap();
    let early = store.conversation("early").await.unwrap();
    assert_eq!(
        (seqs(&early), early.closed.unwrap().reason),
        (vec![1], EndReason::Expiry)
    );
    assert_eq!(early.opened, opened("early", None, "bob", 8));
}

async fn filters_and_paging(store: &dyn Store) {
    // id, category, agent, paired_at
    let rows = [
        ("k1", Some("sales"), "a1", 1_000),
        ("k2", Some("support"), "a1", 2_000),
        ("k3", Some("sales"), "a2", 3_000),
        ("k4", None, "a1", 4_000),
        ("k5", Some("sales"), "a1", 5_000),
        ("k6", Some("support"), "a2", 6_000),
        ("k7", Some("sales"), "a2", 6_000), // same paired time as k6: ties newest-id first
    ];
    // Opened out of time order, across two batches.
    let mut events: Vec<ArchiveEvent> = rows.iter().rev().map(|(id, c, a, t)| open(id, *c, a, *t)).collect();
    events.push(message("k5", 1));
    store.archive(&events[..3]).await.unwrap();
    store.archive(&events[3..]).await.unwrap();

    let list = |filter: ConversationFilter, page: Page| async move {
        let (cs, total) = store.conversations(&filter, page).await.unwrap();
        (cs.iter().map(|c| c.opened.id.clone()).collect::<Vec<_>>(), total)
    };
    let f = ConversationFilter::default;
    // category, agent, from (inclusive), to (exclusive): the ids listed, newest first, and the total.
    let filter =
        |category: Option<&str>, agent: Option<&str>, from: Option<Millis>, to: Option<Millis>| ConversationFilter {
            category: category.map(String::from),
            agent_id: agent.map(String::from),
            from,
            to,
            ..f()
        };
    let cases: [(ConversationFilter, &[&str], u64); 11] = [
        (f(), &["k7", "k6", "k5", "k4", "k3", "k2", "k1"], 7),
        (filter(Some("sales"), None, None, None), &["k7", "k5", "k3", "k1"], 4),
        (filter(None, Some("a1"), None, None), &["k5", "k4", "k2", "k1"], 4),
        (filter(Some("sales"), Some("a1"), None, None), &["k5", "k1"], 2),
        (filter(None, None, Some(2_000), Some(5_000)), &["k4", "k3", "k2"], 3),
        (filter(None, None, Some(5_000), None), &["k7", "k6", "k5"], 3),
        (filter(None, None, None, Some(2_000)), &["k1"], 1),
        (filter(None, Some("a2"), Some(3_001), Some(7_000)), &["k7", "k6"], 2),
        (filter(Some("sales"), None, Some(1_000), Some(3_000)), &["k1"], 1),
        (filter(None, Some("nobody"), None, None), &[], 0),
        (filter(None, None, Some(5_000), Some(5_000)), &[], 0),
    ];
    for (filter, ids, total) in cases {
        let expected = (ids.iter().map(|id| id.to_string()).collect::<Vec<_>>(), total);
        assert_eq!(list(filter.clone(), ALL).await, expected, "{filter:?}");
    }
    let by_cat = filter(Some("sales"), None, None, None);
    let by_agent = filter(None, Some("a1"), None, None);

    // Paging: the total is before paging; pages are consecutive slices of the newest-first order.
    assert_eq!(
        list(f(), Page { offset: 0, limit: 3 }).await,
        (vec!["k7".into(), "k6".into(), "k5".into()], 7)
    );
    assert_eq!(
        list(f(), Page { offset: 3, limit: 3 }).await,
        (vec!["k4".into(), "k3".into(), "k2".into()], 7)
    );
    assert_eq!(list(f(), Page { offset: 6, limit: 3 }).await, (vec!["k1".into()], 7));
    assert_eq!(list(f(), Page { offset: 7, limit: 3 }).await, (vec![], 7));
    assert_eq!(list(f(), Page { offset: 100, limit: 3 }).await, (vec![], 7));
    assert_eq!(list(f(), Page { offset: 0, limit: 0 }).await, (vec![], 7));
    assert_eq!(
        list(by_agent, Page { offset: 1, limit: 2 }).await,
        (vec!["k4".into(), "k2".into()], 4)
    );
    assert_eq!(
        list(by_cat, Page { offset: 3, limit: 10 }).await,
        (vec!["k1".into()], 4)
    );

    // Listed conversations are whole records, messages included.
    let (page, _) = store
        .conversations(&ConversationFilter::default(), Page { offset: 2, limit: 1 })
        .await
        .unwrap();
    assert_eq!(page[0].opened, opened("k5", Some("sales"), "a1", 5_000));
    assert_eq!(seqs(&page[0]), vec![1]);
}

fn transfer(
    conv: &str,
    at: Millis,
    after_seq: u64,
    from: &str,
    to: Option<&str>,
    category: Option<&str>,
) -> ConversationTransferred {
    ConversationTransferred {
        id: conv.to_string(),
        at,
        after_seq,
        from_agent_id: from.to_string(),
        from_agent_name: format!("{from} name"),
        to_agent_id: to.map(str::to_string),
        to_agent_name: to.map(|a| format!("{a} name")),
        to_category: category.map(str::to_string),
        note: format!("note at {at} — ünïcödé"),
    }
}

fn transferred(t: &ConversationTransferred) -> ArchiveEvent {
    ArchiveEvent::Transferred(t.clone())
}

/// Transfers are kept once each, in time order; the agent who has the conversation now is
/// its agent; every agent who served it reads and lists it, and no one else does.
async fn transfers_are_kept_once_and_listed_for_every_agent_who_served(store: &dyn Store) {
    // a1 hands it to a2, a2 puts it in the sales line, a3 takes it from there.
    let to_agent = transfer("t", 2_000, 2, "a1", Some("a2"), None);
    let to_line = transfer("t", 3_000, 3, "a2", None, Some("sales"));
    let taken = transfer("t", 4_000, 3, "a2", Some("a3"), Some("sales"));
    store
        .archive(&[
            open("t", Some("sales"), "a1", 1_000),
            message("t", 1),
            message("t", 2),
            transferred(&to_agent),
            message("t", 3),
            open("mine", Some("support"), "a1", 500),
            open("theirs", Some("sales"), "a9", 5_000),
        ])
        .await
        .unwrap();
    let once = store.conversation("t").await.unwrap();
    assert_eq!(once.transfers, vec![to_agent.clone()]);
    assert_eq!(
        (once.opened.agent_id.as_str(), once.opened.agent_name.as_str()),
        ("a2", "a2 name")
    );
    // The same transfer again (a retried batch, another node): kept once.
    store
        .archive(&[transferred(&to_agent), transferred(&to_line)])
        .await
        .unwrap();
    store.archive(&[transferred(&to_agent)]).await.unwrap();
    let waiting = store.conversation("t").await.unwrap();
    assert_eq!(waiting.transfers, vec![to_agent.clone(), to_line.clone()]);
    assert_eq!(waiting.opened.agent_id, "a2", "waiting in a line changes no agent");
    store
        .archive(&[
            transferred(&taken),
            message("t", 4),
            transferred(&to_line),
            close("t", EndReason::Ended, 9_000),
        ])
        .await
        .unwrap();

    let t = store.conversation("t").await.unwrap();
    assert_eq!(t.transfers, vec![to_agent, to_line, taken]);
    assert_eq!(
        t.opened,
        ConversationOpened {
            agent_id: "a3".into(),
            agent_name: "a3 name".into(),
            ..opened("t", Some("sales"), "a1", 1_000)
        }
    );
    assert_eq!(seqs(&t), vec![1, 2, 3, 4]);
    assert_eq!(t.closed.as_ref().unwrap().reason, EndReason::Ended);
    for agent in ["a1", "a2", "a3"] {
        assert!(t.served_by(agent), "{agent}");
    }
    assert!(!t.served_by("a9"));

    let list = |agent: &str, category: Option<&str>, page: Page| {
        let filter = ConversationFilter {
            agent_id: Some(agent.to_string()),
            category: category.map(str::to_string),
            ..ConversationFilter::default()
        };
        async move {
            let (cs, total) = store.conversations(&filter, page).await.unwrap();
            (cs.iter().map(|c| c.opened.id.clone()).collect::<Vec<_>>(), total)
        }
    };
    // Every agent who served it finds it, whole; the one who has it now once.
    assert_eq!(list("a1", None, ALL).await, (vec!["t".into(), "mine".into()], 2));
    assert_eq!(list("a2", None, ALL).await, (vec!["t".into()], 1));
    assert_eq!(list("a3", None, ALL).await, (vec!["t".into()], 1));
    assert_eq!(list("a9", None, ALL).await, (vec!["theirs".into()], 1));
    assert_eq!(list("a4", None, ALL).await, (vec![], 0), "an agent who never served it");
    let (found, _) = store
        .conversations(
            &ConversationFilter {
                agent_id: Some("a2".into()),
                ..ConversationFilter::default()
            },
            ALL,
        )
        .await
        .unwrap();
    assert_eq!(found, vec![t.clone()]);
    // With the other filters and paging.
    assert_eq!(list("a1", Some("sales"), ALL).await, (vec!["t".into()], 1));
    assert_eq!(list("a1", Some("support"), ALL).await, (vec!["mine".into()], 1));
    assert_eq!(list("a2", Some("support"), ALL).await, (vec![], 0));
    assert_eq!(
        list("a1", None, Page { offset: 1, limit: 1 }).await,
        (vec!["mine".into()], 2)
    );
    assert_eq!(
        list("a1", None, Page { offset: 0, limit: 1 }).await,
        (vec!["t".into()], 2)
    );
    assert_eq!(list("a1", None, Page { offset: 2, limit: 5 }).await, (vec![], 2));
    let since = ConversationFilter {
        agent_id: Some("a1".into()),
        from: Some(1_000),
        to: Some(5_000),
        ..ConversationFilter::default()
    };
    assert_eq!(store.conversations(&since, ALL).await.unwrap().1, 1);
    // Everyone's listing holds each conversation once.
    assert_eq!(listed_total(store).await, 3);
}

/// Transfers arriving out of time order read back in time order, and the agent is the one
/// of the latest transfer to an agent; of one time, in arrival order. A transfer of a
/// conversation whose opening is not stored is dropped, as a message is.
async fn transfers_out_of_order_and_of_unknown_conversations(store: &dyn Store) {
    let first = transfer("u", 2_000, 1, "a1", Some("a2"), None);
    let second = transfer("u", 3_000, 1, "a2", Some("a3"), None);
    let same_time = transfer("u", 3_000, 1, "a2", None, Some("sales"));
    store.archive(&[open("u", Some("sales"), "a1", 1_000)]).await.unwrap();
    store.archive(&[transferred(&second)]).await.unwrap();
    store
        .archive(&[transferred(&first), transferred(&same_time)])
        .await
        .unwrap();
    let u = store.conversation("u").await.unwrap();
    assert_eq!(u.transfers, vec![first.clone(), second, same_time]);
    assert_eq!(u.opened.agent_id, "a3", "the latest transfer to an agent wins");
    for agent in ["a1", "a2", "a3"] {
        let filter = ConversationFilter {
            agent_id: Some(agent.into()),
            ..ConversationFilter::default()
        };
        assert_eq!(store.conversations(&filter, ALL).await.unwrap().1, 1, "{agent}");
    }

    // The same transfer by two writers at once (two nodes): kept once.
    let again = transfer("u", 5_000, 2, "a3", Some("a4"), None);
    let batch = [transferred(&again), transferred(&first)];
    let (one, other) = tokio::join!(store.archive(&batch), store.archive(&batch));
    one.unwrap();
    other.unwrap();
    let u = store.conversation("u").await.unwrap();
    assert_eq!(u.transfers.len(), 4);
    assert_eq!((u.transfers[3].clone(), u.opened.agent_id.as_str()), (again, "a4"));

    // Unknown, or before its opening in the batch: dropped, creating nothing.
    let ghost = transfer("ghost", 1, 0, "a1", Some("a2"), None);
    store.archive(&[transferred(&ghost)]).await.unwrap();
    assert_not_found(store.conversation("ghost").await);
    let early = transfer("early", 9, 0, "a1", Some("a2"), None);
    store
        .archive(&[transferred(&early), open("early", None, "a1", 8)])
        .await
        .unwrap();
    let e = store.conversation("early").await.unwrap();
    assert_eq!((e.transfers, e.opened.agent_id.as_str()), (vec![], "a1"));
    let a2 = ConversationFilter {
        agent_id: Some("a2".into()),
        ..ConversationFilter::default()
    };
    assert_eq!(ids(&store.conversations(&a2, ALL).await.unwrap().0), vec!["u"]);
}

fn note_of(conv: &str, id: &str, at: Millis, agent: &str) -> ConversationNote {
    ConversationNote {
        conversation_id: conv.to_string(),
        id: id.to_string(),
        at,
        agent_id: agent.to_string(),
        agent_name: format!("{agent} name"),
        text: format!("note {id} of {conv} — ünïcödé ✓\n\"quoted\""),
    }
}

fn noted(n: &ConversationNote) -> ArchiveEvent {
    ArchiveEvent::Note(n.clone())
}

/// Agents' notes are kept once by id (the same note again in a batch, in a later batch,
/// and from two writers at once), read back by `at` then id, with the conversation and
/// alone; listings leave them out; a conversation's notes are its own, not another's.
async fn notes_are_kept_once_by_id_in_time_order(store: &dyn Store) {
    let first = note_of("n", "n-01", 2_000, "a1");
    let second = note_of("n", "n-02", 3_000, "a1");
    // Of one time, by id: "n-00" before "n-03" whatever their arrival.
    let same_time_late_id = note_of("n", "n-03", 2_500, "a2");
    let same_time_early_id = note_of("n", "n-00", 2_500, "a2");
    let other = note_of("n2", "n-01", 1_000, "a9");
    store
        .archive(&[
            open("n", Some("sales"), "a1", 1_000),
            message("n", 1),
            noted(&second),
            noted(&first),
            noted(&second),
            message("n", 2),
            open("n2", Some("sales"), "a9", 1_500),
            noted(&other),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.conversation_notes("n").await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    // A retried batch: kept once, and a second writer of the same id changes nothing.
    let rewritten = ConversationNote {
        text: "another text under the same id".into(),
        ..first.clone()
    };
    store
        .archive(&[noted(&first), noted(&rewritten), noted(&same_time_late_id)])
        .await
        .unwrap();
    // Two writers with the same batch at once (two nodes, or a retry racing its original).
    let batch = [noted(&same_time_early_id), noted(&second), message("n", 3)];
    let (one, two) = tokio::join!(store.archive(&batch), store.archive(&batch));
    one.unwrap();
    two.unwrap();

    let want = vec![first, same_time_early_id, same_time_late_id, second];
    assert_eq!(store.conversation_notes("n").await.unwrap(), want);
    let n = store.conversation("n").await.unwrap();
    assert_eq!(n.notes, want);
    assert_eq!(seqs(&n), vec![1, 2, 3], "notes are not messages");
    assert_eq!(n.opened.agent_id, "a1", "a note changes no agent");
    assert_eq!(store.conversation("n2").await.unwrap().notes, vec![other.clone()]);
    assert_eq!(store.conversation_notes("n2").await.unwrap(), vec![other]);

    // Listings leave the notes out (the conversation read whole has them).
    let (all, total) = store.conversations(&ConversationFilter::default(), ALL).await.unwrap();
    assert_eq!((ids(&all), total), (vec!["n2", "n"], 2));
    assert!(all.iter().all(|c| c.notes.is_empty()));
    assert_eq!(all[1], Conversation { notes: vec![], ..n });
}

fn opened_by(id: &str, paired_at: Millis, email: Option<&str>, visitor: Option<&str>) -> ArchiveEvent {
    let mut o = opened(id, Some("sales"), "a1", paired_at);
    o.customer = CustomerProfile {
        email: email.map(str::to_string),
        visitor: visitor.map(str::to_string),
        page: Some("https://shop.example/cart".into()),
        zone: Some("Europe/Berlin".into()),
        identity: None,
    };
    ArchiveEvent::Opened(o)
}

/// An opening by a customer whose identity (`core::identity`) verified.
fn opened_as(id: &str, paired_at: Millis, visitor: &str, identity: &str) -> ArchiveEvent {
    let ArchiveEvent::Opened(mut o) = opened_by(id, paired_at, None, Some(visitor)) else {
        unreachable!("an opening")
    };
    o.customer.identity = Some(identity.to_string());
    ArchiveEvent::Opened(o)
}

/// A customer's details are kept with the opening (the first opening's win) and read back
/// whole; their conversations are found by email (any case) where given, else by visitor
/// key, newest first, at most the limit; an email given later is found by from then on,
/// and one given for an unknown conversation is `NotFound`.
async fn customers_are_found_by_email_else_visitor_key(store: &dyn Store) {
    const V1: &str = "visitor-key-000001";
    const V2: &str = "visitor-key-000002";
    store
        .archive(&[
            opened_by("c1", 1_000, None, Some(V1)),
            opened_by("c2", 2_000, Some("Ann@Example.com"), Some(V1)),
            opened_by("c3", 3_000, Some("ann@example.com"), Some(V2)),
            opened_by("c4", 4_000, None, Some(V2)),
            open("plain", Some("sales"), "a1", 5_000),
            // A second opening of c1 with other details changes nothing.
            opened_by("c1", 1_000, Some("other@example.com"), None),
        ])
        .await
        .unwrap();
    let c2 = store.conversation("c2").await.unwrap();
    assert_eq!(c2.opened.customer.email.as_deref(), Some("Ann@Example.com"));
    assert_eq!(c2.opened.customer.page.as_deref(), Some("https://shop.example/cart"));
    assert_eq!(c2.opened.customer.zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(
        store.conversation("plain").await.unwrap().opened.customer,
        CustomerProfile::default()
    );
    let found = |key: CustomerKey, limit| async move {
        let list = store.customer_conversations(&key, limit).await.unwrap();
        list.iter().map(|c| c.opened.id.clone()).collect::<Vec<_>>()
    };
    let by_email = CustomerKey::Email("ann@example.com".into());
    assert_eq!(found(by_email.clone(), 10).await, vec!["c3", "c2"]);
    assert_eq!(found(by_email.clone(), 1).await, vec!["c3"]);
    assert_eq!(found(CustomerKey::Visitor(V1.into()), 10).await, vec!["c2", "c1"]);
    assert_eq!(
        found(CustomerKey::Email("other@example.com".into()), 10).await,
        Vec::<String>::new()
    );
    // Listed as the listing lists them: with their messages.
    store.archive(&[message("c3", 1)]).await.unwrap();
    let listed = store.customer_conversations(&by_email, 1).await.unwrap();
    assert_eq!(seqs(&listed[0]), vec![1]);

    // c4's customer gives their email during the chat.
    store.set_customer_email("c4", "Ann@example.com").await.unwrap();
    assert_eq!(found(by_email.clone(), 10).await, vec!["c4", "c3", "c2"]);
    assert_eq!(found(CustomerKey::Visitor(V2.into()), 10).await, vec!["c4", "c3"]);
    // And corrects it: found by the new one only.
    store.set_customer_email("c4", "bob@example.com").await.unwrap();
    assert_eq!(found(by_email, 10).await, vec!["c3", "c2"]);
    assert_eq!(
        found(CustomerKey::Email("bob@example.com".into()), 10).await,
        vec!["c4"]
    );
    let c4 = store.conversation("c4").await.unwrap();
    assert_eq!(c4.opened.customer.email.as_deref(), Some("bob@example.com"));
    assert_eq!(c4.opened.customer.visitor.as_deref(), Some(V2));
    assert_not_found(store.set_customer_email("nobody", "a@b.io").await);

    // A verified identity finds its conversations from any browser, and nothing else does.
    store
        .archive(&[
            opened_as("c5", 6_000, V1, "user-42"),
            opened_as("c6", 7_000, V2, "user-42"),
        ])
        .await
        .unwrap();
    assert_eq!(
        found(CustomerKey::Identity("user-42".into()), 10).await,
        vec!["c6", "c5"]
    );
    assert_eq!(
        found(CustomerKey::Identity("USER-42".into()), 10).await,
        Vec::<String>::new()
    );
    assert_eq!(found(CustomerKey::Visitor(V1.into()), 10).await, vec!["c5", "c2", "c1"]);
    // An email given later keeps the identity's key.
    store.set_customer_email("c5", "carla@example.com").await.unwrap();
    assert_eq!(
        found(CustomerKey::Identity("user-42".into()), 10).await,
        vec!["c6", "c5"]
    );
}

/// An erasure removes whole conversations (messages, notes, rating, listing and customer
/// indexes), leaves the others alone, and tombstones the ids: a late opening, message, note
/// or rating of an erased conversation is dropped or refused. The customer's offline
/// messages go by email (any case). The log keeps its records, newest first.
async fn erasure_removes_everything_of_the_conversations_and_nothing_comes_back(store: &dyn Store) {
    const V: &str = "visitor-key-erase-01";
    let keep_note = note_of("keep", "k-1", 2_500, "a1");
    let gone_note = note_of("gone", "g-1", 1_500, "a1");
    let batch = [
        opened_by("gone", 1_000, Some("Eve@Example.com"), Some(V)),
        opened_as("gone-too", 1_100, V, "eve-42"),
        message("gone", 1),
        message("gone", 2),
        noted(&gone_note),
        opened_by("keep", 2_000, Some("other@example.com"), None),
        message("keep", 1),
        noted(&keep_note),
    ];
    store.archive(&batch).await.unwrap();
    store.rate_conversation("gone", rating(5, None)).await.unwrap();
    let mut eve = offline("eve-1", "sales", 10);
    eve.email = "EVE@example.com".into();
    store.add_offline_message(eve, None).await.unwrap();
    add_offline(store, "bob-1", "sales", 11).await;

    let erased = store
        .erase_conversations(&["gone".to_string(), "gone-too".to_string(), "never-stored".to_string()])
        .await
        .unwrap();
    assert_eq!(
        (erased.conversations, erased.messages, erased.notes, erased.ratings),
        (2, 2, 1, 1)
    );
    assert_eq!(store.erase_offline_messages_of("eve@example.com").await.unwrap(), 1);
    assert_not_found(store.conversation("gone").await);
    assert_eq!(store.conversation_notes("gone").await.unwrap(), vec![]);
    let (all, total) = store.conversations(&ConversationFilter::default(), ALL).await.unwrap();
    assert_eq!((ids(&all), total), (vec!["keep"], 1));
    let by_agent = ConversationFilter {
        agent_id: Some("a1".into()),
        category: Some("sales".into()),
        ..Default::default()
    };
    assert_eq!(ids(&store.conversations(&by_agent, ALL).await.unwrap().0), vec!["keep"]);
    for key in [
        CustomerKey::Email("eve@example.com".into()),
        CustomerKey::Visitor(V.into()),
        CustomerKey::Identity("eve-42".into()),
    ] {
        assert!(store.customer_conversations(&key, 10).await.unwrap().is_empty());
    }
    let (left, _) = store.offline_messages(&OfflineFilter::default(), ALL).await.unwrap();
    assert_eq!(offline_ids(&left), vec!["bob-1"]);
    // Nor is it found by search: by a word of its messages, or of its names.
    let by_word = |typed: &str| ConversationFilter {
        text: Some(SearchQuery::parse(typed).unwrap()),
        ..Default::default()
    };
    assert_eq!(
        ids(&store.conversations(&by_word("gone"), ALL).await.unwrap().0),
        Vec::<&str>::new()
    );
    assert_eq!(
        ids(&store.conversations(&by_word("message unicode"), ALL).await.unwrap().0),
        vec!["keep"]
    );
    // The other conversation is whole.
    let keep = store.conversation("keep").await.unwrap();
    assert_eq!((seqs(&keep), keep.notes), (vec![1], vec![keep_note]));

    // A late replay of everything (a spool, a journal, another node) brings nothing back.
    store.archive(&batch).await.unwrap();
    store
        .archive(&[
            open("never-stored", Some("sales"), "a1", 3_000),
            message("never-stored", 1),
        ])
        .await
        .unwrap();
    assert_not_found(store.conversation("gone").await);
    assert_not_found(store.conversation("never-stored").await);
    assert_eq!(store.conversation_notes("gone").await.unwrap(), vec![]);
    assert_not_found(store.rate_conversation("gone", rating(1, None)).await);
    assert_eq!(listed_total(store).await, 1);
    // Again: idempotent.
    assert_eq!(
        store.erase_conversations(&["gone".to_string()]).await.unwrap(),
        Erased::default()
    );

    for (at, id) in [(100, "e1"), (300, "e3"), (200, "e2")] {
        let record = ErasureRecord {
            id: id.into(),
            at,
            by: "admin".into(),
            found_by: "email".into(),
            key_sha256: "ab".repeat(32),
            erased,
        };
        store.add_erasure_record(record).await.unwrap();
    }
    let (log, total) = store.erasure_records(Page { offset: 0, limit: 2 }).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(log.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["e3", "e2"]);
    assert_eq!(log[0].erased, erased);
}

/// A note needs no opening: one of a conversation not stored (yet) is kept, read alone at
/// once and with its conversation once it is opened (in a later batch or later in the
/// same one); a conversation with no notes, or none at all, has an empty list.
async fn notes_are_kept_before_their_opening(store: &dyn Store) {
    assert_eq!(store.conversation_notes("nobody").await.unwrap(), vec![]);
    store.archive(&[open("plain", None, "a1", 10)]).await.unwrap();
    assert_eq!(store.conversation_notes("plain").await.unwrap(), vec![]);
    assert_eq!(store.conversation("plain").await.unwrap().notes, vec![]);

    let early = note_of("later", "l-1", 50, "a1");
    store.archive(&[noted(&early)]).await.unwrap();
    assert_eq!(store.conversation_notes("later").await.unwrap(), vec![early.clone()]);
    assert!(
        matches!(store.conversation("later").await, Err(StoreError::NotFound)),
        "a note creates no conversation"
    );
    assert_eq!(listed_total(store).await, 1, "nor a listed one");
    let after = note_of("later", "l-2", 60, "a2");
    store
        .archive(&[open("later", Some("support"), "a1", 40), noted(&after), noted(&early)])
        .await
        .unwrap();
    assert_eq!(
        store.conversation("later").await.unwrap().notes,
        vec![early.clone(), after.clone()]
    );

    // Before its opening within one batch: kept as well.
    let first_in_batch = note_of("same", "s-1", 70, "a1");
    store
        .archive(&[
            noted(&first_in_batch),
            open("same", Some("support"), "a1", 65),
            message("same", 1),
        ])
        .await
        .unwrap();
    let same = store.conversation("same").await.unwrap();
    assert_eq!((seqs(&same), same.notes), (vec![1], vec![first_in_batch]));
    assert_eq!(store.conversation_notes("later").await.unwrap(), vec![early, after]);
}

/// Two writers retrying the same work at the same time still store everything exactly once.
async fn concurrent_retries(store: &dyn Store) {
    let mut batch = vec![open("r1", Some("sales"), "a1", 1), open("r2", None, "bob", 2)];
    for seq in 1..=20 {
        batch.push(message("r1", seq));
        batch.push(message("r2", seq));
    }
    batch.push(close("r1", EndReason::Ended, 3));
    let (x, y, z) = tokio::join!(
        store.archive(&batch),
        store.archive(&batch[..25]),
        store.archive(&batch)
    );
    x.unwrap();
    y.unwrap();
    z.unwrap();
    assert_eq!(seqs_of(store, "r1").await, (1..=20).collect::<Vec<_>>());
    assert_eq!(seqs_of(store, "r2").await, (1..=20).collect::<Vec<_>>());
    assert_eq!(listed_total(store).await, 2);
}

/// One batch the size the relay sends under load lands whole.
async fn large_batch(store: &dyn Store) {
    let mut batch = Vec::new();
    for c in 0..10 {
        batch.push(open(&format!("b{c}"), Some("sales"), "a1", 1_000 + c));
    }
    for seq in 1..=60 {
        for c in 0..10 {
            batch.push(message(&format!("b{c}"), seq));
        }
    }
    store.archive(&batch).await.unwrap();
    store.archive(&batch[..300]).await.unwrap(); // a partial retry
    for c in 0..10 {
        let conv = store.conversation(&format!("b{c}")).await.unwrap();
        assert_eq!(seqs(&conv), (1..=60).collect::<Vec<_>>());
    }
}

/// Retries grouped differently from the first write (overlapping runs, gaps filled later,
/// out of seq order) still leave each message exactly once, in seq order, field for field.
async fn regrouped_retries(store: &dyn Store) {
    let all = |conv: &str, seqs: &[u64]| seqs.iter().map(|s| message(conv, *s)).collect::<Vec<_>>();
    store.archive(&[open("g1", None, "bob", 1)]).await.unwrap();
    store.archive(&all("g1", &[1, 2, 3, 4])).await.unwrap();
    store.archive(&all("g1", &[5, 6, 7, 8, 9, 10])).await.unwrap();
    // Overlapping both earlier writes, then the whole range, then a scattered few.
    store.archive(&all("g1", &[3, 4, 5, 6, 7])).await.unwrap();
    store.archive(&all("g1", &(1..=10).collect::<Vec<_>>())).await.unwrap();
    store.archive(&all("g1", &[9, 2, 5, 2])).await.unwrap();
    let g1 = store.conversation("g1").await.unwrap();
    assert_eq!(seqs(&g1), (1..=10).collect::<Vec<_>>());
    let expected: Vec<ArchivedMessage> = all("g1", &(1..=10).collect::<Vec<_>>())
        .into_iter()
        .map(|e| match e {
            ArchiveEvent::Message { message, .. } => message,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(g1.messages, expected);

    // One message, then a retry that starts with it but has more and a gap, then
    // everything (filling the gaps) with the closing, twice.
    store.archive(&[open("g2", None, "bob", 2)]).await.unwrap();
    store.archive(&all("g2", &[1])).await.unwrap();
    store.archive(&all("g2", &[1, 2, 4, 5, 7])).await.unwrap();
    let mut again = all("g2", &[7, 6, 5, 4, 3, 2, 1]);
    again.push(close("g2", EndReason::Ended, 9));
    store.archive(&again).await.unwrap();
    store.archive(&again).await.unwrap();
    let g2 = store.conversation("g2").await.unwrap();
    assert_eq!(seqs(&g2), (1..=7).collect::<Vec<_>>());
    assert_eq!(g2.closed.unwrap().reason, EndReason::Ended);
    // Listing reads the same messages as the single read.
    let (listed, _) = store.conversations(&ConversationFilter::default(), ALL).await.unwrap();
    assert_eq!(ids(&listed), vec!["g2", "g1"]);
    assert_eq!(seqs(&listed[0]), (1..=7).collect::<Vec<_>>());
    assert_eq!(listed[1], store.conversation("g1").await.unwrap());
}

/// The same messages archived again in another grouping (a write that hung and landed
/// late, then its retry with what came meanwhile: seq 80 alone, then 80–296) come back
/// once each, in seq order.
async fn the_same_messages_in_another_grouping_come_back_once(store: &dyn Store) {
    let all = |seqs: std::ops::RangeInclusive<u64>| seqs.map(|s| message("h1", s)).collect::<Vec<_>>();
    store.archive(&[open("h1", None, "bob", 1)]).await.unwrap();
    store.archive(&all(1..=79)).await.unwrap();
    store.archive(&all(80..=80)).await.unwrap();
    store.archive(&all(80..=296)).await.unwrap();
    store.archive(&all(80..=80)).await.unwrap();
    assert_eq!(seqs_of(store, "h1").await, (1..=296).collect::<Vec<_>>());
}

/// A conversation with megabytes of messages in one batch (past any per-document limit
/// a backend may split at) comes back whole.
async fn long_messages(store: &dyn Store) {
    let mut batch = vec![open("long", None, "bob", 1)];
    let text = |seq: u64| format!("{seq:>6}").repeat(100_000 / 6);
    for seq in 1..=50 {
        let ArchiveEvent::Message {
            conversation_id,
            mut message,
        } = message("long", seq)
        else {
            unreachable!()
        };
        message.text = text(seq);
        batch.push(ArchiveEvent::Message {
            conversation_id,
            message,
        });
    }
    store.archive(&batch).await.unwrap();
    store.archive(&batch[20..]).await.unwrap();
    let long = store.conversation("long").await.unwrap();
    assert_eq!(seqs(&long), (1..=50).collect::<Vec<_>>());
    assert!(long.messages.iter().all(|m| m.text == text(m.seq)));
}

// ---------- sessions in the shared store ----------

fn session(id: &str, account_id: &str, expires_at: Millis) -> StoredSession {
    StoredSession {
        id: id.into(),
        account_id: account_id.into(),
        expires_at,
    }
}

/// A session is stored once under its id, found as stored, and deleted once.
async fn sessions_are_created_found_and_deleted(store: &dyn Store) {
    let s1 = session("hash-1", "a1", 1_900_000_000_000);
    store.create_session(s1.clone()).await.unwrap();
    assert_conflict(store.create_session(session("hash-1", "a2", 5)).await);
    assert_eq!(
        store.session("hash-1").await.unwrap(),
        s1,
        "unchanged by the refused copy"
    );
    assert_not_found(store.session("hash-2").await);
    assert!(store.delete_session("hash-1").await.unwrap());
    assert!(!store.delete_session("hash-1").await.unwrap(), "deleted once");
    assert_not_found(store.session("hash-1").await);
}

/// Revoking an account's sessions deletes all of them, and only them, and names them.
async fn sessions_of_an_account_are_revoked_together(store: &dyn Store) {
    let far = 1_900_000_000_000;
    for (id, account) in [("h1", "ann"), ("h2", "bob"), ("h3", "ann"), ("h4", "anna")] {
        store.create_session(session(id, account, far)).await.unwrap();
    }
    let mut ended = store.delete_sessions_of("ann").await.unwrap();
    ended.sort();
    assert_eq!(ended, ["h1", "h3"]);
    assert!(store.delete_sessions_of("ann").await.unwrap().is_empty());
    assert!(store.delete_sessions_of("nobody").await.unwrap().is_empty());
    for id in ["h1", "h3"] {
        assert_not_found(store.session(id).await);
    }
    assert_eq!(store.session("h2").await.unwrap().account_id, "bob");
    assert_eq!(store.session("h4").await.unwrap().account_id, "anna");
}

/// A sweep deletes exactly the sessions expired at its time (expiry at or before it).
async fn expired_sessions_are_swept(store: &dyn Store) {
    let now = 1_800_000_000_000;
    // Far in the future: MongoDB's own TTL monitor must not take the live ones meanwhile.
    store.create_session(session("live", "ann", now * 2)).await.unwrap();
    store.create_session(session("edge", "ann", now)).await.unwrap();
    store.create_session(session("old", "bob", now - 1)).await.unwrap();
    assert_eq!(store.sweep_sessions(now).await.unwrap(), 2);
    assert_eq!(store.sweep_sessions(now).await.unwrap(), 0);
    assert_eq!(store.session("live").await.unwrap().expires_at, now * 2);
    for id in ["edge", "old"] {
        assert_not_found(store.session(id).await);
    }
    assert_eq!(
        store.delete_sessions_of("ann").await.unwrap(),
        ["live"],
        "the indexes followed"
    );
}

// ---------- rooms and 1-to-1 video ----------

fn room(id: &str, agent: &str) -> Room {
    Room {
        id: id.into(),
        agent_id: agent.into(),
        title: format!("room {id}"),
        audience: Audience::Customer {
            phone: Some("+4915112345678".into()),
            email: None,
        },
        password_hash: "$argon2id$fake".into(),
        code: None,
        wrong_attempts: vec![],
        state: RoomState::Open,
        created_at: 1,
        ended_at: None,
        revision: 0,
        conversation_id: Some("chat-1".into()),
        seat: None,
        // An appointment's room closes at a set time: the field survives every backend.
        open_until: Some(1_700_000_000_000),
    }
}

/// One open room per agent, decided by the store even when two creations race; ending
/// it frees the agent for a new one; an ended room is never reopened.
async fn rooms_one_open_per_agent(store: &dyn Store) {
    let (a, b) = tokio::join!(
        store.create_room(room("r1", "ann")),
        store.create_room(room("r2", "ann"))
    );
    assert!(
        a.is_ok() != b.is_ok(),
        "exactly one of two racing creations wins: {a:?} {b:?}"
    );
    let winner = if a.is_ok() { "r1" } else { "r2" };
    assert_eq!(store.open_room_of("ann").await.unwrap().unwrap().id, winner);
    assert_conflict(store.create_room(room("r3", "ann")).await);
    store.create_room(room("b1", "bob")).await.unwrap();
    assert!(store.open_room_of("cid").await.unwrap().is_none());
    assert_not_found(store.room("nope").await);

    let mut ended = store.room(winner).await.unwrap();
    ended.state = RoomState::Ended;
    ended.ended_at = Some(5);
    let ended = store.update_room(ended).await.unwrap();
    assert_eq!(ended.revision, 1);
    assert!(store.open_room_of("ann").await.unwrap().is_none());
    store.create_room(room("r4", "ann")).await.unwrap();
    assert_eq!(store.open_room_of("ann").await.unwrap().unwrap().id, "r4");
    // Reopening the ended room is refused: it would make two open rooms.
    let mut reopen = ended.clone();
    reopen.state = RoomState::Open;
    assert_conflict(store.update_room(reopen).await);
    assert_eq!(store.room(winner).await.unwrap(), ended);
}

/// An update names the revision it read: of two updates from the same read, one wins and
/// the other is refused, so no counted attempt is lost.
async fn rooms_update_is_compare_and_set(store: &dyn Store) {
    store.create_room(room("r1", "ann")).await.unwrap();
    let read = store.room("r1").await.unwrap();
    let mut first = read.clone();
    first.wrong_attempts.push(WrongAttempts {
        address: "127.0.0.1".into(),
        count: 1,
    });
    let mut second = read.clone();
    second.code = Some(AccessCode {
        hash: "h".into(),
        expires_at: 10,
        version: 1,
    });
    let stored = store.update_room(first.clone()).await.unwrap();
    assert_eq!(stored.revision, read.revision + 1);
    assert_conflict(store.update_room(second).await);
    assert_eq!(store.room("r1").await.unwrap(), stored);
    // The visitor seat's reservation is stored with the room, under the same revision.
    let mut reserved = stored.clone();
    reserved.seat = Some(switchboard::store::SeatHold {
        admission: "customer:0f3a".into(),
        until: 42,
    });
    let stored = store.update_room(reserved).await.unwrap();
    assert_eq!(store.room("r1").await.unwrap(), stored);
    assert_eq!(stored.seat.as_ref().map(|h| h.until), Some(42));
    assert_not_found(store.update_room(room("missing", "ann")).await);
}

fn guest(id: &str, name: &str, email: Option<&str>, phone: Option<&str>) -> Guest {
    Guest {
        id: id.into(),
        name: name.into(),
        email: email.map(Into::into),
        phone: phone.map(Into::into),
        created_at: 1,
    }
}

/// A guest is reused by email (any case), else by phone, with the name given last.
async fn guests_are_reused_by_email_then_phone(store: &dyn Store) {
    let g1 = store
        .guest_for(guest("g1", "Gus", Some("gus@example.org"), None))
        .await
        .unwrap();
    assert_eq!(g1.id, "g1");
    let again = store
        .guest_for(guest("g2", "Gustav", Some("GUS@example.org"), None))
        .await
        .unwrap();
    assert_eq!((again.id.as_str(), again.name.as_str()), ("g1", "Gustav"));
    let by_phone = store
        .guest_for(guest("g3", "Pia", None, Some("+441234567890")))
        .await
        .unwrap();
    assert_eq!(by_phone.id, "g3");
    let pia = store
        .guest_for(guest("g4", "Pia P", Some("pia@example.org"), Some("+441234567890")))
        .await
        .unwrap();
    assert_eq!(pia.id, "g3", "no guest has the email, so the phone finds Pia");
}

fn call(id: &str, agent: &str, started_at: Millis) -> CallLog {
    CallLog {
        id: id.into(),
        room_id: "r1".into(),
        agent_id: agent.into(),
        peer: CallPeer::Guest,
        peer_name: "Gus".into(),
        guest_id: Some("g1".into()),
        conversation_id: None,
        started_at,
        length_secs: 0,
        connected_secs: 0,
        camera_secs: 0,
    }
}

/// Call logs are listed newest first, per agent or all, paged; saving again replaces.
async fn call_logs_listing(store: &dyn Store) {
    for (id, agent, at) in [("c1", "ann", 10), ("c2", "bob", 20), ("c3", "ann", 30)] {
        store.save_call_log(call(id, agent, at)).await.unwrap();
    }
    let mut longer = call("c1", "ann", 10);
    longer.length_secs = 60;
    longer.connected_secs = 50;
    store.save_call_log(longer.clone()).await.unwrap();
    let all = Page { offset: 0, limit: 10 };
    let (logs, total) = store.call_logs(None, all).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        logs.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
        ["c3", "c2", "c1"]
    );
    assert_eq!(logs[2], longer);
    let (anns, total) = store.call_logs(Some("ann"), all).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(anns.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["c3", "c1"]);
    let (second, total) = store
        .call_logs(Some("ann"), Page { offset: 1, limit: 1 })
        .await
        .unwrap();
    assert_eq!((second[0].id.as_str(), total), ("c1", 2));
}

// ---------- appointments ----------

const HOUR: Millis = 3_600_000;
/// 2030-06-17T08:00:00Z, a slot start.
const NINE: Millis = 1_907_913_600_000;

fn appointment(id: &str, representative: &str, start: Millis) -> Appointment {
    Appointment {
        id: id.to_string(),
        start,
        end: start + HOUR,
        representative_id: representative.to_string(),
        category: Some("sales".to_string()),
        name: format!("Customer {id} — Zoë"),
        email: format!("{id}@example.com"),
        comment: "about my order ✓".to_string(),
        status: AppointmentStatus::Booked,
        cancel_token_hash: format!("token-hash-of-{id}"),
        created_at: 1_000,
        cancelled_at: None,
        sequence: 0,
        customer_zone: Some("America/New_York".to_string()),
        customer_hour12: true,
        cancel_reason: None,
    }
}

/// An appointment is stored as given and found by id and by its token's hash; one
/// representative's slot is taken once, another representative's same slot is free.
async fn appointments_are_booked_once_per_representative_and_slot(store: &dyn Store) {
    let a1 = appointment("ap1", "ann", NINE);
    store.book_appointment(a1.clone()).await.unwrap();
    assert_eq!(store.appointment("ap1").await.unwrap(), a1);
    assert_eq!(store.appointment_by_token("token-hash-of-ap1").await.unwrap(), a1);
    assert_conflict(store.book_appointment(appointment("ap2", "ann", NINE)).await);
    store.book_appointment(appointment("ap3", "bob", NINE)).await.unwrap();
    store
        .book_appointment(appointment("ap4", "ann", NINE + HOUR))
        .await
        .unwrap();
    assert_not_found(store.appointment("ap2").await);
    assert_not_found(store.appointment_by_token("nope").await);
    let mut reused_id = appointment("ap1", "cat", NINE + 5 * HOUR);
    reused_id.cancel_token_hash = "fresh".into();
    assert_conflict(store.book_appointment(reused_id).await);
}

/// Cancelling frees the slot (and raises the sequence) once; a second cancel reports it.
async fn cancelling_frees_the_slot_once(store: &dyn Store) {
    store.book_appointment(appointment("ap1", "ann", NINE)).await.unwrap();
    let Cancellation::Cancelled(done) = store.cancel_appointment("ap1", 5_000).await.unwrap() else {
        panic!("the first cancel cancels")
    };
    assert_eq!(done.status, AppointmentStatus::Cancelled);
    assert_eq!(done.cancelled_at, Some(5_000));
    assert_eq!(done.sequence, 1);
    assert_eq!(store.appointment("ap1").await.unwrap(), done);
    let again = store.cancel_appointment("ap1", 9_000).await.unwrap();
    assert_eq!(again, Cancellation::AlreadyCancelled(done.clone()), "nothing changes");
    assert_not_found(store.cancel_appointment("nope", 1).await);
    // The slot is free again; the cancelled appointment stays on record.
    store.book_appointment(appointment("ap2", "ann", NINE)).await.unwrap();
    assert_conflict(store.book_appointment(appointment("ap3", "ann", NINE)).await);
    let listed: Vec<String> = store
        .appointments(NINE..NINE + 1, None)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, ["ap1", "ap2"]);
}

/// Listing takes `[from, to)` by start, ordered, optionally for one representative.
async fn appointments_are_listed_by_range_and_representative(store: &dyn Store) {
    for (id, rep, start) in [
        ("d", "ann", NINE + 2 * HOUR),
        ("a", "ann", NINE),
        ("c", "bob", NINE + HOUR),
        ("b", "bob", NINE),
        ("e", "ann", NINE + 24 * HOUR),
    ] {
        store.book_appointment(appointment(id, rep, start)).await.unwrap();
    }
    let ids = |v: Vec<Appointment>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
    let day = NINE + 24 * HOUR;
    assert_eq!(
        ids(store.appointments(NINE..day, None).await.unwrap()),
        ["a", "b", "c", "d"]
    );
    assert_eq!(
        ids(store.appointments(NINE..day, Some("ann")).await.unwrap()),
        ["a", "d"]
    );
    assert_eq!(
        ids(store.appointments(NINE + HOUR..day + HOUR, Some("ann")).await.unwrap()),
        ["d", "e"]
    );
    assert!(store.appointments(NINE + 3 * HOUR..day, None).await.unwrap().is_empty());
    assert!(store.appointments(NINE..NINE, None).await.unwrap().is_empty());
}

/// 20 bookings of one representative's slot at once: exactly one is stored.
async fn twenty_concurrent_bookings_of_one_slot_have_one_winner(store: &dyn Store) {
    let attempts = (0..20).map(|i| store.book_appointment(appointment(&format!("race{i:02}"), "ann", NINE)));
    let results = futures_util::future::join_all(attempts).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict)))
        .count();
    assert_eq!((won, refused), (1, 19), "{results:?}");
    let stored = store.appointments(NINE..NINE + HOUR, Some("ann")).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, AppointmentStatus::Booked);
}

// ---------- appointment mail outbox ----------

fn mail(appointment_id: &str, purpose: MailPurpose, created_at: Millis) -> OutboxMail {
    let kind = match purpose {
        MailPurpose::Confirmation => "confirmation",
        MailPurpose::Cancellation => "cancellation",
        MailPurpose::Reschedule => "reschedule-1",
        MailPurpose::OfflineMessage => "desk",
        MailPurpose::OfflineReply => "reply-r1",
        MailPurpose::Transcript => "transcript-1",
        MailPurpose::FollowUp => "follow-up-1",
        MailPurpose::WebhookDisabled => "webhook-disabled",
    };
    OutboxMail {
        id: format!("{appointment_id}.{kind}"),
        appointment_id: appointment_id.to_string(),
        purpose,
        to: format!("{appointment_id}@example.com"),
        subject: format!("Your appointment — {kind} ✓"),
        text: "When: 10:00–11:00 Europe/Berlin".to_string(),
        attachments: vec![MailAttachment {
            filename: "invite.ics".to_string(),
            content_type: "text/calendar; method=REQUEST; charset=utf-8".to_string(),
            content: "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n".to_string(),
        }],
        status: MailStatus::Pending,
        attempts: 0,
        due_at: created_at,
        claimed_by: None,
        claim_until: None,
        last_error: None,
        created_at,
        sent_at: None,
    }
}

/// The mails `node` claims at `now` until `until`, ten at the most.
async fn claim(store: &dyn Store, node: &str, now: Millis, until: Millis) -> Vec<OutboxMail> {
    store.claim_mails(node, now, until, 10).await.unwrap()
}

/// The first ten mails of `status`, and how many there are.
async fn mails_in(store: &dyn Store, status: MailStatus) -> (Vec<OutboxMail>, u64) {
    store.mails(Some(status), Page { offset: 0, limit: 10 }).await.unwrap()
}

/// A booking stores its mail with it, a refused booking leaves none; a cancellation's
/// mail is stored once, by the call that cancelled.
async fn bookings_and_cancellations_write_their_mail_with_them(store: &dyn Store) {
    let m1 = mail("ap1", MailPurpose::Confirmation, 1_000);
    store
        .book_appointment_with_mail(appointment("ap1", "ann", NINE), m1.clone())
        .await
        .unwrap();
    assert_eq!(store.mail("ap1.confirmation").await.unwrap(), m1);
    assert_conflict(
        store
            .book_appointment_with_mail(
                appointment("ap2", "ann", NINE),
                mail("ap2", MailPurpose::Confirmation, 1_001),
            )
            .await,
    );
    assert_not_found(store.mail("ap2.confirmation").await);

    let c1 = mail("ap1", MailPurpose::Cancellation, 2_000);
    let done = store
        .cancel_appointment_with_mail(AppointmentCancel::new("ap1", 2_000, None), c1.clone())
        .await
        .unwrap();
    assert!(
        matches!(done, Cancellation::Cancelled(ref a) if a.sequence == 1),
        "{done:?}"
    );
    let mut other = c1.clone();
    other.subject = "a second cancellation".to_string();
    let again = store
        .cancel_appointment_with_mail(AppointmentCancel::new("ap1", 3_000, None), other)
        .await
        .unwrap();
    assert!(matches!(again, Cancellation::AlreadyCancelled(_)), "{again:?}");
    assert_eq!(store.mail("ap1.cancellation").await.unwrap(), c1);
    let (all, total) = store.mails(None, Page { offset: 0, limit: 10 }).await.unwrap();
    assert_eq!(total, 2);
    // Newest first.
    let ids: Vec<&str> = all.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["ap1.cancellation", "ap1.confirmation"]);
}

/// `a` moved to `start` with `representative`, at the next sequence.
fn moved(a: &Appointment, representative: &str, start: Millis) -> Appointment {
    Appointment {
        start,
        end: start + HOUR,
        representative_id: representative.to_string(),
        sequence: a.sequence + 1,
        ..a.clone()
    }
}

/// Held (representative, start) keys of booked appointments in the morning.
async fn held_slots(store: &dyn Store) -> Vec<(String, Millis)> {
    let mut held: Vec<(String, Millis)> = store
        .appointments(0..NINE + 24 * HOUR, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.status == AppointmentStatus::Booked)
        .map(|a| (a.representative_id, a.start))
        .collect();
    held.sort();
    held
}

/// A move frees the old slot and holds the new one in one write, with its mail; a move
/// into a held slot, or of an appointment changed since it was read, writes nothing.
async fn a_reschedule_moves_the_slot_in_one_write_with_its_mail(store: &dyn Store) {
    let a = appointment("ap1", "ann", NINE);
    store.book_appointment(a.clone()).await.unwrap();
    store
        .book_appointment(appointment("ap2", "ann", NINE + HOUR))
        .await
        .unwrap();
    let later = NINE + 2 * HOUR;
    let to_later = moved(&a, "ann", later);
    let m = mail("ap1", MailPurpose::Reschedule, 5_000);
    let done = store
        .reschedule_appointment_with_mail(to_later.clone(), m.clone())
        .await
        .unwrap();
    assert_eq!(done, Rescheduling::Moved(to_later.clone()));
    assert_eq!(store.appointment("ap1").await.unwrap(), to_later);
    assert_eq!(store.appointment_by_token("token-hash-of-ap1").await.unwrap(), to_later);
    assert_eq!(store.mail("ap1.reschedule-1").await.unwrap(), m);
    assert_eq!(
        held_slots(store).await,
        [("ann".to_string(), NINE + HOUR), ("ann".to_string(), later)],
        "the old slot is free, the new one held"
    );
    // The old slot can be booked again; the new one cannot.
    store.book_appointment(appointment("ap3", "ann", NINE)).await.unwrap();
    assert_conflict(store.book_appointment(appointment("ap4", "ann", later)).await);
    // Into a held slot: refused whole, no mail.
    let mut into_held = moved(&to_later, "ann", NINE + HOUR);
    into_held.id = "ap1".into();
    let mut m2 = mail("ap1", MailPurpose::Reschedule, 6_000);
    m2.id = "ap1.reschedule-2".into();
    assert_conflict(store.reschedule_appointment_with_mail(into_held, m2).await);
    assert_eq!(store.appointment("ap1").await.unwrap(), to_later);
    assert_not_found(store.mail("ap1.reschedule-2").await);
    // Read at an older sequence: changed meanwhile, nothing written.
    let stale = moved(&a, "ann", NINE + 3 * HOUR);
    let mut m3 = mail("ap1", MailPurpose::Reschedule, 7_000);
    m3.id = "ap1.reschedule-stale".into();
    assert_eq!(
        store.reschedule_appointment_with_mail(stale, m3).await.unwrap(),
        Rescheduling::Changed(to_later.clone())
    );
    assert_not_found(store.mail("ap1.reschedule-stale").await);
    // A cancelled appointment does not move.
    store.cancel_appointment("ap1", 8_000).await.unwrap();
    let cancelled = store.appointment("ap1").await.unwrap();
    let mut m4 = mail("ap1", MailPurpose::Reschedule, 9_000);
    m4.id = "ap1.reschedule-3".into();
    assert!(matches!(
        store
            .reschedule_appointment_with_mail(moved(&cancelled, "ann", NINE + 4 * HOUR), m4)
            .await
            .unwrap(),
        Rescheduling::Changed(_)
    ));
    // Moving to another representative's slot at the same time also works.
    let b = appointment("ap5", "bob", NINE);
    store.book_appointment(b.clone()).await.unwrap();
    let mut m5 = mail("ap5", MailPurpose::Reschedule, 9_000);
    m5.id = "ap5.reschedule-1".into();
    let to_ann = moved(&b, "cat", NINE);
    assert_eq!(
        store
            .reschedule_appointment_with_mail(to_ann.clone(), m5)
            .await
            .unwrap(),
        Rescheduling::Moved(to_ann)
    );
}

/// 20 appointments moved to one slot at once: exactly one moves, the others stay where
/// they were, and one mail is written.
async fn twenty_concurrent_reschedules_to_one_slot_have_one_winner(store: &dyn Store) {
    let target = NINE + 12 * HOUR;
    let mut originals = Vec::new();
    for i in 0..20 {
        let a = appointment(&format!("ap{i}"), "ann", NINE + i64::from(i) * 60_000);
        store.book_appointment(a.clone()).await.unwrap();
        originals.push(a);
    }
    let tries = originals.iter().map(|a| {
        let mut m = mail(&a.id, MailPurpose::Reschedule, 1_000);
        m.id = format!("{}.reschedule-1", a.id);
        store.reschedule_appointment_with_mail(moved(a, "ann", target), m)
    });
    let outcomes = futures_util::future::join_all(tries).await;
    let won = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Rescheduling::Moved(_))))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(StoreError::Conflict)))
        .count();
    assert_eq!((won, refused), (1, 19), "{outcomes:?}");
    let held = held_slots(store).await;
    assert_eq!(held.len(), 20, "every appointment holds exactly one slot: {held:?}");
    assert_eq!(held.iter().filter(|(_, s)| *s == target).count(), 1);
    let (_, mails) = store.mails(None, Page { offset: 0, limit: 100 }).await.unwrap();
    assert_eq!(mails, 1, "one reschedule mail");
}

/// A cancellation stores the customer's reason.
async fn a_cancellation_keeps_its_reason(store: &dyn Store) {
    store.book_appointment(appointment("ap1", "ann", NINE)).await.unwrap();
    let done = store
        .cancel_appointment_with_mail(
            AppointmentCancel::new("ap1", 2_000, Some("I found the answer ✓".into())),
            mail("ap1", MailPurpose::Cancellation, 2_000),
        )
        .await
        .unwrap();
    let Cancellation::Cancelled(a) = done else {
        panic!("cancelled")
    };
    assert_eq!(a.cancel_reason.as_deref(), Some("I found the answer ✓"));
    assert_eq!(store.appointment("ap1").await.unwrap(), a);
    assert_eq!(a.customer_zone.as_deref(), Some("America/New_York"), "the zone is kept");
    assert!(a.customer_hour12, "so is the customer's clock");
}

/// 20 bookings of one slot with their mails at once: one booking, one mail.
async fn twenty_concurrent_bookings_with_mail_leave_one_mail(store: &dyn Store) {
    let attempts = (0..20).map(|i| {
        let id = format!("race{i:02}");
        store.book_appointment_with_mail(
            appointment(&id, "ann", NINE),
            mail(&id, MailPurpose::Confirmation, 1_000),
        )
    });
    let results = futures_util::future::join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    let (mails, total) = store.mails(None, Page { offset: 0, limit: 50 }).await.unwrap();
    assert_eq!(total, 1, "{mails:?}");
    let winner = store.appointments(NINE..NINE + HOUR, None).await.unwrap();
    assert_eq!(mails[0].appointment_id, winner[0].id);
}

/// Eight claimers at once over twelve due mails: every mail is claimed exactly once;
/// a claimed mail is not claimable again until its lease runs out, then it is.
async fn concurrent_claimers_never_share_a_mail(store: &dyn Store) {
    for i in 0..12 {
        let id = format!("ap{i:02}");
        store
            .book_appointment_with_mail(
                appointment(&id, "ann", NINE + i * HOUR),
                mail(&id, MailPurpose::Confirmation, 1_000 + i),
            )
            .await
            .unwrap();
    }
    let now = 10_000;
    let claimers = (0..8).map(|n| async move {
        let node = format!("node{n}");
        let mut got = Vec::new();
        loop {
            let batch = store.claim_mails(&node, now, now + 60_000, 2).await.unwrap();
            if batch.is_empty() {
                return got;
            }
            for m in batch {
                assert_eq!(m.claimed_by.as_deref(), Some(node.as_str()));
                assert_eq!(m.claim_until, Some(now + 60_000));
                got.push(m.id);
            }
        }
    });
    let claimed = gathered_sorted(claimers).await;
    let mut expected: Vec<String> = (0..12).map(|i| format!("ap{i:02}.confirmation")).collect();
    expected.sort();
    assert_eq!(claimed, expected);
    // Held while the lease runs, free when it has run out.
    assert!(
        store
            .claim_mails("late", now + 59_999, now + 120_000, 50)
            .await
            .unwrap()
            .is_empty()
    );
    let retaken = store
        .claim_mails("late", now + 60_000, now + 120_000, 50)
        .await
        .unwrap();
    assert_eq!(retaken.len(), 12);
    assert!(retaken.iter().all(|m| m.claimed_by.as_deref() == Some("late")));
}

/// Whether `claimer`'s word that mail `id` was sent at `at` was recorded.
async fn marked_sent(store: &dyn Store, id: &str, claimer: &str, at: Millis) -> bool {
    store.finish_mail(id, claimer, MailOutcome::Sent { at }).await.unwrap()
}

/// Only the claim's holder records an outcome, once; a retry waits for its due time
/// (the backoff) with one more attempt counted; a dead mail is never claimed again.
async fn mails_are_finished_once_by_their_claimer(store: &dyn Store) {
    for id in ["ap1", "ap2"] {
        let start = if id == "ap1" { NINE } else { NINE + HOUR };
        store
            .book_appointment_with_mail(
                appointment(id, "ann", start),
                mail(id, MailPurpose::Confirmation, 1_000),
            )
            .await
            .unwrap();
    }
    let claimed = claim(store, "a", 5_000, 65_000).await;
    assert_eq!(claimed.len(), 2);
    assert!(!marked_sent(store, "ap1.confirmation", "b", 6_000).await);
    assert!(marked_sent(store, "ap1.confirmation", "a", 6_000).await);
    assert!(!marked_sent(store, "ap1.confirmation", "a", 7_000).await);
    let sent = store.mail("ap1.confirmation").await.unwrap();
    assert_eq!((sent.status, sent.sent_at), (MailStatus::Sent, Some(6_000)));
    assert_not_found(store.finish_mail("nope", "a", MailOutcome::Sent { at: 1 }).await);

    let retry = MailOutcome::Retry {
        error: "relay down".to_string(),
        retry_at: 20_000,
    };
    assert!(store.finish_mail("ap2.confirmation", "a", retry).await.unwrap());
    let waiting = store.mail("ap2.confirmation").await.unwrap();
    assert_eq!(waiting.status, MailStatus::Pending);
    assert_eq!(waiting.attempts, 1);
    assert_eq!(waiting.due_at, 20_000);
    assert_eq!(waiting.last_error.as_deref(), Some("relay down"));
    // Its claim ended, but it is not due before its retry time.
    assert!(claim(store, "b", 19_999, 80_000).await.is_empty());
    let again = claim(store, "b", 20_000, 80_000).await;
    assert_eq!(again.len(), 1);
    assert!(!marked_sent(store, "ap2.confirmation", "a", 20_001).await);
    let dead = MailOutcome::Dead {
        error: "mailbox unknown".to_string(),
    };
    assert!(store.finish_mail("ap2.confirmation", "b", dead).await.unwrap());
    assert!(claim(store, "c", 1_000_000, 2_000_000).await.is_empty());
    let (dead, total) = mails_in(store, MailStatus::Dead).await;
    assert_eq!(total, 1);
    assert_eq!(
        (dead[0].attempts, dead[0].last_error.as_deref()),
        (2, Some("mailbox unknown"))
    );
    let (_, sent_total) = mails_in(store, MailStatus::Sent).await;
    assert_eq!(sent_total, 1);
}

/// A mail the relay refused for good is bounced under its claim; a delivery failure
/// report bounces a sent mail once, and a pending one, whose claimer then cannot mark it
/// sent; a bounced mail is never claimed again, and is listed as bounced.
async fn bounced_mails_stay_bounced_and_are_never_claimed(store: &dyn Store) {
    for (id, at) in [("c1", 1_000), ("c2", 1_000), ("c3", 1_000)] {
        store.add_mail(mail(id, MailPurpose::FollowUp, at)).await.unwrap();
    }
    let claimed = claim(store, "a", 5_000, 65_000).await;
    assert_eq!(claimed.len(), 3);
    let refused = MailOutcome::Bounced {
        error: "550 user unknown".to_string(),
    };
    assert!(store.finish_mail("c1.follow-up-1", "a", refused).await.unwrap());
    let m = store.mail("c1.follow-up-1").await.unwrap();
    assert_eq!(
        (m.status, m.attempts, m.last_error.as_deref()),
        (MailStatus::Bounced, 1, Some("550 user unknown"))
    );
    // Sent, then reported undeliverable: bounced once, with the report's reason.
    assert!(marked_sent(store, "c2.follow-up-1", "a", 6_000).await);
    assert!(store.bounce_mail("c2.follow-up-1", "mailbox full").await.unwrap());
    assert!(!store.bounce_mail("c2.follow-up-1", "again").await.unwrap());
    let m = store.mail("c2.follow-up-1").await.unwrap();
    assert_eq!(
        (m.status, m.last_error.as_deref()),
        (MailStatus::Bounced, Some("mailbox full"))
    );
    // Reported while its sender still holds it: the sender's outcome no longer lands.
    assert!(store.bounce_mail("c3.follow-up-1", "no such user").await.unwrap());
    assert!(!marked_sent(store, "c3.follow-up-1", "a", 7_000).await);
    assert_not_found(store.bounce_mail("nope", "x").await);
    assert!(claim(store, "b", 10_000_000, 10_060_000).await.is_empty());
    let (bounced, total) = mails_in(store, MailStatus::Bounced).await;
    assert_eq!((total, bounced.len()), (3, 3));
}

/// A cancellation whose first attempt failed after its mail was written (MongoDB writes the
/// mail first) and whose mail the worker then gave up: the real cancellation later sends it.
async fn a_real_cancellation_revives_its_given_up_mail(store: &dyn Store) {
    let early = mail("ap9", MailPurpose::Cancellation, 1_000);
    assert_not_found(
        store
            .cancel_appointment_with_mail(AppointmentCancel::new("ap9", 1_000, None), early)
            .await,
    );
    // What the worker does with such a mail once it is old (only MongoDB kept one).
    for orphan in claim(store, "w", 100_000, 160_000).await {
        let dead = MailOutcome::Dead {
            error: "never stored".to_string(),
        };
        assert!(store.finish_mail(&orphan.id, "w", dead).await.unwrap());
    }
    store.book_appointment(appointment("ap9", "ann", NINE)).await.unwrap();
    let done = store
        .cancel_appointment_with_mail(
            AppointmentCancel::new("ap9", 200_000, None),
            mail("ap9", MailPurpose::Cancellation, 200_000),
        )
        .await
        .unwrap();
    assert!(matches!(done, Cancellation::Cancelled(_)));
    let m = store.mail("ap9.cancellation").await.unwrap();
    assert_eq!((m.status, m.attempts), (MailStatus::Pending, 0), "{m:?}");
    assert_eq!(claim(store, "w", 300_000, 360_000).await.len(), 1);
}

/// A desk setting is absent, stored, replaced and removed.
async fn desk_settings_are_stored_replaced_and_removed(store: &dyn Store) {
    assert_eq!(store.desk_setting("appointment_hours").await.unwrap(), None);
    store
        .set_desk_setting("appointment_hours", Some("{\"open\":\"09:00\"}".into()))
        .await
        .unwrap();
    store.set_desk_setting("other", Some("x".into())).await.unwrap();
    store
        .set_desk_setting("appointment_hours", Some("{\"open\":\"08:00\"} ✓".into()))
        .await
        .unwrap();
    assert_eq!(
        store.desk_setting("appointment_hours").await.unwrap().as_deref(),
        Some("{\"open\":\"08:00\"} ✓")
    );
    store.set_desk_setting("appointment_hours", None).await.unwrap();
    store.set_desk_setting("never-there", None).await.unwrap();
    assert_eq!(store.desk_setting("appointment_hours").await.unwrap(), None);
    assert_eq!(store.desk_setting("other").await.unwrap().as_deref(), Some("x"));
}

// ---------- labels ----------

fn label(id: &str, name: &str) -> Label {
    Label {
        id: id.into(),
        name: name.into(),
        colour: "#000000".into(),
        created_at: 5,
    }
}

async fn labels_are_kept_by_id_and_listed_by_name(store: &dyn Store) {
    assert!(store.labels().await.unwrap().is_empty());
    store.create_label(label("vip", "VIP")).await.unwrap();
    store.create_label(label("bug", "bug report")).await.unwrap();
    assert_conflict(store.create_label(label("vip", "Other")).await);
    let listed = store.labels().await.unwrap();
    assert_eq!(
        listed,
        vec![label("bug", "bug report"), label("vip", "VIP")],
        "by name, any case"
    );
    store
        .update_label(Label {
            colour: "#ffffff".into(),
            created_at: 99,
            ..label("vip", "Key account")
        })
        .await
        .unwrap();
    let renamed = store.labels().await.unwrap();
    assert_eq!(
        renamed[1],
        Label {
            colour: "#ffffff".into(),
            ..label("vip", "Key account")
        },
        "name and colour change, created_at stays"
    );
    assert_not_found(store.update_label(label("nope", "x")).await);
    store.delete_label("bug").await.unwrap();
    assert_not_found(store.delete_label("bug").await);
    assert_eq!(store.labels().await.unwrap().len(), 1);
}

// ---------- canned replies ----------

fn canned(id: &str, owner: Option<&str>, shortcut: &str) -> CannedReply {
    CannedReply {
        id: id.into(),
        owner: owner.map(Into::into),
        shortcut: shortcut.into(),
        title: format!("Title of {shortcut}"),
        text: format!("Hello {{customer}}, {shortcut} ✓"),
        categories: vec!["sales".into()],
        created_at: 10,
        updated_at: 10,
    }
}

/// The ids of `owner`'s canned replies (`None`: the desk's), in listing order.
async fn canned_reply_ids(store: &dyn Store, owner: Option<&str>) -> Vec<String> {
    store
        .canned_replies(owner)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Canned replies are kept per owner (the desk's, each agent's), listed by shortcut,
/// updated (owner and creation time kept) and deleted.
async fn canned_replies_are_kept_per_owner(store: &dyn Store) {
    assert!(store.canned_replies(None).await.unwrap().is_empty());
    store.create_canned_reply(canned("r2", None, "thanks")).await.unwrap();
    store.create_canned_reply(canned("r1", None, "hello")).await.unwrap();
    store
        .create_canned_reply(canned("r3", Some("a1"), "hello"))
        .await
        .unwrap();
    store
        .create_canned_reply(canned("r4", Some("a2"), "bye"))
        .await
        .unwrap();
    let desk = canned_reply_ids(store, None).await;
    assert_eq!(desk, ["r1", "r2"]);
    assert_eq!(
        store.canned_replies(Some("a1")).await.unwrap(),
        vec![canned("r3", Some("a1"), "hello")]
    );
    assert!(store.canned_replies(Some("a3")).await.unwrap().is_empty());
    assert_eq!(store.canned_reply("r4").await.unwrap(), canned("r4", Some("a2"), "bye"));
    assert_not_found(store.canned_reply("nope").await);

    let mut edited = canned("r3", Some("someone-else"), "hi");
    edited.title = "Hi".into();
    edited.categories = vec![];
    edited.created_at = 99;
    edited.updated_at = 20;
    store.update_canned_reply(edited).await.unwrap();
    let stored = store.canned_reply("r3").await.unwrap();
    assert_eq!(stored.owner.as_deref(), Some("a1"), "the owner stays");
    assert_eq!((stored.shortcut.as_str(), stored.title.as_str()), ("hi", "Hi"));
    assert_eq!((stored.created_at, stored.updated_at), (10, 20));
    assert!(stored.categories.is_empty());
    // Its old shortcut is free again for its owner.
    store
        .create_canned_reply(canned("r5", Some("a1"), "hello"))
        .await
        .unwrap();
    assert_not_found(store.update_canned_reply(canned("nope", None, "x")).await);

    assert!(store.delete_canned_reply("r1").await.unwrap());
    assert!(!store.delete_canned_reply("r1").await.unwrap());
    let desk = canned_reply_ids(store, None).await;
    assert_eq!(desk, ["r2"]);
    // The deleted reply's shortcut can be taken again.
    store.create_canned_reply(canned("r6", None, "hello")).await.unwrap();
}

/// A shortcut is unique per owner, on creation and on update; the same shortcut under
/// another owner is fine; of concurrent creations of one shortcut exactly one wins.
async fn canned_shortcuts_are_unique_per_owner(store: &dyn Store) {
    store.create_canned_reply(canned("r1", None, "hello")).await.unwrap();
    assert_conflict(store.create_canned_reply(canned("r2", None, "hello")).await);
    assert!(
        matches!(
            store.create_canned_reply(canned("r1", Some("a1"), "other")).await,
            Err(StoreError::Conflict)
        ),
        "an id taken"
    );
    store
        .create_canned_reply(canned("r3", Some("a1"), "hello"))
        .await
        .unwrap();
    store.create_canned_reply(canned("r4", None, "bye")).await.unwrap();
    assert_conflict(store.update_canned_reply(canned("r4", None, "hello")).await);
    assert_eq!(
        store.canned_reply("r4").await.unwrap().shortcut,
        "bye",
        "a refused update changes nothing"
    );
    // Keeping its own shortcut is no conflict.
    store.update_canned_reply(canned("r4", None, "bye")).await.unwrap();

    let racers = (0..10).map(|i| store.create_canned_reply(canned(&format!("race{i}"), Some("a9"), "same")));
    let results = futures_util::future::join_all(racers).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert_eq!(store.canned_replies(Some("a9")).await.unwrap().len(), 1);
}

// ---------- ratings ----------

fn rating(score: u8, comment: Option<&str>) -> Rating {
    Rating {
        score,
        scale: RatingScale::Stars,
        comment: comment.map(Into::into),
        at: 50,
    }
}

/// A conversation is rated once: the rating comes back with it (alone and in
/// listings), a second is refused and changes nothing, and of concurrent ratings one is
/// kept. A rating may arrive before the archive has the conversation.
async fn a_conversation_is_rated_once(store: &dyn Store) {
    archive_a_short_chat(store, "c1").await;
    assert_eq!(store.conversation("c1").await.unwrap().rating, None);
    store.rate_conversation("c1", rating(4, Some("Quick ✓"))).await.unwrap();
    assert_conflict(store.rate_conversation("c1", rating(1, None)).await);
    assert_eq!(
        store.conversation("c1").await.unwrap().rating,
        Some(rating(4, Some("Quick ✓")))
    );
    let (listed, _) = store
        .conversations(&ConversationFilter::default(), Page { offset: 0, limit: 10 })
        .await
        .unwrap();
    assert_eq!(listed[0].rating, Some(rating(4, Some("Quick ✓"))));

    // Rated before the archive wrote it.
    store.rate_conversation("c2", rating(5, None)).await.unwrap();
    store.archive(&[open("c2", None, "a1", 30)]).await.unwrap();
    assert_eq!(store.conversation("c2").await.unwrap().rating, Some(rating(5, None)));

    let racers = (1..=5u8).map(|score| store.rate_conversation("c3", rating(score, None)));
    let results = futures_util::future::join_all(racers).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(
        results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict))),
        "{results:?}"
    );
    store.archive(&[open("c3", None, "a1", 40)]).await.unwrap();
    let kept = store.conversation("c3").await.unwrap().rating.unwrap();
    let winner = results.iter().position(|r| r.is_ok()).unwrap() as u8 + 1;
    assert_eq!(kept.score, winner);
}

// ---------- offline messages ----------

/// Stores offline message `id` (no mail with it).
async fn add_offline(store: &dyn Store, id: &str, category: &str, at: Millis) {
    store
        .add_offline_message(offline(id, category, at), None)
        .await
        .unwrap();
}

fn offline(id: &str, category: &str, created_at: Millis) -> OfflineMessage {
    OfflineMessage {
        id: id.to_string(),
        category: category.to_string(),
        name: format!("Customer {id}"),
        email: format!("{id}@example.com"),
        text: "Where is my order? — ünïcödé ✓".to_string(),
        created_at,
        // Kept and read back as given (a conversation is opened from it).
        customer: Some(CustomerProfile {
            email: Some(format!("{id}@example.com")),
            visitor: Some(format!("visitor-key-of-{id}")),
            ..CustomerProfile::default()
        }),
        ..OfflineMessage::default()
    }
}

fn reply(id: &str, agent: &str, at: Millis) -> OfflineReply {
    OfflineReply {
        id: id.to_string(),
        agent_id: agent.to_string(),
        agent_name: format!("{agent} name"),
        text: format!("Here is the answer {id}"),
        at,
    }
}

fn offline_ids(ms: &[OfflineMessage]) -> Vec<&str> {
    ms.iter().map(|m| m.id.as_str()).collect()
}

/// Messages are stored once with their desk mail, listed newest first and filtered by
/// state and category.
async fn offline_messages_are_added_and_listed(store: &dyn Store) {
    let all = OfflineFilter::default();
    assert_eq!(store.offline_messages(&all, ALL).await.unwrap(), (vec![], 0));
    let first = offline("o1", "sales", 1_000);
    let mut desk = mail("o1", MailPurpose::OfflineMessage, 1_000);
    desk.attachments.clear();
    store
        .add_offline_message(first.clone(), Some(desk.clone()))
        .await
        .unwrap();
    assert_eq!(store.offline_message("o1").await.unwrap(), first);
    assert_eq!(store.mail("o1.desk").await.unwrap(), desk);
    // The same id again is refused, and writes no second mail.
    assert_conflict(store.add_offline_message(offline("o1", "support", 5), None).await);
    assert_eq!(store.offline_message("o1").await.unwrap(), first);
    add_offline(store, "o2", "support", 2_000).await;
    add_offline(store, "o3", "sales", 3_000).await;
    assert_not_found(store.offline_message("nope").await);

    let (listed, total) = store.offline_messages(&all, ALL).await.unwrap();
    assert_eq!((offline_ids(&listed), total), (vec!["o3", "o2", "o1"], 3));
    let sales = OfflineFilter {
        category: Some("sales".into()),
        ..Default::default()
    };
    let (listed, total) = store.offline_messages(&sales, ALL).await.unwrap();
    assert_eq!((offline_ids(&listed), total), (vec!["o3", "o1"], 2));
    let (listed, total) = store
        .offline_messages(&all, Page { offset: 1, limit: 1 })
        .await
        .unwrap();
    assert_eq!((offline_ids(&listed), total), (vec!["o2"], 3));

    store.take_offline_message("o2", "ann").await.unwrap();
    let taken = OfflineFilter {
        state: Some(OfflineState::Taken),
        ..Default::default()
    };
    let (listed, _) = store.offline_messages(&taken, ALL).await.unwrap();
    assert_eq!(offline_ids(&listed), vec!["o2"]);
    let new_sales = OfflineFilter {
        state: Some(OfflineState::New),
        category: Some("sales".into()),
    };
    let (listed, total) = store.offline_messages(&new_sales, ALL).await.unwrap();
    assert_eq!((offline_ids(&listed), total), (vec!["o3", "o1"], 2));
}

/// What an offline message's handling says: its state and who took it.
fn state_and_taker(message: &OfflineMessage) -> (OfflineState, Option<&str>) {
    (message.state, message.taken_by.as_deref())
}

/// Taking is new → taken once: again by the taker changes nothing, by another agent or
/// after handling it is refused; marking handled keeps the taker.
async fn offline_messages_are_taken_once_and_handled(store: &dyn Store) {
    add_offline(store, "o1", "sales", 1_000).await;
    let taken = store.take_offline_message("o1", "ann").await.unwrap();
    assert_eq!(state_and_taker(&taken), (OfflineState::Taken, Some("ann")));
    assert_eq!(store.take_offline_message("o1", "ann").await.unwrap(), taken);
    assert_conflict(store.take_offline_message("o1", "bob").await);
    assert_not_found(store.take_offline_message("nope", "bob").await);
    let handled = store.mark_offline_message_handled("o1", "bob").await.unwrap();
    assert_eq!(state_and_taker(&handled), (OfflineState::Handled, Some("ann")));
    assert_eq!(store.mark_offline_message_handled("o1", "bob").await.unwrap(), handled);
    assert_conflict(store.take_offline_message("o1", "ann").await);
    assert_eq!(store.offline_message("o1").await.unwrap(), handled);
    // Handling a new one makes its handler its taker.
    add_offline(store, "o2", "sales", 2_000).await;
    let handled = store.mark_offline_message_handled("o2", "bob").await.unwrap();
    assert_eq!(state_and_taker(&handled), (OfflineState::Handled, Some("bob")));
    assert_not_found(store.mark_offline_message_handled("nope", "bob").await);
}

/// Of ten agents taking one message at once, exactly one gets it.
async fn ten_concurrent_takers_have_one_winner(store: &dyn Store) {
    add_offline(store, "o1", "sales", 1_000).await;
    let agents: Vec<String> = (0..10).map(|i| format!("agent{i}")).collect();
    let results = futures_util::future::join_all(agents.iter().map(|a| store.take_offline_message("o1", a))).await;
    let winners: Vec<&String> = agents
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(a, _)| a)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict))),
        "{results:?}"
    );
    assert_eq!(
        store.offline_message("o1").await.unwrap().taken_by.as_ref(),
        Some(winners[0])
    );
}

/// Stores `reply` to offline message `id` with its `mail`.
async fn reply_with_mail(
    store: &dyn Store,
    id: &str,
    reply: OfflineReply,
    mail: OutboxMail,
) -> StoreResult<OfflineMessage> {
    store.reply_offline_message(id, MailedReply { reply, mail }).await
}

/// A reply is archived with its message, marks it handled and stores its mail, once.
async fn replies_are_archived_with_their_mail(store: &dyn Store) {
    add_offline(store, "o1", "sales", 1_000).await;
    let r1 = reply("r1", "ann", 2_000);
    let mut m1 = mail("offline-o1", MailPurpose::OfflineReply, 2_000);
    m1.appointment_id = "o1".into();
    m1.attachments.clear();
    let stored = reply_with_mail(store, "o1", r1.clone(), m1.clone()).await.unwrap();
    assert_eq!(stored.replies, vec![r1.clone()]);
    assert_eq!(state_and_taker(&stored), (OfflineState::Handled, Some("ann")));
    assert_eq!(store.mail("offline-o1.reply-r1").await.unwrap(), m1);
    // The same reply again: one reply, one mail.
    let mut other = m1.clone();
    other.subject = "another".into();
    let again = reply_with_mail(store, "o1", r1.clone(), other).await.unwrap();
    assert_eq!(again, stored);
    assert_eq!(store.mail("offline-o1.reply-r1").await.unwrap(), m1);
    // A second reply is kept after the first.
    let r2 = reply("r2", "bob", 3_000);
    let mut m2 = m1.clone();
    m2.id = "offline-o1.reply-r2".into();
    let stored = reply_with_mail(store, "o1", r2.clone(), m2).await.unwrap();
    assert_eq!(stored.replies, vec![r1, r2]);
    assert_eq!(store.offline_message("o1").await.unwrap(), stored);
    // No message: nothing stored, no mail.
    let mut m3 = m1.clone();
    m3.id = "offline-nope.reply-r3".into();
    assert_not_found(reply_with_mail(store, "nope", reply("r3", "ann", 4_000), m3).await);
    assert_not_found(store.mail("offline-nope.reply-r3").await);
}

// ---------- the backends ----------

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("switchboard-store-{tag}-{}", uuid::Uuid::new_v4()));
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The MongoDB URI for tests, or `None` when the run explicitly allows going without.
fn mongo_uri() -> Option<String> {
    match std::env::var("SWITCHBOARD_TEST_MONGODB_URI") {
        Ok(uri) if !uri.trim().is_empty() => Some(uri),
        _ => panic!(
            "SWITCHBOARD_TEST_MONGODB_URI is not set: the MongoDB contract tests need a server \
             (e.g. `secantusd-py --port 27117 --storage-path :memory:` and \
             SWITCHBOARD_TEST_MONGODB_URI=mongodb://127.0.0.1:27117); `make test` starts one."
        ),
    }
}

/// A database name no other test uses, on the server of `mongo_uri`.
fn fresh_database() -> String {
    format!("switchboard_test_{}", uuid::Uuid::new_v4().simple())
}

/// What `racers`, run at once, each gathered, all together and sorted: who got what,
/// whatever the order they came in.
async fn gathered_sorted<T: Ord, F: std::future::Future<Output = Vec<T>>>(
    racers: impl IntoIterator<Item = F>,
) -> Vec<T> {
    let mut all: Vec<T> = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .flatten()
        .collect();
    all.sort();
    all
}

/// A database of a test's own on the test server: the stores it opens on it are nodes of
/// one deployment; dropped at the end.
struct FreshMongo {
    uri: String,
    db: String,
}

impl FreshMongo {
    /// A fresh database on the server [`mongo_uri`] names.
    fn new() -> Option<Self> {
        Some(Self {
            uri: mongo_uri()?,
            db: fresh_database(),
        })
    }

    /// A store (a node) on the database.
    async fn store(&self) -> MongoStore {
        MongoStore::connect(&self.uri, &self.db)
            .await
            .unwrap_or_else(|e| panic!("cannot reach MongoDB at {}: {e}", self.uri))
    }

    /// The database itself, to read or write what no store method reaches.
    async fn database(&self) -> mongodb::Database {
        let client = mongodb::Client::with_uri_str(&self.uri).await.unwrap();
        client.database(&self.db)
    }

    /// Drops the database, best effort: the server left as the test found it.
    async fn dropped(self) {
        if let Ok(client) = mongodb::Client::with_uri_str(&self.uri).await {
            let _ = client.database(&self.db).drop().await;
        }
    }
}

async fn with_memory(test: impl AsyncFnOnce(&dyn Store)) {
    test(&MemoryStore::new()).await;
}

async fn with_embedded(test: impl AsyncFnOnce(&dyn Store)) {
    let dir = TempDir::new("contract");
    // A nested path: `open` creates missing directories.
    let store = EmbeddedStore::open(&dir.0.join("data")).await.unwrap();
    test(&store).await;
}

async fn with_mongo(test: impl AsyncFnOnce(&dyn Store)) {
    let Some(mongo) = FreshMongo::new() else { return };
    test(&mongo.store().await).await;
    mongo.dropped().await;
}

// ---------- conversations as the desk works them ----------

fn record(id: &str, holder: Option<&str>, status: ConversationStatus, since: Millis) -> ConversationRecord {
    ConversationRecord {
        snoozed_until: (status == ConversationStatus::Snoozed).then_some(since + 1000),
        holder: holder.map(Into::into),
        customer_keys: vec![format!("visitor:{id}")],
        ..ConversationRecord::first(id, "sales", status, since)
    }
}

fn record_ids(records: &[ConversationRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

/// A record is new at version 1 and changed only from the version just before: of two
/// changes from one version, the second is refused, and what it would have written is not.
async fn conversation_records_change_by_compare_and_set(store: &dyn Store) {
    assert_not_found(store.conversation_record("c1").await);
    let mut c1 = record("c1", Some("ann"), ConversationStatus::Open, 10);
    let mut late = c1.clone();
    late.version = 2;
    assert_not_found(store.put_conversation_record(&late).await);
    store.put_conversation_record(&c1).await.unwrap();
    assert_conflict(store.put_conversation_record(&c1).await);
    assert_eq!(store.conversation_record("c1").await.unwrap(), c1);

    c1.version = 2;
    c1.status = ConversationStatus::Pending;
    let mut rival = c1.clone();
    rival.status = ConversationStatus::Resolved;
    store.put_conversation_record(&c1).await.unwrap();
    assert_conflict(store.put_conversation_record(&rival).await);
    assert_eq!(
        store.conversation_record("c1").await.unwrap().status,
        ConversationStatus::Pending
    );
    c1.version = 5;
    assert_conflict(store.put_conversation_record(&c1).await);

    // A snooze that ran out is marked in the record, read back from any node, until
    // cleared (its holder opened it): the mark is gone, not left behind.
    c1.version = 3;
    c1.status = ConversationStatus::Open;
    c1.snooze_ended_at = Some(40);
    store.put_conversation_record(&c1).await.unwrap();
    assert_eq!(store.conversation_record("c1").await.unwrap(), c1);
    c1.version = 4;
    c1.snooze_ended_at = None;
    store.put_conversation_record(&c1).await.unwrap();
    assert_eq!(store.conversation_record("c1").await.unwrap(), c1);
    let listed = store
        .inbox(&InboxQuery {
            holder: Holder::Agent("ann".into()),
            statuses: vec![],
            category: None,
            label: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(listed, vec![c1]);
}

/// Records stored in one batch each get the answer a write of its own would, in order (a
/// conversation's second record is the version after its first); once one of a
/// conversation's records is refused, its later ones are refused too and not stored, since
/// each was decided on the one before. An erased conversation's record is refused.
async fn conversation_records_are_stored_in_batches_each_as_alone(store: &dyn Store) {
    let stored = record("c2", None, ConversationStatus::Open, 5);
    store.put_conversation_record(&stored).await.unwrap();
    let erased = record("c9", None, ConversationStatus::Open, 5);
    store.put_conversation_record(&erased).await.unwrap();
    store.erase_conversations(&["c9".to_string()]).await.unwrap();

    let c1 = record("c1", Some("ann"), ConversationStatus::Open, 10);
    let c1_next = ConversationRecord {
        version: 2,
        status: ConversationStatus::Resolved,
        ..c1.clone()
    };
    let c3_late = ConversationRecord {
        version: 2,
        ..record("c3", None, ConversationStatus::Open, 10)
    };
    // A rival's version 1 of c2, stored already: refused, and so is what was decided on it
    // (its version 2), though alone it would pass the stored version's check.
    let c2_rival = record("c2", Some("bob"), ConversationStatus::Pending, 20);
    let c2_after_rival = ConversationRecord {
        version: 2,
        ..c2_rival.clone()
    };
    let c4 = record("c4", None, ConversationStatus::Open, 30);
    let erased_again = record("c9", None, ConversationStatus::Open, 40);
    let answers = store
        .put_conversation_records(&[
            c1.clone(),
            c2_rival,
            c1_next.clone(),
            c3_late,
            c2_after_rival,
            erased_again,
            c4.clone(),
        ])
        .await
        .unwrap();
    let answers: Vec<&str> = answers
        .iter()
        .map(|answer| match answer {
            Ok(()) => "ok",
            Err(StoreError::Conflict) => "conflict",
            Err(StoreError::NotFound) => "not found",
            Err(StoreError::Unavailable(_)) => "unavailable",
        })
        .collect();
    assert_eq!(
        answers,
        ["ok", "conflict", "ok", "not found", "conflict", "not found", "ok"]
    );
    assert_eq!(store.conversation_record("c1").await.unwrap(), c1_next);
    assert_eq!(store.conversation_record("c2").await.unwrap(), stored);
    assert_not_found(store.conversation_record("c3").await);
    assert_eq!(store.conversation_record("c4").await.unwrap(), c4);
    assert_not_found(store.conversation_record("c9").await);
    assert_eq!(store.put_conversation_records(&[]).await.unwrap().len(), 0);
}

/// An erasure takes a conversation's record with it, out of every listing, and the record
/// is never stored again (a late writer's opening is refused).
async fn an_erasure_takes_the_conversation_record(store: &dyn Store) {
    let mut snoozed = record("c1", Some("ann"), ConversationStatus::Snoozed, 10);
    store.put_conversation_record(&snoozed).await.unwrap();
    let kept = record("c2", None, ConversationStatus::Open, 20);
    store.put_conversation_record(&kept).await.unwrap();
    store.erase_conversations(&["c1".to_string()]).await.unwrap();
    assert_not_found(store.conversation_record("c1").await);
    let everyone = InboxQuery {
        holder: Holder::Anyone,
        statuses: vec![],
        category: None,
        label: None,
        limit: 10,
    };
    assert_eq!(record_ids(&store.inbox(&everyone).await.unwrap()), vec!["c2"]);
    assert!(
        store
            .customer_conversation_records("visitor:c1", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.snoozes_due(i64::MAX, 10).await.unwrap().is_empty());
    assert_not_found(store.put_conversation_record(&snoozed).await);
    snoozed.version = 2;
    assert_not_found(store.put_conversation_record(&snoozed).await);
    assert_eq!(store.conversation_record("c2").await.unwrap(), kept);
    let ids = ["c2", "c1", "nope"].map(String::from);
    assert_eq!(store.conversation_records(&ids).await.unwrap(), vec![kept]);
}

/// Stores four conversations: a (ann's, open, VIP), b (ann's, pending), c (nobody's,
/// open) in sales and d (bob's, resolved) in billing; returns a, which the tests change.
async fn four_inbox_records(store: &dyn Store) -> ConversationRecord {
    use ConversationStatus::*;
    let mut a = record("a", Some("ann"), Open, 30);
    a.labels = vec!["vip".into()];
    let b = record("b", Some("ann"), Pending, 10);
    let c = record("c", None, Open, 20);
    let mut d = record("d", Some("bob"), Resolved, 5);
    d.category = "billing".into();
    for r in [&a, &b, &c, &d] {
        store.put_conversation_record(r).await.unwrap();
    }
    a
}

/// The inbox of `holder` in `statuses` (empty: any), of any category and label.
fn inbox_query(holder: Holder, statuses: Vec<ConversationStatus>, limit: usize) -> InboxQuery {
    InboxQuery {
        holder,
        statuses,
        category: None,
        label: None,
        limit,
    }
}

/// Stores the next version of `a` (from `four_inbox_records`): resolved, and held by bob.
async fn resolve_and_hand_to_bob(store: &dyn Store, a: &mut ConversationRecord) {
    a.version = 2;
    a.status = ConversationStatus::Resolved;
    a.holder = Some("bob".into());
    store.put_conversation_record(a).await.unwrap();
}

/// Inboxes: mine, unassigned and all, by status, category and label, the longest waiting
/// first; a change moves a conversation between inboxes (no stale index entry).
async fn inboxes_list_by_holder_status_category_and_label(store: &dyn Store) {
    use ConversationStatus::*;
    let mut a = four_inbox_records(store).await;
    let query = |holder, statuses| inbox_query(holder, statuses, 50);
    let ann = || Holder::Agent("ann".into());
    assert_eq!(
        record_ids(&store.inbox(&query(ann(), vec![])).await.unwrap()),
        ["b", "a"]
    );
    assert_eq!(
        record_ids(&store.inbox(&query(ann(), vec![Open])).await.unwrap()),
        ["a"]
    );
    assert_eq!(
        record_ids(&store.inbox(&query(Holder::Nobody, vec![])).await.unwrap()),
        ["c"]
    );
    assert_eq!(
        record_ids(&store.inbox(&query(Holder::Anyone, vec![Open, Pending])).await.unwrap()),
        ["b", "c", "a"]
    );
    assert_eq!(
        record_ids(&store.inbox(&query(Holder::Anyone, vec![])).await.unwrap()),
        ["d", "b", "c", "a"]
    );
    let mut limited = query(Holder::Anyone, vec![]);
    limited.limit = 2;
    assert_eq!(record_ids(&store.inbox(&limited).await.unwrap()), ["d", "b"]);
    let mut labelled = query(Holder::Anyone, vec![]);
    labelled.label = Some("vip".into());
    assert_eq!(record_ids(&store.inbox(&labelled).await.unwrap()), ["a"]);
    let mut billing = query(Holder::Anyone, vec![]);
    billing.category = Some("billing".into());
    assert_eq!(record_ids(&store.inbox(&billing).await.unwrap()), ["d"]);

    // Resolved and handed to bob: out of ann's open list, into bob's resolved one.
    resolve_and_hand_to_bob(store, &mut a).await;
    assert_eq!(
        record_ids(&store.inbox(&query(ann(), vec![Open])).await.unwrap()),
        Vec::<&str>::new()
    );
    let bob = query(Holder::Agent("bob".into()), vec![Resolved]);
    assert_eq!(record_ids(&store.inbox(&bob).await.unwrap()), ["d", "a"]);
    // Open again: in the unresolved lists again.
    a.version = 3;
    a.status = Open;
    store.put_conversation_record(&a).await.unwrap();
    assert_eq!(
        record_ids(&store.inbox(&query(Holder::Anyone, vec![Open])).await.unwrap()),
        ["c", "a"]
    );
}

/// An inbox's count is how many conversations its list holds without its limit: by holder,
/// status, category and label, and following a change (no stale index entry).
async fn inbox_counts_are_their_lists_without_the_limit(store: &dyn Store) {
    use ConversationStatus::*;
    let mut a = four_inbox_records(store).await;
    // Counted past the limit: a count is the whole list's.
    let query = |holder, statuses| inbox_query(holder, statuses, 1);
    let ann = || Holder::Agent("ann".into());
    assert_eq!(store.count_inbox(&query(ann(), vec![])).await.unwrap(), 2);
    assert_eq!(store.count_inbox(&query(ann(), vec![Open])).await.unwrap(), 1);
    assert_eq!(store.count_inbox(&query(Holder::Nobody, vec![])).await.unwrap(), 1);
    assert_eq!(
        store
            .count_inbox(&query(Holder::Anyone, vec![Open, Pending]))
            .await
            .unwrap(),
        3
    );
    assert_eq!(store.count_inbox(&query(Holder::Anyone, vec![])).await.unwrap(), 4);
    assert_eq!(
        store
            .count_inbox(&query(Holder::Agent("carl".into()), vec![]))
            .await
            .unwrap(),
        0
    );
    let mut labelled = query(Holder::Anyone, vec![]);
    labelled.label = Some("vip".into());
    assert_eq!(store.count_inbox(&labelled).await.unwrap(), 1);
    let mut billing = query(Holder::Anyone, vec![Resolved]);
    billing.category = Some("billing".into());
    assert_eq!(store.count_inbox(&billing).await.unwrap(), 1);
    billing.category = Some("sales".into());
    assert_eq!(store.count_inbox(&billing).await.unwrap(), 0);

    // Resolved and handed to bob: out of ann's and the open counts, into bob's resolved one.
    resolve_and_hand_to_bob(store, &mut a).await;
    assert_eq!(store.count_inbox(&query(ann(), vec![Open])).await.unwrap(), 0);
    assert_eq!(
        store
            .count_inbox(&query(Holder::Agent("bob".into()), vec![Resolved]))
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.count_inbox(&query(Holder::Anyone, vec![Open])).await.unwrap(), 1);
}

/// A customer's conversations come newest first by any of their keys; snoozes come when
/// due, and no longer once woken.
async fn customers_conversations_and_due_snoozes(store: &dyn Store) {
    use ConversationStatus::*;
    let mut old = record("old", Some("ann"), Resolved, 10);
    old.customer_keys = vec!["visitor:v1".into()];
    let mut new = record("new", Some("ann"), Snoozed, 20);
    new.customer_keys = vec!["visitor:v1".into(), "user:42".into()];
    let other = record("other", None, Snoozed, 15);
    for r in [&old, &new, &other] {
        store.put_conversation_record(r).await.unwrap();
    }
    let of = |key: &'static str| async move { store.customer_conversation_records(key, 10).await.unwrap() };
    assert_eq!(record_ids(&of("visitor:v1").await), ["new", "old"]);
    assert_eq!(record_ids(&of("user:42").await), ["new"]);
    assert!(of("visitor:nobody").await.is_empty());
    assert_eq!(
        record_ids(&store.customer_conversation_records("visitor:v1", 1).await.unwrap()),
        ["new"]
    );

    // Snoozed until 1015 and 1020.
    assert!(store.snoozes_due(1000, 10).await.unwrap().is_empty());
    assert_eq!(record_ids(&store.snoozes_due(1015, 10).await.unwrap()), ["other"]);
    assert_eq!(
        record_ids(&store.snoozes_due(5000, 10).await.unwrap()),
        ["other", "new"]
    );
    let mut woken = new.clone();
    woken.version = 2;
    woken.status = Open;
    woken.snoozed_until = None;
    woken.customer_keys = vec!["user:42".into()];
    store.put_conversation_record(&woken).await.unwrap();
    assert_eq!(record_ids(&store.snoozes_due(5000, 10).await.unwrap()), ["other"]);
    assert_eq!(
        record_ids(&of("visitor:v1").await),
        ["old"],
        "a key taken off is out of the index"
    );
}

// ---------- mail customers send back ----------

/// An inbound mail's key is recorded once: the second record says so, of twenty racing
/// records exactly one is first, and a read changes nothing.
async fn inbound_mail_is_recorded_once_by_key(store: &dyn Store) {
    assert!(!store.inbound_seen("id:a@customer.example").await.unwrap());
    assert!(
        !store.inbound_seen("id:a@customer.example").await.unwrap(),
        "a read records nothing"
    );
    assert!(store.first_seen("id:a@customer.example", 10).await.unwrap());
    assert!(store.inbound_seen("id:a@customer.example").await.unwrap());
    assert!(!store.first_seen("id:a@customer.example", 20).await.unwrap());
    assert!(
        !store.inbound_seen("id:A@customer.example").await.unwrap(),
        "keys are exact"
    );
    let racers = (0..20).map(|i| store.first_seen("sha256:00ff", i));
    let firsts = futures_util::future::join_all(racers).await;
    assert_eq!(firsts.iter().filter(|r| matches!(r, Ok(true))).count(), 1, "{firsts:?}");
    assert!(firsts.iter().all(|r| r.is_ok()));
}

// ---------- webhooks: endpoints and their deliveries ----------

fn endpoint(id: &str, created_at: Millis) -> WebhookEndpoint {
    WebhookEndpoint {
        id: id.into(),
        url: format!("https://{id}.example.com/hook"),
        events: vec!["message.created".into()],
        secret: format!("whsec_{id}"),
        enabled: true,
        disabled_reason: None,
        failures_in_a_row: 0,
        created_at,
    }
}

fn delivery(seq: u64, endpoint: &str, key: &str) -> WebhookDelivery {
    WebhookDelivery {
        id: format!("{seq}-{endpoint}"),
        endpoint_id: endpoint.into(),
        seq,
        ordering_key: key.into(),
        event_id: format!("ev{seq}"),
        event_type: "message.created".into(),
        body: format!("{{\"seq\":{seq}}}"),
        status: DeliveryStatus::Pending,
        due_at: 100,
        attempts: vec![],
        created_at: 100,
        claimed_by: None,
        claim_until: None,
    }
}

/// Endpoints are added once by id, listed oldest first, replaced, and deleted.
async fn webhook_endpoints_are_added_once_replaced_and_deleted(store: &dyn Store) {
    assert!(store.webhooks().await.unwrap().is_empty());
    store.add_webhook(endpoint("b", 2)).await.unwrap();
    store.add_webhook(endpoint("a", 1)).await.unwrap();
    assert_conflict(store.add_webhook(endpoint("a", 9)).await);
    let ids: Vec<String> = store.webhooks().await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["a", "b"], "oldest first");
    let disabled = WebhookEndpoint {
        enabled: false,
        disabled_reason: Some("failed".into()),
        failures_in_a_row: 1,
        ..endpoint("a", 1)
    };
    store.put_webhook(disabled.clone()).await.unwrap();
    assert_eq!(store.webhook("a").await.unwrap(), disabled);
    assert_not_found(store.put_webhook(endpoint("zz", 1)).await);
    store.delete_webhook("a").await.unwrap();
    assert_not_found(store.delete_webhook("a").await);
    assert_not_found(store.webhook("a").await);
    assert_eq!(store.webhooks().await.unwrap().len(), 1);
}

/// The admins' choice on private addresses: none until made, then the last one made.
async fn webhook_private_addresses_keep_the_last_choice(store: &dyn Store) {
    assert_eq!(store.webhook_private_addresses().await.unwrap(), None);
    let choice = |allowed, by: &str, at| PrivateAddressesChoice {
        allowed,
        changed_by: by.into(),
        changed_at: at,
    };
    for made in [choice(true, "ada", 10), choice(false, "bob", 20)] {
        store.set_webhook_private_addresses(made.clone()).await.unwrap();
        assert_eq!(store.webhook_private_addresses().await.unwrap(), Some(made));
    }
}

/// Deliveries are pending in `seq` order until finished, each endpoint's log lists its
/// own newest first with their attempts, and they go with their endpoint.
async fn webhook_deliveries_are_pending_by_seq_and_logged_per_endpoint(store: &dyn Store) {
    assert_eq!(store.next_delivery_seq().await.unwrap(), 1);
    store.add_webhook(endpoint("a", 1)).await.unwrap();
    store.add_webhook(endpoint("b", 2)).await.unwrap();
    for (seq, ep, key) in [(1, "a", "c1"), (2, "b", "c1"), (3, "a", "c2"), (10, "a", "c1")] {
        store.add_delivery(delivery(seq, ep, key)).await.unwrap();
    }
    assert_conflict(store.add_delivery(delivery(3, "a", "c2")).await);
    // The same delivery (event and endpoint) written by another node under its own seq.
    let again = WebhookDelivery {
        seq: 12,
        ..delivery(3, "a", "c2")
    };
    assert_conflict(store.add_delivery(again).await);
    assert!(store.next_delivery_seq().await.unwrap() > 1, "never handed out twice");
    let seqs = |ds: Vec<WebhookDelivery>| ds.into_iter().map(|d| d.seq).collect::<Vec<_>>();
    let both = ["a".to_string(), "b".to_string()];
    assert_eq!(seqs(store.pending_deliveries(&both, 10).await.unwrap()), [1, 2, 3, 10]);
    assert_eq!(seqs(store.pending_deliveries(&both, 2).await.unwrap()), [1, 2]);
    // A disabled endpoint's backlog ahead of another's pending hides nothing.
    let only_b = ["b".to_string()];
    assert_eq!(seqs(store.pending_deliveries(&only_b, 1).await.unwrap()), [2]);

    assert!(claims(store, &delivery(1, "a", "c1"), "n1", 100, 200).await);
    let mut done = delivery(1, "a", "c1");
    done.status = DeliveryStatus::Delivered;
    done.claimed_by = Some("n1".into());
    done.attempts.push(DeliveryAttempt {
        at: 150,
        status_code: Some(500),
        latency_ms: 12,
        excerpt: "oops".into(),
    });
    done.attempts.push(DeliveryAttempt {
        at: 1_150,
        status_code: Some(200),
        latency_ms: 3,
        excerpt: "ok".into(),
    });
    assert!(store.finish_delivery(done.clone(), "n1").await.unwrap());
    assert_not_found(store.finish_delivery(delivery(99, "a", "c9"), "n1").await);
    assert_eq!(seqs(store.pending_deliveries(&both, 10).await.unwrap()), [2, 3, 10]);
    let log = store.deliveries_of("a", 10).await.unwrap();
    assert_eq!(seqs(log.clone()), [10, 3, 1], "newest first, its own");
    assert_eq!(log[2], done, "with its attempts");
    assert_eq!(seqs(store.deliveries_of("a", 1).await.unwrap()), [10]);

    store.delete_webhook("a").await.unwrap();
    assert_eq!(seqs(store.pending_deliveries(&both, 10).await.unwrap()), [2]);
    assert!(store.deliveries_of("a", 10).await.unwrap().is_empty());
}

/// Whether `node` claims `d` at `now` until `until` ([`WebhookStore::claim_delivery`]).
async fn claims(store: &dyn Store, d: &WebhookDelivery, node: impl Into<String>, now: Millis, until: Millis) -> bool {
    store
        .claim_delivery(d, DeliveryClaim::new(node, now, until))
        .await
        .unwrap()
}

/// Eight nodes claiming one due delivery at once: exactly one gets it; it is not
/// claimable again (by anyone) until its lease runs out, nor before it is due; only the
/// claim's holder records an attempt, which ends the claim; a finished one is never
/// claimed again.
async fn webhook_deliveries_are_claimed_by_one_node_at_a_time(store: &dyn Store) {
    store.add_webhook(endpoint("a", 1)).await.unwrap();
    let d = delivery(1, "a", "c1");
    store.add_delivery(d.clone()).await.unwrap();
    assert!(!claims(store, &d, "early", 99, 1_000).await, "not before it is due");
    let claimers = (0..8).map(|n| {
        let d = d.clone();
        async move { claims(store, &d, format!("n{n}"), 100, 1_100).await }
    });
    let won = futures_util::future::join_all(claimers).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let holder = format!("n{}", won.iter().position(|w| *w).unwrap());
    let stored = store.pending_deliveries(&["a".to_string()], 10).await.unwrap();
    assert_eq!(
        (stored[0].claimed_by.as_deref(), stored[0].claim_until),
        (Some(holder.as_str()), Some(1_100))
    );
    assert!(!claims(store, &d, "late", 1_099, 2_000).await);
    // The holder died: its lease runs out and another node takes it.
    assert!(claims(store, &d, "heir", 1_100, 2_100).await);
    let mut retry = stored[0].clone();
    retry.due_at = 5_000;
    retry.claim_until = None;
    assert!(
        !store.finish_delivery(retry.clone(), &holder).await.unwrap(),
        "its claim was lost: nothing recorded"
    );
    retry.claimed_by = Some("heir".into());
    assert!(store.finish_delivery(retry.clone(), "heir").await.unwrap());
    assert_eq!(
        store.pending_deliveries(&["a".to_string()], 10).await.unwrap(),
        [retry.clone()]
    );
    assert!(!claims(store, &d, "n1", 4_999, 9_000).await, "retried at 5000");
    assert!(claims(store, &d, "n1", 5_000, 9_000).await);
    let delivered = WebhookDelivery {
        status: DeliveryStatus::Delivered,
        claimed_by: Some("n1".into()),
        ..retry
    };
    assert!(store.finish_delivery(delivered.clone(), "n1").await.unwrap());
    assert!(!store.finish_delivery(delivered.clone(), "n1").await.unwrap(), "once");
    assert!(!claims(store, &d, "n2", 100_000, 200_000).await);
    assert!(
        store
            .pending_deliveries(&["a".to_string()], 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!claims(store, &delivery(7, "a", "c7"), "n1", 100, 200).await, "absent");
}

/// Pruning deletes the settled deliveries (delivered, dead) created before the cutoff, from
/// the pending listing's neighbours and the endpoint's log alike, and nothing else: not a
/// pending or dying one however old, nor a settled one created at or after the cutoff.
/// Two nodes pruning at once delete each once between them, and neither fails; the
/// `seq` counter goes on above the deleted ones.
async fn webhook_deliveries_settled_long_ago_are_pruned(store: &dyn Store) {
    store.add_webhook(endpoint("a", 1)).await.unwrap();
    store.add_webhook(endpoint("b", 2)).await.unwrap();
    let statuses = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Dying,
        DeliveryStatus::Dead,
    ];
    let mut seq = 0;
    for created_at in [100, 999, 1_000, 5_000] {
        for status in statuses {
            for ep in ["a", "b"] {
                seq += 1;
                let d = WebhookDelivery {
                    status,
                    created_at,
                    ..delivery(seq, ep, &format!("c{seq}"))
                };
                store.add_delivery(d).await.unwrap();
            }
        }
    }
    let last_seq = store.next_delivery_seq().await.unwrap();
    assert_eq!(store.prune_deliveries(100).await.unwrap(), 0, "none before 100");
    // Two nodes at once: the settled ones created at 100 and 999, to both endpoints.
    let (one, two) = futures_util::future::join(store.prune_deliveries(1_000), store.prune_deliveries(1_000)).await;
    assert_eq!(one.unwrap() + two.unwrap(), 8);
    assert_eq!(store.prune_deliveries(1_000).await.unwrap(), 0, "once");
    for ep in ["a", "b"] {
        let log = store.deliveries_of(ep, 100).await.unwrap();
        let kept: Vec<(Millis, DeliveryStatus)> = log.iter().rev().map(|d| (d.created_at, d.status)).collect();
        let mut wanted = Vec::new();
        for created_at in [100, 999, 1_000, 5_000] {
            for status in statuses {
                if created_at >= 1_000 || matches!(status, DeliveryStatus::Pending | DeliveryStatus::Dying) {
                    wanted.push((created_at, status));
                }
            }
        }
        assert_eq!(kept, wanted, "{ep}'s log");
    }
    assert_eq!(
        store
            .pending_deliveries(&["a".to_string(), "b".to_string()], 100)
            .await
            .unwrap()
            .len(),
        8,
        "every pending one, old or new"
    );
    assert_eq!(store.dying_deliveries(100).await.unwrap().len(), 8);
    // A pruned delivery is gone from every index: its id may be stored again.
    let pruned = WebhookDelivery {
        status: DeliveryStatus::Delivered,
        ..delivery(4, "b", "c4")
    };
    store.add_delivery(pruned).await.unwrap();
    assert!(store.next_delivery_seq().await.unwrap() > last_seq, "seq goes on");
    assert_eq!(
        store.prune_deliveries(Millis::MAX).await.unwrap(),
        9,
        "the settled rest"
    );
    store.delete_webhook("a").await.unwrap();
    assert!(store.deliveries_of("a", 100).await.unwrap().is_empty());
}

/// A last failure stored under the claim as `dying` is neither pending nor claimable, is
/// listed as dying (by `seq`) until buried, and burying makes it `dead` once; burying one
/// that is not dying, or absent, changes nothing. Deleting its endpoint takes it away.
async fn webhook_deliveries_dying_are_listed_until_buried(store: &dyn Store) {
    let a = ["a".to_string()];
    store.add_webhook(endpoint("a", 1)).await.unwrap();
    let (first, second, living) = (delivery(1, "a", "c1"), delivery(2, "a", "c2"), delivery(3, "a", "c3"));
    for d in [&first, &second, &living] {
        store.add_delivery(d.clone()).await.unwrap();
    }
    assert!(store.dying_deliveries(10).await.unwrap().is_empty());
    let mut dying = Vec::new();
    for d in [&second, &first] {
        assert!(claims(store, d, "n1", 100, 1_000).await);
        let given_up = WebhookDelivery {
            status: DeliveryStatus::Dying,
            claimed_by: Some("n1".into()),
            claim_until: None,
            ..d.clone()
        };
        assert!(store.finish_delivery(given_up.clone(), "n1").await.unwrap());
        dying.insert(0, given_up);
    }
    assert_eq!(store.dying_deliveries(10).await.unwrap(), dying, "by seq");
    assert_eq!(store.dying_deliveries(1).await.unwrap(), dying[..1]);
    assert_eq!(
        store.pending_deliveries(&a, 10).await.unwrap(),
        std::slice::from_ref(&living)
    );
    assert!(!claims(store, &first, "n2", 100_000, 200_000).await);
    assert!(
        !store.finish_delivery(dying[0].clone(), "n1").await.unwrap(),
        "not pending any more"
    );

    store.bury_delivery(&dying[0]).await.unwrap();
    store.bury_delivery(&dying[0]).await.unwrap();
    store.bury_delivery(&living).await.unwrap();
    store.bury_delivery(&delivery(9, "a", "c9")).await.unwrap();
    assert_eq!(store.dying_deliveries(10).await.unwrap(), dying[1..]);
    let logged = store.deliveries_of("a", 10).await.unwrap();
    let status: Vec<_> = logged.iter().map(|d| (d.seq, d.status)).collect();
    assert_eq!(
        status,
        [
            (3, DeliveryStatus::Pending),
            (2, DeliveryStatus::Dying),
            (1, DeliveryStatus::Dead)
        ]
    );
    assert_eq!(logged[2].attempts, dying[0].attempts);
    store.delete_webhook("a").await.unwrap();
    assert!(store.dying_deliveries(10).await.unwrap().is_empty());
}

/// Seqs handed out at once by many callers are each handed out once.
async fn webhook_delivery_seqs_are_handed_out_once(store: &dyn Store) {
    let takers = (0..8).map(|_| async move {
        let mut mine = Vec::new();
        for _ in 0..5 {
            mine.push(store.next_delivery_seq().await.unwrap());
        }
        mine
    });
    let all = gathered_sorted(takers).await;
    assert_eq!(all, (1..=40).collect::<Vec<_>>());
}

// ---------- API tokens ----------

fn api_token(id: &str, created_at: Millis) -> ApiToken {
    ApiToken {
        id: id.into(),
        name: format!("{id} script"),
        scopes: vec!["read".into()],
        bot: None,
        hash: format!("hash-of-{id}"),
        hint: "sbt_abcd".into(),
        created_at,
        created_by: "admin1".into(),
        expires_at: Some(1_000_000),
        last_used_at: None,
        revoked_at: None,
    }
}

/// Tokens are added once by id and by hash, found by hash, listed oldest first; a
/// revocation keeps its first time; a use never moves the last use back.
async fn api_tokens_are_found_by_hash_revoked_once_and_touched(store: &dyn Store) {
    assert!(store.api_tokens().await.unwrap().is_empty());
    assert_not_found(store.api_token_by_hash("hash-of-a").await);
    store.add_api_token(api_token("b", 2)).await.unwrap();
    store.add_api_token(api_token("a", 1)).await.unwrap();
    assert_conflict(store.add_api_token(api_token("a", 9)).await);
    let mut same_hash = api_token("c", 3);
    same_hash.hash = "hash-of-a".into();
    assert_conflict(store.add_api_token(same_hash).await);
    let ids: Vec<String> = store.api_tokens().await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(store.api_token_by_hash("hash-of-a").await.unwrap(), api_token("a", 1));

    store.touch_api_token("a", 500).await.unwrap();
    store.touch_api_token("a", 400).await.unwrap();
    assert_eq!(
        store.api_token_by_hash("hash-of-a").await.unwrap().last_used_at,
        Some(500)
    );
    assert_not_found(store.touch_api_token("zz", 1).await);

    let revoked = store.revoke_api_token("a", 700).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(700));
    assert_eq!(store.revoke_api_token("a", 900).await.unwrap().revoked_at, Some(700));
    let found = store.api_token_by_hash("hash-of-a").await.unwrap();
    assert_eq!((found.revoked_at, found.last_used_at), (Some(700), Some(500)));
    assert_eq!(store.api_token_by_hash("hash-of-b").await.unwrap().revoked_at, None);
    assert_not_found(store.revoke_api_token("zz", 1).await);
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test] async fn $test() { super::with_memory(super::$test).await } )*
        }
        mod embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { super::with_embedded(super::$test).await } )*
        }
        mod mongo {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { super::with_mongo(super::$test).await } )*
        }
    };
}

// ---------- attachments ----------

/// A message that carries files keeps their metadata, in order, beside plain lines; a
/// retry of it adds nothing.
async fn messages_keep_their_files(store: &dyn Store) {
    let file = |id: &str, name: &str, mime: &str, thumbnail: bool| switchboard::attachments::AttachmentMeta {
        id: id.into(),
        name: name.into(),
        mime: mime.into(),
        size: 48_213,
        thumbnail,
    };
    let files = vec![
        file("f1", "error shot.png", "image/png", true),
        file("f2", "Rechnung März.pdf", "application/pdf", false),
    ];
    let with_files = ArchiveEvent::Message {
        conversation_id: "c1".into(),
        message: ArchivedMessage {
            via: None,
            attachments: files.clone(),
            id: msg_id("c1", 2).into(),
            seq: 2,
            from: Side::Customer,
            text: String::new(),
            at: 1_002,
        },
    };
    store
        .archive(&[
            open("c1", Some("sales"), "a1", 1_000),
            message("c1", 1),
            with_files.clone(),
            message("c1", 3),
        ])
        .await
        .unwrap();
    store.archive(&[with_files]).await.unwrap();
    let c1 = store.conversation("c1").await.unwrap();
    assert_eq!(seqs(&c1), vec![1, 2, 3]);
    assert_eq!(c1.messages[1].attachments, files);
    assert_eq!(c1.messages[1].text, "");
    assert!(c1.messages[0].attachments.is_empty() && c1.messages[2].attachments.is_empty());
}

/// A customer's answer by mail keeps its `via` (with files or without), beside plain lines
/// that have none; a retry of it adds nothing.
async fn lines_by_mail_keep_their_via(store: &dyn Store) {
    let by_mail = |seq: u64, files: Vec<switchboard::attachments::AttachmentMeta>| ArchiveEvent::Message {
        conversation_id: "c1".into(),
        message: ArchivedMessage {
            via: Some(switchboard::store::Via::Email),
            attachments: files,
            id: msg_id("c1", seq).into(),
            seq,
            from: Side::Customer,
            text: format!("by mail {seq}"),
            at: 1_000 + seq as i64,
        },
    };
    let file = switchboard::attachments::AttachmentMeta {
        id: "f1".into(),
        name: "foto.png".into(),
        mime: "image/png".into(),
        size: 10,
        thumbnail: true,
    };
    let events = [
        open("c1", Some("sales"), "a1", 1_000),
        message("c1", 1),
        by_mail(2, vec![]),
        by_mail(3, vec![file.clone()]),
        message("c1", 4),
    ];
    store.archive(&events).await.unwrap();
    store.archive(&events[2..4]).await.unwrap();
    let c1 = store.conversation("c1").await.unwrap();
    assert_eq!(seqs(&c1), vec![1, 2, 3, 4]);
    let via: Vec<_> = c1.messages.iter().map(|m| m.via).collect();
    let email = Some(switchboard::store::Via::Email);
    assert_eq!(via, [None, email, email, None]);
    assert_eq!(c1.messages[2].attachments, [file]);
}

// ---------- reply addresses of follow-up mails ----------

/// A token is bound to one conversation for good; a conversation may have several, and
/// its least is the one given back each time; unknown tokens and conversations find nothing.
async fn reply_tokens_are_bound_once_and_found_both_ways(store: &dyn Store) {
    assert_eq!(store.conversation_of("nothing").await.unwrap(), None);
    assert_eq!(store.token_of("c1").await.unwrap(), None);
    store.remember("mmmm", "c1").await.unwrap();
    store.remember("mmmm", "c1").await.unwrap();
    assert_eq!(store.conversation_of("mmmm").await.unwrap().as_deref(), Some("c1"));
    assert_eq!(store.token_of("c1").await.unwrap().as_deref(), Some("mmmm"));
    // Two nodes racing each remember one: both lead to it, the least is given back.
    store.remember("zzzz", "c1").await.unwrap();
    store.remember("aaaa", "c1").await.unwrap();
    assert_eq!(store.token_of("c1").await.unwrap().as_deref(), Some("aaaa"));
    assert_eq!(store.conversation_of("zzzz").await.unwrap().as_deref(), Some("c1"));
    // A token is never rebound to another conversation.
    store.remember("mmmm", "c2").await.unwrap();
    assert_eq!(store.conversation_of("mmmm").await.unwrap().as_deref(), Some("c1"));
    assert_eq!(store.token_of("c2").await.unwrap(), None);
    // A conversation whose id is a prefix of another's does not take its tokens.
    store.remember("bbbb", "c10").await.unwrap();
    assert_eq!(store.token_of("c1").await.unwrap().as_deref(), Some("aaaa"));
    assert_eq!(store.token_of("c10").await.unwrap().as_deref(), Some("bbbb"));
    assert_eq!(store.token_of("c").await.unwrap(), None);
}

// ---------- transcripts by mail ----------

/// A transcript is the conversation without its notes; the store reads it whole, rating
/// included, and says `NotFound` for an unknown or erased conversation.
async fn a_customer_transcript_holds_the_chat_and_never_its_notes(store: &dyn Store) {
    store
        .archive(&[
            opened_by("t1", 10, Some("carla@example.com"), None),
            message("t1", 1),
            noted(&note_of("t1", "n1", 11, "a1")),
            message("t1", 2),
            close("t1", EndReason::Ended, 20),
        ])
        .await
        .unwrap();
    let whole = store.conversation("t1").await.unwrap();
    assert_eq!(whole.notes.len(), 1, "the note is archived");
    let rating = Rating {
        score: 5,
        scale: RatingScale::Stars,
        comment: None,
        at: 30,
    };
    store.rate_conversation("t1", rating.clone()).await.unwrap();
    let transcript = store.customer_transcript("t1").await.unwrap();
    assert_eq!(transcript.opened, whole.opened);
    assert_eq!(transcript.closed, whole.closed);
    assert_eq!(transcript.messages, whole.messages);
    assert_eq!(transcript.rating, Some(rating));
    assert_eq!(transcript.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
    assert_not_found(store.customer_transcript("nope").await);
    store.erase_conversations(&["t1".to_string()]).await.unwrap();
    assert_not_found(store.customer_transcript("t1").await);
}

/// A mail is added only under a new id (of twenty racing adders of one id, one wins), and
/// mails are found by the start of their id, and only those.
async fn mails_are_added_once_by_id_and_found_by_prefix(store: &dyn Store) {
    let at = |id: &str, to: &str| OutboxMail {
        id: id.to_string(),
        to: to.to_string(),
        attachments: vec![],
        ..mail("c1", MailPurpose::Transcript, 5)
    };
    store.add_mail(at("transcript:c1:1", "a@example.com")).await.unwrap();
    assert_conflict(store.add_mail(at("transcript:c1:1", "b@example.com")).await);
    store.add_mail(at("transcript:c1:2", "b@example.com")).await.unwrap();
    store.add_mail(at("transcript:c10:1", "c@example.com")).await.unwrap();
    store.add_mail(at("transcript:c0:1", "d@example.com")).await.unwrap();
    let found = store.mails_by_id_prefix("transcript:c1:").await.unwrap();
    assert_eq!(
        found.iter().map(|m| (m.id.as_str(), m.to.as_str())).collect::<Vec<_>>(),
        [
            ("transcript:c1:1", "a@example.com"),
            ("transcript:c1:2", "b@example.com")
        ]
    );
    assert_eq!(found[0].purpose, MailPurpose::Transcript);
    assert!(store.mails_by_id_prefix("transcript:zz:").await.unwrap().is_empty());
    // An admins' mail about a disabled webhook endpoint is kept as any other.
    let told = OutboxMail {
        purpose: MailPurpose::WebhookDisabled,
        ..at("webhook-disabled:ev-e1:ops@example.com", "ops@example.com")
    };
    store.add_mail(told.clone()).await.unwrap();
    assert_eq!(store.mails_by_id_prefix("webhook-disabled:").await.unwrap(), [told]);
    // A regex's metacharacters in a prefix are taken literally.
    assert!(store.mails_by_id_prefix("transcript:c.:").await.unwrap().is_empty());
    let adders = (0..20).map(|i| store.add_mail(at("transcript:race:1", &format!("r{i}@example.com"))));
    let results = futures_util::future::join_all(adders).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict))));
    // A mail that is not sent yet waits without a failed attempt being counted.
    let claimed = claim(store, "n1", 10, 1_000).await;
    let first = claimed.iter().find(|m| m.id == "transcript:c1:1").expect("claimed");
    assert!(
        store
            .finish_mail(&first.id, "n1", MailOutcome::Later { until: 500 })
            .await
            .unwrap()
    );
    let waiting = store.mail("transcript:c1:1").await.unwrap();
    assert_eq!(
        (waiting.status, waiting.attempts, waiting.due_at, waiting.claim_until),
        (MailStatus::Pending, 0, 500, None)
    );
    assert!(
        claim(store, "n2", 499, 2_000)
            .await
            .iter()
            .all(|m| m.id != "transcript:c1:1")
    );
    assert!(
        claim(store, "n2", 500, 2_000)
            .await
            .iter()
            .any(|m| m.id == "transcript:c1:1")
    );
}

// ---------- archive search ----------

fn said(conv: &str, seq: u64, text: &str) -> ArchiveEvent {
    line(conv, seq, Side::Customer, text, 1_000 + seq as Millis)
}

fn searched(typed: &str) -> ConversationFilter {
    ConversationFilter {
        text: Some(SearchQuery::parse(typed).unwrap()),
        ..Default::default()
    }
}

async fn found(store: &dyn Store, filter: &ConversationFilter) -> (Vec<String>, u64) {
    let (cs, total) = store.conversations(filter, ALL).await.unwrap();
    (cs.iter().map(|c| c.opened.id.clone()).collect(), total)
}

/// The listing's status and label filters read the conversations' records, with every
/// other filter, search and paging, and the totals are exact: a record stored before its
/// conversation's opening counts, a record's later change replaces what it said, and a
/// conversation without a record passes neither filter.
async fn status_and_label_filters(store: &dyn Store) {
    use ConversationStatus::{Open, Pending, Resolved};
    let desk = |id: &str, status: ConversationStatus, labels: &[&str], version: u64| ConversationRecord {
        labels: labels.iter().map(|l| l.to_string()).collect(),
        version,
        ..record(id, Some("a1"), status, 1)
    };
    // s4's record is stored before its opening is archived.
    store
        .put_conversation_record(&desk("s4", Resolved, &["vip"], 1))
        .await
        .unwrap();
    store
        .archive(&[
            open("s1", Some("sales"), "a1", 1_000),
            said("s1", 1, "refund please"),
            open("s2", Some("support"), "a1", 2_000),
            said("s2", 1, "a refund now"),
            open("s3", Some("sales"), "a2", 3_000),
            open("s4", Some("sales"), "a1", 4_000),
            said("s4", 1, "refund"),
            // No record: a buddy chat, or one not migrated yet.
            open("s5", Some("sales"), "a1", 5_000),
        ])
        .await
        .unwrap();
    for r in [
        desk("s1", Resolved, &["vip"], 1),
        desk("s2", Resolved, &[], 1),
        desk("s3", Pending, &["vip"], 1),
    ] {
        store.put_conversation_record(&r).await.unwrap();
    }
    let on = |statuses: &[ConversationStatus], label: Option<&str>, base: ConversationFilter| ConversationFilter {
        statuses: statuses.to_vec(),
        label: label.map(String::from),
        ..base
    };
    let sales = || ConversationFilter {
        category: Some("sales".into()),
        ..Default::default()
    };
    let listed = |ids: &[&str], total: u64| (ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(), total);
    let list = |filter: ConversationFilter, page: Page| async move {
        let (cs, total) = store.conversations(&filter, page).await.unwrap();
        (cs.iter().map(|c| c.opened.id.clone()).collect::<Vec<_>>(), total)
    };
    let f = ConversationFilter::default;
    assert_eq!(
        list(on(&[Resolved], None, f()), ALL).await,
        listed(&["s4", "s2", "s1"], 3)
    );
    assert_eq!(
        list(on(&[Resolved], None, sales()), ALL).await,
        listed(&["s4", "s1"], 2)
    );
    let later = ConversationFilter {
        from: Some(2_000),
        ..sales()
    };
    assert_eq!(list(on(&[Resolved], None, later), ALL).await, listed(&["s4"], 1));
    assert_eq!(
        list(on(&[], Some("vip"), f()), ALL).await,
        listed(&["s4", "s3", "s1"], 3)
    );
    let of_a1 = ConversationFilter {
        agent_id: Some("a1".into()),
        ..f()
    };
    assert_eq!(list(on(&[], Some("vip"), of_a1), ALL).await, listed(&["s4", "s1"], 2));
    assert_eq!(
        list(on(&[Pending, Resolved], Some("vip"), f()), Page { offset: 1, limit: 1 }).await,
        listed(&["s3"], 3)
    );
    assert_eq!(list(on(&[Open], None, f()), ALL).await, listed(&[], 0));
    assert_eq!(list(on(&[], Some("nothing"), f()), ALL).await, listed(&[], 0));
    // Search: the same filters on the words' hits.
    assert_eq!(
        found(
            store,
            &on(
                &[Resolved],
                None,
                ConversationFilter {
                    category: Some("sales".into()),
                    ..searched("refund")
                }
            )
        )
        .await,
        listed(&["s4", "s1"], 2)
    );
    assert_eq!(
        found(store, &on(&[], Some("vip"), searched("a2 name"))).await,
        listed(&["s3"], 1)
    );
    // A later change of a record is what the filters read.
    store.put_conversation_record(&desk("s1", Open, &[], 2)).await.unwrap();
    assert_eq!(list(on(&[Resolved], None, f()), ALL).await, listed(&["s4", "s2"], 2));
    assert_eq!(list(on(&[], Some("vip"), f()), ALL).await, listed(&["s4", "s3"], 2));
    assert_eq!(list(on(&[Open], None, f()), ALL).await, listed(&["s1"], 1));
    assert_eq!(
        found(store, &on(&[Open], None, searched("refund"))).await,
        listed(&["s1"], 1)
    );
}

/// Search finds a conversation when its names, or one of its messages, hold every word
/// (whole words, any case, accents ignored), newest first, with the listing's filters and
/// paging; words spread over two messages are not a match; a retry changes nothing.
async fn search_finds_words_in_names_or_one_message(store: &dyn Store) {
    let mut zoe = opened("c1", Some("sales"), "a1", 1_000);
    zoe.customer_name = "Zoë Müller".into();
    let mut bob = opened("c2", Some("support"), "a2", 2_000);
    bob.customer_name = "Bob".into();
    let mut cafe = opened("c3", None, "a1", 3_000);
    cafe.customer_name = "Café Ünïcode".into();
    let batch = [
        ArchiveEvent::Opened(zoe),
        said("c1", 1, "I want a REFUND for my order #1234."),
        said("c1", 2, "The parcel never arrived"),
        ArchiveEvent::Opened(bob),
        said("c2", 1, "refund please: parcel lost!"),
        ArchiveEvent::Opened(cafe),
        said("c3", 1, "你好世界 =HYPERLINK(\"x\")"),
    ];
    store.archive(&batch).await.unwrap();
    // A later batch's message is found too, and a retry of everything adds nothing.
    store
        .archive(&[said("c2", 2, "Anything else? Refunds take 3 days")])
        .await
        .unwrap();
    store.archive(&batch).await.unwrap();

    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(found(store, &searched("refund")).await, (ids(&["c2", "c1"]), 2));
    assert_eq!(found(store, &searched("Réfund")).await, (ids(&["c2", "c1"]), 2));
    assert_eq!(
        found(store, &searched("refunds")).await,
        (ids(&["c2"]), 1),
        "whole words"
    );
    assert_eq!(found(store, &searched("ref")).await, (ids(&[]), 0), "no prefixes");
    // Both words in one message: c2; c1 has them in two messages.
    assert_eq!(found(store, &searched("parcel refund")).await, (ids(&["c2"]), 1));
    assert_eq!(found(store, &searched("order 1234")).await, (ids(&["c1"]), 1));
    // Names: the customer's and the agent's, without accents.
    assert_eq!(found(store, &searched("zoe MULLER")).await, (ids(&["c1"]), 1));
    assert_eq!(found(store, &searched("cafe unicode")).await, (ids(&["c3"]), 1));
    assert_eq!(found(store, &searched("a2 name")).await, (ids(&["c2"]), 1));
    assert_eq!(found(store, &searched("名 name")).await, (ids(&[]), 0));
    // Words of the names and of a message together are not a match (one or the other).
    assert_eq!(found(store, &searched("zoe refund")).await, (ids(&[]), 0));
    // Ideographs are words each; punctuation is not a word.
    assert_eq!(found(store, &searched("世界")).await, (ids(&["c3"]), 1));
    assert_eq!(found(store, &searched("hyperlink")).await, (ids(&["c3"]), 1));
    assert_eq!(found(store, &searched("nothing-here")).await, (ids(&[]), 0));

    // With the listing's filters and paging.
    let with = |f: ConversationFilter| ConversationFilter {
        text: searched("refund").text,
        ..f
    };
    let sales = with(ConversationFilter {
        category: Some("sales".into()),
        ..Default::default()
    });
    assert_eq!(found(store, &sales).await, (ids(&["c1"]), 1));
    // "refund" in the conversations an agent served.
    let served_by = |agent: &str| {
        with(ConversationFilter {
            agent_id: Some(agent.into()),
            ..Default::default()
        })
    };
    assert_eq!(found(store, &served_by("a2")).await, (ids(&["c2"]), 1));
    let early = with(ConversationFilter {
        from: Some(500),
        to: Some(2_000),
        ..Default::default()
    });
    assert_eq!(found(store, &early).await, (ids(&["c1"]), 1));
    let (page, total) = store
        .conversations(&searched("refund"), Page { offset: 1, limit: 1 })
        .await
        .unwrap();
    assert_eq!((ids_of(&page), total), (vec!["c1".to_string()], 2));
    // A found conversation comes whole.
    let (page, _) = store.conversations(&searched("parcel refund"), ALL).await.unwrap();
    assert_eq!(seqs(&page[0]), vec![1, 2]);

    // A transfer: the agent taking it is found by name, and the agent who handed it on
    // still finds it among theirs.
    store
        .archive(&[transferred(&transfer("c1", 1_500, 2, "a1", Some("a7"), None))])
        .await
        .unwrap();
    assert_eq!(found(store, &searched("a7 name")).await, (ids(&["c1"]), 1));
    assert_eq!(found(store, &served_by("a1")).await, (ids(&["c1"]), 1));
    assert_eq!(found(store, &served_by("a7")).await, (ids(&["c1"]), 1));
}

fn ids_of(cs: &[Conversation]) -> Vec<String> {
    cs.iter().map(|c| c.opened.id.clone()).collect()
}

/// Erasing a conversation takes it out of search (nothing derived from its text stays
/// findable), and a late replay of its events does not bring it back.
async fn erased_conversations_are_not_found_by_search(store: &dyn Store) {
    let batch = [
        open("gone", Some("sales"), "a1", 1_000),
        said("gone", 1, "my secret passport number"),
        open("kept", Some("sales"), "a1", 2_000),
        said("kept", 1, "my passport expired"),
    ];
    store.archive(&batch).await.unwrap();
    assert_eq!(found(store, &searched("passport")).await.1, 2);
    store.erase_conversations(&["gone".to_string()]).await.unwrap();
    assert_eq!(found(store, &searched("passport")).await, (vec!["kept".to_string()], 1));
    assert_eq!(found(store, &searched("secret")).await.1, 0);
    assert_eq!(found(store, &searched("gone")).await.1, 0, "nor by its names");
    store.archive(&batch).await.unwrap();
    assert_eq!(found(store, &searched("secret passport")).await.1, 0);
}

// ---------- the facts the reports read ----------

fn said_at(conv: &str, seq: u64, from: Side, at: Millis) -> ArchiveEvent {
    line(conv, seq, from, &format!("line {seq}"), at)
}

fn left(id: &str, category: &str, queued_at: Millis, left_at: Millis) -> ArchiveEvent {
    ArchiveEvent::Abandoned(QueueAbandoned {
        id: id.to_string(),
        category: category.to_string(),
        queued_at,
        left_at,
    })
}

/// The facts of conversation `id` as its opening (`opened`) gives them: not yet answered,
/// ended or rated, no bot.
fn facts_of_opening(id: &str, category: &str, agent: &str, paired_at: Millis) -> ConversationFacts {
    ConversationFacts {
        id: id.into(),
        category: Some(category.into()),
        agent_id: agent.into(),
        agent_name: format!("{agent} name"),
        queued_at: paired_at - 5,
        paired_at,
        first_agent_at: None,
        ended_at: None,
        rating: None,
        bot: None,
    }
}

/// The ids of the conversations in `facts`, in their order.
fn fact_ids(facts: &ReportFacts) -> Vec<&str> {
    facts.conversations.iter().map(|c| c.id.as_str()).collect()
}

/// The reports' facts: service conversations paired in the range (never buddy chats),
/// each with its agent now, its first agent line (the earliest, whatever the order the
/// lines were archived in), its end and rating; customers who left unserved by the time
/// they left, once each; offline messages by the time they were left, with who handled
/// them and when. A second read sees what was written since the first (a cache, where a
/// backend keeps one, never hides a change), and an erased conversation is gone.
async fn report_facts_are_the_archives_times(store: &dyn Store) {
    const DAY: Millis = 86_400_000;
    let t0 = 20_000 * DAY; // a day boundary (UTC)
    store
        .archive(&[
            // r1: waited 30 s, agent's first line 5 s after pairing (the later line archived first).
            open("r1", Some("sales"), "a1", t0 + 1_000),
            said_at("r1", 1, Side::Customer, t0 + 2_000),
            said_at("r1", 3, Side::Agent, t0 + 9_000),
            // r2: never answered, still open.
            open("r2", Some("billing"), "a2", t0 + 3_000),
            said_at("r2", 1, Side::Customer, t0 + 4_000),
            // a buddy chat: never a report's.
            open("b1", None, "bob", t0 + 5_000),
            said_at("b1", 1, Side::Agent, t0 + 6_000),
            // out of the range (the day after).
            open("r9", Some("sales"), "a1", t0 + DAY + 10),
            left("q1", "sales", t0 - 5_000, t0 + 100),
            left("q2", "billing", t0 + 200, t0 + DAY + 300),
        ])
        .await
        .unwrap();
    store
        .archive(&[
            said_at("r1", 2, Side::Agent, t0 + 6_000),
            close("r1", EndReason::Ended, t0 + 61_000),
            left("q1", "sales", t0 - 5_000, t0 + 100), // a retry: kept once
        ])
        .await
        .unwrap();
    store
        .rate_conversation(
            "r1",
            Rating {
                score: 4,
                scale: RatingScale::Stars,
                comment: None,
                at: t0 + 70_000,
            },
        )
        .await
        .unwrap();
    let mut handled = offline("o1", "sales", t0 + 500);
    handled.email = "o1@example.com".into();
    store.add_offline_message(handled, None).await.unwrap();
    add_offline(store, "o2", "billing", t0 + 600).await;
    add_offline(store, "o3", "billing", t0 - 1).await;
    reply_with_mail(
        store,
        "o1",
        reply("o1r1", "a2", t0 + 3_600_500),
        mail("o1", MailPurpose::OfflineReply, t0),
    )
    .await
    .unwrap();

    let facts = store.report_facts(t0, t0 + DAY).await.unwrap().sorted();
    let r1 = ConversationFacts {
        first_agent_at: Some(t0 + 6_000),
        ended_at: Some(t0 + 61_000),
        rating: Some((RatingScale::Stars, 4)),
        ..facts_of_opening("r1", "sales", "a1", t0 + 1_000)
    };
    let r2 = facts_of_opening("r2", "billing", "a2", t0 + 3_000);
    assert_eq!(facts.conversations, [r1.clone(), r2.clone()]);
    assert_eq!(
        facts.abandoned,
        [QueueAbandoned {
            id: "q1".into(),
            category: "sales".into(),
            queued_at: t0 - 5_000,
            left_at: t0 + 100,
        }]
    );
    assert_eq!(
        facts.offline,
        [
            OfflineFacts {
                category: "sales".into(),
                created_at: t0 + 500,
                handled: Some(("a2".into(), Some(t0 + 3_600_500))),
            },
            OfflineFacts {
                category: "billing".into(),
                created_at: t0 + 600,
                handled: None,
            },
        ]
    );

    // Written since: r2 handed to a3, answered, ended and rated; a new conversation.
    store
        .archive(&[
            transferred(&transfer("r2", t0 + 10_000, 1, "a2", Some("a3"), None)),
            said_at("r2", 2, Side::Agent, t0 + 12_000),
            close("r2", EndReason::Disconnect, t0 + 20_000),
            open("r3", Some("sales"), "a3", t0 + 30_000),
        ])
        .await
        .unwrap();
    store
        .rate_conversation(
            "r2",
            Rating {
                score: 0,
                scale: RatingScale::Thumbs,
                comment: None,
                at: t0 + 21_000,
            },
        )
        .await
        .unwrap();
    let again = store.report_facts(t0, t0 + DAY).await.unwrap().sorted();
    assert_eq!(fact_ids(&again), ["r1", "r2", "r3"]);
    assert_eq!(again.conversations[0], r1);
    let r2_now = &again.conversations[1];
    assert_eq!(
        (r2_now.agent_id.as_str(), r2_now.agent_name.as_str()),
        ("a3", "a3 name")
    );
    assert_eq!(r2_now.first_agent_at, Some(t0 + 12_000));
    assert_eq!(r2_now.ended_at, Some(t0 + 20_000));
    assert_eq!(r2_now.rating, Some((RatingScale::Thumbs, 0)));

    // A range inside the day, and the day after.
    let early = store.report_facts(t0, t0 + 2_000).await.unwrap();
    assert_eq!(early.conversations.len(), 1);
    let next = store.report_facts(t0 + DAY, t0 + 2 * DAY).await.unwrap().sorted();
    assert_eq!(fact_ids(&next), ["r9"]);
    assert_eq!(next.abandoned.len(), 1);

    store.erase_conversations(&["r1".to_string()]).await.unwrap();
    let erased = store.report_facts(t0, t0 + DAY).await.unwrap().sorted();
    assert_eq!(fact_ids(&erased), ["r2", "r3"]);
}

contract!(
    ping_and_name,
    an_inferred_closing_never_replaces_the_real_one,
    a_real_closing_replaces_an_inferred_one_stored_first,
    an_inferred_closing_of_a_later_visit_replaces_the_earlier_visits,
    messages_keep_their_files,
    lines_by_mail_keep_their_via,
    accounts,
    categories,
    archive_three_conversations,
    idempotence,
    unknown_conversation,
    filters_and_paging,
    large_batch,
    concurrent_retries,
    regrouped_retries,
    the_same_messages_in_another_grouping_come_back_once,
    long_messages,
    transfers_are_kept_once_and_listed_for_every_agent_who_served,
    transfers_out_of_order_and_of_unknown_conversations,
    notes_are_kept_once_by_id_in_time_order,
    notes_are_kept_before_their_opening,
    customers_are_found_by_email_else_visitor_key,
    erasure_removes_everything_of_the_conversations_and_nothing_comes_back,
    // sessions in the shared store
    sessions_are_created_found_and_deleted,
    sessions_of_an_account_are_revoked_together,
    expired_sessions_are_swept,
    // ---- rooms and 1-to-1 video ----
    rooms_one_open_per_agent,
    rooms_update_is_compare_and_set,
    guests_are_reused_by_email_then_phone,
    call_logs_listing,
    // appointments
    appointments_are_booked_once_per_representative_and_slot,
    cancelling_frees_the_slot_once,
    appointments_are_listed_by_range_and_representative,
    twenty_concurrent_bookings_of_one_slot_have_one_winner,
    // appointment mail outbox
    bookings_and_cancellations_write_their_mail_with_them,
    twenty_concurrent_bookings_with_mail_leave_one_mail,
    a_reschedule_moves_the_slot_in_one_write_with_its_mail,
    twenty_concurrent_reschedules_to_one_slot_have_one_winner,
    a_cancellation_keeps_its_reason,
    concurrent_claimers_never_share_a_mail,
    mails_are_finished_once_by_their_claimer,
    bounced_mails_stay_bounced_and_are_never_claimed,
    desk_settings_are_stored_replaced_and_removed,
    a_real_cancellation_revives_its_given_up_mail,
    // conversations as the desk works them
    conversation_records_change_by_compare_and_set,
    conversation_records_are_stored_in_batches_each_as_alone,
    inboxes_list_by_holder_status_category_and_label,
    inbox_counts_are_their_lists_without_the_limit,
    customers_conversations_and_due_snoozes,
    an_erasure_takes_the_conversation_record,
    // canned replies and ratings
    canned_replies_are_kept_per_owner,
    labels_are_kept_by_id_and_listed_by_name,
    canned_shortcuts_are_unique_per_owner,
    a_conversation_is_rated_once,
    // offline messages
    offline_messages_are_added_and_listed,
    offline_messages_are_taken_once_and_handled,
    ten_concurrent_takers_have_one_winner,
    replies_are_archived_with_their_mail,
    // transcripts by mail
    a_customer_transcript_holds_the_chat_and_never_its_notes,
    mails_are_added_once_by_id_and_found_by_prefix,
    inbound_mail_is_recorded_once_by_key,
    // the facts the reports read
    report_facts_are_the_archives_times,
    report_facts_say_what_a_bot_did,
    // archive search
    search_finds_words_in_names_or_one_message,
    status_and_label_filters,
    erased_conversations_are_not_found_by_search,
    // reply addresses of follow-up mails
    reply_tokens_are_bound_once_and_found_both_ways,
    // webhooks: endpoints and their deliveries
    webhook_endpoints_are_added_once_replaced_and_deleted,
    webhook_private_addresses_keep_the_last_choice,
    webhook_deliveries_are_pending_by_seq_and_logged_per_endpoint,
    webhook_deliveries_are_claimed_by_one_node_at_a_time,
    webhook_deliveries_settled_long_ago_are_pruned,
    webhook_deliveries_dying_are_listed_until_buried,
    webhook_delivery_seqs_are_handed_out_once,
    // API tokens
    api_tokens_are_found_by_hash_revoked_once_and_touched,
);

/// A conversation a bot opened reads as resolved by the bot while the bot keeps it, and as
/// handed over once the bot hands it to the line, and when a person takes it from there,
/// with when the customer began to wait for a person and when the person took it (read
/// again after the hand-over: a backend's cache of the day never keeps the old outcome);
/// one a person opened has none. A bot's lines are no person's first line.
async fn report_facts_say_what_a_bot_did(store: &dyn Store) {
    const DAY: Millis = 86_400_000;
    let t0 = 20_010 * DAY;
    store
        .archive(&[
            open("k1", Some("sales"), "bot:Faq", t0 + 1_000),
            close("k1", EndReason::Ended, t0 + 5_000),
            open("k2", Some("sales"), "bot:Faq", t0 + 2_000),
            bot_line("k2", 1, t0 + 2_500),
            open("k3", Some("sales"), "a1", t0 + 3_000),
            open("k4", Some("sales"), "bot:Faq", t0 + 4_000),
        ])
        .await
        .unwrap();
    let outcomes = |facts: ReportFacts| -> Vec<(String, Option<Outcome>, Option<Millis>)> {
        facts
            .sorted()
            .conversations
            .into_iter()
            .map(|c| (c.id, c.bot, c.first_agent_at))
            .collect()
    };
    let before = outcomes(store.report_facts(t0, t0 + DAY).await.unwrap());
    let kept = Some(Outcome::ResolvedByBot);
    assert_eq!(
        before,
        [
            ("k1".to_string(), kept, None),
            ("k2".to_string(), kept, None),
            ("k3".to_string(), None, None),
            ("k4".to_string(), kept, None),
        ]
    );
    // The bot hands k2 over to the sales line; a1 takes it from there and writes. The bot
    // hands k4 to the line too, and nobody takes it (the customer left).
    store
        .archive(&[
            transferred(&transfer("k2", t0 + 10_000, 1, "bot:Faq", None, Some("sales"))),
            transferred(&transfer("k2", t0 + 20_000, 1, "bot:Faq", Some("a1"), Some("sales"))),
            line("k2", 2, Side::Agent, "a person", t0 + 26_000),
            transferred(&transfer("k4", t0 + 11_000, 0, "bot:Faq", None, Some("sales"))),
            close("k4", EndReason::Disconnect, t0 + 30_000),
        ])
        .await
        .unwrap();
    let after = outcomes(store.report_facts(t0, t0 + DAY).await.unwrap());
    let taken = TakenOver {
        waited_from: t0 + 10_000,
        taken_at: t0 + 20_000,
    };
    assert_eq!(
        after,
        [
            ("k1".to_string(), kept, None),
            (
                "k2".to_string(),
                Some(Outcome::HandedOver(Some(taken))),
                Some(t0 + 26_000)
            ),
            ("k3".to_string(), None, None),
            ("k4".to_string(), Some(Outcome::HandedOver(None)), None),
        ]
    );
}

// ---------- embedded only ----------

/// Everything written survives closing the store and opening the same directory again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_survives_reopen() {
    let dir = TempDir::new("reopen");
    {
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        store.create_account(account("a1", "alice", 1)).await.unwrap();
        store.create_category(category("zeta", "Sales")).await.unwrap();
        store.create_category(category("alpha", "Support")).await.unwrap();
        store
            .archive(&[
                open("c1", Some("sales"), "a1", 10),
                message("c1", 1),
                message("c1", 2),
                close("c1", EndReason::Ended, 20),
            ])
            .await
            .unwrap();
        store
            .archive(&[open("c2", None, "bob", 30), message("c2", 1)])
            .await
            .unwrap();
    } // dropped: the file is closed
    assert!(dir.0.join("switchboard.redb").is_file());

    let store = EmbeddedStore::open(&dir.0).await.unwrap();
    assert_eq!(
        store.account_by_username("alice").await.unwrap(),
        account("a1", "alice", 1)
    );
    // The creation order continues across the restart.
    store.create_category(category("beta", "Billing")).await.unwrap();
    assert_eq!(
        store.categories().await.unwrap(),
        categories_named(&[("zeta", "Sales"), ("alpha", "Support"), ("beta", "Billing")])
    );
    let c1 = store.conversation("c1").await.unwrap();
    assert_eq!(seqs(&c1), vec![1, 2]);
    assert_eq!(c1.closed.unwrap().reason, EndReason::Ended);
    // Idempotence holds across the restart too.
    store
        .archive(&[message("c2", 1), message("c2", 2), close("c1", EndReason::Shutdown, 0)])
        .await
        .unwrap();
    assert_eq!(seqs_of(&store, "c2").await, vec![1, 2]);
    assert_eq!(
        store.conversation("c1").await.unwrap().closed.unwrap().reason,
        EndReason::Ended
    );
    let (all, total) = store.conversations(&ConversationFilter::default(), ALL).await.unwrap();
    assert_eq!((ids(&all), total), (vec!["c2", "c1"], 2));
}

/// A second store on the same database (another hub, or this one after a restart) knows
/// nothing of the first's conversations in memory, yet appends to them, retries the
/// first's batches harmlessly and still drops messages of conversations never opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_second_store_continues_conversations() {
    let Some(mongo) = FreshMongo::new() else { return };
    let first = mongo.store().await;
    let opening = [open("s1", Some("sales"), "a1", 10), message("s1", 1), message("s1", 2)];
    first.archive(&opening).await.unwrap();

    let second = mongo.store().await;
    second.archive(&opening[1..]).await.unwrap();
    second
        .archive(&[message("s1", 3), message("ghost", 1), close("s1", EndReason::Ended, 20)])
        .await
        .unwrap();
    for store in [&first, &second] {
        let s1 = store.conversation("s1").await.unwrap();
        assert_eq!(seqs(&s1), vec![1, 2, 3]);
        assert_eq!(s1.closed.unwrap().reason, EndReason::Ended);
        assert_not_found(store.conversation("ghost").await);
    }
    mongo.dropped().await;
}

/// A record's change whose copy onto its archive document was never made (the process
/// died between the two writes, or the copy failed) is copied by the repair every node
/// runs: a status filter finds it afterwards, and only then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_a_status_copy_left_behind_is_made_good_by_the_repair() {
    let Some(mongo) = FreshMongo::new() else { return };
    let store = mongo.store().await;
    store.archive(&[open("r1", Some("sales"), "a1", 10)]).await.unwrap();
    let first = record("r1", Some("a1"), ConversationStatus::Open, 10);
    store.put_conversation_record(&first).await.unwrap();
    // Version 2, resolved, written as the store writes a change (marked), its copy not
    // made: what a crash between the two writes leaves.
    let database = mongo.database().await;
    let records: mongodb::Collection<bson::Document> = database.collection("conversation_records");
    let resolved = ConversationRecord {
        status: ConversationStatus::Resolved,
        version: 2,
        ..first.clone()
    };
    let mut document = bson::to_document(&resolved).unwrap();
    document.insert("copy_pending", true);
    records.replace_one(bson::doc! {"_id": "r1"}, document).await.unwrap();
    let resolved_only = ConversationFilter {
        statuses: vec![ConversationStatus::Resolved],
        ..ConversationFilter::default()
    };
    let (found, _) = store.conversations(&resolved_only, ALL).await.unwrap();
    assert!(found.is_empty(), "the copy is behind its record");
    assert_eq!(store.repair_record_copies().await.unwrap(), 1);
    let (found, total) = store.conversations(&resolved_only, ALL).await.unwrap();
    assert_eq!((ids(&found), total), (vec!["r1"], 1));
    assert_eq!(store.repair_record_copies().await.unwrap(), 0, "unmarked once copied");
    // A change written by the store is copied and unmarked at once.
    let pending = ConversationRecord {
        status: ConversationStatus::Pending,
        version: 3,
        ..resolved
    };
    store.put_conversation_record(&pending).await.unwrap();
    assert_eq!(store.repair_record_copies().await.unwrap(), 0);
    mongo.dropped().await;
}

/// A record whose copy the server keeps refusing (here a validator on the archive's
/// collection refuses its document's change, as a real write error would) does not hold
/// back the others: those beside it in its batch are copied and unmarked, those after its
/// batch are reached, and each pass after copies nothing again but the refused one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_a_copy_that_keeps_failing_does_not_stop_the_repair_of_the_others() {
    let Some(mongo) = FreshMongo::new() else { return };
    let store = mongo.store().await;
    // "a-stuck" sorts first, so it shares the first batch with the others; more records
    // than one batch (500), the last of them with an archive document to copy onto.
    let others: Vec<String> = (0..600).map(|i| format!("r{i:04}")).collect();
    let last = others.last().unwrap().clone();
    store
        .archive(&[
            open("a-stuck", Some("sales"), "a1", 10),
            open(&last, Some("sales"), "a1", 10),
        ])
        .await
        .unwrap();
    for id in ["a-stuck", last.as_str()] {
        store
            .put_conversation_record(&record(id, Some("a1"), ConversationStatus::Open, 10))
            .await
            .unwrap();
    }
    let database = mongo.database().await;
    // Version 2, resolved, marked with its copy not made (a crash between the two writes).
    let records: mongodb::Collection<bson::Document> = database.collection("conversation_records");
    let marked = |id: &str| {
        let resolved = ConversationRecord {
            version: 2,
            ..record(id, Some("a1"), ConversationStatus::Resolved, 20)
        };
        let mut document = bson::to_document(&resolved).unwrap();
        document.insert("copy_pending", true);
        document
    };
    for id in ["a-stuck", last.as_str()] {
        records.replace_one(bson::doc! {"_id": id}, marked(id)).await.unwrap();
    }
    let fresh: Vec<bson::Document> = others[..others.len() - 1].iter().map(|id| marked(id)).collect();
    records.insert_many(fresh).await.unwrap();
    database
        .run_command(bson::doc! {
            "collMod": "conversations",
            "validator": {"$or": [{"_id": {"$ne": "a-stuck"}}, {"desk_status": {"$ne": "resolved"}}]},
        })
        .await
        .unwrap();

    assert_eq!(
        store.repair_record_copies().await.unwrap(),
        600,
        "all but the refused one"
    );
    let resolved_only = ConversationFilter {
        statuses: vec![ConversationStatus::Resolved],
        ..ConversationFilter::default()
    };
    let (found, _) = store.conversations(&resolved_only, ALL).await.unwrap();
    assert_eq!(
        ids(&found),
        vec![last.as_str()],
        "the record after the first batch is copied"
    );
    assert_eq!(
        store.repair_record_copies().await.unwrap(),
        0,
        "the copied ones are unmarked; the refused one stays marked"
    );
    let still_marked = records
        .count_documents(bson::doc! {"copy_pending": true})
        .await
        .unwrap();
    assert_eq!(still_marked, 1);
    mongo.dropped().await;
}

/// Every (conversation, seq) the raw `message_buckets` collection holds, with how many
/// copies of it: what an export or a migration reading the collection would see.
async fn raw_copies(mongo: &FreshMongo) -> std::collections::BTreeMap<(String, i64), usize> {
    use futures_util::TryStreamExt;
    let buckets: mongodb::Collection<bson::Document> = mongo.database().await.collection("message_buckets");
    let docs: Vec<bson::Document> = buckets.find(bson::doc! {}).await.unwrap().try_collect().await.unwrap();
    let mut copies = std::collections::BTreeMap::new();
    for d in docs {
        let conversation = d.get_str("conversation_id").unwrap().to_string();
        for m in d.get_array("messages").unwrap() {
            let m = m.as_document().unwrap();
            let seq = m.get_i64("seq").or_else(|_| m.get_i32("seq").map(i64::from)).unwrap();
            *copies.entry((conversation.clone(), seq)).or_insert(0) += 1;
        }
    }
    copies
}

/// However the batches that carry a message are grouped, the RAW collection holds it once:
/// seq 80 alone then 80–296 (a hung write landing late, then its retry with what came
/// meanwhile), a second store on the same database that knows nothing of the first's
/// writes (another hub, or this one restarted) overlapping them, the first again with
/// what it believes is the end, scattered seqs, and two stores writing at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_each_message_is_stored_once_in_the_raw_collection() {
    let Some(mongo) = FreshMongo::new() else { return };
    let first = mongo.store().await;
    let all = |conv: &str, seqs: &mut dyn Iterator<Item = u64>| seqs.map(|s| message(conv, s)).collect::<Vec<_>>();
    first
        .archive(&[open("once", None, "bob", 1), open("other", None, "bob", 2)])
        .await
        .unwrap();
    first.archive(&all("once", &mut (1..=79))).await.unwrap();
    first.archive(&all("once", &mut (80..=80))).await.unwrap();
    first.archive(&all("once", &mut (80..=296))).await.unwrap();
    let second = mongo.store().await;
    second.archive(&all("once", &mut (250..=320))).await.unwrap();
    first.archive(&all("once", &mut (297..=330))).await.unwrap();
    second.archive(&all("once", &mut (1..=330).step_by(7))).await.unwrap();
    let both: Vec<ArchiveEvent> = all("once", &mut (300..=400))
        .into_iter()
        .chain(all("other", &mut (1..=50)))
        .collect();
    let tail = all("once", &mut (390..=400));
    let (x, y, z) = tokio::join!(first.archive(&both), second.archive(&both[50..]), second.archive(&tail));
    x.unwrap();
    y.unwrap();
    z.unwrap();
    first.archive(&all("other", &mut (40..=60))).await.unwrap();

    let copies = raw_copies(&mongo).await;
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let stored = |conv: &str| -> Vec<i64> { copies.keys().filter(|(c, _)| c == conv).map(|(_, s)| *s).collect() };
    assert_eq!(stored("once"), (1..=400).collect::<Vec<_>>());
    assert_eq!(stored("other"), (1..=60).collect::<Vec<_>>());
    assert_eq!(seqs_of(&second, "once").await, (1..=400).collect::<Vec<_>>());
    mongo.dropped().await;
}

/// A database written in the earlier layout (buckets keyed `<conversation>:<first>-<last>`,
/// no slot), with the copy that layout could store (80 in `:80-80` and `:80-296`), reads
/// back one message per seq, and a store writing to it stores none of those seqs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_the_earlier_bucket_layout_is_read_and_continued_without_copies() {
    let Some(mongo) = FreshMongo::new() else { return };
    let setup = mongo.store().await;
    setup.archive(&[open("old", None, "bob", 1)]).await.unwrap();
    let record = |seq: u64| {
        let message = archived_message("old", seq);
        let side = if seq % 2 == 1 { "customer" } else { "agent" };
        bson::doc! {"id": message.id.to_string(), "seq": seq as i64, "from": side, "text": message.text, "at": message.at}
    };
    let bucket = |first: u64, last: u64| {
        bson::doc! {
            "_id": format!("old:{first}-{last}"),
            "conversation_id": "old",
            "first_seq": first as i64,
            "last_seq": last as i64,
            "messages": (first..=last).map(record).collect::<Vec<_>>(),
        }
    };
    let database = mongo.database().await;
    let raw: mongodb::Collection<bson::Document> = database.collection("message_buckets");
    raw.insert_many([bucket(1, 79), bucket(80, 80), bucket(80, 296)])
        .await
        .unwrap();

    let store = mongo.store().await;
    let read = store.conversation("old").await.unwrap();
    assert_eq!(seqs(&read), (1..=296).collect::<Vec<_>>());
    assert_eq!(read.messages[79], archived_message("old", 80));
    // A replay overlapping the old buckets, with messages after them.
    let replay: Vec<ArchiveEvent> = (250..=320).map(|s| message("old", s)).collect();
    store.archive(&replay).await.unwrap();
    let copies = raw_copies(&mongo).await;
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).map(|((_, s), _)| *s).collect();
    assert_eq!(twice, vec![80], "only the earlier layout's own copy");
    assert_eq!(copies.len(), 320);
    assert_eq!(seqs_of(&store, "old").await, (1..=320).collect::<Vec<_>>());
    mongo.dropped().await;
}

/// A database archived before the reports kept first agent lines (none noted, no backfill
/// mark) gets them noted by the next store to connect, as the archive writer notes them: a
/// bot's lines are no person's first line. (The backfill also runs on every fresh database
/// while the first conversations are being archived: counting the bot's line there made
/// `report_facts_say_what_a_bot_did` fail now and then.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_the_first_agent_lines_backfilled_are_a_persons_never_a_bots() {
    const DAY: Millis = 86_400_000;
    let Some(mongo) = FreshMongo::new() else { return };
    let database = mongo.database().await;
    let meta: mongodb::Collection<bson::Document> = database.collection("meta");
    // The backfill is done once its mark is in `meta` (written after its notes).
    let backfilled = async || {
        for _ in 0..600 {
            let mark = bson::doc! {"_id": "reports_first_agent_backfilled"};
            if meta.count_documents(mark).await.unwrap() == 1 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the backfill of first agent lines never finished");
    };
    let setup = mongo.store().await;
    // The fresh database's own backfill is over before anything is archived.
    backfilled().await;
    let t0 = 20_010 * DAY;
    // The bot hands "taken" over and a1 answers; the bot keeps "kept".
    setup
        .archive(&[
            open("taken", Some("sales"), "bot:Faq", t0 + 1_000),
            bot_line("taken", 1, t0 + 1_500),
            transferred(&transfer("taken", t0 + 2_000, 1, "bot:Faq", None, Some("sales"))),
            transferred(&transfer("taken", t0 + 3_000, 1, "bot:Faq", Some("a1"), Some("sales"))),
            line("taken", 2, Side::Agent, "a person", t0 + 4_000),
            open("kept", Some("sales"), "bot:Faq", t0 + 5_000),
            bot_line("kept", 1, t0 + 5_500),
        ])
        .await
        .unwrap();
    // As a build from before the reports left it.
    database
        .collection::<bson::Document>("conversations")
        .update_many(
            bson::doc! {},
            bson::doc! {"$unset": {"first_agent_at": "", "touched": ""}},
        )
        .await
        .unwrap();
    meta.delete_many(bson::doc! {}).await.unwrap();

    let store = mongo.store().await;
    backfilled().await;
    let firsts: Vec<(String, Option<Millis>)> = store
        .report_facts(t0, t0 + DAY)
        .await
        .unwrap()
        .sorted()
        .conversations
        .into_iter()
        .map(|c| (c.id, c.first_agent_at))
        .collect();
    assert_eq!(
        firsts,
        [("kept".to_string(), None), ("taken".to_string(), Some(t0 + 4_000))]
    );
    mongo.dropped().await;
}

/// An unreachable MongoDB is reported as `Unavailable`, quickly.
#[tokio::test]
async fn mongo_unreachable_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let started = std::time::Instant::now();
    let result = MongoStore::connect("mongodb://127.0.0.1:1/?connectTimeoutMS=500", "x").await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "got {:?}",
        result.err()
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

/// Appointments and their unique key survive closing and reopening the store file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_appointments_survive_reopen() {
    let dir = TempDir::new("appointments-reopen");
    {
        let store = EmbeddedStore::open(&dir.0).await.unwrap();
        store.book_appointment(appointment("ap1", "ann", NINE)).await.unwrap();
        store
            .book_appointment(appointment("ap2", "ann", NINE + HOUR))
            .await
            .unwrap();
        store.cancel_appointment("ap2", 7).await.unwrap();
    }
    let store = EmbeddedStore::open(&dir.0).await.unwrap();
    assert_eq!(store.appointment("ap1").await.unwrap(), appointment("ap1", "ann", NINE));
    assert_conflict(store.book_appointment(appointment("ap3", "ann", NINE)).await);
    store
        .book_appointment(appointment("ap4", "ann", NINE + HOUR))
        .await
        .unwrap();
    assert_eq!(
        store.appointment("ap2").await.unwrap().status,
        AppointmentStatus::Cancelled
    );
}

// ---------- MongoDB write concern ----------

/// Every write command the store sent to database `db`, as the server's profiler logged it
/// (`system.profile`, level 2: every command).
async fn profiled_writes(uri: &str, db: &str) -> Vec<bson::Document> {
    use futures_util::TryStreamExt;
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    let profile: mongodb::Collection<bson::Document> = client.database(db).collection("system.profile");
    let entries: Vec<bson::Document> = profile.find(bson::doc! {}).await.unwrap().try_collect().await.unwrap();
    entries
        .into_iter()
        .filter_map(|e| e.get_document("command").ok().cloned())
        .filter(|c| ["insert", "update", "delete"].iter().any(|k| c.contains_key(*k)))
        .collect()
}

/// Runs account, category and archive writes through a store on `uri` with the server's
/// profiler on, and returns each write command's `writeConcern`.
async fn write_concerns_sent(uri: &str) -> Vec<bson::Document> {
    let db = fresh_database();
    let store = MongoStore::connect(uri, &db).await.unwrap();
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    client
        .database(&db)
        .run_command(bson::doc! {"profile": 2})
        .await
        .unwrap();
    store.create_account(account("a1", "alice", 1)).await.unwrap();
    let mut alice = account("a1", "alice", 1);
    alice.max_chats = 4;
    store.update_account(alice).await.unwrap();
    store.create_category(category("sales", "Sales")).await.unwrap();
    archive_a_short_chat(&store, "c1").await;
    let writes = profiled_writes(uri, &db).await;
    let _ = client.database(&db).drop().await;
    let kinds: Vec<&str> = writes
        .iter()
        .filter_map(|c| c.keys().next().map(String::as_str))
        .collect();
    // One insert of the account, its replacement, the category, the opening and closing
    // (hand-built `update` commands) and the bucket insert: all six must be there.
    assert!(writes.len() >= 6, "the profiler logged too few writes: {kinds:?}");
    writes
        .iter()
        .map(|c| {
            c.get_document("writeConcern")
                .unwrap_or_else(|_| panic!("a write without a writeConcern: {c}"))
                .clone()
        })
        .collect()
}

/// SecantusDB presents itself as a one-member replica set, so every account, category and
/// archive write asks for `w: "majority"` and the journal, as the server's own log shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_writes_are_journaled_and_majority_acknowledged() {
    let Some(uri) = mongo_uri() else { return };
    for concern in write_concerns_sent(&uri).await {
        assert_eq!(concern.get_str("w"), Ok("majority"), "{concern}");
        assert_eq!(concern.get_bool("j"), Ok(true), "{concern}");
    }
}

/// The URI's own write concern wins: an operator may choose `w=1&journal=false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_write_concern_of_the_uri_wins() {
    let Some(uri) = mongo_uri() else { return };
    let separator = if uri.contains('?') {
        "&"
    } else if uri.ends_with('/') {
        "?"
    } else {
        "/?"
    };
    let uri = format!("{uri}{separator}w=1&journal=false");
    for concern in write_concerns_sent(&uri).await {
        let w = concern.get_i32("w").map(i64::from).or_else(|_| concern.get_i64("w"));
        assert_eq!(w, Ok(1), "{concern}");
        assert_eq!(concern.get_bool("j"), Ok(false), "{concern}");
    }
}

/// "One open room per agent" on MongoDB rests on a key document per agent, written before
/// the room. A key whose room is not there yet is another creation in progress, not a
/// crash's leftover: taking it over let two racing creations both win (a CI run of
/// `rooms_one_open_per_agent`). A key left behind long ago is still cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_a_room_creation_in_progress_is_not_taken_for_a_leftover() {
    let Some(mongo) = FreshMongo::new() else { return };
    let store = mongo.store().await;
    let database = mongo.database().await;
    let keys = database.collection::<bson::Document>("open_rooms");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Ann's creation of r1 has written its key, not yet its room.
    keys.insert_one(bson::doc! {"_id": "ann", "room_id": "r1", "created_at": now})
        .await
        .unwrap();
    let second = store.create_room(room("r2", "ann")).await;
    assert!(
        matches!(second, Err(StoreError::Conflict)),
        "a second room while the first is being created: {second:?}"
    );
    // Bo's key was left by a creation that crashed ten minutes ago: cleared.
    keys.insert_one(bson::doc! {"_id": "bo", "room_id": "gone", "created_at": now - 600_000})
        .await
        .unwrap();
    store
        .create_room(room("r3", "bo"))
        .await
        .expect("a leftover key is cleared");
    mongo.dropped().await;
}

/// The attachment stores, with their link keys, of two nodes (two stores) on MongoDB
/// database `db`.
async fn attachments_of_two_mongo_nodes(uri: &str, db: &str) -> [(SharedAttachmentStore, Vec<u8>); 2] {
    let (node_a, node_b) = (
        MongoStore::connect(uri, db).await.unwrap(),
        MongoStore::connect(uri, db).await.unwrap(),
    );
    [
        node_a.shared_attachments().await.unwrap().unwrap(),
        node_b.shared_attachments().await.unwrap().unwrap(),
    ]
}

/// Attachments on MongoDB: a blob is cut into chunks, kept once by its SHA-256 (the same
/// bytes again, or the rest of an upload cut short, add nothing), read back whole in
/// order by a second store on the same database (another node), which also finds the
/// first's records and signs links with the same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_attachments_are_chunked_kept_once_and_shared_by_every_node() {
    use futures_util::TryStreamExt;
    use std::io::Write;
    use switchboard::attachments::{AttachmentRecord, Content, sha256_hex};
    let Some(mongo) = FreshMongo::new() else { return };
    let [(files_a, key_a), (files_b, key_b)] = attachments_of_two_mongo_nodes(&mongo.uri, &mongo.db).await;
    assert_eq!(key_a, key_b, "one link key for the desk");
    assert!(key_a.len() >= 32);

    // 600 KB of varied bytes: three chunks of 255 KiB at most.
    let bytes: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sha = sha256_hex(&bytes);
    let mut staged = files_a.staging().unwrap();
    staged.write_all(&bytes).unwrap();
    files_a.keep_file(staged, &sha).await.unwrap();
    let record = AttachmentRecord {
        id: "att1".into(),
        conversation: "c1".into(),
        uploader: "customer".into(),
        name: "log.txt".into(),
        mime: "text/plain; charset=utf-8".into(),
        size: bytes.len() as u64,
        sha256: sha.clone(),
        thumbnail: None,
        uploaded_at: 5,
    };
    files_a.put_record(record.clone()).await.unwrap();
    // The same bytes again, from either node: nothing more kept.
    files_b.keep_bytes(bytes.clone(), &sha).await.unwrap();

    assert_eq!(files_b.record("att1"), None, "not known to node B until looked up");
    assert_eq!(files_b.load_record("att1").await.unwrap(), Some(record.clone()));
    assert_eq!(files_b.record("att1"), Some(record));
    assert_eq!(files_b.load_record("nothing").await.unwrap(), None);

    let read = |content: Content| async move {
        let Content::Stream(chunks, length) = content else {
            panic!("chunks from the database")
        };
        let parts: Vec<bytes::Bytes> = chunks.try_collect().await.unwrap();
        (parts.len(), length, parts.concat())
    };
    let (parts, length, served) = read(files_b.content(&sha).await.unwrap()).await;
    assert_eq!((parts, length), (3, 600_000));
    assert!(served == bytes, "the bytes as uploaded");

    let database = mongo.database().await;
    let chunks: mongodb::Collection<bson::Document> = database.collection("attachments.chunks");
    let files: mongodb::Collection<bson::Document> = database.collection("attachments.files");
    assert_eq!(chunks.count_documents(bson::doc! {"files_id": &sha}).await.unwrap(), 3);
    assert_eq!(files.count_documents(bson::doc! {}).await.unwrap(), 1);

    // An upload cut short (a node killed after its first chunk): no files document, so
    // the blob is absent; the same bytes uploaded again complete it.
    let other: Vec<u8> = (0..300_000u32).map(|i| (i % 13) as u8).collect();
    let other_sha = sha256_hex(&other);
    chunks
        .insert_one(bson::doc! {"files_id": &other_sha, "n": 0i64, "data": bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: other[..255 * 1024].to_vec(),
        }})
        .await
        .unwrap();
    assert!(files_a.content(&other_sha).await.is_err(), "half a blob is no blob");
    files_a.keep_bytes(other.clone(), &other_sha).await.unwrap();
    let (parts, _, served) = read(files_b.content(&other_sha).await.unwrap()).await;
    assert_eq!(parts, 2);
    assert!(served == other);
    assert_eq!(
        chunks
            .count_documents(bson::doc! {"files_id": &other_sha})
            .await
            .unwrap(),
        2
    );
    assert!(files_a.content("../../etc/passwd").await.is_err());

    // Erasure: the same bytes in another conversation keep the blob until it goes too.
    let mut shared = files_b.record("att1").unwrap();
    (shared.id, shared.conversation) = ("att2".into(), "c2".into());
    files_b.put_record(shared).await.unwrap();
    assert_eq!(files_b.erase_conversations(&["c1".into()]).await.unwrap(), 1);
    assert_eq!(files_a.load_record("att1").await.unwrap(), None);
    assert!(files_a.content(&sha).await.is_ok(), "att2 still names it");
    assert_eq!(
        files_a.erase_conversations(&["c2".into(), "c9".into()]).await.unwrap(),
        1
    );
    assert!(files_a.content(&sha).await.is_err());
    assert_eq!(chunks.count_documents(bson::doc! {"files_id": &sha}).await.unwrap(), 0);
    assert_eq!(
        files_a.erase_conversations(&["c2".into()]).await.unwrap(),
        0,
        "idempotent"
    );
    mongo.dropped().await;
}

use switchboard::attachments::SharedAttachmentStore;

/// The quotas held before files are kept, on every attachment store: uploads at once
/// take exactly the room there is (on MongoDB through two stores on one database, as two
/// nodes would); what is released, and what is erased, is room again; a record kept for
/// a hold counts once.
async fn attachment_quotas_are_held_at_once(a: SharedAttachmentStore, b: SharedAttachmentStore) {
    use switchboard::attachments::{AttachmentRecord, Quotas, Reservation};
    let quotas = Quotas {
        conversation: 3_000,
        day: 5_000,
    };
    let at = 1_795_000_000_000;
    let want = |id: String, conversation: &str| Reservation {
        id,
        conversation: conversation.into(),
        at,
        size: 1_000,
    };
    let stores = [a.clone(), b.clone()];
    let holds = (0..10).map(|i| {
        let (store, wanted) = (stores[i % 2].clone(), want(format!("c1-{i}"), "c1"));
        async move { (store.reserve(&wanted, quotas).await.unwrap(), wanted) }
    });
    let answers = futures_util::future::join_all(holds).await;
    let held: Vec<Reservation> = answers
        .iter()
        .filter(|(r, _)| r.is_ok())
        .map(|(_, w)| w.clone())
        .collect();
    assert_eq!(held.len(), 3, "{answers:?}");
    for (refused, _) in answers.iter().filter(|(r, _)| r.is_err()) {
        assert_eq!(*refused, Err(("ATTACHMENT_CONVERSATION_MAX_BYTES", 3_000)));
    }
    // One given back: room for one more, no more.
    a.release(&held[0]).await.unwrap();
    assert_eq!(b.reserve(&want("c1-again".into(), "c1"), quotas).await.unwrap(), Ok(()));
    assert!(a.reserve(&want("c1-over".into(), "c1"), quotas).await.unwrap().is_err());
    // A hold's record counts once: the day has 3,000 taken, 2,000 left.
    let record = AttachmentRecord {
        id: held[1].id.clone(),
        conversation: "c1".into(),
        uploader: "customer".into(),
        name: "a.txt".into(),
        mime: "text/plain; charset=utf-8".into(),
        size: 1_000,
        sha256: switchboard::attachments::sha256_hex(b"a"),
        thumbnail: None,
        uploaded_at: at,
    };
    a.keep_bytes(b"a".to_vec(), &record.sha256).await.unwrap();
    a.put_record(record).await.unwrap();
    assert_eq!(a.reserve(&want("c2-1".into(), "c2"), quotas).await.unwrap(), Ok(()));
    assert_eq!(b.reserve(&want("c2-2".into(), "c2"), quotas).await.unwrap(), Ok(()));
    assert_eq!(
        a.reserve(&want("c2-3".into(), "c2"), quotas).await.unwrap(),
        Err(("ATTACHMENT_DAY_MAX_BYTES", 5_000))
    );
    // The kept file erased: its day's room is back.
    assert_eq!(a.erase_conversations(&["c1".into()]).await.unwrap(), 1);
    assert_eq!(b.reserve(&want("c2-3".into(), "c2"), quotas).await.unwrap(), Ok(()));
}

/// Runs `check` on one in-memory attachment store, standing for both nodes.
async fn on_a_memory_attachment_store<F: std::future::Future<Output = ()>>(
    check: impl FnOnce(SharedAttachmentStore, SharedAttachmentStore) -> F,
) {
    let store: SharedAttachmentStore = std::sync::Arc::new(switchboard::attachments::store::MemoryStore::default());
    check(store.clone(), store).await;
}

/// Runs `check` on one disk attachment store in `dir`, standing for both nodes; the store
/// is closed when it returns.
async fn on_a_disk_attachment_store<F: std::future::Future<Output = ()>>(
    dir: &std::path::Path,
    check: impl FnOnce(SharedAttachmentStore, SharedAttachmentStore) -> F,
) {
    let store: SharedAttachmentStore =
        std::sync::Arc::new(switchboard::attachments::store::DiskStore::open(dir).unwrap());
    check(store.clone(), store).await;
}

/// Runs `check` on the attachment stores of two nodes on one fresh MongoDB database,
/// dropped after.
async fn on_two_mongo_attachment_stores<F: std::future::Future<Output = ()>>(
    check: impl FnOnce(SharedAttachmentStore, SharedAttachmentStore) -> F,
) {
    let Some(mongo) = FreshMongo::new() else { return };
    let [(a, _), (b, _)] = attachments_of_two_mongo_nodes(&mongo.uri, &mongo.db).await;
    check(a, b).await;
    mongo.dropped().await;
}

/// One test of `check` per attachment backend: in memory, on disk (in a temporary
/// directory `dir`, where `after` looks once the store is closed) and on MongoDB (two
/// nodes' stores on one database).
macro_rules! attachment_contract {
    ($check:ident: $memory:ident, $embedded:ident, $mongodb:ident) => {
        attachment_contract!($check: $memory, $embedded(|_dir| {}), $mongodb);
    };
    ($check:ident: $memory:ident, $embedded:ident(|$dir:ident| $after:block), $mongodb:ident) => {
        #[tokio::test]
        async fn $memory() {
            on_a_memory_attachment_store($check).await;
        }

        #[tokio::test]
        async fn $embedded() {
            let $dir = tempfile::tempdir().unwrap();
            on_a_disk_attachment_store($dir.path(), $check).await;
            $after
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $mongodb() {
            on_two_mongo_attachment_stores($check).await;
        }
    };
}

attachment_contract!(
    attachment_quotas_are_held_at_once: attachment_quotas_memory,
    attachment_quotas_embedded,
    attachment_quotas_mongodb_two_nodes
);

/// An upload taken back before any line named it, on every attachment store: its record
/// is gone (on MongoDB for the other node too), its bytes count against the quotas no
/// more, its blob is gone unless another record names the same bytes; taken back twice,
/// the second finds nothing.
async fn a_removed_upload_gives_its_bytes_back(a: SharedAttachmentStore, b: SharedAttachmentStore) {
    use switchboard::attachments::{AttachmentRecord, Quotas, Reservation};
    let quotas = Quotas {
        conversation: 2_000,
        day: 3_500,
    };
    let at = 1_795_000_000_000;
    let bytes = |tag: &str| tag.repeat(1_000).into_bytes();
    let keep = |id: &str, conversation: &str, tag: &str| {
        let (a, id, conversation, bytes) = (a.clone(), id.to_string(), conversation.to_string(), bytes(tag));
        async move {
            let wanted = Reservation {
                id: id.clone(),
                conversation: conversation.clone(),
                at,
                size: 1_000,
            };
            a.reserve(&wanted, quotas).await.unwrap()?;
            let sha = switchboard::attachments::sha256_hex(&bytes);
            a.keep_bytes(bytes, &sha).await.unwrap();
            a.put_record(AttachmentRecord {
                id,
                conversation,
                uploader: "customer".into(),
                name: "a.txt".into(),
                mime: "text/plain; charset=utf-8".into(),
                size: 1_000,
                sha256: sha,
                thumbnail: None,
                uploaded_at: at,
            })
            .await
            .unwrap();
            Ok::<(), (&str, u64)>(())
        }
    };
    keep("one", "c1", "a").await.unwrap();
    keep("two", "c1", "b").await.unwrap();
    // The same bytes as "two", in another conversation.
    keep("three", "c2", "b").await.unwrap();
    assert!(keep("four", "c1", "c").await.is_err(), "c1 is full");
    let one = b.load_record("one").await.unwrap().expect("one is kept");
    let removed = b.remove_upload("one").await.unwrap().expect("one is removed");
    assert_eq!(removed, one);
    assert!(a.load_record("one").await.unwrap().is_none());
    assert!(b.remove_upload("one").await.unwrap().is_none(), "removed once");
    assert!(
        matches!(a.content(&one.sha256).await, Err(e) if e.kind() == std::io::ErrorKind::NotFound),
        "a blob no record names is gone"
    );
    // Its room is back, for its conversation and for the day: c1 takes one more.
    keep("four", "c1", "c").await.unwrap();
    assert_eq!(
        keep("five", "c2", "d").await,
        Err(("ATTACHMENT_DAY_MAX_BYTES", 3_500)),
        "no more than was given back"
    );
    // Bytes another record names stay for it.
    let two = a.remove_upload("two").await.unwrap().expect("two is removed");
    assert!(a.content(&two.sha256).await.is_ok(), "three names the same bytes");
    keep("five", "c2", "d").await.unwrap();
}

attachment_contract!(
    a_removed_upload_gives_its_bytes_back: attachment_removal_memory,
    attachment_removal_embedded(|dir| {
        // Removed for good: not back after reopening.
        let reopened = switchboard::attachments::store::DiskStore::open(dir.path()).unwrap();
        use switchboard::attachments::AttachmentStore;
        assert!(reopened.record("one").is_none() && reopened.record("two").is_none());
        assert!(reopened.record("three").is_some());
    }),
    attachment_removal_mongodb_two_nodes
);
