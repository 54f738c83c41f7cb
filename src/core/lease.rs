//! A node's lease on its cluster membership, as a pure state machine.
//!
//! A node is a member while Redis holds `{sb}:nodes[id] == incarnation` and a lease
//! deadline not yet passed by Redis's clock; every shared change is refused (`FENCED`)
//! otherwise. This core decides what the lease task does next (register or renew) and
//! what the node may believe about itself, from the answers it got and when it sent the
//! requests, in the node's own monotonic milliseconds.
//!
//! The belief is conservative: a renewal sent at `t` was applied by Redis at `t` or later,
//! so the lease runs at least until `t + lease` (clock rates aside); the node counts
//! itself a member only before that, and never again after a refusal until it has
//! registered anew, with a higher incarnation. The scripts' fencing is what makes this
//! safe; this belief is for the node's health and its logs.

/// Why a node stopped being a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// Redis refused a renewal: another incarnation holds the node's name, or the lease
    /// ran out (the node stalled, or Redis was away that long).
    Fenced,
    /// Redis no longer knows the node (it was reaped as dead, or Redis lost its data).
    Forgotten,
    /// No renewal succeeded in time (Redis unreachable): the lease may have run out.
    Lapsed,
}

/// What the lease task should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Register with a new incarnation, above `floor` (the highest this node has had, so
    /// incarnations keep rising even if Redis lost its counter).
    Register { floor: u64 },
    /// Extend the lease of this incarnation.
    Renew { incarnation: u64 },
}

/// A change worth a log line (and a health update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A member again (or for the first time) under `incarnation`; `after` says why it had
    /// to rejoin, `redis_was_empty` that Redis had lost its data meanwhile.
    Joined {
        incarnation: u64,
        after: Option<Lost>,
        redis_was_empty: bool,
    },
    /// No longer a member.
    Lost { incarnation: u64, why: Lost },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Out { why: Option<Lost> },
    Member { incarnation: u64, valid_until: u64 },
}

/// The lease of one node.
#[derive(Debug, Clone)]
pub struct Lease {
    lease_ms: u64,
    state: State,
    /// The highest incarnation this node has held.
    highest: u64,
}

impl Lease {
    pub fn new(lease_ms: u64) -> Self {
        Self {
            lease_ms,
            state: State::Out { why: None },
            highest: 0,
        }
    }

    pub fn next(&self) -> Next {
        match self.state {
            State::Out { .. } => Next::Register { floor: self.highest },
            State::Member { incarnation, .. } => Next::Renew { incarnation },
        }
    }

    /// The incarnation this node may count itself a member under at `now`.
    pub fn member(&self, now: u64) -> Option<u64> {
        match self.state {
            State::Member {
                incarnation,
                valid_until,
            } if now < valid_until => Some(incarnation),
            _ => None,
        }
    }

    /// A registration sent at `sent_at` was answered with `incarnation`. One not above
    /// every incarnation this node had is refused (`None`): the script never answers so.
    pub fn registered(&mut self, incarnation: u64, sent_at: u64, redis_was_empty: bool) -> Option<Change> {
        if incarnation <= self.highest {
            return None;
        }
        let after = match self.state {
            State::Out { why } => why,
            State::Member { .. } => return None,
        };
        self.highest = incarnation;
        self.state = State::Member {
            incarnation,
            valid_until: sent_at.saturating_add(self.lease_ms),
        };
        Some(Change::Joined {
            incarnation,
            after,
            redis_was_empty,
        })
    }

    /// A renewal sent at `sent_at` extended the lease. The script extends only a lease
    /// still running by Redis's clock, so this holds even if the node's own belief had
    /// run out meanwhile.
    pub fn renewed(&mut self, sent_at: u64) {
        if let State::Member { valid_until, .. } = &mut self.state {
            *valid_until = (*valid_until).max(sent_at.saturating_add(self.lease_ms));
        }
    }

    /// Redis refused a renewal.
    pub fn refused(&mut self, why: Lost) -> Option<Change> {
        self.lose(why)
    }

    /// A request failed to reach Redis (or timed out) at `now`: nothing is known, but a
    /// lease not renewed by its end is lost.
    pub fn unreachable(&mut self, now: u64) -> Option<Change> {
        match self.state {
            State::Member { valid_until, .. } if now >= valid_until => self.lose(Lost::Lapsed),
            _ => None,
        }
    }

    fn lose(&mut self, why: Lost) -> Option<Change> {
        let State::Member { incarnation, .. } = self.state else {
            return None;
        };
        self.state = State::Out { why: Some(why) };
        Some(Change::Lost { incarnation, why })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LEASE: u64 = 5_000;

    #[derive(Debug, Clone)]
    enum Event {
        /// Time passes.
        Wait(u64),
        /// The request `next()` asked for, sent now, succeeds (`redis_bump` added to the
        /// floor for a registration: other nodes registered meanwhile).
        Answered {
            redis_bump: u64,
            empty: bool,
        },
        Refused(Lost),
        Unreachable,
    }

    fn events() -> impl Strategy<Value = Vec<Event>> {
        let event = prop_oneof![
            (0u64..4_000).prop_map(Event::Wait),
            (1u64..5, any::<bool>()).prop_map(|(redis_bump, empty)| Event::Answered { redis_bump, empty }),
            prop_oneof![Just(Lost::Fenced), Just(Lost::Forgotten)].prop_map(Event::Refused),
            Just(Event::Unreachable),
        ];
        proptest::collection::vec(event, 0..80)
    }

    proptest! {
        /// Over any answers: a node counts itself a member only within `LEASE` of a request
        /// Redis accepted, never between a loss and its next registration, and each
        /// registration's incarnation is above every earlier one.
        #[test]
        fn membership_is_believed_only_within_an_accepted_lease(events in events()) {
            let mut lease = Lease::new(LEASE);
            let mut now = 0u64;
            // The last accepted request's send time, since the last loss.
            let mut accepted_at: Option<u64> = None;
            let mut incarnations: Vec<u64> = vec![];
            for event in events {
                match event {
                    Event::Wait(ms) => now += ms,
                    Event::Answered { redis_bump, empty } => match lease.next() {
                        Next::Register { floor } => {
                            let change = lease.registered(floor + redis_bump, now, empty);
                            let is_join = matches!(change, Some(Change::Joined { .. }));
                            prop_assert!(is_join, "{:?}", change);
                            incarnations.push(floor + redis_bump);
                            accepted_at = Some(now);
                        }
                        Next::Renew { incarnation } => {
                            prop_assert_eq!(Some(incarnation), incarnations.last().copied());
                            lease.renewed(now);
                            accepted_at = Some(now);
                        }
                    },
                    Event::Refused(why) => {
                        let was_member = matches!(lease.next(), Next::Renew { .. });
                        let change = lease.refused(why);
                        prop_assert_eq!(was_member, change.is_some());
                        accepted_at = None;
                    }
                    Event::Unreachable => {
                        if let Some(Change::Lost { .. }) = lease.unreachable(now) {
                            accepted_at = None;
                        }
                    }
                }
                match lease.member(now) {
                    Some(incarnation) => {
                        let at = accepted_at.expect("a member only after an accepted request");
                        prop_assert!(now < at + LEASE);
                        prop_assert_eq!(Some(incarnation), incarnations.last().copied());
                    }
                    None => prop_assert!(accepted_at.is_none_or(|at| now >= at + LEASE)),
                }
                prop_assert!(incarnations.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }

    #[test]
    fn a_fenced_node_rejoins_above_its_old_incarnation_and_says_why() {
        let mut lease = Lease::new(LEASE);
        assert_eq!(lease.next(), Next::Register { floor: 0 });
        lease.registered(7, 0, false);
        assert_eq!(lease.member(100), Some(7));
        assert_eq!(
            lease.refused(Lost::Fenced),
            Some(Change::Lost {
                incarnation: 7,
                why: Lost::Fenced
            })
        );
        assert_eq!(lease.member(100), None);
        assert_eq!(lease.next(), Next::Register { floor: 7 });
        assert_eq!(
            lease.registered(7, 200, false),
            None,
            "never the same incarnation again"
        );
        assert_eq!(
            lease.registered(9, 200, true),
            Some(Change::Joined {
                incarnation: 9,
                after: Some(Lost::Fenced),
                redis_was_empty: true
            })
        );
    }

    #[test]
    fn an_unreachable_redis_loses_the_lease_only_once_it_has_run_out() {
        let mut lease = Lease::new(LEASE);
        lease.registered(1, 1_000, false);
        assert_eq!(lease.unreachable(5_999), None);
        assert_eq!(lease.member(5_999), Some(1));
        assert_eq!(
            lease.unreachable(6_000),
            Some(Change::Lost {
                incarnation: 1,
                why: Lost::Lapsed
            })
        );
        assert_eq!(lease.next(), Next::Register { floor: 1 });
    }
}
