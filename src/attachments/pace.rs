//! The pace of all uploads together: at most `ATTACHMENT_UPLOAD_MB_PER_SEC` megabytes a
//! second are read from their sockets, whatever their number (0: no cap).
//!
//! Why: reading, hashing and writing an upload's bytes costs CPU the relay needs. The
//! intake's threads run below the relay's priority, but the runtime's own threads still read
//! every byte from the socket, and 20 uploads of 10 MB at 160 MB/s kept a one-core hub at
//! 97–99 % with the delivery p99 at 14 ms instead of 2 (bench/README.md, "Uploads beside
//! the relay"). A cap well above what one person's connection uploads (32 MB/s by default,
//! 256 Mbit/s) leaves single uploads as fast as before and bounds what many at once take.
//! An upload waiting for its turn reads nothing more: the socket's buffers, then the
//! client's TCP window, hold the rest.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Bytes a cell of the limiter stands for: a piece of 256 KiB is 256 cells.
const CELL_BYTES: usize = 1 << 10;

/// A burst of 1 MiB passes at once: a screenshot never waits for its pace.
const BURST_CELLS: u32 = 1 << 10;

/// The uploads' shared pace. Cheap to clone.
#[derive(Clone, Default)]
pub struct UploadPace {
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

impl UploadPace {
    /// `mb_per_sec` megabytes (MiB) a second for all uploads together; 0 is no cap.
    pub fn new(mb_per_sec: u32) -> Self {
        let limiter = NonZeroU32::new(mb_per_sec.saturating_mul(1024)).map(|cells| {
            let burst = NonZeroU32::new(BURST_CELLS.max(cells.get() / 10)).unwrap_or(cells);
            Arc::new(RateLimiter::direct(Quota::per_second(cells).allow_burst(burst)))
        });
        Self { limiter }
    }

    /// Waits until `bytes` more may be read (at once with no cap).
    pub async fn take(&self, bytes: usize) {
        let Some(limiter) = &self.limiter else { return };
        let mut cells = bytes.div_ceil(CELL_BYTES);
        // More than a burst is taken a burst at a time (governor refuses more at once).
        while cells > 0 {
            let now = cells.min(BURST_CELLS as usize);
            let n = NonZeroU32::new(now as u32).expect("at least one cell");
            // `until_n_ready` fails only for more cells than the burst, which `now` never is.
            let _ = limiter.until_n_ready(n).await;
            cells -= now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Lower bounds only: a pace is a least wait, and a busy machine only adds to it.
    #[tokio::test]
    async fn no_cap_lets_everything_through_and_a_cap_holds_what_passes_the_burst() {
        UploadPace::new(0).take(1 << 30).await;
        // 1 MiB a second with a 1 MiB burst: after the burst, 256 KiB more wait ~250 ms.
        let paced = UploadPace::new(1);
        paced.take(1 << 20).await;
        let start = Instant::now();
        paced.take(256 << 10).await;
        assert!(start.elapsed() >= Duration::from_millis(200), "{:?}", start.elapsed());
    }
}
