//! A measure (not a test) of the manager's reports over a large archive: fills a store
//! with generated service conversations (each opened, a customer and an agent line,
//! closed; a tenth rated), customers who left unserved and offline messages, then times
//! `GET /api/reports` end to end (HTTP, JSON) over a hub in this process.
//!
//! `cargo run --release --example reports_bench -- <embedded|mongodb> [conversations]`
//! (default 100,000). `mongodb` reads `SWITCHBOARD_TEST_MONGODB_URI` (scripts/with-mongo.sh
//! starts a MongoDB-wire server; `REPORTS_BENCH_DB=<name>` fills that database once and
//! measures it again on later runs). Prints one JSON line per measure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::store::*;
use tokio_util::sync::CancellationToken;

const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z: the generated archive covers 30 days from here.
const T0: i64 = 1_767_225_600_000;
const DAYS: i64 = 30;
const ADMIN_PASSWORD: &str = "bench-admin-password";

async fn fill(store: &SharedStore, conversations: usize) -> Duration {
    let started = Instant::now();
    let mut batch: Vec<ArchiveEvent> = Vec::with_capacity(2_000);
    let mut rng: u64 = 1;
    let mut next = |below: u64| {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (rng >> 33) % below
    };
    let spacing = DAYS * DAY / conversations as i64;
    let mut rated = Vec::new();
    for i in 0..conversations {
        let id = format!("bench-{i:07}");
        let paired_at = T0 + i as i64 * spacing;
        let agent = format!("agent-{}", next(20));
        batch.push(ArchiveEvent::Opened(ConversationOpened {
            id: id.clone(),
            kind: ConversationKind::Service,
            category: Some(["sales", "billing", "support"][next(3) as usize].to_string()),
            customer_name: format!("Customer {i}"),
            agent_id: agent.clone(),
            agent_name: agent,
            queued_at: paired_at - next(300_000) as i64,
            paired_at,
            customer: Default::default(),
        }));
        for (seq, from) in [(1, Side::Customer), (2, Side::Agent)] {
            batch.push(ArchiveEvent::Message {
                conversation_id: id.as_str().into(),
                message: ArchivedMessage::plain(
                    format!("{id}-{seq}"),
                    seq,
                    from,
                    "a line of about the length people write in a chat",
                    paired_at + seq as i64 * 20_000,
                ),
            });
        }
        batch.push(ArchiveEvent::Closed(ConversationClosed {
            id: id.clone(),
            ended_at: paired_at + 60_000 + next(900_000) as i64,
            ended_by: Side::Customer,
            reason: EndReason::Ended,
            inferred: None,
        }));
        if i % 10 == 0 {
            batch.push(ArchiveEvent::Abandoned(QueueAbandoned {
                id: format!("left-{i}"),
                category: "sales".into(),
                queued_at: paired_at - 120_000,
                left_at: paired_at,
            }));
        }
        if i % 10 == 5 {
            rated.push((id, (next(5) + 1) as u8));
        }
        if batch.len() >= store.max_batch() - 8 {
            store.archive(&batch).await.expect("archive");
            batch.clear();
        }
    }
    store.archive(&batch).await.expect("archive");
    for (id, score) in rated {
        let rating = Rating {
            score,
            scale: RatingScale::Stars,
            comment: None,
            at: T0,
        };
        store.rate_conversation(&id, rating).await.expect("rate");
    }
    started.elapsed()
}

/// Whether `db` on the bench's MongoDB server holds an earlier run's fill (its marker).
async fn already_filled(db: &str) -> bool {
    mongo_database(db)
        .await
        .collection::<bson::Document>("meta")
        .find_one(bson::doc! {"_id": "reports_bench_filled"})
        .await
        .expect("meta")
        .is_some()
}

async fn mark_filled(db: &str) {
    mongo_database(db)
        .await
        .collection::<bson::Document>("meta")
        .insert_one(bson::doc! {"_id": "reports_bench_filled"})
        .await
        .expect("marker");
}

async fn drop_report_cache(db: &str) {
    let db = mongo_database(db).await;
    for name in ["report_days", "report_chunks"] {
        db.collection::<bson::Document>(name)
            .delete_many(bson::doc! {})
            .await
            .expect("cache dropped");
    }
}

async fn mongo_database(db: &str) -> mongodb::Database {
    let uri = std::env::var("SWITCHBOARD_TEST_MONGODB_URI").expect("SWITCHBOARD_TEST_MONGODB_URI");
    mongodb::Client::with_uri_str(&uri).await.expect("mongodb").database(db)
}

async fn timed(client: &reqwest::Client, url: &str) -> (Duration, serde_json::Value) {
    let started = Instant::now();
    let response = client.get(url).send().await.expect("report");
    assert_eq!(response.status(), 200, "the report answers");
    let body: serde_json::Value = response.json().await.expect("json");
    (started.elapsed(), body)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = args.get(1).map(String::as_str).unwrap_or("embedded").to_string();
    let conversations: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    // REPORTS_BENCH_DB (MongoDB only): fill this database once and measure it again on later
    // runs against the same server (a 100,000-conversation fill takes minutes there).
    let kept_database = std::env::var("REPORTS_BENCH_DB").ok().filter(|d| !d.is_empty());
    let mongo_db = kept_database
        .clone()
        .unwrap_or_else(|| format!("reports_bench_{}", std::process::id()));
    let dir = std::env::temp_dir().join(format!("switchboard-reports-bench-{}", std::process::id()));
    let store: SharedStore = match backend.as_str() {
        "embedded" => Arc::new(EmbeddedStore::open(&dir).await.expect("embedded store")),
        "mongodb" => {
            let uri = std::env::var("SWITCHBOARD_TEST_MONGODB_URI").expect("SWITCHBOARD_TEST_MONGODB_URI");
            Arc::new(MongoStore::connect(&uri, &mongo_db).await.expect("mongodb"))
        }
        other => panic!("unknown store {other}: embedded or mongodb"),
    };
    let fill_time = match &kept_database {
        Some(db) if already_filled(db).await => {
            // A database filled by an earlier run: its reports' cache goes, so the first
            // report is measured cold as on a fresh fill.
            drop_report_cache(db).await;
            Duration::ZERO
        }
        Some(db) => {
            let took = fill(&store, conversations).await;
            mark_filled(db).await;
            took
        }
        None => fill(&store, conversations).await,
    };

    let mut settings = switchboard::config::Settings::for_tests();
    settings.admin_password = Some(ADMIN_PASSWORD.into());
    settings.store.data_dir = dir.join("hub");
    switchboard::bootstrap(&store, &settings).await.expect("bootstrap");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let hub = tokio::spawn({
        let (store, shutdown) = (store.clone(), shutdown.clone());
        async move { switchboard::run(listener, settings, store, shutdown).await.unwrap() }
    });
    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let login = client
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("sign in");
    assert!(login.status().is_success(), "signed in: {}", login.status());

    let whole = format!("{base}/api/reports?from=2026-01-01&to=2026-01-30&zone=UTC");
    let (first, body) = timed(&client, &whole).await;
    assert_eq!(
        body["totals"]["conversations"], conversations,
        "every conversation counted"
    );
    let mut warm = Vec::new();
    for _ in 0..5 {
        warm.push(timed(&client, &whole).await.0);
    }
    let week = format!("{base}/api/reports?from=2026-01-08&to=2026-01-14&zone=Europe/Paris");
    let mut weeks = Vec::new();
    for _ in 0..5 {
        weeks.push(timed(&client, &week).await.0);
    }
    // The readying every node runs (MongoDB: the recent days' cache built in the
    // background), as if today were the day after the archive's last: how long it takes,
    // and the first report after it.
    if backend == "mongodb" {
        drop_report_cache(&mongo_db).await;
    }
    let readying = Instant::now();
    store.ready_reports(T0 + DAYS * DAY).await.expect("ready");
    let ready_time = readying.elapsed();
    let (after_ready, _) = timed(&client, &whole).await;
    // MongoDB: a node started long after the archive's days (today, here ~11 months on)
    // readies every older day once in the background; the cache outlives it, so a report
    // over them reads the cache. Timed on a store of its own, as a new process would be.
    let mut long_after = None;
    if backend == "mongodb" {
        drop_report_cache(&mongo_db).await;
        let uri = std::env::var("SWITCHBOARD_TEST_MONGODB_URI").expect("SWITCHBOARD_TEST_MONGODB_URI");
        let fresh = MongoStore::connect(&uri, &mongo_db).await.expect("mongodb");
        let readying = Instant::now();
        fresh.ready_reports(switchboard::clock::now_ms()).await.expect("ready");
        let ready_all = readying.elapsed();
        let (report, _) = timed(&client, &whole).await;
        long_after = Some((ready_all, report));
    }
    let ms = |d: Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
    println!(
        "{}",
        serde_json::json!({
            "store": backend,
            "conversations": conversations,
            "fill_s": (fill_time.as_secs_f64() * 10.0).round() / 10.0,
            "report_30_days_first_ms": ms(first),
            "report_30_days_median_ms": ms(median(warm)),
            "report_7_days_median_ms": ms(median(weeks)),
            "ready_ms": ms(ready_time),
            "report_30_days_after_ready_ms": ms(after_ready),
            "ready_every_older_day_ms": long_after.map(|(ready, _)| ms(ready)),
            "report_30_days_after_older_days_readied_ms": long_after.map(|(_, report)| ms(report)),
        })
    );
    shutdown.cancel();
    let _ = hub.await;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
