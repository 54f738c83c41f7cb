//! A customer's frames: joining a queue, resuming after a drop (here, or a chat that
//! ended while they were away), and what a joined customer sends in their chat.

use super::continuing::{Continued, JoinAsked};
use super::{CustomerInfo, EndedVisit, HubState, Token, close, not_allowed, valid_name};
use crate::clock::now_ms;
use crate::cluster::chat_log::NodeMessage;
use crate::cluster::replica::RoutingOp;
use crate::core::conversation::Route;
use crate::core::routing::{CategoryId, ChatId, CustomerId, Decision, Party, RoutingError};
use crate::hub::delivery::{ConnId, Recipient};
use crate::protocol::{ClientFrame, FIRST_MESSAGE_MAX_CHARS, JoinFrame, ServerFrame};
use crate::store::CustomerProfile;

impl HubState {
    /// Keeps the address the customer gave with conversation `id` (the agent's customer
    /// panel, the archive and the follow-up mails use it), once its opening is stored; off
    /// the hub's task. For an address given after the conversation's first opening, which
    /// the stores keep as it was (to a bot, or on a join continuing the conversation).
    pub(super) fn keep_customer_email(&self, id: &str, email: &str) {
        let (archive, id, email) = (self.archive.clone(), id.to_string(), email.to_string());
        tokio::spawn(async move {
            if !archive.stored_through_now().await {
                tracing::warn!(conversation = %id, "the archive is behind; the email a customer gave waits for it");
            }
            if let Err(e) = archive.store().set_customer_email(&id, &email).await {
                tracing::warn!(conversation = %id, error = %e, "the email a customer gave was not kept");
            }
        });
    }

    /// A customer's join that continues a conversation, taken (by the routing here, or by
    /// the cluster): an email they gave on it is kept with the conversation from then on,
    /// whether they are paired or leave first, on whichever node.
    pub(super) fn keep_email_of_continuing(&self, continues: Option<&Continued>, profile: &CustomerProfile) {
        if let (Some(continued), Some(email)) = (continues, profile.email.as_deref()) {
            self.keep_customer_email(&continued.id, email);
        }
    }

    pub(super) fn unjoined_customer_frame(&mut self, conn: ConnId, frame: ClientFrame) {
        // A refused message names its client id, so the page can match the refusal to it.
        let client_id = match &frame {
            ClientFrame::Message { client_id, .. } => client_id.clone(),
            _ => None,
        };
        let talking_to_bot = self.bots.stage_of(conn).map(str::to_string);
        let result = match frame {
            frame if let Some(id) = talking_to_bot => self.bot_stage_customer_frame(conn, id, frame),
            ClientFrame::Join(join) => self.join_frame(conn, *join),
            ClientFrame::Resume { token, last_seq } => self.customer_resume(conn, &token, last_seq, None),
            other => Err(("not_joined", format!("send join or resume before {:?}", other.kind()))),
        };
        if let Err((code, message)) = result {
            self.error_to_conn(conn, code, message, client_id);
        }
    }

    /// A customer's `join`: its details checked, then (its identity, if any, checked
    /// against the desk's secret first) into a line, or continuing.
    fn join_frame(&mut self, conn: ConnId, join: JoinFrame) -> Result<(), (&'static str, String)> {
        let JoinFrame {
            name,
            category,
            video,
            message,
            email,
            visitor,
            page,
            zone,
            conversation,
            identifier,
            identifier_hash,
        } = join;
        let asked = JoinAsked {
            name,
            category,
            video,
            message,
            profile: valid_profile(email, visitor, page, zone)?,
            conversation,
        };
        match identifier {
            Some(identifier) => {
                self.verify_identity(conn, asked, identifier, identifier_hash);
                Ok(())
            }
            None => self.join_as_asked(conn, asked),
        }
    }

    /// A `join` as asked (its identity, if any, checked): into a line, or continuing.
    pub(super) fn join_as_asked(&mut self, conn: ConnId, mut asked: JoinAsked) -> Result<(), (&'static str, String)> {
        match asked.conversation.take() {
            Some(id) => self.continue_conversation(conn, asked, id),
            None => {
                // A category's bot, if it has one to talk to, has the customer first.
                let Some(asked) = self.join_bot_first(conn, asked)? else {
                    return Ok(());
                };
                let category = asked.category.clone();
                self.customer_join(conn, &category, asked, None)
            }
        }
    }

    /// A customer joins `category`'s line (continuing an earlier conversation, `continues`).
    pub(super) fn customer_join(
        &mut self,
        conn: ConnId,
        category: &str,
        asked: JoinAsked,
        continues: Option<Box<Continued>>,
    ) -> Result<(), (&'static str, String)> {
        let JoinAsked {
            name,
            video,
            message,
            profile,
            ..
        } = asked;
        let name = valid_name(&name)?;
        let first_message = valid_first_message(message)?;
        let category = CategoryId::from(category.to_string());
        if self.cluster.is_some() {
            let joining = super::cluster::Joining {
                name,
                video,
                first_message,
                profile,
                continues,
            };
            return self.cluster_join(conn, category, joining);
        }
        let mut out = vec![];
        // A customer continuing a conversation goes back to its agent while that holds.
        // The core holds the conversation for them: one live customer per conversation.
        let preferred = match continues.as_ref().map(|c| &c.route) {
            Some(Route::Prefer(agent)) => Some(agent),
            _ => None,
        };
        let joined = match (&continues, preferred) {
            (Some(c), preferred) => {
                let conversation = crate::core::routing::ConversationId(c.id.clone());
                self.routing
                    .join_continuing(&category, &conversation, preferred, &mut out)
            }
            (None, Some(agent)) => self.routing.join_preferring(&category, agent, &mut out),
            (None, None) => self.routing.join(&category, &mut out),
        };
        let customer = joined.map_err(|e| match e {
            RoutingError::AlreadyLive => (e.code(), e.to_string()),
            e => (e.code(), format!("{e}: {:?}", category.0)),
        })?;
        // The core queues every join before routing it. A customer it paired at once was
        // never waiting as far as they can see: the protocol answers such a join with
        // `chat_started` alone, so the `queued` of this same pass is not sent.
        let paired_at_once = out
            .iter()
            .any(|d| matches!(d, Decision::Paired { customer: c, .. } if *c == customer));
        if paired_at_once {
            out.retain(|d| !matches!(d, Decision::Queued { customer: c, .. } if *c == customer));
        }
        self.keep_email_of_continuing(continues.as_deref(), &profile);
        let token = Token::new();
        self.tokens.insert(token, customer);
        self.customers.insert(
            customer,
            Box::new(CustomerInfo {
                name: name.clone(),
                token,
                queued_at: now_ms(),
                conn: Some(conn),
                video,
                first_message,
                profile,
                continues,
            }),
        );
        self.set_who(conn, Recipient::Customer(customer));
        self.send_to_conn(
            conn,
            &ServerFrame::Welcome {
                customer_name: name,
                resume_token: token.to_string(),
                grace_secs: self.settings.resume_grace.as_secs_f64(),
                max_message_len: self.settings.max_message_len,
                draft_preview: self.settings.draft_preview,
            },
        );
        self.apply(out);
        Ok(())
    }

    /// `taken_on`: the customer was another node's, taken on here for this resume (a
    /// cluster); let go again if Redis refuses it.
    pub(super) fn customer_resume(
        &mut self,
        conn: ConnId,
        token: &str,
        last_seq: u64,
        taken_on: Option<super::cluster::resume::TakenOn>,
    ) -> Result<(), (&'static str, String)> {
        let expired = || ("resume_expired", "that session is over; join again".to_string());
        if self.ended_visits.get(token).is_some_and(|visit| !visit.complete) {
            // Lines stamped elsewhere before the end may be missing here: the copy kept in
            // Redis, which the router completes before any lookup asked after it, is shown
            // (this one stays, for a resume while Redis is away).
            return self.find_token(conn, token, last_seq);
        }
        if let Some(visit) = self.ended_visits.remove(token) {
            self.resume_ended_visit(conn, visit, last_seq);
            return Ok(());
        }
        let Some(customer) = Token::parse(token).and_then(|t| self.tokens.get(&t)).copied() else {
            // Maybe another node's (a cluster): Redis knows whose.
            return match self.cluster {
                Some(_) => self.find_token(conn, token, last_seq),
                None => Err(expired()),
            };
        };
        self.routing.customer_category(customer).ok_or_else(expired)?;
        let info = self.customers.get_mut(&customer).ok_or_else(expired)?;
        if self.cluster.is_some() && info.conn.is_none() {
            // Redis decides whether they are back here (their old node may still hold them):
            // `resumed` goes out once it has (`cluster::resume`), never before a refusal.
            return self.resume_through_cluster(conn, customer, last_seq, taken_on);
        }
        let previous = info.conn.replace(conn);
        if let Some(old) = previous {
            // Taking over from a connection the hub still believes alive (a fast reload).
            self.delivery.detach(&Recipient::Customer(customer), old);
            if let Some(entry) = self.conns.get_mut(&old) {
                entry.who = None;
            }
            self.close_conn(old, close::REPLACED, "resumed on another connection");
        }
        self.set_who(conn, Recipient::Customer(customer));
        // Where they are now, before anything their return causes (such as being paired at once).
        if let Some(resumed) = self.resumed_frame(customer, last_seq) {
            self.send_to_conn(conn, &resumed);
        }
        if let Some(status) = self.desk_status_of(customer) {
            self.send_to_conn(conn, &status);
        }
        for frame in self.continuing_frames(customer, last_seq) {
            self.send_to_conn(conn, &frame);
        }
        let mut out = vec![];
        if previous.is_none() {
            let _ = self.routing.customer_resumed(customer, &mut out);
        }
        self.apply(out);
        Ok(())
    }

    /// For a waiting customer back after a reload, whose category is closed or has nobody
    /// to answer now: the `desk_status` that says so (one sent while they were away is lost).
    pub(super) fn desk_status_of(&self, customer: CustomerId) -> Option<ServerFrame> {
        self.routing.place(customer)?;
        let category = self.routing.customer_category(customer)?;
        let (open, agents_online) = self.desk_of(category);
        (!open || !agents_online).then(|| ServerFrame::DeskStatus {
            category: category.0.to_string(),
            open,
            agents_online,
        })
    }

    /// The `resumed` frame for a customer: their place or chat (the messages after
    /// `last_seq`) as they are now. `None` if the routing no longer knows them.
    pub(super) fn resumed_frame(&self, customer: CustomerId, last_seq: u64) -> Option<ServerFrame> {
        let category = self.routing.customer_category(customer)?;
        let name = self.customers.get(&customer)?.name.clone();
        let chat = self
            .routing
            .customer_chat(customer)
            .and_then(|chat| self.snapshot(chat, Party::Customer, last_seq));
        let place = self.routing.place(customer);
        // Waiting to continue a conversation: all of it as it is now, whatever `last_seq`
        // says (the page may have kept nothing, and the lines are few).
        let conversation = place
            .and(self.customers.get(&customer)?.continues.as_ref())
            .map(|continued| continued.waiting_view());
        Some(ServerFrame::Resumed {
            customer_name: name,
            category: category.0.to_string(),
            place,
            chat,
            conversation,
        })
    }

    /// A customer back within the grace period whose chat ended while they were away:
    /// they get the whole chat (what they missed included) and how it ended.
    pub(super) fn resume_ended_visit(&mut self, conn: ConnId, visit: EndedVisit, last_seq: u64) {
        let mut chat = visit.chat;
        chat.messages.retain(|m| m.line.seq > last_seq);
        chat.peer_connected = false;
        let resumed = ServerFrame::Resumed {
            customer_name: visit.name,
            category: chat.category.clone(),
            place: None,
            chat: Some(chat),
            conversation: None,
        };
        self.send_to_conn(conn, &resumed);
        self.send_to_conn(conn, &visit.ended);
    }

    /// The router read the log of the chat of a visit kept here: the lines this node had
    /// not recorded at the end join the visit, which now holds every line.
    pub(super) fn ended_visit_read(&mut self, token: &str, late: Vec<crate::protocol::ChatMessage>) {
        let Some(visit) = self.ended_visits.get_mut(token) else {
            return;
        };
        let recorded = visit.chat.messages.last().map_or(0, |m| m.line.seq);
        let late: Vec<_> = late.into_iter().filter(|m| m.seq > recorded).collect();
        visit.chat.messages.extend(crate::protocol::unnamed(late));
        visit.complete = true;
    }

    pub(super) fn customer_frame(
        &mut self,
        conn: ConnId,
        id: CustomerId,
        frame: ClientFrame,
    ) -> Result<(), (&'static str, String)> {
        match frame {
            ClientFrame::Message {
                text,
                client_id,
                attachments,
                ..
            } => {
                let Some(chat) = self.routing.customer_chat(id) else {
                    // Waiting in line: into the conversation they continue, if they do.
                    return self.customer_line_while_waiting(conn, id, (text, attachments.len()), client_id);
                };
                if !attachments.is_empty() {
                    let sender = crate::core::attachments::Uploader::Customer;
                    return self.relay_files(chat, (Party::Customer, conn), &sender, (text, &attachments), client_id);
                }
                self.relay(chat, (Party::Customer, conn), text, client_id)
            }
            ClientFrame::Typing { active, .. } => {
                let chat = self.customer_chat(id)?;
                self.typing(chat, Party::Customer, active);
                Ok(())
            }
            ClientFrame::Draft { text } => {
                let chat = self.customer_chat(id)?;
                if self.settings.draft_preview {
                    let text: String = text.chars().take(self.settings.max_message_len).collect();
                    self.signal_peer(
                        chat,
                        Party::Customer,
                        NodeMessage::Draft {
                            chat,
                            text: text.clone(),
                        },
                    );
                    let log = &self.chats[&chat];
                    let frame = ServerFrame::Draft {
                        chat_id: log.wire_id().to_string(),
                        text,
                    };
                    self.send(Recipient::Agent(log.agent.clone()), &frame);
                }
                Ok(())
            }
            ClientFrame::Leave {} if self.cluster.is_some() => {
                self.route(RoutingOp::Leave(id), Some(conn));
                Ok(())
            }
            ClientFrame::Leave {} => {
                let mut out = vec![];
                self.routing
                    .leave(id, &mut out)
                    .map_err(|e| (e.code(), e.to_string()))?;
                self.apply(out);
                Ok(())
            }
            ClientFrame::Transcript { email } => {
                let chat = self.customer_chat(id)?;
                self.transcript_frame(conn, id, chat, email)
            }
            ClientFrame::Join(_) | ClientFrame::Resume { .. } => {
                let _ = conn;
                Err(("already_joined", "this connection has joined already".into()))
            }
            other => Err(not_allowed(&other, "customers")),
        }
    }

    pub(super) fn customer_chat(&self, id: CustomerId) -> Result<ChatId, (&'static str, String)> {
        self.routing.customer_chat(id).ok_or_else(waiting_not_in_chat)
    }
}

/// A chat frame from a customer who waits in line (and continues no conversation).
pub(super) fn waiting_not_in_chat() -> (&'static str, String) {
    ("not_in_chat", "you are waiting in line, not in a chat yet".to_string())
}

/// A `join.message`, trimmed (blank: none), refused when over [`FIRST_MESSAGE_MAX_CHARS`].
/// The details a joining customer gave, each checked by `core::customer_details`.
fn valid_profile(
    email: Option<String>,
    visitor: Option<String>,
    page: Option<String>,
    zone: Option<String>,
) -> Result<CustomerProfile, (&'static str, String)> {
    use crate::core::customer_details as details;
    let refused = |e: details::Invalid| (e.code, e.message);
    Ok(CustomerProfile {
        email: details::optional_email(email.as_deref()).map_err(refused)?,
        visitor: details::visitor(visitor.as_deref()).map_err(refused)?,
        page: details::page(page.as_deref()).map_err(refused)?,
        zone: details::zone(zone.as_deref()).map_err(refused)?,
        // Set only once its hash verified (`HubState::verify_identity`).
        identity: None,
    })
}

pub(super) fn valid_first_message(message: Option<String>) -> Result<Option<String>, (&'static str, String)> {
    let Some(message) = message.map(|m| m.trim().to_string()).filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    if crate::core::names::has_forbidden_text_char(&message) {
        return Err((
            "invalid_message",
            "a join message may hold line breaks but no other control or text-direction character".to_string(),
        ));
    }
    if message.chars().count() > FIRST_MESSAGE_MAX_CHARS {
        return Err((
            "message_too_long",
            format!("a join message has at most {FIRST_MESSAGE_MAX_CHARS} characters"),
        ));
    }
    Ok(Some(message))
}
