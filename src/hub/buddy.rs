//! The buddy-list adapter: people, their connections and 1-to-1 chats, around
//! the presence core.
//!
//! There are two rosters, each its own [`Presence`](crate::core::presence::Presence):
//! the public one, for people who join with a display name, and the staff one, for
//! signed-in agents and admins. Agents on the service desk appear on the staff roster so
//! their team sees who is on shift; customers never see either roster.
//!
//! A person is identified by a key the hub issues on their first join (kept by
//! the page and sent again from other tabs or devices), or by their account.
//!
//! Every change is a [`BuddyEvent`]: a frame or a timer makes one, and the desk applies
//! it (`buddy_replay`). On one node that happens at once. In a cluster the event goes
//! through the routing events stream first and every node applies every event in the
//! stream's order, so each node's desk is a replica of one buddy list: the presence core
//! decides the same everywhere, each node delivers to the connections it has, and the
//! node that made an event answers the connection that asked (docs/cluster.md §15).
//!
//! The desk's data (the rosters, the people, the chats) is in `desk`; this module and the
//! others beside `desk` are what the hub does with it.

mod decisions;
pub(super) mod desk;
mod lines;
mod reassert;
pub(crate) mod snapshot;

use uuid::Uuid;

use self::desk::{Refusal, Roster, role_named, role_str, staff_account, staff_key, status_str};
use super::buddy_events::{BuddyAction, BuddyEvent};
use super::delivery::{ConnId, Delivery, Outbound, Recipient, SenderCopy};
use super::service::HubState;
use super::transcript::{Author, Stamped, stamped};
use super::{Command, after};
use crate::attachments::AttachmentMeta;
use crate::clock::now_ms;
use crate::core::attachments::Uploader;
use crate::core::presence::{BuddyChatId, BuddyId, InvitationId, Status};
use crate::core::routing::AgentId;
use crate::protocol::{Buddy, BuddyChatSnapshot, ClientFrame, InvitationRef, ServerFrame};
use crate::store::{Account, ArchiveEvent, ArchivedMessage, ConversationClosed, EndReason, Side};

impl HubState {
    /// A buddy page connected. Signed-in staff join their roster at once; others send `buddy_join`.
    pub(super) fn buddy_registered(&mut self, conn: ConnId, account: Option<Account>) {
        if account.is_some() && self.buddies.reasserting() {
            // The node's claim of the restored list is on its way: the page comes back.
            return self.close_buddy_conn_for_now(conn);
        }
        if let Some(account) = account {
            self.buddies.joining.insert(conn);
            let event = BuddyEvent::PageJoined {
                conn: conn.0,
                staff: true,
                key: Some(staff_key(&account.id)),
                new_key: String::new(),
                name: account.display_name.clone(),
                role: Some(role_str(account.role).to_string()),
            };
            self.buddy_submit(event, Some(conn), None);
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
        let joining = self.buddies.joining.contains(&conn);
        let result = match (me, frame) {
            (None, ClientFrame::BuddyJoin { .. }) if joining => {
                Err(("already_joined", "this connection has joined already".into()))
            }
            (None, ClientFrame::BuddyJoin { .. }) if self.buddies.reasserting() => Err((
                crate::hub::cluster::link::UNAVAILABLE,
                "the cluster is restoring the buddy list; join again shortly".into(),
            )),
            (None, ClientFrame::BuddyJoin { name, key }) => {
                match crate::core::names::checked_name(&name, crate::core::presence::MAX_NAME_CHARS) {
                    Ok(name) => {
                        self.buddies.joining.insert(conn);
                        let event = BuddyEvent::PageJoined {
                            conn: conn.0,
                            staff: false,
                            key,
                            new_key: Uuid::new_v4().simple().to_string(),
                            name,
                            role: None,
                        };
                        self.buddy_submit(event, Some(conn), None);
                        Ok(())
                    }
                    Err(e) => Err((e.code(), e.to_string())),
                }
            }
            (Some(_), ClientFrame::BuddyJoin { .. }) => {
                Err(("already_joined", "this connection has joined already".into()))
            }
            (None, other) => Err(("not_joined", format!("send buddy_join before {:?}", other.kind()))),
            (Some(me), frame) => self.buddy_request(conn, me, frame, client_id.clone()),
        };
        if let Err((code, message)) = result {
            self.error_to_conn(conn, code, message, client_id);
        }
    }

    /// Checks what needs no shared state (a message's length, the archive's room here)
    /// and turns the frame into an event, drawing what must be the same on every node.
    fn buddy_request(
        &mut self,
        conn: ConnId,
        me: BuddyId,
        frame: ClientFrame,
        client_id: Option<String>,
    ) -> Result<(), Refusal> {
        let action = match frame {
            ClientFrame::Invite { to } => BuddyAction::Invite { to },
            ClientFrame::CancelInvite { invitation_id } => BuddyAction::Cancel {
                invitation: invitation_id,
            },
            ClientFrame::Decline { invitation_id } => BuddyAction::Decline {
                invitation: invitation_id,
            },
            ClientFrame::Accept { invitation_id } => {
                // A chat the archive could not hold is not opened: the invitation stays open.
                if self.archive.openings_available() == 0 {
                    self.archive.refused("buddy chats are not opened");
                    return Err((
                        "archive_unavailable",
                        "the archive is behind; accept again shortly".to_string(),
                    ));
                }
                BuddyAction::Accept {
                    invitation: invitation_id,
                    wire: Uuid::now_v7().to_string(),
                }
            }
            ClientFrame::EndChat { chat_id } => BuddyAction::End { chat: chat_id },
            ClientFrame::Message {
                chat_id,
                text,
                attachments,
                ..
            } => {
                let files = if attachments.is_empty() {
                    self.check_message(&text)?;
                    Vec::new()
                } else {
                    self.buddy_files(me, chat_id.as_deref(), &text, &attachments)?
                };
                if self.buddy_node().is_some() {
                    // Across nodes a message skips the events stream: stamped in its chat's
                    // own log, to the nodes that need it only (`buddy::lines`).
                    let roster = self.buddies.people.get(&me).map(|p| p.roster);
                    let Some(roster) = roster else {
                        return Err(("not_online", "You are not online.".to_string()));
                    };
                    let message = (Uuid::now_v7().to_string(), now_ms(), text, client_id.clone());
                    return self.buddy_send_across(conn, me, roster, chat_id.as_deref(), message, files);
                }
                BuddyAction::Message {
                    chat: chat_id,
                    id: Uuid::now_v7().to_string(),
                    at: now_ms(),
                    text,
                    client_id: client_id.clone(),
                    files,
                }
            }
            // Across nodes typing skips the events stream: nothing it changes needs the
            // stream's one order, and only the peer's nodes need it.
            ClientFrame::Typing { chat_id, active } if self.buddy_node().is_some() => {
                return self.buddy_typing_across(me, chat_id.as_deref(), active);
            }
            ClientFrame::Typing { chat_id, active } => BuddyAction::Typing { chat: chat_id, active },
            other => return Err(("not_allowed", format!("the buddy list has no {:?}", other.kind()))),
        };
        let event = BuddyEvent::Act {
            conn: conn.0,
            who: me.0,
            action,
        };
        self.buddy_submit(event, Some(conn), client_id);
        Ok(())
    }

    /// The files `ids` of `me`'s message in their chat (`wire`, if named), checked as a
    /// customer chat's (`checked_files`): each must be `me`'s upload for this chat. Staff
    /// only: a person on the public roster has no account to upload with.
    fn buddy_files(
        &self,
        me: BuddyId,
        wire: Option<&str>,
        text: &str,
        ids: &[String],
    ) -> Result<Vec<AttachmentMeta>, Refusal> {
        let Some(person) = self.buddies.people.get(&me) else {
            return Err(("not_online", "You are not online.".to_string()));
        };
        let Some(account) = staff_account(&person.key).filter(|_| person.roster == Roster::Staff) else {
            return Err((
                "attachments_unavailable",
                "files can be sent in buddy chats between signed-in staff only".to_string(),
            ));
        };
        let chat = self.buddy_chat(me, person.roster, wire)?;
        let wire = &self.buddies.chats[&(person.roster, chat)].wire_id;
        self.checked_files(wire, &Uploader::Buddy(account.to_string()), (text, ids))
    }

    /// Whether `wire` is a running buddy chat of account `account`'s (the staff roster's):
    /// who may upload for it and fetch its files besides the admins.
    pub(super) fn is_buddy_chat_of(&self, account: &str, wire: &str) -> bool {
        let Some(&(Roster::Staff, chat)) = self.buddies.chat_by_wire.get(wire) else {
            return false;
        };
        let Some(&me) = self.buddies.by_key.get(&staff_key(account)) else {
            return false;
        };
        self.buddies
            .staff
            .chat_members(chat)
            .is_some_and(|(a, b)| a == me || b == me)
    }

    /// Applies an event now (one node) or sends it to the cluster's events stream, from
    /// which every node applies it (`conn` is told if Redis refuses it).
    pub(in crate::hub) fn buddy_submit(&mut self, event: BuddyEvent, conn: Option<ConnId>, client_id: Option<String>) {
        if self.buddy_node().is_none() {
            return self.buddy_replay("", true, event);
        }
        let json = serde_json::to_string(&event).expect("a buddy event is JSON");
        if !self.buddy_call(json, conn, client_id.clone())
            && let Some(conn) = conn
        {
            self.buddies.joining.remove(&conn);
            self.error_to_conn(
                conn,
                crate::hub::cluster::link::UNAVAILABLE,
                "the cluster is too busy; try again shortly",
                client_id,
            );
        }
    }

    /// A buddy event from the cluster's events stream, made by `node` (arguments: the
    /// event, and the process that made it).
    pub(super) fn buddy_from_stream(&mut self, node: &str, args: &[String]) {
        let mine = args.get(1).is_some_and(|process| self.buddy_made_here(node, process));
        match args.first().map(|json| serde_json::from_str::<BuddyEvent>(json)) {
            Some(Ok(event)) => self.buddy_replay(node, mine, event),
            _ => tracing::error!(?args, "a buddy event this node cannot read"),
        }
    }

    /// Applies one event made by `node` (`""`: this node, alone) to the desk; `mine`: made
    /// by this process, which answers the connection the event names.
    fn buddy_replay(&mut self, node: &str, mine: bool, event: BuddyEvent) {
        match event {
            BuddyEvent::PageJoined {
                conn,
                staff,
                key,
                new_key,
                name,
                role,
            } => {
                let conn = ConnId(conn);
                let roster = if staff { Roster::Staff } else { Roster::Public };
                let id = self
                    .buddies
                    .person_for(key.as_deref(), &name, roster, role_named(role.as_deref()), &new_key);
                let name = self.buddies.people[&id].name.clone();
                // In a running chat, whose lines this node may not all have (it may have held
                // no page of either member): the welcome waits for a read of the chat's log,
                // the page still `joining` meanwhile.
                let welcome_after_read = if mine && self.conn_role(conn).is_some() {
                    self.buddy_chat_to_read(id)
                } else {
                    None
                };
                let mut out = vec![];
                if let Err(e) = self.buddies.presence(roster).connect(id, &name, &mut out) {
                    if mine {
                        self.buddies.joining.remove(&conn);
                        self.error_to_conn(conn, e.code(), e.to_string(), None);
                    }
                    return;
                }
                if mine && welcome_after_read.is_none() {
                    self.buddies.joining.remove(&conn);
                }
                self.buddies.holders.opened(id, node, true);
                let mut closed_meanwhile = false;
                if mine && welcome_after_read.is_none() {
                    if self.conn_role(conn).is_some() {
                        self.set_who(conn, Recipient::Buddy(id));
                        let welcome = self.buddy_welcome(id);
                        self.send_to_conn(conn, &welcome);
                    } else {
                        closed_meanwhile = true;
                    }
                }
                self.buddy_apply(roster, node, out);
                if let Some((wire, last)) = welcome_after_read {
                    self.buddy_read(&wire, last, vec![lines::state::AfterRead::Welcome { conn, who: id }]);
                }
                if closed_meanwhile {
                    // Gone before its join came back: count its close, as any other.
                    self.buddy_submit(BuddyEvent::PageClosed { who: id.0 }, None, None);
                }
            }
            BuddyEvent::PageClosed { who } => self.buddy_closed(BuddyId(who), node, true),
            BuddyEvent::Claimed { pages, desks } => self.buddy_claimed(node, mine, pages, desks),
            BuddyEvent::DeskOpened { key, name, role } => {
                if mine {
                    self.buddies.applied_desks.insert(key.clone());
                }
                let id = self
                    .buddies
                    .person_for(Some(&key), &name, Roster::Staff, role_named(Some(&role)), "");
                let mut out = vec![];
                if self.buddies.staff.connect(id, &name, &mut out).is_ok() {
                    self.buddies.holders.opened(id, node, false);
                    self.buddy_apply(Roster::Staff, node, out);
                }
            }
            BuddyEvent::DeskClosed { key } => {
                if mine {
                    self.buddies.applied_desks.remove(&key);
                }
                if let Some(id) = self.buddies.by_key.get(&key).copied() {
                    self.buddy_closed(id, node, false);
                }
            }
            BuddyEvent::GraceExpired { who, epoch } => {
                let id = BuddyId(who);
                let Some(roster) = self.buddies.people.get(&id).map(|p| p.roster) else {
                    return;
                };
                self.buddies.holders.timer_ended(id, epoch);
                let mut out = vec![];
                let _ = self.buddies.presence(roster).grace_expired(id, epoch, &mut out);
                self.buddy_apply(roster, node, out);
            }
            BuddyEvent::Act { conn, who, action } => {
                let client_id = match &action {
                    BuddyAction::Message { client_id, .. } => client_id.clone(),
                    _ => None,
                };
                if let Err((code, message)) =
                    self.buddy_action(BuddyId(who), node, mine.then_some(ConnId(conn)), action)
                    && mine
                {
                    self.error_to_conn(ConnId(conn), code, message, client_id);
                }
            }
        }
    }

    /// One of `id`'s connections on `node` closed; nothing when that node's connections
    /// were already handed on (its loss was applied first).
    fn buddy_closed(&mut self, id: BuddyId, node: &str, page: bool) {
        let Some(roster) = self.buddies.people.get(&id).map(|p| p.roster) else {
            return;
        };
        if !self.buddies.holders.closed(id, node, page) {
            return;
        }
        let mut out = vec![];
        if self.buddies.presence(roster).disconnect(id, &mut out).is_ok() {
            self.buddy_apply(roster, node, out);
        }
    }

    /// In a cluster, `id`'s running chat (wire id, last seq recorded here), whose log a
    /// page of theirs joining here reads before its welcome.
    fn buddy_chat_to_read(&self, id: BuddyId) -> Option<(String, u64)> {
        self.buddy_node()?;
        let roster = self.buddies.people.get(&id)?.roster;
        let (chat, _) = self.buddies.presence_ref(roster).chat_of(id)?;
        let log = self.buddies.chats.get(&(roster, chat))?;
        Some((log.wire_id.clone(), log.transcript.last_seq()))
    }

    pub(in crate::hub) fn buddy_welcome(&self, id: BuddyId) -> ServerFrame {
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

    /// What `me` asked, made on `node`; `asker`: the connection that asked, when it is
    /// this process's (which answers it).
    fn buddy_action(
        &mut self,
        me: BuddyId,
        node: &str,
        asker: Option<ConnId>,
        action: BuddyAction,
    ) -> Result<(), Refusal> {
        let Some(roster) = self.buddies.people.get(&me).map(|p| p.roster) else {
            return Err(("not_online", "You are not online.".to_string()));
        };
        let mut out = vec![];
        let err = |e: crate::core::presence::BuddyError| (e.code(), e.to_string());
        match action {
            BuddyAction::Invite { to } => {
                // Agents on shift show on the staff roster from the service desk alone; an
                // invitation must reach a buddy page (on any node), or it would wait for nobody.
                if self.buddies.presence_ref(roster).is_online(BuddyId(to))
                    && !self.buddies.holders.has_page(BuddyId(to))
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
            BuddyAction::Cancel { invitation } => self
                .buddies
                .presence(roster)
                .cancel(me, InvitationId(invitation), &mut out)
                .map_err(err)?,
            BuddyAction::Decline { invitation } => self
                .buddies
                .presence(roster)
                .decline(me, InvitationId(invitation), &mut out)
                .map_err(err)?,
            BuddyAction::Accept { invitation, wire } => {
                self.buddies
                    .presence(roster)
                    .accept(me, InvitationId(invitation), &mut out)
                    .map_err(err)?;
                self.buddies.opening_wire = Some(wire);
            }
            BuddyAction::End { chat } => {
                let chat = self.buddy_chat(me, roster, Some(&chat))?;
                self.buddies
                    .presence(roster)
                    .end_chat(me, chat, &mut out)
                    .map_err(err)?
            }
            BuddyAction::Message {
                chat,
                id,
                at,
                text,
                client_id,
                files,
            } => {
                let chat = self.buddy_chat(me, roster, chat.as_deref())?;
                self.buddy_relay(me, roster, chat, asker, (id, at, text, client_id), files);
                return Ok(());
            }
            BuddyAction::Typing { chat, active } => {
                let (peer, wire) = self.buddy_peer_in(me, roster, chat.as_deref())?;
                self.buddy_typing_to(peer, &wire, me, active);
                return Ok(());
            }
        }
        self.buddy_apply(roster, node, out);
        Ok(())
    }

    /// `me` typing in their chat, in a cluster: checked against this node's replica, told
    /// to the peer's pages here and published to the other nodes holding a page of the
    /// peer (their count is part of the replica). A node whose replica is a moment behind
    /// may name a node that just closed the peer's last page (the flag is dropped there) or
    /// miss one that just opened it (that page sees the next flag): typing is never kept.
    fn buddy_typing_across(&mut self, me: BuddyId, chat: Option<&str>, active: bool) -> Result<(), Refusal> {
        let Some(roster) = self.buddies.people.get(&me).map(|p| p.roster) else {
            return Err(("not_online", "You are not online.".to_string()));
        };
        let (peer, wire) = self.buddy_peer_in(me, roster, chat)?;
        self.buddy_typing_to(peer, &wire, me, active);
        let here = self.buddy_node().unwrap_or("");
        let nodes: Vec<String> = self
            .buddies
            .holders
            .page_nodes(peer)
            .into_iter()
            .filter(|node| node != here)
            .collect();
        if !nodes.is_empty() {
            let _ = self.buddy_typing_call(nodes, wire, me.0, active);
        }
        Ok(())
    }

    /// Typing published by another node (`buddy_typing_across`): told to the peer's pages
    /// here if the chat still runs here with `from` in it.
    pub(in crate::hub) fn buddy_typing_arrived(&mut self, wire: &str, from: u64, active: bool) {
        let Some(&(roster, chat)) = self.buddies.chat_by_wire.get(wire) else {
            return;
        };
        let Some((a, b)) = self.buddies.presence_ref(roster).chat_members(chat) else {
            return;
        };
        let peer = match BuddyId(from) {
            from if from == a => b,
            from if from == b => a,
            _ => return,
        };
        self.buddy_typing_to(peer, wire, BuddyId(from), active);
    }

    fn buddy_typing_to(&mut self, peer: BuddyId, wire: &str, from: BuddyId, active: bool) {
        let frame = ServerFrame::BuddyTyping {
            chat_id: wire.to_string(),
            from: from.0,
            active,
        };
        self.delivery
            .deliver(&Recipient::Buddy(peer), &Outbound::Frame(frame.encode()));
    }

    /// The other member of the caller's current chat (a named chat must be it), and the
    /// chat's wire id.
    fn buddy_peer_in(&self, me: BuddyId, roster: Roster, wire: Option<&str>) -> Result<(BuddyId, String), Refusal> {
        let chat = self.buddy_chat(me, roster, wire)?;
        let (a, b) = self
            .buddies
            .presence_ref(roster)
            .chat_members(chat)
            .expect("checked chat");
        let peer = if a == me { b } else { a };
        Ok((peer, self.buddies.chats[&(roster, chat)].wire_id.clone()))
    }

    /// The caller's current chat; a named chat must be it.
    fn buddy_chat(&self, me: BuddyId, roster: Roster, wire: Option<&str>) -> Result<BuddyChatId, Refusal> {
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

    /// Records a message as its sender's node stamped it (id, time; the seq is the chat's
    /// next, the same on every node since all apply the events in one order), delivers it
    /// to the peer's connections here, archives it if this node archives the chat, and
    /// gives the sender's connections here their copy (`origin`: the page that sent it,
    /// when it is this node's; the copy then waits for the archive if this node keeps it).
    fn buddy_relay(
        &mut self,
        me: BuddyId,
        roster: Roster,
        chat: BuddyChatId,
        origin: Option<ConnId>,
        (id, at, text, client_id): (String, i64, String, Option<String>),
        files: Vec<AttachmentMeta>,
    ) {
        let here = self.buddy_node().unwrap_or("").to_string();
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
        let seq = log.transcript.last_seq() + 1;
        let Stamped { frame, ack, event } = log.transcript.record_stamped(
            seq,
            stamped(
                log.wire_id.as_str(),
                seq,
                (&id, at),
                author,
                (text, files),
                client_id.as_deref(),
            ),
        );
        let archived = if log.archiver == here {
            self.archive.push_message(event)
        } else {
            None
        };
        let frame = Outbound::Frame(frame);
        let peer = if me == a { b } else { a };
        self.delivery.deliver(&Recipient::Buddy(peer), &frame);
        match origin {
            Some(origin) => {
                // The sending page gets the compact `ack`; the sender's other pages here the
                // whole message, once it is durable.
                self.acknowledge(
                    Recipient::Buddy(me),
                    SenderCopy::sent_from(origin, ack, frame),
                    archived,
                );
                self.messages_relayed.increment(1);
            }
            // Sent from a page on another node: the sender's pages here never had its text.
            None => self.delivery.deliver(&Recipient::Buddy(me), &frame),
        }
    }

    pub(super) fn buddy_unregistered(&mut self, conn: ConnId, id: BuddyId) {
        self.delivery.detach(&Recipient::Buddy(id), conn);
        self.buddy_submit(BuddyEvent::PageClosed { who: id.0 }, None, None);
    }

    pub(super) fn buddy_grace_expired(&mut self, id: BuddyId, epoch: u64) {
        self.buddy_submit(BuddyEvent::GraceExpired { who: id.0, epoch }, None, None);
    }

    /// An agent on the service desk shows on the staff roster while connected.
    pub(super) fn buddy_agent_online(&mut self, agent: &AgentId) {
        if self.buddies.reasserting {
            // Announced once this node's claim of the restored list is applied.
            self.buddies.deferred_desks.insert(agent.clone());
            return;
        }
        let Some(account) = self.agent_account(agent) else {
            return;
        };
        let event = BuddyEvent::DeskOpened {
            key: staff_key(&account.id),
            name: account.display_name.clone(),
            role: role_str(account.role).to_string(),
        };
        self.buddies.announced_desks.insert(agent.clone());
        self.buddy_submit(event, None, None);
    }

    /// The desk connection of an agent closed: one fewer connection on the staff roster.
    pub(super) fn buddy_agent_offline(&mut self, agent: &AgentId) {
        if self.buddies.deferred_desks.remove(agent) {
            return;
        }
        self.buddies.announced_desks.remove(agent);
        self.buddy_submit(
            BuddyEvent::DeskClosed {
                key: staff_key(&agent.0),
            },
            None,
            None,
        );
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
        if self.buddy_node().is_some() {
            // In a cluster the chats live on: this node's people are handed on with it.
            return;
        }
        let chats: Vec<(Roster, BuddyChatId)> = self.buddies.chat_by_wire.values().copied().collect();
        for key in chats {
            if let Some(log) = self.buddies.chats.remove(&key) {
                self.archive.push_closing(ArchiveEvent::Closed(ConversationClosed {
                    id: log.wire_id,
                    ended_at: now_ms(),
                    ended_by: Side::System,
                    reason: EndReason::Shutdown,
                    inferred: None,
                }));
            }
        }
    }

    /// A node of the cluster was lost (its routing `node_lost`, made by `heir`): each of its
    /// connections closes, as if it had closed itself; its grace timers and the chats it
    /// archived go to `heir`.
    pub(super) fn buddy_node_lost(&mut self, lost: &str, heir: &str) {
        let here = self.buddy_node().unwrap_or("").to_string();
        for (who, connections) in self.buddies.holders.take_node(lost) {
            let Some(roster) = self.buddies.people.get(&who).map(|p| p.roster) else {
                continue;
            };
            for _ in 0..connections {
                let mut out = vec![];
                if self.buddies.presence(roster).disconnect(who, &mut out).is_ok() {
                    self.buddy_apply(roster, heir, out);
                }
            }
        }
        for (who, epoch) in self.buddies.holders.hand_timers(lost, heir) {
            if heir == here {
                after(
                    &self.timers,
                    self.settings.buddy_grace,
                    Command::BuddyGraceExpired { buddy: who, epoch },
                );
            }
        }
        let mut reopened = vec![];
        let desk = &mut self.buddies;
        for ((roster, chat), log) in desk.chats.iter_mut().filter(|(_, log)| log.archiver == lost) {
            log.archiver = heir.to_string();
            if heir == here {
                let presence = match roster {
                    Roster::Public => &desk.public,
                    Roster::Staff => &desk.staff,
                };
                let inviter = presence.chat_members(*chat).map(|(a, _)| a.0);
                reopened.push((log.opened.clone(), inviter, log.transcript.after(0)));
            }
        }
        // Its lines are in the chat's log, not all in this replica (it may hold neither
        // member): the log's go to the archive again too, once read.
        for (opened, _, _) in &reopened {
            self.buddy_read(&opened.id, 0, vec![lines::state::AfterRead::Rearchive]);
        }
        self.buddy_lines_node_lost(lost, heir);
        // The lost node may not have archived all of it: the heir archives the opening and
        // every message kept again, which the store ignores where it has them (by seq).
        for (opened, inviter, messages) in reopened {
            let id = opened.id.clone();
            self.archive.push_opening(ArchiveEvent::Opened(opened));
            for m in messages {
                let from = if m.sender == inviter {
                    Side::Customer
                } else {
                    Side::Agent
                };
                let message = ArchivedMessage {
                    attachments: m.attachments,
                    ..ArchivedMessage::plain(m.id, m.seq, from, m.text, m.at)
                };
                self.archive.push_message(ArchiveEvent::Message {
                    conversation_id: id.as_str().into(),
                    message,
                });
            }
        }
    }
}
