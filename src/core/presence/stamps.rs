//! Where a buddy chat message stands against its chat (docs/cluster.md §15), as a pure
//! rule every node's replica applies alike.
//!
//! Across nodes a buddy chat's messages are stamped in the chat's own log, not in the
//! routing events stream that orders the buddy list; each carries `p`, the stream's newest
//! entry when it was stamped. Since Redis runs one script at a time, the message comes
//! after every stream entry up to `p` and before every later one: one order for both. A
//! message belongs to its chat iff the chat was running once the stream up to `p` was
//! applied, i.e. the entry that ended it (if any) comes after `p`. Every replica that has
//! applied the stream up to `p` decides the same; one that has not waits.
//!
//! Invariants (the property test checks them over random streams, stamps and paces):
//! - every replica that decides, decides the same for a message, and it is the truth of
//!   the stream's order;
//! - of one chat's messages in stamp order, those kept come before those dropped, so the
//!   kept ones hold a gapless run of the chat's seqs.

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl EntryId {
    /// `None` for anything but `<ms>-<seq>`.
    pub fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-')?;
        Some(EntryId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// What a replica knows of a message's chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatAt {
    /// Running in the replica.
    Running,
    /// Ended by this stream entry.
    EndedAt(EntryId),
    /// Not known: not started as far as the replica has applied, or ended so long ago
    /// that the replica no longer keeps its end.
    Unknown,
}

/// What a replica does with a message now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The replica has not applied the stream up to `p`: ask again after it has.
    Wait,
    /// The message belongs to its chat: record, deliver, archive, acknowledge.
    Keep,
    /// Stamped after its chat's end: nobody keeps it; its sender is refused.
    Drop,
}

/// The verdict on a message stamped at `p`, by a replica that has applied the stream up
/// to `applied` and knows `chat` so.
pub fn verdict(p: EntryId, applied: EntryId, chat: ChatAt) -> Verdict {
    match chat {
        // Ended at `end`: known whatever the replica's pace, since it applied `end`.
        ChatAt::EndedAt(end) if p < end => Verdict::Keep,
        ChatAt::EndedAt(_) => Verdict::Drop,
        _ if applied < p => Verdict::Wait,
        ChatAt::Running => Verdict::Keep,
        ChatAt::Unknown => Verdict::Drop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entry_ids_read_and_order_as_redis_does() {
        let a = EntryId::parse("1700000000000-0").unwrap();
        let b = EntryId::parse("1700000000000-1").unwrap();
        let c = EntryId::parse("1700000000001-0").unwrap();
        assert!(a < b && b < c);
        assert_eq!(EntryId::parse("0-0"), Some(EntryId::default()));
        assert_eq!(EntryId::parse("17"), None);
        assert_eq!(EntryId::parse("a-1"), None);
    }

    /// One step of the history Redis sees, in its order: a stream entry starting or
    /// ending the chat, another entry, or a message stamped in the chat's log.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        Start,
        End,
        Other,
        Stamp,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![1 => Just(Step::Start), 1 => Just(Step::End), 3 => Just(Step::Other), 5 => Just(Step::Stamp)]
    }

    /// What a replica that applied the first `n` stream entries knows of the chat.
    fn chat_at(entries: &[(EntryId, Step)], n: usize) -> ChatAt {
        let mut at = ChatAt::Unknown;
        for (id, step) in &entries[..n] {
            match step {
                Step::Start if at == ChatAt::Unknown => at = ChatAt::Running,
                Step::End if at == ChatAt::Running => at = ChatAt::EndedAt(*id),
                _ => {}
            }
        }
        at
    }

    proptest! {
        /// Random histories (one chat started and ended at most once, other entries,
        /// messages stamped between them; a message is only sent while its sender's
        /// replica saw the chat running) judged by replicas at random paces: a replica
        /// that decides agrees with the truth (running after the entries up to `p`), one
        /// behind `p` on a running chat waits, and kept messages precede dropped ones.
        #[test]
        fn every_replica_decides_as_the_streams_order_says(
            steps in proptest::collection::vec(step(), 1..40),
            paces in proptest::collection::vec(0usize..50, 1..6),
        ) {
            let mut entries: Vec<(EntryId, Step)> = vec![];
            // Each message: its p (the newest entry then), and whether the chat ran then.
            let mut stamps: Vec<(EntryId, bool)> = vec![];
            let mut ran = false;
            let mut ended = false;
            let mut next = 1u64;
            for s in steps {
                match s {
                    Step::Stamp => {
                        // Sent only after its sender saw the chat start.
                        if ran {
                            let p = entries.last().map(|(id, _)| *id).unwrap_or_default();
                            stamps.push((p, !ended));
                        }
                    }
                    s => {
                        let id = EntryId { ms: next / 3, seq: next % 3 };
                        next += 1;
                        match s {
                            Step::Start if !ran => ran = true,
                            Step::End if ran && !ended => ended = true,
                            _ => {}
                        }
                        entries.push((id, s));
                    }
                }
            }
            for pace in paces {
                let n = pace.min(entries.len());
                let applied = if n == 0 { EntryId::default() } else { entries[n - 1].0 };
                let at = chat_at(&entries, n);
                let mut seen_drop = false;
                for (p, truth) in &stamps {
                    match verdict(*p, applied, at) {
                        Verdict::Wait => {
                            prop_assert!(applied < *p, "waits only when behind p");
                        }
                        Verdict::Keep => {
                            prop_assert!(*truth, "kept a message stamped after the end");
                            prop_assert!(!seen_drop, "a kept message after a dropped one");
                        }
                        Verdict::Drop => {
                            prop_assert!(!*truth, "dropped a message of the running chat");
                            seen_drop = true;
                        }
                    }
                }
                // A replica past every entry decides every message.
                let all = chat_at(&entries, entries.len());
                let last = entries.last().map(|(id, _)| *id).unwrap_or_default();
                for (p, truth) in &stamps {
                    let v = verdict(*p, last, all);
                    prop_assert_eq!(v == Verdict::Keep, *truth);
                }
            }
        }
    }
}
