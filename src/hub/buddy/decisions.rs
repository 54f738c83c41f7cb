//! Carrying out the presence core's decisions on this node: frames to the connections
//! it has, grace timers it runs, and the archive of the chats it archives. In a cluster
//! every node carries out every decision, each for its own connections (a frame for
//! someone not connected here goes nowhere); timers and the archive belong to one node.

use uuid::Uuid;

use super::desk::{BuddyChat, Roster, TRANSCRIPT_LIMIT, status_str};
use crate::clock::now_ms;
use crate::core::presence::{BuddyChatId, BuddyDecision, BuddyId, ChatEndReason, CloseReason, Status};
use crate::hub::delivery::{Delivery, Outbound, Recipient};
use crate::hub::service::HubState;
use crate::hub::transcript::Transcript;
use crate::hub::{Command, after};
use crate::protocol::{InvitationRef, ServerFrame};
use crate::store::{ArchiveEvent, ConversationClosed, ConversationKind, ConversationOpened, EndReason, Side};

impl HubState {
    pub(super) fn buddy_apply(&mut self, roster: Roster, node: &str, out: Vec<BuddyDecision>) {
        for decision in out {
            self.buddy_apply_one(roster, node, decision);
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

    /// Carries out one decision of an event made by `node`: frames to the connections
    /// here; timers and the archive on the node whose they are.
    fn buddy_apply_one(&mut self, roster: Roster, node: &str, decision: BuddyDecision) {
        let here = self.buddy_node().unwrap_or("").to_string();
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
                // The timer runs on the node that made the event (the one the connection
                // closed on, or the heir of a lost node).
                self.buddies.holders.timer_started(who, node, epoch);
                if node == here {
                    after(
                        &self.timers,
                        self.settings.buddy_grace,
                        Command::BuddyGraceExpired { buddy: who, epoch },
                    );
                }
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
            BuddyDecision::ChatStarted { chat, a, b } => self.buddy_chat_started(roster, node, chat, a, b),
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
                let closing = ConversationClosed {
                    id: log.wire_id.clone(),
                    ended_at: now_ms(),
                    ended_by: if ended_by == a { Side::Customer } else { Side::Agent },
                    reason: end,
                    inferred: None,
                };
                if self.buddy_node().is_some() {
                    // Lines stamped before the end may reach this node after it: the end is
                    // kept for them, and the closing waits for the log (`buddy::lines`).
                    self.buddy_chat_over((a, b), &log, closing);
                } else if log.archiver == here {
                    self.archive.push_closing(ArchiveEvent::Closed(closing));
                }
                let frame = ServerFrame::BuddyChatEnded {
                    chat_id: log.wire_id,
                    ended_by: Some(ended_by.0),
                    reason: wire_reason,
                };
                self.send_to_pair([a, b], &frame);
            }
        }
    }

    fn buddy_chat_started(&mut self, roster: Roster, node: &str, chat: BuddyChatId, a: BuddyId, b: BuddyId) {
        let wire_id = self
            .buddies
            .opening_wire
            .take()
            .unwrap_or_else(|| Uuid::now_v7().to_string());
        let name = |id: BuddyId| self.buddies.people.get(&id).map(|p| p.name.clone()).unwrap_or_default();
        let (a_name, b_name) = (name(a), name(b));
        let now = now_ms();
        let opened = ConversationOpened {
            id: wire_id.clone(),
            kind: ConversationKind::Buddy,
            category: None,
            customer_name: a_name.clone(),
            agent_id: format!("buddy:{}", b.0),
            agent_name: b_name.clone(),
            queued_at: now,
            paired_at: now,
            customer: Default::default(),
        };
        // The accepting node archives the chat; it checked the archive had room for this
        // opening and its closing before it sent the accept.
        if self.buddy_node().unwrap_or("") == node {
            self.archive.push_opening(ArchiveEvent::Opened(opened.clone()));
        }
        self.buddies.chats.insert(
            (roster, chat),
            BuddyChat {
                wire_id: wire_id.clone(),
                transcript: Transcript::new(TRANSCRIPT_LIMIT),
                archiver: node.to_string(),
                opened,
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
