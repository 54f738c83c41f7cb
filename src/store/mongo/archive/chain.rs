//! One conversation's buckets as a writer knows them: the rule that stores each message
//! once (why, in `mongo.rs`'s opening comment). Pure: the I/O is in `archive.rs`.
//!
//! A conversation's buckets take the slots 0, 1, 2 … with no gap, one bucket a slot (the
//! slot is in the bucket's `_id`, which the server keeps unique). A writer takes slot n
//! only when it knows every seq the buckets in slots below n hold, and puts in it only
//! messages none of them holds. If another write took slot n first (a retry racing the
//! write it retries, or that write landing late), the server refuses ours as a duplicate
//! key: we read what slot n holds, take those messages off ours and try slot n + 1. So two
//! buckets never share a message: the later one's writer knew what the earlier one held.

use rangemap::RangeInclusiveSet;

/// What a writer knows of one conversation's buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(in crate::store::mongo) struct Chain {
    /// The slot the next bucket takes: every slot below it is taken, and known here.
    next_slot: u64,
    /// Every seq held by the buckets below `next_slot`, and by buckets of the earlier
    /// layout (no slot), which were read with them.
    stored: RangeInclusiveSet<u64>,
}

impl Chain {
    /// The slot the next bucket of the conversation takes.
    pub(super) fn next_slot(&self) -> u64 {
        self.next_slot
    }

    /// Is the message `seq` in a bucket already?
    pub(super) fn holds(&self, seq: u64) -> bool {
        self.stored.contains(&seq)
    }

    /// Counts a bucket known to be in the database (written by us, or read): the one in
    /// `slot`, or one of the earlier layout (`None`), holding `seqs`.
    pub(super) fn record(&mut self, slot: Option<u64>, seqs: impl IntoIterator<Item = u64>) {
        for seq in seqs {
            self.stored.insert(seq..=seq);
        }
        if let Some(slot) = slot {
            self.next_slot = self.next_slot.max(slot + 1);
        }
    }

    /// Of two views of the same conversation, the one that knows more: the later slot.
    /// (Each knows what every slot below its own holds, and a slot's content never changes.)
    pub(super) fn newer(self, other: Chain) -> Chain {
        if other.next_slot > self.next_slot { other } else { self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_counts_the_buckets_it_knows_and_the_seqs_they_hold() {
        let mut chain = Chain::default();
        assert_eq!(chain.next_slot(), 0);
        chain.record(Some(0), 1..=79);
        chain.record(Some(1), [80]);
        assert_eq!(chain.next_slot(), 2);
        assert!((1..=80).all(|s| chain.holds(s)) && !chain.holds(81));
        // A bucket of the earlier layout takes no slot.
        chain.record(None, [200, 201]);
        assert_eq!(chain.next_slot(), 2);
        assert!(chain.holds(200) && !chain.holds(199));
        // Buckets read out of order: the next slot is past the highest.
        let mut read = Chain::default();
        read.record(Some(3), [9]);
        read.record(Some(0), [1]);
        assert_eq!(read.next_slot(), 4);
    }

    #[test]
    fn of_two_views_the_one_further_along_wins() {
        let mut behind = Chain::default();
        behind.record(Some(0), [1]);
        let mut ahead = behind.clone();
        ahead.record(Some(1), [2, 3]);
        assert_eq!(behind.clone().newer(ahead.clone()), ahead);
        assert_eq!(ahead.clone().newer(behind), ahead);
    }
}
