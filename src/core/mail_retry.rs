//! When a failed appointment mail is tried again, and when it is given up.
//!
//! Exponential backoff, capped: the pause after the n-th failed attempt is
//! `first · 2^(n-1)`, never more than `max`; after `max_attempts` failures the mail is
//! dead. A relay that is down for a while is thus asked rarely, and one that comes back
//! gets the mail within one capped pause.

/// The backoff rule, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The pause after the first failure.
    pub first_ms: i64,
    /// The longest pause.
    pub max_ms: i64,
    /// Failures after which the mail is given up; at least 1.
    pub max_attempts: u32,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this instant.
    RetryAt(i64),
    /// That was the last attempt.
    GiveUp,
}

impl RetryPolicy {
    /// The pause after the `failures`-th failure (1-based).
    pub fn pause_ms(&self, failures: u32) -> i64 {
        let doublings = failures.saturating_sub(1).min(62);
        let first = self.first_ms.max(0);
        first
            .checked_mul(1_i64 << doublings)
            .unwrap_or(i64::MAX)
            .min(self.max_ms.max(first))
    }

    /// What follows a failed attempt at `now`, of a mail that had failed `failed_before`
    /// times before it.
    pub fn after_failure(&self, failed_before: u32, now: i64) -> AfterFailure {
        let failures = failed_before.saturating_add(1);
        if failures >= self.max_attempts.max(1) {
            AfterFailure::GiveUp
        } else {
            AfterFailure::RetryAt(now.saturating_add(self.pause_ms(failures)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> impl Strategy<Value = RetryPolicy> {
        (1_i64..100_000, 0_i64..10_000_000, 1_u32..30).prop_map(|(first, extra, attempts)| RetryPolicy {
            first_ms: first,
            max_ms: first + extra,
            max_attempts: attempts,
        })
    }

    #[test]
    fn pauses_double_from_the_first_until_the_cap() {
        let p = RetryPolicy {
            first_ms: 1_000,
            max_ms: 5_000,
            max_attempts: 10,
        };
        let pauses: Vec<i64> = (1..=5).map(|n| p.pause_ms(n)).collect();
        assert_eq!(pauses, [1_000, 2_000, 4_000, 5_000, 5_000]);
    }

    proptest! {
        /// Over any run of failures: pauses never shrink, never pass the cap, start at
        /// `first`, and the mail is given up exactly at the `max_attempts`-th failure.
        #[test]
        fn a_run_of_failures_backs_off_then_gives_up(p in policy(), start in 0_i64..1_000_000_000_000) {
            let (mut now, mut failed, mut last_pause) = (start, 0_u32, 0_i64);
            loop {
                match p.after_failure(failed, now) {
                    AfterFailure::RetryAt(at) => {
                        let pause = at - now;
                        prop_assert!(pause >= last_pause);
                        prop_assert!(pause <= p.max_ms);
                        if failed == 0 { prop_assert_eq!(pause, p.first_ms); }
                        last_pause = pause;
                        failed += 1;
                        now = at;
                    }
                    AfterFailure::GiveUp => {
                        prop_assert_eq!(failed + 1, p.max_attempts);
                        break;
                    }
                }
                prop_assert!(failed < p.max_attempts);
            }
        }
    }
}
