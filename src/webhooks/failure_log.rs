//! How failed webhook attempts reach the server's log: each endpoint's first failure is
//! logged at once, then at most one line per [`QUIET`] for that endpoint, saying how many
//! failures it passed over. An endpoint that is down fails every delivery queued for it,
//! each retried with backoff for a day; a line for each would bury the rest of the log,
//! while the delivery log (`/api/admin/webhooks/{id}/deliveries`) keeps every attempt.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// One log line per endpoint at most this often.
pub const QUIET: Duration = Duration::from_secs(60);

/// Endpoints whose failures were logged: when last, and how many were passed over since.
/// One entry per endpoint that ever failed on this node (a desk has a handful).
#[derive(Default)]
pub struct FailureLog {
    endpoints: HashMap<String, (Instant, u32)>,
}

impl FailureLog {
    /// Whether a failure of `endpoint` at `now` gets a line: `Some(passed over since the
    /// last line)`, or `None` (counted, to be told with the next line).
    pub fn admit(&mut self, endpoint: &str, now: Instant) -> Option<u32> {
        match self.endpoints.get_mut(endpoint) {
            Some((last, passed)) if now.duration_since(*last) < QUIET => {
                *passed = passed.saturating_add(1);
                None
            }
            Some((last, passed)) => {
                *last = now;
                Some(std::mem::take(passed))
            }
            None => {
                self.endpoints.insert(endpoint.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

/// This node's failure log.
pub static FAILURES: LazyLock<Mutex<FailureLog>> = LazyLock::new(Mutex::default);

/// Logs a failed attempt of `delivery` to `endpoint` (at `host`; never its URL, whose path
/// or query may hold the receiver's secret), as [`FailureLog`] admits it.
pub fn failed(endpoint: &str, host: &str, delivery: &str, attempt: usize, answer: &str, next: Option<i64>) {
    let admitted = FAILURES
        .lock()
        .map(|mut log| log.admit(endpoint, Instant::now()))
        .unwrap_or(Some(0));
    if let Some(passed_over) = admitted {
        tracing::warn!(
            endpoint,
            host,
            delivery,
            attempt,
            answer,
            next_try_at_ms = next,
            passed_over,
            "a webhook delivery failed; it is tried again (see the endpoint's delivery log)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_is_logged_then_one_a_quiet_period_with_the_count_passed_over() {
        let mut log = FailureLog::default();
        let t0 = Instant::now();
        assert_eq!(log.admit("e1", t0), Some(0));
        assert_eq!(log.admit("e1", t0 + Duration::from_secs(1)), None);
        assert_eq!(log.admit("e1", t0 + Duration::from_secs(2)), None);
        // Another endpoint has its own.
        assert_eq!(log.admit("e2", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(log.admit("e1", t0 + QUIET), Some(2));
        assert_eq!(log.admit("e1", t0 + QUIET + Duration::from_secs(1)), None);
    }
}
