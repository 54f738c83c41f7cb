//! The buddy-list adapter: people, their connections and 1-to-1 chats, around
//! the presence core.
//!
//! There are two rosters, each its own [`Presence`]: the public one, for
//! people who join with a display name, and the staff one, for signed-in
//! agents and admins. Agents on the service desk appear on the staff roster so
//! their team sees who is on shift; customers never see either roster.
//!
//! A person is identified by a key the hub issues on their first join (kept by
//! the page and sent again from other tabs or devices), or by their account.

use std::collections::HashMap;

use uuid::Uuid;

use super::delivery::{ConnId, Delivery, Outbound, Recipient};
use super::service::HubState;
use super::transcript::{Author, Stamped, Transcript};
use super::{Command, after, now_ms};
use crate::core::presence::{
    BuddyChatId, BuddyDecision, BuddyId, ChatEndReason, CloseReason, InvitationId, Presence, Status,
};
use crate::core::routing::AgentId;
use crate::protocol::{Buddy, BuddyChatSnapshot, ClientFrame, InvitationRef, ServerFrame};
use crate::store::{
    Account, ArchiveEvent, ConversationClosed, ConversationKind, ConversationOpened, EndReason, Role, Side,
};

/// Messages kept per buddy chat for a reloading page.
const TRANSCRIPT_LIMIT: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Roster {
    Public,
    Staff,
}

struct Person {
    name: String,
    roster: Roster,
    role: Option<&'static str>,
    key: String,
}

struct BuddyChat {
    wire_id: String,
    transcript: Transcript,
}

#[derive(Default)]
pub(crate) struct BuddyDesk {
    public: Presence,
    staff: Presence,
    people: HashMap<BuddyId, Person>,
    by_key: HashMap<String, BuddyId>,
    chats: HashMap<(Roster, BuddyChatId), BuddyChat>,
    /// Staff chats and public chats come from two counters; the roster is part of the key.
    chat_by_wire: HashMap<String, (Roster, BuddyChatId)>,
    next_id: u64,
}

impl BuddyDesk {
    pub(crate) fn online(&self) -> usize {
        self.public.online().count() + self.staff.online().count()
    }

    fn presence(&mut self, roster: Roster) -> &mut Presence {
        match roster {
            Roster::Public => &mut self.public,
            Roster::Staff => &mut self.staff,
        }
    }

    fn presence_ref(&self, roster: Roster) -> &Presence {
        match roster {
            Roster::Public => &self.public,
            Roster::Staff => &self.staff,
        }
    }

    /// The person behind a key, creating them when the key is new or unknown.
    fn person_for(&mut self, key: Option<&str>, name: &str, roster: Roster, role: Option<&'static str>) -> BuddyId {
        if let Some(id) = key.and_then(|k| self.by_key.get(k)).copied()
            && self.people.get(&id).is_some_and(|p| p.roster == roster)
        {
            return id;
        }
        self.next_id += 1;
        let id = BuddyId(self.next_id);
        let key = match (roster, key) {
            (Roster::Staff, Some(k)) => k.to_string(),
            _ => Uuid::new_v4().simple().to_string(),
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

fn status_str(status: Status) -> &'static str {
    match status {
        Status::Available => "available",
        Status::Busy => "busy",
    }
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Agent => "agent",
        Role::Admin => "admin",
    }
}

fn staff_key(account_id: &str) -> String {
    format!("account:{account_id}")
}

impl HubState {
    /// A buddy page connected. Signed-in staff join their roster at once; others send `buddy_join`.
    pub(super) fn buddy_registered(&mut self, conn: ConnId, account: Option<Account>) {
        if let Some(account) = account {
            let key = staff_key(&account.id);
            let id = self.buddies.person_for(
                Some(&key),
                &account.display_name,
                Roster::Staff,
                Some(role_str(account.role)),
            );
            self.buddy_connect(conn, id);
        }
    }

    pub(super) fn buddy_frame(&mut self, conn: ConnId, frame: ClientFrame) {
        let me = match self.conn_role(conn) {
            Some((_, Some(Recipient::Buddy(id)))) => Some(*id),
            _ => None,
        };
        let client_id = match &frame {
            ClientFrame::Message { client_id, .. } => client_id.clone(),
            _ => None,
        };
        let result = match (me, frame) {
            (None, ClientFrame::BuddyJoin { name, key }) => {
                match crate::core::names::checked_name(&name, crate::core::presence::MAX_NAME_CHARS) {
                    Ok(name) => {
                        let id = self.buddies.person_for(key.as_deref(), &name, Roster::Public, None);
                        self.buddy_connect(conn, id);
                        Ok(())
                    }
                    Err(e) => Err((e.code(), e.to_string())),
                }
            }
            (Some(_), ClientFrame::BuddyJoin { .. }) => {
                Err(("already_joined", "this connection has joined already".into()))
            }
            (None, other) => Err(("not_joined", format!("send buddy_join before {:?}", other.kind()))),
            (Some(me), frame) => self.buddy_action(me, frame),
        };
        if let Err((code, message)) = result {
            self.error_to_conn(conn, code, message, client_id);
        }
    }

    fn buddy_connect(&mut self, conn: ConnId, id: BuddyId) {
        let roster = self.buddies.people[&id].roster;
        let name = self.buddies.people[&id].name.clone();
        let mut out = vec![];
        if let Err(e) = self.buddies.presence(roster).connect(id, &name, &mut out) {
            return self.error_to_conn(conn, e.code(), e.to_string(), None);
        }
        self.set_who(conn, Recipient::Buddy(id));
        let welcome = self.buddy_welcome(id);
        self.send_to_conn(conn, &welcome);
        self.buddy_apply(roster, out);
    }

    fn buddy_welcome(&self, id: BuddyId) -> ServerFrame {
        let person = &self.buddies.people[&id];
        let presence = self.buddies.presence_ref(person.roster);
        let chat = presence.chat_of(id).map(|(chat, peer)| {
            let log = &self.buddies.chats[&(person.roster, chat)];
            BuddyChatSnapshot {
                chat_id: log.wire_id.clone(),
                peer: peer.0,
                peer_name: self
                    .buddies
                    .people
                    .get(&peer)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                messages: log.transcript.after(0),
            }
        });
        ServerFrame::BuddyWelcome {
            you: id.0,
            name: person.name.clone(),
            key: person.key.clone(),
            buddies: presence
                .online()
                .map(|(b, _, status)| self.buddy_view(b, status))
                .collect(),
            invitations: presence
                .invitations_of(id)
                .into_iter()
                .map(|i| InvitationRef {
                    invitation_id: i.id.0,
                    from: i.from.0,
                    to: i.to.0,
                })
                .collect(),
            chat,
            max_message_len: self.settings.max_message_len,
        }
    }

    fn buddy_view(&self, id: BuddyId, status: Status) -> Buddy {
        let person = &self.buddies.people[&id];
        Buddy {
            id: id.0,
            name: person.name.clone(),
            status: status_str(status),
            role: person.role,
        }
    }

    fn buddy_action(&mut self, me: BuddyId, frame: ClientFrame) -> Result<(), (&'static str, String)> {
        let roster = self.buddies.people[&me].roster;
        let mut out = vec![];
        let err = |e: crate::core::presence::BuddyError| (e.code(), e.to_string());
        match frame {
            ClientFrame::Invite { to } => {
                // Agents on shift show on the staff roster from the service desk alone; an
                // invitation must reach a buddy page, or it would wait for nobody.
                if self.buddies.presence_ref(roster).is_online(BuddyId(to))
                    && self.delivery.connections(&Recipient::Buddy(BuddyId(to))).is_empty()
                {
                    return Err((
                        "target_not_reachable",
                        "they are online but do not have the buddy list open".into(),
                    ));
                }
                self.buddies
                    .presence(roster)
                    .invite(me, BuddyId(to), &mut out)
                    .map_err(err)?
            }
            ClientFrame::CancelInvite { invitation_id } => self
                .buddies
                .presence(roster)
                .cancel(me, InvitationId(invitation_id), &mut out)
                .map_err(err)?,
            ClientFrame::Decline { invitation_id } => self
                .buddies
                .presence(roster)
                .decline(me, InvitationId(invitation_id), &mut out)
                .map_err(err)?,
            ClientFrame::Accept { invitation_id } => {
                // A chat the archive could not hold is not opened: the invitation stays open.
                if self.archive.openings_available() == 0 {
                    self.archive.refused("buddy chats are not opened");
                    return Err((
                        "archive_unavailable",
                        "the archive is behind; accept again shortly".to_string(),
                    ));
                }
                self.buddies
                    .presence(roster)
                    .accept(me, InvitationId(invitation_id), &mut out)
                    .map_err(err)?
            }
            ClientFrame::EndChat { chat_id } => {
                let chat = self.buddy_chat(me, roster, Some(&chat_id))?;
                self.buddies
                    .presence(roster)
                    .end_chat(me, chat, &mut out)
                    .map_err(err)?
            }
            ClientFrame::Message {
                chat_id,
                text,
                client_id,
            } => {
                let chat = self.buddy_chat(me, roster, chat_id.as_deref())?;
                return self.buddy_relay(me, roster, chat, text, client_id);
            }
            ClientFrame::Typing { chat_id, active } => {
                let chat = self.buddy_chat(me, roster, chat_id.as_deref())?;
                let (a, b) = self
                    .buddies
                    .presence_ref(roster)
                    .chat_members(chat)
                    .expect("checked chat");
                let peer = if a == me { b } else { a };
                let frame = ServerFrame::BuddyTyping {
                    chat_id: self.buddies.chats[&(roster, chat)].wire_id.clone(),
                    from: me.0,
                    active,
                };
                self.delivery
                    .deliver(&Recipient::Buddy(peer), &Outbound::Frame(frame.encode()));
                return Ok(());
            }
            other => return Err(("not_allowed", format!("the buddy list has no {:?}", other.kind()))),
        }
        self.buddy_apply(roster, out);
        Ok(())
    }

    /// The caller's current chat; a named chat must be it.
    fn buddy_chat(
        &self,
        me: BuddyId,
        roster: Roster,
        wire: Option<&str>,
    ) -> Result<BuddyChatId, (&'static str, String)> {
        let (chat, _) = self
            .buddies
            .presence_ref(roster)
            .chat_of(me)
            .ok_or_else(|| ("not_in_chat", "you are not in a chat".to_string()))?;
        if let Some(wire) = wire
            && self.buddies.chat_by_wire.get(wire) != Some(&(roster, chat))
        {
            return Err(("not_your_chat", "that chat is not yours".to_string()));
        }
        Ok(chat)
    }

    fn buddy_relay(
        &mut self,
        me: BuddyId,
        roster: Roster,
        chat: BuddyChatId,
        text: String,
        client_id: Option<String>,
    ) -> Result<(), (&'static str, String)> {
        self.check_message(&text)?;
        let (a, b) = self
            .buddies
            .presence_ref(roster)
            .chat_members(chat)
            .expect("checked chat");
        let log = self
            .buddies
            .chats
            .get_mut(&(roster, chat))
            .expect("buddy chats have a log");
        // The chat's first member is the one who invited.
        let author = Author::buddy(me.0, me == a);
        let Stamped { frame, ack, event } = log.transcript.record(&log.wire_id, author, text, client_id.as_deref());
        let archived = self.archive.push_message(event);
        let frame = Outbound::Frame(frame);
        let peer = if me == a { b } else { a };
        self.delivery.deliver(&Recipient::Buddy(peer), &frame);
        self.acknowledge(Recipient::Buddy(me), Outbound::Frame(ack), archived);
        self.messages_relayed.increment(1);
        Ok(())
    }

    pub(super) fn buddy_unregistered(&mut self, conn: ConnId, id: BuddyId) {
        self.delivery.detach(&Recipient::Buddy(id), conn);
        self.buddy_disconnect(id);
    }

    fn buddy_disconnect(&mut self, id: BuddyId) {
        let Some(roster) = self.buddies.people.get(&id).map(|p| p.roster) else {
            return;
        };
        let mut out = vec![];
        if self.buddies.presence(roster).disconnect(id, &mut out).is_ok() {
            self.buddy_apply(roster, out);
        }
    }

    pub(super) fn buddy_grace_expired(&mut self, id: BuddyId, epoch: u64) {
        let Some(roster) = self.buddies.people.get(&id).map(|p| p.roster) else {
            return;
        };
        let mut out = vec![];
        let _ = self.buddies.presence(roster).grace_expired(id, epoch, &mut out);
        self.buddy_apply(roster, out);
    }

    /// An agent on the service desk shows on the staff roster while connected.
    pub(super) fn buddy_agent_online(&mut self, agent: &AgentId) {
        let Some(account) = self.agent_account(agent) else {
            return;
        };
        let key = staff_key(&account.id);
        let id = self.buddies.person_for(
            Some(&key),
            &account.display_name,
            Roster::Staff,
            Some(role_str(account.role)),
        );
        let mut out = vec![];
        if self.buddies.staff.connect(id, &account.display_name, &mut out).is_ok() {
            self.buddy_apply(Roster::Staff, out);
        }
    }

    /// The desk connection of an agent closed: one fewer connection on the staff roster.
    pub(super) fn buddy_agent_offline(&mut self, agent: &AgentId) {
        if let Some(id) = self.buddies.by_key.get(&staff_key(&agent.0)).copied() {
            self.buddy_disconnect(id);
        }
    }

    /// A disabled account leaves the staff roster at once, on every connection.
    pub(super) fn buddy_account_disabled(&mut self, account: &Account) {
        if let Some(id) = self.buddies.by_key.get(&staff_key(&account.id)).copied() {
            self.delivery.close(
                &Recipient::Buddy(id),
                super::service::close::DISABLED,
                "account disabled",
            );
        }
    }

    pub(super) fn buddy_account_changed(&mut self, account: &Account) {
        if let Some(id) = self.buddies.by_key.get(&staff_key(&account.id)).copied()
            && let Some(person) = self.buddies.people.get_mut(&id)
        {
            person.name = account.display_name.clone();
        }
    }

    pub(super) fn buddy_shut_down(&mut self) {
        let chats: Vec<(Roster, BuddyChatId)> = self.buddies.chat_by_wire.values().copied().collect();
        for key in chats {
            if let Some(log) = self.buddies.chats.remove(&key) {
                self.archive.push_closing(ArchiveEvent::Closed(ConversationClosed {
                    id: log.wire_id,
                    ended_at: now_ms(),
                    ended_by: Side::System,
                    reason: EndReason::Shutdown,
                }));
            }
        }
    }

    fn buddy_apply(&mut self, roster: Roster, out: Vec<BuddyDecision>) {
        for decision in out {
            self.buddy_apply_one(roster, decision);
        }
    }

    fn roster_broadcast(&mut self, roster: Roster, except: Option<BuddyId>, frame: &ServerFrame) {
        let frame = Outbound::Frame(frame.encode());
        let everyone: Vec<BuddyId> = self
            .buddies
            .presence_ref(roster)
            .online()
            .map(|(id, _, _)| id)
            .collect();
        for id in everyone.into_iter().filter(|id| Some(*id) != except) {
            self.delivery.deliver(&Recipient::Buddy(id), &frame);
        }
    }

    fn send_to_pair(&mut self, ids: [BuddyId; 2], frame: &ServerFrame) {
        let frame = Outbound::Frame(frame.encode());
        for id in ids {
            self.delivery.deliver(&Recipient::Buddy(id), &frame);
        }
    }

    fn buddy_apply_one(&mut self, roster: Roster, decision: BuddyDecision) {
        match decision {
            BuddyDecision::Joined { who, .. } => {
                let buddy = self.buddy_view(who, Status::Available);
                self.roster_broadcast(roster, Some(who), &ServerFrame::BuddyJoined { buddy });
            }
            BuddyDecision::Left { who } => {
                self.roster_broadcast(roster, None, &ServerFrame::BuddyLeft { id: who.0 });
                self.delivery.close(&Recipient::Buddy(who), 1000, "left the buddy list");
                // A public person who left is gone for good (their key with them); staff are
                // keyed by account and bounded by the accounts.
                if roster == Roster::Public
                    && let Some(person) = self.buddies.people.remove(&who)
                {
                    self.buddies.by_key.remove(&person.key);
                }
            }
            BuddyDecision::StatusChanged { who, status } => {
                self.roster_broadcast(
                    roster,
                    None,
                    &ServerFrame::BuddyStatus {
                        id: who.0,
                        status: status_str(status),
                    },
                );
            }
            BuddyDecision::LeaveGraceStarted { who, epoch } => {
                after(
                    &self.timers,
                    self.settings.buddy_grace,
                    Command::BuddyGraceExpired { buddy: who, epoch },
                );
            }
            BuddyDecision::Invited { invitation, from, to } => {
                let invitation = InvitationRef {
                    invitation_id: invitation.0,
                    from: from.0,
                    to: to.0,
                };
                self.send_to_pair([from, to], &ServerFrame::Invited { invitation });
            }
            BuddyDecision::InvitationClosed {
                invitation,
                from,
                to,
                reason,
            } => {
                let reason = match reason {
                    CloseReason::Cancelled => "cancelled",
                    CloseReason::Declined => "declined",
                    CloseReason::Accepted => "accepted",
                    CloseReason::InviterLeft => "inviter_left",
                    CloseReason::InviteeLeft => "invitee_left",
                };
                self.send_to_pair(
                    [from, to],
                    &ServerFrame::InvitationClosed {
                        invitation_id: invitation.0,
                        reason,
                    },
                );
            }
            BuddyDecision::ChatStarted { chat, a, b } => self.buddy_chat_started(roster, chat, a, b),
            BuddyDecision::ChatEnded {
                chat,
                a,
                b,
                ended_by,
                reason,
            } => {
                let Some(log) = self.buddies.chats.remove(&(roster, chat)) else {
                    return;
                };
                self.buddies.chat_by_wire.remove(&log.wire_id);
                let (wire_reason, end) = match reason {
                    ChatEndReason::EndedBy => ("ended", EndReason::Ended),
                    ChatEndReason::Left => ("peer_left", EndReason::Disconnect),
                };
                self.archive.push_closing(ArchiveEvent::Closed(ConversationClosed {
                    id: log.wire_id.clone(),
                    ended_at: now_ms(),
                    ended_by: if ended_by == a { Side::Customer } else { Side::Agent },
                    reason: end,
                }));
                let frame = ServerFrame::BuddyChatEnded {
                    chat_id: log.wire_id,
                    ended_by: Some(ended_by.0),
                    reason: wire_reason,
                };
                self.send_to_pair([a, b], &frame);
            }
        }
    }

    fn buddy_chat_started(&mut self, roster: Roster, chat: BuddyChatId, a: BuddyId, b: BuddyId) {
        let wire_id = Uuid::now_v7().to_string();
        let name = |id: BuddyId| self.buddies.people.get(&id).map(|p| p.name.clone()).unwrap_or_default();
        let (a_name, b_name) = (name(a), name(b));
        let now = now_ms();
        // Accepting was refused unless the archive had room for this opening and its closing.
        self.archive.push_opening(ArchiveEvent::Opened(ConversationOpened {
            id: wire_id.clone(),
            kind: ConversationKind::Buddy,
            category: None,
            customer_name: a_name.clone(),
            agent_id: format!("buddy:{}", b.0),
            agent_name: b_name.clone(),
            queued_at: now,
            paired_at: now,
        }));
        self.buddies.chats.insert(
            (roster, chat),
            BuddyChat {
                wire_id: wire_id.clone(),
                transcript: Transcript::new(TRANSCRIPT_LIMIT),
            },
        );
        self.buddies.chat_by_wire.insert(wire_id.clone(), (roster, chat));
        let to_a = ServerFrame::BuddyChatStarted {
            chat_id: wire_id.clone(),
            peer: b.0,
            peer_name: b_name,
        };
        let to_b = ServerFrame::BuddyChatStarted {
            chat_id: wire_id,
            peer: a.0,
            peer_name: a_name,
        };
        self.delivery
            .deliver(&Recipient::Buddy(a), &Outbound::Frame(to_a.encode()));
        self.delivery
            .deliver(&Recipient::Buddy(b), &Outbound::Frame(to_b.encode()));
    }
}
