//! The manager's reports (`GET /api/reports`): checked against numbers computed here by
//! hand, independently of the hub's code, over a generated archive on every store; a
//! customer who leaves the line unserved counted once, on one node and across nodes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard::store::*;

use crate::archive::{TempDir, embedded_store, mongo_store, mongo_uri, own_mongodb};
use crate::cluster_fixture::{ChatAcrossNodes, chat_across_nodes_with};
use crate::common::{Api, TestHub, find_by};

const DAY: i64 = 86_400_000;
/// 2026-03-02T00:00:00Z, a Monday.
const T0: i64 = 1_772_409_600_000;

/// A generator with no crate behind it: the same archive on every run.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// One generated conversation, as the expectation sees it.
struct Made {
    category: &'static str,
    agent: &'static str,
    queued_at: i64,
    paired_at: i64,
    first_agent_at: Option<i64>,
    ended_at: Option<i64>,
    stars: Option<u8>,
}

/// The nearest-rank percentile, written out again here: rank ⌈p·n/100⌉ of the sorted values.
fn nearest_rank(values: &[i64], p: usize) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = (p * sorted.len()).div_ceil(100);
    json!(sorted[rank.max(1) - 1])
}

/// Archives ~120 conversations over three days (some near midnight), 15 customers who
/// left unserved, and 6 offline messages; returns what was made.
async fn generate(store: &SharedStore) -> (Vec<Made>, Vec<(String, i64)>) {
    let mut rng = Lcg(7);
    let mut made = Vec::new();
    let mut events = Vec::new();
    for i in 0..120 {
        let category = ["sales", "billing"][rng.next(2) as usize];
        let agent = ["a1", "a2", "a3"][rng.next(3) as usize];
        // Some conversations at 01:00-04:00 UTC: the previous day in New York.
        let paired_at = T0 + (rng.next(3) as i64) * DAY + (rng.next(24 * 60) as i64) * 60_000;
        let queued_at = paired_at - (rng.next(600) as i64) * 1_000;
        let id = format!("g{i}");
        events.push(ArchiveEvent::Opened(ConversationOpened {
            id: id.clone(),
            kind: ConversationKind::Service,
            category: Some(category.into()),
            customer_name: format!("Customer {i}"),
            agent_id: agent.into(),
            agent_name: format!("{agent} name"),
            queued_at,
            paired_at,
            customer: Default::default(),
        }));
        events.push(ArchiveEvent::Message {
            conversation_id: id.as_str().into(),
            message: ArchivedMessage::plain(format!("{id}-1"), 1, Side::Customer, "hello", paired_at + 500),
        });
        let first_agent_at = (rng.next(5) != 0).then(|| paired_at + (rng.next(90) as i64 + 1) * 1_000);
        if let Some(at) = first_agent_at {
            for (seq, later) in [(2, 0), (3, 20_000)] {
                events.push(ArchiveEvent::Message {
                    conversation_id: id.as_str().into(),
                    message: ArchivedMessage::plain(format!("{id}-{seq}"), seq, Side::Agent, "hi", at + later),
                });
            }
        }
        let ended_at = (rng.next(6) != 0).then(|| paired_at + (rng.next(1_800) as i64 + 60) * 1_000);
        if let Some(ended_at) = ended_at {
            events.push(ArchiveEvent::Closed(ConversationClosed {
                id: id.clone(),
                ended_at,
                ended_by: Side::Customer,
                reason: EndReason::Ended,
                inferred: None,
            }));
        }
        let stars = ended_at.and_then(|_| (rng.next(2) == 0).then(|| rng.next(5) as u8 + 1));
        made.push(Made {
            category,
            agent,
            queued_at,
            paired_at,
            first_agent_at,
            ended_at,
            stars,
        });
    }
    // A buddy chat: never in a report.
    events.push(ArchiveEvent::Opened(ConversationOpened {
        id: "buddy".into(),
        kind: ConversationKind::Buddy,
        category: None,
        customer_name: "Bo".into(),
        agent_id: "Cy".into(),
        agent_name: "Cy".into(),
        queued_at: T0 + 1_000,
        paired_at: T0 + 1_000,
        customer: Default::default(),
    }));
    let mut left = Vec::new();
    for i in 0..15 {
        let category = ["sales", "billing"][rng.next(2) as usize];
        let left_at = T0 + (rng.next(3 * 24 * 60) as i64) * 60_000;
        events.push(ArchiveEvent::Abandoned(QueueAbandoned {
            id: format!("q{i}"),
            category: category.into(),
            queued_at: left_at - 30_000,
            left_at,
        }));
        left.push((category.to_string(), left_at));
    }
    store.archive(&events).await.unwrap();
    for (i, m) in made.iter().enumerate() {
        if let (Some(stars), Some(ended_at)) = (m.stars, m.ended_at) {
            let rating = Rating {
                score: stars,
                scale: RatingScale::Stars,
                comment: None,
                at: ended_at + 1_000,
            };
            store.rate_conversation(&format!("g{i}"), rating).await.unwrap();
        }
    }
    (made, left)
}

/// The day of `ms` in New York (UTC−5 in early March 2026: DST starts on the 8th).
fn new_york_day(ms: i64) -> String {
    let days = (ms - 5 * 3_600_000).div_euclid(DAY);
    let base = jiff::civil::date(1970, 1, 1);
    base.checked_add(jiff::Span::new().days(days)).unwrap().to_string()
}

async fn report_matches_the_hand_computed_numbers(store: SharedStore) {
    let (made, left) = generate(&store).await;
    let hub = TestHub::with_store(store.clone(), |_| {}).await;
    let admin: Api = hub.admin().await;
    let (status, report) = admin
        .get("/api/reports?from=2026-03-02&to=2026-03-03&zone=America/New_York")
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["zone"], "America/New_York");

    // The expectation, by hand: days 2026-03-02 and -03 in New York are
    // [T0 + 5 h, T0 + 2 days + 5 h).
    let (from, to) = (T0 + 5 * 3_600_000, T0 + 2 * DAY + 5 * 3_600_000);
    let inside: Vec<&Made> = made
        .iter()
        .filter(|m| from <= m.paired_at && m.paired_at < to)
        .collect();
    assert!(
        inside.len() > 50 && inside.len() < made.len(),
        "the range cuts the archive"
    );
    let mut rows: BTreeMap<(String, &str), Vec<&Made>> = BTreeMap::new();
    for m in &inside {
        rows.entry((new_york_day(m.paired_at), m.category)).or_default().push(m);
    }
    let days = report["days"].as_array().unwrap();
    for ((day, category), ms) in &rows {
        let row = days
            .iter()
            .find(|r| r["day"] == day.as_str() && r["category"] == *category)
            .unwrap_or_else(|| panic!("a row for {day} {category}: {report}"));
        let waits: Vec<i64> = ms.iter().map(|m| m.paired_at - m.queued_at).collect();
        let firsts: Vec<i64> = ms
            .iter()
            .filter_map(|m| m.first_agent_at.map(|f| f - m.paired_at))
            .collect();
        let handles: Vec<i64> = ms.iter().filter_map(|m| m.ended_at.map(|e| e - m.paired_at)).collect();
        let stars: Vec<u8> = ms.iter().filter_map(|m| m.stars).collect();
        let abandoned = left
            .iter()
            .filter(|(c, at)| c == category && from <= *at && *at < to && new_york_day(*at) == *day)
            .count();
        assert_eq!(row["conversations"], ms.len(), "{day} {category}");
        assert_eq!(row["abandoned"], abandoned, "{day} {category}");
        assert_eq!(row["wait_median_ms"], nearest_rank(&waits, 50), "{day} {category}");
        assert_eq!(row["wait_p90_ms"], nearest_rank(&waits, 90), "{day} {category}");
        assert_eq!(row["first_response_median_ms"], nearest_rank(&firsts, 50));
        assert_eq!(row["first_response_p90_ms"], nearest_rank(&firsts, 90));
        assert_eq!(row["unanswered"], ms.len() - firsts.len());
        assert_eq!(row["handle_median_ms"], nearest_rank(&handles, 50));
        assert_eq!(row["handle_p90_ms"], nearest_rank(&handles, 90));
        assert_eq!(row["rating_count"], stars.len());
        if !stars.is_empty() {
            let average = stars.iter().map(|s| f64::from(*s)).sum::<f64>() / stars.len() as f64;
            let got = row["rating_average"].as_f64().unwrap();
            assert!((got - average).abs() < 0.006, "{got} vs {average}");
        }
    }
    let with_conversations = days.iter().filter(|r| r["conversations"].as_u64() > Some(0)).count();
    assert_eq!(with_conversations, rows.len(), "no other rows with conversations");
    // Per agent and in total.
    for agent in ["a1", "a2", "a3"] {
        let theirs: Vec<&&Made> = inside.iter().filter(|m| m.agent == agent).collect();
        let row = find_by(&report["agents"], "agent_id", agent).unwrap();
        assert_eq!(row["conversations"], theirs.len());
        let handles: Vec<i64> = theirs
            .iter()
            .filter_map(|m| m.ended_at.map(|e| e - m.paired_at))
            .collect();
        assert_eq!(row["handle_median_ms"], nearest_rank(&handles, 50));
    }
    let waits: Vec<i64> = inside.iter().map(|m| m.paired_at - m.queued_at).collect();
    assert_eq!(report["totals"]["conversations"], inside.len());
    assert_eq!(report["totals"]["wait_p90_ms"], nearest_rank(&waits, 90));
    assert_eq!(
        report["totals"]["abandoned"],
        left.iter().filter(|(_, at)| from <= *at && *at < to).count()
    );

    // The same report as CSV: a row per day and category, per agent, and the totals.
    let csv = admin
        .get_response("/api/reports?from=2026-03-02&to=2026-03-03&zone=America/New_York&format=csv")
        .await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("report-2026-03-02-2026-03-03.csv")
    );
    let body = csv.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert!(lines[0].starts_with("scope,day,category,category_name,agent_id,agent_name,conversations,abandoned"));
    assert_eq!(
        lines.len(),
        1 + days.len() + report["agents"].as_array().unwrap().len() + 1
    );
    let total = lines.last().unwrap();
    assert!(total.starts_with(&format!("total,,,,,,{},", inside.len())), "{total}");
    hub.stop().await;
}

#[tokio::test]
async fn the_report_matches_a_hand_computed_expectation_on_the_memory_store() {
    report_matches_the_hand_computed_numbers(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_matches_a_hand_computed_expectation_on_the_embedded_store() {
    let dir = TempDir::new("reports-embedded");
    let store = embedded_store(&dir).await;
    report_matches_the_hand_computed_numbers(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_matches_a_hand_computed_expectation_on_mongodb() {
    report_matches_the_hand_computed_numbers(mongo_store(&mongo_uri()).await).await;
}

#[tokio::test]
async fn bad_report_queries_are_refused_by_name_and_agents_are_refused() {
    let (hub, admin) = TestHub::with_admin().await;
    for (query, code) in [
        ("", "bad_query"),
        ("from=2026-03-02", "bad_query"),
        ("from=yesterday&to=2026-03-02", "invalid_date"),
        ("from=2026-03-05&to=2026-03-02", "invalid_range"),
        ("from=2025-01-01&to=2026-03-02", "invalid_range"),
        ("from=2026-03-02&to=2026-03-02&zone=Mars/Olympus", "invalid_zone"),
        ("from=2026-03-02&to=2026-03-02&format=xlsx", "invalid_format"),
    ] {
        let (status, body) = admin.get(&format!("/api/reports?{query}")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}: {body}"
        );
    }
    let token = hub.agent_account("ann", &["general"], 1).await;
    let (status, _) = Api::bearer(&hub, &token)
        .get("/api/reports?from=2026-03-02&to=2026-03-02")
        .await;
    assert_eq!(status, 403);
    let (status, _) = reqwest::get(hub.url("/api/reports?from=2026-03-02&to=2026-03-02"))
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401);
    hub.stop().await;
}

/// Today's report, by the hub's API, in UTC (other tests' too).
pub async fn today(admin: &Api) -> Value {
    let day = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let (status, report) = admin.get(&format!("/api/reports?from={day}&to={day}&zone=UTC")).await;
    assert_eq!(status, 200, "{report}");
    report
}

/// Polls today's totals until `done` holds (the archive writes in the background).
async fn totals_until(admin: &Api, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let report = today(admin).await;
        if done(&report["totals"]) {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the report never showed it: {}", today(admin).await);
}

/// Over websockets: a customer served, one who leaves the line with `leave`, one whose page
/// goes and does not come back within the grace period: one conversation, two abandoned.
#[tokio::test]
async fn customers_who_leave_the_line_unserved_are_counted_abandoned() {
    let (hub, admin) = TestHub::with_admin().await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    agent.send(json!({"type": "set_available", "available": true})).await;
    let (_carla, chat) = hub.paired_customer(&mut agent, "Carla", "general").await;
    let mut dan = hub.customer("Dan", "general").await;
    dan.next_of("queued").await;
    dan.send(json!({"type": "leave"})).await;
    dan.next_of("removed").await;
    let mut eve = hub.customer("Eve", "general").await;
    eve.next_of("queued").await;
    drop(eve); // gone, and not back within the grace period (0.8 s in tests)
    agent.say_in(&chat, "Hello Carla", "a").await;
    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    let report = totals_until(&admin, |t| t["abandoned"] == 2 && t["handle_median_ms"].is_i64()).await;
    let totals = &report["totals"];
    assert_eq!(totals["conversations"], 1);
    assert_eq!(totals["unanswered"], 0);
    assert!(totals["first_response_median_ms"].as_i64().unwrap() >= 0);
    // Nothing else comes later: each counted once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(today(&admin).await["totals"]["abandoned"], 2);
    hub.stop().await;
}

/// Two nodes: customers who leave the line unserved on either node are counted once each
/// (every node sees the line's events; only the one holding the customer keeps it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_each_customer_who_leaves_unserved_is_counted_once() {
    let ChatAcrossNodes {
        agent: _ann,
        customer: _carla,
        nodes: [alpha, beta],
        servers: _servers,
        ..
    } = chat_across_nodes_with("reports-cluster", ["alpha", "beta"], |s| {
        s.resume_grace = Duration::from_secs(10);
    })
    .await;
    // Ann (limit 1) chats with Carla: Dan on alpha and Eve on beta wait, then leave.
    let admin = beta.admin().await;
    for (node, name) in [(&alpha, "Dan"), (&beta, "Eve")] {
        let mut customer = node.customer(name, "general").await;
        customer.next_of("queued").await;
        customer.send(json!({"type": "leave"})).await;
        customer.next_of("removed").await;
    }
    let report = totals_until(&admin, |t| t["abandoned"] == 2).await;
    assert_eq!(report["days"][0]["category"], "general");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(today(&alpha.admin().await).await["totals"]["abandoned"], 2);
    alpha.stop().await;
    beta.stop().await;
}

/// A MongoDB archive written before the reports (conversations without
/// `first_agent_at`, no backfill mark): a store connecting to it notes every
/// conversation's first agent line from its message buckets, once, in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mongodb_archive_from_before_the_reports_gets_its_first_agent_lines() {
    let (uri, db) = own_mongodb();
    let store = MongoStore::connect(&uri, &db).await.unwrap();
    let line = |seq: u64, from: Side, at: i64| ArchiveEvent::Message {
        conversation_id: "old".into(),
        message: ArchivedMessage::plain(format!("old-{seq}"), seq, from, "x", at),
    };
    store
        .archive(&[
            ArchiveEvent::Opened(ConversationOpened {
                id: "old".into(),
                kind: ConversationKind::Service,
                category: Some("sales".into()),
                customer_name: "Carla".into(),
                agent_id: "ann".into(),
                agent_name: "Ann".into(),
                queued_at: T0,
                paired_at: T0 + 1_000,
                customer: Default::default(),
            }),
            line(1, Side::Customer, T0 + 2_000),
            line(2, Side::Agent, T0 + 7_000),
            line(3, Side::Agent, T0 + 9_000),
        ])
        .await
        .unwrap();
    // As an older build left it.
    let raw = mongodb::Client::with_uri_str(&uri).await.unwrap().database(&db);
    raw.collection::<bson::Document>("conversations")
        .update_many(
            bson::doc! {},
            bson::doc! {"$unset": {"first_agent_at": "", "touched": ""}},
        )
        .await
        .unwrap();
    raw.collection::<bson::Document>("meta")
        .delete_many(bson::doc! {})
        .await
        .unwrap();
    drop(store);

    let store = MongoStore::connect(&uri, &db).await.unwrap();
    let mut first = None;
    for _ in 0..100 {
        first = store.report_facts(T0, T0 + DAY).await.unwrap().conversations[0].first_agent_at;
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(first, Some(T0 + 7_000));
    assert_eq!(
        raw.collection::<bson::Document>("meta")
            .count_documents(bson::doc! {})
            .await
            .unwrap(),
        1
    );
    raw.drop().await.unwrap();
}

/// The opening of a "sales" conversation of Carla's served by Ann, paired at `paired_at`
/// after 4 s in line.
fn sales_opened(id: &str, paired_at: i64) -> ArchiveEvent {
    ArchiveEvent::Opened(ConversationOpened {
        id: id.into(),
        kind: ConversationKind::Service,
        category: Some("sales".into()),
        customer_name: "Carla".into(),
        agent_id: "ann".into(),
        agent_name: "Ann".into(),
        queued_at: paired_at - 4_000,
        paired_at,
        customer: Default::default(),
    })
}

/// MongoDB's per-day cache of the reports' facts: a day cached by an older build (its
/// chunks held sub-documents) is rebuilt from the truth, not misread; the background
/// readying builds the recent days, and a conversation archived after it still counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_report_cache_of_an_older_build_is_rebuilt_and_the_readied_cache_stays_true() {
    let (uri, db) = own_mongodb();
    let store = MongoStore::connect(&uri, &db).await.unwrap();
    let conversation = |id: &str, paired_at: i64| {
        vec![
            sales_opened(id, paired_at),
            ArchiveEvent::Message {
                conversation_id: id.into(),
                message: ArchivedMessage::plain(format!("{id}-1"), 1, Side::Agent, "hello", paired_at + 3_000),
            },
        ]
    };
    store.archive(&conversation("first", T0 + 1_000)).await.unwrap();
    let facts = store.report_facts(T0, T0 + DAY).await.unwrap();
    assert_eq!(facts.conversations.len(), 1, "the day is cached now");

    // As an older build left the day's chunks: the entries as sub-documents, a wrong one.
    let raw = mongodb::Client::with_uri_str(&uri).await.unwrap().database(&db);
    let chunks = raw.collection::<bson::Document>("report_chunks");
    let old = chunks
        .update_many(
            bson::doc! {},
            bson::doc! {"$unset": {"packed": ""}, "$set": {"entries": [{"i": "ghost", "a": "x", "n": "X", "q": T0, "p": T0}]}},
        )
        .await
        .unwrap();
    assert_eq!(old.modified_count, 1);
    let facts = store.report_facts(T0, T0 + DAY).await.unwrap();
    let ids: Vec<&str> = facts.conversations.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["first"], "rebuilt from the conversations");
    assert_eq!(facts.conversations[0].first_agent_at, Some(T0 + 4_000));

    // Readied as the background task does (today = the next day): the days are cached, and
    // a conversation archived after that is patched in by the next report.
    raw.collection::<bson::Document>("report_days")
        .delete_many(bson::doc! {})
        .await
        .unwrap();
    chunks.delete_many(bson::doc! {}).await.unwrap();
    store.ready_reports(T0 + DAY + 60_000).await.unwrap();
    assert_eq!(
        chunks.count_documents(bson::doc! {}).await.unwrap(),
        1,
        "the day with a conversation is cached"
    );
    store.archive(&conversation("second", T0 + 50_000)).await.unwrap();
    let facts = store.report_facts(T0, T0 + DAY).await.unwrap();
    let mut ids: Vec<&str> = facts.conversations.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["first", "second"]);
    raw.drop().await.unwrap();
}

/// MongoDB's per-day cache carries the format of the build that saved a day: a day cached
/// by a build before formats were kept, or in another format, is rebuilt from the truth
/// on read, though its chunks read well (here they hold a conversation that never was).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_report_day_cached_in_another_format_is_rebuilt() {
    let (uri, db) = own_mongodb();
    let store = MongoStore::connect(&uri, &db).await.unwrap();
    store.archive(&[sales_opened("first", T0 + 1_000)]).await.unwrap();
    assert_eq!(store.report_facts(T0, T0 + DAY).await.unwrap().conversations.len(), 1);
    let raw = mongodb::Client::with_uri_str(&uri).await.unwrap().database(&db);
    let (days, chunks) = (
        raw.collection::<bson::Document>("report_days"),
        raw.collection::<bson::Document>("report_chunks"),
    );
    let ghost = json!([{"i": "ghost", "c": "sales", "a": "x", "n": "X", "q": T0, "p": T0 + 10}]).to_string();
    let read_ids = || async {
        let facts = store.report_facts(T0, T0 + DAY).await.unwrap();
        facts.conversations.into_iter().map(|c| c.id).collect::<Vec<_>>()
    };
    for (older, format) in [
        ("a build from before formats were kept", None),
        ("a build of another format", Some(999)),
    ] {
        let set_format = match format {
            None => bson::doc! {"$unset": {"format": ""}},
            Some(n) => bson::doc! {"$set": {"format": n}},
        };
        days.update_many(bson::doc! {}, set_format.clone()).await.unwrap();
        chunks.update_many(bson::doc! {}, set_format).await.unwrap();
        chunks
            .update_many(bson::doc! {}, bson::doc! {"$set": {"packed": &ghost}})
            .await
            .unwrap();
        assert_eq!(read_ids().await, ["first"], "a day cached by {older} is rebuilt");
        let pointer = days.find_one(bson::doc! {}).await.unwrap().unwrap();
        assert!(
            pointer
                .get("format")
                // This build's format (`DAY_FORMAT` in src/store/mongo/reports.rs).
                .is_some_and(|f| f.as_i64().or_else(|| f.as_i32().map(i64::from)) == Some(1)),
            "saved again in this build's format: {pointer}"
        );
    }
    // Saved in this build's format, the day is read from the cache again.
    chunks
        .update_many(bson::doc! {}, bson::doc! {"$set": {"packed": &ghost}})
        .await
        .unwrap();
    // (`first` may be patched in beside it: it was archived moments before.)
    assert!(
        read_ids().await.contains(&"ghost".to_string()),
        "this build's format is read as cached"
    );
    raw.drop().await.unwrap();
}

/// MongoDB's background readying covers every day with conversations, not only the last
/// month: its first pass walks back to the first conversation, so a report over a quarter
/// ago reads the cache instead of building its days (~12 s for 100,000 conversations).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_readying_caches_days_older_than_the_last_month_too() {
    let (uri, db) = own_mongodb();
    let store = MongoStore::connect(&uri, &db).await.unwrap();
    let now = T0 + DAY + 60_000;
    let days_ago = |n: i64| T0 - n * DAY + 1_000;
    for (id, at) in [
        ("recent", T0 + 1_000),
        ("quarter", days_ago(90)),
        ("year", days_ago(365)),
    ] {
        store.archive(&[sales_opened(id, at)]).await.unwrap();
    }
    store.ready_reports(now).await.unwrap();
    let raw = mongodb::Client::with_uri_str(&uri).await.unwrap().database(&db);
    let chunks = raw.collection::<bson::Document>("report_chunks");
    assert_eq!(
        chunks.count_documents(bson::doc! {}).await.unwrap(),
        3,
        "each day with a conversation is cached, a year back included"
    );
    // Read from the cache: a conversation deleted behind the store's back (no erasure,
    // which would take the day's version away) is still in it; built from the
    // conversations, the day would be empty.
    raw.collection::<bson::Document>("conversations")
        .delete_one(bson::doc! {"_id": "quarter"})
        .await
        .unwrap();
    let facts = store.report_facts(days_ago(90) - 1_000, days_ago(89)).await.unwrap();
    let ids: Vec<&str> = facts.conversations.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["quarter"], "read from the readied cache");
    raw.drop().await.unwrap();
}

/// A day whose facts fill several chunks of MongoDB's cache (here 3 entries a chunk, as
/// 10,000 do in production): read whole, patched whole after a late closing and a rating,
/// and rebuilt without an erased conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_report_cache_days_over_several_chunks_stay_whole() {
    let (uri, db) = own_mongodb();
    let store = MongoStore::connect(&uri, &db)
        .await
        .unwrap()
        .with_report_chunk_entries(3);
    let ids: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let events: Vec<ArchiveEvent> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            ArchiveEvent::Opened(ConversationOpened {
                id: id.clone(),
                kind: ConversationKind::Service,
                category: Some("sales".into()),
                customer_name: format!("Customer {i}"),
                agent_id: "ann".into(),
                agent_name: "Ann".into(),
                queued_at: T0 + i as i64 * 60_000,
                paired_at: T0 + i as i64 * 60_000 + 5_000,
                customer: Default::default(),
            })
        })
        .collect();
    store.archive(&events).await.unwrap();
    let read = |facts: ReportFacts| {
        let mut ids: Vec<String> = facts.conversations.into_iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(read(store.report_facts(T0, T0 + DAY).await.unwrap()), ids);
    let raw = mongodb::Client::with_uri_str(&uri).await.unwrap().database(&db);
    let chunks = raw.collection::<bson::Document>("report_chunks");
    assert_eq!(
        chunks.count_documents(bson::doc! {}).await.unwrap(),
        4,
        "10 entries in chunks of 3"
    );
    assert_eq!(
        read(store.report_facts(T0, T0 + DAY).await.unwrap()),
        ids,
        "read whole from 4 chunks"
    );

    // A late closing and a rating: the day is patched, still whole, with both.
    store
        .archive(&[ArchiveEvent::Closed(ConversationClosed {
            id: "c7".into(),
            ended_at: T0 + DAY / 2,
            ended_by: Side::Customer,
            reason: EndReason::Ended,
            inferred: None,
        })])
        .await
        .unwrap();
    store
        .rate_conversation(
            "c2",
            Rating {
                score: 4,
                scale: RatingScale::Stars,
                comment: None,
                at: T0 + DAY / 2,
            },
        )
        .await
        .unwrap();
    let facts = store.report_facts(T0, T0 + DAY).await.unwrap();
    let by_id: BTreeMap<&str, &ConversationFacts> = facts.conversations.iter().map(|c| (c.id.as_str(), c)).collect();
    assert_eq!(by_id.len(), 10);
    assert_eq!(by_id["c7"].ended_at, Some(T0 + DAY / 2));
    assert_eq!(by_id["c2"].rating, Some((RatingScale::Stars, 4)));
    assert_eq!(
        chunks.count_documents(bson::doc! {}).await.unwrap(),
        4,
        "the old version's chunks went"
    );

    // Erased: rebuilt without it.
    store.erase_conversations(&["c4".to_string()]).await.unwrap();
    let left = read(store.report_facts(T0, T0 + DAY).await.unwrap());
    assert_eq!(left.len(), 9);
    assert!(!left.contains(&"c4".to_string()));
    assert_eq!(
        chunks.count_documents(bson::doc! {}).await.unwrap(),
        3,
        "9 entries in chunks of 3"
    );
    raw.drop().await.unwrap();
}
