//! The presence state as plain data, and a `Presence` built from it: how a cluster node
//! writes its replica of the buddy list into a restore of the routing domain after Redis
//! lost its data, and how every node loads it back (`docs/cluster.md` §9). No rule is
//! restated here: what can be derived (who sent or holds which invitation, who is in which
//! chat) is left out of the state and rebuilt from the invitations and chats, so a state
//! cannot contradict itself there; the round trip `Presence::state` →
//! `Presence::from_state` gives back the same `Presence`.

use std::collections::{BTreeMap, BTreeSet};

use super::{BuddyChatId, BuddyId, Invitation, InvitationId, Person, Presence};

/// A person online (or in their leave grace period).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePerson {
    pub id: BuddyId,
    pub name: String,
    pub connections: usize,
    /// The epoch of their leave timer, while no connection is open.
    pub grace: Option<u64>,
}

/// Everything a `Presence` holds that decides anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceState {
    pub people: Vec<StatePerson>,
    pub invitations: Vec<Invitation>,
    /// Each chat and its two members, the inviter first.
    pub chats: Vec<(BuddyChatId, BuddyId, BuddyId)>,
    /// The next invitation, chat and grace epoch to draw.
    pub next_invitation: u64,
    pub next_chat: u64,
    pub next_epoch: u64,
}

impl Default for PresenceState {
    fn default() -> Self {
        Presence::new().state()
    }
}

/// Why a state cannot be a `Presence`: it names someone who is not online, or gives one
/// person two invitations sent or two chats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inconsistent presence state: {0}")]
pub struct InconsistentPresence(pub String);

impl Presence {
    /// This presence's state as plain data.
    pub fn state(&self) -> PresenceState {
        PresenceState {
            people: self
                .people
                .iter()
                .map(|(id, p)| StatePerson {
                    id: *id,
                    name: p.name.clone(),
                    connections: p.connections,
                    grace: p.grace,
                })
                .collect(),
            invitations: self.invitations.values().copied().collect(),
            chats: self.chats.iter().map(|(chat, (a, b))| (*chat, *a, *b)).collect(),
            next_invitation: self.next_invitation,
            next_chat: self.next_chat,
            next_epoch: self.next_epoch,
        }
    }

    /// The presence a state describes.
    pub fn from_state(state: PresenceState) -> Result<Presence, InconsistentPresence> {
        let bad = |what: String| Err(InconsistentPresence(what));
        let mut people: BTreeMap<BuddyId, Person> = BTreeMap::new();
        for p in state.people {
            let person = Person {
                name: p.name,
                connections: p.connections,
                grace: p.grace,
                sent: None,
                held: BTreeSet::new(),
                chat: None,
            };
            if people.insert(p.id, person).is_some() {
                return bad(format!("{:?} twice", p.id));
            }
        }
        let mut invitations: BTreeMap<InvitationId, Invitation> = BTreeMap::new();
        for inv in state.invitations {
            let Some(from) = people.get_mut(&inv.from) else {
                return bad(format!("{:?} from {:?}, who is not online", inv.id, inv.from));
            };
            if from.sent.replace(inv.id).is_some() {
                return bad(format!("{:?} sent two invitations", inv.from));
            }
            let Some(to) = people.get_mut(&inv.to) else {
                return bad(format!("{:?} to {:?}, who is not online", inv.id, inv.to));
            };
            to.held.insert(inv.id);
            invitations.insert(inv.id, inv);
        }
        let mut chats = BTreeMap::new();
        for (chat, a, b) in state.chats {
            for member in [a, b] {
                let Some(person) = people.get_mut(&member) else {
                    return bad(format!("{chat:?} of {member:?}, who is not online"));
                };
                if person.chat.replace(chat).is_some() {
                    return bad(format!("{member:?} in two chats"));
                }
            }
            chats.insert(chat, (a, b));
        }
        Ok(Presence {
            people,
            invitations,
            chats,
            next_invitation: state.next_invitation,
            next_chat: state.next_chat,
            next_epoch: state.next_epoch,
        })
    }
}
