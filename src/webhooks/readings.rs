//! Numbered readings of something in the store that a node keeps a copy of (the webhook
//! endpoints, the admins' choice on private addresses): several tasks read it again (an
//! admin's change, the deliverer's round), and one that began earlier may answer later.
//! Its answer is older than the one already applied, so it is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The readings begun and the latest begun whose answer was applied. Cheap to clone.
#[derive(Clone, Default)]
pub struct Readings {
    begun: Arc<AtomicU64>,
    applied: Arc<Mutex<u64>>,
}

impl Readings {
    /// A reading begins (before the store is asked): its number, for [`Readings::answered`].
    pub fn begin(&self) -> u64 {
        self.begun.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Reading `reading` answered: `apply` runs (under the lock, so two answers do not
    /// interleave) unless a reading begun later answered first, as it read a store at least
    /// as new. Whether it ran.
    pub fn answered(&self, reading: u64, apply: impl FnOnce()) -> bool {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if reading <= *applied {
            return false;
        }
        *applied = reading;
        apply();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_older_than_the_applied_one_is_dropped() {
        let readings = Readings::default();
        let (older, newer) = (readings.begin(), readings.begin());
        assert!(readings.answered(newer, || ()));
        assert!(!readings.answered(older, || panic!("a stale answer was applied")));
        assert!(readings.answered(readings.begin(), || ()));
    }
}
