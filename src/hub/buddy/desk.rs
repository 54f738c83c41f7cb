//! The buddy desk's data: its two rosters, the people on them and their 1-to-1 chats, and
//! the lines under way across nodes; what the hub holds as `HubState::buddies`. What the
//! hub does with it is in `buddy` and its other modules.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::core::presence::{BuddyChatId, BuddyId, Presence, Status};
use crate::core::routing::AgentId;
use crate::hub::buddy_events::Holders;
use crate::hub::delivery::ConnId;
use crate::hub::transcript::Transcript;
use crate::store::{ConversationOpened, Role};

/// Messages kept per buddy chat for a reloading page.
pub(super) const TRANSCRIPT_LIMIT: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Roster {
    Public,
    Staff,
}

pub(super) struct Person {
    pub(super) name: String,
    pub(super) roster: Roster,
    pub(super) role: Option<&'static str>,
    pub(super) key: String,
}

pub(super) struct BuddyChat {
    pub(super) wire_id: String,
    pub(super) transcript: Transcript,
    /// The node that archives the chat (opening, messages, closing, in event order): the
    /// one whose accept opened it, or the heir of its loss. `""` on one node.
    pub(super) archiver: String,
    /// The opening as archived, for an heir to archive again (the store ignores a repeat).
    pub(super) opened: ConversationOpened,
}

#[derive(Default)]
pub(crate) struct BuddyDesk {
    pub(super) public: Presence,
    pub(super) staff: Presence,
    pub(super) people: HashMap<BuddyId, Person>,
    pub(super) by_key: HashMap<String, BuddyId>,
    pub(super) chats: HashMap<(Roster, BuddyChatId), BuddyChat>,
    /// Staff chats and public chats come from two counters; the roster is part of the key.
    pub(super) chat_by_wire: HashMap<String, (Roster, BuddyChatId)>,
    pub(super) next_id: u64,
    // ---- the buddy list across nodes ----
    /// Open connections by node, and who runs which grace timer.
    pub(super) holders: Holders,
    /// Connections of this node whose `buddy_join` has not been applied yet.
    pub(crate) joining: HashSet<ConnId>,
    /// The wire id of the chat the accept being applied opens.
    pub(super) opening_wire: Option<String>,
    /// Buddy chat messages across nodes, off the events stream (`lines`).
    pub(super) lines: super::lines::state::BuddyLines,
    // ---- after Redis lost its data (docs/cluster.md §9) ----
    /// Nodes that held connections, ran timers or archived chats in a restored buddy list
    /// and have not claimed what they still hold: handed on when the restore's pseudo-node
    /// is reaped. Part of the replica.
    pub(super) unclaimed: BTreeSet<String>,
    /// This node hands its buddy list to a restore and has not had its claim applied yet:
    /// joins wait (refused, the page tries again) so the claim counts every connection.
    pub(super) reasserting: bool,
    /// Agents whose desk opened while `reasserting`: announced once the claim is applied.
    pub(super) deferred_desks: BTreeSet<AgentId>,
    /// Agents whose desk this node announced (`DeskOpened`) and has not closed: what its
    /// claim names.
    pub(super) announced_desks: BTreeSet<AgentId>,
    /// The staff keys of the desks whose `DeskOpened` of this process the replica has
    /// applied (and not their close): what a restore this node did not take part in
    /// overwrote, and this node announces again.
    pub(super) applied_desks: BTreeSet<String>,
}

impl BuddyDesk {
    pub(crate) fn online(&self) -> usize {
        self.public.online().count() + self.staff.online().count()
    }

    pub(super) fn presence(&mut self, roster: Roster) -> &mut Presence {
        match roster {
            Roster::Public => &mut self.public,
            Roster::Staff => &mut self.staff,
        }
    }

    pub(super) fn presence_ref(&self, roster: Roster) -> &Presence {
        match roster {
            Roster::Public => &self.public,
            Roster::Staff => &self.staff,
        }
    }

    /// The person behind a key, creating them when the key is new or unknown (a new public
    /// person gets `new_key`).
    pub(super) fn person_for(
        &mut self,
        key: Option<&str>,
        name: &str,
        roster: Roster,
        role: Option<&'static str>,
        new_key: &str,
    ) -> BuddyId {
        if let Some(id) = key.and_then(|k| self.by_key.get(k)).copied()
            && self.people.get(&id).is_some_and(|p| p.roster == roster)
        {
            return id;
        }
        self.next_id += 1;
        let id = BuddyId(self.next_id);
        let key = match (roster, key) {
            (Roster::Staff, Some(k)) => k.to_string(),
            _ => new_key.to_string(),
        };
        self.by_key.insert(key.clone(), id);
        self.people.insert(
            id,
            Person {
                name: name.to_string(),
                roster,
                role,
                key,
            },
        );
        id
    }
}

pub(super) fn status_str(status: Status) -> &'static str {
    match status {
        Status::Available => "available",
        Status::Busy => "busy",
    }
}

pub(super) fn role_str(role: Role) -> &'static str {
    match role {
        Role::Agent => "agent",
        Role::Admin => "admin",
    }
}

pub(super) fn staff_key(account_id: &str) -> String {
    format!("account:{account_id}")
}

/// The account a staff key names ([`staff_key`] read back).
pub(super) fn staff_account(key: &str) -> Option<&str> {
    key.strip_prefix("account:")
}

/// A role as an event carries it back to the name the roster shows.
pub(super) fn role_named(role: Option<&str>) -> Option<&'static str> {
    match role {
        Some("agent") => Some("agent"),
        Some("admin") => Some("admin"),
        _ => None,
    }
}

pub(super) type Refusal = (&'static str, String);
