//! When the hub is ready for traffic, and which changes of that deserve a log line.
//!
//! Ready means new work would be served promptly: the store answers, the archive is
//! neither failing nor refusing, its writes are not stalled, and what it still has to
//! write is under `READY_MAX_BACKLOG`. Right after an outage the store answers again
//! while thousands of events still wait; "ready" then would send traffic to a hub that
//! holds every acknowledgement behind that backlog.
//!
//! Probes come every few seconds; a line per failed probe buries the one that matters.
//! [`ReadinessWatch`] turns the stream of verdicts into changes: one when the hub
//! stops being ready, one when it is ready again.

/// What the adapters measured, at one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    pub store_answers: bool,
    pub archive_degraded: bool,
    pub archive_overflowing: bool,
    /// A write has taken (or is taking) longer than the slow-write threshold.
    pub archive_slow: bool,
    pub backlog: usize,
    pub max_backlog: usize,
    // ---- several nodes through Redis; both true on a single process ----
    /// Redis answered the lease task's last request.
    pub redis_answers: bool,
    /// The node holds its cluster lease (it may change shared state).
    pub lease_held: bool,
}

/// Why the hub is not ready, each a stable word for the probe's body and the log.
pub fn not_ready_because(s: &Signals) -> Vec<&'static str> {
    let mut reasons = Vec::new();
    if !s.store_answers {
        reasons.push("store_unreachable");
    }
    if s.archive_degraded {
        reasons.push("archive_degraded");
    }
    if s.archive_overflowing {
        reasons.push("archive_overflowing");
    }
    if s.archive_slow {
        reasons.push("archive_slow");
    }
    if s.backlog > s.max_backlog {
        reasons.push("archive_backlog");
    }
    if !s.redis_answers {
        reasons.push("redis_unreachable");
    }
    if !s.lease_held {
        reasons.push("cluster_lease_lost");
    }
    reasons
}

/// A change worth one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Not ready (any more), and why.
    NotReady(Vec<&'static str>),
    /// Ready (again, or for the first time).
    Ready,
}

/// Remembers the last verdict so only changes are reported.
#[derive(Debug, Default)]
pub struct ReadinessWatch {
    last_ready: Option<bool>,
}

impl ReadinessWatch {
    /// Takes one probe's reasons (empty: ready); returns the change, if this is one.
    /// The first verdict counts as a change, so the log says where the hub starts.
    pub fn observe(&mut self, reasons: &[&'static str]) -> Option<Change> {
        let ready = reasons.is_empty();
        if self.last_ready == Some(ready) {
            return None;
        }
        self.last_ready = Some(ready);
        Some(if ready {
            Change::Ready
        } else {
            Change::NotReady(reasons.to_vec())
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn signals() -> impl Strategy<Value = Signals> {
        (any::<[bool; 6]>(), 0usize..20, 0usize..20).prop_map(|(b, backlog, max_backlog)| Signals {
            store_answers: b[0],
            archive_degraded: b[1],
            archive_overflowing: b[2],
            archive_slow: b[3],
            backlog,
            max_backlog,
            redis_answers: b[4],
            lease_held: b[5],
        })
    }

    proptest! {
        /// Ready exactly when every signal is fine and the backlog is at most the threshold.
        #[test]
        fn ready_only_when_all_is_well(s in signals()) {
            let ready = not_ready_because(&s).is_empty();
            let all_well = s.store_answers && !s.archive_degraded && !s.archive_overflowing
                && !s.archive_slow && s.backlog <= s.max_backlog && s.redis_answers && s.lease_held;
            prop_assert_eq!(ready, all_well);
            prop_assert_eq!(not_ready_because(&s).contains(&"redis_unreachable"), !s.redis_answers);
            prop_assert_eq!(not_ready_because(&s).contains(&"archive_backlog"), s.backlog > s.max_backlog);
        }

        /// One change per flip of readiness (and one for the first verdict), never one per
        /// probe; a change says the state the hub entered.
        #[test]
        fn only_flips_are_reported(seq in proptest::collection::vec(signals(), 1..60)) {
            let mut watch = ReadinessWatch::default();
            let mut previous: Option<bool> = None;
            for s in &seq {
                let reasons = not_ready_because(s);
                let ready = reasons.is_empty();
                let change = watch.observe(&reasons);
                if previous == Some(ready) {
                    prop_assert_eq!(change, None);
                } else if ready {
                    prop_assert_eq!(change, Some(Change::Ready));
                } else {
                    prop_assert_eq!(change, Some(Change::NotReady(reasons.clone())));
                }
                previous = Some(ready);
            }
        }
    }
}
