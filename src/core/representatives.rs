//! Which agent serves an appointment. Pure: the caller gathers the eligible
//! agents and that day's bookings from the store and hands them in.
//!
//! The model: each slot can be booked once **per representative**. A booking either
//! names its representative or is given the eligible agent (holding the category, or
//! any agent when no category is given) who is free at that slot and has the fewest
//! appointments that local day; ties go to the smallest account id, so the choice is
//! the same on every node. A slot is free for the public list when at least one eligible
//! representative is free at it.

/// One eligible agent as the choice sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub id: &'a str,
    /// Booked appointments this agent has on the slot's local day.
    pub booked_that_day: usize,
    /// Whether this agent has no booked appointment starting at the slot.
    pub free_at_slot: bool,
}

/// The representative for a slot: the free candidate with the fewest appointments that
/// day, ties by id; `None` when every candidate is busy then (or there are none).
pub fn choose<'a>(candidates: &[Candidate<'a>]) -> Option<&'a str> {
    candidates
        .iter()
        .filter(|c| c.free_at_slot)
        .min_by(|a, b| a.booked_that_day.cmp(&b.booked_that_day).then_with(|| a.id.cmp(b.id)))
        .map(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_least_booked_free_agent_wins_and_ties_go_to_the_smallest_id() {
        let c = |id, booked_that_day, free_at_slot| Candidate {
            id,
            booked_that_day,
            free_at_slot,
        };
        assert_eq!(choose(&[c("b", 1, true), c("a", 2, true)]), Some("b"));
        assert_eq!(choose(&[c("b", 1, true), c("a", 1, true)]), Some("a"));
        assert_eq!(choose(&[c("a", 0, false), c("b", 3, true)]), Some("b"));
        assert_eq!(choose(&[c("a", 0, false)]), None);
        assert_eq!(choose(&[]), None);
    }

    proptest! {
        /// Over random agents: the choice is free, no free agent has fewer bookings, an
        /// equal one has a larger id; there is no choice exactly when nobody is free; and
        /// the order the candidates come in changes nothing.
        #[test]
        fn the_choice_is_the_least_booked_free_agent(
            agents in proptest::collection::btree_map("[a-e]{1,2}", (0usize..4, any::<bool>()), 0..8),
            rotate in 0usize..8,
        ) {
            let mut candidates: Vec<Candidate> = agents
                .iter()
                .map(|(id, (n, free))| Candidate { id, booked_that_day: *n, free_at_slot: *free })
                .collect();
            let chosen = choose(&candidates);
            prop_assert_eq!(chosen.is_none(), candidates.iter().all(|c| !c.free_at_slot));
            if let Some(id) = chosen {
                let winner = candidates.iter().find(|c| c.id == id).unwrap();
                prop_assert!(winner.free_at_slot);
                for other in candidates.iter().filter(|c| c.free_at_slot) {
                    prop_assert!(
                        (winner.booked_that_day, winner.id) <= (other.booked_that_day, other.id)
                    );
                }
            }
            if !candidates.is_empty() {
                let by = rotate % candidates.len();
                candidates.rotate_left(by);
            }
            prop_assert_eq!(choose(&candidates), chosen);
        }
    }
}
