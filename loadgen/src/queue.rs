//! Scenario "queue": a long line in one category while one agent takes its
//! customers one by one. After each route every remaining customer must be
//! told its new place (one less); the loadgen times how long until the last
//! of them knows, and reads the hub's CPU time the whole run cost.
//!
//! Also home of [`join_waiting`], the waiting crowd other scenarios reuse.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::setup::{self, Target};
use crate::stats::{Stats, new_hist, pcts};
use crate::{hubinfo, proto, wsconn};

/// The pause after a round before the next route. The hub spaces its place passes
/// (up to 100 ms after one ends, `PASS_SPACING_MAX`) to coalesce bursts of routes; a
/// longer pause keeps that spacing out of the figure, which is then the time one
/// route's re-placing takes.
const ROUTE_PAUSE: Duration = Duration::from_millis(120);

pub struct Queue {
    pub waiting: usize,
    pub rounds: usize,
    pub category: String,
    pub hub_pid: Option<u32>,
    /// The target is `loadgen bare-relay`, which keeps one line and no accounts.
    pub bare: bool,
}

/// Place updates seen per round (round r = initial place − new place).
pub struct PlaceTracker {
    updates: Vec<AtomicU64>,
    last_us: Vec<AtomicU64>,
    routed: AtomicU64,
}

/// Customers waiting in a queue, holding until `stop` turns true.
pub struct Waiting {
    tasks: Vec<JoinHandle<()>>,
    joined: Arc<AtomicU64>,
}

impl Waiting {
    pub async fn finish(self) -> u64 {
        for t in self.tasks {
            let _ = t.await;
        }
        self.joined.load(Relaxed)
    }
}

/// A customer's socket on `hub` from `source`, joined to `category` as `name`: the
/// connection counted in `s` (and its failure), the join counted sent, a join that
/// could not be sent counted `send_failed`. `None` when either failed.
pub async fn joined_customer(
    s: &Stats,
    hub: std::net::SocketAddr,
    source: Option<std::net::Ipv4Addr>,
    read_buffer: usize,
    name: &str,
    category: &str,
) -> Option<wsconn::Ws> {
    let mut ws = s
        .counted(wsconn::connect(hub, source, "/ws/customer", None, read_buffer).await)
        .ok()?;
    if ws.send(Message::text(proto::join(name, category))).await.is_err() {
        s.error("send_failed");
        return None;
    }
    s.sent.fetch_add(1, Relaxed);
    Some(ws)
}

/// The next text a waiting customer's `ws` brings (counted received), until `stop`
/// turns. `None` once stopped, or when the connection ended (counted as an error:
/// `closed_<code>`, or `connection_lost`).
pub async fn next_text(ws: &mut wsconn::Ws, stop: &mut watch::Receiver<bool>, s: &Stats) -> Option<Utf8Bytes> {
    loop {
        tokio::select! {
            _ = stop.changed() => return None,
            m = ws.next() => match m {
                Some(Ok(Message::Text(text))) => {
                    s.received.fetch_add(1, Relaxed);
                    return Some(text);
                }
                Some(Ok(Message::Close(frame))) => {
                    s.error(&format!("closed_{}", frame.map_or(1005, |f| u16::from(f.code))));
                    return None;
                }
                Some(Ok(_)) => {}
                _ => {
                    s.error("connection_lost");
                    return None;
                }
            }
        }
    }
}

/// Connects `count` customers (source addresses offset by `src_offset`), joins
/// each to `category`, and returns once all are queued (or failed).
pub async fn join_waiting(
    t: &Target,
    s: &Arc<Stats>,
    count: usize,
    category: &str,
    src_offset: usize,
    stop: watch::Receiver<bool>,
    tracker: Option<Arc<PlaceTracker>>,
) -> Waiting {
    let joined = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let sem = Arc::new(tokio::sync::Semaphore::new(128));
    let mut tasks = Vec::with_capacity(count);
    for k in 0..count {
        let (t, s, sem, joined, failed, tracker) = (
            t.clone(),
            s.clone(),
            sem.clone(),
            joined.clone(),
            failed.clone(),
            tracker.clone(),
        );
        let (category, mut stop) = (category.to_string(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut permit = Some(sem.acquire_owned().await.expect("semaphore open"));
            let (hub, source) = (t.customer_hub(k), t.source(k + src_offset));
            let Some(mut ws) = joined_customer(&s, hub, source, 2048, &format!("w{k}"), &category).await else {
                failed.fetch_add(1, Relaxed);
                return;
            };
            let (mut first, mut last) = (0u64, 0u64);
            while let Some(text) = next_text(&mut ws, &mut stop, &s).await {
                let Some(f) = proto::parse(&text) else { continue };
                match (f.kind.as_ref(), f.place) {
                    ("queued", Some(p)) => {
                        (first, last) = (p, p);
                        joined.fetch_add(1, Relaxed);
                        permit = None;
                    }
                    ("place", Some(p)) => {
                        if p == last {
                            s.duplicates.fetch_add(1, Relaxed);
                        } else if p + 1 != last {
                            s.error("unexpected_place");
                        }
                        last = p;
                        if let Some(tr) = &tracker {
                            let round = first.saturating_sub(p) as usize;
                            if round >= 1 && round < tr.updates.len() {
                                tr.updates[round].fetch_add(1, Relaxed);
                                tr.last_us[round].fetch_max(s.now_us(), Relaxed);
                            }
                        }
                    }
                    ("chat_started", _) => {
                        if let Some(tr) = &tracker {
                            tr.routed.fetch_add(1, Relaxed);
                        }
                    }
                    ("error", _) => s.error(f.code.as_deref().unwrap_or("error")),
                    _ => {}
                }
            }
            drop(permit);
            let _ = ws.close(None).await;
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while joined.load(Relaxed) + failed.load(Relaxed) < count as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Waiting { tasks, joined }
}

pub async fn run(t: &Target, stats: &Arc<Stats>, cfg: &Queue) -> Result<(Value, Histogram<u64>), String> {
    let tracker = Arc::new(PlaceTracker {
        updates: (0..=cfg.rounds).map(|_| AtomicU64::new(0)).collect(),
        last_us: (0..=cfg.rounds).map(|_| AtomicU64::new(0)).collect(),
        routed: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    stats.set_phase(format!("{} customers join {}", cfg.waiting, cfg.category));
    let crowd = join_waiting(t, stats, cfg.waiting, &cfg.category, 0, stop_rx, Some(tracker.clone())).await;
    let w = crowd.joined.load(Relaxed);
    stats.set_phase("agent signs in");
    let token = if cfg.bare {
        None
    } else {
        Some(
            setup::create_agents(t, 1, std::slice::from_ref(&cfg.category), 1)
                .await?
                .remove(0),
        )
    };
    let mut agent = wsconn::connect(t.hub, t.source(0), "/ws/agent", token.as_deref(), wsconn::READ_BUFFER)
        .await
        .map_err(|(c, d)| format!("agent: {c} {d}"))?;
    stats.conns_ok.fetch_add(1, Relaxed);
    if !cfg.bare {
        // The welcome and queue stats come first.
        let _ = tokio::time::timeout(Duration::from_secs(5), agent.next()).await;
    }

    let cpu0 = cfg.hub_pid.and_then(hubinfo::cpu_secs);
    let mut hist = new_hist();
    let mut per_round = vec![];
    let mut chat: Option<String> = None;
    let mut missing = 0u64;
    let start = Instant::now();
    for r in 1..=cfg.rounds {
        stats.set_phase(format!("route {r}/{}", cfg.rounds));
        let t0 = stats.now_us();
        let frame = match &chat {
            None => r#"{"type":"set_available","available":true}"#.to_string(),
            Some(c) => json!({"type": "end_chat", "chat_id": c}).to_string(),
        };
        agent.send(Message::text(frame)).await.map_err(|e| e.to_string())?;
        stats.sent.fetch_add(1, Relaxed);
        chat = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while chat.is_none() && Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, agent.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    stats.received.fetch_add(1, Relaxed);
                    if let Some(f) = proto::parse(&text) {
                        match f.kind.as_ref() {
                            "chat_started" => chat = f.chat_id.map(|c| c.to_string()),
                            "error" => stats.error(f.code.as_deref().unwrap_or("error")),
                            _ => {}
                        }
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => return Err(format!("agent: no chat_started in route {r}")),
            }
        }
        let want = w.saturating_sub(r as u64);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tracker.updates[r].load(Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let got = tracker.updates[r].load(Relaxed);
        missing += want.saturating_sub(got);
        let us = tracker.last_us[r].load(Relaxed).saturating_sub(t0).max(1);
        let _ = hist.record(us);
        per_round.push(json!({ "told": got, "expected": want, "ms": (us as f64 / 10.0).round() / 100.0 }));
        tokio::time::sleep(ROUTE_PAUSE).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cfg.hub_pid.and_then(hubinfo::cpu_secs).zip(cpu0).map(|(b, a)| b - a);
    stats.missing.fetch_add(missing, Relaxed);
    stats.set_phase("closing");
    let _ = stop_tx.send(true);
    let _ = agent.close(None).await;
    let joined = crowd.finish().await;
    let p = pcts(&hist);
    let figures = json!({
        "waiting": joined, "routes": cfg.rounds, "customers_routed_told": tracker.routed.load(Relaxed),
        "replace_all_p50_ms": p.p50_ms, "replace_all_max_ms": p.max_ms,
        "hub_cpu_secs": cpu.map(|c| (c * 1000.0).round() / 1000.0),
        "hub_cpu_ms_per_route": cpu.map(|c| (c * 1000.0 / cfg.rounds as f64 * 10.0).round() / 10.0),
        "run_secs": (secs * 100.0).round() / 100.0,
        "per_round": per_round,
    });
    Ok((figures, hist))
}
