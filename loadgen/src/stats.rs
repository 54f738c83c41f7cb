//! Counters shared by every task of one loadgen process, the once-a-second
//! progress line, and the JSON result (with Markdown rendering) a run produces.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Live counters; every task holds an `Arc` of the one instance.
pub struct Stats {
    pub started: Instant,
    pub conns_ok: AtomicU64,
    pub conns_failed: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub wrong_recipient: AtomicU64,
    pub duplicates: AtomicU64,
    pub missing: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub phase: Mutex<String>,
    pub done: AtomicBool,
}

impl Stats {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            conns_ok: AtomicU64::new(0),
            conns_failed: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            wrong_recipient: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            missing: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            phase: Mutex::new("start".into()),
            done: AtomicBool::new(false),
        }
    }

    /// Microseconds since this process started: the clock messages carry.
    pub fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    pub fn error(&self, code: &str) {
        *self.errors.lock().unwrap().entry(code.to_string()).or_default() += 1;
    }

    /// Counts a connection attempt (`wsconn::connect`'s answer): `conns_ok`, or
    /// `conns_failed` and its error code. The answer, as it was.
    pub fn counted<T>(&self, attempt: Result<T, (String, String)>) -> Result<T, (String, String)> {
        match &attempt {
            Ok(_) => self.conns_ok.fetch_add(1, Relaxed),
            Err((code, _)) => {
                self.error(code);
                self.conns_failed.fetch_add(1, Relaxed)
            }
        };
        attempt
    }

    pub fn set_phase(&self, phase: impl Into<String>) {
        let phase = phase.into();
        eprintln!("[{:6.1}s] -- {phase}", self.started.elapsed().as_secs_f64());
        *self.phase.lock().unwrap() = phase;
    }

    /// Prints one progress line per second on stderr until `done` is set.
    pub fn spawn_progress(self: &std::sync::Arc<Self>, label: String) {
        let s = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let (mut last_sent, mut last_recv) = (0, 0);
            while !s.done.load(Relaxed) {
                tick.tick().await;
                let (sent, recv) = (s.sent.load(Relaxed), s.received.load(Relaxed));
                let errors: u64 = s.errors.lock().unwrap().values().sum();
                eprintln!(
                    "[{:6.1}s] {label} {:<18} conns {} (failed {}) sent {} ({}/s) recv {} ({}/s) errors {} wrong {} dup {}",
                    s.started.elapsed().as_secs_f64(),
                    s.phase.lock().unwrap(),
                    s.conns_ok.load(Relaxed),
                    s.conns_failed.load(Relaxed),
                    sent,
                    sent - last_sent,
                    recv,
                    recv - last_recv,
                    errors,
                    s.wrong_recipient.load(Relaxed),
                    s.duplicates.load(Relaxed),
                );
                (last_sent, last_recv) = (sent, recv);
            }
        });
    }
}

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pcts {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub fn pcts(h: &Histogram<u64>) -> Pcts {
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    Pcts {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// What one run (one scenario, one process or merged shards) found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunResult {
    pub scenario: String,
    pub shard: String,
    pub duration_secs: f64,
    pub connections_ok: u64,
    pub connections_failed: u64,
    pub sent: u64,
    pub received: u64,
    pub errors: BTreeMap<String, u64>,
    pub wrong_recipient: u64,
    pub duplicates: u64,
    pub missing: u64,
    /// Send → receipt by the other party (messages) or join → both told (routing).
    pub latency: Option<Pcts>,
    /// Scenario-specific figures (steps, memory, rates).
    pub figures: Value,
    pub notes: Vec<String>,
    /// The latency histogram as (µs, count) pairs, for merging shards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub histogram: Vec<(u64, u64)>,
}

impl RunResult {
    pub fn from_stats(scenario: &str, shard: &str, s: &Stats, hist: Option<&Histogram<u64>>, figures: Value) -> Self {
        Self {
            scenario: scenario.into(),
            shard: shard.into(),
            duration_secs: (s.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            connections_ok: s.conns_ok.load(Relaxed),
            connections_failed: s.conns_failed.load(Relaxed),
            sent: s.sent.load(Relaxed),
            received: s.received.load(Relaxed),
            errors: s.errors.lock().unwrap().clone(),
            wrong_recipient: s.wrong_recipient.load(Relaxed),
            duplicates: s.duplicates.load(Relaxed),
            missing: s.missing.load(Relaxed),
            latency: hist.filter(|h| !h.is_empty()).map(pcts),
            figures,
            notes: vec![],
            histogram: hist
                .map(|h| {
                    h.iter_recorded()
                        .map(|v| (v.value_iterated_to(), v.count_at_value()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Did the loadgen see anything wrong with delivery?
    pub fn integrity_ok(&self) -> bool {
        self.wrong_recipient == 0 && self.duplicates == 0 && self.missing == 0
    }

    /// Sums the counters of shards (figures are the caller's to merge).
    pub fn merge(parts: &[RunResult], scenario: &str) -> RunResult {
        let mut out = RunResult {
            scenario: scenario.into(),
            shard: format!("merged {}", parts.len()),
            ..Default::default()
        };
        let mut h = new_hist();
        for p in parts {
            out.duration_secs = out.duration_secs.max(p.duration_secs);
            out.connections_ok += p.connections_ok;
            out.connections_failed += p.connections_failed;
            out.sent += p.sent;
            out.received += p.received;
            out.wrong_recipient += p.wrong_recipient;
            out.duplicates += p.duplicates;
            out.missing += p.missing;
            for (k, v) in &p.errors {
                *out.errors.entry(k.clone()).or_default() += v;
            }
            for &(v, c) in &p.histogram {
                let _ = h.record_n(v, c);
            }
            out.notes.extend(p.notes.iter().cloned());
        }
        if !h.is_empty() {
            out.latency = Some(pcts(&h));
        }
        out
    }

    /// A Markdown table of the generic counters, then the figures.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "### {} ({})\n\n| figure | value |\n| --- | --- |\n",
            self.scenario, self.shard
        );
        let mut row = |k: &str, v: String| md.push_str(&format!("| {k} | {v} |\n"));
        row("duration", format!("{:.1} s", self.duration_secs));
        row(
            "connections made / failed",
            format!("{} / {}", self.connections_ok, self.connections_failed),
        );
        row("frames sent / received", format!("{} / {}", self.sent, self.received));
        if let Some(l) = &self.latency {
            row(
                "latency p50 / p90 / p99 / p99.9 / max",
                format!(
                    "{} / {} / {} / {} / {} ms ({} samples)",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
                ),
            );
        }
        row(
            "wrong recipient / duplicate / missing",
            format!("{} / {} / {}", self.wrong_recipient, self.duplicates, self.missing),
        );
        let errors = if self.errors.is_empty() {
            "none".to_string()
        } else {
            self.errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        row("errors by code", errors);
        if let Value::Object(map) = &self.figures {
            for (k, v) in map {
                if !v.is_array() && !v.is_object() {
                    row(k, v.to_string());
                }
            }
        }
        for note in &self.notes {
            md.push_str(&format!("\n- {note}"));
        }
        md.push('\n');
        md
    }
}
