//! This node's standing in the cluster (`docs/cluster.md` §9): a call of its
//! refused (told to whoever made it), its lease lost (fenced: it lets go of its people),
//! Redis's data lost (it hands the router what it holds to re-assert), its replica
//! reloaded from a snapshot or a restore.

use super::super::HubState;
use super::super::decisions::ChatClosing;
use super::{LetGoChat, LetGoVisit};
use crate::cluster::replica::RoutingOp;
use crate::cluster::resume_tokens;
use crate::core::routing::{AgentId, CategoryId, ChatId, CustomerId, Party};
use crate::hub::cluster::link::{RouterCall, UNAVAILABLE};
use crate::hub::delivery::{ConnId, Delivery, Outbound, Recipient};
use crate::hub::{ConnRole, RefusedCall};
use crate::protocol::{From, ServerFrame};
use crate::store::{EndReason, Side};

impl HubState {
    /// A call of ours was refused: tell whoever made it.
    pub(in crate::hub::service) fn cluster_refused(
        &mut self,
        conn: Option<ConnId>,
        who: Option<Recipient>,
        (code, message): (&'static str, String),
        client_id: Option<String>,
        call: RefusedCall,
    ) {
        if let Some(conn) = conn {
            if let RefusedCall::Join { request } = &call {
                let pending = self.cluster_mut().pending_joins.get(&conn);
                if pending.is_none_or(|join| join.request != *request) {
                    return;
                }
                self.cluster_mut().pending_joins.remove(&conn);
            }
            if call == RefusedCall::Resume {
                return self.resume_refused(conn, code, message);
            }
            self.buddies.joining.remove(&conn);
            // An agent who could not come online here: the desk closes (they try again).
            let refused_agent = match self.conn_role(conn) {
                Some((ConnRole::Agent(_), Some(Recipient::Agent(agent)))) => Some(agent.clone()),
                _ => None,
            };
            // Or one welcomed meanwhile whose coming online the router takes back.
            let welcomed_taken_back = |hub: &Self, agent: &AgentId| {
                call == RefusedCall::AgentTakenBack && hub.agents.get(agent).is_some_and(|a| a.conn == Some(conn))
            };
            if let Some(agent) = refused_agent
                && (self.cluster_mut().awaiting_welcome.remove(&agent).is_some() || {
                    let welcomed = welcomed_taken_back(self, &agent);
                    if welcomed {
                        // Announced on the staff roster with their welcome.
                        self.buddy_agent_offline(&agent);
                    }
                    welcomed
                })
            {
                return self.close_refused_desk(&agent, conn, (code, message));
            }
            self.error_to_conn(conn, code, message.clone(), client_id.clone());
        }
        if let Some(who) = who {
            let frame = ServerFrame::Error {
                code,
                message,
                client_id,
            };
            self.delivery.deliver(&who, &Outbound::Frame(frame.encode()));
        }
    }

    /// The desk `conn` of `agent`, whose coming online here was refused or taken back:
    /// told why, closed (1013: the page signs in again), and the agent's record here gone.
    fn close_refused_desk(&mut self, agent: &AgentId, conn: ConnId, (code, message): (&'static str, String)) {
        self.error_to_conn(conn, code, message, None);
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.who = None;
        }
        self.delivery.detach(&Recipient::Agent(agent.clone()), conn);
        self.agents.remove(agent);
        self.close_conn(conn, 1013, "cannot come online now; try again");
    }

    /// The replayed take-back of the coming online (or back) of the sign-in `agent` is
    /// held for here (`sign_ins::lets_go`, `sign_ins::ends_desk`): the record goes, and
    /// the desk closes as the refusal would close it, welcomed meanwhile or not (a second
    /// tab welcomed on the strength of that coming online included, which the refusal,
    /// told to the first tab's connection, does not reach).
    pub(in crate::hub::service) fn drop_taken_back(&mut self, agent: &AgentId) {
        let welcomed = self.cluster_mut().awaiting_welcome.remove(agent).is_none();
        match self.agents.get(agent).and_then(|a| a.conn) {
            Some(conn) => {
                if welcomed {
                    self.buddy_agent_offline(agent);
                }
                let words = "your coming online was taken back; sign in again".to_string();
                self.close_refused_desk(agent, conn, (UNAVAILABLE, words));
            }
            None => {
                self.agents.remove(agent);
            }
        }
    }

    /// This node lost its lease: what it believed it held may have been handed to another
    /// node. It lets go of its customers and agents (their connections close; they resume
    /// on any node) and carries on with its replica, which the stream keeps true.
    pub(in crate::hub::service) fn cluster_fenced(&mut self) {
        tracing::warn!("this node lost its cluster lease: closing its connections");
        self.let_go_of_everyone();
        self.cluster_mut().generation += 1;
    }

    /// Redis lost its data (restarted empty; the router found it on rejoining). The node
    /// keeps its customers and agents, their chats and its replica, and hands the router
    /// what it holds to re-assert (`docs/cluster.md` §9): its replica and the last event it
    /// applied (the longest replica among the nodes is written back, under the lost
    /// domain's id, so chats keep their wire ids), and its people with their chats' last
    /// recorded seqs and latest lines (written back into the chats' logs). Their resume tokens and agents' names are recorded again after it.
    /// Joins not yet in the stream may be lost with it: refused, to be tried again.
    /// The buddy list's replica goes with the routing one, and is restored with it
    /// (`service::cluster::restored`).
    pub(in crate::hub::service) fn cluster_data_lost(&mut self) {
        tracing::error!("Redis lost the cluster's data: re-asserting what this node's people hold");
        self.cluster_mut().claims_coming = true;
        // The chats' logs went with it: what this node recorded is archived from here too.
        self.archive_kept_lines_of_every_chat();
        let buddies = self.buddies_data_lost();
        // The bot sockets' records went with it too (the bot stages' tickets and claims are
        // recorded again once the re-assertion succeeded: `Command::BotStagesAgain`).
        self.bot_sockets_again();
        let joins: Vec<(ConnId, String)> = self
            .cluster_mut()
            .pending_joins
            .iter()
            .map(|(conn, join)| (*conn, join.request.clone()))
            .collect();
        for (conn, request) in joins {
            let words = "the cluster lost its data; join again".to_string();
            self.cluster_refused(
                Some(conn),
                None,
                (UNAVAILABLE, words),
                None,
                RefusedCall::Join { request },
            );
        }
        // Resumes under way may have gone with the stream: settled (1013) before the
        // claim, which must name only the people this node really holds. Those sent from
        // now on reach the restored domain (queued behind the re-assertion), after the
        // restore's entry: loading it leaves them be (`routing_reload`).
        self.abandon_every_resume();
        self.cluster_mut().through_loss = true;
        let mut claims = crate::cluster::restore::Claims {
            customers: self.customers.keys().copied().collect(),
            agents: self.agents.keys().cloned().collect(),
            chats: vec![],
            conversations: self.conversation_seqs_here(),
            lines: self.lines_to_write_back(),
        };
        let cluster = self.cluster.as_ref().expect("called in a cluster only");
        for (chat, log) in &self.chats {
            let last = cluster.claimed_seq(*chat, log.live.last_seq());
            if self.customers.contains_key(&log.customer) {
                claims.chats.push((*chat, Party::Customer, last));
            }
            if self.agents.contains_key(&log.agent) {
                claims.chats.push((*chat, Party::Agent, last));
            }
        }
        let reassert = crate::hub::cluster::link::Reassert {
            state: self.routing.state(),
            last_event: self.cluster_mut().last_event.clone(),
            claims,
            buddies,
            buddy_chats: self.buddy_claims(),
        };
        if !self.call(RouterCall::Reassert(Box::new(reassert))) {
            // The router lets go of them when its wait for this runs out (the grace period).
            return tracing::error!("could not hand the router what this node holds: its queue is full");
        }
        // Queued behind the re-assertion, so they reach the restored domain.
        let tokens: Vec<(String, CustomerId)> = self
            .customers
            .iter()
            .map(|(id, c)| (c.token.to_string(), *id))
            .collect();
        for (token, customer) in tokens {
            self.remember_token(&token, customer, resume_tokens::HELD_FOR);
        }
        // And those of the customers a lost node left in this node's care (their grace
        // runs here): it never had their tokens, but knows their keys (from their join's
        // event), and no other node records them. Else, once the restore had settled, such
        // a customer's resume within grace found no token: `resume_expired` (scenario 4).
        for customer in self.customers_in_our_care() {
            if let Some(key) = self.cluster_mut().remote_token_key(customer).map(String::from) {
                self.remember_token_key(key, customer, resume_tokens::HELD_FOR);
            }
        }
        // And the endings it keeps of chats that ended while their customer was away (no
        // longer anyone's customer, so not among the tokens above): Redis lost its copy,
        // or never took it (it was away at the end). Else, once the restore had settled,
        // their resume on another node within grace was `resume_expired` (scenario 4).
        for (token, visit) in &self.ended_visits {
            self.share_ended_visit(resume_tokens::ended_key(token), visit, None, None);
        }
        // The same for those kept under a customer's id (their node lost, or another node's
        // customer), with their token's key, through which a lookup finds them.
        for (customer, token_key, visit) in self.cluster_mut().endings_by_customer() {
            let left = visit.until.saturating_duration_since(tokio::time::Instant::now());
            self.remember_token_key(token_key, customer, left);
            self.share_ended_visit(resume_tokens::ended_customer_key(customer), &visit, None, None);
        }
        let names: Vec<(AgentId, String)> = self
            .agents
            .iter()
            .map(|(id, a)| (id.clone(), a.account.display_name.clone()))
            .collect();
        for (agent, name) in names {
            let _ = self.call(RouterCall::AgentName { agent, name });
        }
        let categories: Vec<CategoryId> = self
            .category_names
            .keys()
            .map(|c| CategoryId::from(c.as_str()))
            .collect();
        let _ = self.call(RouterCall::Categories(categories));
    }

    /// The events this node had not read were trimmed away (it joined late, or fell far
    /// behind), or the routing domain was restored after Redis lost its data (`restored`):
    /// the replica becomes the snapshot's state. What the skipped events decided for this
    /// node's own people is not carried out (`docs/cluster.md` §13).
    pub(in crate::hub::service) fn routing_reload(
        &mut self,
        state: crate::core::routing::RoutingState,
        last_event: String,
        restored: bool,
    ) {
        match crate::core::routing::Routing::from_state(state) {
            Ok(mut routing) => {
                if let Some(domain) = self.cluster.as_ref().and_then(|c| c.wire_id_namespace()) {
                    routing.name_conversations(domain);
                }
                self.routing = routing;
                // A resume applied in the skipped entries would never be answered. Not so
                // after a loss this node went through: it settled the resumes under way
                // then, and those it sent since follow the restore's entry, which is the
                // first of the new stream. Settling them here too told the customer 1013
                // while Redis applied their resume: held here, unknown to this node, their
                // chat archived by nobody (found by scenario 4).
                if !(restored && std::mem::take(&mut self.cluster_mut().through_loss)) {
                    self.abandon_every_resume();
                }
                let cluster = self.cluster.as_mut().expect("called in a cluster only");
                cluster.last_event = last_event;
                // Pairing times of chats the skipped events ended are forgotten here.
                cluster.forget_pairings_not_in(&self.routing);
                // Chats it let go of that the skipped events ended: closed here, since
                // nobody else writes their closing and their end is never replayed.
                self.close_let_go_ended_unseen();
                // So are chats it still holds, ended by the skipped events (not after a
                // restore: this node claims its people in the restored domain).
                if !restored {
                    self.end_chats_ended_unseen();
                }
                // So are the join and pairing times kept for waiting times.
                self.waits.retain(
                    |c| self.routing.customer_category(c).is_some(),
                    |chat| self.routing.chat_sides(chat).is_some(),
                );
                // Transfers the skipped events ended (the customer paired or gone).
                self.forget_transfers_not_in_routing();
                // Inherited waiting customers the skipped events paired or let go.
                if let Some(cluster) = self.cluster.as_mut() {
                    let routing = &self.routing;
                    cluster
                        .inherited_waiting
                        .retain(|customer| routing.customer_category(*customer).is_some());
                    // And customers whose end was in them (waiting or in a chat no more),
                    // other nodes' and what this node's own continued: nothing replays it,
                    // and each record was kept for good.
                    let still_here = |customer: CustomerId| {
                        routing.customer_category(customer).is_some() || routing.customer_chat(customer).is_some()
                    };
                    cluster.remote_customers.retain(|customer, _| still_here(*customer));
                    cluster.own_continues.retain(|customer, _| still_here(*customer));
                }
                // Offers the skipped events made to this node's agents: told, and timed, now.
                self.tell_untold_offers();
                // Resumes waiting for this replica to know their customer.
                self.settle_awaiting_replica();
                if restored {
                    self.say_gone_pages_away();
                }
            }
            Err(e) => tracing::error!(error = %e, "could not load the routing replica from a snapshot"),
        }
    }

    /// After a restore: this node's customers whose page is gone, and whom the restored
    /// domain counts connected, are said away again, so that their grace period runs and
    /// they resume on any node. Their disconnect applied in Redis just before it lost its
    /// data, and no replica had read its event: the one written back still counted them
    /// connected, and this node's claim held them. Every resume was refused "still held
    /// elsewhere" for good (scenario 4).
    fn say_gone_pages_away(&mut self) {
        let cluster = self.cluster.as_ref().expect("called in a cluster only");
        let gone: Vec<CustomerId> = self
            .customers
            .iter()
            .filter(|(id, info)| {
                info.conn.is_none()
                    && self.routing.customer_connected(**id) == Some(true)
                    && !cluster.awaiting_resumed.contains_key(id)
            })
            .map(|(id, _)| *id)
            .collect();
        for customer in gone {
            self.route(RoutingOp::CustomerDisconnected(customer), None);
        }
    }

    /// The chats this node holds that a snapshot it loaded no longer runs: the skipped
    /// events ended them, and their end is never replayed here. Ended here as a
    /// disconnection (how they ended went with the events): their people here are told,
    /// whichever node archives the chat (an agent here whose customer is on another node
    /// would keep a dead chat, told nothing). Where this node archives it, the closing is
    /// written too (nobody else writes it when both sides were here), dated by the
    /// snapshot, as inferred (a reaper that inherited the chat and applied its end writes
    /// the real one, which replaces it whenever it comes), and its conversation stays open,
    /// as one whose customer went. Elsewhere the archiving node writes it, from the end it
    /// applied (`close_chat` writes a closing only where the chat is archived).
    fn end_chats_ended_unseen(&mut self) {
        let ended: Vec<(ChatId, CustomerId, AgentId)> = self
            .chats
            .iter()
            .filter(|(chat, _)| self.routing.chat_sides(**chat).is_none())
            .map(|(chat, log)| (*chat, log.customer, log.agent.clone()))
            .collect();
        for (chat, customer, agent) in ended {
            tracing::warn!(
                chat = chat.0,
                "a chat this node holds ended in events it skipped: ended here as a disconnection"
            );
            self.close_chat(ChatClosing {
                chat,
                customer,
                agent: Some(&agent),
                by: From::System,
                reason: "customer_gone",
                side: Side::System,
                end: EndReason::Disconnect,
                inferred: true,
            });
        }
    }

    /// Closes every connection (1012: reconnect, any node) and forgets the customers and
    /// agents, their chats and their pending joins. Buddies too: the cluster counts their
    /// connections here as closed once this node's loss is replayed (`buddy_node_lost`), so
    /// they reconnect, to any node.
    pub(in crate::hub::service) fn let_go_of_everyone(&mut self) {
        let held: Vec<ConnId> = self.conns.keys().copied().collect();
        // Their chats are archived elsewhere from now on (the reaper's, or the node they
        // resume on): the closings this node reserved room for will not be written here.
        let reserved = self
            .chats
            .values()
            .chain(self.continuing.values())
            .filter(|log| log.closing_reserved)
            .count();
        for _ in 0..reserved {
            self.archive.release_closing();
        }
        // Before their connections close: closing one must not end its conversation.
        self.let_go_of_bot_stages();
        self.buddies.joining.clear();
        self.buddies.stop_reasserting();
        // Their desks are counted closed with this node's loss; they are announced again
        // when the agents come back.
        self.buddies.forget_desks();
        for conn in held {
            if let Some(who) = self.conns.get_mut(&conn).and_then(|e| e.who.take()) {
                self.delivery.detach(&who, conn);
            }
            self.close_conn(conn, 1012, "this node is rejoining the cluster; reconnect");
        }
        // A chat that ended in Redis but not yet here has nobody else to archive its
        // closing: kept to write it when the replica applies the end (with what this node
        // knows of its opening, its customers not forgotten yet).
        let let_go: Vec<(ChatId, LetGoChat)> = self
            .chats
            .iter()
            .filter(|(_, log)| log.archived_here)
            .map(|(chat, log)| {
                let ended_visit = self.customers.get(&log.customer).and_then(|info| {
                    Some(LetGoVisit {
                        customer_name: info.name.clone(),
                        chat: self.snapshot(*chat, Party::Customer, 0)?,
                    })
                });
                let kept = LetGoChat {
                    wire_id: log.wire_id().to_string(),
                    last_seq: log.live.last_seq(),
                    opening: self.opening_known(log),
                    ended_visit,
                };
                (*chat, kept)
            })
            .collect();
        self.cluster_mut().let_go.extend(let_go);
        let floors: Vec<(ChatId, u64)> = self
            .chats
            .iter()
            .map(|(chat, log)| (*chat, log.live.last_seq()))
            .collect();
        for (chat, last) in floors {
            self.cluster_mut().keep_seq_floor(chat, last);
        }
        // Known from here on as any other node's customers, as one who resumed elsewhere
        // is: the node that runs their grace now — often this very one, handing itself its
        // previous incarnation's people — names them in their chat (to their agent, in the
        // archive), and records their token's key again should Redis lose its data. Before,
        // forgotten here, their chat came back nameless and their token unrecorded: their
        // resume within grace was `resume_expired` (scenario 4).
        let customers = std::mem::take(&mut self.customers);
        let cluster = self.cluster_mut();
        for (customer, info) in customers {
            cluster.remember_remote_customer(customer, info);
        }
        self.tokens.clear();
        self.agents.clear();
        self.chats.clear();
        self.continuing.clear();
        self.chat_by_wire.clear();
        self.ended_visits.clear();
        let cluster = self.cluster_mut();
        cluster.pending_joins.clear();
        cluster.awaiting_welcome.clear();
        cluster.filling.clear();
        cluster.ahead.clear();
        cluster.sent_here.clear();
        cluster.delivered_here.clear();
        cluster.resuming.clear();
        cluster.reading_archive.clear();
        cluster.awaiting_replica.clear();
        cluster.inherited_waiting.clear();
        cluster.awaiting_resumed.clear();
        cluster.through_loss = false;
    }

    /// Whether this node holds anyone the events stream gave it: a customer (connected or
    /// away), or an agent whose welcome went out (connected or away). Agents still waiting
    /// for their welcome are not counted: no earlier entry can be about them.
    pub(in crate::hub::service) fn holds_anyone(&self) -> bool {
        let awaiting = &self
            .cluster
            .as_ref()
            .expect("called in a cluster only")
            .awaiting_welcome;
        !self.customers.is_empty() || self.agents.keys().any(|id| !awaiting.contains_key(id))
    }
}
