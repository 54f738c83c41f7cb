//! Scenario "idle": as many customers as the hub holds, each joined to a queue
//! and then silent (answering pings), to measure the hub's memory per connection.
//!
//! In a multi-process run each child connects its share, prints `READY`, and
//! closes when the parent writes a line to its stdin (after the parent has read
//! the hub's memory). A single process measures the memory itself.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

use crate::proto;
use crate::setup::Target;
use crate::stats::Stats;

pub struct Idle {
    pub customers: usize,
    /// Offset of this shard's first customer (names and source addresses).
    pub first: usize,
    pub concurrency: usize,
    pub category: String,
    pub settle_secs: f64,
    pub hold_secs: f64,
    pub child: bool,
    pub hub_pid: Option<u32>,
}

pub async fn run(t: &Target, s: &Arc<Stats>, cfg: &Idle) -> Value {
    let rss_before = cfg.hub_pid.and_then(crate::hubinfo::rss_kib);
    s.set_phase("connecting");
    let (stop_tx, stop_rx) = watch::channel(false);
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency));
    let joined = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(cfg.customers);
    for k in cfg.first..cfg.first + cfg.customers {
        let (t, s, sem, joined, category) = (t.clone(), s.clone(), sem.clone(), joined.clone(), cfg.category.clone());
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut permit = Some(sem.acquire_owned().await.expect("semaphore open"));
            let name = format!("idle{k}");
            let Some(mut ws) = crate::queue::joined_customer(&s, t.hub, t.source(k), 1024, &name, &category).await
            else {
                return;
            };
            let mut placed = false;
            while let Some(text) = crate::queue::next_text(&mut ws, &mut stop, &s).await {
                let Some(f) = proto::parse(&text) else { continue };
                match f.kind.as_ref() {
                    "queued" if !placed => {
                        placed = true;
                        joined.fetch_add(1, Relaxed);
                    }
                    "error" => s.error(f.code.as_deref().unwrap_or("error")),
                    _ => {}
                }
                if placed {
                    // Joined: let the next connection start while this one idles.
                    permit = None;
                }
            }
            drop(permit);
            let _ = ws.close(None).await;
        }));
    }
    // Wait until every customer is placed or failed (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while (joined.load(Relaxed) + s.conns_failed.load(Relaxed)) < cfg.customers as u64
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.set_phase("holding");
    tokio::time::sleep(Duration::from_secs_f64(cfg.settle_secs)).await;
    let placed = joined.load(Relaxed);
    let rss_after = cfg.hub_pid.and_then(crate::hubinfo::rss_kib);
    if cfg.child {
        println!("READY {placed}");
        let mut line = String::new();
        let _ = tokio::io::BufReader::new(tokio::io::stdin()).read_line(&mut line).await;
    } else {
        tokio::time::sleep(Duration::from_secs_f64(cfg.hold_secs)).await;
    }
    s.set_phase("closing");
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let mut figures = json!({ "customers_target": cfg.customers, "customers_joined": placed });
    if let (Some(b), Some(a)) = (rss_before, rss_after) {
        figures["hub_rss_before_kib"] = json!(b);
        figures["hub_rss_after_kib"] = json!(a);
        if let Some(per) = (a.saturating_sub(b) * 1024).checked_div(placed) {
            figures["bytes_per_connection"] = json!(per);
        }
    }
    figures
}
