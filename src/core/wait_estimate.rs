//! How long a waiting customer will likely wait: a range, from the category's recent
//! handle times and the chat slots of the agents serving it. Pure: durations in, a range out.
//!
//! The formula (docs/protocol.md states it for clients):
//!
//! ```text
//! S      = the sum of the limits of the agents who may serve the category now
//!          (connected, holding it, available or busy finishing their chats)
//! h25, h75 = the 25th and 75th percentiles of the last HISTORY handle times in the category
//! wait(place p) ≈ [ p × h25 / S ,  p × h75 / S ]
//! ```
//!
//! That is: S slots turn over, each about once per handle time, so the p-th in line is
//! served after about p of those turnovers. A range, rounded outwards to whole minutes, so
//! the page never shows false precision. Unknown (`None`) when nobody serves the category
//! (S = 0) or fewer than [`MIN_HISTORY`] chats of it have ended since the node started.

use std::collections::VecDeque;

/// How many recent handle times of a category count.
pub const HISTORY: usize = 50;

/// Fewer ended chats than this: no estimate.
pub const MIN_HISTORY: usize = 3;

/// The recent handle times (seconds) of one category, newest last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandleTimes {
    recent: VecDeque<u64>,
}

/// An estimated wait, in whole minutes: `low_mins` to `high_mins` (equal when narrow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitRange {
    pub low_mins: u64,
    pub high_mins: u64,
}

impl HandleTimes {
    /// A chat of the category ended after `secs`.
    pub fn record(&mut self, secs: u64) {
        if self.recent.len() == HISTORY {
            self.recent.pop_front();
        }
        self.recent.push_back(secs);
    }

    pub fn len(&self) -> usize {
        self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// The estimate for the customer at `place` (1 is next) with `slots` chat slots serving.
    pub fn estimate(&self, place: usize, slots: usize) -> Option<WaitRange> {
        if slots == 0 || place == 0 || self.recent.len() < MIN_HISTORY {
            return None;
        }
        let mut sorted: Vec<u64> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        let percentile = |q: usize| sorted[(sorted.len() - 1) * q / 100];
        let (h25, h75) = (percentile(25), percentile(75));
        let place = place as u64;
        let slots = slots as u64;
        let low_secs = place * h25 / slots;
        // Rounded up: a range never ends before the likely wait.
        let high_secs = (place * h75).div_ceil(slots);
        Some(WaitRange {
            low_mins: low_secs / 60,
            high_mins: high_secs.div_ceil(60).max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unknown_without_history_or_without_anyone_serving() {
        let mut h = HandleTimes::default();
        assert_eq!(h.estimate(1, 2), None);
        h.record(300);
        h.record(300);
        assert_eq!(h.estimate(1, 2), None, "two chats are not a history");
        h.record(300);
        assert!(h.estimate(1, 2).is_some());
        assert_eq!(h.estimate(1, 0), None, "nobody serving");
    }

    #[test]
    fn the_formula_on_a_hand_computed_case() {
        let mut h = HandleTimes::default();
        // Handle times 2, 4, 6, 8, 10 minutes: h25 = 4 min (index 1), h75 = 8 min (index 3).
        for m in [10, 2, 8, 4, 6] {
            h.record(m * 60);
        }
        // Third in line, two slots: 3 × 4 / 2 = 6 min to 3 × 8 / 2 = 12 min.
        assert_eq!(
            h.estimate(3, 2),
            Some(WaitRange {
                low_mins: 6,
                high_mins: 12
            })
        );
        // First in line, four slots: 1 min to 2 min.
        assert_eq!(
            h.estimate(1, 4),
            Some(WaitRange {
                low_mins: 1,
                high_mins: 2
            })
        );
    }

    #[test]
    fn only_the_latest_history_counts() {
        let mut h = HandleTimes::default();
        for _ in 0..HISTORY {
            h.record(6000);
        }
        for _ in 0..HISTORY {
            h.record(60);
        }
        assert_eq!(h.len(), HISTORY);
        assert_eq!(
            h.estimate(1, 1),
            Some(WaitRange {
                low_mins: 1,
                high_mins: 1
            })
        );
    }

    proptest! {
        /// The range is ordered, never grows as a customer moves up, and shrinks as slots grow.
        #[test]
        fn later_places_and_fewer_slots_never_wait_less(
            times in prop::collection::vec(1u64..20_000, 3..80),
            place in 1usize..50,
            slots in 1usize..16,
        ) {
            let mut h = HandleTimes::default();
            for t in times { h.record(t); }
            let here = h.estimate(place, slots).unwrap();
            prop_assert!(here.low_mins <= here.high_mins);
            let ahead = h.estimate(place, slots + 1).unwrap();
            prop_assert!(ahead.high_mins <= here.high_mins && ahead.low_mins <= here.low_mins);
            let behind = h.estimate(place + 1, slots).unwrap();
            prop_assert!(behind.high_mins >= here.high_mins && behind.low_mins >= here.low_mins);
        }
    }
}
