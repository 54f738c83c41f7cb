//! The order a webhook bot's calls are made in: one at a time per conversation, in the
//! order the hub queued them, but conversations independent of each other, a few at once,
//! so one conversation whose call hangs until its timeout holds up only itself. A
//! conversation's end makes its frames still waiting stale (the bot is told only the end).

use std::collections::{HashMap, HashSet, VecDeque};

/// Calls one webhook bot may have under way at once. A call normally takes milliseconds
/// (the bot answers 2xx and acts afterwards), so a few cover conversations whose calls
/// hang until the timeout while the others keep flowing; more would only open more
/// connections at once to a bot server that may be one small process.
pub const CALLS_AT_ONCE: usize = 4;

/// One bot's calls not yet finished, by conversation.
#[derive(Debug)]
pub struct CallOrder<T> {
    at_once: usize,
    /// Conversation → its calls waiting, oldest first.
    waiting: HashMap<String, VecDeque<T>>,
    /// Conversations with a call waiting and none under way, in the order they became so:
    /// the next calls made are theirs.
    ready: VecDeque<String>,
    /// Conversations with a call under way.
    under_way: HashSet<String>,
}

impl<T> CallOrder<T> {
    /// No calls; at most `at_once` under way (at least one).
    pub fn new(at_once: usize) -> Self {
        Self {
            at_once: at_once.max(1),
            waiting: HashMap::new(),
            ready: VecDeque::new(),
            under_way: HashSet::new(),
        }
    }

    /// Queues `call` about conversation `chat`. A call that `ends` the conversation drops
    /// the calls of it still waiting (not the one under way): they are stale. Returns them.
    pub fn push(&mut self, chat: &str, call: T, ends: bool) -> Vec<T> {
        let waiting = self.waiting.entry(chat.to_string()).or_default();
        let stale: Vec<T> = if ends { waiting.drain(..).collect() } else { Vec::new() };
        let was_idle = waiting.is_empty();
        waiting.push_back(call);
        if was_idle && !self.under_way.contains(chat) && !self.ready.iter().any(|c| c == chat) {
            self.ready.push_back(chat.to_string());
        }
        stale
    }

    /// The next call to make now, if fewer than `at_once` are under way and a conversation
    /// with none under way has one waiting; its conversation is under way until [`done`].
    ///
    /// [`done`]: CallOrder::done
    pub fn start_next(&mut self) -> Option<(String, T)> {
        if self.under_way.len() >= self.at_once {
            return None;
        }
        let chat = self.ready.pop_front()?;
        let waiting = self.waiting.get_mut(&chat)?;
        let call = waiting.pop_front()?;
        if waiting.is_empty() {
            self.waiting.remove(&chat);
        }
        self.under_way.insert(chat.clone());
        Some((chat, call))
    }

    /// The call under way about `chat` finished (made, failed or abandoned): the
    /// conversation's next call may go.
    pub fn done(&mut self, chat: &str) {
        if self.under_way.remove(chat) && self.waiting.contains_key(chat) {
            self.ready.push_back(chat.to_string());
        }
    }

    /// Calls under way.
    pub fn under_way(&self) -> usize {
        self.under_way.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A step of a random run: a call queued (conversation, ends), the next one taken, or
    /// the n-th call under way finished.
    #[derive(Debug, Clone)]
    enum Step {
        Push(u8, bool),
        Next,
        Done(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..5, prop::bool::weighted(0.15)).prop_map(|(c, e)| Step::Push(c, e)),
            Just(Step::Next),
            (0usize..8).prop_map(Step::Done),
        ]
    }

    proptest! {
        /// Whatever the run: never two calls of a conversation under way, never more than
        /// `at_once`; each conversation's calls made in the order queued; a call dropped only
        /// when a later end of its conversation came while it waited; work never left
        /// waiting with a place free; and once drained, every call not dropped was made.
        #[test]
        fn calls_go_in_order_per_conversation_a_few_at_once(
            at_once in 1usize..4,
            steps in prop::collection::vec(step(), 0..120),
        ) {
            let mut order = CallOrder::new(at_once);
            let mut queued: HashMap<String, Vec<(u32, bool)>> = HashMap::new();
            let mut made: HashMap<String, Vec<u32>> = HashMap::new();
            let mut dropped: HashMap<String, Vec<u32>> = HashMap::new();
            let mut under_way: Vec<String> = Vec::new();
            let mut serial = 0u32;
            let take = |order: &mut CallOrder<(u32, bool)>, under_way: &mut Vec<String>, made: &mut HashMap<String, Vec<u32>>| {
                let (chat, (n, _)) = order.start_next()?;
                assert!(!under_way.contains(&chat), "two calls of {chat} under way");
                under_way.push(chat.clone());
                assert!(under_way.len() <= at_once);
                made.entry(chat).or_default().push(n);
                Some(())
            };
            for s in steps {
                match s {
                    Step::Push(c, ends) => {
                        let chat = format!("c{c}");
                        serial += 1;
                        queued.entry(chat.clone()).or_default().push((serial, ends));
                        for (n, _) in order.push(&chat, (serial, ends), ends) {
                            prop_assert!(ends, "only an end drops calls");
                            dropped.entry(chat.clone()).or_default().push(n);
                        }
                    }
                    Step::Next => { take(&mut order, &mut under_way, &mut made); }
                    Step::Done(i) => {
                        if !under_way.is_empty() {
                            let chat = under_way.remove(i % under_way.len());
                            order.done(&chat);
                        }
                    }
                }
                prop_assert_eq!(order.under_way(), under_way.len());
                // Work-conserving: a place free and a conversation idle with calls waiting
                // means `start_next` has one.
                let idle_waiting = order.waiting.keys().any(|c| !under_way.contains(c));
                if under_way.len() < at_once && idle_waiting {
                    prop_assert!(order.ready.iter().any(|c| !under_way.contains(c)));
                }
            }
            // Drain.
            loop {
                if take(&mut order, &mut under_way, &mut made).is_some() { continue; }
                let Some(chat) = under_way.pop() else { break };
                order.done(&chat);
            }
            for (chat, calls) in &queued {
                let mut expected_made = Vec::new();
                let mut expected_dropped = Vec::new();
                let made_here = made.get(chat).cloned().unwrap_or_default();
                // A call is made unless an end was queued after it while it still waited:
                // replay with what was made by the time each end came unknown, so check the
                // weaker, exact facts: made calls in queue order, dropped ones all followed
                // by an end, made + dropped = queued.
                for (n, _) in calls {
                    if made_here.contains(n) { expected_made.push(*n) } else { expected_dropped.push(*n) }
                }
                prop_assert_eq!(&made_here, &expected_made, "made in queued order for {}", chat);
                let mut got_dropped = dropped.get(chat).cloned().unwrap_or_default();
                got_dropped.sort_unstable();
                prop_assert_eq!(got_dropped, expected_dropped.clone());
                for n in expected_dropped {
                    prop_assert!(calls.iter().any(|(m, ends)| *ends && *m > n), "{} dropped with no end after it", n);
                }
                if let Some((last, ends)) = calls.last() {
                    prop_assert!(!ends || made_here.contains(last), "an end is always made");
                }
            }
        }
    }

    #[test]
    fn a_hanging_conversation_holds_up_only_itself() {
        let mut order = CallOrder::new(2);
        order.push("a", "a1", false);
        order.push("a", "a2", false);
        order.push("b", "b1", false);
        assert_eq!(order.start_next(), Some(("a".to_string(), "a1")));
        // a1 hangs: a2 waits for it, b1 goes.
        assert_eq!(order.start_next(), Some(("b".to_string(), "b1")));
        assert_eq!(order.start_next(), None);
        order.done("a");
        assert_eq!(order.start_next(), Some(("a".to_string(), "a2")));
    }

    #[test]
    fn an_end_drops_the_conversations_waiting_calls_not_the_one_under_way() {
        let mut order = CallOrder::new(1);
        order.push("a", "conversation", false);
        assert_eq!(order.start_next(), Some(("a".to_string(), "conversation")));
        assert!(order.push("a", "message", false).is_empty());
        assert_eq!(order.push("a", "conversation_ended", true), vec!["message"]);
        order.done("a");
        assert_eq!(order.start_next(), Some(("a".to_string(), "conversation_ended")));
    }
}
