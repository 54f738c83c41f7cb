//! Carrying out the routing core's decisions (on one node, and a cluster node's replica
//! alike): frames to the people they name, chats opened and closed with their archive
//! events, grace timers, forgotten visits. Split out of `service.rs` by concern.

use uuid::Uuid;

use super::{ChatLog, EndedVisit, HubState};
use crate::clock::now_ms;
use crate::cluster::chat_log::NodeMessage;
use crate::cluster::resume_tokens;
use crate::core::routing::{AgentId, CategoryId, ChatEnd, ChatId, CustomerId, Decision, OfferId, Party, Removal};
use crate::hub::delivery::{ConnId, Recipient};
use crate::hub::{Command, after};
use crate::protocol::{From, RatingOffer, ServerFrame};
use crate::store::{
    ArchiveEvent, ConversationClosed, ConversationKind, ConversationOpened, ConversationTransferred, EndReason,
    InferredClosing, Side,
};

/// How a chat's end is told (`chat_ended`'s `ended_by` and `reason`) and archived (its
/// closing's reason and side), from how the routing core ended it.
pub(super) fn ending(ended_by: Party, reason: ChatEnd) -> (From, &'static str, EndReason, Side) {
    let (by, wire_reason, end) = match (ended_by, reason) {
        (_, ChatEnd::Shutdown) => (From::System, "shutdown", EndReason::Shutdown),
        (_, ChatEnd::CustomerGone) => (From::System, "customer_gone", EndReason::Disconnect),
        (Party::Customer, ChatEnd::Ended) => (From::Customer, "ended", EndReason::Ended),
        (Party::Agent, ChatEnd::Ended) => (From::Agent, "ended", EndReason::Ended),
        (Party::System, ChatEnd::Ended) => (From::System, "ended", EndReason::Ended),
    };
    let side = match by {
        From::Customer => Side::Customer,
        From::Agent => Side::Agent,
        _ => Side::System,
    };
    (by, wire_reason, end, side)
}

/// How much longer than it tells the agent the hub waits for an answer to an offer.
const OFFER_ANSWER_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A chat to close, and how ([`HubState::close_chat`]).
pub(super) struct ChatClosing<'a> {
    pub chat: ChatId,
    pub customer: CustomerId,
    /// Its agent, told it ended (`None`: nobody to tell).
    pub agent: Option<&'a AgentId>,
    /// Who the people are told ended it, and why (`chat_ended`'s `ended_by` and `reason`).
    pub by: From,
    pub reason: &'static str,
    /// The archive's closing: by which side, and how it ended.
    pub side: Side,
    pub end: EndReason,
    /// The end was not applied here but inferred from a snapshot (it ended in events this
    /// node skipped): its closing says so (`ConversationClosed::inferred`), and the real
    /// one, which the node that applied the end writes, replaces it whenever it comes.
    pub inferred: bool,
}

impl HubState {
    pub(in crate::hub) fn apply(&mut self, out: Vec<Decision>) {
        // Every transition may change whether a category is staffed (an agent set away
        // decides nothing): looked at, coalesced, at the next flush.
        self.desk_dirty = true;
        let now = now_ms();
        for decision in &out {
            if let Some(left) = self.waits.observe(decision, now) {
                self.archive_left_unserved(left, now);
            }
        }
        for decision in out {
            self.apply_one(decision);
        }
    }

    /// Keeps, for the reports, a customer who left the line before any agent served them.
    /// The node holding the customer (connected, or within their grace period) keeps it, so
    /// one node of a cluster does: their own node, or the node that reaped it when it died
    /// or stalled while they waited (their grace period runs there).
    ///
    /// Its id is made from the customer's resume token (hashed: the token is a secret), one
    /// per visit, so two nodes that both held the customer for a moment (a resume racing
    /// the end of their grace period) keep one record. The reaper never had the token: it
    /// names the record by the routing domain and the customer's id, unique in the cluster.
    fn archive_left_unserved(&mut self, left: crate::hub::waits::LeftUnserved, now: i64) {
        use sha2::Digest;
        // Being taken on here while Redis still had them elsewhere (their resume not
        // applied yet): their holder there keeps it — their node, or the reaper of it.
        if self
            .cluster
            .as_ref()
            .is_some_and(|cluster| cluster.awaiting_resumed.contains_key(&left.customer))
        {
            return;
        }
        let held = self.customers.get(&left.customer).map(|info| info.token.to_string());
        let inherited = || {
            let cluster = self.cluster.as_mut()?;
            cluster.inherited_waiting.remove(&left.customer).then(|| {
                let domain = cluster.wire_id_namespace().unwrap_or_default();
                format!("reaped/{domain}/{}", left.customer.0)
            })
        };
        let Some(name) = held.or_else(inherited) else {
            return;
        };
        let digest = sha2::Sha256::new()
            .chain_update(b"abandoned/")
            .chain_update(name.as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        self.archive.push_abandoned(crate::store::QueueAbandoned {
            id: uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string(),
            category: left.category.0.to_string(),
            queued_at: left.joined_at,
            left_at: now,
        });
    }

    fn apply_one(&mut self, decision: Decision) {
        match decision {
            Decision::Queued {
                customer,
                category,
                place,
                requeued,
            } => {
                // What this customer is told of their category now is what later changes
                // are measured against (`tell_desk_changes`).
                let status = self.desk_of(&category);
                let (open, agents_online) = *self.desk_told.entry(category.clone()).or_insert(status);
                let estimate = self.estimate(&category, place);
                // Continuing: the conversation they wait in, to read and write into meanwhile.
                let conversation = (!requeued)
                    .then(|| self.customers.get(&customer)?.continues.as_ref())
                    .flatten()
                    .map(|continued| continued.waiting_view());
                self.send(
                    Recipient::Customer(customer),
                    &ServerFrame::Queued {
                        category: category.0.to_string(),
                        place,
                        requeued,
                        open,
                        agents_online,
                        estimate,
                        conversation,
                    },
                );
            }
            Decision::PlaceChanged { customer, place } => {
                let estimate = self
                    .routing
                    .customer_category(customer)
                    .cloned()
                    .and_then(|category| self.estimate(&category, place));
                self.send(Recipient::Customer(customer), &ServerFrame::Place { place, estimate });
            }
            Decision::Paired {
                chat,
                customer,
                agent,
                category,
                ..
            } => {
                self.routes_counter.increment(1);
                self.open_chat(chat, customer, agent, category);
            }
            Decision::ChatEnded {
                chat,
                customer,
                agent,
                ended_by,
                reason,
            } => {
                let (by, wire_reason, end, side) = ending(ended_by, reason);
                // A customer of this node gets the chat, and how it ended, on a resume within
                // the grace period: away (reloading) when it ends, and connected too — the
                // `chat_ended` may go into a connection that is already going (the page
                // closed as the agent ended it, a phone's network gone before the heartbeat
                // tells), and then the customer never saw it. Not after their own `leave`:
                // their token dies with it (on a shared computer the next person must not
                // get the chat back by resuming).
                let their_own_leave = ended_by == Party::Customer;
                let away = reason == ChatEnd::Ended && self.customers.contains_key(&customer);
                // A cluster: another node's customer whose chat this node logs (its agent's,
                // or the reaper's of their node). Their node may be unable to keep the
                // ending for them: dead, or stopped with its lease still running (it counts
                // them connected until it is reaped, and is fenced when it wakes). So this
                // node keeps it too, under their id; read only through their token's key,
                // which their node takes when it forgets them after a chat they saw end.
                let elsewhere = self.cluster.is_some()
                    && reason == ChatEnd::Ended
                    && !self.customers.contains_key(&customer)
                    && self.chats.contains_key(&chat);
                let kept = if (away || elsewhere) && !their_own_leave {
                    self.snapshot(chat, Party::Customer, 0)
                } else {
                    None
                };
                let mut name = self.chats.get(&chat).map(|log| log.customer_name.clone());
                let mut recorded = self.chats.get(&chat).map_or(0, |log| log.live.last_seq());
                // A chat this node let go of when fenced, its customer held here then (both
                // sides here, the end applied in Redis as the node stopped): no other node
                // logs it, so none keeps the ending; this one does, as it kept the chat.
                let kept = match self.let_go_visit(chat) {
                    Some((visit, last_seq)) if kept.is_none() && reason == ChatEnd::Ended && !their_own_leave => {
                        name = Some(visit.customer_name);
                        recorded = last_seq;
                        Some(visit.chat)
                    }
                    _ => kept,
                };
                let rated_before = self.chats.get(&chat).is_some_and(|log| log.rated_before);
                // For the same reason this node archives the chat too, closing included: its
                // archiving node may be stopped now and fenced (or dead) before it replays
                // the end, and nobody else would write the lines acknowledged since nor the
                // closing (a node taking the stopped one over inherits running chats only).
                // The store keeps each event once, whichever copy comes first.
                // Their node lost, their chat archived here (its reaper): the ending kept
                // under their id is kept here too, to record again should Redis lose it.
                let in_our_care = elsewhere && self.chats.get(&chat).is_some_and(|log| log.archived_here);
                if elsewhere {
                    self.archive_from_now_on(chat);
                }
                self.close_chat(ChatClosing {
                    chat,
                    customer,
                    agent: Some(&agent),
                    by,
                    reason: wire_reason,
                    side,
                    end,
                    inferred: false,
                });
                if let Some(snapshot) = kept {
                    let ended = ServerFrame::ChatEnded {
                        rating: self.rating_offer(&snapshot.chat_id, &agent, wire_reason, rated_before),
                        chat_id: snapshot.chat_id.clone(),
                        ended_by: by,
                        reason: wire_reason,
                    };
                    let mut visit = EndedVisit {
                        name: name.unwrap_or_default(),
                        chat: snapshot,
                        ended,
                        complete: true,
                        until: tokio::time::Instant::now() + self.settings.resume_grace,
                    };
                    match self.customers.get(&customer) {
                        Some(info) => {
                            let token = info.token.to_string();
                            visit.name.clone_from(&info.name);
                            let key = resume_tokens::ended_key(&token);
                            let read = self.share_ended_visit(key, &visit, Some((chat, recorded)), Some(token.clone()));
                            visit.complete = !read;
                            self.ended_visits.insert(token.clone(), visit);
                            after(
                                &self.timers,
                                self.settings.resume_grace,
                                Command::ForgetEndedVisit { token },
                            );
                        }
                        None => {
                            let key = resume_tokens::ended_customer_key(customer);
                            self.share_ended_visit(key, &visit, Some((chat, recorded)), None);
                            if in_our_care
                                && let Some(cluster) = self.cluster.as_mut()
                                && let Some(token_key) = cluster.remote_token_key(customer).map(String::from)
                            {
                                cluster.keep_ending_by_customer(customer, token_key, visit);
                            }
                        }
                    }
                }
                self.forget_customer(customer);
            }
            Decision::ChatWithdrawn { chat, customer, agent } => self.chat_withdrawn(chat, customer, agent),
            Decision::Dequeued { customer, reason } => {
                let (wire, message) = match reason {
                    Removal::Left => ("left", "you left the queue".to_string()),
                    Removal::CategoryRemoved => ("category_removed", "this service category was removed".to_string()),
                };
                self.send(
                    Recipient::Customer(customer),
                    &ServerFrame::Removed { reason: wire, message },
                );
                if reason == Removal::CategoryRemoved {
                    self.delivery
                        .close(&Recipient::Customer(customer), 1000, "category removed");
                }
                // A chat handed to a category's line ends with the customer's wait there:
                // left by them, or gone (away past their grace: nobody held their page).
                let away = self.customers.get(&customer).is_none_or(|c| c.conn.is_none());
                let (side, end) = match reason {
                    Removal::Left if away => (Side::System, EndReason::Disconnect),
                    Removal::Left => (Side::Customer, EndReason::Ended),
                    Removal::CategoryRemoved => (Side::System, EndReason::Expiry),
                };
                self.end_continuing(customer, side, end);
                self.forget_customer(customer);
            }
            Decision::CustomerAway { chat, agent } => self.tell_peer(Recipient::Agent(agent), chat, true),
            Decision::CustomerBack { chat, agent } => self.tell_peer(Recipient::Agent(agent), chat, false),
            Decision::AgentAway { chat, customer } => self.tell_peer(Recipient::Customer(customer), chat, true),
            Decision::AgentBack { chat, customer } => self.tell_peer(Recipient::Customer(customer), chat, false),
            Decision::CustomerGraceStarted { customer, epoch } => {
                after(
                    &self.timers,
                    self.settings.resume_grace,
                    Command::CustomerGraceExpired { customer, epoch },
                );
            }
            Decision::AgentGraceStarted { agent, epoch } => {
                after(
                    &self.timers,
                    self.settings.resume_grace,
                    Command::AgentGraceExpired { agent, epoch },
                );
            }
            Decision::WaitingChanged { category, .. } => {
                self.dirty_waiting.insert(category);
            }
            Decision::BusyEnded { agent } => {
                if self.agents.contains_key(&agent) {
                    self.send_profile(&agent);
                }
            }
            // Its waiting customers are told at the next flush (`tell_desk_changes`).
            Decision::CategoryOpenChanged { .. } => {}
            Decision::Offered {
                offer,
                customer,
                agent,
                category,
                ..
            } => self.tell_offer(offer, customer, agent, category),
            Decision::OfferEnded { offer, agent, why, .. } => {
                self.offers_told.remove(&offer);
                let frame = ServerFrame::OfferEnded {
                    offer_id: offer.0.to_string(),
                    reason: why.word(),
                };
                self.send(Recipient::Agent(agent), &frame);
            }
            Decision::ChatTransferred {
                chat,
                customer,
                from,
                to,
                category,
            } => self.chat_transferred(chat, customer, from, to, category),
            Decision::ChatToCategory {
                chat,
                customer,
                from,
                category,
            } => self.chat_to_category(chat, customer, from, category),
            Decision::AwayAfterMissedOffers { agent } => {
                tracing::info!(agent = %agent.0, "set away after letting two offers lapse");
                if self.agents.contains_key(&agent) {
                    self.send_profile(&agent);
                }
            }
        }
    }

    /// Tells `to` that the other side of `chat` is away (their grace running) or back.
    pub(super) fn tell_peer(&mut self, to: Recipient, chat: ChatId, away: bool) {
        let chat_id = self.wire(chat);
        let frame = if away {
            ServerFrame::PeerAway {
                chat_id,
                grace_secs: self.settings.resume_grace.as_secs_f64(),
            }
        } else {
            ServerFrame::PeerBack { chat_id }
        };
        self.send(to, &frame);
    }

    /// `from` in `chat`, connected here, is typing or stopped: its peer is told, on this
    /// node or another.
    pub(super) fn typing(&mut self, chat: ChatId, from: Party, active: bool) {
        self.signal_peer(chat, from, NodeMessage::Typing { chat, from, active });
        self.tell_typing(chat, from, active);
    }

    /// Tells the other side of `chat` (when it is connected here) that `from` is typing or
    /// stopped: for a side on this node or, through [`Self::chat_signal`], on another.
    pub(super) fn tell_typing(&mut self, chat: ChatId, from: Party, active: bool) {
        let Some(log) = self.chats.get(&chat) else { return };
        let (to, from) = match from {
            Party::Customer => (Recipient::Agent(log.agent.clone()), From::Customer),
            _ => (Recipient::Customer(log.customer), From::Agent),
        };
        let frame = ServerFrame::Typing {
            chat_id: log.wire_id().to_string(),
            from,
            active,
        };
        self.send(to, &frame);
    }

    /// Tells the agent (where this node holds them) of an offer, and runs its timer here:
    /// a node runs the timers of the people it holds. An agent who drops has their offers
    /// withdrawn (`core::routing`), so an offer never outlives the node that times it.
    pub(super) fn tell_offer(&mut self, offer: OfferId, customer: CustomerId, agent: AgentId, category: CategoryId) {
        // Held here, connected or not (a disconnect not yet applied in Redis): the timer is
        // this node's either way. A second more than the agent is told: their answer may
        // be in flight as the countdown on their page ends.
        if !self.agents.contains_key(&agent) {
            return;
        }
        after(
            &self.timers,
            self.settings.offer_timeout + OFFER_ANSWER_GRACE,
            Command::OfferExpired { offer },
        );
        // Offers accepted since (a chat, not an `OfferEnded`) are forgotten here.
        self.offers_told.retain(|id, _| self.routing.offer(*id).is_some());
        let info = self.chat_customer_info(customer, &agent);
        // Unknown (0) when this node never saw the join (it started after it).
        let waited_secs = info
            .as_ref()
            .filter(|i| i.queued_at > 0)
            .map(|i| (now_ms() - i.queued_at).max(0) as f64 / 1000.0);
        let category_name = self.category_name(&category);
        let frame = ServerFrame::Offer {
            offer_id: offer.0.to_string(),
            category: category.0.to_string(),
            category_name,
            customer_name: info.as_ref().map(|i| i.name.clone()).unwrap_or_default(),
            waited_secs,
            first_message: info.as_ref().and_then(|i| i.first_message.clone()),
            video_request: info.is_some_and(|i| i.video),
            expires_in_secs: self.settings.offer_timeout.as_secs_f64(),
        };
        self.send(Recipient::Agent(agent), &frame);
        let deadline = tokio::time::Instant::now() + self.settings.offer_timeout;
        self.offers_told.insert(offer, (customer, frame, deadline));
    }

    /// The offer this node told an agent of for `customer`, now answered by a chat: its
    /// id (for the agent's `chat_started`), forgotten here.
    pub(super) fn take_offer_told(&mut self, customer: CustomerId) -> Option<String> {
        let id = self
            .offers_told
            .iter()
            .find(|(_, (offered, ..))| *offered == customer)
            .map(|(id, _)| *id)?;
        self.offers_told.remove(&id);
        Some(id.0.to_string())
    }

    /// After the replica was reloaded from a snapshot or a restore, whose skipped events no
    /// node carried out here: tells this node's agents of the offers standing for them that
    /// it has not told, and runs their timers.
    pub(super) fn tell_untold_offers(&mut self) {
        let untold: Vec<(OfferId, CustomerId, AgentId, CategoryId)> = self
            .routing
            .agents()
            .filter(|(agent, _)| self.agents.contains_key(*agent))
            .flat_map(|(_, view)| view.offers)
            .filter(|offer| !self.offers_told.contains_key(offer))
            .filter_map(|offer| {
                let (customer, agent, category) = self.routing.offer(offer)?;
                Some((offer, customer, agent.clone(), category.clone()))
            })
            .collect();
        self.offers_told.retain(|id, _| self.routing.offer(*id).is_some());
        for (offer, customer, agent, category) in untold {
            self.tell_offer(offer, customer, agent, category);
        }
    }

    /// A category's display name (its id when it has none, as for a removed category).
    pub(super) fn category_name(&self, category: &CategoryId) -> String {
        self.category_names
            .get(category.as_str())
            .cloned()
            .unwrap_or_else(|| category.0.to_string())
    }

    /// The `transferred` frame telling a customer their chat `chat_id` went to `category`'s
    /// line (by an agent, a bot's hand-over, or a dead node's bot conversation taken back).
    pub(super) fn transferred_to_line(&self, chat_id: String, category: &CategoryId) -> ServerFrame {
        ServerFrame::Transferred {
            chat_id,
            peer_name: None,
            category: Some(category.0.to_string()),
            category_name: Some(self.category_name(category)),
        }
    }

    /// Sends a connection that took over from another of the agent's (a second tab, a fast
    /// reload) the offers standing for them, each with the time it has left.
    pub(super) fn resend_offers(&mut self, agent: &AgentId, conn: ConnId) {
        let Some(view) = self.routing.agent(agent) else { return };
        let now = tokio::time::Instant::now();
        for offer in view.offers {
            let Some((_, frame, deadline)) = self.offers_told.get(&offer) else {
                continue;
            };
            let mut frame = frame.clone();
            if let ServerFrame::Offer { expires_in_secs, .. } = &mut frame {
                *expires_in_secs = deadline.saturating_duration_since(now).as_secs_f64();
            }
            self.send_to_conn(conn, &frame);
        }
    }

    pub(super) fn open_chat(&mut self, chat: ChatId, customer: CustomerId, agent: AgentId, category: CategoryId) {
        // A chat handed to a category's line, paired again: it goes on.
        let continued = self.resume_continuing(chat, &agent, &category);
        if let Some(pending) = &continued
            && let Some(log) = self.chats.get(&chat)
        {
            // Back from a line their agent left them in (`agent_gone` ended their chat on
            // their page): the chat again, with its latest lines.
            let withdrawn = pending.category.is_none();
            let to_customer = ServerFrame::ChatStarted {
                chat_id: log.wire_id().to_string(),
                category: category.0.to_string(),
                category_name: self.category_name(&category),
                peer_name: log.agent_name.clone(),
                started_at: log.started_at,
                video_request: false,
                offer_id: None,
                transfer: None,
                messages: withdrawn.then(|| {
                    let mut lines = log.live.after(0);
                    lines.drain(..lines.len().saturating_sub(super::continuing::EARLIER_LINES));
                    crate::protocol::unnamed(lines)
                }),
                continued: withdrawn,
                reopened: false,
                queued_at: None,
            };
            self.send(Recipient::Customer(customer), &to_customer);
            self.give_to_new_agent(chat, &agent, pending.note_for_agent());
            return;
        }
        // In a cluster a node opens only chats one of whose sides it holds; the other
        // side's name comes from the events stream (`cluster::ClusterState`).
        let Some(info) = self.chat_customer_info(customer, &agent) else {
            return;
        };
        let archived_here = self.customers.contains_key(&customer);
        // A customer continuing an earlier conversation: the chat is that conversation.
        let continues = self
            .customers
            .get_mut(&customer)
            .and_then(|c| c.continues.take())
            .map(|continued| self.with_follow_ups(continued));
        // Another node's customer continuing a conversation (a cluster): its id and seq
        // came with their join; its earlier lines are the archive's (the agent's page reads
        // them: `chat_started` says `continued` without `messages`).
        // Whether it reopens (it was resolved) came with the join too: `Some` for such a one.
        // Not a chat handed to a line and paired again (`continued`): whatever its customer
        // joined for, that is a hand-over, told as one.
        let remote = match (&continues, &continued, &self.cluster) {
            (None, None, Some(cluster)) => cluster.remote_conversation(customer).cloned(),
            _ => None,
        };
        let remote_reopens = remote.as_ref().map(|c| c.reopened);
        let remote_conversation = remote_reopens.is_some();
        let (wire_id, live) = match (&continues, &self.cluster) {
            (Some(continues), _) => (
                continues.id.clone(),
                self.new_line_from(chat, &continues.id, continues.transcript(super::TRANSCRIPT_LIMIT)),
            ),
            (None, Some(_)) => self.remote_line(chat, customer),
            (None, None) => {
                let wire_id = Uuid::now_v7().to_string();
                let live = self.new_line(chat, &wire_id);
                (wire_id, live)
            }
        };
        let agent_name = self
            .agents
            .get(&agent)
            .map(|a| a.account.display_name.clone())
            .or_else(|| self.cluster.as_ref().and_then(|c| c.agent_name(&agent)))
            .unwrap_or_default();
        // In a cluster every node gives the chat the time its pairing entered the events stream.
        let started_at = self
            .cluster
            .as_ref()
            .and_then(|c| c.paired_at(chat))
            .unwrap_or_else(now_ms);
        // Routing opens no more chats than the archive has room for (see `refresh_pairing_room`).
        let mut closing_reserved = false;
        if archived_here {
            let opened = ConversationOpened {
                id: wire_id.clone(),
                kind: ConversationKind::Service,
                category: Some(category.0.to_string()),
                customer_name: info.name.clone(),
                agent_id: agent.0.clone(),
                agent_name: agent_name.clone(),
                queued_at: info.queued_at,
                paired_at: started_at,
                customer: info.profile.clone(),
            };
            // A continued conversation was created before (by its first pairing, or by
            // the bot that took it first): this pairing assigns it.
            closing_reserved = match &continues {
                None => self.archive.push_opening(ArchiveEvent::Opened(opened)),
                Some(continues) => self
                    .archive
                    .push_reopening(opened, continues.holder.as_ref().map(|(h, _)| h.0.as_str())),
            };
            match &continues {
                None => self.conversation_opened(&wire_id, &category, &info.profile, &agent),
                Some(continues) => {
                    if let Some((holder, holder_name)) = continues.earlier_holder(&agent) {
                        self.archive
                            .push_message(ArchiveEvent::Transferred(ConversationTransferred {
                                id: wire_id.clone(),
                                at: started_at,
                                after_seq: continues.last_seq,
                                from_agent_id: holder.0.clone(),
                                from_agent_name: holder_name.clone(),
                                to_agent_id: Some(agent.0.clone()),
                                to_agent_name: Some(agent_name.clone()),
                                to_category: None,
                                note: continues.note.clone(),
                            }));
                    }
                    self.conversation_continued(&wire_id, &agent);
                }
            }
        }
        if archived_here && let Some(pending) = &continued {
            // The customer came to this node while they waited: the log went with the
            // node that kept it; the archive applies the opening and the lines by id.
            let transfer = ConversationTransferred {
                id: wire_id.clone(),
                at: started_at,
                after_seq: 0,
                from_agent_id: pending.from.0.clone(),
                from_agent_name: pending.from_name.clone(),
                to_agent_id: Some(agent.0.clone()),
                to_agent_name: Some(agent_name.clone()),
                to_category: pending.category.as_ref().map(|c| c.0.to_string()),
                note: pending.note.clone(),
            };
            self.record_transfer(transfer, &category.0, Some(pending.at));
        }
        let category_name = self.category_name(&category);
        let to_customer = ServerFrame::ChatStarted {
            chat_id: wire_id.clone(),
            category: category.0.to_string(),
            category_name: category_name.clone(),
            peer_name: agent_name.clone(),
            started_at,
            video_request: false,
            offer_id: None,
            transfer: None,
            messages: continues.as_ref().map(|c| c.named_lines()),
            continued: continues.is_some(),
            reopened: false,
            queued_at: None,
        };
        // An accepted offer: the agent's page matches the chat to its offer card.
        let offer_id = self.take_offer_told(customer);
        let transfer = match (&continues, &continued, &remote) {
            (Some(continues), ..) => continues.note_for(&agent),
            (None, Some(pending), _) => Some(pending.note_for_agent()),
            // Another node's customer: who held it rode in their join.
            (None, None, Some(remote)) => super::continuing::remote_note_for(remote, &agent),
            (None, None, None) => None,
        };
        // Kept for the agent's snapshots, whose lines run past the hand-over: where the
        // earlier side's lines end must be said (chat_started's lines end there).
        let handed_over = transfer.clone().map(|mut t| {
            if t.earlier_agents.is_empty() {
                t.earlier_agents.push(crate::protocol::EarlierAgent {
                    name: t.from_name.clone(),
                    through_seq: live.last_seq(),
                });
            }
            t
        });
        let told = super::ContinuedTold {
            continued: continues.is_some() || remote_conversation,
            reopened: continues
                .as_ref()
                .map_or_else(|| remote_reopens == Some(true), |c| c.reopened),
            // How long they waited this time (the archive's opening is the first turn's).
            queued_at: (continues.is_some() || remote_conversation)
                .then_some(info.queued_at)
                .filter(|at| *at > 0),
        };
        let to_agent = ServerFrame::ChatStarted {
            chat_id: wire_id.clone(),
            category: category.0.to_string(),
            category_name,
            peer_name: info.name.clone(),
            started_at,
            video_request: info.video && continued.is_none(),
            offer_id,
            // A chat handed to a category's line and paired on a node that kept no log of
            // it: its lines come from the chat's log (`fill` below) as `message` frames.
            messages: match &continues {
                Some(continues) => Some(super::transfers::named_for_agent(
                    continues.earlier.clone(),
                    transfer.as_ref(),
                )),
                None if remote_conversation => None,
                None => continued.as_ref().map(|_| vec![]),
            },
            transfer,
            continued: told.continued,
            reopened: told.reopened,
            queued_at: told.queued_at,
        };
        let rated_before = continues.as_ref().is_some_and(|c| c.rated);
        // Taken from a line on a node that kept no log of the chat (the one that kept it
        // returned above): where the earlier agent's lines end is the log as the read below
        // finds it, as for a chat handed to an agent here (`earlier_through_the_read`).
        let earlier_through_the_read = continued.is_some() && self.cluster.is_some();
        self.insert_chat(
            chat,
            ChatLog {
                category,
                customer,
                agent: agent.clone(),
                customer_name: info.name.clone(),
                agent_name,
                started_at,
                live,
                archived_here,
                closing_reserved,
                // Kept for a later hand-on, whose agent names those lines too.
                earlier_agents: handed_over
                    .as_ref()
                    .map(|t| t.earlier_agents.clone())
                    .unwrap_or_default(),
                rated_before,
                created_by_it: continues.is_none() && !remote_conversation && continued.is_none(),
                handed_over,
                earlier_through_the_read,
                continued: told,
            },
        );
        self.chat_by_wire.insert(wire_id, chat);
        self.send(Recipient::Customer(customer), &to_customer);
        self.send(Recipient::Agent(agent.clone()), &to_agent);
        if continued.is_some() {
            self.send_notes(&agent, chat);
        }
        if self.cluster.is_some() {
            // A first message may have been published before this node saw the pairing.
            self.fill(chat, 0);
        }
    }

    /// Closes chat `closing.chat` here: its people are told, and where this node archives
    /// it, its closing is written (and its conversation resolved when it ended on purpose).
    pub(super) fn close_chat(&mut self, closing: ChatClosing<'_>) {
        let ChatClosing {
            chat,
            customer,
            agent,
            by,
            reason,
            side,
            end,
            inferred,
        } = closing;
        let Some(log) = self.remove_chat(chat) else {
            // Not held here: perhaps one this node let go of when fenced, which ended.
            if self.cluster.is_some() {
                self.close_let_go(chat, side, end);
            }
            return;
        };
        self.chat_by_wire.remove(log.wire_id());
        if let Some(cluster) = &mut self.cluster {
            cluster.chat_closed(chat);
        }
        if log.archived_here {
            // Ended on purpose, it is done; its customer merely gone, it stays open.
            if end == EndReason::Ended {
                self.conversation_resolved(log.wire_id(), self.opening_known(&log));
            }
            let closed = ConversationClosed {
                id: log.wire_id().to_string(),
                // In a cluster, when the end applied in Redis: every node that writes this
                // closing dates it alike, however late it replays the end.
                ended_at: self.cluster.as_ref().map_or_else(now_ms, |c| c.stream_time()),
                ended_by: side,
                reason: end,
                // Inferred: it closes this visit, paired when the chat was (the stream's clock).
                inferred: inferred.then_some(InferredClosing {
                    visit_paired_at: log.started_at,
                }),
            };
            if self.cluster.is_some() {
                // The chat's last lines may reach this node after its end: read its log first.
                self.close_after_last_read(chat, log.live.last_seq(), closed);
            } else {
                self.archive.push_closing(ArchiveEvent::Closed(closed));
            }
        }
        // The customer's copy says how to rate the chat (the agent's never does).
        let rating = self.rating_offer(log.wire_id(), &log.agent, reason, log.rated_before);
        let to_customer = ServerFrame::ChatEnded {
            chat_id: log.wire_id().to_string(),
            ended_by: by,
            reason,
            rating,
        };
        self.send(Recipient::Customer(customer), &to_customer);
        if let Some(agent) = agent {
            self.chat_ended_to_agent(agent, log.wire_id(), by, reason);
        }
    }

    /// How the customer may rate the chat `chat_id` (its wire id, the conversation's id)
    /// served by `agent`: only a chat that ended (not one whose customer or agent is gone),
    /// of a conversation not rated before (each is rated once).
    pub(super) fn rating_offer(
        &self,
        chat_id: &str,
        agent: &AgentId,
        reason: &str,
        rated_before: bool,
    ) -> Option<RatingOffer> {
        (reason == "ended" && !rated_before).then(|| RatingOffer {
            token: crate::ratings::issue(&self.settings, chat_id, &agent.0, crate::ratings::now_secs()),
            scale: self.settings.rating_scale,
        })
    }

    /// A customer whose visit is over: their token no longer resumes; their connection may join again.
    pub(super) fn forget_customer(&mut self, customer: CustomerId) {
        if let Some(cluster) = &mut self.cluster {
            cluster.forget_customer(customer);
        }
        if let Some(info) = self.customers.remove(&customer) {
            self.tokens.remove(&info.token);
            self.forget_token(&info.token.to_string());
            if let Some(conn) = info.conn {
                self.delivery.detach(&Recipient::Customer(customer), conn);
                if let Some(entry) = self.conns.get_mut(&conn) {
                    entry.who = None;
                }
            }
        }
    }
}
