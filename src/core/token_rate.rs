//! The rate an API token may send at: [`BURST`] requests at once, then [`PER_SECOND`]
//! a second, as a generic cell rate (GCRA): all a token's state is one time, when its
//! next request is due ([`admit`]). The same step runs on a node (its own count, when
//! Redis does not answer) and in Redis (`cluster::token_rate`, the count over all nodes),
//! so a token meets one rule wherever it is counted.

/// Requests a token may send at once…
pub const BURST: u32 = 100;
/// …then this many a second.
pub const PER_SECOND: u32 = 20;

/// The spacing of requests at the steady rate (ms): 50 at 20 a second.
pub const SPACING_MS: i64 = 1_000 / PER_SECOND as i64;
/// How far ahead of now the next request may be due and one still be let through: room
/// for the burst beyond the one request the steady rate allows.
pub const TOLERANCE_MS: i64 = SPACING_MS * (BURST as i64 - 1);

/// What the rate says of a request at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Let through; the token's next request is due at `next_due` (ms, on the same clock).
    Admitted { next_due: i64 },
    /// Refused; one would be let through `wait_ms` later (at least 1).
    Refused { wait_ms: i64 },
}

/// The rate's step for a request at `now`, the token's next request being due at `due`
/// (`None` for a token not seen lately: as one due now). A refusal changes nothing, so
/// only [`Admission::Admitted`]'s `next_due` is kept.
pub fn admit(due: Option<i64>, now: i64) -> Admission {
    let due = due.map_or(now, |due| due.max(now));
    if due - now > TOLERANCE_MS {
        Admission::Refused {
            wait_ms: due - now - TOLERANCE_MS,
        }
    } else {
        Admission::Admitted {
            next_due: due + SPACING_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Requests at `times` (ascending): how many are let through.
    fn admitted(times: &[i64]) -> usize {
        let mut due = None;
        let mut through = 0;
        for &now in times {
            if let Admission::Admitted { next_due } = admit(due, now) {
                due = Some(next_due);
                through += 1;
            }
        }
        through
    }

    #[test]
    fn a_burst_at_once_lets_exactly_the_burst_through() {
        assert_eq!(admitted(&[1_000; 250]), BURST as usize);
    }

    #[test]
    fn a_refusal_says_how_long_until_the_next_is_let_through() {
        let mut due = None;
        for _ in 0..BURST {
            let Admission::Admitted { next_due } = admit(due, 0) else {
                panic!("within the burst")
            };
            due = Some(next_due);
        }
        let Admission::Refused { wait_ms } = admit(due, 0) else {
            panic!("past the burst")
        };
        assert_eq!(wait_ms, SPACING_MS);
        assert!(matches!(admit(due, wait_ms - 1), Admission::Refused { .. }));
        assert!(matches!(admit(due, wait_ms), Admission::Admitted { .. }));
    }

    proptest! {
        /// However requests come, no stretch of time lets through more than the burst and
        /// the steady rate over its length; and a token that keeps to the steady rate is
        /// never refused.
        #[test]
        fn never_more_than_the_burst_and_the_rate(gaps in proptest::collection::vec(0i64..200, 1..600)) {
            let mut now = 0;
            let mut due = None;
            let mut through = Vec::new();
            for gap in gaps {
                now += gap;
                if let Admission::Admitted { next_due } = admit(due, now) {
                    due = Some(next_due);
                    through.push(now);
                }
            }
            for (i, start) in through.iter().enumerate() {
                for (j, end) in through.iter().enumerate().skip(i) {
                    let allowed = BURST as i64 + (end - start) / SPACING_MS;
                    prop_assert!((j - i + 1) as i64 <= allowed, "{} through in {} ms", j - i + 1, end - start);
                }
            }
        }

        #[test]
        fn the_steady_rate_is_never_refused(start in 0i64..1_000_000, count in 1usize..500) {
            let times: Vec<i64> = (0..count as i64).map(|i| start + i * SPACING_MS).collect();
            prop_assert_eq!(admitted(&times), count);
        }
    }
}
