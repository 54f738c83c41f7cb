//! The uploads scenario's part of the benchmark report: the relay's latency at 100 chats
//! with 20 files of 10 MB uploading at every moment, beside the same hub's relay without
//! uploads in the same run. The promise it checks: a slow or large upload never delays
//! other conversations' messages.

use serde_json::Value;

use crate::cluster_report::Row;
use crate::stats::RunResult;

/// The result files of the uploads scenario.
pub const NAMES: [&str; 2] = ["uploads-off", "uploads-on"];

/// The rate the verdict reads the delivery p99 at.
const RATE: f64 = 10_000.0;
/// The relay's p99 bound, and how far above the run without uploads it may be.
const P99_MS: f64 = 10.0;
const SLACK_MS: f64 = 2.0;

fn step(r: &RunResult, rate: f64) -> Option<&Value> {
    r.figures["steps"]
        .as_array()?
        .iter()
        .find(|s| s["target_msgs_per_sec"].as_f64() == Some(rate))
}

fn ms(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |ms| format!("{ms:.2}"))
}

/// One cell: delivery p99 / acknowledgement p99 ms, the hub's CPU.
fn cell(s: Option<&Value>) -> String {
    s.map_or("—".into(), |s| {
        format!(
            "{} / {} ms, {} %",
            ms(&s["p99_ms"]),
            ms(&s["ack_p99_ms"]),
            s["hub_cpu_percent"].as_f64().map_or("?".into(), |c| format!("{c:.0}"))
        )
    })
}

/// The target row and the section, when both runs are there.
pub fn build<'r>(get: &dyn Fn(&str) -> Option<&'r RunResult>) -> (Vec<Row>, String) {
    let (Some(off), Some(on)) = (get("uploads-off"), get("uploads-on")) else {
        return (vec![], String::new());
    };
    let p99 = |r: &RunResult| step(r, RATE).and_then(|s| s["p99_ms"].as_f64());
    let (without, with) = (p99(off), p99(on));
    let uploads = on.figures["uploads"].as_u64().unwrap_or(0);
    let mb = on.figures["upload_bytes"].as_u64().unwrap_or(0) as f64 / 1e6;
    let at = step(on, RATE);
    let row = (
        format!("relay while {uploads} files of {mb:.0} MB upload, 100 chats (default store)"),
        format!("delivery p99 at 10k msg/s ≤ {P99_MS} ms and within {SLACK_MS} ms of the same run without uploads"),
        format!(
            "{} ms with, {} ms without; {} uploads answered in the step ({} MB/s), {} failed",
            with.map_or("—".into(), |p| format!("{p:.2}")),
            without.map_or("—".into(), |p| format!("{p:.2}")),
            at.and_then(|s| s["uploads_done"].as_u64()).unwrap_or(0),
            at.and_then(|s| s["upload_mb_per_sec"].as_f64()).unwrap_or(0.0),
            at.and_then(|s| s["uploads_failed"].as_u64()).unwrap_or(0),
        ),
        match (with, without) {
            (Some(w), Some(o)) if w <= P99_MS && w <= o + SLACK_MS => "meets",
            (Some(_), Some(_)) => "**falls short**",
            // The run with uploads stopped below the rate (it sent less than half of a step).
            (None, Some(_)) => "**falls short**",
            _ => "not measured",
        },
    );
    let mut md = format!(
        "\n## Relay while files upload: 100 chats, one per agent, 100-byte messages, both sides sending\n\n\
         The default hub pinned to CPU 0, the loadgen on CPU 1, run twice in one sitting: without uploads, \
         and with {uploads} files of {mb:.0} MB uploading over HTTP at every moment (each uploader starts its next file \
         as one is answered; every file different, so each is written and synced). Each cell: delivery p99 / \
         acknowledgement p99, the hub's CPU.\n\n\
         | target msg/s | without uploads | with uploads | uploads answered in the step (failed), MB/s |\n| --- | --- | --- | --- |\n"
    );
    let rates: Vec<f64> = on.figures["steps"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["target_msgs_per_sec"].as_f64()).collect())
        .unwrap_or_default();
    for rate in rates {
        let s = step(on, rate);
        md.push_str(&format!(
            "| {rate:.0} | {} | {} | {} ({}), {} |\n",
            cell(step(off, rate)),
            cell(s),
            s.and_then(|s| s["uploads_done"].as_u64()).unwrap_or(0),
            s.and_then(|s| s["uploads_failed"].as_u64()).unwrap_or(0),
            s.and_then(|s| s["upload_mb_per_sec"].as_f64()).unwrap_or(0.0),
        ));
    }
    (vec![row], md)
}
