//! A customer's resume on another node (`docs/cluster.md` §13): the node that
//! issues a resume token records its digest in Redis (`cluster::resume_tokens`); a node
//! asked to resume with a token it did not issue looks it up, takes the customer on (a
//! running chat's log is read first, so the `resumed` frame carries what they missed
//! after their `last_seq`, as on one node), then calls `customer_resumed`, which makes it
//! the customer's holder. The node they left lets go of them when it replays that call.
//!
//! Every resume that needs Redis's word (the customer away, here or on another node) sends
//! `customer_resumed` first and answers `resumed` only when the events stream applies it:
//! Redis may refuse it (their old node still holds them connected — it is stalled and not
//! reaped yet — or Redis is away), and a `resumed` followed by a refusal would show the
//! client a state that does not exist. A refusal closes the connection with 1013 and no
//! `resumed`; a customer taken on from another node for the attempt is let go again.
//!
//! A customer whose node died or stalled is their reaper's (`handover`); if their
//! chat ends while they are away there, the reaper keeps what one node would show them
//! under the customer's id (it never had their token), and a resume anywhere finds it.

use std::time::Duration;

use super::super::{CustomerInfo, EndedVisit, HubState, close};
use crate::clock::now_ms;
use crate::cluster::replica::RoutingOp;
use crate::cluster::resume_tokens;
use crate::core::routing::{ChatId, CustomerId};
use crate::hub::cluster::link::{RouterCall, UNAVAILABLE};
use crate::hub::delivery::{ConnId, Outbound, Recipient};
use crate::protocol::ServerFrame;

/// Redis's answer to a resume with a token this node did not issue (`token_found`).
pub(in crate::hub::service) struct FoundToken {
    pub conn: ConnId,
    pub token: String,
    pub customer: Option<CustomerId>,
    pub ended_visit: Option<String>,
    pub last_seq: u64,
}

/// A resume whose token names a customer this replica does not know yet: decided once the
/// replica has applied the events stream up to `until` (the newest entry at the lookup),
/// or told to resume again if that takes longer than [`REPLICA_WAIT`].
pub(in crate::hub::service) struct AwaitingReplica {
    pub found: FoundToken,
    pub until: String,
    pub since: std::time::Instant,
}

/// How long a resume waits for this node's replica to catch up with the events stream
/// before the client is told to resume again (`cluster_unavailable`, the connection open).
const REPLICA_WAIT: Duration = Duration::from_secs(5);

/// Resumes waiting for the replica at most; more are told to resume again at once. Each
/// needs a connection, and connections are bounded; this bounds the list's scans.
const AWAITING_REPLICA_MAX: usize = 1_024;

/// A resume waiting for its chat's log to be read, before its `customer_resumed` goes out.
pub(in crate::hub::service) struct PendingResume {
    pub conn: ConnId,
    pub token: String,
    pub last_seq: u64,
    pub taken_on: Option<TakenOn>,
}

/// A resume whose `customer_resumed` went to Redis and is not applied yet.
pub(in crate::hub::service) struct AwaitingResumed {
    /// The connection that gets `resumed` (a second page takes the place of the first).
    pub conn: ConnId,
    /// The connection the call was sent for: a refusal names it.
    pub sent_for: ConnId,
    pub last_seq: u64,
    pub taken_on: Option<TakenOn>,
}

/// What a resume attempt took on here from another node, to be undone exactly if the
/// attempt fails — and nothing more: a reaper that already archives the customer's chat
/// (`handover`) keeps archiving it.
#[derive(Debug, Clone, Copy)]
pub(in crate::hub::service) struct TakenOn {
    pub customer: CustomerId,
    pub chat: Option<ChatId>,
    /// The attempt opened this node's log of the chat.
    pub log_created: bool,
    /// The attempt made this node the chat's archiving node.
    pub archiving_began: bool,
}

impl HubState {
    /// Records which customer `token` resumes, cluster-wide, for `ttl`.
    pub(in crate::hub::service) fn remember_token(&self, token: &str, customer: CustomerId, ttl: Duration) {
        self.remember_token_key(resume_tokens::key(token), customer, ttl);
    }

    /// As [`Self::remember_token`], by the token's key (all a node knows of the token of a
    /// customer it did not issue it to).
    pub(in crate::hub::service) fn remember_token_key(&self, key: String, customer: CustomerId, ttl: Duration) {
        if self.cluster.is_some() {
            let _ = self.call(RouterCall::RememberToken { key, customer, ttl });
        }
    }

    /// The customer's visit is over: their token resumes nobody, on any node.
    pub(in crate::hub::service) fn forget_token(&self, token: &str) {
        if self.cluster.is_some() {
            let key = resume_tokens::key(token);
            let _ = self.call(RouterCall::ForgetToken { key });
        }
    }

    /// A resume with a token this node does not know: ask Redis whose it is.
    pub(in crate::hub::service) fn find_token(
        &self,
        conn: ConnId,
        token: &str,
        last_seq: u64,
    ) -> Result<(), (&'static str, String)> {
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
    /// in Redis for what is left of the grace period under `key`: beside the token's key
    /// (their node), or under their id (their reaper, which never had the token). The
    /// frames are kept as JSON: the node that shows them only drops the lines before the
    /// customer's `last_seq`. `read_after`: the chat was recorded here up to that seq; the
    /// router reads its log once more before keeping the visit, and adds the lines after
    /// it (`RouterCall::RememberEndedVisit`), and hands them to this node's own copy, kept
    /// under `local` (`Command::EndedVisitRead`); `None` when the visit is recorded again
    /// after Redis lost its data (the chat's log went with it). Whether it will: `false`
    /// on one node, or when the router's queue is full.
    pub(in crate::hub::service) fn share_ended_visit(
        &self,
        key: String,
        visit: &EndedVisit,
        read_after: Option<(ChatId, u64)>,
        local: Option<String>,
    ) -> bool {
        if self.cluster.is_none() {
            return false;
        }
        let mut chat = visit.chat.clone();
        chat.peer_connected = false;
        let resumed = ServerFrame::Resumed {
            customer_name: visit.name.clone(),
            category: chat.category.clone(),
            place: None,
            chat: Some(chat),
            conversation: None,
        };
        let json = serde_json::json!({ "resumed": resumed, "ended": visit.ended });
        self.call(RouterCall::RememberEndedVisit {
            key,
            visit: json,
            ttl: visit.until.saturating_duration_since(tokio::time::Instant::now()),
            read_after,
            local,
        })
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

    /// The customer is away (here or, `taken_on`, on the node they left): ask Redis to make
    /// this node their holder; `resumed` goes out when the events stream applies it.
    pub(in crate::hub::service) fn resume_through_cluster(
        &mut self,
        conn: ConnId,
        customer: CustomerId,
        last_seq: u64,
        taken_on: Option<TakenOn>,
    ) -> Result<(), (&'static str, String)> {
        if let Some(waiting) = self.cluster_mut().awaiting_resumed.get_mut(&customer) {
            // A second page (a fast reload) while the first one's resume is under way: it
            // takes the resume over; the transition is already on its way.
            let old = std::mem::replace(&mut waiting.conn, conn);
            waiting.last_seq = last_seq;
            if old != conn {
                self.close_conn(old, close::REPLACED, "resumed on another connection");
            }
            return Ok(());
        }
        let waiting = AwaitingResumed {
            conn,
            sent_for: conn,
            last_seq,
            taken_on,
        };
        self.cluster_mut().awaiting_resumed.insert(customer, waiting);
        if !self.route(RoutingOp::CustomerResumed(customer), Some(conn)) {
            // Told `cluster_unavailable` already.
            self.abandon_resume(conn);
        }
        Ok(())
    }

    /// Our `customer_resumed` is applied (the events stream, in order): the waiting
    /// connection is theirs now. `resumed` is where they were when it applied, before what
    /// their return decided, which follows (a pairing, `peer_back` to their agent).
    pub(in crate::hub::service) fn resume_applied(&mut self, customer: CustomerId, resumed: Option<ServerFrame>) {
        let Some(waiting) = self.cluster_mut().awaiting_resumed.remove(&customer) else {
            // Applied, though this node took it for refused (its answer was lost in
            // transit) or settled it meanwhile.
            return self.held_without_page(customer);
        };
        let page = self.conns.contains_key(&waiting.conn).then_some(waiting.conn);
        let Some(resumed) = resumed.filter(|_| page.is_some()) else {
            // The page went while its resume was under way; or this node let go of them
            // meanwhile (they resumed on another node, and left it again before this
            // resume applied), so it has no record to show them: the page is told to
            // resume again, which takes them on afresh. Before, it was left unanswered,
            // and they stayed held here with no page, every later resume refused as
            // "still held elsewhere" (scenario 4, seed 4).
            if let Some(conn) = page {
                let words = "your session moved as you resumed; resume again";
                self.error_to_conn(conn, UNAVAILABLE, words, None);
                self.close_conn(conn, 1013, "cannot resume now; try again");
            }
            return self.held_without_page(customer);
        };
        let Some(info) = self.customers.get_mut(&customer) else {
            return;
        };
        info.conn = Some(waiting.conn);
        // Their token's record, cut to the grace period when their page went, lives for
        // their visit again: else it lapses while they are here, and their token no
        // longer works on the other nodes (an upload through another node, a resume
        // there once this node is lost). Only now: a refused resume leaves it on the grace.
        let token = info.token.to_string();
        self.remember_token(&token, customer, resume_tokens::HELD_FOR);
        self.set_who(waiting.conn, Recipient::Customer(customer));
        self.send_to_conn(waiting.conn, &resumed);
        if let Some(status) = self.desk_status_of(customer) {
            self.send_to_conn(waiting.conn, &status);
        }
        for frame in self.continuing_frames(customer, waiting.last_seq) {
            self.send_to_conn(waiting.conn, &frame);
        }
    }

    /// Redis holds `customer` connected here, and no page of theirs is: away again, so that
    /// their next resume is not refused as connected. (This node holds them at this point
    /// of the stream; were it lost meanwhile, the call would be refused as fenced.)
    fn held_without_page(&mut self, customer: CustomerId) {
        if self.customers.get(&customer).is_none_or(|info| info.conn.is_none()) {
            self.route(RoutingOp::CustomerDisconnected(customer), None);
        }
        // Let go of meanwhile (an attempt undone, or they resumed elsewhere): Redis holds
        // them here all the same, and the node they left let go of them on this very
        // entry. So this node archives their chat from here, as a reaper does
        // (`handover`): else what is said in it until they resume elsewhere is archived
        // by nobody.
        if !self.customers.contains_key(&customer)
            && let Some(chat) = self.routing.customer_chat(customer)
        {
            self.inherit_archiving(chat);
        }
    }

    /// The `resumed` frame of a resume of ours that `op` applies, built before it is
    /// applied: `None` for any other transition.
    pub(in crate::hub::service) fn resumed_before(&self, op: &RoutingOp, node: &str) -> Option<ServerFrame> {
        let RoutingOp::CustomerResumed(customer) = op else {
            return None;
        };
        if self.buddy_node() != Some(node) {
            return None;
        }
        let waiting = self.cluster.as_ref()?.awaiting_resumed.get(customer)?;
        self.resumed_frame(*customer, waiting.last_seq)
    }

    /// A resume that will not happen (refused, or never sent): the connection is closed
    /// with 1013 (try again), and a customer taken on for it goes back to being another
    /// node's. The caller has told the connection why.
    fn abandon_resume(&mut self, conn: ConnId) {
        let cluster = self.cluster_mut();
        let customer = cluster
            .awaiting_resumed
            .iter()
            .find(|(_, waiting)| waiting.conn == conn || waiting.sent_for == conn)
            .map(|(customer, _)| *customer);
        let mut close = conn;
        if let Some(customer) = customer
            && let Some(waiting) = cluster.awaiting_resumed.remove(&customer)
        {
            close = waiting.conn;
            if let Some(taken_on) = waiting.taken_on {
                self.undo_take_on(taken_on);
            }
        }
        self.close_conn(close, 1013, "cannot resume now; try again");
    }

    /// Every resume under way is settled with 1013 (try again): Redis lost its data, or the
    /// replica was reloaded past entries that may have applied them. Customers taken on
    /// for them go back to being another node's, so this node claims only its own.
    pub(in crate::hub::service) fn abandon_every_resume(&mut self) {
        let waiting: Vec<ConnId> = self
            .cluster_mut()
            .awaiting_resumed
            .values()
            .map(|waiting| waiting.conn)
            .collect();
        for conn in waiting {
            self.error_to_conn(
                conn,
                UNAVAILABLE,
                "the cluster is recovering; resume again shortly",
                None,
            );
            self.abandon_resume(conn);
        }
        // Those still reading their chat's log (and what it lost, from the archive) or
        // conversation, before their call went out.
        let cluster = self.cluster_mut();
        let reading: Vec<PendingResume> = (cluster.resuming.drain().map(|(_, p)| p))
            .chain(cluster.reading_archive.drain().map(|(_, p)| p))
            .chain(cluster.reading_conversation.drain().map(|(_, p)| p))
            .collect();
        for pending in reading {
            self.error_to_conn(
                pending.conn,
                UNAVAILABLE,
                "the cluster is recovering; resume again shortly",
                None,
            );
            if let Some(taken_on) = pending.taken_on {
                self.undo_take_on(taken_on);
            }
            self.close_conn(pending.conn, 1013, "cannot resume now; try again");
        }
    }

    /// Undoes what a failed resume attempt took on from another node (see [`TakenOn`]).
    fn undo_take_on(&mut self, taken_on: TakenOn) {
        if let Some(info) = self.customers.remove(&taken_on.customer) {
            self.tokens.remove(&info.token);
            self.cluster_mut().remember_remote_customer(taken_on.customer, info);
        }
        if let Some(chat) = taken_on.chat {
            // The chat's agent came to this node meanwhile: the log opened for the resume
            // is theirs now (as in `let_go_of_customer`). Before, it was dropped under
            // them, and the customer's next lines reached a node with no log of the chat,
            // never the agent (scenario 4, seed 5).
            let agent_here = (self.chats.get(&chat)).is_some_and(|log| self.agents.contains_key(&log.agent));
            if taken_on.log_created && !agent_here {
                self.drop_chat_log(chat);
            } else if taken_on.log_created || taken_on.archiving_began {
                self.stop_archiving(chat);
            }
        }
    }

    /// Redis answered whose a token is: take the customer on here, if the routing domain
    /// still has them; else show the chat they missed the end of, if a node kept it.
    /// `stream_at` is the events stream's newest entry at the lookup: a customer this
    /// replica does not know while it has not applied that entry yet (their join, or the
    /// restore that brought them back after Redis lost its data, is still ahead of it) is
    /// decided once it has, not refused as expired.
    pub(in crate::hub::service) fn token_found(&mut self, found: FoundToken, stream_at: Option<String>) {
        let FoundToken {
            conn,
            token,
            customer,
            ended_visit,
            last_seq,
        } = found;
        // The connection went meanwhile (the customer stays where they were), or it joined
        // since (an answer that waited for the replica comes late): nothing to decide.
        let unjoined =
            self.conns.get(&conn).is_some_and(|entry| entry.who.is_none()) && !self.cluster_mut().is_joining(conn);
        if !unjoined {
            return;
        }
        // A later answer decides for the connection: an earlier one waiting is dropped.
        self.cluster_mut()
            .awaiting_replica
            .retain(|parked| parked.found.conn != conn);
        // A kept ending is the truth even if this replica has not applied the end yet.
        if ended_visit.is_some_and(|visit| self.resume_ended_elsewhere(conn, &visit, last_seq)) {
            return;
        }
        let known = customer.filter(|c| self.routing.customer_category(*c).is_some());
        let Some(customer) = known else {
            if let Some(stream_at) = stream_at.filter(|at| customer.is_some() && self.cluster_mut().behind(at)) {
                let found = FoundToken {
                    conn,
                    token,
                    customer,
                    ended_visit: None,
                    last_seq,
                };
                return self.await_replica(found, stream_at);
            }
            // Their chat ended while they were away, and the node that holds them has not
            // kept the ending yet (it keeps it, then forgets the token, both behind the
            // end in its own time): a moment later the ending is there to show. Expired
            // only once this replica has not seen their chat end within the grace period.
            let grace = self.settings.resume_grace;
            if let Some(ended) = customer
                && self.cluster_mut().ended_lately(ended, grace)
            {
                let words = "your chat has just ended; resume again shortly".to_string();
                return self.resume_refused(conn, UNAVAILABLE, words);
            }
            // Redis kept no ending for it (Redis was away when this node kept its own):
            // this node's copy is the best there is.
            if let Some(visit) = self.ended_visits.remove(&token) {
                return self.resume_ended_visit(conn, visit, last_seq);
            }
            // No customer holds it: it may be the token of a bot stage whose node died.
            if customer.is_none() {
                return self.bot_ticket_lookup(conn, token);
            }
            return self.error_to_conn(conn, "resume_expired", "that session is over; join again", None);
        };
        // A token Redis found is one a node issued (this hub's form): anything else is no session.
        let Some(bits) = super::super::Token::parse(&token) else {
            return self.error_to_conn(conn, "resume_expired", "that session is over; join again", None);
        };
        let mut taken_on = None;
        if !self.customers.contains_key(&customer) {
            let (name, video) = self.cluster_mut().remote_customer(customer);
            let queued_at = self.cluster_mut().remote_queued_at(customer).unwrap_or_else(now_ms);
            let first_message = self.cluster_mut().remote_first_message(customer);
            let profile = self.cluster_mut().remote_profile(customer);
            self.tokens.insert(bits, customer);
            self.customers.insert(
                customer,
                Box::new(CustomerInfo {
                    name,
                    token: bits,
                    // The archive's opening reads it if this node archives their chat.
                    queued_at,
                    conn: None,
                    video,
                    first_message,
                    profile,
                    continues: None,
                }),
            );
            self.remember_token(&token, customer, resume_tokens::HELD_FOR);
            let chat = self.routing.customer_chat(customer);
            let logged = chat.and_then(|chat| self.chats.get(&chat).map(|log| log.archived_here));
            if let Some(chat) = chat {
                // Their chat's log first: the `resumed` frame carries what they missed.
                self.adopt_chat(chat);
            }
            let archived = chat
                .and_then(|chat| self.chats.get(&chat))
                .is_some_and(|log| log.archived_here);
            let record = TakenOn {
                customer,
                chat,
                log_created: chat.is_some() && logged.is_none(),
                archiving_began: archived && logged != Some(true),
            };
            taken_on = Some(record);
            if let Some(chat) = chat
                && self.is_filling(chat)
            {
                let pending = PendingResume {
                    conn,
                    token,
                    last_seq,
                    taken_on,
                };
                self.cluster_mut().resuming.insert(chat, pending);
                return;
            }
            // Waiting to continue a conversation their join's node read: read here too,
            // so that their `resumed` carries it and they go on writing into it.
            if chat.is_none()
                && let Some(continues) = self.cluster_mut().remote_conversation(customer).cloned()
            {
                let pending = PendingResume {
                    conn,
                    token,
                    last_seq,
                    taken_on,
                };
                return self.read_continuing_for_resume(customer, continues, pending);
            }
        }
        let pending = PendingResume {
            conn,
            token,
            last_seq,
            taken_on,
        };
        match self.routing.customer_chat(customer) {
            // A chat this node logged already (their agent's node): what its log lost after
            // their `last_seq` (a restore skipped it) is read from the archive first.
            Some(chat) => self.catch_up_for_resume(chat, pending),
            None => self.finish_resume(pending.conn, &pending.token, last_seq, taken_on),
        }
    }

    /// Parks a resume until this replica has applied the events stream up to `until`.
    fn await_replica(&mut self, found: FoundToken, until: String) {
        let cluster = self.cluster_mut();
        if cluster.awaiting_replica.len() >= AWAITING_REPLICA_MAX {
            // As a lookup Redis could not answer: the connection stays open, the client
            // sends `resume` again a moment later (docs/protocol.md).
            let words = "the cluster is busy; resume again shortly".to_string();
            return self.error_to_conn(found.conn, UNAVAILABLE, words, None);
        }
        let since = std::time::Instant::now();
        cluster
            .awaiting_replica
            .retain(|parked| parked.found.conn != found.conn);
        cluster.awaiting_replica.push(AwaitingReplica { found, until, since });
    }

    /// Decides the resumes whose replica has caught up (after events applied, or a
    /// snapshot or restore loaded), and tells those that waited too long to resume again.
    pub(crate) fn settle_awaiting_replica(&mut self) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        if cluster.awaiting_replica.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut cluster.awaiting_replica);
        for parked in waiting {
            let cluster = self.cluster_mut();
            if !cluster.behind(&parked.until) {
                // Decided on what the replica holds now: no further wait.
                self.token_found(parked.found, None);
            } else if parked.since.elapsed() >= REPLICA_WAIT {
                let words = "this node has not caught up with the cluster yet; resume again shortly".to_string();
                self.error_to_conn(parked.found.conn, UNAVAILABLE, words, None);
            } else {
                cluster.awaiting_replica.push(parked);
            }
        }
    }

    /// A chat's log was read: a resume waiting for it goes on, once what the log no longer
    /// holds after their `last_seq` is read from the archive (`resume_catch_up`).
    pub(in crate::hub::service) fn chat_read_for_resume(&mut self, chat: ChatId) {
        if let Some(pending) = self.cluster_mut().resuming.remove(&chat) {
            self.catch_up_for_resume(chat, pending);
        }
    }

    pub(in crate::hub::service) fn finish_resume(
        &mut self,
        conn: ConnId,
        token: &str,
        last_seq: u64,
        taken_on: Option<TakenOn>,
    ) {
        if !self.conns.contains_key(&conn) {
            // Gone before it was resumed: the customer stays away (their grace runs on the
            // node they left, which still holds them in Redis).
            if let Some(taken_on) = taken_on {
                self.undo_take_on(taken_on);
            }
            return;
        }
        if let Err((code, message)) = self.customer_resume(conn, token, last_seq, taken_on) {
            self.error_to_conn(conn, code, message, None);
            if let Some(taken_on) = taken_on {
                self.undo_take_on(taken_on);
            }
        }
    }

    /// A customer's resume the routing domain refused: they are held by another node and
    /// not away there (a second page on this node while the first is still connected), or
    /// Redis did not answer. The connection attached in hope is told, detached and closed
    /// with 1013, so the page tries again later — by then the other page may have gone, or
    /// Redis is back and this node's own disconnect of them applied. Left attached, its
    /// messages would be refused one by one, and its presence would hide the customer's
    /// absence from this node's grace timer.
    pub(in crate::hub::service) fn resume_refused(&mut self, conn: ConnId, code: &'static str, message: String) {
        let customer = self
            .cluster_mut()
            .awaiting_resumed
            .iter()
            .find(|(_, waiting)| waiting.conn == conn || waiting.sent_for == conn)
            .map(|(customer, _)| *customer);
        let grace = self.settings.resume_grace;
        // Their chat ended (while they were away) between the token's lookup and this
        // call: the ending is being kept for them, as in `token_found`.
        let ended = code == "unknown_customer" && customer.is_some_and(|c| self.cluster_mut().ended_lately(c, grace));
        // The routing's words mean nothing to a customer: say what happened and what to do.
        let (code, message) = match code {
            _ if ended => (
                UNAVAILABLE,
                "your chat has just ended; resume again shortly".to_string(),
            ),
            // Redis no longer has them, though the lookup a moment ago found their token:
            // their chat ended meanwhile (their node keeps the ending under the token, and
            // this replica may not have applied the end yet) or their grace ran out. The
            // next lookup tells which — the ending shown, or `resume_expired` — so it is
            // asked for, rather than an expiry this node cannot be sure of (scenario 4,
            // seed 5: an agent ended the chat as the customer resumed elsewhere).
            // Once: a second such refusal for them within the grace period is final (a
            // replica that keeps a customer Redis no longer has would otherwise send the
            // page round for ever).
            "unknown_customer" if customer.is_some_and(|c| self.cluster_mut().refused_unknown_lately(c, grace)) => {
                ("resume_expired", "that session is over; join again".to_string())
            }
            "unknown_customer" => (
                UNAVAILABLE,
                "your session changed as you resumed; resume again".to_string(),
            ),
            UNAVAILABLE => (UNAVAILABLE, message),
            // `wrong_state`: still connected on their old node (another page, or a node
            // that stopped and is not taken over yet).
            _ => (
                UNAVAILABLE,
                format!("your session is still held elsewhere ({message}); try again in a moment"),
            ),
        };
        // Tell the page that gets the answer (a second page may have taken the first's place).
        let current = self
            .cluster_mut()
            .awaiting_resumed
            .values()
            .find(|waiting| waiting.conn == conn || waiting.sent_for == conn)
            .map_or(conn, |waiting| waiting.conn);
        self.error_to_conn(current, code, message, None);
        self.abandon_resume(conn);
    }

    /// A customer of ours, away, resumed on another node: held there now. This node
    /// forgets them (not their token: it is theirs on the other node) and the logs of
    /// their chats with agents it does not hold.
    pub(in crate::hub::service) fn let_go_of_customer(&mut self, customer: CustomerId) {
        let Some(info) = self.customers.remove(&customer) else {
            return;
        };
        self.tokens.remove(&info.token);
        self.cluster_mut().remember_remote_customer(customer, info);
        let theirs: Vec<ChatId> = self
            .chats
            .iter()
            .filter(|(_, log)| log.customer == customer)
            .map(|(chat, _)| *chat)
            .collect();
        // A chat they wait to go on in (handed to a category's line) is archived by the
        // node they went to from now on.
        self.let_go_of_continuing(customer);
        for chat in theirs {
            let agent_here = self
                .chats
                .get(&chat)
                .is_some_and(|log| self.agents.contains_key(&log.agent));
            if agent_here {
                // The customer's node archives now.
                self.stop_archiving(chat);
            } else {
                self.drop_chat_log(chat);
            }
        }
    }
}
