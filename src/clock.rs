//! The one time format on the wire and in the archive: milliseconds since the Unix
//! epoch. A module of its own so that the archive and sessions, which the hub uses,
//! can read the clock without importing the hub.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
