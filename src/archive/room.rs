//! The archive's room: which events the bounded archive may still take, so that a
//! full archive refuses new messages and new conversations, never the closing of one
//! it holds. Pure and synchronous; the archive wraps it in a lock.
//!
//! Every event not yet in the store (in memory or in the spool) is *held*. Every open
//! conversation has one slot *reserved* for its closing, taken when it opens, so a
//! closing always fits. A message needs one free slot; an opening needs two (itself and
//! its closing's reservation). Free slots are the capacity minus both.

/// The accounting of the archive's capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    capacity: usize,
    held: usize,
    reserved_closings: usize,
}

impl Room {
    /// An empty archive of `capacity` events (`ARCHIVE_BUFFER`).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            held: 0,
            reserved_closings: 0,
        }
    }

    fn free(&self) -> usize {
        self.capacity.saturating_sub(self.held + self.reserved_closings)
    }

    /// Events held and not yet in the store.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held
    }

    /// Whether a message would be taken now (nothing changes).
    pub fn has_room_for_message(&self) -> bool {
        self.free() >= 1
    }

    /// Takes a message if there is room.
    pub fn admit_message(&mut self) -> bool {
        let ok = self.has_room_for_message();
        if ok {
            self.held += 1;
        }
        ok
    }

    /// How many conversations could open now, each with its closing reserved.
    pub fn openings_available(&self) -> usize {
        self.free() / 2
    }

    /// Takes an opening and reserves its closing, if there is room for both.
    pub fn admit_opening(&mut self) -> bool {
        let ok = self.openings_available() >= 1;
        if ok {
            self.held += 1;
            self.reserved_closings += 1;
        }
        ok
    }

    /// Takes an opening and reserves its closing even past the capacity: a chat whose
    /// archiving a node takes over from another (a cluster's hand-over) is running
    /// already, and its messages are kept only after its opening. Bounded by the chats
    /// running, not by what clients send.
    pub fn admit_opening_anyway(&mut self) {
        self.held += 1;
        self.reserved_closings += 1;
    }

    /// Takes a closing into the slot its opening reserved. A closing without a
    /// reservation (a conversation opened before this accounting, such as one replayed
    /// from the spool) takes a free slot; only with neither is it refused.
    pub fn admit_closing(&mut self) -> bool {
        if self.reserved_closings > 0 {
            self.reserved_closings -= 1;
        } else if self.free() == 0 {
            return false;
        }
        self.held += 1;
        true
    }

    /// Takes the closing of a conversation another node opened (and reserved its closing
    /// on), even past the capacity: a dead node's, ended by the node that took it over.
    /// Bounded by the conversations that node held, not by what clients send.
    pub fn admit_closing_anyway(&mut self) {
        self.held += 1;
    }

    /// Gives back the slot reserved for a conversation's closing that this archive will
    /// not write after all: another node archives the conversation from now on (a cluster
    /// hands a chat's archiving on when its customer moves). Without it each hand-off would
    /// keep one slot reserved for good.
    pub fn release_closing(&mut self) {
        self.reserved_closings = self.reserved_closings.saturating_sub(1);
    }

    /// Events already held when the archive starts (replayed from the spool); they may
    /// exceed the capacity, which then refuses until they are written.
    pub fn hold_replayed(&mut self, n: usize) {
        self.held += n;
    }

    /// `n` held events are now in the store.
    pub fn written(&mut self, n: usize) {
        self.held = self.held.saturating_sub(n);
    }

    /// Less than half of the capacity is in use: the time to say the overflow is over.
    pub fn below_half(&self) -> bool {
        self.held + self.reserved_closings < self.capacity / 2
    }
}

#[cfg(test)]
mod tests;
