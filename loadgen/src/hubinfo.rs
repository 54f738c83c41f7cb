//! What the loadgen reads about the hub process from /proc (resident memory,
//! CPU time) and over HTTP (/healthz archive backlog).

use std::net::SocketAddr;

use serde_json::Value;

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// utime + stime of a process, in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks() as f64)
}

/// The processes whose CPU a scenario reports: `name=pid` entries, or else the hub alone.
pub fn watch_list(entries: &[String], hub_pid: Option<u32>) -> Result<Vec<(String, u32)>, String> {
    if entries.is_empty() {
        return Ok(hub_pid.map(|p| ("hub".to_string(), p)).into_iter().collect());
    }
    entries
        .iter()
        .map(|e| {
            let (name, pid) = e
                .split_once('=')
                .ok_or_else(|| format!("--watch-pids: {e:?} is not name=pid"))?;
            let pid = pid
                .parse()
                .map_err(|_| format!("--watch-pids: {e:?} has no numeric pid"))?;
            Ok((name.to_string(), pid))
        })
        .collect()
}

/// CPU seconds of each watched process now (None for one that is gone).
pub fn cpu_all(watch: &[(String, u32)]) -> Vec<Option<f64>> {
    watch.iter().map(|(_, pid)| cpu_secs(*pid)).collect()
}

/// Each watched process's CPU seconds between two `cpu_all` readings, by name.
pub fn cpu_between(watch: &[(String, u32)], before: &[Option<f64>], after: &[Option<f64>]) -> Vec<(String, f64)> {
    watch
        .iter()
        .zip(before.iter().zip(after))
        .filter_map(|((name, _), (b, a))| Some((name.clone(), (*a)? - (*b)?)))
        .collect()
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// The hub's /healthz document.
pub async fn health(hub: SocketAddr) -> Result<Value, String> {
    let (status, json) = crate::http::request(hub, "GET", "/healthz", None, None).await?;
    if status == 200 {
        Ok(json)
    } else {
        Err(format!("healthz HTTP {status}"))
    }
}
