//! The attachments' settings: how large a file, a conversation's files and a day's files
//! may be, and how fast uploads are read (`ATTACHMENT_*`).

use super::{ConfigError, Reader};

/// `ATTACHMENT_*` settings.
#[derive(Debug, Clone)]
pub struct AttachmentSettings {
    /// `ATTACHMENT_MAX_BYTES`: the largest file one upload may bring (default 10 MB).
    pub max_bytes: u64,
    /// `ATTACHMENT_CONVERSATION_MAX_BYTES`: the files of one conversation together
    /// (default 100 MB).
    pub conversation_max_bytes: u64,
    /// `ATTACHMENT_DAY_MAX_BYTES`: the files the whole desk takes in one UTC day
    /// together (default 5 GB).
    pub day_max_bytes: u64,
    /// `ATTACHMENT_UPLOAD_MB_PER_SEC`: megabytes (MiB) a second all uploads together are
    /// read at, at most, so many at once cannot take the relay's CPU (default 32; 0: no cap).
    pub upload_mb_per_sec: u32,
}

impl AttachmentSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            max_bytes: r.ranged("ATTACHMENT_MAX_BYTES", 10 << 20, 1..=1 << 30)?,
            conversation_max_bytes: r.ranged("ATTACHMENT_CONVERSATION_MAX_BYTES", 100 << 20, 1..=1 << 40)?,
            day_max_bytes: r.ranged("ATTACHMENT_DAY_MAX_BYTES", 5 << 30, 1..=1 << 50)?,
            upload_mb_per_sec: r.ranged("ATTACHMENT_UPLOAD_MB_PER_SEC", 32, 0..=100_000)?,
        })
    }
}
