//! Who wrote each agent line of a conversation, as its archive tells it. The archive keeps
//! no author with a line, but it keeps every hand-on: each transfer (a live chat's, or a
//! reassignment from the inbox, archived as one) names the agent who handed the
//! conversation on and the last seq said before it. So the lines up to the first
//! hand-on are its first agent's, those up to the next one the next agent's, and those after
//! the last hand-on are the agent the archive names as the conversation's now.
//!
//! Pure: the caller passes the hand-ons in the archive's order (by time) and the name of the
//! archive's agent now.

/// One hand-on as the archive keeps it: the agent who handed the conversation on, by name,
/// and the last seq said before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandOn {
    pub after_seq: u64,
    pub from_name: String,
}

/// Names the authors of a conversation's agent lines by their seq.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineAuthors {
    /// The agents in turn, each with the last seq said in their turn (in seq order).
    turns: Vec<(u64, String)>,
    /// The agent whose lines come after the last hand-on.
    last: String,
}

impl LineAuthors {
    /// The authors as `hand_ons` (in the archive's order) and the archive's agent now
    /// (`last`) say. A hand-on whose seq goes back before one kept earlier (two made at
    /// once) ends no turn of its own: the later turn holds those lines. Nor does one from
    /// nobody (no name: an offline message taken from its line), which no agent held: the
    /// lines up to it are the next turn's (its taker may write before the take is archived,
    /// and the take names the last seq known then).
    pub fn new(hand_ons: impl IntoIterator<Item = HandOn>, last: impl Into<String>) -> Self {
        let mut turns: Vec<(u64, String)> = Vec::new();
        for HandOn { after_seq, from_name } in hand_ons {
            if from_name.is_empty() || turns.last().is_some_and(|(through, _)| *through >= after_seq) {
                continue;
            }
            turns.push((after_seq, from_name));
        }
        Self {
            turns,
            last: last.into(),
        }
    }

    /// The turns that ended, in order: each agent (by name) with the last seq of their turn.
    pub fn turns(&self) -> impl Iterator<Item = (u64, &str)> {
        self.turns.iter().map(|(through, name)| (*through, name.as_str()))
    }

    /// The agent who wrote the agent line stamped `seq`.
    pub fn of(&self, seq: u64) -> &str {
        self.earlier(seq).unwrap_or(self.last.as_str())
    }

    /// The agent whose ended turn holds the line stamped `seq`; `None` past every hand-on
    /// (a line of the agent now).
    pub fn earlier(&self, seq: u64) -> Option<&str> {
        self.turns
            .iter()
            .find(|(through, _)| seq <= *through)
            .map(|(_, name)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hand_on(after_seq: u64, from_name: &str) -> HandOn {
        HandOn {
            after_seq,
            from_name: from_name.into(),
        }
    }

    #[test]
    fn each_line_is_the_agent_s_whose_turn_it_was() {
        let authors = LineAuthors::new([hand_on(3, "Ann"), hand_on(7, "Bob")], "Cy");
        let names: Vec<&str> = (1..=9).map(|seq| authors.of(seq)).collect();
        assert_eq!(names, ["Ann", "Ann", "Ann", "Bob", "Bob", "Bob", "Bob", "Cy", "Cy"]);
        assert_eq!(authors.turns().collect::<Vec<_>>(), [(3, "Ann"), (7, "Bob")]);
    }

    #[test]
    fn a_line_past_every_hand_on_is_no_earlier_agent_s() {
        let authors = LineAuthors::new([hand_on(3, "Ann"), hand_on(7, "Bob")], "Cy");
        let earlier: Vec<Option<&str>> = [1, 3, 4, 7, 8].into_iter().map(|seq| authors.earlier(seq)).collect();
        assert_eq!(earlier, [Some("Ann"), Some("Ann"), Some("Bob"), Some("Bob"), None]);
        assert_eq!(LineAuthors::new([], "Ann").earlier(1), None);
    }

    #[test]
    fn a_hand_on_going_back_ends_no_turn() {
        let authors = LineAuthors::new([hand_on(5, "Ann"), hand_on(5, "Bob"), hand_on(6, "Cy")], "Di");
        assert_eq!(authors.turns().collect::<Vec<_>>(), [(5, "Ann"), (6, "Cy")]);
    }

    /// An offline message taken from its line is handed on by nobody (no name), after the
    /// last seq known when the take was archived: a line its taker wrote before that names
    /// the taker, never nobody.
    #[test]
    fn a_hand_on_from_nobody_names_no_lines() {
        let authors = LineAuthors::new([hand_on(4, ""), hand_on(6, "Ann")], "Bob");
        let names: Vec<&str> = (1..=7).map(|seq| authors.of(seq)).collect();
        assert_eq!(names, ["Ann", "Ann", "Ann", "Ann", "Ann", "Ann", "Bob"]);
        assert_eq!(authors.turns().collect::<Vec<_>>(), [(6, "Ann")]);
        assert_eq!(LineAuthors::new([hand_on(4, "")], "Ann").of(3), "Ann");
    }

    #[test]
    fn without_a_hand_on_every_line_is_the_agent_s_now() {
        let authors = LineAuthors::new([], "Ann");
        assert_eq!(authors.of(1), "Ann");
        assert_eq!(authors.of(100), "Ann");
    }

    #[test]
    fn a_hand_on_before_any_line_gives_its_agent_none() {
        let authors = LineAuthors::new([hand_on(0, "Ann"), hand_on(2, "Bob")], "Cy");
        assert_eq!((authors.of(1), authors.of(2), authors.of(3)), ("Bob", "Bob", "Cy"));
    }

    proptest! {
        /// Every line has one author; the authors go in the hand-ons' order and never back
        /// (a line later in seq is never an earlier turn's); past every hand-on it is the
        /// agent now.
        #[test]
        fn turns_follow_one_another(seqs in prop::collection::vec(0..40u64, 0..6), probe in 0..60u64) {
            let hand_ons: Vec<HandOn> = seqs.iter().enumerate().map(|(i, s)| hand_on(*s, &format!("a{i}"))).collect();
            let authors = LineAuthors::new(hand_ons, "now");
            let turn = |name: &str| if name == "now" { usize::MAX } else { name[1..].parse::<usize>().unwrap() };
            prop_assert!(turn(authors.of(probe)) <= turn(authors.of(probe + 1)));
            if seqs.iter().all(|s| *s < probe) {
                prop_assert_eq!(authors.of(probe), "now");
            }
        }
    }
}
