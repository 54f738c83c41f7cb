//! The hub on the cluster's routing scripts (`docs/cluster.md` §12): with
//! `REDIS_URL` set, routing transitions go to Redis through the router
//! (`hub::cluster::link`), and `HubState::routing` is this node's **replica** of the
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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::continuing::Continued;
use super::{AgentInfo, ChatLog, CustomerInfo, EndedVisit, HubState, Token, close};
use crate::clock::now_ms;
use crate::cluster::buddy_line::BuddyLine;
use crate::cluster::chat_log::{ChatLine, NodeMessage};
use crate::cluster::replica::{Continues, RoutingOp};
use crate::cluster::routing_events::RoutingEvent;
use crate::core::conversation::Route;
use crate::core::routing::{AgentId, CategoryId, ChatEnd, ChatId, CustomerId, Decision, Party};
use crate::hub::cluster::link::BuddyOutgoing;
use crate::hub::cluster::link::{Link, RouterCall, UNAVAILABLE};
use crate::hub::cluster::rereads::Log;
use crate::hub::delivery::{ConnId, Recipient};
use crate::protocol::ServerFrame;
use crate::store::CustomerProfile;
use crate::store::{Account, Category};

// Chat messages between nodes: stamped by Redis, recorded in seq order, gaps filled.
mod chat;
// the reaper archives a dead node's customer's chat
mod handover;
// a customer's resume across nodes
pub(super) mod resume;
mod resume_catch_up;
mod resume_continuing;
// what a node does once the lost routing domain and buddy list are restored
mod restored;
// Which sign-in of an agent a coming online, or its take-back, is about.
mod sign_ins;
// This node's standing: refusals, fencing, Redis's data lost, letting go of its people.
mod standing;
// The closings of the chats a lost node ended lately, which it may not have stored.
mod ended;

/// A chat this node archived when it let go of its people (`ClusterState::let_go`): what
/// writing its closing, and its conversation's end, takes once its end is known here.
pub(super) struct LetGoChat {
    pub wire_id: String,
    /// The last seq this node recorded: its closing's last read starts after it.
    pub last_seq: u64,
    /// Its conversation's opening as this node knew it: for the record its end stores
    /// when none is stored, and the visit an inferred closing closes (`paired_at`).
    pub opening: crate::conversations::OpeningKnown,
    /// Its customer, when this node held them: what they get on resuming elsewhere once
    /// the end is known here (`decisions`, `ChatEnded`).
    pub ended_visit: Option<LetGoVisit>,
}

/// The chat as the customer of a chat this node let go of saw it ([`LetGoChat`]).
#[derive(Clone)]
pub(super) struct LetGoVisit {
    pub customer_name: String,
    pub chat: crate::protocol::ChatSnapshot,
}
/// What the hub keeps for the cluster besides the replica.
pub(crate) struct ClusterState {
    link: Link,
    /// Chat wire ids derive from it (see `cluster::restore::CLUSTER_ID_KEY`).
    wire_ns: Option<String>,
    /// Joins sent and not yet seen in the events stream, by connection.
    pending_joins: HashMap<ConnId, PendingJoin>,
    /// Customers of other nodes, as their join event named them: an agent here may be
    /// paired with any of them. Forgotten with the customer.
    remote_customers: HashMap<CustomerId, RemoteCustomer>,
    /// This node's own customers continuing a conversation, as their join's event settled
    /// it (what the other nodes keep in `remote_customers`): when this node lets go of them
    /// (they resumed elsewhere, or it was fenced), their record keeps it, so that taking
    /// them back here still continues it. Forgotten with the customer.
    own_continues: HashMap<CustomerId, Continues>,
    /// Display names of agents, from the events that brought them online (one per account).
    agent_names: HashMap<AgentId, String>,
    /// Agents connected here whose coming online (or back) is not replayed yet, with the
    /// sign-in (the connection) that call was made for: their welcome goes out when the
    /// event of that sign-in is replayed (`sign_ins`).
    awaiting_welcome: HashMap<AgentId, ConnId>,
    /// Chats whose log is being read to fill a gap.
    filling: HashSet<ChatId>,
    /// Messages that arrived past a gap, held until it is filled; at most a log's worth a chat.
    ahead: HashMap<ChatId, BTreeMap<u64, ChatLine>>,
    /// How many fences this hub has handled (see `cluster::link::Link::calls`).
    generation: u64,
    /// Joins this hub has sent: numbers each join's request id, which Redis keeps a minute
    /// to answer a *retry* of that join with its first reply. A second join on the same
    /// connection (after a leave) is a new request, so it needs a new id.
    joins_sent: u64,
    /// Ids of messages sent through this node and not yet recorded, with the connection
    /// that sent each: it gets the compact `ack`, the sender's other connections the whole
    /// message. Any other line (from another node, or read from a chat's log for a side
    /// that came back here) reaches both sides whole, since no connection here had its text.
    sent_here: HashMap<String, ConnId>,
    /// The sender's connections here that got each line with a client id recorded here (its
    /// ack, or the whole message): a message sent again under that client id gets the ack
    /// of its first sending only on a connection that has not had it. At most
    /// [`SENT_HERE_MAX`] lines, cleared past it (then one may be answered twice: harmless).
    delivered_here: HashMap<String, Vec<ConnId>>,
    /// Resumes of another node's customers waiting for their chat's log to be read.
    pub(super) resuming: HashMap<ChatId, resume::PendingResume>,
    /// Resumes of another node's customers waiting for the lines after their `last_seq`
    /// that their chat's log no longer holds, read from the archive (`resume_catch_up`).
    pub(super) reading_archive: HashMap<ChatId, resume::PendingResume>,
    /// Resumes of another node's customers waiting in line to continue a conversation,
    /// waiting for it to be read (`resume_continuing`).
    pub(super) reading_conversation: HashMap<CustomerId, resume::PendingResume>,
    /// Customers whose `customer_resumed` this node sent and has not seen applied: their
    /// connection gets `resumed` only when the events stream applies it, so a refused
    /// resume is never shown as resumed first (`cluster::resume`).
    pub(super) awaiting_resumed: HashMap<CustomerId, resume::AwaitingResumed>,
    /// Ended chats this node archives, waiting for the last read of their log before their
    /// closing (`chat::ClosingArchive`). Kept through a fence: the chats ended, and nobody
    /// else writes their closing.
    closing: HashMap<ChatId, chat::ClosingArchive>,
    /// The chats this node archived when it was fenced and let go of its people: wire id
    /// and the last seq it recorded. Their end may already be in the events stream, not yet
    /// applied here (its follower lagging, or the node stopped between), and then no other
    /// node writes their closing: the reaper inherits running chats only, and when both
    /// sides were here no node logs the chat for the other side. This node writes it when
    /// its replica applies the end (`chat::close_let_go`), or when a snapshot it loads no
    /// longer runs the chat (`chat::close_let_go_ended_unseen`: its end was skipped).
    /// Forgotten when a node takes the chat back here, or when this node replays its own
    /// loss with the chat still running (the reaper inherits it and writes its closing).
    pub(super) let_go: HashMap<ChatId, LetGoChat>,
    /// The last seq this node had recorded of each chat it let go of when fenced, until
    /// the chat ends: after Redis lost its data, its claim raises the chat's seq to at
    /// least this, whatever the log it keeps of the chat holds by then. Taken on again
    /// (its agent back here), the chat's log starts empty and is read from Redis; lost
    /// before that read was answered, the chat was claimed at 0 and its next line stamped
    /// 1 again, a second line 1 the archive (one line per seq) dropped though it was
    /// acknowledged.
    seq_floors: HashMap<ChatId, u64>,
    /// When each running chat was paired: the time of the events stream entry that paired
    /// it (Redis's clock), the same on every node, for the archive's opening by whichever
    /// node archives the chat and for `started_at`; and the category it was paired in,
    /// for the conversation record a reaper's late closing may store (`ended`). Forgotten
    /// when the chat ends.
    paired_at: HashMap<ChatId, (i64, CategoryId)>,
    /// The chats whose end this replica applied lately, oldest first (`ended`).
    ended_chats: VecDeque<ended::EndedChat>,
    // ---- Redis restarted empty: re-assertion ----
    /// The last routing event the replica applied ("0-0": none): how long a prefix of the
    /// events stream it holds, offered when Redis loses its data (`cluster::restore`).
    last_event: String,
    /// This node went through Redis's loss of its data (`cluster_data_lost`) and has not
    /// loaded the restore yet: the resumes under way then were settled there, and every
    /// resume it sends since reaches the restored domain, after the restore's entry.
    pub(super) through_loss: bool,
    /// This node went through Redis's loss of its data and not every node's claim is in
    /// yet (`Command::EveryClaimIn`): a claim may still write back lines into a chat's log.
    pub(super) claims_coming: bool,
    /// Customers whose chat was ended (`ChatEnd::Ended`) when this replica applied it, oldest
    /// first, kept for the grace period: a resume elsewhere whose token still names one of
    /// them, with no ending kept yet, comes before their node has kept the ending for them
    /// (it keeps it, then forgets the token) — to be tried again, not refused as expired.
    ended_lately: VecDeque<(Instant, CustomerId)>,
    /// The endings this node kept in Redis under the id of a customer in its care (their
    /// node lost, their chat archived here: `resume_tokens::ended_customer_key`), with
    /// their token's key, until their grace period ends: Redis losing its data loses both,
    /// and they are recorded again after the restore. (Another node's customer's ending is
    /// recorded again by that node, under their token.)
    endings_by_customer: HashMap<CustomerId, (String, EndedVisit)>,
    /// Resumes whose token names a customer this replica does not know yet, waiting for
    /// it to apply the events stream up to the newest entry at their lookup.
    pub(super) awaiting_replica: Vec<resume::AwaitingReplica>,
    /// Waiting customers of a dead or stalled node that this node reaped: their grace
    /// period runs here, so this node keeps, for the reports, one who leaves the line
    /// unserved (gone for good). Forgotten when they resume elsewhere, are paired, or go.
    pub(super) inherited_waiting: HashSet<CustomerId>,
    /// Customers whose resume here Redis refused `unknown_customer`, oldest first, kept
    /// for the grace period: the first such refusal asks the page to resume again, a
    /// second is final (`cluster::resume::resume_refused`).
    refused_unknown: VecDeque<(Instant, CustomerId)>,
}

/// Ids in `sent_here` at most: one refused by a Redis outage is never recorded, so the set
/// is cleared past this (a later own line then goes out whole instead of as an ack —
/// harmless). Far above what the router's queue (8,192 calls) can hold in flight.
pub(super) const SENT_HERE_MAX: usize = 65_536;

/// Refusals `unknown_customer` remembered at most (`ClusterState::refused_unknown`): each
/// is a resume of a customer who just went, rare; the oldest goes first past this.
const REFUSED_UNKNOWN_MAX: usize = 4_096;

struct PendingJoin {
    name: String,
    video: bool,
    first_message: Option<String>,
    profile: CustomerProfile,
    /// When the join was sent; once it is in the events stream, the stream's time of it.
    queued_at: i64,
    /// The join's request id (`RoutingOp::Join`): a refusal names it.
    request: String,
    /// The customer's resume token, made before the join: its key rides in the join's
    /// script, so Redis records it with the join and it is known cluster-wide before the
    /// `welcome` carries it.
    token: Token,
    /// The conversation they continue, as this node read it.
    continues: Option<Box<Continued>>,
}

/// A customer's `join`, checked, for the cluster to take.
pub(super) struct Joining {
    pub name: String,
    pub video: bool,
    pub first_message: Option<String>,
    pub profile: CustomerProfile,
    /// The conversation they continue, as this node read it.
    pub continues: Option<Box<Continued>>,
}

struct RemoteCustomer {
    name: String,
    video: bool,
    /// When their join entered the events stream (0 if the join was not replayed here).
    queued_at: i64,
    first_message: Option<String>,
    profile: CustomerProfile,
    /// The conversation they continue: their chat's id, and the seq its lines go on from.
    continues: Option<Continues>,
    /// The key of their resume token (`resume_tokens::key`), as their join's event or
    /// their node's letting go of them here named it (empty: not known). A node that
    /// reaped their node runs their grace without ever having had their token, and
    /// records this key again when Redis loses its data (`cluster_data_lost`).
    token_key: String,
}

/// The customer of a chat being opened, as this node knows them.
pub(super) struct ChatCustomer {
    pub name: String,
    pub queued_at: i64,
    pub video: bool,
    pub first_message: Option<String>,
    pub profile: CustomerProfile,
}

impl ClusterState {
    pub(super) fn new(link: Link) -> Self {
        Self {
            link,
            wire_ns: None,
            pending_joins: HashMap::new(),
            remote_customers: HashMap::new(),
            own_continues: HashMap::new(),
            agent_names: HashMap::new(),
            awaiting_welcome: HashMap::new(),
            filling: HashSet::new(),
            ahead: HashMap::new(),
            generation: 0,
            joins_sent: 0,
            sent_here: HashMap::new(),
            delivered_here: HashMap::new(),
            resuming: HashMap::new(),
            reading_archive: HashMap::new(),
            reading_conversation: HashMap::new(),
            awaiting_resumed: HashMap::new(),
            closing: HashMap::new(),
            let_go: HashMap::new(),
            seq_floors: HashMap::new(),
            paired_at: HashMap::new(),
            ended_chats: VecDeque::new(),
            last_event: "0-0".to_string(),
            through_loss: false,
            claims_coming: false,
            ended_lately: VecDeque::new(),
            endings_by_customer: HashMap::new(),
            awaiting_replica: Vec::new(),
            inherited_waiting: HashSet::new(),
            refused_unknown: VecDeque::new(),
        }
    }

    /// Has the router read each of `logs` again after its seq (`ChatLogRead`,
    /// `BuddyLogReread`): outside its queue, so none is dropped however many
    /// (`hub::cluster::rereads`).
    pub(super) fn reread(&self, logs: impl IntoIterator<Item = (Log, u64)>) {
        self.link.rereads.ask(logs);
    }

    /// The routing domain's id chat wire ids are made from (`None` before it is read).
    pub(super) fn wire_id_namespace(&self) -> Option<&str> {
        self.wire_ns.as_deref()
    }

    /// Whether `conn` sent a join that is not applied yet.
    pub(super) fn is_joining(&self, conn: ConnId) -> bool {
        self.pending_joins.contains_key(&conn)
    }

    /// Whether a resume of `customer` was refused `unknown_customer` within `grace`; notes
    /// this refusal either way. Bounded: one entry per refusal, kept `grace`, at most
    /// [`REFUSED_UNKNOWN_MAX`].
    pub(super) fn refused_unknown_lately(&mut self, customer: CustomerId, grace: Duration) -> bool {
        while self
            .refused_unknown
            .front()
            .is_some_and(|(at, _)| at.elapsed() > grace || self.refused_unknown.len() >= REFUSED_UNKNOWN_MAX)
        {
            self.refused_unknown.pop_front();
        }
        let before = self.refused_unknown.iter().any(|(_, c)| *c == customer);
        self.refused_unknown.push_back((Instant::now(), customer));
        before
    }

    /// Whether this replica has not applied the events stream's entry `id` yet.
    pub(super) fn behind(&self, id: &str) -> bool {
        match (stream_position(&self.last_event), stream_position(id)) {
            (Some(applied), Some(wanted)) => applied < wanted,
            _ => false,
        }
    }

    /// The chat's id on the wire and in the archive: the same on every node.
    pub(super) fn wire_id(&self, chat: ChatId) -> String {
        match &self.wire_ns {
            // The conversation the chat begins (a continued one's chat is named by it instead).
            Some(ns) => crate::core::routing::ConversationId::of_chat(ns, chat).0,
            None => Uuid::now_v7().to_string(),
        }
    }

    pub(super) fn agent_name(&self, agent: &AgentId) -> Option<String> {
        self.agent_names.get(agent).cloned()
    }

    /// The time of the last events stream entry the replica applied (Redis's clock; now if
    /// none): while an event is replayed, that event's, so an ending it decides is dated
    /// when it happened in Redis, not when this node replays it (a follower behind, a node
    /// woken from a stall); after a snapshot's load, the snapshot's last event's.
    pub(super) fn stream_time(&self) -> i64 {
        stream_position(&self.last_event)
            .filter(|(ms, _)| *ms > 0)
            .map_or_else(now_ms, |(ms, _)| ms as i64)
    }

    /// When `chat` was paired, if this node replayed its pairing.
    pub(super) fn paired_at(&self, chat: ChatId) -> Option<i64> {
        self.paired_at.get(&chat).map(|(at, _)| *at)
    }

    /// When another node's customer joined, if this node replayed their join.
    pub(super) fn remote_queued_at(&self, customer: CustomerId) -> Option<i64> {
        self.remote_customers
            .get(&customer)
            .map(|r| r.queued_at)
            .filter(|at| *at > 0)
    }

    /// Another node's customer as their join named them (name, video), for a resume here.
    pub(super) fn remote_customer(&self, customer: CustomerId) -> (String, bool) {
        self.remote_customers
            .get(&customer)
            .map(|r| (r.name.clone(), r.video))
            .unwrap_or_default()
    }

    /// What a remote customer said they came about (`join.message`).
    pub(super) fn remote_first_message(&self, customer: CustomerId) -> Option<String> {
        self.remote_customers.get(&customer)?.first_message.clone()
    }

    /// The conversation a remote customer continues, if their join was replayed here.
    pub(super) fn remote_conversation(&self, customer: CustomerId) -> Option<&Continues> {
        self.remote_customers.get(&customer)?.continues.as_ref()
    }

    /// What a remote customer told about themselves when joining.
    pub(super) fn remote_profile(&self, customer: CustomerId) -> CustomerProfile {
        self.remote_customers
            .get(&customer)
            .map(|r| r.profile.clone())
            .unwrap_or_default()
    }

    /// A customer of ours who went to another node: theirs now, known by name.
    pub(super) fn remember_remote_customer(&mut self, customer: CustomerId, info: Box<CustomerInfo>) {
        // What they continue stays known (their chat's id), from their join: as its event
        // named it here, or (one taken on from another node) as their record had it.
        let joined = self.own_continues.remove(&customer);
        let continues = self
            .remote_customers
            .remove(&customer)
            .and_then(|r| r.continues)
            .or(joined);
        self.remote_customers.insert(
            customer,
            RemoteCustomer {
                name: info.name,
                video: info.video,
                queued_at: info.queued_at,
                first_message: info.first_message,
                profile: info.profile,
                continues,
                token_key: crate::cluster::resume_tokens::key(&info.token.to_string()),
            },
        );
    }

    /// The key of a remote customer's resume token, if this node knows it.
    pub(super) fn remote_token_key(&self, customer: CustomerId) -> Option<&str> {
        let key = self.remote_customers.get(&customer)?.token_key.as_str();
        (!key.is_empty()).then_some(key)
    }

    pub(super) fn forget_customer(&mut self, customer: CustomerId) {
        self.remote_customers.remove(&customer);
        self.own_continues.remove(&customer);
        self.inherited_waiting.remove(&customer);
    }

    /// Records when chats were paired (`at`: the entry's time) and forgets ended ones;
    /// notes the customers whose chat was ended (kept `grace`).
    fn note_chat_times(&mut self, out: &[Decision], at: i64, grace: Duration) {
        self.forget_endings_before(grace);
        for decision in out {
            match decision {
                Decision::Paired { chat, category, .. } => {
                    self.paired_at.insert(*chat, (at, category.clone()));
                }
                Decision::ChatEnded {
                    chat,
                    customer,
                    reason,
                    ended_by,
                    ..
                } => {
                    self.paired_at.remove(chat);
                    self.seq_floors.remove(chat);
                    // Only an ending some node keeps for a resume: not the customer's own
                    // `leave` (their token dies with it), else a resume with that token
                    // would be told "resume again shortly" for the whole grace period.
                    if *reason == ChatEnd::Ended && *ended_by != Party::Customer {
                        self.ended_lately.push_back((Instant::now(), *customer));
                    }
                }
                Decision::ChatWithdrawn { chat, .. } => {
                    self.paired_at.remove(chat);
                    self.seq_floors.remove(chat);
                }
                _ => {}
            }
        }
    }

    /// Whether `customer`'s chat was ended within the last `grace` (forgets older endings).
    pub(super) fn ended_lately(&mut self, customer: CustomerId, grace: Duration) -> bool {
        self.forget_endings_before(grace);
        self.ended_lately.iter().any(|(_, c)| *c == customer)
    }

    /// Keeps `visit`, the ending kept in Redis under `customer`'s id, with their token's
    /// key, to record both again should Redis lose its data (until the grace period ends).
    pub(super) fn keep_ending_by_customer(&mut self, customer: CustomerId, token_key: String, visit: EndedVisit) {
        let now = tokio::time::Instant::now();
        self.endings_by_customer.retain(|_, (_, kept)| kept.until > now);
        self.endings_by_customer.insert(customer, (token_key, visit));
    }

    /// The endings kept by customer whose grace period runs still (see above).
    pub(super) fn endings_by_customer(&mut self) -> Vec<(CustomerId, String, EndedVisit)> {
        let now = tokio::time::Instant::now();
        self.endings_by_customer.retain(|_, (_, kept)| kept.until > now);
        (self.endings_by_customer.iter())
            .map(|(customer, (key, visit))| (*customer, key.clone(), visit.clone()))
            .collect()
    }

    fn forget_endings_before(&mut self, grace: Duration) {
        while self.ended_lately.front().is_some_and(|(at, _)| at.elapsed() > grace) {
            self.ended_lately.pop_front();
        }
    }

    /// Keeps the pairing times of the chats `routing` still runs only.
    pub(super) fn forget_pairings_not_in(&mut self, routing: &crate::core::routing::Routing) {
        self.paired_at.retain(|chat, _| routing.chat_sides(*chat).is_some());
        self.seq_floors.retain(|chat, _| routing.chat_sides(*chat).is_some());
    }

    /// Keeps `last`, the last seq recorded here of a chat this node lets go of, as the
    /// least its claims raise the chat's seq to ([`ClusterState::seq_floors`]).
    pub(super) fn keep_seq_floor(&mut self, chat: ChatId, last: u64) {
        let floor = self.seq_floors.entry(chat).or_default();
        *floor = (*floor).max(last);
    }

    /// The seq a claim raises `chat` to, this node's log of it recording up to `last`.
    pub(super) fn claimed_seq(&self, chat: ChatId, last: u64) -> u64 {
        self.seq_floors.get(&chat).map_or(last, |floor| last.max(*floor))
    }

    /// The chats this node let go of that `routing` no longer runs (ended in events it
    /// skipped: their end is never replayed here), taken out of `let_go`.
    pub(super) fn let_go_not_in(&mut self, routing: &crate::core::routing::Routing) -> Vec<(ChatId, LetGoChat)> {
        let ended: Vec<ChatId> = self
            .let_go
            .keys()
            .filter(|chat| routing.chat_sides(**chat).is_none())
            .copied()
            .collect();
        ended
            .into_iter()
            .filter_map(|chat| self.let_go.remove(&chat).map(|kept| (chat, kept)))
            .collect()
    }

    /// This node's own loss was replayed: the chats it let go of that `routing` still runs
    /// are its reaper's now, which inherits them and writes their closing. Only those that
    /// ended before stay (their end replayed already, or to come in a snapshot's load).
    fn let_go_to_the_reaper(&mut self, routing: &crate::core::routing::Routing) {
        self.let_go.retain(|chat, _| routing.chat_sides(*chat).is_none());
    }

    /// A chat's log is closed here: nothing more is held or read for it.
    pub(super) fn chat_closed(&mut self, chat: ChatId) {
        self.ahead.remove(&chat);
        self.filling.remove(&chat);
    }
}

/// Debug builds only: `SWITCHBOARD_TEST_REFUSED_FILLS=<node id>:<n>` refuses that node's
/// first `n` reads of a chat's log (`RouterCall::Fill`) as if the router's queue were
/// full, so a test can stage a read that was never sent.
fn test_only_refused_fill(node: &str) -> bool {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    // How many are left to refuse (a process's nodes each have their own id: one count).
    static LEFT: OnceLock<AtomicU64> = OnceLock::new();
    let Some(words) = crate::test_hooks::for_node("SWITCHBOARD_TEST_REFUSED_FILLS", node) else {
        return false;
    };
    let left = LEFT.get_or_init(|| AtomicU64::new(words.first().and_then(|n| n.parse().ok()).unwrap_or(0)));
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| k.checked_sub(1))
        .is_ok()
}

/// The time an events stream entry was added (its id is `<ms>-<n>`, Redis's clock); now if unreadable.
/// An events stream id (`<ms>-<seq>`) as a pair that orders as Redis orders them.
fn stream_position(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

fn event_time(id: &str) -> i64 {
    id.split_once('-')
        .and_then(|(ms, _)| ms.parse().ok())
        .unwrap_or_else(now_ms)
}

impl HubState {
    pub(super) fn cluster_mut(&mut self) -> &mut ClusterState {
        self.cluster.as_mut().expect("called in a cluster only")
    }

    /// Queues a call for the router; false when its channel is full (Redis slow or away).
    pub(super) fn call(&self, call: RouterCall) -> bool {
        let cluster = self.cluster.as_ref().expect("called in a cluster only");
        if matches!(call, RouterCall::Fill { .. }) && test_only_refused_fill(&cluster.link.node) {
            return false;
        }
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
                first_message: info.first_message.clone(),
                profile: info.profile.clone(),
            });
        }
        let cluster = self.cluster.as_ref()?;
        if !self.agents.contains_key(agent) {
            return None;
        }
        let remote = cluster.remote_customers.get(&customer);
        Some(ChatCustomer {
            name: remote.map(|r| r.name.clone()).unwrap_or_default(),
            queued_at: remote.map_or(0, |r| r.queued_at),
            video: remote.is_some_and(|r| r.video),
            first_message: remote.and_then(|r| r.first_message.clone()),
            profile: remote.map(|r| r.profile.clone()).unwrap_or_default(),
        })
    }

    pub(super) fn cluster_started(&mut self, cluster_id: &str) {
        self.cluster_mut().wire_ns = Some(cluster_id.to_string());
        // The replica names the conversations chats begin as the scripts do.
        self.routing.name_conversations(cluster_id);
    }

    // ---- joins and agents --------------------------------------------------------

    pub(super) fn cluster_join(
        &mut self,
        conn: ConnId,
        category: CategoryId,
        joining: Joining,
    ) -> Result<(), (&'static str, String)> {
        let Joining {
            name,
            video,
            first_message,
            profile,
            continues,
        } = joining;
        // A customer continuing a conversation goes back to its agent while that holds.
        let preferred = match continues.as_ref().map(|c| &c.route) {
            Some(Route::Prefer(agent)) => Some(agent.clone()),
            _ => None,
        };
        let conversation = continues.as_ref().map(|c| Continues {
            id: c.id.clone(),
            last_seq: c.last_seq,
            reopened: c.reopened,
            holder: c.holder.clone(),
            note: c.note.clone(),
            turns: c
                .authors
                .turns()
                .map(|(through, name)| (through, name.to_string()))
                .collect(),
        });
        let cluster = self.cluster_mut();
        if cluster.pending_joins.contains_key(&conn) {
            return Err(("already_joined", "this connection's join is under way".into()));
        }
        cluster.joins_sent += 1;
        let request = format!("{}:{}:{}", cluster.link.nonce, conn.0, cluster.joins_sent);
        let token = Token::new();
        let token_key = crate::cluster::resume_tokens::key(&token.to_string());
        cluster.pending_joins.insert(
            conn,
            PendingJoin {
                name: name.clone(),
                video,
                first_message: first_message.clone(),
                profile: profile.clone(),
                queued_at: now_ms(),
                request: request.clone(),
                token,
                continues,
            },
        );
        let op = RoutingOp::Join {
            category,
            request,
            name,
            video,
            token_key,
            message: first_message.unwrap_or_default(),
            profile: Box::new(profile),
            preferred,
            continues: conversation,
        };
        if !self.route(op, Some(conn)) {
            self.cluster_mut().pending_joins.remove(&conn);
        }
        Ok(())
    }

    /// Our join is in the stream: the customer exists; welcome them, then what it decided.
    /// `settled`: the seq the script settled the continued conversation's lines on from.
    fn bind_join(
        &mut self,
        conn: ConnId,
        customer: CustomerId,
        mut join: PendingJoin,
        settled: Option<u64>,
        mut out: Vec<Decision>,
    ) {
        if let (Some(continued), Some(seq)) = (join.continues.as_mut(), settled)
            && seq > continued.last_seq
        {
            // Lines its agent wrote on another node as the customer came back, not in the
            // store when this node read it: they reach the customer once stored.
            self.catch_up(customer, &continued.id, continued.last_seq, seq);
            continued.last_seq = seq;
        }
        // As on one node: a customer paired at once was never waiting as far as they see.
        let paired_at_once = out
            .iter()
            .any(|d| matches!(d, Decision::Paired { customer: c, .. } if *c == customer));
        if paired_at_once {
            out.retain(|d| !matches!(d, Decision::Queued { customer: c, .. } if *c == customer));
        }
        self.keep_email_of_continuing(join.continues.as_deref(), &join.profile);
        // Recorded in Redis by the join's own script (its key rode in the join): a welcome
        // only ever carries a token the cluster knows.
        let token = join.token;
        self.tokens.insert(token, customer);
        let connected = self.conns.contains_key(&conn);
        self.customers.insert(
            customer,
            Box::new(CustomerInfo {
                name: join.name.clone(),
                token,
                queued_at: join.queued_at,
                conn: connected.then_some(conn),
                video: join.video,
                first_message: join.first_message.clone(),
                profile: join.profile.clone(),
                continues: join.continues,
            }),
        );
        if connected {
            self.set_who(conn, Recipient::Customer(customer));
            self.send_to_conn(
                conn,
                &ServerFrame::Welcome {
                    customer_name: join.name,
                    resume_token: token.to_string(),
                    grace_secs: self.settings.resume_grace.as_secs_f64(),
                    max_message_len: self.settings.max_message_len,
                    draft_preview: self.settings.draft_preview,
                },
            );
        }
        self.apply(out);
        if !connected {
            // The connection went while the join was under way: nobody has this customer's
            // token (it travels in the welcome alone), so nobody can resume them, and a
            // page that reconnects joins again. They leave now rather than hold a place
            // in line, or an agent's chat, for the grace period.
            self.route(RoutingOp::Leave(customer), None);
        }
    }

    pub(super) fn cluster_agent_connected(&mut self, conn: ConnId, account: Account) {
        let id = AgentId(account.id.clone());
        if let Some(info) = self.agents.get_mut(&id) {
            // Held here: a second tab, or back within the grace period.
            let previous = info.conn.replace(conn);
            info.account = account;
            let held_for = info.sign_in;
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
                        self.send_notes_of_chats(&id);
                        self.send_queue_stats(&id);
                        self.resend_offers(&id, conn);
                    } else {
                        // Its welcome waits for the event of the sign-in it replaced.
                        self.set_who_before_welcome(conn, Recipient::Agent(id.clone()));
                        self.cluster_mut().awaiting_welcome.insert(id, held_for.unwrap_or(old));
                    }
                }
                None => {
                    // Back here within their grace period: held for this sign-in now.
                    if let Some(info) = self.agents.get_mut(&id) {
                        info.sign_in = Some(conn);
                    }
                    self.set_who_before_welcome(conn, Recipient::Agent(id.clone()));
                    let cluster = self.cluster_mut();
                    cluster.awaiting_welcome.insert(id.clone(), conn);
                    let sign_in = sign_ins::sign_in_id(&cluster.link.nonce, conn);
                    self.read_endings_before_welcome(&id);
                    self.route(RoutingOp::AgentResumed(id, Some(sign_in)), Some(conn));
                }
            }
            return;
        }
        let held_elsewhere = self.routing.agent(&id);
        let name = account.display_name.clone();
        let categories = account.categories.iter().cloned().map(CategoryId::from).collect();
        let limit = account.max_chats;
        self.agents.insert(
            id.clone(),
            AgentInfo {
                account,
                conn: Some(conn),
                sign_in: Some(conn),
            },
        );
        self.set_who_before_welcome(conn, Recipient::Agent(id.clone()));
        self.cluster_mut().awaiting_welcome.insert(id.clone(), conn);
        let sign_in = Some(sign_ins::sign_in_id(&self.cluster_mut().link.nonce, conn));
        let _ = self.call(RouterCall::AgentName {
            agent: id.clone(),
            name,
        });
        self.read_endings_before_welcome(&id);
        let op = match held_elsewhere {
            // Away from another node (it dropped, or died): back, here.
            Some(view) if !view.connected => RoutingOp::AgentResumed(id, sign_in),
            // Fresh agents start away, so coming online pairs nobody before the welcome.
            _ => RoutingOp::AgentOnline {
                agent: id,
                categories,
                limit,
                available: false,
                sign_in,
            },
        };
        self.route(op, Some(conn));
    }

    /// How `agent`'s chats ended while they were away, wherever they were told (another
    /// node's included), read from Redis for their welcome: queued right before their
    /// coming online, whose welcome the router's order puts after the read's answer.
    fn read_endings_before_welcome(&self, agent: &AgentId) {
        let _ = self.call(RouterCall::ReadEndings { agent: agent.clone() });
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
        self.send_notes_of_chats(agent);
        self.send_queue_stats(agent);
        self.apply(out);
        self.buddy_agent_online(agent);
    }

    /// Keeps this node's log of running chat `chat`, paired on another node: not archived
    /// here (until the caller says so), started when the cluster says it was paired.
    fn keep_log_of_remote_chat(
        &mut self,
        chat: ChatId,
        category: CategoryId,
        (customer, customer_name): (CustomerId, String),
        (agent, agent_name): (AgentId, String),
    ) {
        let cluster = self.cluster.as_ref().expect("called in a cluster only");
        let started_at = cluster.paired_at(chat).unwrap_or_else(now_ms);
        // Not a conversation the customer continues (a chat handed on through a line is
        // not told apart here: its creation, told again, is kept once by its id).
        let created_by_it = cluster.remote_conversation(customer).is_none();
        // A conversation continued: told again as its pairing told it (`decisions`).
        let continued = cluster
            .remote_conversation(customer)
            .map(|c| super::ContinuedTold {
                continued: true,
                reopened: c.reopened,
                queued_at: cluster.remote_queued_at(customer),
            })
            .unwrap_or_default();
        let (wire_id, live) = self.remote_line(chat, customer);
        self.insert_chat(
            chat,
            ChatLog {
                category,
                customer,
                agent,
                customer_name,
                agent_name,
                started_at,
                live,
                archived_here: false,
                closing_reserved: false,
                earlier_agents: Vec::new(),
                rated_before: false,
                created_by_it,
                handed_over: None,
                earlier_through_the_read: false,
                continued,
            },
        );
        self.read_status_of(wire_id.clone());
        self.chat_by_wire.insert(wire_id, chat);
    }

    /// The id and live line of chat `chat` of another node's `customer`: a conversation
    /// they continue goes on (its id, its lines after the seq their join settled on).
    pub(super) fn remote_line(
        &self,
        chat: ChatId,
        customer: CustomerId,
    ) -> (String, std::sync::Arc<crate::hub::live_chat::LiveChat>) {
        let cluster = self.cluster.as_ref().expect("called in a cluster only");
        match cluster.remote_conversation(customer).cloned() {
            Some(Continues { id, last_seq, .. }) => {
                let transcript =
                    crate::hub::transcript::Transcript::from_parts(last_seq, vec![], super::TRANSCRIPT_LIMIT);
                let live = self.new_line_from(chat, &id, transcript);
                (id, live)
            }
            None => {
                let wire_id = cluster.wire_id(chat);
                let live = self.new_line(chat, &wire_id);
                (wire_id, live)
            }
        }
    }

    /// What the customer of chat `chat`, which this node let go of when fenced, gets on
    /// resuming elsewhere, and the last seq this node recorded of it (the router adds the
    /// lines after it). `None`: not let go of here, or its customer was not held here.
    pub(super) fn let_go_visit(&self, chat: ChatId) -> Option<(LetGoVisit, u64)> {
        let kept = self.cluster.as_ref()?.let_go.get(&chat)?;
        Some((kept.ended_visit.clone()?, kept.last_seq))
    }

    /// Opens this node's log of a running chat it did not see start (its side came here
    /// from another node); its messages are read from the chat's log.
    pub(super) fn adopt_chat(&mut self, chat: ChatId) {
        if let Some(log) = self.chats.get(&chat) {
            // The customer came to the node of their agent, which logged the chat without
            // archiving it: the customer's node archives, so from now on this one does,
            // starting again with its opening and what it kept (what was said since the
            // customer's old node last archived included: a killed node archived nothing
            // after it died, a stopped one maybe not even the opening).
            if !log.archived_here && self.customers.contains_key(&log.customer) {
                self.archive_from_now_on(chat);
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
        let agent_name = self
            .agents
            .get(&agent)
            .map(|a| a.account.display_name.clone())
            .or_else(|| cluster.agent_name(&agent))
            .unwrap_or_default();
        self.keep_log_of_remote_chat(chat, category, (customer, info.name), (agent, agent_name));
        // The customer's node archives: a customer who resumed here has the chat archived
        // here from now on, its opening included (the store applies openings by id and
        // messages by (chat, seq), so what their old node wrote changes nothing).
        if self.customers.contains_key(&customer) {
            self.archive_from_now_on(chat);
        }
        self.fill(chat, 0);
    }

    pub(super) fn cluster_categories_changed(&mut self, categories: Vec<Category>, removed: Option<String>) {
        if let Some(removed) = removed {
            self.route(RoutingOp::RemoveCategory(CategoryId::from(removed)), None);
        }
        self.category_names.clear();
        for c in categories {
            self.route(RoutingOp::AddCategory(CategoryId::from(c.id.as_str())), None);
            self.category_names.insert(c.id, c.name);
        }
        // Categories that now exist again (or anew) may be held by our agents' accounts.
        let ours: Vec<(AgentId, Vec<CategoryId>)> = self
            .agents
            .iter()
            .map(|(id, a)| {
                (
                    id.clone(),
                    a.account.categories.iter().cloned().map(CategoryId::from).collect(),
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
                self.bots_node_lost(&lost, &heir);
                if lost == crate::cluster::restore::RESTORED_NODE {
                    // A restore's claim window is over: the buddies of the nodes that did
                    // not claim theirs are handed on too.
                    self.buddy_unclaimed_lost(&heir);
                }
            }
        }
        self.settle_awaiting_replica();
        // Buddy lines that waited for the replica to reach their place in the stream.
        self.buddy_lines_caught_up();
    }

    /// Applies one event to the replica and carries out its decisions for our people.
    fn replay(&mut self, event: RoutingEvent) {
        let op = match RoutingOp::from_event(&event.transition, &event.args, &event.applied.decisions) {
            Ok(op) => op,
            Err(e) => return tracing::error!(event = %event.id, error = %e, "a routing event this node cannot read"),
        };
        // Our own resume: where the customer is before it applies, for their `resumed`.
        let resumed = self.resumed_before(&op, &event.node);
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
        let at = event_time(&event.id);
        let grace = self.settings.resume_grace;
        // Before the pairings are forgotten: the category an ended chat was paired in.
        self.note_ended_chats(&out, at, &event.node);
        self.cluster_mut().note_chat_times(&out, at, grace);
        // This node was reaped (another node's `node_lost` names it): from this point of
        // the stream its people are the reaper's. It lets go of them now, before carrying
        // out anything later entries decide for them, rather than when its own next call
        // comes back `FENCED` (a node woken from a stall replays first what it missed).
        if let RoutingOp::NodeLost(lost, _) = &op
            && *lost == self.cluster_mut().link.node
            && event.node != *lost
            && self.holds_anyone()
        {
            tracing::warn!(event = %event.id, "this node was reaped by {}: letting go of its people", event.node);
            self.let_go_of_everyone();
        }
        // Our own resume of a customer, applied: their connection gets `resumed` now, with
        // where they were before anything their return decided (such as a pairing).
        if let RoutingOp::CustomerResumed(customer) = &op
            && event.node == self.cluster_mut().link.node
        {
            self.resume_applied(*customer, resumed);
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
            self.cluster_mut().inherited_waiting.remove(customer);
            self.hand_on_archiving(*customer);
        }
        // Resumed here: anything published to the node they left before this call made
        // us their holder is in the chat's log.
        if let RoutingOp::CustomerResumed(customer) = &op
            && event.node == self.cluster_mut().link.node
            && let Some(chat) = self.routing.customer_chat(*customer)
            && let Some(last) = self.chats.get(&chat).map(|log| log.live.last_seq())
        {
            self.fill(chat, last);
        }
        // An agent of ours, away, coming back (on whichever node).
        let away_here = match &op {
            RoutingOp::AgentOnline { agent, .. } | RoutingOp::AgentResumed(agent, _) => {
                self.agents.get(agent).is_some_and(|a| a.conn.is_none())
            }
            _ => false,
        };
        // A transfer's note rides in its event's arguments, not in its decisions.
        if let RoutingOp::TransferToAgent { chat, note, .. } | RoutingOp::TransferToCategory { chat, note, .. } = &op {
            self.note_transfer(*chat, note.clone(), at);
        }
        // This node's own loss, by its reaper: the chats still running are the reaper's.
        let reaped_here = matches!(&op, RoutingOp::NodeLost(lost, _) if *lost == self.cluster_mut().link.node)
            && event.node != self.cluster_mut().link.node;
        let mut orphan = None;
        let cluster = self.cluster_mut();
        // The sign-in an agent's call of this node names (`sign_ins`); another node's
        // names none of this node's.
        let named = match &op {
            RoutingOp::AgentOnline { sign_in, .. }
            | RoutingOp::AgentResumed(_, sign_in)
            | RoutingOp::AgentDisconnected(_, sign_in)
            | RoutingOp::AgentOffline(_, sign_in)
                if event.node == cluster.link.node =>
            {
                sign_ins::named(&cluster.link.nonce, sign_in.as_deref())
            }
            _ => sign_ins::Named::Nobody,
        };
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
                request,
                name,
                video,
                message,
                profile,
                continues,
                token_key,
                ..
            } => {
                let customer = customer.expect("a join names its customer");
                let made_here = request
                    .strip_prefix(cluster.link.nonce.as_str())
                    .and_then(|rest| rest.strip_prefix(':'))
                    .and_then(|rest| rest.split_once(':'))
                    .and_then(|(conn, _join)| conn.parse().ok())
                    .map(ConnId);
                let ours = made_here
                    // Not the join of a later request of that connection.
                    .filter(|conn| {
                        cluster
                            .pending_joins
                            .get(conn)
                            .is_some_and(|join| join.request == request)
                    })
                    .and_then(|conn| cluster.pending_joins.remove(&conn).map(|join| (conn, join)));
                match ours {
                    Some((conn, mut join)) => {
                        // Their wait runs from the join's time in the events stream, as
                        // on every other node (and as the pairing's `started_at`): one clock.
                        join.queued_at = at;
                        let settled = continues.as_ref().map(|c| c.last_seq);
                        if let Some(continues) = continues {
                            cluster.own_continues.insert(customer, continues);
                        }
                        return self.bind_join(conn, customer, join, settled, out);
                    }
                    None => {
                        cluster.remote_customers.insert(
                            customer,
                            RemoteCustomer {
                                name,
                                video,
                                queued_at: at,
                                first_message: Some(message).filter(|m| !m.is_empty()),
                                profile: *profile,
                                continues,
                                token_key,
                            },
                        );
                        // A join of this process it had already refused (Redis lost its
                        // data, or its answer never came within `JOIN_KEPT_MAX`): a
                        // customer nobody holds, who would keep an agent's chat with no
                        // one. They leave at once.
                        if made_here.is_some() && event.node == cluster.link.node {
                            orphan = Some(customer);
                        }
                    }
                }
            }
            RoutingOp::AgentOnline { agent, .. } | RoutingOp::AgentResumed(agent, _)
                if event.node == cluster.link.node
                    && sign_ins::welcomes(cluster.awaiting_welcome.get(&agent).copied(), named) =>
            {
                cluster.awaiting_welcome.remove(&agent);
                return self.welcome_agent(&agent, out);
            }
            RoutingOp::AgentOnline { agent, .. } | RoutingOp::AgentResumed(agent, _)
                if event.node != cluster.link.node && away_here =>
            {
                // Back on another node within their grace period: held there now.
                self.let_go_of_agent(&agent);
            }
            RoutingOp::SetAvailable(agent, _)
            | RoutingOp::SetStatus(agent, ..)
            | RoutingOp::SetLimit(agent, _)
            | RoutingOp::SetCategories(agent, _) => {
                self.apply(out);
                if self.agents.contains_key(&agent) {
                    self.send_profile(&agent);
                    self.send_queue_stats(&agent);
                }
                return;
            }
            RoutingOp::AgentGraceExpired(agent, _) | RoutingOp::AgentOffline(agent, _) => {
                // Decisions first: they name the agent, whose info tells a lapse from a disabling.
                self.apply(out);
                let held = self.agents.get(&agent).and_then(|a| a.sign_in);
                if self.routing.agent(&agent).is_none() && sign_ins::lets_go(held, named) {
                    match named {
                        // A take-back of this sign-in's coming online: its desk, if its
                        // refusal has not closed it yet, closes now (welcomed or not).
                        sign_ins::Named::Here(_) => self.drop_taken_back(&agent),
                        _ => {
                            self.agents.remove(&agent);
                        }
                    }
                }
                return;
            }
            RoutingOp::AgentDisconnected(agent, _) => {
                self.apply(out);
                // Only a desk still open: one whose page already closed stays the away
                // agent's record here (their chats' logs are let go of when they come
                // back elsewhere).
                let open_desk = self.agents.get(&agent).filter(|a| a.conn.is_some());
                if open_desk.is_some_and(|a| sign_ins::ends_desk(a.sign_in, named)) {
                    // The take-back of this sign-in's coming back: away in Redis, the
                    // desk held for it (a second tab welcomed on its strength) closes,
                    // as its refusal would close it.
                    self.drop_taken_back(&agent);
                }
                return;
            }
            RoutingOp::NodeLost(lost, _) if event.node == cluster.link.node => {
                // The handed-over customers' chats are archived here from now on.
                let inherited = self.inherited_chats(&out);
                let waiting = self.inherited_waiting(&out);
                self.apply(out);
                for chat in inherited {
                    self.inherit_archiving(chat);
                }
                // And the chats its waiting customers go on in (handed to a category).
                for customer in waiting {
                    self.inherit_continuing(customer);
                    self.cluster_mut().inherited_waiting.insert(customer);
                }
                // And the closings of the chats it ended lately, which it may not have stored.
                self.close_ended_by(&lost, at);
                return;
            }
            _ => {}
        }
        self.apply(out);
        if reaped_here && let Some(cluster) = self.cluster.as_mut() {
            cluster.let_go_to_the_reaper(&self.routing);
        }
        if let Some(customer) = orphan {
            tracing::warn!(
                customer = customer.0,
                "a join refused here was applied: its customer leaves"
            );
            self.route(RoutingOp::Leave(customer), None);
        }
    }

    /// An agent away from this node came back on another: this node no longer holds them,
    /// nor keeps the logs of their chats with customers it does not hold.
    fn let_go_of_agent(&mut self, agent: &AgentId) {
        self.agents.remove(agent);
        // A chat this node archives stays: after a node's loss its reaper archives the
        // lost customer's chat (`cluster::handover`), and must go on when the agent moves.
        let theirs: Vec<ChatId> = self
            .chats
            .iter()
            .filter(|(_, log)| &log.agent == agent && !log.archived_here && !self.customers.contains_key(&log.customer))
            .map(|(chat, _)| *chat)
            .collect();
        for chat in theirs {
            self.drop_chat_log(chat);
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

    /// Publishes typing in the buddy chat `chat` (wire id) to `nodes`; false when the
    /// router's queue is full (the flag is dropped, as a lost one would be).
    pub(in crate::hub) fn buddy_typing_call(&self, nodes: Vec<String>, chat: String, from: u64, active: bool) -> bool {
        self.call(RouterCall::BuddyTyping {
            nodes,
            chat,
            from,
            active,
        })
    }

    /// The routing events stream's entry this node's replica has applied last.
    pub(in crate::hub) fn buddy_applied(&self) -> crate::core::presence::stamps::EntryId {
        self.cluster
            .as_ref()
            .and_then(|c| crate::core::presence::stamps::EntryId::parse(&c.last_event))
            .unwrap_or_default()
    }

    /// Sends a buddy chat message to be stamped in its chat's log; false when the router's
    /// queue is full.
    pub(in crate::hub) fn buddy_stamp_call(&self, message: BuddyOutgoing) -> bool {
        self.call(RouterCall::BuddyStamp(Box::new(message)))
    }

    /// Publishes a kept buddy line to `nodes`.
    pub(in crate::hub) fn buddy_publish_call(&self, nodes: Vec<String>, line: BuddyLine) -> bool {
        self.call(RouterCall::BuddyPublish { nodes, line })
    }

    /// A buddy chat is over and archived: its log and seq counter go a day later.
    pub(in crate::hub) fn buddy_expire_call(&self, chat: String) -> bool {
        self.call(RouterCall::BuddyExpire { chat })
    }

    /// Reads a buddy chat's log after `after`; the answer comes as `Command::BuddyLogRead`.
    pub(in crate::hub) fn buddy_read_call(&self, chat: String, after: u64) -> bool {
        self.call(RouterCall::BuddyRead { chat, after })
    }

    /// Reads each buddy chat of `chats` (wire id) again after its seq, with every chat's
    /// (`Command::BuddyLogReread`): outside the router's queue, so none is dropped.
    pub(in crate::hub) fn buddy_reread(&self, chats: Vec<(String, u64)>) {
        if let Some(cluster) = &self.cluster {
            cluster.reread(chats.into_iter().map(|(chat, after)| (Log::Buddy(chat), after)));
        }
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
