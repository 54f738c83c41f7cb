//! Scenario "routing": rounds of customers joining a queue whose agents have
//! room, while a long line waits in another category. Measures routes per
//! second and the time from a customer's `join` to both sides' `chat_started`.
//!
//! In each round every routing customer joins once (named `r<round>c<k>`, so
//! the agent's `chat_started.peer_name` says whose join it answers), the
//! loadgen waits until every pair is told, then every customer leaves. Paced
//! rounds spread the joins at `join_rate` a second: their latency is the
//! figure at that rate. Burst rounds send every join at once: they give the
//! most routes a second the hub manages, and latency that is mostly the wait
//! behind the rest of the burst.

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
    /// Customers per round (at most agents × max_chats, so nobody waits).
    pub burst: usize,
    /// Paced rounds: joins spread evenly at `join_rate` a second.
    pub rounds: usize,
    pub join_rate: f64,
    /// Rounds after the paced ones where every customer joins at once.
    pub burst_rounds: usize,
    /// Customers waiting meanwhile in `waiting_category`, which no agent serves.
    pub waiting: usize,
    pub waiting_category: String,
    /// Processes (name, pid) whose CPU over the rounds is reported: the hub, or a cluster's nodes and redis-server.
    pub watch: Vec<(String, u32)>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Phase {
    Idle,
    /// Round, and the pause between two customers' joins (zero: all at once).
    Join(usize, Duration),
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
    /// Join → both told, for paced rounds and burst rounds.
    hist: Mutex<Histogram<u64>>,
    burst_hist: Mutex<Histogram<u64>>,
    /// Rounds below this are paced.
    paced_rounds: usize,
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
            let hist = if key.0 < self.paced_rounds {
                &self.hist
            } else {
                &self.burst_hist
            };
            let _ = hist.lock().unwrap().record(told.saturating_sub(j).max(1));
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
        burst_hist: Mutex::new(new_hist()),
        paced_rounds: cfg.rounds,
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
        let connecting = wsconn::connect(
            t.customer_hub(k),
            t.source(k + 7),
            "/ws/customer",
            None,
            wsconn::READ_BUFFER,
        );
        let ws = stats
            .counted(connecting.await)
            .map_err(|(code, d)| format!("routing customer {k}: {code} {d}"))?;
        customers.push(tokio::spawn(customer(
            sh.clone(),
            ws,
            k,
            cfg.category.clone(),
            phase_rx.clone(),
        )));
    }

    let mut rounds = vec![];
    let mut totals = [(0u64, 0.0f64); 2];
    let all_rounds = cfg.rounds + cfg.burst_rounds;
    let pause = if cfg.join_rate > 0.0 {
        Duration::from_secs_f64(1.0 / cfg.join_rate)
    } else {
        Duration::ZERO
    };
    let watched0 = crate::hubinfo::cpu_all(&cfg.watch);
    for r in 0..all_rounds {
        let paced = r < cfg.rounds;
        stats.set_phase(format!(
            "round {}/{all_rounds} ({})",
            r + 1,
            if paced { "paced" } else { "burst" }
        ));
        let done0 = sh.completed.load(Relaxed);
        let t0 = stats.now_us();
        let _ = phase_tx.send(Phase::Join(r, if paced { pause } else { Duration::ZERO }));
        let deadline = Instant::now() + Duration::from_secs(10);
        while sh.completed.load(Relaxed) - done0 < cfg.burst as u64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let routed = sh.completed.load(Relaxed) - done0;
        let secs = (sh.last_told.load(Relaxed).saturating_sub(t0)) as f64 / 1e6;
        let total = &mut totals[usize::from(!paced)];
        total.0 += routed;
        total.1 += secs;
        rounds.push(
            json!({ "paced": paced, "routed": routed, "secs": (secs * 1e4).round() / 1e4,
            "routes_per_sec": if secs > 0.0 { (routed as f64 / secs).round() } else { 0.0 } }),
        );
        let _ = phase_tx.send(Phase::Leave(r));
        let want = (r as u64 + 1) * cfg.burst as u64;
        let deadline = Instant::now() + Duration::from_secs(10);
        while sh.ended.load(Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let watched = crate::hubinfo::cpu_between(&cfg.watch, &watched0, &crate::hubinfo::cpu_all(&cfg.watch));
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
    let expected = (all_rounds * cfg.burst) as u64;
    stats
        .missing
        .fetch_add(expected.saturating_sub(sh.completed.load(Relaxed)), Relaxed);
    let hist = sh.hist.lock().unwrap().clone();
    let p = pcts(&hist);
    let burst = pcts(&sh.burst_hist.lock().unwrap());
    let per_sec = |(routes, secs): (u64, f64)| {
        if secs > 0.0 {
            (routes as f64 / secs).round()
        } else {
            0.0
        }
    };
    let mut figures = json!({
        "agents": cfg.agents, "agent_max_chats": cfg.max_chats, "customers_per_round": cfg.burst,
        "paced_rounds": cfg.rounds, "join_rate_offered": cfg.join_rate, "burst_rounds": cfg.burst_rounds,
        "waiting_meanwhile": waited, "routes": totals[0].0 + totals[1].0,
        "routes_per_sec": per_sec(totals[0]),
        "join_to_both_told_p50_ms": p.p50_ms, "join_to_both_told_p99_ms": p.p99_ms,
        "burst_routes_per_sec": per_sec(totals[1]),
        "burst_join_to_both_told_p50_ms": burst.p50_ms, "burst_join_to_both_told_p99_ms": burst.p99_ms,
        "per_round": rounds,
    });
    if !watched.is_empty() {
        // Over all rounds: each route is a join, two chat_started, a leave and two chat_ended.
        let routes = (totals[0].0 + totals[1].0).max(1) as f64;
        figures["procs_cpu_ms_per_1000_routes"] = watched
            .iter()
            .map(|(n, c)| (n.clone(), json!((c * 1e7 / routes).round() / 10.0)))
            .collect();
        figures["procs_cpu_secs_rounds"] = watched
            .iter()
            .map(|(n, c)| (n.clone(), json!((c * 1000.0).round() / 1000.0)))
            .collect();
    }
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
                    Phase::Join(r, pause) => {
                        round = Some(r);
                        if !pause.is_zero() {
                            tokio::time::sleep(pause * k as u32).await;
                        }
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
