//! Buddy-list presence and invitations for Switchboard, as a pure state machine.
//!
//! The adapter (websocket layer) owns sockets, timers and id allocation for
//! people; this module owns the rules. Every event is a method on [`Presence`]
//! that either fails with a [`BuddyError`] — leaving the state untouched and
//! pushing nothing — or applies the change and pushes the [`BuddyDecision`]s
//! the adapter must deliver. Decisions are addressed to people, never to
//! connections: the adapter fans each one out to every connection of each
//! recipient. Time never enters as a clock, only as the `epoch` numbers the
//! module hands out with `LeaveGraceStarted` and gets back in `grace_expired`,
//! so the whole thing can be tested without waiting.
//!
//! Invariants, held after every event (the proptests check them after every
//! step of random event sequences):
//! - A person is `Busy` exactly when they have a pending sent invitation or
//!   are in a chat; status is derived from that, never stored, so it cannot
//!   drift from the facts it summarises.
//! - A person has at most one sent invitation and is in at most one chat, and
//!   never both at once.
//! - Every invitation's inviter is busy because of it, and its invitee is
//!   `Available`: holding invitations does not make you busy, and anything
//!   that would make an invitee busy (sending an invitation, accepting one)
//!   first declines every invitation they hold.
//! - Invitations and chats only involve online people, where "online"
//!   includes people whose last connection closed but whose leave grace
//!   period has not expired yet (so a page reload keeps chats alive).
//! - Every status change is announced exactly once, and only when the status
//!   really changed; replaying the decisions reproduces the queried state.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A stable person id, allocated by the adapter. Names are not identities:
/// two people may share a display name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BuddyId(pub u64);

/// An invitation id, allocated by this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InvitationId(pub u64);

/// A buddy chat id, allocated by this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BuddyChatId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Available,
    /// Has sent a pending invitation, or is in a chat.
    Busy,
}

/// Why an invitation stopped being pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    Cancelled,
    Declined,
    Accepted,
    /// The inviter's grace period expired; the invitee cannot answer any more.
    InviterLeft,
    /// The invitee's grace period expired; the inviter is free again.
    InviteeLeft,
}

/// Why a chat ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatEndReason {
    /// `ended_by` asked to end it.
    EndedBy,
    /// `ended_by` left (grace period expired).
    Left,
}

/// A pending invitation as seen by queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Invitation {
    pub id: InvitationId,
    pub from: BuddyId,
    pub to: BuddyId,
}

/// What the adapter must do or tell. Recipients are implied by the variant
/// so the rules for "who hears what" live in one place:
/// - `Joined` goes to everyone online except `who` (the newcomer reads the
///   roster from [`Presence::online`] instead);
/// - `Left` and `StatusChanged` go to everyone online;
/// - `Invited` and `InvitationClosed` go to `from` and `to`;
/// - `ChatStarted` and `ChatEnded` go to `a` and `b`;
/// - `LeaveGraceStarted` is for the adapter itself: start a timer and call
///   [`Presence::grace_expired`] with the same `who` and `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuddyDecision {
    Joined {
        who: BuddyId,
        name: String,
    },
    Left {
        who: BuddyId,
    },
    StatusChanged {
        who: BuddyId,
        status: Status,
    },
    LeaveGraceStarted {
        who: BuddyId,
        epoch: u64,
    },
    Invited {
        invitation: InvitationId,
        from: BuddyId,
        to: BuddyId,
    },
    InvitationClosed {
        invitation: InvitationId,
        from: BuddyId,
        to: BuddyId,
        reason: CloseReason,
    },
    ChatStarted {
        chat: BuddyChatId,
        a: BuddyId,
        b: BuddyId,
    },
    ChatEnded {
        chat: BuddyChatId,
        a: BuddyId,
        b: BuddyId,
        ended_by: BuddyId,
        reason: ChatEndReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum BuddyError {
    /// The acting person is not online.
    NotOnline,
    /// A disconnect for a person who has no open connection left.
    NotConnected,
    /// The person to invite is not online.
    TargetNotOnline,
    /// The acting person is busy.
    NotAvailable,
    /// The person to invite is busy.
    TargetNotAvailable,
    SelfInvite,
    UnknownInvitation,
    /// The invitation exists but the acting person is not the party allowed to do this.
    NotYourInvitation,
    UnknownChat,
    NotInChat,
    InvalidName,
}

impl BuddyError {
    /// A stable machine-readable code, safe to send to clients.
    pub fn code(&self) -> &'static str {
        match self {
            BuddyError::NotOnline => "not_online",
            BuddyError::NotConnected => "not_connected",
            BuddyError::TargetNotOnline => "target_not_online",
            BuddyError::NotAvailable => "not_available",
            BuddyError::TargetNotAvailable => "target_not_available",
            BuddyError::SelfInvite => "self_invite",
            BuddyError::UnknownInvitation => "unknown_invitation",
            BuddyError::NotYourInvitation => "not_your_invitation",
            BuddyError::UnknownChat => "unknown_chat",
            BuddyError::NotInChat => "not_in_chat",
            BuddyError::InvalidName => "invalid_name",
        }
    }
}

impl fmt::Display for BuddyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            BuddyError::NotOnline => "You are not online.",
            BuddyError::NotConnected => "There is no open connection to close.",
            BuddyError::TargetNotOnline => "That person is not online.",
            BuddyError::NotAvailable => "You are busy: finish your pending invitation or chat first.",
            BuddyError::TargetNotAvailable => "That person is busy right now.",
            BuddyError::SelfInvite => "You cannot invite yourself.",
            BuddyError::UnknownInvitation => "That invitation no longer exists.",
            BuddyError::NotYourInvitation => "That invitation is not yours to answer or cancel.",
            BuddyError::UnknownChat => "That chat no longer exists.",
            BuddyError::NotInChat => "You are not in that chat.",
            BuddyError::InvalidName => {
                "A name must have 1 to 100 characters after trimming spaces, something visible, \
                 and no control or text-direction characters."
            }
        };
        f.write_str(text)
    }
}

impl std::error::Error for BuddyError {}

/// Longest accepted display name, in characters (not bytes, so non-Latin
/// names get the same room as Latin ones).
pub const MAX_NAME_CHARS: usize = 100;

/// Trims `raw` and checks it as every display name is checked ([`super::names`]), up to
/// [`MAX_NAME_CHARS`] characters.
pub fn validate_name(raw: &str) -> Result<String, BuddyError> {
    super::names::checked_name(raw, MAX_NAME_CHARS).map_err(|_| BuddyError::InvalidName)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Person {
    name: String,
    connections: usize,
    /// Set while all connections are closed and the leave timer runs; only
    /// a `grace_expired` carrying exactly this epoch may remove the person.
    grace: Option<u64>,
    sent: Option<InvitationId>,
    /// Kept per person (besides the global map) so accepting or leaving does
    /// not scan every invitation in the hub.
    held: BTreeSet<InvitationId>,
    chat: Option<BuddyChatId>,
}

impl Person {
    fn status(&self) -> Status {
        if self.sent.is_some() || self.chat.is_some() {
            Status::Busy
        } else {
            Status::Available
        }
    }
}

/// The presence state. Cloneable and comparable so callers (and tests) can
/// snapshot it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    people: BTreeMap<BuddyId, Person>,
    invitations: BTreeMap<InvitationId, Invitation>,
    chats: BTreeMap<BuddyChatId, (BuddyId, BuddyId)>,
    next_invitation: u64,
    next_chat: u64,
    /// One counter for all people, so an epoch is never reused and a timer
    /// from an earlier visit can never match a later one.
    next_epoch: u64,
}

impl Default for Presence {
    fn default() -> Self {
        Self::new()
    }
}

impl Presence {
    pub fn new() -> Self {
        Presence {
            people: BTreeMap::new(),
            invitations: BTreeMap::new(),
            chats: BTreeMap::new(),
            next_invitation: 1,
            next_chat: 1,
            next_epoch: 1,
        }
    }

    // ---- events -------------------------------------------------------

    /// A connection of person `id` opened. The name only matters when the
    /// person joins; a further connection keeps the name they joined with,
    /// because nothing would announce a rename.
    pub fn connect(&mut self, id: BuddyId, name: &str, out: &mut Vec<BuddyDecision>) -> Result<(), BuddyError> {
        let name = validate_name(name)?;
        if let Some(p) = self.people.get_mut(&id) {
            p.connections += 1;
            p.grace = None;
            return Ok(());
        }
        self.people.insert(
            id,
            Person {
                name: name.clone(),
                connections: 1,
                grace: None,
                sent: None,
                held: BTreeSet::new(),
                chat: None,
            },
        );
        out.push(BuddyDecision::Joined { who: id, name });
        Ok(())
    }

    /// A connection of person `id` closed. Closing the last one only starts
    /// the grace period: a reload must not look like a leave and a join.
    pub fn disconnect(&mut self, id: BuddyId, out: &mut Vec<BuddyDecision>) -> Result<(), BuddyError> {
        let p = self.people.get_mut(&id).ok_or(BuddyError::NotOnline)?;
        if p.connections == 0 {
            return Err(BuddyError::NotConnected);
        }
        p.connections -= 1;
        if p.connections == 0 {
            let epoch = self.next_epoch;
            self.next_epoch += 1;
            p.grace = Some(epoch);
            out.push(BuddyDecision::LeaveGraceStarted { who: id, epoch });
        }
        Ok(())
    }

    /// The adapter's leave timer fired. Timers cannot be reliably cancelled
    /// across an async boundary, so stale ones (the person reconnected, or a
    /// later grace period replaced this one, or the person already left) are
    /// ignored rather than treated as errors.
    pub fn grace_expired(&mut self, id: BuddyId, epoch: u64, out: &mut Vec<BuddyDecision>) -> Result<(), BuddyError> {
        let Some(p) = self.people.get(&id) else { return Ok(()) };
        if p.grace != Some(epoch) {
            return Ok(());
        }
        if let Some(sent) = p.sent {
            // The leaver's own status is not announced: `Left` supersedes it.
            let inv = self.detach_invitation(sent);
            out.push(closed(inv, CloseReason::InviterLeft));
        }
        self.close_all_held(id, CloseReason::InviteeLeft, out);
        if let Some(chat) = self.people[&id].chat {
            self.finish_chat(chat, id, ChatEndReason::Left, out);
        }
        self.people.remove(&id);
        out.push(BuddyDecision::Left { who: id });
        Ok(())
    }

    /// `from` invites `to`. Sending makes `from` busy, so any invitations
    /// `from` was holding are declined first: an invitee is always available.
    pub fn invite(&mut self, from: BuddyId, to: BuddyId, out: &mut Vec<BuddyDecision>) -> Result<(), BuddyError> {
        let inviter = self.people.get(&from).ok_or(BuddyError::NotOnline)?;
        if from == to {
            return Err(BuddyError::SelfInvite);
        }
        let invitee = self.people.get(&to).ok_or(BuddyError::TargetNotOnline)?;
        if inviter.status() != Status::Available {
            return Err(BuddyError::NotAvailable);
        }
        if invitee.status() != Status::Available {
            return Err(BuddyError::TargetNotAvailable);
        }
        self.close_all_held(from, CloseReason::Declined, out);
        let id = InvitationId(self.next_invitation);
        self.next_invitation += 1;
        self.invitations.insert(id, Invitation { id, from, to });
        self.person_mut(from).sent = Some(id);
        self.person_mut(to).held.insert(id);
        out.push(BuddyDecision::Invited {
            invitation: id,
            from,
            to,
        });
        out.push(BuddyDecision::StatusChanged {
            who: from,
            status: Status::Busy,
        });
        Ok(())
    }

    /// The inviter withdraws their invitation.
    pub fn cancel(
        &mut self,
        by: BuddyId,
        invitation: InvitationId,
        out: &mut Vec<BuddyDecision>,
    ) -> Result<(), BuddyError> {
        let inv = self.check_invitation(by, invitation, |inv| inv.from)?;
        self.close_invitation(inv.id, CloseReason::Cancelled, out);
        Ok(())
    }

    /// The invitee turns the invitation down.
    pub fn decline(
        &mut self,
        by: BuddyId,
        invitation: InvitationId,
        out: &mut Vec<BuddyDecision>,
    ) -> Result<(), BuddyError> {
        let inv = self.check_invitation(by, invitation, |inv| inv.to)?;
        self.close_invitation(inv.id, CloseReason::Declined, out);
        Ok(())
    }

    /// The invitee accepts: their other invitations are declined (one chat
    /// at a time) and both parties enter a new chat.
    pub fn accept(
        &mut self,
        by: BuddyId,
        invitation: InvitationId,
        out: &mut Vec<BuddyDecision>,
    ) -> Result<(), BuddyError> {
        let inv = self.check_invitation(by, invitation, |inv| inv.to)?;
        // Unreachable while the invariants hold (a holder who sends an
        // invitation drops what they hold), but cheap to keep honest.
        if self.people[&by].status() != Status::Available {
            return Err(BuddyError::NotAvailable);
        }
        let others: Vec<InvitationId> = self.people[&by]
            .held
            .iter()
            .copied()
            .filter(|&i| i != invitation)
            .collect();
        for other in others {
            self.close_invitation(other, CloseReason::Declined, out);
        }
        // Closed by hand rather than via `close_invitation`: the inviter goes
        // straight from busy-inviting to busy-chatting and must not flicker
        // to Available in between.
        let inv = self.detach_invitation(inv.id);
        out.push(closed(inv, CloseReason::Accepted));
        let chat = BuddyChatId(self.next_chat);
        self.next_chat += 1;
        let (a, b) = (inv.from, inv.to);
        self.chats.insert(chat, (a, b));
        self.person_mut(a).chat = Some(chat);
        self.person_mut(b).chat = Some(chat);
        out.push(BuddyDecision::ChatStarted { chat, a, b });
        out.push(BuddyDecision::StatusChanged {
            who: by,
            status: Status::Busy,
        });
        Ok(())
    }

    /// Either member ends the chat; both are available again at once.
    pub fn end_chat(&mut self, by: BuddyId, chat: BuddyChatId, out: &mut Vec<BuddyDecision>) -> Result<(), BuddyError> {
        if !self.people.contains_key(&by) {
            return Err(BuddyError::NotOnline);
        }
        let &(a, b) = self.chats.get(&chat).ok_or(BuddyError::UnknownChat)?;
        if by != a && by != b {
            return Err(BuddyError::NotInChat);
        }
        self.finish_chat(chat, by, ChatEndReason::EndedBy, out);
        Ok(())
    }

    // ---- queries ------------------------------------------------------

    /// Everyone online (including those inside their grace period), by id.
    pub fn online(&self) -> impl Iterator<Item = (BuddyId, &str, Status)> + '_ {
        self.people.iter().map(|(&id, p)| (id, p.name.as_str(), p.status()))
    }

    pub fn status(&self, id: BuddyId) -> Option<Status> {
        self.people.get(&id).map(Person::status)
    }

    pub fn name(&self, id: BuddyId) -> Option<&str> {
        self.people.get(&id).map(|p| p.name.as_str())
    }

    pub fn is_online(&self, id: BuddyId) -> bool {
        self.people.contains_key(&id)
    }

    /// Open connections; 0 for people offline or inside their grace period.
    pub fn connections(&self, id: BuddyId) -> usize {
        self.people.get(&id).map_or(0, |p| p.connections)
    }

    /// The invitation `id` sent (if any) first, then those it holds by id.
    pub fn invitations_of(&self, id: BuddyId) -> Vec<Invitation> {
        let Some(p) = self.people.get(&id) else {
            return Vec::new();
        };
        p.sent
            .iter()
            .chain(p.held.iter())
            .map(|i| self.invitations[i])
            .collect()
    }

    pub fn invitation(&self, id: InvitationId) -> Option<Invitation> {
        self.invitations.get(&id).copied()
    }

    /// The chat `id` is in and the other member.
    pub fn chat_of(&self, id: BuddyId) -> Option<(BuddyChatId, BuddyId)> {
        let chat = self.people.get(&id)?.chat?;
        let (a, b) = self.chats[&chat];
        Some((chat, if a == id { b } else { a }))
    }

    /// The chat's members as (inviter, acceptor).
    pub fn chat_members(&self, chat: BuddyChatId) -> Option<(BuddyId, BuddyId)> {
        self.chats.get(&chat).copied()
    }

    // ---- internals ----------------------------------------------------

    fn person_mut(&mut self, id: BuddyId) -> &mut Person {
        self.people
            .get_mut(&id)
            .expect("invariant: parties of invitations and chats are online")
    }

    /// Common checks for acting on an invitation; `party` picks who may act.
    fn check_invitation(
        &self,
        by: BuddyId,
        invitation: InvitationId,
        party: impl Fn(&Invitation) -> BuddyId,
    ) -> Result<Invitation, BuddyError> {
        if !self.people.contains_key(&by) {
            return Err(BuddyError::NotOnline);
        }
        let inv = self.invitations.get(&invitation).ok_or(BuddyError::UnknownInvitation)?;
        if party(inv) != by {
            return Err(BuddyError::NotYourInvitation);
        }
        Ok(*inv)
    }

    /// Removes an invitation from every index, without telling anyone.
    fn detach_invitation(&mut self, id: InvitationId) -> Invitation {
        let inv = self
            .invitations
            .remove(&id)
            .expect("invariant: indexed invitation exists");
        self.person_mut(inv.from).sent = None;
        self.person_mut(inv.to).held.remove(&id);
        inv
    }

    /// Closes an invitation and frees its inviter.
    fn close_invitation(&mut self, id: InvitationId, reason: CloseReason, out: &mut Vec<BuddyDecision>) {
        let inv = self.detach_invitation(id);
        out.push(closed(inv, reason));
        self.announce_if_changed(inv.from, Status::Busy, out);
    }

    fn close_all_held(&mut self, who: BuddyId, reason: CloseReason, out: &mut Vec<BuddyDecision>) {
        let held: Vec<InvitationId> = self.people[&who].held.iter().copied().collect();
        for id in held {
            self.close_invitation(id, reason, out);
        }
    }

    /// Ends a chat; members still staying online are announced Available.
    fn finish_chat(
        &mut self,
        chat: BuddyChatId,
        ended_by: BuddyId,
        reason: ChatEndReason,
        out: &mut Vec<BuddyDecision>,
    ) {
        let (a, b) = self.chats.remove(&chat).expect("invariant: indexed chat exists");
        self.person_mut(a).chat = None;
        self.person_mut(b).chat = None;
        out.push(BuddyDecision::ChatEnded {
            chat,
            a,
            b,
            ended_by,
            reason,
        });
        for who in [a, b] {
            // A leaver's status is superseded by their `Left`.
            if !(reason == ChatEndReason::Left && who == ended_by) {
                self.announce_if_changed(who, Status::Busy, out);
            }
        }
    }

    fn announce_if_changed(&self, who: BuddyId, before: Status, out: &mut Vec<BuddyDecision>) {
        if let Some(now) = self.status(who)
            && now != before
        {
            out.push(BuddyDecision::StatusChanged { who, status: now });
        }
    }
}

fn closed(inv: Invitation, reason: CloseReason) -> BuddyDecision {
    BuddyDecision::InvitationClosed {
        invitation: inv.id,
        from: inv.from,
        to: inv.to,
        reason,
    }
}

pub mod stamps;
mod state;
pub use state::{InconsistentPresence, PresenceState, StatePerson};

#[cfg(test)]
mod tests;
