//! What the buddy lines across nodes keep on this node between commands
//! (`BuddyDesk::lines`): the lines held until they can be judged, the lines stamped here and
//! awaited, the chats seen to end, the reads of chats' logs under way. `lines` works on it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::cluster::buddy_line::BuddyLine;
use crate::core::presence::BuddyId;
use crate::core::presence::stamps::EntryId;
use crate::hub::delivery::ConnId;
use crate::store::{ConversationClosed, ConversationOpened};

/// A chat this node saw end, as far as late lines and the archive need it.
pub(super) struct Ended {
    /// Inviter first.
    pub(super) members: (BuddyId, BuddyId),
    /// The events stream entry that ended it.
    pub(super) at: EntryId,
    /// The last seq kept or dropped.
    pub(super) last_seq: u64,
    pub(super) archiver: String,
    /// For an heir that archives it again.
    pub(super) opened: ConversationOpened,
    pub(super) closing: ConversationClosed,
}

/// What waits for a read of a chat's log.
pub(crate) enum AfterRead {
    /// A page of `who` joined here while `who` is in the chat: its welcome.
    Welcome { conn: ConnId, who: BuddyId },
    /// This node inherited the chat's archive: the log's lines of the chat go to the
    /// archive again (the store ignores what it has).
    Rearchive,
    /// This node archives the chat, which ended: the closing, after the late lines.
    Close(ConversationClosed),
    /// Nothing: a read that must not join one under way (at the end).
    CatchUp,
}

/// The lines under way on this node.
#[derive(Default)]
pub(crate) struct BuddyLines {
    /// Lines not yet next in their chat's order, or that the replica cannot judge yet.
    pub(super) pending: HashMap<String, BTreeMap<u64, BuddyLine>>,
    /// Lines this node stamped and has not kept or dropped: the page that sent each.
    pub(super) awaiting: HashMap<(String, u64), (ConnId, Option<String>)>,
    pub(super) ended: HashMap<String, Ended>,
    pub(super) ended_order: VecDeque<String>,
    /// The reads of each chat's log under way, oldest first, with what waits for each.
    pub(super) reading: HashMap<String, VecDeque<Vec<AfterRead>>>,
    /// The replica loaded a restore's routing state and not yet its buddy list (the next
    /// command): no line is judged meanwhile, against a list the restore replaces.
    pub(super) restore_due: bool,
}
