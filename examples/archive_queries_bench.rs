//! A measure (not a test) of queries over a large archive: it archives generated
//! conversations through the `Store` API into the embedded store and, when given a
//! MongoDB URI, into MongoDB, then times each kind of query (median of a few runs) and
//! writes a Markdown section for the bench report (`scripts/bench.sh`, scenario `queries`).
//!
//!     cargo run --release --example archive_queries_bench -- \
//!         [--conversations 100000] [--mongodb-uri mongodb://127.0.0.1:27017] [--out queries.md]
//!
//! Each query kind is one function ([`QUERIES`]): another kind (a report's aggregate, say)
//! is one more function and one more row there; the archive is generated once per store.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use switchboard::store::*;

/// Runs of each query; the median is reported.
const RUNS: usize = 5;
/// Records written at once while filling.
const RECORDS_AT_ONCE: usize = 16;
/// Records MongoDB is given (the newest conversations'; the older ones have none, and pass
/// no status or label filter): written one by one through the `Store` API, as the hub
/// writes them, 5,000 took 320 s on the tests' MongoDB-wire server.
const MONGO_RECORDS: usize = 2_000;
/// Conversations open at once in the generated archive: batches interleave them as the
/// archive writer would.
const CATEGORIES: [&str; 5] = ["sales", "support", "billing", "returns", "shipping"];
const AGENTS: usize = 50;
/// Newest first, 50 a page: what the archive page asks.
const PAGE: Page = Page { offset: 0, limit: 50 };
const START: Millis = 1_767_225_600_000; // 2026-01-01

const FIRST_NAMES: [&str; 12] = [
    "Zoë", "Liam", "Ana", "Mohammed", "Yuki", "Olga", "Pierre", "Fatima", "Chen", "Sven", "Amara", "José",
];
const LAST_NAMES: [&str; 10] = [
    "Lindqvist",
    "Müller",
    "García",
    "Okafor",
    "Tanaka",
    "Novak",
    "Dubois",
    "Haddad",
    "Smith",
    "Kowalski",
];
/// What customers and agents say: common phrases, and the rarer words the queries look for.
const CUSTOMER_LINES: [&str; 10] = [
    "Hello, I have a question about my order",
    "Where is my parcel? It has not arrived yet",
    "I would like a refund for the damaged parcel",
    "Can I change the delivery address?",
    "The invoice shows the wrong amount",
    "My password reset email never came",
    "Do you ship to Norway?",
    "I want to return the shoes, they are too small",
    "Is the blue jacket back in stock?",
    "Thanks, that helps a lot",
];
const AGENT_LINES: [&str; 8] = [
    "Thanks for waiting, let me check that for you",
    "I have issued the refund, it takes 3 to 5 days",
    "Your parcel is with the courier and arrives tomorrow",
    "I have updated the address on your order",
    "Could you give me your order number please?",
    "I have sent a new invoice to your email",
    "Is there anything else I can help with?",
    "Have a nice day!",
];

/// The generated archive: every conversation's events, in batches as the writer sends them.
fn conversation_events(i: usize, rng: &mut StdRng) -> Vec<ArchiveEvent> {
    let id = format!("bench-{i:07}");
    let agent = i % AGENTS;
    let paired_at = START + i as Millis * 30_000;
    let customer = format!(
        "{} {}",
        FIRST_NAMES.choose(rng).unwrap(),
        LAST_NAMES.choose(rng).unwrap()
    );
    let mut events = vec![ArchiveEvent::Opened(ConversationOpened {
        id: id.clone(),
        kind: ConversationKind::Service,
        category: Some(CATEGORIES[i % CATEGORIES.len()].to_string()),
        customer_name: customer,
        agent_id: format!("agent-{agent:02}"),
        agent_name: format!("Agent {agent:02}"),
        queued_at: paired_at - 20_000,
        paired_at,
        customer: Default::default(),
    })];
    let lines = rng.random_range(3..=5u64);
    for seq in 1..=lines {
        let (from, mut text) = if seq % 2 == 1 {
            (Side::Customer, CUSTOMER_LINES.choose(rng).unwrap().to_string())
        } else {
            (Side::Agent, AGENT_LINES.choose(rng).unwrap().to_string())
        };
        // The order number in about one conversation in three; a rare word in 1 of 10,000.
        if seq == 1 && i.is_multiple_of(3) {
            text.push_str(&format!(" (order {})", 100_000 + i));
        }
        if seq == 1 && i % 10_000 == 7 {
            text.push_str(", the zeppelin model kit");
        }
        events.push(ArchiveEvent::Message {
            conversation_id: id.as_str().into(),
            message: ArchivedMessage::plain(
                uuid::Uuid::now_v7().to_string(),
                seq,
                from,
                text,
                paired_at + seq as Millis * 5_000,
            ),
        });
    }
    events.push(ArchiveEvent::Closed(ConversationClosed {
        id,
        ended_at: paired_at + 60_000,
        ended_by: Side::Agent,
        reason: EndReason::Ended,
        inferred: None,
    }));
    events
}

/// Conversation `i`'s record as a desk a while in would have it: most resolved, one in 20
/// open, one in 50 pending, one in 30 snoozed; labelled `vip` one in 10, `bug` one in 4.
fn record_of(i: usize) -> ConversationRecord {
    let id = format!("bench-{i:07}");
    let category = CATEGORIES[i % CATEGORIES.len()];
    let opened_at = START + i as Millis * 30_000;
    let status = match i {
        _ if i.is_multiple_of(20) => ConversationStatus::Open,
        _ if i % 50 == 1 => ConversationStatus::Pending,
        _ if i % 30 == 2 => ConversationStatus::Snoozed,
        _ => ConversationStatus::Resolved,
    };
    let mut record = ConversationRecord::first(&id, category, status, opened_at + 60_000);
    record.opened_at = opened_at;
    record.holder = Some(format!("agent-{:02}", i % AGENTS));
    if status == ConversationStatus::Snoozed {
        record.snoozed_until = Some(opened_at + 86_400_000);
    }
    if status == ConversationStatus::Resolved {
        record.resolved_at = Some(opened_at + 60_000);
        record.resolutions = 1;
    }
    if i % 10 == 2 {
        record.labels.push("vip".into());
    }
    if i % 4 == 1 {
        record.labels.push("bug".into());
    }
    record
}

/// Writes the records of the newest `count` of `conversations`, [`RECORDS_AT_ONCE`] at a
/// time (as many agents and customers change conversations at once); returns how long it
/// took.
async fn put_records(store: &dyn Store, conversations: usize, count: usize) -> Duration {
    use futures_util::StreamExt;
    let started = Instant::now();
    futures_util::stream::iter(conversations.saturating_sub(count)..conversations)
        .map(|i| async move { store.put_conversation_record(&record_of(i)).await.expect("a record") })
        .buffer_unordered(RECORDS_AT_ONCE)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

/// Archives `count` conversations in batches of the store's `max_batch` events; returns
/// how long it took and how many messages it archived.
async fn fill(store: &dyn Store, count: usize) -> (Duration, u64) {
    let mut rng = StdRng::seed_from_u64(14);
    let started = Instant::now();
    let mut batch = Vec::with_capacity(store.max_batch() + 8);
    let mut messages = 0u64;
    for i in 0..count {
        let events = conversation_events(i, &mut rng);
        messages += events.len() as u64 - 2;
        batch.extend(events);
        if batch.len() >= store.max_batch() {
            store.archive(&batch).await.expect("archiving");
            batch.clear();
        }
    }
    store.archive(&batch).await.expect("archiving");
    // A read folds what the embedded store still holds: counted in the archiving time.
    store.ping().await.expect("ping");
    (started.elapsed(), messages)
}

type Found<'a> = Pin<Box<dyn Future<Output = u64> + Send + 'a>>;

/// One kind of query: its name, what it asks, and the call (how many it found).
struct Query {
    name: &'static str,
    about: &'static str,
    run: for<'a> fn(&'a dyn Store) -> Found<'a>,
}

/// A listing's total for `filter` (one page of 50 read whole, as the archive page does).
fn listing<'a>(store: &'a dyn Store, filter: ConversationFilter) -> Found<'a> {
    Box::pin(async move { store.conversations(&filter, PAGE).await.expect("listing").1 })
}

fn text(typed: &str) -> Option<SearchQuery> {
    Some(SearchQuery::parse(typed).expect("a query"))
}

/// A listing's total for the search `typed`, with no other filter.
fn search<'a>(store: &'a dyn Store, typed: &str) -> Found<'a> {
    listing(
        store,
        ConversationFilter {
            text: text(typed),
            ..Default::default()
        },
    )
}

fn newest_page(store: &dyn Store) -> Found<'_> {
    listing(store, ConversationFilter::default())
}

fn rare_word(store: &dyn Store) -> Found<'_> {
    search(store, "zeppelin")
}

fn order_number(store: &dyn Store) -> Found<'_> {
    search(store, "order 100042")
}

fn common_word(store: &dyn Store) -> Found<'_> {
    search(store, "refund")
}

fn two_words_one_message(store: &dyn Store) -> Found<'_> {
    search(store, "damaged parcel")
}

fn customer_name(store: &dyn Store) -> Found<'_> {
    search(store, "zoe lindqvist")
}

fn word_with_filters(store: &dyn Store) -> Found<'_> {
    listing(
        store,
        ConversationFilter {
            text: text("refund"),
            category: Some("billing".into()),
            agent_id: Some("agent-07".into()),
            from: Some(START),
            to: Some(START + 30 * 24 * 3_600_000),
            ..Default::default()
        },
    )
}

fn open_ones(store: &dyn Store) -> Found<'_> {
    listing(
        store,
        ConversationFilter {
            statuses: vec![ConversationStatus::Open],
            ..Default::default()
        },
    )
}

fn labelled_resolved_in_a_category(store: &dyn Store) -> Found<'_> {
    listing(
        store,
        ConversationFilter {
            statuses: vec![ConversationStatus::Resolved],
            label: Some("vip".into()),
            category: Some("billing".into()),
            ..Default::default()
        },
    )
}

fn word_in_open_ones(store: &dyn Store) -> Found<'_> {
    listing(
        store,
        ConversationFilter {
            text: text("refund"),
            statuses: vec![ConversationStatus::Open, ConversationStatus::Pending],
            ..Default::default()
        },
    )
}

/// Every query kind timed, in report order.
const QUERIES: &[Query] = &[
    Query {
        name: "newest_page",
        about: "the newest 50, no filter (no search: the listing index)",
        run: newest_page,
    },
    Query {
        name: "rare_word",
        about: "`zeppelin` (in 1 of 10,000)",
        run: rare_word,
    },
    Query {
        name: "order_number",
        about: "`order 100042` (two words, one message)",
        run: order_number,
    },
    Query {
        name: "customer_name",
        about: "`zoe lindqvist` (a customer's name, ~1 in 120)",
        run: customer_name,
    },
    Query {
        name: "two_words",
        about: "`damaged parcel` (each common, together in one line)",
        run: two_words_one_message,
    },
    Query {
        name: "common_word",
        about: "`refund` (in ~1 of 4 conversations)",
        run: common_word,
    },
    Query {
        name: "word_with_filters",
        about: "`refund` + category + agent + 30 days",
        run: word_with_filters,
    },
    Query {
        name: "status_open",
        about: "status open (1 in 20)",
        run: open_ones,
    },
    Query {
        name: "status_label_category",
        about: "resolved + label `vip` + category",
        run: labelled_resolved_in_a_category,
    },
    Query {
        name: "word_in_open",
        about: "`refund` + status open or pending",
        run: word_in_open_ones,
    },
];

/// The median of [`RUNS`] runs of `query`, and what it found.
async fn time(store: &dyn Store, query: &Query) -> (Duration, u64) {
    let mut took = Vec::with_capacity(RUNS);
    let mut found = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        found = (query.run)(store).await;
        took.push(started.elapsed());
    }
    took.sort();
    (took[RUNS / 2], found)
}

struct Measured {
    store: &'static str,
    archived: Duration,
    recorded: Duration,
    messages: u64,
    queries: Vec<(Duration, u64)>,
}

async fn measure(name: &'static str, store: &dyn Store, conversations: usize, records: usize) -> Measured {
    eprintln!("queries bench: archiving {conversations} conversations into {name}…");
    let (archived, messages) = fill(store, conversations).await;
    eprintln!(
        "queries bench: {name}: archived in {:.1} s ({:.0} messages/s)",
        archived.as_secs_f64(),
        messages as f64 / archived.as_secs_f64()
    );
    let recorded = put_records(store, conversations, records).await;
    eprintln!(
        "queries bench: {name}: {records} records (statuses, labels) in {:.1} s",
        recorded.as_secs_f64()
    );
    let mut queries = Vec::new();
    for query in QUERIES {
        let (took, found) = time(store, query).await;
        eprintln!(
            "queries bench: {name}: {} {:.1} ms, {found} found",
            query.name,
            ms(took)
        );
        queries.push((took, found));
    }
    Measured {
        store: name,
        archived,
        recorded,
        messages,
        queries,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(conversations: usize, measured: &[Measured], mongo_note: &str) -> String {
    let mut out = format!(
        "\n### Archive queries (scenario `queries`)\n\n{conversations} generated conversations (3–5 messages each, 5 \
         categories, 50 agents) archived through the `Store` API in batches of the store's `max_batch`, then each \
         query read as the archive page reads it (total and the newest 50 whole), median of {RUNS} runs. Search: \
         every word in the names or in one message (`core::search`). Each conversation has a record (its status: \
         most resolved, 1 in 20 open, 1 in 50 pending, 1 in 30 snoozed; label `vip` 1 in 10, `bug` 1 in 4), written \
         {RECORDS_AT_ONCE} at a time after the archiving (the `records` row). {mongo_note}\n\n| query | what |"
    );
    for m in measured {
        out.push_str(&format!(" {} |", m.store));
    }
    out.push_str("\n| --- | --- |");
    for _ in measured {
        out.push_str(" --- |");
    }
    out.push('\n');
    for (i, query) in QUERIES.iter().enumerate() {
        out.push_str(&format!("| `{}` | {} |", query.name, query.about));
        for m in measured {
            let (took, found) = m.queries[i];
            out.push_str(&format!(" {:.1} ms ({found} found) |", ms(took)));
        }
        out.push('\n');
    }
    out.push_str("| archiving | all of it, search terms included |");
    for m in measured {
        out.push_str(&format!(
            " {:.1} s ({:.0} msg/s) |",
            m.archived.as_secs_f64(),
            m.messages as f64 / m.archived.as_secs_f64()
        ));
    }
    out.push('\n');
    out.push_str("| records | every conversation's status and labels |");
    for m in measured {
        out.push_str(&format!(" {:.1} s |", m.recorded.as_secs_f64()));
    }
    out.push('\n');
    out
}

#[tokio::main]
async fn main() {
    let mut conversations = 100_000usize;
    let mut mongodb_uri = None;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--conversations" => conversations = value().parse().expect("a number of conversations"),
            "--mongodb-uri" => mongodb_uri = Some(value()),
            "--out" => out = Some(value()),
            other => panic!("unknown argument {other}"),
        }
    }
    let mut measured = Vec::new();
    let dir = std::env::temp_dir().join(format!("switchboard-queries-{}", uuid::Uuid::new_v4().simple()));
    {
        let store = EmbeddedStore::open(&dir).await.expect("the embedded store");
        measured.push(measure("embedded", &store, conversations, conversations).await);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut mongo_note = "MongoDB not measured (no `--mongodb-uri`).".to_string();
    if let Some(uri) = mongodb_uri {
        let db = format!("bench_queries_{}", uuid::Uuid::new_v4().simple());
        let store = MongoStore::connect(&uri, &db).await.expect("MongoDB");
        let records = conversations.min(MONGO_RECORDS);
        measured.push(measure("mongodb", &store, conversations, records).await);
        mongo_note = format!(
            "MongoDB: SecantusDB (a MongoDB-wire server in Python, in memory) on this machine, terms arrays with \
             multikey indexes (no `$text` there); records for the newest {records} conversations only (the others \
             pass no status or label filter)."
        );
        if let Ok(client) = mongodb::Client::with_uri_str(&uri).await {
            let _ = client.database(&db).drop().await;
        }
    }
    let section = report(conversations, &measured, &mongo_note);
    print!("{section}");
    if let Some(path) = out {
        std::fs::write(&path, section).expect("writing the report section");
    }
}
