//! The hub on the cluster's routing scripts (issue 15, `docs/cluster.md` §12): with
//! `REDIS_URL` set, routing transitions go to Redis through the router
//! (`hub::cluster_link`), and `HubState::routing` is this node's **replica** of the
//! routing domain, fed only by replaying the events stream in Redis's order. The scripts
//! are proven to decide exactly as the core (the differential test), so the replica makes
//! the decisions Redis made, ids included, and the hub carries them out as on one node —
//! each node for the people it holds (a frame for someone not connected here goes
//! nowhere). Grace timers start on the node that made the call (the one holding the
//! person, or the reaper that took them over).
//!
//! Chat messages between nodes are stamped by a fenced script that draws the chat's seq
//! and logs it; each node records every message of its chats in seq order, filling gaps
//! from the chat's log; the customer's node archives.

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use super::{AgentInfo, ChatLog, CustomerInfo, HubState, TRANSCRIPT_LIMIT, close, new_token};
use crate::cluster::chat_log::{ChatLine, LOG_BOUND, NodeMessage};
use crate::cluster::replica::RoutingOp;
use crate::cluster::routing_events::RoutingEvent;
use crate::core::routing::{AgentId, CategoryId, ChatId, CustomerId, Decision, Party};
use crate::hub::cluster_link::{Link, RouterCall, UNAVAILABLE};
use crate::hub::delivery::{ConnId, Delivery, Outbound, Recipient};
use crate::hub::transcript::{Author, Stamped, Transcript};
use crate::hub::{ConnRole, RefusedCall, now_ms};
use crate::protocol::{From, ServerFrame};
use crate::store::{Account, Category};

/// What the hub keeps for the cluster besides the replica.
pub(crate) struct ClusterState {
    link: Link,
    /// Chat wire ids derive from it (see `cluster_reassert::CLUSTER_ID_KEY`).
    wire_ns: Option<String>,
    /// Joins sent and not yet seen in the events stream, by connection.
    pending_joins: HashMap<ConnId, PendingJoin>,
    /// Customers of other nodes, as their join event named them: an agent here may be
    /// paired with any of them. Forgotten with the customer.
    remote_customers: HashMap<CustomerId, RemoteCustomer>,
    /// Display names of agents, from the events that brought them online (one per account).
    agent_names: HashMap<AgentId, String>,
    /// Agents connected here whose coming online (or back) is not replayed yet: their
    /// welcome goes out when it is.
    awaiting_welcome: HashSet<AgentId>,
    /// Chats whose log is being read to fill a gap.
    filling: HashSet<ChatId>,
    /// Messages that arrived past a gap, held until it is filled; at most a log's worth a chat.
    ahead: HashMap<ChatId, BTreeMap<u64, ChatLine>>,
    /// How many fences this hub has handled (see `cluster_link::Link::calls`).
    generation: u64,
    /// Joins this hub has sent: numbers each join's request id, which Redis keeps a minute
    /// to answer a *retry* of that join with its first reply. A second join on the same
    /// connection (after a leave) is a new request, so it needs a new id.
    joins_sent: u64,
    /// Ids of messages sent through this node and not yet recorded: their sender gets the
    /// compact `ack`. Any other line (from another node, or read from a chat's log for a
    /// side that came back here) reaches both sides whole, since the connection here never
    /// had its text.
    sent_here: HashSet<String>,
    /// Resumes of another node's customers waiting for their chat's log to be read.
    pub(super) resuming: HashMap<ChatId, super::cluster_resume::PendingResume>,
    // ---- Redis restarted empty: re-assertion ----
    /// The last routing event the replica applied ("0-0": none): how long a prefix of the
    /// events stream it holds, offered when Redis loses its data (`cluster::restore`).
    last_event: String,
}

/// Ids in `sent_here` at most: one refused by a Redis outage is never recorded, so the set
/// is cleared past this (a later own line then goes out whole instead of as an ack —
/// harmless). Far above what the router's queue (8,192 calls) can hold in flight.
const SENT_HERE_MAX: usize = 65_536;

struct PendingJoin {
    name: String,
    video: bool,
    queued_at: i64,
}

struct RemoteCustomer {
    name: String,
    video: bool,
}

/// The customer of a chat being opened, as this node knows them.
pub(super) struct ChatCustomer {
    pub name: String,
    pub queued_at: i64,
    pub video: bool,
}

impl ClusterState {
    pub(super) fn new(link: Link) -> Self {
        Self {
            link,
            wire_ns: None,
            pending_joins: HashMap::new(),
            remote_customers: HashMap::new(),
            agent_names: HashMap::new(),
            awaiting_welcome: HashSet::new(),
            filling: HashSet::new(),
            ahead: HashMap::new(),
            generation: 0,
            joins_sent: 0,
            sent_here: HashSet::new(),
            resuming: HashMap::new(),
            last_event: "0-0".to_string(),
        }
    }

    /// The chat's id on the wire and in the archive: the same on every node.
    pub(super) fn wire_id(&self, chat: ChatId) -> String {
        match &self.wire_ns {
            // A name-based UUID (SHA-1 of the routing domain's id and the chat id, as v5).
            Some(ns) => {
                use sha1::Digest;
                let digest = sha1::Sha1::new()
                    .chain_update(ns)
                    .chain_update(b"/")
                    .chain_update(chat.0.to_string());
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&digest.finalize()[..16]);
                uuid::Builder::from_sha1_bytes(bytes).into_uuid().to_string()
            }
            None => Uuid::now_v7().to_string(),
        }
    }

    pub(super) fn agent_name(&self, agent: &AgentId) -> Option<String> {
        self.agent_names.get(agent).cloned()
    }

    /// Another node's customer as their join named them (name, video), for a resume here.
    pub(super) fn remote_customer(&self, customer: CustomerId) -> (String, bool) {
        self.remote_customers
            .get(&customer)
            .map(|r| (r.name.clone(), r.video))
            .unwrap_or_default()
    }

    /// A customer of ours who went to another node: theirs now, known by name.
    pub(super) fn remember_remote_customer(&mut self, customer: CustomerId, name: String, video: bool) {
        self.remote_customers.insert(customer, RemoteCustomer { name, video });
    }

    pub(super) fn forget_customer(&mut self, customer: CustomerId) {
        self.remote_customers.remove(&customer);
    }

    /// A chat's log is closed here: nothing more is held or read for it.
    pub(super) fn chat_closed(&mut self, chat: ChatId) {
        self.ahead.remove(&chat);
        self.filling.remove(&chat);
    }
}

impl HubState {
    pub(super) fn cluster_mut(&mut self) -> &mut ClusterState {
        self.cluster.as_mut().expect("called in a cluster only")
    }

    /// Queues a call for the router; false when its channel is full (Redis slow or away).
    pub(super) fn call(&self, call: RouterCall) -> bool {
        let cluster = self.cluster.as_ref().expect("called in a cluster only");
        cluster.link.calls.try_send((cluster.generation, call)).is_ok()
    }

    /// Sends a routing transition to Redis; its decisions come back through the events
    /// stream, a refusal to `conn`.
    pub(super) fn route(&self, op: RoutingOp, conn: Option<ConnId>) -> bool {
        let cluster = self.cluster.as_ref().expect("called in a cluster only");
        let Err(refused) = cluster
            .link
            .calls
            .try_send((cluster.generation, RouterCall::Op { op, conn }))
        else {
            return true;
        };
        match conn {
            Some(conn) => self.error_to_conn(conn, UNAVAILABLE, "the cluster is too busy; try again shortly", None),
            None => {
                // Nobody to tell: the person stays as Redis last had them until this
                // node's loss hands them on (docs/cluster.md §9).
                if let (_, RouterCall::Op { op, .. }) = refused.into_inner() {
                    tracing::warn!(
                        ?op,
                        "a routing call of this node was dropped: the router's queue is full"
                    );
                }
            }
        }
        false
    }

    /// Typing or a draft for the peer of `chat`, when the peer is on another node.
    pub(super) fn signal_peer(&self, chat: ChatId, from: Party, what: NodeMessage) {
        if self.cluster.is_none() {
            return;
        }
        let Some(log) = self.chats.get(&chat) else { return };
        let peer_here = match from {
            Party::Customer => self.agents.contains_key(&log.agent),
            _ => self.customers.contains_key(&log.customer),
        };
        if !peer_here {
            let _ = self.call(RouterCall::Signal { chat, from, what });
        }
    }

    /// The customer of a chat to open here: ours, or (a cluster) another node's paired
    /// with an agent of ours. `None`: neither side is here, nothing to open.
    pub(super) fn chat_customer_info(&self, customer: CustomerId, agent: &AgentId) -> Option<ChatCustomer> {
        if let Some(info) = self.customers.get(&customer) {
            return Some(ChatCustomer {
                name: info.name.clone(),
                queued_at: info.queued_at,
                video: info.video,
            });
        }
        let cluster = self.cluster.as_ref()?;
        if !self.agents.contains_key(agent) {
            return None;
        }
        let remote = cluster.remote_customers.get(&customer);
        Some(ChatCustomer {
            name: remote.map(|r| r.name.clone()).unwrap_or_default(),
            queued_at: 0,
            video: remote.is_some_and(|r| r.video),
        })
    }

    pub(super) fn cluster_started(&mut self, cluster_id: &str) {
        self.cluster_mut().wire_ns = Some(cluster_id.to_string());
    }

    // ---- joins and agents --------------------------------------------------------

    pub(super) fn cluster_join(
        &mut self,
        conn: ConnId,
        name: String,
        category: CategoryId,
        video: bool,
    ) -> Result<(), (&'static str, String)> {
        let cluster = self.cluster_mut();
        if cluster.pending_joins.contains_key(&conn) {
            return Err(("already_joined", "this connection's join is under way".into()));
        }
        cluster.joins_sent += 1;
        let request = format!("{}:{}:{}", cluster.link.nonce, conn.0, cluster.joins_sent);
        cluster.pending_joins.insert(
            conn,
            PendingJoin {
                name: name.clone(),
                video,
                queued_at: now_ms(),
            },
        );
        let op = RoutingOp::Join {
            category,
            request,
            name,
            video,
        };
        if !self.route(op, Some(conn)) {
            self.cluster_mut().pending_joins.remove(&conn);
        }
        Ok(())
    }

    /// Our join is in the stream: the customer exists; welcome them, then what it decided.
    fn bind_join(&mut self, conn: ConnId, customer: CustomerId, join: PendingJoin, mut out: Vec<Decision>) {
        // As on one node: a customer paired at once was never waiting as far as they see.
        let paired_at_once = out
            .iter()
            .any(|d| matches!(d, Decision::Paired { customer: c, .. } if *c == customer));
        if paired_at_once {
            out.retain(|d| !matches!(d, Decision::Queued { customer: c, .. } if *c == customer));
        }
        let token = new_token();
        self.tokens.insert(token.clone(), customer);
        self.remember_token(&token, customer, crate::cluster::resume_tokens::HELD_FOR);
        let connected = self.conns.contains_key(&conn);
        self.customers.insert(
            customer,
            CustomerInfo {
                name: join.name.clone(),
                token: token.clone(),
                queued_at: join.queued_at,
                conn: connected.then_some(conn),
                video: join.video,
            },
        );
        if connected {
            self.set_who(conn, Recipient::Customer(customer));
            self.send_to_conn(
                conn,
                &ServerFrame::Welcome {
                    customer_name: join.name,
                    resume_token: token,
                    grace_secs: self.settings.resume_grace.as_secs_f64(),
                    max_message_len: self.settings.max_message_len,
                },
            );
        }
        self.apply(out);
        if !connected {
            // The connection went while the join was under way.
            self.route(RoutingOp::CustomerDisconnected(customer), None);
        }
    }

    pub(super) fn cluster_agent_connected(&mut self, conn: ConnId, account: Account) {
        let id = AgentId(account.id.clone());
        if let Some(info) = self.agents.get_mut(&id) {
            // Held here: a second tab, or back within the grace period.
            let previous = info.conn.replace(conn);
            info.account = account;
            match previous {
                Some(old) => {
                    self.delivery.detach(&Recipient::Agent(id.clone()), old);
                    if let Some(entry) = self.conns.get_mut(&old) {
                        entry.who = None;
                    }
                    self.close_conn(old, close::REPLACED, "signed in on another connection");
                    if self.routing.agent(&id).is_some() {
                        self.set_who(conn, Recipient::Agent(id.clone()));
                        let welcome = self.agent_welcome(&id);
                        self.send_to_conn(conn, &welcome);
                        self.send_queue_stats(&id);
                    } else {
                        self.set_who_before_welcome(conn, Recipient::Agent(id.clone()));
                        self.cluster_mut().awaiting_welcome.insert(id);
                    }
                }
                None => {
                    self.set_who_before_welcome(conn, Recipient::Agent(id.clone()));
                    self.cluster_mut().awaiting_welcome.insert(id.clone());
                    self.route(RoutingOp::AgentResumed(id), Some(conn));
                }
            }
            return;
        }
        let held_elsewhere = self.routing.agent(&id);
        let name = account.display_name.clone();
        let categories = account.categories.iter().cloned().map(CategoryId).collect();
        let limit = account.max_chats;
        self.agents.insert(
            id.clone(),
            AgentInfo {
                account,
                conn: Some(conn),
            },
        );
        self.set_who_before_welcome(conn, Recipient::Agent(id.clone()));
        self.cluster_mut().awaiting_welcome.insert(id.clone());
        let _ = self.call(RouterCall::AgentName {
            agent: id.clone(),
            name,
        });
        let op = match held_elsewhere {
            // Away from another node (it dropped, or died): back, here.
            Some(view) if !view.connected => RoutingOp::AgentResumed(id),
            // Fresh agents start away, so coming online pairs nobody before the welcome.
            _ => RoutingOp::AgentOnline {
                agent: id,
                categories,
                limit,
                available: false,
            },
        };
        self.route(op, Some(conn));
    }

    /// An agent's coming online (or back) replayed: their welcome, then what it decided.
    fn welcome_agent(&mut self, agent: &AgentId, out: Vec<Decision>) {
        let Some(conn) = self.agents.get(agent).and_then(|a| a.conn) else {
            return self.apply(out);
        };
        // Chats of theirs this node has no log of (they were held by another node).
        let view = self.routing.agent(agent).expect("replayed online");
        for chat in view.chats {
            self.adopt_chat(chat);
        }
        let welcome = self.agent_welcome(agent);
        self.send_to_conn(conn, &welcome);
        // Only now does the connection get the agent's frames: what happened before is in
        // the welcome (a customer back, lines of a chat already logged here).
        self.set_who(conn, Recipient::Agent(agent.clone()));
        self.send_queue_stats(agent);
        self.apply(out);
        self.buddy_agent_online(agent);
    }

    /// Opens this node's log of a running chat it did not see start (its side came here
    /// from another node); its messages are read from the chat's log.
    pub(super) fn adopt_chat(&mut self, chat: ChatId) {
        if let Some(log) = self.chats.get_mut(&chat) {
            // The customer came to the node of their agent, which logged the chat without
            // archiving it: the customer's node archives, so from now on this one does,
            // starting again with what it kept (what was said since the customer's old
            // node last archived included: a killed node archived nothing after it died).
            if !log.archived_here && self.customers.contains_key(&log.customer) {
                log.archived_here = true;
                for event in log.transcript.archive_events() {
                    self.archive.push_message(event);
                }
            }
            return;
        }
        let Some((customer, agent)) = self.routing.chat_sides(chat).map(|(c, a)| (c, a.clone())) else {
            return;
        };
        let category = self
            .routing
            .chat_category(chat)
            .cloned()
            .expect("a running chat has a category");
        let Some(info) = self.chat_customer_info(customer, &agent) else {
            return;
        };
        let cluster = self.cluster.as_ref().expect("called in a cluster only");
        let wire_id = cluster.wire_id(chat);
        let agent_name = self
            .agents
            .get(&agent)
            .map(|a| a.account.display_name.clone())
            .or_else(|| cluster.agent_name(&agent))
            .unwrap_or_default();
        self.chats.insert(
            chat,
            ChatLog {
                wire_id: wire_id.clone(),
                category,
                customer,
                agent,
                customer_name: info.name,
                agent_name,
                started_at: now_ms(),
                transcript: Transcript::new(TRANSCRIPT_LIMIT),
                // The customer's node archives: its opening was archived where they
                // joined; a customer who resumed here has the rest archived here (the
                // store applies messages idempotently by (chat, seq)).
                archived_here: self.customers.contains_key(&customer),
            },
        );
        self.chat_by_wire.insert(wire_id, chat);
        self.fill(chat, 0);
    }

    pub(super) fn cluster_categories_changed(&mut self, categories: Vec<Category>, removed: Option<String>) {
        if let Some(removed) = removed {
            self.route(RoutingOp::RemoveCategory(CategoryId(removed)), None);
        }
        self.category_names.clear();
        for c in categories {
            self.route(RoutingOp::AddCategory(CategoryId(c.id.clone())), None);
            self.category_names.insert(c.id, c.name);
        }
        // Categories that now exist again (or anew) may be held by our agents' accounts.
        let ours: Vec<(AgentId, Vec<CategoryId>)> = self
            .agents
            .iter()
            .map(|(id, a)| {
                (
                    id.clone(),
                    a.account.categories.iter().cloned().map(CategoryId).collect(),
                )
            })
            .collect();
        for (id, held) in ours {
            self.route(RoutingOp::SetCategories(id, held), None);
        }
    }

    // ---- the events stream ---------------------------------------------------------

    pub(super) fn routing_events(&mut self, events: Vec<RoutingEvent>, agent_names: Vec<(AgentId, String)>) {
        self.cluster_mut().agent_names.extend(agent_names);
        for event in events {
            self.cluster_mut().last_event.clone_from(&event.id);
            // The buddy list's events share the stream (docs/cluster.md §15).
            if event.transition == crate::cluster::buddy_log::BUDDY_TRANSITION {
                self.buddy_from_stream(&event.node, &event.args);
                continue;
            }
            let lost = (event.transition == "node_lost")
                .then(|| event.args.first().cloned().map(|lost| (lost, event.node.clone())))
                .flatten();
            self.replay(event);
            if let Some((lost, heir)) = lost {
                self.buddy_node_lost(&lost, &heir);
                if lost == crate::cluster::restore::RESTORED_NODE {
                    // A restore's claim window is over: the buddies of the nodes that did
                    // not claim theirs are handed on too.
                    self.buddy_unclaimed_lost(&heir);
                }
            }
        }
    }

    /// Applies one event to the replica and carries out its decisions for our people.
    fn replay(&mut self, event: RoutingEvent) {
        let op = match RoutingOp::from_event(&event.transition, &event.args, &event.applied.decisions) {
            Ok(op) => op,
            Err(e) => return tracing::error!(event = %event.id, error = %e, "a routing event this node cannot read"),
        };
        let mut out = vec![];
        let customer = match op.apply(&mut self.routing, &mut out) {
            Ok(customer) => customer,
            Err(e) => {
                return tracing::error!(
                    event = %event.id, ?op, error = %e,
                    "this node's routing replica refuses what Redis applied: its view has diverged"
                );
            }
        };
        if out != event.applied.decisions {
            tracing::error!(event = %event.id, ?op, "this node's routing replica decided otherwise than Redis");
        }
        // A customer of ours, away, resumed on another node.
        if let RoutingOp::CustomerResumed(customer) = &op
            && event.node != self.cluster_mut().link.node
            && self.customers.get(customer).is_some_and(|c| c.conn.is_none())
        {
            self.apply(out);
            return self.let_go_of_customer(*customer);
        }
        // Resumed elsewhere by a customer whose chat this node archived as their reaper.
        if let RoutingOp::CustomerResumed(customer) = &op
            && event.node != self.cluster_mut().link.node
        {
            self.hand_on_archiving(*customer);
        }
        // Resumed here: anything published to the node they left before this call made
        // us their holder is in the chat's log.
        if let RoutingOp::CustomerResumed(customer) = &op
            && event.node == self.cluster_mut().link.node
            && let Some(chat) = self.routing.customer_chat(*customer)
            && let Some(last) = self.chats.get(&chat).map(|log| log.transcript.last_seq())
        {
            self.fill(chat, last);
        }
        // An agent of ours, away, coming back (on whichever node).
        let away_here = match &op {
            RoutingOp::AgentOnline { agent, .. } | RoutingOp::AgentResumed(agent) => {
                self.agents.get(agent).is_some_and(|a| a.conn.is_none())
            }
            _ => false,
        };
        let cluster = self.cluster_mut();
        if event.node != cluster.link.node {
            // Timers run on the node that holds the person (the caller).
            out.retain(|d| {
                !matches!(
                    d,
                    Decision::CustomerGraceStarted { .. } | Decision::AgentGraceStarted { .. }
                )
            });
        }
        match op {
            RoutingOp::Join {
                request, name, video, ..
            } => {
                let customer = customer.expect("a join names its customer");
                let ours = request
                    .strip_prefix(cluster.link.nonce.as_str())
                    .and_then(|rest| rest.strip_prefix(':'))
                    .and_then(|rest| rest.split_once(':'))
                    .and_then(|(conn, _join)| conn.parse().ok())
                    .map(ConnId)
                    .and_then(|conn| cluster.pending_joins.remove(&conn).map(|join| (conn, join)));
                match ours {
                    Some((conn, join)) => return self.bind_join(conn, customer, join, out),
                    None => {
                        cluster
                            .remote_customers
                            .insert(customer, RemoteCustomer { name, video });
                    }
                }
            }
            RoutingOp::AgentOnline { agent, .. } | RoutingOp::AgentResumed(agent)
                if event.node == cluster.link.node && cluster.awaiting_welcome.remove(&agent) =>
            {
                return self.welcome_agent(&agent, out);
            }
            RoutingOp::AgentOnline { agent, .. } | RoutingOp::AgentResumed(agent)
                if event.node != cluster.link.node && away_here =>
            {
                // Back on another node within their grace period: held there now.
                self.let_go_of_agent(&agent);
            }
            RoutingOp::SetAvailable(agent, _) | RoutingOp::SetLimit(agent, _) | RoutingOp::SetCategories(agent, _) => {
                self.apply(out);
                if self.agents.contains_key(&agent) {
                    self.send_profile(&agent);
                    self.send_queue_stats(&agent);
                }
                return;
            }
            RoutingOp::AgentGraceExpired(agent, _) | RoutingOp::AgentOffline(agent) => {
                // Decisions first: they name the agent, whose info tells a lapse from a disabling.
                self.apply(out);
                if self.routing.agent(&agent).is_none() {
                    self.agents.remove(&agent);
                }
                return;
            }
            RoutingOp::NodeLost(..) if event.node == cluster.link.node => {
                // The handed-over customers' chats are archived here from now on.
                let inherited = self.inherited_chats(&out);
                self.apply(out);
                for chat in inherited {
                    self.inherit_archiving(chat);
                }
                return;
            }
            _ => {}
        }
        self.apply(out);
    }

    /// An agent away from this node came back on another: this node no longer holds them,
    /// nor keeps the logs of their chats with customers it does not hold.
    fn let_go_of_agent(&mut self, agent: &AgentId) {
        self.agents.remove(agent);
        // A chat this node archives stays: after a node's loss its reaper archives the
        // lost customer's chat (`cluster_handover`), and must go on when the agent moves.
        let theirs: Vec<ChatId> = self
            .chats
            .iter()
            .filter(|(_, log)| &log.agent == agent && !log.archived_here && !self.customers.contains_key(&log.customer))
            .map(|(chat, _)| *chat)
            .collect();
        for chat in theirs {
            if let Some(log) = self.chats.remove(&chat) {
                self.chat_by_wire.remove(&log.wire_id);
                self.cluster_mut().chat_closed(chat);
            }
        }
    }

    /// A call of ours was refused: tell whoever made it.
    pub(super) fn cluster_refused(
        &mut self,
        conn: Option<ConnId>,
        who: Option<Recipient>,
        (code, message): (&'static str, String),
        client_id: Option<String>,
        call: RefusedCall,
    ) {
        if let Some(conn) = conn {
            if call == RefusedCall::Join {
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
            if let Some(agent) = refused_agent
                && self.cluster_mut().awaiting_welcome.remove(&agent)
            {
                self.error_to_conn(conn, code, message, None);
                if let Some(entry) = self.conns.get_mut(&conn) {
                    entry.who = None;
                }
                self.delivery.detach(&Recipient::Agent(agent.clone()), conn);
                self.agents.remove(&agent);
                return self.close_conn(conn, 1013, "cannot come online now; try again");
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

    /// This node lost its lease: what it believed it held may have been handed to another
    /// node. It lets go of its customers and agents (their connections close; they resume
    /// on any node) and carries on with its replica, which the stream keeps true.
    pub(super) fn cluster_fenced(&mut self) {
        tracing::warn!("this node lost its cluster lease: closing its connections");
        self.let_go_of_everyone();
        self.cluster_mut().generation += 1;
    }

    /// Redis lost its data (restarted empty; the router found it on rejoining). The node
    /// keeps its customers and agents, their chats and its replica, and hands the router
    /// what it holds to re-assert (`docs/cluster.md` §9): its replica and the last event it
    /// applied (the longest replica among the nodes is written back, under the lost
    /// domain's id, so chats keep their wire ids), and its people with their chats' last
    /// recorded seqs. Their resume tokens and agents' names are recorded again after it.
    /// Joins not yet in the stream may be lost with it: refused, to be tried again.
    /// The buddy list's replica goes with the routing one, and is restored with it
    /// (`service::cluster_restored`).
    pub(super) fn cluster_data_lost(&mut self) {
        tracing::error!("Redis lost the cluster's data: re-asserting what this node's people hold");
        let buddies = self.buddies_data_lost();
        let joins: Vec<ConnId> = self.cluster_mut().pending_joins.keys().copied().collect();
        for conn in joins {
            let words = "the cluster lost its data; join again".to_string();
            self.cluster_refused(Some(conn), None, (UNAVAILABLE, words), None, RefusedCall::Join);
        }
        let mut claims = crate::cluster::restore::Claims {
            customers: self.customers.keys().copied().collect(),
            agents: self.agents.keys().cloned().collect(),
            chats: vec![],
        };
        for (chat, log) in &self.chats {
            let last = log.transcript.last_seq();
            if self.customers.contains_key(&log.customer) {
                claims.chats.push((*chat, Party::Customer, last));
            }
            if self.agents.contains_key(&log.agent) {
                claims.chats.push((*chat, Party::Agent, last));
            }
        }
        let reassert = crate::hub::cluster_link::Reassert {
            state: self.routing.state(),
            last_event: self.cluster_mut().last_event.clone(),
            claims,
            buddies,
        };
        if !self.call(RouterCall::Reassert(Box::new(reassert))) {
            // The router lets go of them when its wait for this runs out (the grace period).
            return tracing::error!("could not hand the router what this node holds: its queue is full");
        }
        // Queued behind the re-assertion, so they reach the restored domain.
        let tokens: Vec<(String, CustomerId)> = self.customers.iter().map(|(id, c)| (c.token.clone(), *id)).collect();
        for (token, customer) in tokens {
            self.remember_token(&token, customer, crate::cluster::resume_tokens::HELD_FOR);
        }
        let names: Vec<(AgentId, String)> = self
            .agents
            .iter()
            .map(|(id, a)| (id.clone(), a.account.display_name.clone()))
            .collect();
        for (agent, name) in names {
            let _ = self.call(RouterCall::AgentName { agent, name });
        }
        let categories: Vec<CategoryId> = self.category_names.keys().map(|c| CategoryId(c.clone())).collect();
        let _ = self.call(RouterCall::Categories(categories));
    }

    /// The events this node had not read were trimmed away (it joined late, or fell far
    /// behind), or the routing domain was restored after Redis lost its data: the replica
    /// becomes the snapshot's state. What the skipped events decided for this node's own
    /// people is not carried out (`docs/cluster.md` §13).
    pub(super) fn routing_reload(&mut self, state: crate::core::routing::RoutingState, last_event: String) {
        match crate::core::routing::Routing::from_state(state) {
            Ok(routing) => {
                self.routing = routing;
                self.cluster_mut().last_event = last_event;
            }
            Err(e) => tracing::error!(error = %e, "could not load the routing replica from a snapshot"),
        }
    }

    /// Closes every connection (1012: reconnect, any node) and forgets the customers and
    /// agents, their chats and their pending joins. Buddies too: the cluster counts their
    /// connections here as closed once this node's loss is replayed (`buddy_node_lost`), so
    /// they reconnect, to any node.
    fn let_go_of_everyone(&mut self) {
        let held: Vec<ConnId> = self.conns.keys().copied().collect();
        self.buddies.joining.clear();
        self.buddies.stop_reasserting();
        for conn in held {
            if let Some(who) = self.conns.get_mut(&conn).and_then(|e| e.who.take()) {
                self.delivery.detach(&who, conn);
            }
            self.close_conn(conn, 1012, "this node is rejoining the cluster; reconnect");
        }
        self.customers.clear();
        self.tokens.clear();
        self.agents.clear();
        self.chats.clear();
        self.chat_by_wire.clear();
        self.ended_visits.clear();
        let cluster = self.cluster_mut();
        cluster.pending_joins.clear();
        cluster.awaiting_welcome.clear();
        cluster.filling.clear();
        cluster.ahead.clear();
        cluster.sent_here.clear();
        cluster.resuming.clear();
    }

    // ---- chat messages ------------------------------------------------------------------

    /// Sends a checked message to be stamped by Redis; it is recorded and delivered when
    /// the stamp comes back (`chat_lines`).
    pub(super) fn cluster_relay(
        &mut self,
        chat: ChatId,
        from: Party,
        text: String,
        client_id: Option<String>,
    ) -> Result<(), (&'static str, String)> {
        let log = self.chats.get(&chat).expect("chats in routing have a log");
        let sender = match from {
            Party::Customer => Recipient::Customer(log.customer),
            _ => Recipient::Agent(log.agent.clone()),
        };
        let id = Uuid::now_v7().to_string();
        let cluster = self.cluster_mut();
        if cluster.sent_here.len() >= SENT_HERE_MAX {
            cluster.sent_here.clear();
        }
        cluster.sent_here.insert(id.clone());
        let call = RouterCall::Message {
            chat,
            from,
            sender,
            id,
            at: now_ms(),
            text,
            client_id,
        };
        if !self.call(call) {
            return Err((UNAVAILABLE, "the cluster is too busy; the message was not sent".into()));
        }
        Ok(())
    }

    pub(super) fn is_filling(&self, chat: ChatId) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.filling.contains(&chat))
    }

    pub(super) fn fill(&mut self, chat: ChatId, after: u64) {
        if self.cluster_mut().filling.insert(chat) && !self.call(RouterCall::Fill { chat, after }) {
            self.cluster_mut().filling.remove(&chat);
        }
    }

    pub(super) fn chat_lines(&mut self, lines: Vec<ChatLine>, filled: Option<ChatId>) {
        let progressed = !lines.is_empty();
        if let Some(chat) = filled {
            self.cluster_mut().filling.remove(&chat);
        }
        for line in lines {
            self.accept_line(line);
        }
        if let Some(chat) = filled {
            self.chat_read_for_resume(chat);
        }
        // Still a gap after the fill (messages arrived meanwhile past it): read again.
        if let Some(chat) = filled
            && progressed
            && self.cluster_mut().ahead.get(&chat).is_some_and(|held| !held.is_empty())
            && let Some(last) = self.chats.get(&chat).map(|log| log.transcript.last_seq())
        {
            self.fill(chat, last);
        }
    }

    /// Records and delivers a chat's message in seq order: the next one at once, a later
    /// one held while the gap before it is read from the log, an old one ignored.
    fn accept_line(&mut self, line: ChatLine) {
        let chat = line.chat;
        let Some(last) = self.chats.get(&chat).map(|log| log.transcript.last_seq()) else {
            return;
        };
        if line.seq <= last {
            return;
        }
        if line.seq > last + 1 {
            let held = self.cluster_mut().ahead.entry(chat).or_default();
            if held.len() < LOG_BOUND {
                held.insert(line.seq, line);
            }
            return self.fill(chat, last);
        }
        self.record_line(line);
        // Then whatever was held for after it.
        loop {
            let next = self.chats.get(&chat).map(|log| log.transcript.last_seq() + 1);
            let cluster = self.cluster_mut();
            let Some(held) = cluster.ahead.get_mut(&chat) else {
                break;
            };
            let line = next.and_then(|n| held.remove(&n));
            held.retain(|seq, _| next.is_some_and(|n| *seq > n));
            if held.is_empty() {
                cluster.ahead.remove(&chat);
            }
            match line {
                Some(line) => self.record_line(line),
                None => break,
            }
        }
    }

    fn record_line(&mut self, line: ChatLine) {
        let sent_here = self.cluster_mut().sent_here.remove(&line.id);
        let Some(log) = self.chats.get_mut(&line.chat) else {
            return;
        };
        let author = match line.from {
            Party::Customer => Author::CUSTOMER,
            _ => Author::AGENT,
        };
        let Stamped { frame, ack, event } = log.transcript.record_stamped(
            &log.wire_id,
            line.seq,
            &line.id,
            line.at,
            author,
            line.text,
            line.client_id.as_deref(),
        );
        let archived = if log.archived_here {
            self.archive.push_message(event)
        } else {
            None
        };
        let (customer, agent) = (log.customer, log.agent.clone());
        let (sender, peer) = match line.from {
            Party::Customer => (Recipient::Customer(customer), Recipient::Agent(agent)),
            _ => (Recipient::Agent(agent), Recipient::Customer(customer)),
        };
        let frame = Outbound::Frame(frame);
        self.delivery.deliver(&peer, &frame);
        if sent_here {
            // The sender gets the compact acknowledgement (issue 14), as on one node.
            self.acknowledge(sender, Outbound::Frame(ack), archived);
        } else {
            // Sent through another node: a sender connected here (back after a drop) has
            // not seen it, so it goes out whole, after the archive has it if it is ours.
            self.acknowledge(sender, frame, archived);
        }
        self.messages_relayed.increment(1);
    }

    pub(super) fn chat_signal(&mut self, signal: NodeMessage) {
        match signal {
            NodeMessage::Typing { chat, from, active } => {
                let Some(log) = self.chats.get(&chat) else { return };
                let (to, from) = match from {
                    Party::Customer => (Recipient::Agent(log.agent.clone()), From::Customer),
                    _ => (Recipient::Customer(log.customer), From::Agent),
                };
                let frame = ServerFrame::Typing {
                    chat_id: log.wire_id.clone(),
                    from,
                    active,
                };
                self.send(to, &frame);
            }
            NodeMessage::Draft { chat, text } => {
                let Some(log) = self.chats.get(&chat) else { return };
                if !self.settings.draft_preview {
                    return;
                }
                let to = Recipient::Agent(log.agent.clone());
                let frame = ServerFrame::Draft {
                    chat_id: log.wire_id.clone(),
                    text,
                };
                self.send(to, &frame);
            }
            NodeMessage::Line(line) => self.accept_line(line),
        }
    }

    /// The chat channel was cut: whatever was published meanwhile is in the chats' logs.
    pub(super) fn chat_resync(&mut self) {
        let chats: Vec<(ChatId, u64)> = self
            .chats
            .iter()
            .map(|(chat, log)| (*chat, log.transcript.last_seq()))
            .collect();
        for (chat, last) in chats {
            self.fill(chat, last);
        }
    }

    // ---- the buddy list across nodes ----------------------------------------------------

    /// This node's id in the cluster; `None` alone.
    pub(in crate::hub) fn buddy_node(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.link.node.as_str())
    }

    /// Whether an events stream entry made by `process` on `node` was made by this process
    /// (the one whose connection ids it names), not by an earlier one under this node's id.
    pub(in crate::hub) fn buddy_made_here(&self, node: &str, process: &str) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.link.node == node && c.link.nonce == process)
    }

    /// Sends a buddy event (JSON) to the events stream; false when the router's queue is full.
    pub(in crate::hub) fn buddy_call(&self, event: String, conn: Option<ConnId>, client_id: Option<String>) -> bool {
        let process = self.cluster.as_ref().map(|c| c.link.nonce.clone()).unwrap_or_default();
        self.call(RouterCall::Buddy {
            event,
            process,
            conn,
            client_id,
        })
    }
}
