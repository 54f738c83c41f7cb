//! The store's settings: which store holds durable data, where, and how long a read
//! someone waits on may take.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Reader, StoreMode, without_credentials};

/// `STORE`, `DATA_DIR`, `MONGODB_URI`, `MONGODB_DB`, `EMBEDDED_CACHE_MB` and
/// `STORE_READ_TIMEOUT_MS`.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub mode: StoreMode,
    pub data_dir: PathBuf,
    pub mongodb_uri: Option<String>,
    pub mongodb_db: String,
    /// redb's page cache for the embedded store, in bytes (`EMBEDDED_CACHE_MB`).
    pub embedded_cache_bytes: usize,
    /// `STORE_READ_TIMEOUT_MS`: a store read someone waits on (an HTTP request, a frame)
    /// answering later than this is given up as `Unavailable` (a frozen MongoDB holds a
    /// read on its open connection without end), so the request answers 503.
    pub read_timeout: Duration,
}

impl StoreSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        let store = Self {
            mode: r.store_mode("STORE")?,
            data_dir: PathBuf::from(r.text("DATA_DIR", "./data")),
            mongodb_uri: r.optional("MONGODB_URI"),
            mongodb_db: r.text("MONGODB_DB", "switchboard"),
            embedded_cache_bytes: r.ranged::<usize>("EMBEDDED_CACHE_MB", 8, 1..=65_536)? << 20,
            read_timeout: Duration::from_millis(r.ranged("STORE_READ_TIMEOUT_MS", 5_000, 100..=600_000)?),
        };
        // Parsed now, without connecting, so a malformed URI stops start-up (and
        // `check-config`) instead of being retried as if the server were down.
        if let Some(uri) = &store.mongodb_uri
            && let Err(e) = mongodb::options::ConnectionString::parse(uri)
        {
            return Err(ConfigError {
                var: "MONGODB_URI",
                value: without_credentials(uri),
                reason: format!("not a MongoDB connection string: {e}"),
            });
        }
        if store.mode == StoreMode::MongoDb && store.mongodb_uri.is_none() {
            return Err(ConfigError {
                var: "MONGODB_URI",
                value: String::new(),
                reason: "STORE=mongodb needs MONGODB_URI".into(),
            });
        }
        Ok(store)
    }
}
