//! Counting failed password guesses per key (a client address, an account), as a
//! leaky bucket: a key may fail `burst` times at once, then once per `refill`; each
//! `refill` that passes gives one failure back.
//!
//! Only failures count, and a key is checked before a guess is judged, without
//! spending anything: a correct password costs nothing, so an office of agents signing
//! in from one address is never held back by its own successes, while a guesser is.
//! (A generic rate limiter such as governor's cannot check without spending a cell,
//! which would make every sign-in count.)
//!
//! Time enters as an argument: the caller passes `now`, so the rules are tested
//! without a clock. Memory is bounded: a key is forgotten once it has recovered (its
//! bucket is full again, indistinguishable from a key never seen), and at `capacity`
//! keys the one closest to recovery makes room for a new one.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How many failures a key may make at once, and how fast it earns them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuessLimit {
    /// Failures allowed back to back (at least 1).
    pub burst: u32,
    /// Time that gives one failure back.
    pub refill: Duration,
}

/// Failed guesses per key.
#[derive(Debug)]
pub struct FailedGuesses<K> {
    limit: GuessLimit,
    /// Key → the moment its bucket is full again; keys whose moment has passed are forgettable.
    recovered_at: HashMap<K, Instant>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone> FailedGuesses<K> {
    pub fn new(limit: GuessLimit, capacity: usize) -> Self {
        Self {
            limit: GuessLimit {
                burst: limit.burst.max(1),
                refill: limit.refill,
            },
            recovered_at: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The longest a key's debt may be and still allow one more failure.
    fn allowance(&self) -> Duration {
        self.limit.refill * (self.limit.burst - 1)
    }

    /// May `key` guess now? `Err` carries how long until it may.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let Some(&recovered_at) = self.recovered_at.get(key) else {
            return Ok(());
        };
        let debt = recovered_at.saturating_duration_since(now);
        match debt.checked_sub(self.allowance()) {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    /// `key` guessed wrong at `now`.
    pub fn failed(&mut self, key: K, now: Instant) {
        if !self.recovered_at.contains_key(&key) && self.recovered_at.len() >= self.capacity {
            self.forget_recovered(now);
            if self.recovered_at.len() >= self.capacity {
                // Full of keys in debt: the one nearest to recovery loses least by being forgotten.
                let nearest = self
                    .recovered_at
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| k.clone());
                if let Some(nearest) = nearest {
                    self.recovered_at.remove(&nearest);
                }
            }
        }
        let at = self.recovered_at.entry(key).or_insert(now);
        *at = (*at).max(now) + self.limit.refill;
    }

    /// Checks `key` and, when it may guess, counts the guess as a failure at once: a
    /// guess is judged only later (a password hash takes tens of milliseconds), and
    /// guesses sent side by side must not all pass the check before any has failed.
    /// A guess that turns out right is handed back with [`Self::give_back`].
    pub fn take(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        self.check(&key, now)?;
        self.failed(key, now);
        Ok(())
    }

    /// Undoes one [`Self::take`] of `key`: the guess was right, or was never judged.
    pub fn give_back(&mut self, key: &K) {
        if let Some(at) = self.recovered_at.get_mut(key) {
            *at = at.checked_sub(self.limit.refill).unwrap_or(*at);
        }
    }

    /// Forgets every key that has fully recovered by `now`.
    pub fn forget_recovered(&mut self, now: Instant) {
        self.recovered_at.retain(|_, at| *at > now);
    }

    /// Keys remembered (in debt, or not yet swept).
    pub fn len(&self) -> usize {
        self.recovered_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recovered_at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LIMIT: GuessLimit = GuessLimit {
        burst: 3,
        refill: Duration::from_secs(6),
    };

    #[test]
    fn a_burst_then_one_per_refill() {
        let t0 = Instant::now();
        let mut g = FailedGuesses::new(LIMIT, 100);
        for _ in 0..3 {
            assert_eq!(g.check(&"a", t0), Ok(()));
            g.failed("a", t0);
        }
        assert_eq!(g.check(&"a", t0), Err(Duration::from_secs(6)));
        assert_eq!(g.check(&"b", t0), Ok(()), "other keys are not held back");
        assert_eq!(g.check(&"a", t0 + Duration::from_secs(5)), Err(Duration::from_secs(1)));
        assert_eq!(g.check(&"a", t0 + Duration::from_secs(6)), Ok(()));
        g.failed("a", t0 + Duration::from_secs(6));
        assert!(g.check(&"a", t0 + Duration::from_secs(6)).is_err());
        g.forget_recovered(t0 + Duration::from_secs(23));
        assert_eq!(g.len(), 1, "still in debt");
        g.forget_recovered(t0 + Duration::from_secs(24));
        assert!(g.is_empty(), "recovered keys are forgotten");
    }

    #[test]
    fn a_full_table_makes_room_by_forgetting_the_nearest_recovery() {
        let t0 = Instant::now();
        let mut g = FailedGuesses::new(LIMIT, 2);
        g.failed("a", t0);
        g.failed("a", t0);
        g.failed("b", t0);
        g.failed("c", t0);
        assert_eq!(g.len(), 2);
        assert_eq!(g.check(&"b", t0), Ok(()));
        assert!(g.recovered_at.contains_key("a"), "the deepest debt is kept");
    }

    #[test]
    fn a_right_guess_is_given_back() {
        let t0 = Instant::now();
        let mut g = FailedGuesses::new(LIMIT, 100);
        for _ in 0..10 {
            assert_eq!(g.take("a", t0), Ok(()));
            g.give_back(&"a");
        }
        for _ in 0..3 {
            assert_eq!(g.take("a", t0), Ok(()));
        }
        assert!(g.take("a", t0).is_err(), "only failures kept count");
    }

    proptest! {
        /// Over any run of guesses, a key never gets more failures than the burst plus one
        /// per refill that passed, and a refused key is told a wait that really ends its refusal.
        #[test]
        fn no_key_fails_more_than_its_allowance(
            steps in proptest::collection::vec((0u8..4, 0u64..3_000), 1..300),
            burst in 1u32..6,
        ) {
            let limit = GuessLimit { burst, refill: Duration::from_secs(1) };
            let t0 = Instant::now();
            let mut g = FailedGuesses::new(limit, 1_000);
            let mut now = t0;
            let mut failures = [0u64; 4];
            for (key, advance_ms) in steps {
                now += Duration::from_millis(advance_ms);
                match g.check(&key, now) {
                    Ok(()) => {
                        g.failed(key, now);
                        failures[key as usize] += 1;
                    }
                    Err(wait) => {
                        prop_assert!(!wait.is_zero() && wait <= limit.refill);
                        prop_assert_eq!(g.check(&key, now + wait), Ok(()));
                    }
                }
                let elapsed_refills = (now - t0).as_millis() as u64 / 1_000;
                for n in failures {
                    prop_assert!(n <= u64::from(burst) + elapsed_refills);
                }
            }
        }
    }
}
