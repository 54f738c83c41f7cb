//! Places in line, computed from routing decisions rather than from the queues themselves:
//! a node of a cluster mirrors the order of the queues from the routing events stream
//! (`Queued` with its ticket, `Paired`, `Dequeued`) and tells waiting customers their new
//! place without asking Redis per update. Same contract as [`Routing::flush_places`]:
//! after a flush, every waiting customer has been told their current place, and nobody is
//! told a place that did not change.
//!
//! Pure and synchronous; `tests/cluster_routing/` checks it against the core's own flush.
//!
//! [`Routing::flush_places`]: super::routing::Routing::flush_places

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::routing::{CategoryId, CustomerId, Decision, Ticket};

#[derive(Debug, Clone)]
struct Waiting {
    category: CategoryId,
    ticket: Ticket,
    /// The place this customer was last told.
    told: usize,
}

/// A mirror of the queues' order and of the places told. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Places {
    queues: BTreeMap<CategoryId, BTreeSet<(Ticket, CustomerId)>>,
    waiting: HashMap<CustomerId, Waiting>,
    /// Queues changed since the last flush.
    dirty: BTreeSet<CategoryId>,
}

impl Places {
    pub fn new() -> Self {
        Self::default()
    }

    /// A customer entered a queue with `ticket` and was told `place` (a `Queued` decision).
    pub fn queued(&mut self, customer: CustomerId, category: CategoryId, ticket: Ticket, place: usize) {
        self.removed(customer);
        self.queues
            .entry(category.clone())
            .or_default()
            .insert((ticket, customer));
        self.dirty.insert(category.clone());
        self.waiting.insert(
            customer,
            Waiting {
                category,
                ticket,
                told: place,
            },
        );
    }

    /// A customer stopped waiting (paired, left, or their category went). Unknown ones are ignored.
    pub fn removed(&mut self, customer: CustomerId) {
        let Some(w) = self.waiting.remove(&customer) else {
            return;
        };
        if let Some(queue) = self.queues.get_mut(&w.category) {
            queue.remove(&(w.ticket, customer));
            if queue.is_empty() {
                self.queues.remove(&w.category);
            }
        }
        self.dirty.insert(w.category);
    }

    /// Tells every waiting customer of a changed queue their new place, if it changed.
    pub fn flush(&mut self, out: &mut Vec<Decision>) {
        for category in std::mem::take(&mut self.dirty) {
            let Some(queue) = self.queues.get(&category) else {
                continue;
            };
            for (index, (_, customer)) in queue.iter().enumerate() {
                let w = self.waiting.get_mut(customer).expect("queued customers are waiting");
                let place = index + 1;
                if w.told != place {
                    w.told = place;
                    out.push(Decision::PlaceChanged {
                        customer: *customer,
                        place,
                    });
                }
            }
        }
    }

    /// Replaces the queues with a fresh read of them (after falling behind the events):
    /// customers still waiting keep the place they were last told, so the next flush tells
    /// those whose place moved meanwhile; customers not seen before are told at the next
    /// flush (possibly their place once more: their own node told them on joining).
    pub fn reload(&mut self, queues: impl IntoIterator<Item = (CategoryId, Vec<(Ticket, CustomerId)>)>) {
        let previous = std::mem::take(&mut self.waiting);
        self.queues.clear();
        self.dirty.clear();
        for (category, queue) in queues {
            for (ticket, customer) in queue {
                let told = previous.get(&customer).map_or(0, |w| w.told);
                self.queues
                    .entry(category.clone())
                    .or_default()
                    .insert((ticket, customer));
                self.waiting.insert(
                    customer,
                    Waiting {
                        category: category.clone(),
                        ticket,
                        told,
                    },
                );
            }
            self.dirty.insert(category);
        }
    }

    /// The place this customer was last told, while waiting.
    pub fn told(&self, customer: CustomerId) -> Option<usize> {
        self.waiting.get(&customer).map(|w| w.told)
    }

    /// The customer's current place (1-based), or `None` when not waiting.
    pub fn place(&self, customer: CustomerId) -> Option<usize> {
        let w = self.waiting.get(&customer)?;
        Some(self.queues[&w.category].range(..(w.ticket, customer)).count() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(name: &str) -> CategoryId {
        CategoryId::from(name.to_string())
    }

    /// The decisions that tell each `(customer, place)` their new place, in this order.
    fn told(places: &[(u64, usize)]) -> Vec<Decision> {
        places
            .iter()
            .map(|&(customer, place)| Decision::PlaceChanged {
                customer: CustomerId(customer),
                place,
            })
            .collect()
    }

    #[test]
    fn places_move_up_when_someone_ahead_leaves_and_only_changes_are_told() {
        let mut p = Places::new();
        for i in 1..=3 {
            p.queued(CustomerId(i), cat("sales"), Ticket(10 + i), i as usize);
        }
        let mut out = vec![];
        p.flush(&mut out);
        assert!(out.is_empty(), "everyone was told their place on joining");
        p.removed(CustomerId(1));
        p.flush(&mut out);
        assert_eq!(out, told(&[(2, 1), (3, 2)]));
        assert_eq!(p.place(CustomerId(3)), Some(2));
        assert_eq!(p.place(CustomerId(1)), None);
    }

    #[test]
    fn a_reload_tells_only_those_whose_place_moved_and_newcomers() {
        let mut p = Places::new();
        p.queued(CustomerId(1), cat("sales"), Ticket(1), 1);
        p.queued(CustomerId(2), cat("sales"), Ticket(2), 2);
        p.queued(CustomerId(3), cat("sales"), Ticket(3), 3);
        // Meanwhile 1 was paired and 4 joined.
        p.reload([(
            cat("sales"),
            vec![
                (Ticket(2), CustomerId(2)),
                (Ticket(3), CustomerId(3)),
                (Ticket(4), CustomerId(4)),
            ],
        )]);
        let mut out = vec![];
        p.flush(&mut out);
        assert_eq!(out, told(&[(2, 1), (3, 2), (4, 3)]));
        assert_eq!(p.place(CustomerId(1)), None);
    }

    #[test]
    fn someone_put_back_at_the_front_moves_the_others_down() {
        let mut p = Places::new();
        p.queued(CustomerId(5), cat("sales"), Ticket(5), 1);
        p.queued(CustomerId(1), cat("sales"), Ticket(1), 1);
        let mut out = vec![];
        p.flush(&mut out);
        assert_eq!(out, told(&[(5, 2)]));
    }
}
