//! Scenario "routing": bursts of customers joining a queue whose agents have
//! room, while a long line waits in another category. Measures routes per
//! second and the time from a customer's `join` to both sides' `chat_started`.
//!
//! Each round every routing customer joins at once (named `r<round>c<k>`, so
//! the agent's `chat_started.peer_name` says whose join it answers), the
//! loadgen waits until every pair is told, then every customer leaves.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::setup::{self, Target};
use crate::stats::{Stats, new_hist, pcts};
use crate::{proto, wsconn};

pub struct Routing {
    pub agents: usize,
    pub max_chats: u8,
    pub category: String,
    /// Customers per burst (at most agents × max_chats, so nobody waits).
    pub burst: usize,
    pub rounds: usize,
    /// Customers waiting meanwhile in `waiting_category`, which no agent serves.
    pub waiting: usize,
    pub waiting_category: String,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Phase {
    Idle,
    Join(usize),
    Leave(usize),
    Stop,
}

#[derive(Default)]
struct Pair {
    join: Option<u64>,
    customer: Option<u64>,
    agent: Option<u64>,
}

struct Shared {
    stats: Arc<Stats>,
    pairs: Mutex<HashMap<(usize, usize), Pair>>,
    hist: Mutex<Histogram<u64>>,
    completed: AtomicU64,
    last_told: AtomicU64,
    ended: AtomicU64,
}

impl Shared {
    /// Records one side being told (or the join); completes the pair when all three are known.
    fn mark(&self, key: (usize, usize), what: usize, at: u64) {
        let mut pairs = self.pairs.lock().unwrap();
        let p = pairs.entry(key).or_default();
        let slot = match what {
            0 => &mut p.join,
            1 => &mut p.customer,
            _ => &mut p.agent,
        };
        if slot.is_some() {
            self.stats.duplicates.fetch_add(1, Relaxed);
            return;
        }
        *slot = Some(at);
        if let (Some(j), Some(c), Some(a)) = (p.join, p.customer, p.agent) {
            let told = c.max(a);
            let _ = self.hist.lock().unwrap().record(told.saturating_sub(j).max(1));
            self.completed.fetch_add(1, Relaxed);
            self.last_told.fetch_max(told, Relaxed);
        }
    }
}

fn parse_name(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix('r')?;
    let (r, k) = rest.split_once('c')?;
    Some((r.parse().ok()?, k.parse().ok()?))
}

pub async fn run(t: &Target, stats: &Arc<Stats>, cfg: &Routing) -> Result<(Value, Histogram<u64>), String> {
    let sh = Arc::new(Shared {
        stats: stats.clone(),
        pairs: Mutex::new(HashMap::new()),
        hist: Mutex::new(new_hist()),
        completed: AtomicU64::new(0),
        last_told: AtomicU64::new(0),
        ended: AtomicU64::new(0),
    });
    stats.set_phase(format!("creating {} agents", cfg.agents));
    let tokens = setup::create_agents(t, cfg.agents, std::slice::from_ref(&cfg.category), cfg.max_chats).await?;
    let mut agent_tasks = vec![];
    let (phase_tx, phase_rx) = watch::channel(Phase::Idle);
    for (i, token) in tokens.iter().enumerate() {
        let ws = setup::agent_online(t, i, token, stats).await?;
        agent_tasks.push(tokio::spawn(agent(sh.clone(), ws, phase_rx.clone())));
    }

    stats.set_phase(format!("{} customers wait in {}", cfg.waiting, cfg.waiting_category));
    let (stop_tx, stop_rx) = watch::channel(false);
    let waiting = crate::queue::join_waiting(t, stats, cfg.waiting, &cfg.waiting_category, 1000, stop_rx, None).await;

    stats.set_phase(format!("{} routing customers connect", cfg.burst));
    let mut customers = vec![];
    for k in 0..cfg.burst {
        let ws = match wsconn::connect(t.hub, t.source(k + 7), "/ws/customer", None, 16 * 1024).await {
            Ok(ws) => ws,
            Err((code, d)) => {
                stats.conns_failed.fetch_add(1, Relaxed);
                stats.error(&code);
                return Err(format!("routing customer {k}: {code} {d}"));
            }
        };
        stats.conns_ok.fetch_add(1, Relaxed);
        customers.push(tokio::spawn(customer(
            sh.clone(),
            ws,
            k,
            cfg.category.clone(),
            phase_rx.clone(),
        )));
    }

    let mut rounds = vec![];
    let mut total_routes = 0u64;
    let mut total_secs = 0.0;
    for r in 0..cfg.rounds {
        stats.set_phase(format!("burst {}/{}", r + 1, cfg.rounds));
        let done0 = sh.completed.load(Relaxed);
        let t0 = stats.now_us();
        let _ = phase_tx.send(Phase::Join(r));
        let deadline = Instant::now() + Duration::from_secs(10);
        while sh.completed.load(Relaxed) - done0 < cfg.burst as u64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let routed = sh.completed.load(Relaxed) - done0;
        let secs = (sh.last_told.load(Relaxed).saturating_sub(t0)) as f64 / 1e6;
        total_routes += routed;
        total_secs += secs;
        rounds.push(json!({ "routed": routed, "secs": (secs * 1e4).round() / 1e4,
            "routes_per_sec": if secs > 0.0 { (routed as f64 / secs).round() } else { 0.0 } }));
        let _ = phase_tx.send(Phase::Leave(r));
        let want = (r as u64 + 1) * cfg.burst as u64;
        let deadline = Instant::now() + Duration::from_secs(10);
        while sh.ended.load(Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = phase_tx.send(Phase::Stop);
    stats.set_phase("closing");
    for c in customers {
        let _ = c.await;
    }
    for a in agent_tasks {
        let _ = a.await;
    }
    let _ = stop_tx.send(true);
    let waited = waiting.finish().await;
    let expected = (cfg.rounds * cfg.burst) as u64;
    stats
        .missing
        .fetch_add(expected.saturating_sub(sh.completed.load(Relaxed)), Relaxed);
    let hist = sh.hist.lock().unwrap().clone();
    let p = pcts(&hist);
    let figures = json!({
        "agents": cfg.agents, "agent_max_chats": cfg.max_chats, "burst": cfg.burst, "rounds": cfg.rounds,
        "waiting_meanwhile": waited, "routes": total_routes,
        "routes_per_sec": if total_secs > 0.0 { (total_routes as f64 / total_secs).round() } else { 0.0 },
        "join_to_both_told_p50_ms": p.p50_ms, "join_to_both_told_p99_ms": p.p99_ms,
        "per_round": rounds,
    });
    Ok((figures, hist))
}

async fn customer(sh: Arc<Shared>, mut ws: wsconn::Ws, k: usize, category: String, mut phase: watch::Receiver<Phase>) {
    let s = &sh.stats;
    let mut round = None;
    loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() { break; }
                let p = *phase.borrow_and_update();
                let frame = match p {
                    Phase::Join(r) => {
                        round = Some(r);
                        sh.mark((r, k), 0, s.now_us());
                        proto::join(&format!("r{r}c{k}"), &category)
                    }
                    Phase::Leave(_) => r#"{"type":"leave"}"#.to_string(),
                    Phase::Stop => break,
                    Phase::Idle => continue,
                };
                if ws.send(Message::text(frame)).await.is_err() {
                    s.error("send_failed");
                    return;
                }
                s.sent.fetch_add(1, Relaxed);
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(text))) => {
                    s.received.fetch_add(1, Relaxed);
                    let Some(f) = proto::parse(&text) else { continue };
                    match f.kind.as_ref() {
                        "chat_started" => match round {
                            Some(r) => sh.mark((r, k), 1, s.now_us()),
                            None => { s.wrong_recipient.fetch_add(1, Relaxed); }
                        },
                        "chat_ended" => { sh.ended.fetch_add(1, Relaxed); }
                        "error" => s.error(f.code.as_deref().unwrap_or("error")),
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                _ => { s.error("connection_lost"); return; }
            }
        }
    }
    let _ = ws.close(None).await;
}

async fn agent(sh: Arc<Shared>, mut ws: wsconn::Ws, mut phase: watch::Receiver<Phase>) {
    let s = &sh.stats;
    loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow_and_update() == Phase::Stop { break; }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(text))) => {
                    s.received.fetch_add(1, Relaxed);
                    let Some(f) = proto::parse(&text) else { continue };
                    match f.kind.as_ref() {
                        "chat_started" => match f.peer_name.as_deref().and_then(parse_name) {
                            Some(key) => sh.mark(key, 2, s.now_us()),
                            None => { s.wrong_recipient.fetch_add(1, Relaxed); }
                        },
                        "error" => s.error(f.code.as_deref().unwrap_or("error")),
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                _ => { s.error("connection_lost"); return; }
            }
        }
    }
    let _ = ws.close(None).await;
}
