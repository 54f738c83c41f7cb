//! The archive writer's settings: what it holds while the store is away, how it batches,
//! and when a write is slow or failed.

use std::time::Duration;

use super::{ConfigError, Reader};

/// `ARCHIVE_*` and `READY_MAX_BACKLOG`.
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    /// Archive events held in memory while the store is unreachable.
    pub buffer: usize,
    /// `/readyz` answers 503 while more archive events than this wait to be written.
    pub ready_max_backlog: usize,
    /// An archive write taking longer than this shows the hub as "slow".
    pub slow_write: Duration,
    /// `ARCHIVE_WRITE_TIMEOUT_MS`: a store write taking longer than this counts as failed
    /// (a hung database shows as degraded and the writer retries or spools).
    pub write_timeout: Duration,
    /// `ARCHIVE_GROUP_COMMIT_MS`: the least time between the starts of two archive writes.
    pub group_commit: Duration,
}

impl ArchiveSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        let millis = |var: &'static str, default: u64, range| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(r.ranged(var, default, range)?))
        };
        Ok(Self {
            buffer: r.ranged("ARCHIVE_BUFFER", 100_000, 100..=10_000_000)?,
            ready_max_backlog: r.ranged("READY_MAX_BACKLOG", 1_000, 0..=10_000_000)?,
            slow_write: millis("ARCHIVE_SLOW_WRITE_MS", 1_000, 1..=600_000)?,
            write_timeout: millis("ARCHIVE_WRITE_TIMEOUT_MS", 15_000, 100..=600_000)?,
            group_commit: millis("ARCHIVE_GROUP_COMMIT_MS", 2, 0..=50)?,
        })
    }
}
