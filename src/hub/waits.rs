//! What the hub remembers to tell waiting times: when each customer began waiting, when
//! each chat was paired, and each category's recent handle times (`core::wait_estimate`).
//! Fed from the routing decisions, which every node of a cluster applies for every
//! transition (its replica), so each node knows every customer's wait and every chat's
//! handle time, whichever node holds them.

use std::collections::HashMap;

use crate::core::routing::{CategoryId, ChatEnd, ChatId, CustomerId, Decision, Removal};
use crate::core::wait_estimate::{HandleTimes, WaitRange};
use crate::protocol::Estimate;

#[derive(Debug, Default)]
pub struct Waits {
    /// When each customer waiting or chatting first joined (ms); kept through a requeue,
    /// so a customer put back keeps their original wait.
    joined_at: HashMap<CustomerId, i64>,
    /// Each running chat's category and pairing time (ms).
    paired_at: HashMap<ChatId, (CategoryId, i64)>,
    handle_times: HashMap<CategoryId, HandleTimes>,
    /// Each waiting or chatting customer's category now, and whether an agent served them
    /// in this visit: one who leaves the line never served abandoned it (the reports).
    visits: HashMap<CustomerId, (CategoryId, bool)>,
}

/// A customer who left the line before any agent served them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftUnserved {
    pub customer: CustomerId,
    pub category: CategoryId,
    pub joined_at: i64,
}

impl Waits {
    /// Learns from one decision, at `now` (ms); says so when it is a customer leaving the
    /// line unserved.
    pub fn observe(&mut self, decision: &Decision, now: i64) -> Option<LeftUnserved> {
        match decision {
            Decision::Queued { customer, category, .. } => {
                self.joined_at.entry(*customer).or_insert(now);
                let served = self.visits.get(customer).is_some_and(|(_, served)| *served);
                self.visits.insert(*customer, (category.clone(), served));
            }
            Decision::Paired {
                chat,
                category,
                customer,
                ..
            } => {
                self.paired_at.insert(*chat, (category.clone(), now));
                self.visits.insert(*customer, (category.clone(), true));
            }
            Decision::ChatEnded {
                chat, customer, reason, ..
            } => {
                self.joined_at.remove(customer);
                self.visits.remove(customer);
                // Only chats a side ended are handle times: a customer gone (with the grace
                // period in it) or a shutdown would inflate the estimates.
                if let Some((category, at)) = self.paired_at.remove(chat)
                    && *reason == ChatEnd::Ended
                {
                    let secs = u64::try_from((now - at) / 1000).unwrap_or(0);
                    self.handle_times.entry(category).or_default().record(secs);
                }
            }
            // Handed to a category's line: no handle time (it goes on with someone else).
            Decision::ChatWithdrawn { chat, .. } | Decision::ChatToCategory { chat, .. } => {
                self.paired_at.remove(chat);
            }
            Decision::Dequeued { customer, reason } => {
                let joined_at = self.joined_at.remove(customer);
                let visit = self.visits.remove(customer);
                if let (Removal::Left, Some(joined_at), Some((category, false))) = (reason, joined_at, visit) {
                    return Some(LeftUnserved {
                        customer: *customer,
                        category,
                        joined_at,
                    });
                }
            }
            _ => {}
        }
        None
    }

    /// Forgets customers and chats the routing no longer holds: after a cluster node
    /// reloaded its replica (events it skipped ended some without a decision seen here).
    pub fn retain(&mut self, customer_known: impl Fn(CustomerId) -> bool, chat_known: impl Fn(ChatId) -> bool) {
        self.joined_at.retain(|c, _| customer_known(*c));
        self.visits.retain(|c, _| customer_known(*c));
        self.paired_at.retain(|chat, _| chat_known(*chat));
    }

    /// The estimate for `place` in `category` with `slots` chat slots serving it.
    pub fn estimate(&self, category: &CategoryId, place: usize, slots: usize) -> Option<Estimate> {
        let WaitRange { low_mins, high_mins } = self.handle_times.get(category)?.estimate(place, slots)?;
        Some(Estimate { low_mins, high_mins })
    }

    /// How long `customer` has waited (seconds), if known.
    pub fn waited_secs(&self, customer: CustomerId, now: i64) -> Option<f64> {
        self.joined_at
            .get(&customer)
            .map(|at| (now - at).max(0) as f64 / 1000.0)
    }
}
