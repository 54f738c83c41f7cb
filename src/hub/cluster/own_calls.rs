//! The outbox of a node's own calls to the cluster (`docs/cluster.md` §9): the
//! routing and buddy calls nobody waits for — a page closing, a grace timer running out —
//! that Redis could not take. Without it they were lost, and the person stayed as Redis
//! last had them ("online", "connected") until this node's loss handed them on, which an
//! outage shorter than the lease never brings.
//!
//! This is the queue's rule alone (pure, synchronous): calls wait in the order they were
//! made, at most `capacity` of them; the router (`hub::cluster::link`) sends them, oldest
//! first and before anything new, once Redis answers again, and throws them all away when
//! this node is fenced (its lease ran out: the reaper's `node_lost` then did their work).

use std::collections::VecDeque;

/// A bounded first-in, first-out queue of calls waiting for Redis.
pub(crate) struct OwnCalls<T> {
    waiting: VecDeque<T>,
    capacity: usize,
}

impl<T> OwnCalls<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            waiting: VecDeque::new(),
            capacity,
        }
    }

    /// Queues `call` behind the others; gives it back when the queue is full.
    pub fn push(&mut self, call: T) -> Result<(), T> {
        if self.waiting.len() >= self.capacity {
            return Err(call);
        }
        self.waiting.push_back(call);
        Ok(())
    }

    /// The oldest call, to send next.
    pub fn front(&self) -> Option<&T> {
        self.waiting.front()
    }

    /// The oldest call was sent (or need not be any more).
    pub fn sent(&mut self) -> Option<T> {
        self.waiting.pop_front()
    }

    /// Every waiting call, removed (this node was fenced: none of them may be made now).
    pub fn drop_all(&mut self) -> Vec<T> {
        self.waiting.drain(..).collect()
    }

    /// Drops the waiting calls `unwanted` picks, keeping the others in order; how many went.
    pub fn drop_where(&mut self, mut unwanted: impl FnMut(&T) -> bool) -> usize {
        let before = self.waiting.len();
        self.waiting.retain(|call| !unwanted(call));
        before - self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Push,
        Send,
        Fence,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![4 => Just(Step::Push), 2 => Just(Step::Send), 1 => Just(Step::Fence)]
    }

    proptest! {
        /// Over any sequence of calls, sends and fences: calls go out in the order they
        /// were made, each once; the queue never holds more than its capacity, and a call
        /// is refused only when it is full; a fence leaves nothing to send.
        #[test]
        fn calls_go_out_in_order_once_within_the_bound(
            steps in proptest::collection::vec(step(), 0..200),
            capacity in 1usize..8,
        ) {
            let mut calls = OwnCalls::new(capacity);
            let mut made = 0u32;
            let mut expected_next = 0u32;
            for step in steps {
                match step {
                    Step::Push => {
                        let full = calls.len() == capacity;
                        let pushed = calls.push(made);
                        prop_assert_eq!(pushed.is_err(), full);
                        made += 1;
                    }
                    Step::Send => {
                        let front = calls.front().copied();
                        let sent = calls.sent();
                        prop_assert_eq!(front, sent);
                        if let Some(call) = sent {
                            prop_assert!(call >= expected_next, "out of order: {} before {}", call, expected_next);
                            expected_next = call + 1;
                        }
                    }
                    Step::Fence => {
                        let dropped = calls.drop_all();
                        prop_assert!(dropped.iter().all(|c| *c >= expected_next));
                        prop_assert!(dropped.windows(2).all(|w| w[0] < w[1]));
                        prop_assert!(calls.is_empty());
                        expected_next = made;
                    }
                }
                prop_assert!(calls.len() <= capacity);
            }
        }
    }
}
