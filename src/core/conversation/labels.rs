//! The labels a conversation carries, and who changes them: its holder or an admin (as for
//! its status), only labels the desk defines, each once, at most [`MAX_LABELS`]. Pure: the
//! caller says whether the label is defined and stores what comes back.
//!
//! Removing is allowed for a label the desk no longer defines (so a deleted label can be
//! taken off); adding or removing what is already so changes nothing and is no error, so a
//! retried click is harmless.

use super::{Actor, Refusal, holder_or_admin};
use crate::core::routing::AgentId;

/// The most labels one conversation carries: more is a list no one reads.
pub const MAX_LABELS: usize = 20;

/// What is asked of one label on a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelChange {
    Add,
    Remove,
}

/// Applies `change` of `label` to `labels` (in the order they were added) on behalf of
/// `by`, on a conversation held by `holder`. `Ok(true)` when `labels` changed.
pub fn relabel(
    labels: &mut Vec<String>,
    holder: Option<&AgentId>,
    by: Actor,
    change: LabelChange,
    label: &str,
    defined: bool,
) -> Result<bool, Refusal> {
    holder_or_admin(holder, by)?;
    let carried = labels.iter().any(|l| l == label);
    match change {
        LabelChange::Add if carried => Ok(false),
        LabelChange::Add if !defined => Err(Refusal::UnknownLabel),
        LabelChange::Add if labels.len() >= MAX_LABELS => Err(Refusal::TooManyLabels),
        LabelChange::Add => {
            labels.push(label.to_string());
            Ok(true)
        }
        LabelChange::Remove if carried => {
            labels.retain(|l| l != label);
            Ok(true)
        }
        LabelChange::Remove => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ann() -> AgentId {
        AgentId("ann".into())
    }

    #[test]
    fn only_the_holder_or_an_admin_changes_labels() {
        let mut labels = vec![];
        let bob = AgentId("bob".into());
        let refused = relabel(
            &mut labels,
            Some(&ann()),
            Actor::Agent(&bob),
            LabelChange::Add,
            "vip",
            true,
        );
        assert_eq!(refused, Err(Refusal::NotYours));
        let customer = relabel(
            &mut labels,
            Some(&ann()),
            Actor::Customer,
            LabelChange::Add,
            "vip",
            true,
        );
        assert_eq!(customer, Err(Refusal::NotForCustomers));
        assert!(labels.is_empty(), "a refusal changes nothing");
        assert_eq!(
            relabel(
                &mut labels,
                Some(&ann()),
                Actor::Agent(&ann()),
                LabelChange::Add,
                "vip",
                true
            ),
            Ok(true)
        );
        assert_eq!(
            relabel(&mut labels, None, Actor::Admin, LabelChange::Add, "bug", true),
            Ok(true)
        );
        assert_eq!(labels, ["vip", "bug"]);
    }

    #[test]
    fn an_undefined_label_is_refused_but_can_be_taken_off() {
        let mut labels = vec!["gone".to_string()];
        let add = relabel(&mut labels, None, Actor::Admin, LabelChange::Add, "nope", false);
        assert_eq!(add, Err(Refusal::UnknownLabel));
        assert_eq!(
            relabel(&mut labels, None, Actor::Admin, LabelChange::Remove, "gone", false),
            Ok(true)
        );
        assert!(labels.is_empty());
    }

    proptest! {
        /// Over any sequence of changes by anyone: each label at most once, never more than
        /// MAX_LABELS, never an undefined label added, and a refused change changes nothing.
        #[test]
        fn labels_stay_unique_bounded_and_defined(
            steps in proptest::collection::vec((0u8..3, any::<bool>(), 0usize..30), 0..200)
        ) {
            let (holder, bob) = (ann(), AgentId("bob".into()));
            let mut labels: Vec<String> = vec![];
            for (who, add, n) in steps {
                let label = format!("l{n}");
                // Labels l0..l24 are defined; the rest are not.
                let defined = n < 25;
                let by = match who { 0 => Actor::Admin, 1 => Actor::Agent(&holder), _ => Actor::Agent(&bob) };
                let change = if add { LabelChange::Add } else { LabelChange::Remove };
                let before = labels.clone();
                match relabel(&mut labels, Some(&holder), by, change, &label, defined) {
                    Ok(changed) => prop_assert_eq!(changed, before != labels),
                    Err(_) => prop_assert_eq!(&before, &labels),
                }
                let mut unique = labels.clone();
                unique.sort();
                unique.dedup();
                prop_assert_eq!(unique.len(), labels.len());
                prop_assert!(labels.len() <= MAX_LABELS);
                prop_assert!(labels.iter().all(|l| l[1..].parse::<usize>().unwrap() < 25));
            }
        }
    }
}
