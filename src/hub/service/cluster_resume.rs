//! A customer's resume on another node (issue 15, `docs/cluster.md` §13): the node that
//! issues a resume token records its digest in Redis (`cluster::resume_tokens`); a node
//! asked to resume with a token it did not issue looks it up, takes the customer on (a
//! running chat's log is read first, so the `resumed` frame carries what they missed
//! after their `last_seq`, as on one node), then calls `customer_resumed`, which makes it
//! the customer's holder. The node they left lets go of them when it replays that call.

use std::time::Duration;

use super::{CustomerInfo, EndedVisit, HubState};
use crate::cluster::resume_tokens;
use crate::core::routing::{ChatId, CustomerId};
use crate::hub::cluster_link::{RouterCall, UNAVAILABLE};
use crate::hub::delivery::{ConnId, Outbound, Recipient};
use crate::hub::now_ms;
use crate::protocol::ServerFrame;

/// A resume waiting for its chat's log to be read, before its `resumed` goes out.
pub(super) struct PendingResume {
    pub conn: ConnId,
    pub token: String,
    pub last_seq: u64,
}

impl HubState {
    /// Records which customer `token` resumes, cluster-wide, for `ttl`.
    pub(super) fn remember_token(&self, token: &str, customer: CustomerId, ttl: Duration) {
        if self.cluster.is_some() {
            let key = resume_tokens::key(token);
            let _ = self.call(RouterCall::RememberToken { key, customer, ttl });
        }
    }

    /// The customer's visit is over: their token resumes nobody, on any node.
    pub(super) fn forget_token(&self, token: &str) {
        if self.cluster.is_some() {
            let key = resume_tokens::key(token);
            let _ = self.call(RouterCall::ForgetToken { key });
        }
    }

    /// A resume with a token this node does not know: ask Redis whose it is.
    pub(super) fn find_token(&self, conn: ConnId, token: &str, last_seq: u64) -> Result<(), (&'static str, String)> {
        let call = RouterCall::FindToken {
            conn,
            token: token.to_string(),
            last_seq,
        };
        if self.call(call) {
            Ok(())
        } else {
            Err((UNAVAILABLE, "the cluster is too busy; try again shortly".into()))
        }
    }

    /// A customer away when their chat ended may come back on another node: what they
    /// get there (the `resumed` frame with the whole chat, then its `chat_ended`) is kept
    /// in Redis for the grace period, beside the token's key. The frames are kept as
    /// JSON: the node that shows them only drops the lines before the customer's `last_seq`.
    pub(super) fn share_ended_visit(&self, token: &str, visit: &EndedVisit) {
        if self.cluster.is_none() {
            return;
        }
        let mut chat = visit.chat.clone();
        chat.peer_connected = false;
        let resumed = ServerFrame::Resumed {
            customer_name: visit.name.clone(),
            category: chat.category.clone(),
            place: None,
            chat: Some(chat),
        };
        let json = serde_json::json!({ "resumed": resumed, "ended": visit.ended }).to_string();
        let _ = self.call(RouterCall::RememberEndedVisit {
            key: resume_tokens::ended_key(token),
            visit: json,
            ttl: self.settings.resume_grace,
        });
    }

    /// Shows a visit another node kept ([`Self::share_ended_visit`]); `false` if it is unreadable.
    fn resume_ended_elsewhere(&self, conn: ConnId, visit: &str, last_seq: u64) -> bool {
        let Ok(mut visit) = serde_json::from_str::<serde_json::Value>(visit) else {
            tracing::warn!("an ended chat kept in Redis is not JSON; the resume is refused");
            return false;
        };
        if let Some(lines) = visit["resumed"]["chat"]["messages"].as_array_mut() {
            lines.retain(|line| line["seq"].as_u64().is_some_and(|seq| seq > last_seq));
        }
        let Some(entry) = self.conns.get(&conn) else {
            return true;
        };
        for frame in ["resumed", "ended"] {
            entry.handle.send(Outbound::Frame(visit[frame].to_string().into()));
        }
        true
    }

    /// Redis answered whose a token is: take the customer on here, if the routing domain
    /// still has them; else show the chat they missed the end of, if a node kept it.
    pub(super) fn token_found(
        &mut self,
        conn: ConnId,
        token: String,
        customer: Option<CustomerId>,
        ended_visit: Option<String>,
        last_seq: u64,
    ) {
        if !self.conns.contains_key(&conn) {
            return; // The connection went meanwhile; the customer stays where they were.
        }
        let known = customer.filter(|c| self.routing.customer_category(*c).is_some());
        let Some(customer) = known else {
            if ended_visit.is_some_and(|visit| self.resume_ended_elsewhere(conn, &visit, last_seq)) {
                return;
            }
            return self.error_to_conn(conn, "resume_expired", "that session is over; join again", None);
        };
        if !self.customers.contains_key(&customer) {
            let (name, video) = self.cluster_mut().remote_customer(customer);
            self.tokens.insert(token.clone(), customer);
            self.customers.insert(
                customer,
                CustomerInfo {
                    name,
                    token: token.clone(),
                    // Only the archive's opening reads it, and the opening was not ours.
                    queued_at: now_ms(),
                    conn: None,
                    video,
                },
            );
            self.remember_token(&token, customer, resume_tokens::HELD_FOR);
            if let Some(chat) = self.routing.customer_chat(customer) {
                // Their chat's log first: the `resumed` frame carries what they missed.
                self.adopt_chat(chat);
                if self.is_filling(chat) {
                    let pending = PendingResume { conn, token, last_seq };
                    self.cluster_mut().resuming.insert(chat, pending);
                    return;
                }
            }
        }
        self.finish_resume(conn, &token, last_seq);
    }

    /// A chat's log was read: a resume waiting for it goes on.
    pub(super) fn chat_read_for_resume(&mut self, chat: ChatId) {
        if let Some(pending) = self.cluster_mut().resuming.remove(&chat) {
            self.finish_resume(pending.conn, &pending.token, pending.last_seq);
        }
    }

    fn finish_resume(&mut self, conn: ConnId, token: &str, last_seq: u64) {
        if !self.conns.contains_key(&conn) {
            // Gone before it was resumed: the customer stays away (their grace runs on the
            // node they left, which still holds them in Redis).
            return;
        }
        if let Err((code, message)) = self.customer_resume(conn, token, last_seq) {
            self.error_to_conn(conn, code, message, None);
        }
    }

    /// A customer's resume the routing domain refused: they are held by another node and
    /// not away there (a second page on this node while the first is still connected), or
    /// Redis did not answer. The connection attached in hope is told, detached and closed
    /// with 1013, so the page tries again later — by then the other page may have gone, or
    /// Redis is back and this node's own disconnect of them applied. Left attached, its
    /// messages would be refused one by one, and its presence would hide the customer's
    /// absence from this node's grace timer.
    pub(super) fn resume_refused(&mut self, conn: ConnId, code: &'static str, message: String) {
        self.error_to_conn(conn, code, message, None);
        let customer = match self.conn_role(conn) {
            Some((_, Some(Recipient::Customer(customer)))) => Some(*customer),
            _ => None,
        };
        if let Some(customer) = customer {
            self.delivery.detach(&Recipient::Customer(customer), conn);
            if let Some(info) = self.customers.get_mut(&customer)
                && info.conn == Some(conn)
            {
                info.conn = None;
            }
        }
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.who = None;
        }
        self.close_conn(conn, 1013, "cannot resume now; try again");
    }

    /// A customer of ours, away, resumed on another node: held there now. This node
    /// forgets them (not their token: it is theirs on the other node) and the logs of
    /// their chats with agents it does not hold.
    pub(super) fn let_go_of_customer(&mut self, customer: CustomerId) {
        let Some(info) = self.customers.remove(&customer) else {
            return;
        };
        self.tokens.remove(&info.token);
        self.cluster_mut()
            .remember_remote_customer(customer, info.name, info.video);
        let theirs: Vec<ChatId> = self
            .chats
            .iter()
            .filter(|(_, log)| log.customer == customer)
            .map(|(chat, _)| *chat)
            .collect();
        for chat in theirs {
            let agent_here = self
                .chats
                .get(&chat)
                .is_some_and(|log| self.agents.contains_key(&log.agent));
            if agent_here {
                // The customer's node archives now.
                if let Some(log) = self.chats.get_mut(&chat) {
                    log.archived_here = false;
                }
            } else if let Some(log) = self.chats.remove(&chat) {
                self.chat_by_wire.remove(&log.wire_id);
                self.cluster_mut().chat_closed(chat);
            }
        }
    }
}
