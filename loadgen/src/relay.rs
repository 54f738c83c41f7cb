//! Scenarios "relay" and "archive": 1-to-1 chats exchanging messages at
//! rising total rates (or one fixed rate for "archive"), checking every copy.
//!
//! Each message carries `client_id = "<chat>.<side>.<n>.<send µs>"`; the
//! receiver checks the chat, records the delivery latency of the peer's messages
//! and the acknowledgement latency of its own (the `ack` frame the hub sends its
//! sender once the message is durable, carrying its `client_id`; the bare floor
//! echoes the message itself instead), and sets a bit per (receiver, side, n), so
//! wrong, duplicate and missing copies are found. Against a relay that sends no
//! acknowledgement (`acks: false`, the Node ws relay) only the peer's copy is
//! expected, and an own copy is a wrong delivery. Reader and writer of a connection are separate tasks so a slow send
//! never stops a socket from being read.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::setup::{self, Target};
use crate::stats::{Stats, new_hist, pcts};
use crate::wsconn::{self, Ws};
use crate::{hubinfo, proto, soak};

/// A bare relay's answer to `hello` once the connection's chats are registered.
pub const READY: &str = r#"{"type":"ready"}"#;

/// Traffic at the first step's rate before anything is measured.
const WARM_UP: Duration = Duration::from_secs(2);

pub struct Relay {
    pub chats: usize,
    pub max_chats: u8,
    pub category: String,
    /// Total messages per second, one step each.
    pub rates: Vec<f64>,
    pub step_secs: f64,
    pub msg_size: usize,
    /// Stop rising once a step's p99 passes this.
    pub stop_p99_ms: f64,
    /// Shortest pause of a connection's writer: messages due meanwhile go out in one write.
    pub send_tick_ms: f64,
    pub drain_secs: f64,
    /// Wait for the archive backlog to drain and compare the store's totals.
    pub archive_check: bool,
    pub hub_pid: Option<u32>,
    /// The target is `loadgen bare-relay` (or a relay speaking its `hello`), not a hub: no accounts, no joins.
    pub bare: bool,
    /// The target sends each message back to its sender (the acknowledgement).
    pub acks: bool,
    /// Processes (name, pid) whose CPU each step reports, summed into CPU per message:
    /// the hub alone, or a cluster's nodes and redis-server.
    pub watch: Vec<(String, u32)>,
    /// Read the hub's VmRSS this often during the traffic (the soak scenario's curve).
    pub rss_every_secs: Option<f64>,
    /// Files uploaded at once over HTTP during the steps (0: none), each `upload_bytes` long.
    pub uploads: usize,
    pub upload_bytes: usize,
}

/// What the loadgen knows of one chat, shared by its customer and agent tasks.
#[derive(Default)]
struct ChatTrack {
    wire_id: OnceLock<String>,
    /// The customer's `resume_token` (its `welcome`): what it uploads files with.
    resume_token: OnceLock<String>,
    /// Messages sent by side 0 (customer) and 1 (agent).
    sent: [AtomicU64; 2],
    /// (side, n) refused by the hub with an error frame.
    refused: Mutex<Vec<(usize, u64)>>,
    /// Receipt bitmaps indexed by receiver * 2 + side.
    seen: Mutex<[Vec<u64>; 4]>,
}

struct Shared {
    stats: Arc<Stats>,
    chats: Vec<ChatTrack>,
    by_wire: Mutex<HashMap<String, usize>>,
    /// Current step and when it started (µs on the stats clock); writers follow them.
    step: AtomicUsize,
    step_started_us: AtomicU64,
    /// Messages per second per chat in each step.
    per_chat_rate: Vec<f64>,
    running: AtomicBool,
    /// Shortest pause of a writer, seconds.
    send_tick: f64,
    /// Delivery latency (send → the peer's copy), one histogram per step.
    hists: Mutex<Vec<Histogram<u64>>>,
    /// Acknowledgement latency (send → the sender's own copy), one histogram per step.
    ack_hists: Mutex<Vec<Histogram<u64>>>,
    /// The sender gets its own copy back; without, each message has one copy to check.
    acks: bool,
    /// Messages refused with an error frame so far (for each step's count).
    refused_total: AtomicU64,
    text: String,
    /// Against a bare relay: customers name their chat too (the relay adds nothing).
    bare: bool,
    /// Uploads answered 201 so far, and their bytes (for each step's figures).
    uploads_done: AtomicU64,
    upload_bytes_done: AtomicU64,
    /// Uploads the hub refused or that failed, so far.
    uploads_failed: AtomicU64,
}

/// Customers' sockets, and each agent's socket with its chats.
type Connections = (Vec<Ws>, Vec<(Ws, Vec<usize>)>);

impl Shared {
    /// Records one received chat message or acknowledgement (`ack`); `receiver` 0 =
    /// customer, 1 = agent.
    fn on_message(&self, receiver: usize, own_chat: Option<usize>, frame: &proto::In<'_>, ack: bool) {
        let s = &self.stats;
        let Some((k, side, n, t)) = frame.client_id.as_deref().and_then(parse_client_id) else {
            s.error("unparsable_client_id");
            return;
        };
        let wire_ok = frame.chat_id.as_deref() == self.chats.get(k).and_then(|c| c.wire_id.get()).map(String::as_str);
        // A relay that acknowledges nothing must not send a sender its own message.
        // An acknowledgement is of one's own message only.
        if own_chat != Some(k) || !wire_ok || (side == receiver && !self.acks) || (ack && side != receiver) {
            s.wrong_recipient.fetch_add(1, Relaxed);
            return;
        }
        let mut seen = self.chats[k].seen.lock().unwrap();
        let bits = &mut seen[receiver * 2 + side];
        let (word, bit) = ((n / 64) as usize, 1u64 << (n % 64));
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        if bits[word] & bit != 0 {
            s.duplicates.fetch_add(1, Relaxed);
            return;
        }
        bits[word] |= bit;
        drop(seen);
        let latency = s.now_us().saturating_sub(t).max(1);
        let step = self.step.load(Relaxed);
        let hists = if side != receiver { &self.hists } else { &self.ack_hists };
        let _ = hists.lock().unwrap()[step].record(latency);
    }

    fn on_error(&self, frame: &proto::In<'_>) {
        self.stats.error(frame.code.as_deref().unwrap_or("error"));
        if let Some((k, side, n, _)) = frame.client_id.as_deref().and_then(parse_client_id)
            && let Some(chat) = self.chats.get(k)
        {
            chat.refused.lock().unwrap().push((side, n));
            self.refused_total.fetch_add(1, Relaxed);
        }
    }
}

fn parse_client_id(id: &str) -> Option<(usize, usize, u64, u64)> {
    let mut it = id.split('.');
    let k = it.next()?.parse().ok()?;
    let side = it.next()?.parse().ok()?;
    let n = it.next()?.parse().ok()?;
    let t = it.next()?.parse().ok()?;
    (side < 2).then_some((k, side, n, t))
}

type Sink = SplitSink<Ws, Message>;
type Stream = SplitStream<Ws>;

pub async fn run(t: &Target, stats: &Arc<Stats>, cfg: &Relay) -> Result<(Value, Histogram<u64>), String> {
    let agents = cfg.chats.div_ceil(cfg.max_chats as usize);
    let per_chat_rate = cfg.rates.iter().map(|r| r / cfg.chats as f64).collect();
    let shared = Arc::new(Shared {
        stats: stats.clone(),
        chats: (0..cfg.chats).map(|_| ChatTrack::default()).collect(),
        by_wire: Mutex::new(HashMap::new()),
        step: AtomicUsize::new(0),
        step_started_us: AtomicU64::new(0),
        per_chat_rate,
        running: AtomicBool::new(true),
        send_tick: cfg.send_tick_ms / 1000.0,
        hists: Mutex::new(cfg.rates.iter().map(|_| new_hist()).collect()),
        ack_hists: Mutex::new(cfg.rates.iter().map(|_| new_hist()).collect()),
        acks: cfg.acks,
        refused_total: AtomicU64::new(0),
        text: "x".repeat(cfg.msg_size.max(1)),
        bare: cfg.bare,
        uploads_done: AtomicU64::new(0),
        upload_bytes_done: AtomicU64::new(0),
        uploads_failed: AtomicU64::new(0),
    });
    if cfg.bare && cfg.uploads > 0 {
        return Err("--uploads needs a hub: a bare relay takes no files".into());
    }
    let (customers, agent_parts) = if cfg.bare {
        bare_setup(t, &shared, cfg, agents).await?
    } else {
        hub_setup(t, &shared, cfg, agents).await?
    };
    // Which store the hub runs on, so the report can label the row (a bare relay has none).
    let store_backend = if cfg.bare {
        Value::Null
    } else {
        hubinfo::health(t.hub).await.map_or(Value::Null, |h| h["store"].clone())
    };

    // Traffic: one reader and one writer task per connection.
    let mut writers = vec![];
    let mut readers = vec![];
    let mut sinks_done = vec![];
    // Spread the connections' send instants over each period.
    let spread = |i: usize| (i as f64 * 0.618_034) % 1.0;
    for (k, ws) in customers.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        let sh = shared.clone();
        readers.push(tokio::spawn(reader(sh.clone(), stream, 0, vec![k])));
        writers.push(tokio::spawn(writer(sh, sink, 0, vec![k], spread(k))));
    }
    for (i, (ws, mine)) in agent_parts.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        let sh = shared.clone();
        readers.push(tokio::spawn(reader(sh.clone(), stream, 1, mine.clone())));
        writers.push(tokio::spawn(writer(sh, sink, 1, mine, spread(i + cfg.chats))));
    }

    let mut steps = vec![];
    let mut highest_held: Option<f64> = None;
    let traffic_start = Instant::now();
    // The soak's memory curve: the hub's VmRSS from the first message on.
    let mut rss_samples: Vec<soak::Sample> = vec![];
    let mut next_rss_sample = traffic_start;
    let mut sample_rss = |samples: &mut Vec<soak::Sample>| {
        if let (Some(every), Some(pid)) = (cfg.rss_every_secs, cfg.hub_pid)
            && Instant::now() >= next_rss_sample
        {
            if let Some(rss_kib) = hubinfo::rss_kib(pid) {
                samples.push(soak::Sample {
                    secs: traffic_start.elapsed().as_secs_f64(),
                    rss_kib,
                });
            }
            next_rss_sample += Duration::from_secs_f64(every);
        }
    };
    sample_rss(&mut rss_samples);
    // The uploads start before the warm-up, so every measured step sees them running (the
    // issue's "while 20 uploads run"), not the moment 20 of them start at once.
    let uploaders: Vec<_> = (0..cfg.uploads)
        .map(|j| tokio::spawn(uploader(t.clone(), shared.clone(), j, cfg.uploads, cfg.upload_bytes)))
        .collect();
    if !cfg.archive_check && !cfg.rates.is_empty() {
        // Not measured: the first seconds of traffic pay once for what no later step sees
        // (buffers and tables growing to their working size).
        stats.set_phase("warm-up");
        shared.step_started_us.store(stats.now_us(), Relaxed);
        shared.step.store(0, Relaxed);
        tokio::time::sleep(WARM_UP).await;
        shared.hists.lock().unwrap()[0].reset();
        shared.ack_hists.lock().unwrap()[0].reset();
    }
    let mut max_backlog = 0u64;
    for (i, &rate) in cfg.rates.iter().enumerate() {
        stats.set_phase(format!("step {rate} msg/s"));
        let sent0 = stats.sent.load(Relaxed);
        let recv0 = stats.received.load(Relaxed);
        let refused0 = shared.refused_total.load(Relaxed);
        let uploads0 = (
            shared.uploads_done.load(Relaxed),
            shared.upload_bytes_done.load(Relaxed),
            shared.uploads_failed.load(Relaxed),
        );
        let cpu0 = cfg.hub_pid.and_then(hubinfo::cpu_secs);
        let own0 = hubinfo::cpu_secs(std::process::id());
        let watched0 = hubinfo::cpu_all(&cfg.watch);
        let start = Instant::now();
        shared.step_started_us.store(stats.now_us(), Relaxed);
        shared.step.store(i, Relaxed);
        let end = start + Duration::from_secs_f64(cfg.step_secs);
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(1000).min(end - Instant::now())).await;
            sample_rss(&mut rss_samples);
            if cfg.archive_check
                && let Ok(h) = hubinfo::health(t.hub).await
            {
                max_backlog = max_backlog.max(h["archive_backlog"].as_u64().unwrap_or(0));
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let sent = stats.sent.load(Relaxed) - sent0;
        let recv = stats.received.load(Relaxed) - recv0;
        let cpu = cfg
            .hub_pid
            .and_then(hubinfo::cpu_secs)
            .zip(cpu0)
            .map(|(b, a)| (b - a) / secs * 100.0);
        let own = hubinfo::cpu_secs(std::process::id())
            .zip(own0)
            .map(|(b, a)| (b - a) / secs * 100.0);
        let watched = hubinfo::cpu_between(&cfg.watch, &watched0, &hubinfo::cpu_all(&cfg.watch));
        let p = pcts(&shared.hists.lock().unwrap()[i]);
        let ack = ack_pcts(&shared.ack_hists.lock().unwrap()[i]);
        let achieved = sent as f64 / secs;
        let held = p.p99_ms <= cfg.stop_p99_ms && achieved >= rate * 0.95;
        eprintln!(
            "step {rate} msg/s: sent {achieved:.0}/s received {:.0}/s p50 {} ms p99 {} ms ack p99 {} ms hub cpu {}",
            recv as f64 / secs,
            p.p50_ms,
            p.p99_ms,
            ack["p99_ms"],
            cpu.map_or("?".into(), |c| format!("{c:.0}%"))
        );
        steps.push(json!({
            "target_msgs_per_sec": rate, "sent_per_sec": achieved.round(), "received_frames_per_sec": (recv as f64 / secs).round(),
            "p50_ms": p.p50_ms, "p90_ms": p.p90_ms, "p99_ms": p.p99_ms, "max_ms": p.max_ms, "samples": p.count,
            "hub_cpu_percent": cpu.map(|c| c.round()), "loadgen_cpu_percent": own.map(|c| c.round()), "held": held,
            "refused": shared.refused_total.load(Relaxed) - refused0,
            "ack_p50_ms": ack["p50_ms"], "ack_p90_ms": ack["p90_ms"], "ack_p99_ms": ack["p99_ms"], "ack_max_ms": ack["max_ms"],
            // The server's resident memory at the step's end: a long run shows whether it stays bounded.
            "hub_rss_kib": cfg.hub_pid.and_then(hubinfo::rss_kib),
        }));
        if cfg.uploads > 0 {
            let step = steps.last_mut().expect("just pushed");
            let bytes = shared.upload_bytes_done.load(Relaxed) - uploads0.1;
            step["uploads_done"] = json!(shared.uploads_done.load(Relaxed) - uploads0.0);
            step["uploads_failed"] = json!(shared.uploads_failed.load(Relaxed) - uploads0.2);
            step["upload_mb_per_sec"] = json!((bytes as f64 / secs / 1e5).round() / 10.0);
        }
        if !watched.is_empty() {
            let step = steps.last_mut().expect("just pushed");
            let per_msg = |c: f64| {
                if sent > 0 {
                    (c * 1e6 / sent as f64 * 10.0).round() / 10.0
                } else {
                    0.0
                }
            };
            step["procs_cpu_percent"] = watched
                .iter()
                .map(|(n, c)| (n.clone(), json!((c / secs * 1000.0).round() / 10.0)))
                .collect();
            step["procs_cpu_us_per_msg"] = watched.iter().map(|(n, c)| (n.clone(), json!(per_msg(*c)))).collect();
            step["cpu_us_per_msg"] = json!(per_msg(watched.iter().map(|(_, c)| c).sum()));
        }
        if held {
            highest_held = Some(rate);
        }
        if p.p99_ms > cfg.stop_p99_ms || achieved < rate * 0.5 {
            break;
        }
    }
    let traffic_secs = traffic_start.elapsed().as_secs_f64();
    shared.running.store(false, Relaxed);
    for u in uploaders {
        // An upload in flight is cut off: the steps are over.
        u.abort();
    }
    for w in writers {
        if let Ok(sink) = w.await {
            sinks_done.push(sink);
        }
    }

    // Drain: every acknowledged message should reach both sides.
    stats.set_phase("drain");
    // The peer's copy, and the sender's own where the target acknowledges.
    let copies = if cfg.acks { 2 } else { 1 };
    let expected = |sh: &Shared| -> u64 {
        sh.chats
            .iter()
            .map(|c| {
                copies * (c.sent[0].load(Relaxed) + c.sent[1].load(Relaxed) - c.refused.lock().unwrap().len() as u64)
            })
            .sum()
    };
    let drain = |sh: Arc<Shared>, secs: f64| async move {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < deadline && count_seen(&sh) < expected(&sh) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let mut archive_backlog_at_end = None;
    if !cfg.archive_check {
        if !cfg.bare {
            // Acknowledgements wait for the archive commit: let the store catch up first.
            stats.set_phase("archive drain");
            archive_backlog_at_end = Some(archive_settled(t, Duration::from_secs(120)).await.1);
        }
        drain(shared.clone(), cfg.drain_secs).await;
    }
    // Acknowledged: the sender received its own copy.
    let acked = |sh: &Shared| -> u64 {
        sh.chats
            .iter()
            .map(|c| {
                let seen = c.seen.lock().unwrap();
                seen[0]
                    .iter()
                    .chain(seen[3].iter())
                    .map(|w| w.count_ones() as u64)
                    .sum::<u64>()
            })
            .sum()
    };
    let mut figures = json!({
        "chats": cfg.chats, "agents": agents, "max_chats": cfg.max_chats, "message_bytes": cfg.msg_size, "steps": steps,
        "highest_rate_held": highest_held, "messages_sent": stats.sent.load(Relaxed), "acks": cfg.acks,
        "store_backend": store_backend,
    });
    if cfg.uploads > 0 {
        figures["uploads"] = json!(cfg.uploads);
        figures["upload_bytes"] = json!(cfg.upload_bytes);
        figures["uploads_done"] = json!(shared.uploads_done.load(Relaxed));
        figures["uploads_failed"] = json!(shared.uploads_failed.load(Relaxed));
    }
    if let Some(backlog) = archive_backlog_at_end {
        figures["archive_backlog_at_end"] = json!(backlog);
    }
    if let Some(every) = cfg.rss_every_secs {
        figures["rss_every_secs"] = json!(every);
        figures["rss_samples"] = rss_samples.iter().map(soak::Sample::json).collect();
        figures["rss_growth"] = soak::growth(&rss_samples).map_or(Value::Null, |g| g.json());
    }

    if cfg.archive_check {
        stats.set_phase("archive drain");
        let (backend, backlog) = archive_settled(t, Duration::from_secs(120)).await;
        if backend.is_some() {
            figures["store_backend"] = json!(backend);
        }
        let archived_secs = traffic_start.elapsed().as_secs_f64();
        // The hub acknowledges after the archive commit: copies arrive once the backlog is written.
        drain(shared.clone(), cfg.drain_secs).await;
        let acked = acked(&shared);
        figures["messages_acknowledged"] = json!(acked);
        figures["archive_backlog_at_end"] = json!(backlog);
        figures["archive_max_backlog_seen"] = json!(max_backlog);
        figures["offered_msgs_per_sec"] = json!((stats.sent.load(Relaxed) as f64 / traffic_secs).round());
        figures["archived_msgs_per_sec"] = json!((acked as f64 / archived_secs).round());
        figures["archive_drain_after_traffic_secs"] = json!(((archived_secs - traffic_secs) * 100.0).round() / 100.0);
        match stored_message_total(t).await {
            Ok((convs, msgs)) => {
                figures["store_conversations"] = json!(convs);
                figures["store_messages"] = json!(msgs);
                figures["archive_lost"] = json!(acked as i64 - msgs as i64);
                if msgs < acked {
                    stats.missing.fetch_add(acked - msgs, Relaxed);
                    stats.error("archive_lost");
                }
            }
            Err(e) => {
                stats.error("archive_count_failed");
                figures["archive_count_error"] = json!(e);
            }
        }
    }

    stats.set_phase("closing");
    for mut sink in sinks_done {
        let _ = sink.close().await;
    }
    for r in readers {
        r.abort();
    }
    figures["messages_acknowledged"] = json!(acked(&shared));
    let mut acks_all = new_hist();
    for h in shared.ack_hists.lock().unwrap().iter() {
        let _ = acks_all.add(h);
    }
    figures["ack_latency"] = ack_pcts(&acks_all);
    let missing = expected(&shared).saturating_sub(count_seen(&shared));
    // Acknowledgements wait for the archive commit: copies not seen while the store still
    // holds a backlog (a slow store) are pending, not lost; the store count above checks loss.
    let pending_in_backlog = figures["archive_backlog_at_end"].as_u64().unwrap_or(0);
    // (u64::MAX: the hub never answered /healthz, so nothing is known to be pending.)
    if pending_in_backlog > 0 && pending_in_backlog != u64::MAX && missing <= pending_in_backlog {
        figures["unacknowledged_still_in_archive_backlog"] = json!(missing);
    } else {
        stats.missing.fetch_add(missing, Relaxed);
    }
    let mut overall = new_hist();
    for h in shared.hists.lock().unwrap().iter() {
        let _ = overall.add(h);
    }
    Ok((figures, overall))
}

/// Signs in `agents` agents, has one customer per chat join, and returns the
/// customers' sockets and each agent's socket with the chats it was given.
async fn hub_setup(t: &Target, shared: &Arc<Shared>, cfg: &Relay, agents: usize) -> Result<Connections, String> {
    let stats = &shared.stats;
    stats.set_phase(format!("creating {agents} agents"));
    let tokens = setup::create_agents(t, agents, std::slice::from_ref(&cfg.category), cfg.max_chats).await?;
    stats.set_phase("agents online");
    let mut agent_ws = vec![];
    for (i, token) in tokens.iter().enumerate() {
        agent_ws.push(setup::agent_online(t, i, token, stats).await?);
    }
    stats.set_phase(format!("{} customers join", cfg.chats));
    let mut customers = vec![];
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut joins = vec![];
    for k in 0..cfg.chats {
        let (t, sh, sem, category) = (t.clone(), shared.clone(), sem.clone(), cfg.category.clone());
        joins.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            customer_join(&t, &sh, k, &category).await
        }));
    }
    for j in joins {
        match j.await.map_err(|e| e.to_string())? {
            Ok(ws) => customers.push(ws),
            Err(e) => return Err(e),
        }
    }

    // Agents learn their chats from the chat_started frames waiting in their sockets.
    stats.set_phase("agents learn chats");
    let mut agent_parts = vec![];
    let mut learned = 0;
    for (i, mut ws) in agent_ws.into_iter().enumerate() {
        let mut mine = vec![];
        let deadline = Instant::now() + Duration::from_secs(30);
        let quota = (cfg.max_chats as usize).min(cfg.chats - learned);
        while mine.len() < quota {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    if let Some(f) = proto::parse(&text)
                        && f.kind == "chat_started"
                        && let Some(k) = f
                            .chat_id
                            .as_deref()
                            .and_then(|c| shared.by_wire.lock().unwrap().get(c).copied())
                    {
                        mine.push(k);
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        if mine.is_empty() {
            return Err(format!("agent {i} was given no chat"));
        }
        learned += mine.len();
        agent_parts.push((ws, mine));
    }
    let assigned: usize = agent_parts.iter().map(|(_, m)| m.len()).sum();
    if assigned != cfg.chats {
        return Err(format!("agents hold {assigned} chats, expected {}", cfg.chats));
    }
    Ok((customers, agent_parts))
}

/// Connects to a bare relay (`loadgen bare-relay`, or the Node ws relay) in the same
/// shape: one customer per chat, agents holding `max_chats` chats each, chat ids
/// `floor-<k>`. Each connection says `hello <side> <chats>` and waits for the relay's
/// `{"type":"ready"}`, so no message goes out before its peer is known to the relay.
async fn bare_setup(t: &Target, shared: &Arc<Shared>, cfg: &Relay, agents: usize) -> Result<Connections, String> {
    let stats = &shared.stats;
    let per_agent = cfg.max_chats as usize;
    for (k, chat) in shared.chats.iter().enumerate() {
        let wire = format!("floor-{k}");
        shared.by_wire.lock().unwrap().insert(wire.clone(), k);
        let _ = chat.wire_id.set(wire);
    }
    let hello = |side: usize, mine: &[usize]| {
        let ids: Vec<String> = mine.iter().map(|k| format!("floor-{k}")).collect();
        format!("hello {side} {}", ids.join(","))
    };
    let open = |i: usize, text: String| async move {
        let mut ws = stats
            .counted(wsconn::connect(t.hub, t.source(i), "/", None, wsconn::READ_BUFFER).await)
            .map_err(|(code, detail)| format!("bare relay: {code} {detail}"))?;
        ws.send(Message::text(text)).await.map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(ready)))) if ready.as_str() == READY => Ok::<Ws, String>(ws),
            other => Err(format!("bare relay: no ready after hello: {other:?}")),
        }
    };
    stats.set_phase(format!(
        "{agents} agents and {} customers connect to the bare relay",
        cfg.chats
    ));
    let mut agent_parts = vec![];
    for a in 0..agents {
        let mine: Vec<usize> = (a * per_agent..((a + 1) * per_agent).min(cfg.chats)).collect();
        agent_parts.push((open(cfg.chats + a, hello(1, &mine)).await?, mine));
    }
    let mut customers = vec![];
    for k in 0..cfg.chats {
        customers.push(open(k, hello(0, &[k])).await?);
    }
    Ok((customers, agent_parts))
}

/// Acknowledgement percentiles of one histogram as JSON; nulls when there were none
/// (a relay that acknowledges nothing), so the report shows a dash, not a zero.
fn ack_pcts(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({ "count": 0, "p50_ms": null, "p90_ms": null, "p99_ms": null, "max_ms": null });
    }
    let p = pcts(h);
    json!({ "count": p.count, "p50_ms": p.p50_ms, "p90_ms": p.p90_ms, "p99_ms": p.p99_ms, "max_ms": p.max_ms })
}

/// Polls `/healthz` until the archive backlog is 0 or `wait` passes; the store's name and
/// the last backlog seen (`u64::MAX` when the hub never answered).
async fn archive_settled(t: &Target, wait: Duration) -> (Option<String>, u64) {
    let deadline = Instant::now() + wait;
    let (mut backend, mut backlog) = (None, u64::MAX);
    while Instant::now() < deadline {
        if let Ok(h) = hubinfo::health(t.hub).await {
            backend = h["store"].as_str().map(str::to_string);
            backlog = h["archive_backlog"].as_u64().unwrap_or(u64::MAX);
            if backlog == 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (backend, backlog)
}

fn count_seen(sh: &Shared) -> u64 {
    sh.chats
        .iter()
        .map(|c| {
            c.seen
                .lock()
                .unwrap()
                .iter()
                .flatten()
                .map(|w| w.count_ones() as u64)
                .sum::<u64>()
        })
        .sum()
}

/// Sums message_count over every archived conversation (admin API, pages of 200).
async fn stored_message_total(t: &Target) -> Result<(u64, u64), String> {
    let admin = crate::http::login(t.hub, &t.admin_user, &t.admin_password).await?;
    let (mut offset, mut convs, mut msgs) = (0u64, 0u64, 0u64);
    loop {
        let path = format!("/api/conversations?limit=200&offset={offset}");
        let (status, page) = crate::http::request(t.hub, "GET", &path, Some(&admin), None).await?;
        if status != 200 {
            return Err(format!("{path}: HTTP {status} {page}"));
        }
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for c in &items {
            convs += 1;
            msgs += c["message_count"].as_u64().unwrap_or(0);
        }
        offset += items.len() as u64;
        if items.is_empty() || offset >= page["total"].as_u64().unwrap_or(0) {
            return Ok((convs, msgs));
        }
    }
}

/// Connects customer `k`, joins and waits for its chat to start.
async fn customer_join(t: &Target, sh: &Shared, k: usize, category: &str) -> Result<Ws, String> {
    let s = &sh.stats;
    let connecting = wsconn::connect(
        t.customer_hub(k),
        t.source(k),
        "/ws/customer",
        None,
        wsconn::READ_BUFFER,
    );
    let mut ws = s
        .counted(connecting.await)
        .map_err(|(code, detail)| format!("customer {k}: {code} {detail}"))?;
    ws.send(Message::text(proto::join(&format!("c{k}"), category)))
        .await
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let Some(f) = proto::parse(&text) else { continue };
                if f.kind == "welcome" {
                    if let Some(token) = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|w| w["resume_token"].as_str().map(str::to_string))
                    {
                        let _ = sh.chats[k].resume_token.set(token);
                    }
                    continue;
                }
                if f.kind == "chat_started" {
                    let wire = f.chat_id.as_deref().unwrap_or_default().to_string();
                    sh.by_wire.lock().unwrap().insert(wire.clone(), k);
                    let _ = sh.chats[k].wire_id.set(wire);
                    return Ok(ws);
                }
                if f.kind == "error" {
                    return Err(format!("customer {k}: {text}"));
                }
            }
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("customer {k}: no chat_started: {other:?}")),
        }
    }
}

async fn reader(sh: Arc<Shared>, mut stream: Stream, receiver: usize, mine: Vec<usize>) {
    let s = &sh.stats;
    while let Some(m) = stream.next().await {
        match m {
            Ok(Message::Text(text)) => {
                s.received.fetch_add(1, Relaxed);
                let Some(f) = proto::parse(&text) else {
                    s.error("unparsable_frame");
                    continue;
                };
                match f.kind.as_ref() {
                    kind @ ("message" | "ack") => {
                        let own = if receiver == 0 {
                            Some(mine[0])
                        } else {
                            f.chat_id
                                .as_deref()
                                .and_then(|c| sh.by_wire.lock().unwrap().get(c).copied())
                                .filter(|k| mine.contains(k))
                        };
                        sh.on_message(receiver, own, &f, kind == "ack");
                    }
                    "error" => sh.on_error(&f),
                    // An agent hears each conversation's status as it is paired (`conversation_status`).
                    "queue_stats" | "profile" | "pong" | "conversation_status" => {}
                    // Peers closing at the end are expected.
                    _ if !sh.running.load(Relaxed) => {}
                    other => s.error(&format!("unexpected_{other}")),
                }
            }
            Ok(Message::Close(frame)) => {
                if sh.running.load(Relaxed) {
                    s.error(&format!("closed_{}", frame.map_or(1005, |f| u16::from(f.code))));
                }
                return;
            }
            Ok(_) => {}
            Err(_) => {
                if sh.running.load(Relaxed) {
                    s.error("connection_lost");
                }
                return;
            }
        }
    }
}

/// Sends this connection's share of the current step's rate until stopped;
/// `side` 0 = customer (one chat), 1 = agent (its chats in turn).
async fn writer(sh: Arc<Shared>, mut sink: Sink, side: usize, mine: Vec<usize>, phase: f64) -> Sink {
    let s = &sh.stats;
    let mut step = usize::MAX;
    let mut sent_in_step = 0u64;
    let mut turn = 0usize;
    let wires: Vec<String> = mine
        .iter()
        .map(|&k| sh.chats[k].wire_id.get().cloned().unwrap_or_default())
        .collect();
    let mut step_start = 0;
    while sh.running.load(Relaxed) {
        let now_step = sh.step.load(Relaxed);
        let now_start = sh.step_started_us.load(Relaxed);
        if now_step != step || now_start != step_start {
            step = now_step;
            step_start = now_start;
            sent_in_step = 0;
        }
        // Each chat's rate is shared equally by its two sides.
        let rate = sh.per_chat_rate[step] / 2.0 * mine.len() as f64;
        let elapsed = (s.now_us().saturating_sub(sh.step_started_us.load(Relaxed))) as f64 / 1e6;
        let due = (elapsed * rate + phase).floor() as u64;
        let mut batch = 0;
        while sent_in_step < due && batch < 256 {
            let slot = turn % mine.len();
            turn += 1;
            let k = mine[slot];
            let n = sh.chats[k].sent[side].fetch_add(1, Relaxed);
            let client_id = format!("{k}.{side}.{n}.{}", s.now_us());
            let chat_id = (side == 1 || sh.bare).then(|| wires[slot].as_str());
            if sink
                .feed(Message::text(proto::message(chat_id, &sh.text, &client_id)))
                .await
                .is_err()
            {
                s.error("send_failed");
                return sink;
            }
            s.sent.fetch_add(1, Relaxed);
            sent_in_step += 1;
            batch += 1;
        }
        if batch > 0 && sink.flush().await.is_err() {
            s.error("send_failed");
            return sink;
        }
        if sent_in_step >= due {
            // Sleep until the next message is due (at least the send tick, at most 100 ms).
            let next = ((sent_in_step + 1) as f64 - phase) / rate.max(1e-9);
            let wait = (next - elapsed).clamp(sh.send_tick, 0.1_f64.max(sh.send_tick));
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    sink
}

/// One of `of` uploaders: uploads `bytes`-long files back to back while the steps run,
/// each to the next of its chats (`j`, `j + of`, …: a chat's files count against its
/// conversation's quota, which the bench's hub raises). Each file's first line differs, so
/// the hub keeps every one (a blob is named by its bytes' hash).
async fn uploader(t: Target, sh: Arc<Shared>, j: usize, of: usize, bytes: usize) {
    let mut body = vec![b'u'; bytes.max(32)];
    for (i, b) in body.iter_mut().enumerate().skip(31).step_by(64) {
        *b = if i % 128 == 31 { b'\n' } else { b'u' };
    }
    let chats = sh.chats.len().max(1);
    let mut n = 0u64;
    while sh.running.load(Relaxed) {
        let k = (j + n as usize * of) % chats;
        let stamp = format!("{j:08}-{n:020}\n");
        body[..stamp.len()].copy_from_slice(stamp.as_bytes());
        n += 1;
        let (Some(chat), Some(token)) = (sh.chats[k].wire_id.get(), sh.chats[k].resume_token.get()) else {
            sh.uploads_failed.fetch_add(1, Relaxed);
            sh.stats.error("upload_no_token");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let path = format!("/api/attachments?conversation={chat}&name=bench-{j}-{n}.txt");
        match crate::http::upload(t.customer_hub(k), &path, &[("X-Customer-Token", token)], &body).await {
            Ok((201, _)) => {
                sh.uploads_done.fetch_add(1, Relaxed);
                sh.upload_bytes_done.fetch_add(body.len() as u64, Relaxed);
            }
            Ok((status, answer)) => {
                sh.uploads_failed.fetch_add(1, Relaxed);
                sh.stats
                    .error(&format!("upload_{status}_{}", answer["code"].as_str().unwrap_or("?")));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => {
                sh.uploads_failed.fetch_add(1, Relaxed);
                sh.stats.error("upload_failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
