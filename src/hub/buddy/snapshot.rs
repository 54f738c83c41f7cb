//! The buddy desk as data: what a node writes into the restore of a routing domain Redis
//! lost (with its routing replica, `cluster::restore`), and what every node loads back
//! from the restore entry (`docs/cluster.md` §9, "Back empty: the buddy list"). The rules'
//! state comes from the presence core (`Presence::state`); this adds what the adapter
//! keeps around it: people and their keys, chats with their transcripts and archivers,
//! and who holds which connection on which node.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::desk::{BuddyChat, BuddyDesk, Person, Roster, TRANSCRIPT_LIMIT, role_named};
use crate::core::presence::{
    BuddyChatId, BuddyId, InconsistentPresence, Invitation, InvitationId, Presence, PresenceState, StatePerson,
};
use crate::hub::buddy_events::{Held, Holders};
use crate::hub::transcript::Transcript;
use crate::store::ConversationOpened;

/// One roster's presence core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RosterSnapshot {
    /// `[id, name, connections, grace epoch]`.
    people: Vec<(u64, String, usize, Option<u64>)>,
    /// `[invitation, from, to]`.
    invitations: Vec<(u64, u64, u64)>,
    /// `[chat, inviter, invitee]`.
    chats: Vec<(u64, u64, u64)>,
    next_invitation: u64,
    next_chat: u64,
    next_epoch: u64,
}

impl RosterSnapshot {
    fn of(presence: &Presence) -> Self {
        let state = presence.state();
        Self {
            people: state
                .people
                .into_iter()
                .map(|p| (p.id.0, p.name, p.connections, p.grace))
                .collect(),
            invitations: state.invitations.iter().map(|i| (i.id.0, i.from.0, i.to.0)).collect(),
            chats: state.chats.iter().map(|(c, a, b)| (c.0, a.0, b.0)).collect(),
            next_invitation: state.next_invitation,
            next_chat: state.next_chat,
            next_epoch: state.next_epoch,
        }
    }

    fn load(self) -> Result<Presence, InconsistentPresence> {
        Presence::from_state(PresenceState {
            people: self
                .people
                .into_iter()
                .map(|(id, name, connections, grace)| StatePerson {
                    id: BuddyId(id),
                    name,
                    connections,
                    grace,
                })
                .collect(),
            invitations: self
                .invitations
                .into_iter()
                .map(|(id, from, to)| Invitation {
                    id: InvitationId(id),
                    from: BuddyId(from),
                    to: BuddyId(to),
                })
                .collect(),
            chats: self
                .chats
                .into_iter()
                .map(|(c, a, b)| (BuddyChatId(c), BuddyId(a), BuddyId(b)))
                .collect(),
            next_invitation: self.next_invitation,
            next_chat: self.next_chat,
            next_epoch: self.next_epoch,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PersonSnapshot {
    id: u64,
    name: String,
    staff: bool,
    role: Option<String>,
    key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChatSnapshot {
    staff: bool,
    id: u64,
    wire_id: String,
    /// The last seq, and the kept messages' frames (seq, frame), oldest first.
    seq: u64,
    frames: Vec<(u64, String)>,
    archiver: String,
    opened: ConversationOpened,
}

/// The buddy desk of one node, as the restore entry carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BuddySnapshot {
    public: RosterSnapshot,
    staff: RosterSnapshot,
    people: Vec<PersonSnapshot>,
    chats: Vec<ChatSnapshot>,
    next_id: u64,
    /// `[person, node, pages, desks]`.
    held: Vec<(u64, String, u32, u32)>,
    /// `[person, node running the timer, epoch]`.
    timers: Vec<(u64, String, u64)>,
    /// Nodes of an earlier restore that have not claimed their people yet.
    unclaimed: Vec<String>,
}

impl Default for BuddySnapshot {
    fn default() -> Self {
        BuddyDesk::default().snapshot()
    }
}

/// Why a snapshot cannot be a desk.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BadSnapshot {
    #[error(transparent)]
    Presence(#[from] InconsistentPresence),
    #[error("inconsistent buddy snapshot: {0}")]
    Desk(String),
}

fn roster_of(staff: bool) -> Roster {
    if staff { Roster::Staff } else { Roster::Public }
}

impl BuddyDesk {
    /// The desk's replica of the buddy list as data (this node's joins under way and its
    /// other local bookkeeping are not part of it).
    pub(crate) fn snapshot(&self) -> BuddySnapshot {
        let mut people: Vec<PersonSnapshot> = self
            .people
            .iter()
            .map(|(id, p)| PersonSnapshot {
                id: id.0,
                name: p.name.clone(),
                staff: p.roster == Roster::Staff,
                role: p.role.map(str::to_string),
                key: p.key.clone(),
            })
            .collect();
        people.sort_by_key(|p| p.id);
        let mut chats: Vec<ChatSnapshot> = self
            .chats
            .iter()
            .map(|((roster, id), chat)| {
                let (seq, frames) = chat.transcript.parts();
                ChatSnapshot {
                    staff: *roster == Roster::Staff,
                    id: id.0,
                    wire_id: chat.wire_id.clone(),
                    seq,
                    frames,
                    archiver: chat.archiver.clone(),
                    opened: chat.opened.clone(),
                }
            })
            .collect();
        chats.sort_by_key(|c| (c.staff, c.id));
        let (held, timers) = self.holders.parts();
        BuddySnapshot {
            public: RosterSnapshot::of(&self.public),
            staff: RosterSnapshot::of(&self.staff),
            people,
            chats,
            next_id: self.next_id,
            held: held
                .into_iter()
                .map(|(who, node, h)| (who.0, node, h.pages, h.desks))
                .collect(),
            timers: timers
                .into_iter()
                .map(|(who, node, epoch)| (who.0, node, epoch))
                .collect(),
            unclaimed: self.unclaimed.iter().cloned().collect(),
        }
    }

    /// The desk a snapshot describes. Every node that holds a connection, runs a timer or
    /// archives a chat in it is *unclaimed* until it claims what it still holds.
    pub(crate) fn from_snapshot(snapshot: BuddySnapshot) -> Result<BuddyDesk, BadSnapshot> {
        let bad = |what: String| Err(BadSnapshot::Desk(what));
        let mut desk = BuddyDesk {
            public: snapshot.public.load()?,
            staff: snapshot.staff.load()?,
            next_id: snapshot.next_id,
            ..BuddyDesk::default()
        };
        for p in snapshot.people {
            let roster = roster_of(p.staff);
            if desk.by_key.insert(p.key.clone(), BuddyId(p.id)).is_some() {
                return bad(format!("key of person {} twice", p.id));
            }
            let person = Person {
                name: p.name,
                roster,
                role: role_named(p.role.as_deref()),
                key: p.key,
            };
            desk.people.insert(BuddyId(p.id), person);
        }
        for c in snapshot.chats {
            let roster = roster_of(c.staff);
            let key = (roster, BuddyChatId(c.id));
            if desk.presence_ref(roster).chat_members(key.1).is_none() {
                return bad(format!("chat {} is not running", c.wire_id));
            }
            desk.chat_by_wire.insert(c.wire_id.clone(), key);
            let chat = BuddyChat {
                wire_id: c.wire_id,
                transcript: Transcript::from_parts(c.seq, c.frames, TRANSCRIPT_LIMIT),
                archiver: c.archiver,
                opened: c.opened,
            };
            desk.chats.insert(key, chat);
        }
        let held = snapshot
            .held
            .into_iter()
            .map(|(who, node, pages, desks)| (BuddyId(who), node, Held { pages, desks }))
            .collect();
        let timers = snapshot
            .timers
            .into_iter()
            .map(|(who, node, epoch)| (BuddyId(who), node, epoch))
            .collect();
        desk.holders = Holders::from_parts(held, timers);
        let mut unclaimed: BTreeSet<String> = snapshot.unclaimed.into_iter().collect();
        unclaimed.extend(desk.holders.nodes());
        unclaimed.extend(desk.chats.values().map(|c| c.archiver.clone()));
        unclaimed.remove("");
        desk.unclaimed = unclaimed;
        Ok(desk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::presence::BuddyDecision;
    use crate::hub::transcript::Author;
    use crate::store::ConversationKind;

    /// Ann and Bob chatting (two messages) on the public roster, Cid inviting Dan, Eve in
    /// her grace period on the staff roster; pages on two nodes, a timer on a third.
    fn desk() -> BuddyDesk {
        let mut desk = BuddyDesk::default();
        let mut out: Vec<BuddyDecision> = vec![];
        for (name, roster) in [
            ("Ann", Roster::Public),
            ("Bob", Roster::Public),
            ("Cid", Roster::Public),
            ("Dan", Roster::Public),
            ("Eve", Roster::Staff),
        ] {
            let role = (roster == Roster::Staff).then_some("agent");
            let key = format!("key-{name}");
            let id = desk.person_for(Some(&key), name, roster, role, &key);
            desk.presence(roster).connect(id, name, &mut out).unwrap();
            desk.holders.opened(id, if name < "C" { "alpha" } else { "beta" }, true);
        }
        let (ann, bob, cid, dan, eve) = (BuddyId(1), BuddyId(2), BuddyId(3), BuddyId(4), BuddyId(5));
        desk.public.invite(ann, bob, &mut out).unwrap();
        desk.public.accept(bob, InvitationId(1), &mut out).unwrap();
        desk.public.invite(cid, dan, &mut out).unwrap();
        desk.staff.disconnect(eve, &mut out).unwrap();
        desk.holders.closed(eve, "beta", true);
        desk.holders.timer_started(eve, "gamma", 1);
        let mut transcript = Transcript::new(TRANSCRIPT_LIMIT);
        transcript.record("chat-1", Author::buddy(ann.0, true), "hi".into(), Some("c1"));
        transcript.record("chat-1", Author::buddy(bob.0, false), "hello".into(), None);
        desk.chat_by_wire
            .insert("chat-1".into(), (Roster::Public, BuddyChatId(1)));
        desk.chats.insert(
            (Roster::Public, BuddyChatId(1)),
            BuddyChat {
                wire_id: "chat-1".into(),
                transcript,
                archiver: "alpha".into(),
                opened: ConversationOpened {
                    id: "chat-1".into(),
                    kind: ConversationKind::Buddy,
                    category: None,
                    customer_name: "Ann".into(),
                    agent_id: "Bob".into(),
                    agent_name: "Bob".into(),
                    queued_at: 1,
                    paired_at: 2,
                    customer: Default::default(),
                },
            },
        );
        desk
    }

    #[test]
    fn a_desk_written_out_loads_back_the_same() {
        let desk = desk();
        let snapshot = desk.snapshot();
        let json = serde_json::to_string(&snapshot).unwrap();
        let loaded = BuddyDesk::from_snapshot(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(
            loaded.snapshot(),
            BuddySnapshot {
                unclaimed: loaded.snapshot().unclaimed,
                ..snapshot
            }
        );
        assert_eq!(loaded.public, desk.public);
        assert_eq!(loaded.staff, desk.staff);
        assert_eq!(loaded.by_key, desk.by_key);
        assert_eq!(loaded.chat_by_wire, desk.chat_by_wire);
        let chat = &loaded.chats[&(Roster::Public, BuddyChatId(1))];
        assert_eq!(chat.transcript.last_seq(), 2);
        let texts: Vec<String> = chat.transcript.after(0).into_iter().map(|m| m.text).collect();
        assert_eq!(texts, ["hi", "hello"]);
        // Every node named holds something, runs a timer or archives a chat: unclaimed.
        let unclaimed: Vec<&str> = loaded.unclaimed.iter().map(String::as_str).collect();
        assert_eq!(unclaimed, ["alpha", "beta", "gamma"]);
    }

    #[test]
    fn a_snapshot_naming_a_chat_nobody_is_in_is_refused() {
        let mut snapshot = desk().snapshot();
        snapshot.chats[0].id = 9;
        assert!(BuddyDesk::from_snapshot(snapshot).is_err());
    }
}
