//! The cluster's settings: several nodes through one Redis, each with its own name and
//! lease.

use std::time::Duration;

use super::{ConfigError, Reader};

/// `REDIS_URL`, `NODE_ID`, `CLUSTER_LEASE_MS` and `CLUSTER_RENEW_MS`.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `REDIS_URL`: unset, the hub is one process as always; set, this node joins the
    /// cluster that shares this Redis (and one MongoDB).
    pub redis_url: Option<String>,
    /// `NODE_ID`: this node's name in the cluster. Default: `<hostname>-<pid>-<random>`,
    /// unique per process, because a restarted node must not take over a dead one's name
    /// (the dead incarnation's people must still be handed over by the reaper).
    pub node_id: String,
    /// `CLUSTER_LEASE_MS`: how long a node counts as alive after its last lease renewal.
    pub lease: Duration,
    /// `CLUSTER_RENEW_MS`: how often a node renews its lease (at most half the lease).
    pub renew: Duration,
}

impl ClusterSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            redis_url: r.optional("REDIS_URL"),
            node_id: node_id(r, "NODE_ID")?,
            lease: Duration::from_millis(r.ranged("CLUSTER_LEASE_MS", 5_000, 1_000..=600_000)?),
            renew: Duration::from_millis(r.ranged("CLUSTER_RENEW_MS", 1_000, 100..=300_000)?),
        })
    }
}

/// A node id: 1 to 64 of `A-Z a-z 0-9 . _ -` (it names Redis hash fields and log lines).
fn node_id(r: &Reader<'_>, var: &'static str) -> Result<String, ConfigError> {
    let Some(value) = r.optional(var) else {
        return Ok(default_node_id());
    };
    let ok = value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !ok {
        return Err(Reader::error(
            var,
            &value,
            "must be 1 to 64 of the characters A-Z a-z 0-9 . _ -",
        ));
    }
    Ok(value)
}

/// `<hostname>-<pid>-<6 random hex digits>`: readable in logs, unique per process.
fn default_node_id() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or fails.
    let named = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let host: String = if named {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end])
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .take(40)
            .collect()
    } else {
        String::new()
    };
    let host = if host.is_empty() { "node".to_string() } else { host };
    format!(
        "{host}-{}-{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}
