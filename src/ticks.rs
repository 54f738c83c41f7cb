//! The background keepers' beat: a tick every period until shutdown.
//!
//! Sweeps, keepers and watchers (sessions, tokens, chat hours, rooms, reports, webhook
//! deliveries) each do one piece of work per period and stop when the node shuts down.
//! [`Ticks`] is that loop's head, written once: a missed tick is delayed, not bunched
//! (a node that stalled, or a store that answered slowly, does not run the work several
//! times in a row to catch up), and shutdown wins over a tick that is due at once.

use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// A tick every period until `shutdown`: `while ticks.next().await { … }`.
pub struct Ticks {
    every: Interval,
    shutdown: CancellationToken,
}

impl Ticks {
    /// The first tick is at once.
    pub fn new(period: Duration, shutdown: &CancellationToken) -> Self {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            every,
            shutdown: shutdown.clone(),
        }
    }

    /// The first tick one period from now (the work was just done, or needs not be done
    /// at start).
    pub fn after_one_period(period: Duration, shutdown: &CancellationToken) -> Self {
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            every,
            shutdown: shutdown.clone(),
        }
    }

    /// Waits for the next tick: `true`, or `false` once shutdown has begun.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            biased;
            () = self.shutdown.cancelled() => false,
            _ = self.every.tick() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_millis(20);

    #[tokio::test]
    async fn ticks_every_period_and_stops_at_shutdown() {
        let shutdown = CancellationToken::new();
        let mut ticks = Ticks::new(PERIOD, &shutdown);
        let start = tokio::time::Instant::now();
        assert!(ticks.next().await, "the first tick is at once");
        assert!(ticks.next().await);
        assert!(start.elapsed() >= PERIOD, "the second a period later");
        shutdown.cancel();
        assert!(!ticks.next().await, "shutdown ends the beat");
    }

    #[tokio::test]
    async fn a_beat_may_start_one_period_later() {
        let shutdown = CancellationToken::new();
        let mut ticks = Ticks::after_one_period(PERIOD, &shutdown);
        let start = tokio::time::Instant::now();
        assert!(ticks.next().await);
        assert!(start.elapsed() >= PERIOD);
    }

    #[tokio::test]
    async fn shutdown_wins_over_a_tick_that_is_due() {
        let shutdown = CancellationToken::new();
        let mut ticks = Ticks::new(PERIOD, &shutdown);
        shutdown.cancel();
        assert!(!ticks.next().await);
    }
}
