//! The service desk adapter: customers and agents, around the routing core.
//!
//! It turns connections and frames into routing events, and routing decisions
//! into frames, timers and archive events. It holds what the core leaves out:
//! names, resume tokens, chat transcripts for resume, wire ids.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

// ---- several nodes through Redis: the hub on the routing scripts ----
mod cluster;
// ---- agents; carrying out decisions ----
mod agents;
// ---- customers' frames: joining, resuming, chatting ----
mod customers;
mod decisions;
// ---- transfers: an agent hands a chat on ----
mod transfers;
// ---- internal notes on a chat, for agents only ----
mod notes;
// ---- conversations' statuses: opened, moved, resolved, set by agents ----
pub(super) mod conversation_status;
// ---- transcripts by mail: a customer's ask in their chat ----
mod transcripts;
// ---- a customer continuing an earlier conversation ----
pub(super) mod continuing;
// ---- a customer's identity, as the embedding site vouches for it ----
mod identified;
// ---- an agent writing to a customer who is not there ----
pub(super) mod follow_up;
// ---- agent bots: a category's bot talks to its customers first ----
pub(super) mod bots;

use super::buddy::desk::BuddyDesk;
use super::delivery::{ConnHandle, ConnId, Delivery, LocalDelivery, Outbound, Recipient, SenderCopy};
use super::live_chat::{self, LiveChat};
use super::transcript::{Author, Stamped, Transcript};
use super::{CategoryNames, Command, ConnRole, SessionEnd, after};
use crate::archive::Archive;
use crate::auth::Sessions;
use crate::clock::now_ms;
use crate::cluster::replica::RoutingOp;
use crate::config::Settings;
use crate::core::routing::{
    AWAY_REASON_MAX_CHARS, AgentId, AgentStanding, AgentStatus, CategoryId, ChatId, CustomerId, Decision, OfferId,
    Party, Routing, RoutingError,
};
use crate::protocol::{CategoryRef, ChatSnapshot, ClientFrame, ServerFrame};
use crate::routing_modes::StoredMode;
use crate::store::{Account, Category};

/// Messages kept per chat for replay on resume; older ones are only in the archive.
const TRANSCRIPT_LIMIT: usize = 1_000;
/// Longest display name, in characters.
const MAX_NAME_CHARS: usize = 100;

/// Close codes the hub uses besides the standard ones.
pub mod close {
    /// Another connection took over this customer or agent.
    pub const REPLACED: u16 = 4000;
    /// An admin disabled the account.
    pub const DISABLED: u16 = 4003;
    /// The session the connection was opened with was revoked or expired: sign in again.
    pub const SESSION_ENDED: u16 = 4001;
}

/// Live figures for admins.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Figures {
    /// Agents connected now (not those dropped and within their grace period).
    pub agents_online: usize,
    /// Agents who can take a chat now: connected, available and below their limit.
    pub agents_available: usize,
    /// Agents connected and available but at their limit.
    pub agents_full: usize,
    /// Each agent the hub holds (connected, or dropped within the grace period), by id.
    pub agents: Vec<AgentFigure>,
    pub customers_connected: usize,
    /// Category id → customers waiting.
    pub customers_waiting: BTreeMap<String, usize>,
    pub chats_active: usize,
    /// Seconds the longest-waiting customer has waited, 0 when nobody waits.
    pub longest_wait_secs: f64,
    /// Category id → seconds its longest-waiting customer has waited (categories where
    /// someone waits; on several nodes, customers on every node since this node started).
    pub longest_wait_by_category: BTreeMap<String, f64>,
    pub buddies_online: usize,
}

/// One online agent, as the admin's dashboard shows them.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AgentFigure {
    /// The account id (the admin's agent list names it).
    pub id: String,
    /// `available` (can take a chat now), `full` (at their limit), `away` (set away),
    /// `busy` (finishing their chats, taking no new one) or `disconnected` (dropped,
    /// within the grace period).
    pub state: &'static str,
    /// Why they are away, as they said.
    pub away_reason: Option<String>,
    /// Chats open now.
    pub chats: usize,
    /// Their limit of chats at once.
    pub limit: u8,
}

struct ConnEntry {
    handle: ConnHandle,
    role: ConnRole,
    /// Whom this connection speaks for, once known.
    who: Option<Recipient>,
}

struct CustomerInfo {
    name: String,
    token: Token,
    queued_at: i64,
    conn: Option<ConnId>,
    /// Asked for a video call: their agent's `chat_started` says so.
    video: bool,
    /// What they said they came about (`join.message`), for an agent offered them.
    first_message: Option<String>,
    /// What they told about themselves when joining (kept with their conversations).
    profile: crate::store::CustomerProfile,
    /// The earlier conversation they continue, until their chat opens as it.
    continues: Option<Box<continuing::Continued>>,
}

/// What a customer whose chat ended while they were away gets on resume.
#[derive(Clone)]
pub(super) struct EndedVisit {
    name: String,
    chat: ChatSnapshot,
    ended: ServerFrame,
    /// Holds every line of the chat: at once on one node; in a cluster once the router
    /// has read the chat's log after the end (`Command::EndedVisitRead`), as lines stamped
    /// elsewhere before the end may reach this node after it (or, its log taken on for a
    /// resume, be still on their way in its first read).
    complete: bool,
    /// When its grace period ends (`Command::ForgetEndedVisit`): how long Redis is to keep
    /// it when this node records it there again (after Redis lost its data).
    until: tokio::time::Instant,
}

struct AgentInfo {
    account: Account,
    conn: Option<ConnId>,
    /// In a cluster, the sign-in (the connection) whose coming online (or back) holds the
    /// agent here: a take-back of another sign-in's leaves them (`cluster::sign_ins`).
    /// `None` on one node.
    sign_in: Option<ConnId>,
}

struct ChatLog {
    category: CategoryId,
    customer: CustomerId,
    agent: AgentId,
    customer_name: String,
    agent_name: String,
    started_at: i64,
    /// Its transcript, and its connections while its messages take the direct path: read
    /// and changed through [`LiveChat::line`], which makes the hub the chat's owner again.
    live: Arc<LiveChat>,
    /// This node archives the chat (its opening, messages and closing): always on one
    /// node; in a cluster, the customer's node only.
    archived_here: bool,
    /// This node's archive queued the chat's opening and holds a slot for its closing
    /// (`archive::room`): given back if another node archives the chat from now on.
    closing_reserved: bool,
    /// The agents who had the chat before its agent now, as this node saw it handed on
    /// (each with the last seq said then), those its `chat_started` named when it reached
    /// them included (a continued conversation's earlier agents): the new agent's page
    /// names their lines.
    earlier_agents: Vec<crate::protocol::EarlierAgent>,
    /// The conversation was rated before this chat (a customer continuing it): a
    /// conversation is rated once, so its end offers no rating again.
    rated_before: bool,
    /// The conversation was created by this chat's pairing (not continued from an earlier
    /// one, nor handed on through a line): a node that archives it as well tells webhooks
    /// of its creation (`Archive::push_handover_opening`).
    created_by_it: bool,
    /// How the chat reached its agent now when it was handed to them (`chat_started`'s
    /// `transfer`): their snapshots carry it.
    handed_over: Option<crate::protocol::TransferNote>,
    /// In a cluster, the chat was handed to an agent of this node, which kept no log of it:
    /// where the earlier agent's lines end is the chat's log as read on adopting it (its
    /// agent cannot have written before), set when that read lands (`chat_lines`).
    earlier_through_the_read: bool,
    /// What its agent's `chat_started` said of a conversation continued: their snapshots
    /// say it again.
    continued: ContinuedTold,
}

/// A continued conversation as its agent is told it (`chat_started`'s `continued`,
/// `reopened` and `queued_at`); all unset for any other chat.
#[derive(Debug, Clone, Copy, Default)]
struct ContinuedTold {
    continued: bool,
    reopened: bool,
    /// When the customer joined the line this time.
    queued_at: Option<i64>,
}

impl ChatLog {
    /// The chat's id on the wire (its `LiveChat`'s, the one copy).
    fn wire_id(&self) -> &str {
        &self.live.wire_id
    }
}

pub(crate) struct HubState {
    pub(super) settings: Arc<Settings>,
    routing: Routing,
    pub(super) delivery: LocalDelivery,
    conns: HashMap<ConnId, ConnEntry>,
    /// Boxed: an entry is ~200 bytes and the table keeps up to twice the slots it fills,
    /// which for a hub full of waiting customers cost more than the entries themselves.
    customers: HashMap<CustomerId, Box<CustomerInfo>>,
    tokens: HashMap<Token, CustomerId>,
    /// Uploaded files: a message's attachments are checked against their records.
    attachments: crate::attachments::Attachments,
    agents: HashMap<AgentId, AgentInfo>,
    chats: HashMap<ChatId, ChatLog>,
    chat_by_wire: HashMap<String, ChatId>,
    /// Conversations agents write into while their customers are away (`follow_up`).
    follow_ups: follow_up::Table,
    /// Lines to away customers stamped here the archive may not hold yet (several nodes).
    unstored_lines: follow_up::Unstored,
    /// Their lines by mail to customers with an email on file (`conversations::follow_up_mail`).
    follow_up_mail: crate::conversations::follow_up_mail::FollowUpMail,
    category_names: CategoryNames,
    pub(super) archive: Archive,
    pub(super) timers: mpsc::WeakSender<Command>,
    /// Live sessions, checked when a staff connection registers.
    sessions: Sessions,
    dirty_waiting: BTreeSet<CategoryId>,
    /// Something may have changed whether a category is open or staffed: look at the next flush.
    desk_dirty: bool,
    /// What this node's waiting customers of each category were last told of it (open,
    /// someone to answer); only categories where someone waits.
    desk_told: HashMap<CategoryId, (bool, bool)>,
    /// The `offer` frames this node sent for offers standing, with their deadlines: a
    /// connection that takes over from another tab gets them again (`resend_offers`).
    /// (The customer offered, the frame, its deadline.)
    offers_told: HashMap<OfferId, (CustomerId, ServerFrame, tokio::time::Instant)>,
    /// The note of the transfer whose decisions are being carried out (they do not carry it).
    /// (The chat, the note, when the transfer was applied: the stream's time on several
    /// nodes, so that every node that records it records the same `at`, kept once.)
    transfer_note_now: Option<(ChatId, String, i64)>,
    /// Chats handed to a category's line, until paired again: who handed them on, the note.
    transfer_notes: HashMap<ChatId, transfers::PendingTransfer>,
    /// The logs of chats whose customer waits in a line after a transfer to a category,
    /// kept by the node that archives them until they are paired again or leave.
    continuing: HashMap<ChatId, ChatLog>,
    /// Join and pairing times, handle times: estimates and longest waits.
    waits: super::waits::Waits,
    /// How agents' chats ended lately, for their next welcome (on several nodes, in Redis too).
    ended_away: super::ended_away::EndedAway,
    pub(super) buddies: BuddyDesk,
    /// What the direct path shares (`live_chat`): the acknowledgements waiting on the
    /// archive (the hub's too), and the chats the hub suspended during its batch.
    pub(super) direct: Arc<live_chat::Shared>,
    /// Open connections by role (customer, agent, buddy, bot), for the metrics.
    conn_counts: [usize; 4],
    /// Agent bots: who is connected, categories' bots, customers talking to one.
    bots: bots::BotDesk,
    /// Resume token → a chat that ended while its customer was away; kept for the grace period.
    ended_visits: HashMap<String, EndedVisit>,
    /// Counted once per message: a handle resolved once, not a registry lookup each time.
    pub(super) messages_relayed: metrics::Counter,
    routes_counter: metrics::Counter,
    /// Conversations' changes, in order, to the store (`conversations::writer`).
    conversation_writer: crate::conversations::writer::Writer,
    // ---- several nodes through Redis ----
    /// With `REDIS_URL`: routing runs as Redis scripts and `routing` is this node's replica.
    cluster: Option<cluster::ClusterState>,
    /// The admin bus, on several nodes: what this node stamps for an agent connected
    /// elsewhere goes there (`AdminChange::Line`).
    bus: Option<crate::cluster::node::Cluster>,
}

impl Drop for HubState {
    /// The direct path ends with the hub, even one that panicked: no connection relays a
    /// message nobody would acknowledge, and no chat keeps the archive's handle alive.
    fn drop(&mut self) {
        for log in self.chats.values().chain(self.continuing.values()) {
            log.live.withdraw();
        }
    }
}

/// Who sent a frame, once the connection is known.
enum Sender {
    Customer(CustomerId),
    Agent(AgentId),
}

impl HubState {
    /// This hub with the admin bus of its cluster (none on one node), and its agents'
    /// endings kept in that cluster's Redis too.
    pub(super) fn with_bus(mut self, bus: Option<crate::cluster::node::Cluster>) -> Self {
        if let Some(cluster) = &bus {
            self.ended_away = super::ended_away::EndedAway::shared(cluster);
        }
        self.bus = bus;
        self
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        settings: Arc<Settings>,
        attachments: crate::attachments::Attachments,
        categories: Vec<Category>,
        archive: Archive,
        sessions: Sessions,
        timers: mpsc::WeakSender<Command>,
        link: Option<super::cluster::link::Link>,
        direct: Arc<live_chat::Shared>,
        conversation_writer: crate::conversations::writer::Writer,
    ) -> Self {
        let mut routing = Routing::new();
        let mut category_names = CategoryNames::new();
        let cluster = link.map(cluster::ClusterState::new);
        for c in categories {
            // A cluster's replica learns categories from the events stream, like everything else.
            if cluster.is_none() {
                let _ = routing.add_category(CategoryId::from(c.id.as_str()));
            }
            category_names.insert(c.id, c.name);
        }
        Self {
            settings,
            attachments,
            routing,
            delivery: LocalDelivery::default(),
            conns: HashMap::new(),
            customers: HashMap::new(),
            tokens: HashMap::new(),
            agents: HashMap::new(),
            chats: HashMap::new(),
            chat_by_wire: HashMap::new(),
            follow_ups: HashMap::new(),
            unstored_lines: Default::default(),
            follow_up_mail: Default::default(),
            category_names,
            archive,
            timers,
            sessions,
            dirty_waiting: BTreeSet::new(),
            desk_dirty: false,
            desk_told: HashMap::new(),
            offers_told: HashMap::new(),
            transfer_note_now: None,
            transfer_notes: HashMap::new(),
            continuing: HashMap::new(),
            waits: super::waits::Waits::default(),
            ended_away: super::ended_away::EndedAway::default(),
            buddies: BuddyDesk::default(),
            direct,
            conn_counts: [0; 4],
            bots: bots::BotDesk::default(),
            ended_visits: HashMap::new(),
            messages_relayed: metrics::counter!(crate::metrics::MESSAGES_RELAYED),
            routes_counter: metrics::counter!(crate::metrics::ROUTES),
            conversation_writer,
            cluster,
            bus: None,
        }
    }

    pub(super) fn handle(&mut self, command: Command) {
        self.refresh_pairing_room();
        match command {
            Command::Register { conn, role } => self.register(conn, role),
            Command::Frame { conn, frame } => {
                self.frame(conn, frame);
                // Its next messages may take the direct path again (`live_chat::may_relay`).
                if let Some(entry) = self.conns.get(&conn) {
                    entry.handle.outbox.handled_by_hub();
                }
            }
            Command::Unregister { conn } => self.unregister(conn),
            Command::CustomerGraceExpired { customer, epoch } if self.cluster.is_some() => {
                self.route(RoutingOp::CustomerGraceExpired(customer, epoch), None);
            }
            Command::AgentGraceExpired { agent, epoch } if self.cluster.is_some() => {
                self.route(RoutingOp::AgentGraceExpired(agent, epoch), None);
            }
            Command::CustomerGraceExpired { customer, epoch } => {
                let mut out = vec![];
                self.routing.customer_grace_expired(customer, epoch, &mut out);
                self.apply(out);
            }
            Command::AgentGraceExpired { agent, epoch } => {
                let mut out = vec![];
                self.routing.agent_grace_expired(&agent, epoch, &mut out);
                // Decisions first: they name the agent, whose info tells a lapse from a disabling.
                self.apply(out);
                if self.routing.agent(&agent).is_none() {
                    self.agents.remove(&agent);
                }
            }
            Command::OfferExpired { offer } if self.cluster.is_some() => {
                // The replica lags Redis only: an offer gone here is gone there (ids are
                // never reused), and its expiry would only add an event.
                if self.routing.offer(offer).is_some() && !self.route(RoutingOp::OfferExpired(offer), None) {
                    // The router's queue is full: try again shortly, or the offer would stand untimed.
                    after(
                        &self.timers,
                        std::time::Duration::from_secs(1),
                        Command::OfferExpired { offer },
                    );
                }
            }
            Command::OfferExpired { offer } => {
                let mut out = vec![];
                self.routing.offer_expired(offer, &mut out);
                self.apply(out);
            }
            Command::NotesLoaded { agent, chat_id, notes } => self.notes_loaded(&agent, chat_id, notes),
            Command::ContinueLoaded { conn, asked, found } => self.continue_loaded(conn, *asked, found),
            Command::BotTicket { conn, found } => self.bot_ticket_found(conn, *found),
            Command::LostBotStages(tickets) => self.lost_stages_ended(tickets),
            Command::BotAsked { bot, conn, nodes } => self.bot_asked(&bot, conn, nodes),
            Command::BotTakenOver { bot, to } => self.bot_taken_over(&bot, to),
            Command::BotHeld { bot, from, views } => self.bot_held(&bot, &from, views),
            Command::BotWelcomeDue { bot, conn } => self.bot_welcome_due(&bot, conn),
            Command::BotReplyTimeout { chat_id, epoch } => self.bot_reply_timeout(&chat_id, epoch),
            Command::CategoryBot { category, bot } => self.category_bot(category, bot),
            Command::ApiTokensRevoked { ids } => self.bot_tokens_revoked(ids),
            Command::BotHook { bot, hook } => self.bot_hook(bot, hook),
            Command::BotCallFailed { bot, chat_id } => self.bot_call_failed(&bot, &chat_id),
            Command::BotFound {
                conn,
                asked,
                bot,
                found,
            } => self.bot_found(conn, *asked, bot, found),
            Command::RemoteBotFrame {
                from,
                bot,
                chat_id,
                frame,
            } => self.remote_bot_frame(from, &bot, &chat_id, frame),
            Command::RemoteBotGone { bot, node } => self.remote_bot_gone(&bot, &node),
            Command::BotForwarder(forwarder) => self.bots_forwarder(forwarder),
            Command::BotSocketsAgain => self.bot_sockets_again(),
            Command::BotStagesAgain => self.bot_stages_again(),
            Command::BotAct {
                bot,
                chat_id,
                act,
                reply,
            } => {
                let _ = reply.send(self.bot_act(None, &bot, &chat_id, act));
            }
            Command::LateLinesRead { customer, id, lines } => self.late_lines_read(customer, &id, lines),
            Command::ContinuingReadForResume { customer, found } => self.continuing_read_for_resume(customer, found),
            Command::ArchiveReadForResume { chat, lines } => self.archive_read_for_resume(chat, lines),
            Command::IdentityChecked { conn, asked } => self.identity_checked(conn, *asked),
            Command::FollowUpRead { id, read } => self.follow_up_read(id, read),
            Command::FollowUpSeq { id, asked, drawn } => self.follow_up_seq(id, *asked, drawn),
            Command::LineByMail {
                conversation,
                text,
                files,
                outcome,
            } => self.line_by_mail(conversation, (text, files), outcome),
            Command::AnswerByMail {
                agent,
                conversation,
                text,
            } => self.line_from_elsewhere(AgentId(agent), conversation, text),
            Command::ConversationChanged { record, woken } => self.conversation_changed(record, woken),
            Command::SetConversationStatus {
                by,
                id,
                status,
                until,
                reply,
            } => self.set_conversation_status_asked(&by, id, &status, until, reply),
            Command::ConversationStatusRead { record } => self.conversation_status_read(record),
            Command::ConversationLive { id, reply } => {
                let _ = reply.send(self.conversation_live(&id));
            }
            Command::ConversationStatusAnswer {
                conn,
                asker,
                client_id,
                answer,
            } => self.conversation_status_answer(conn, asker, client_id, answer),
            Command::CategoryModes { wanted } => self.set_category_modes(wanted),
            Command::BuddyGraceExpired { buddy, epoch } => self.buddy_grace_expired(buddy, epoch),
            Command::BuddyStamped { conn, line } => self.buddy_stamped(conn, line),
            Command::BuddyLogRead { chat, read } => self.buddy_log_read(chat, read),
            Command::BuddyLogReread { chat, read } => self.buddy_log_reread(chat, read),
            Command::ForgetEndedVisit { token } => {
                self.ended_visits.remove(&token);
            }
            Command::EndedVisitRead { token, late } => self.ended_visit_read(&token, late),
            // The pause ends (dropped) once the change is applied.
            Command::AccountChanged { account, pause: _pause } => self.account_changed(account),
            Command::CategoriesChanged { categories, removed } => self.categories_changed(categories, removed),
            Command::Figures { reply } => {
                let _ = reply.send(self.figures());
            }
            Command::OpenCategories { wanted, read_at } => self.open_categories(wanted, read_at),
            Command::Desk { reply } => {
                let desk = self
                    .routing
                    .waiting_counts()
                    .map(|(c, _)| {
                        let (open, agents_online) = self.desk_of(c);
                        super::DeskCategory {
                            id: c.0.to_string(),
                            open,
                            agents_online,
                            bot: self.bot_reach(c),
                        }
                    })
                    .collect();
                let _ = reply.send(desk);
            }
            Command::SessionsEnded {
                tokens,
                why,
                pause: _pause,
            } => self.sessions_ended(&tokens, why),
            // ---- rooms and 1-to-1 video ----
            Command::ChatOfCustomerToken { token, reply } => {
                let _ = reply.send(self.chat_of_customer_token(&token));
            }
            Command::IsAgentsChat {
                agent,
                chat_id,
                buddy,
                reply,
            } => {
                let yes = if buddy {
                    self.is_buddy_chat_of(&agent, &chat_id)
                } else {
                    self.is_agents_chat(agent, &chat_id)
                };
                let _ = reply.send(yes);
            }
            Command::ChatOfCustomer { customer, reply } => {
                let _ = reply.send(self.chat_of_customer(customer));
            }
            Command::ChatCustomer { agent, chat_id, reply } => {
                let _ = reply.send(self.chat_of(&agent, &chat_id).map(|(_, name)| name));
            }
            Command::VideoInvite {
                agent,
                chat_id,
                room_id,
                link,
                reply,
            } => {
                let customer = self.chat_of(&agent, &chat_id).map(|(customer, _)| customer);
                if let Some(customer) = customer {
                    let frame = ServerFrame::VideoInvite { chat_id, room_id, link };
                    self.send(Recipient::Customer(customer), &frame);
                }
                let _ = reply.send(customer.is_some());
            }
            Command::AgentFrame { agent, frame } => {
                for conn in self.delivery.connections(&Recipient::Agent(AgentId(agent))) {
                    conn.send(Outbound::Frame(frame.clone().into()));
                }
            }
            Command::ChatRated { agent, chat_id, rating } => {
                let frame = ServerFrame::ChatRated {
                    chat_id,
                    score: rating.score,
                    scale: rating.scale,
                    comment: rating.comment,
                };
                self.send(Recipient::Agent(AgentId(agent)), &frame);
            }
            // ---- several nodes through Redis ----
            Command::ClusterStarted { cluster_id } => self.cluster_started(&cluster_id),
            Command::RoutingEvents { events, agent_names } => self.routing_events(events, agent_names),
            Command::ClusterRefused {
                conn,
                who,
                code,
                message,
                client_id,
                call,
            } => self.cluster_refused(conn, who, (code, message), client_id, call),
            Command::ClusterFenced => self.cluster_fenced(),
            Command::ClusterDataLost => self.cluster_data_lost(),
            Command::RoutingReload {
                state,
                last_event,
                restored,
            } => {
                self.routing_reload(state, last_event, restored);
                if restored {
                    // Its buddy list comes next (`BuddiesRestored`).
                    self.buddy_lines_await_restore();
                } else {
                    self.buddy_lines_caught_up();
                }
            }
            Command::BuddiesRestored(snapshot) => {
                self.restore_loaded(*snapshot);
                self.buddy_lines_restored();
            }
            Command::EveryClaimIn => self.every_claim_in(),
            Command::ChatLines { lines } => self.chat_lines(lines),
            Command::ChatLogRead { chat, read } => self.chat_log_read(chat, read),
            Command::ChatSentAgain { sent, line } => self.chat_sent_again(&sent, line),
            Command::ChatClosingLines { chat, read } => self.chat_closing_lines(chat, read),
            Command::ChatSignal(signal) => self.chat_signal(signal),
            Command::ChatResync => self.chat_resync(),
            Command::TokenFound {
                conn,
                token,
                customer,
                ended_visit,
                last_seq,
                stream_at,
            } => {
                let found = cluster::resume::FoundToken {
                    conn,
                    token,
                    customer,
                    ended_visit,
                    last_seq,
                };
                self.token_found(found, stream_at)
            }
            Command::AgentEndingsRead { agent, entries } => self.ended_away.absorb(&agent, &entries),
        }
    }

    // ---- rooms and 1-to-1 video ----
    /// The customer and their name of `agent`'s live chat `chat_id` (its wire id).
    fn chat_of_customer_token(&self, token: &str) -> Option<String> {
        let customer = self.tokens.get(&Token::parse(token)?)?;
        self.chat_of_customer(*customer)
    }

    /// Whether `wire` is a live chat of `agent`'s: one with a log here, else (both sides on
    /// other nodes) one of theirs in routing named so.
    fn is_agents_chat(&self, agent: String, wire: &str) -> bool {
        if self.chat_of(&agent, wire).is_some() {
            return true;
        }
        let Some(cluster) = self.cluster.as_ref().filter(|c| c.wire_id_namespace().is_some()) else {
            return false;
        };
        let chats = self.routing.agent(&AgentId(agent)).map(|a| a.chats).unwrap_or_default();
        chats.into_iter().any(|chat| cluster.wire_id(chat) == wire)
    }

    /// The wire id of `customer`'s live chat: from its log here, else (a chat whose sides
    /// are both on other nodes) as every node names it.
    fn chat_of_customer(&self, customer: CustomerId) -> Option<String> {
        let chat = self.routing.customer_chat(customer)?;
        if let Some(log) = self.chats.get(&chat) {
            return Some(log.wire_id().to_string());
        }
        let cluster = self.cluster.as_ref()?;
        cluster.wire_id_namespace().is_some().then(|| cluster.wire_id(chat))
    }

    fn chat_of(&self, agent: &str, chat_id: &str) -> Option<(CustomerId, String)> {
        let log = self.chats.get(self.chat_by_wire.get(chat_id)?)?;
        (log.agent.0 == agent).then(|| (log.customer, log.customer_name.clone()))
    }

    /// Tells routing how many chats the archive has room to open (each opening and its
    /// closing); customers it cannot pair stay queued and are paired as the room grows.
    pub(super) fn refresh_pairing_room(&mut self) {
        // A cluster's routing opens chats without the archive's room (docs/cluster.md §11).
        if self.cluster.is_some() {
            return;
        }
        // A standing offer holds the room of the chat it opens when accepted.
        let room = self
            .archive
            .openings_available()
            .saturating_sub(self.routing.offers_standing());
        let mut out = vec![];
        self.routing.set_pairing_room(Some(room), &mut out);
        self.apply(out);
    }

    // ---- connections ------------------------------------------------------

    fn register(&mut self, conn: ConnHandle, role: ConnRole) {
        let id = conn.id;
        if let Some(ended) = self.session_ended_before_registering(&role) {
            // Never registered, so it speaks for nobody and replaces no live desk of the agent;
            // its task's unregistering, once it has closed, finds nothing to undo.
            tracing::info!(
                conn = id.0,
                reason = ended.close_reason(),
                "closing a connection whose session ended before it registered"
            );
            return conn.send(Outbound::Close(close::SESSION_ENDED, ended.close_reason()));
        }
        self.conn_counts[Self::role_slot(&role)] += 1;
        self.conns.insert(
            id,
            ConnEntry {
                handle: conn,
                role: role.clone(),
                who: None,
            },
        );
        match role {
            ConnRole::Customer => {}
            ConnRole::Agent(staff) => self.agent_connected(id, staff.account),
            ConnRole::Buddy { staff } => self.buddy_registered(id, staff.map(|s| s.account)),
            ConnRole::Bot(login) => self.bot_connected(id, *login),
        }
    }

    /// Why a staff connection's session is over by the time it registers, if it is. The
    /// upgrade request checked the session, but a sign-out or password change may come
    /// before the socket registers, and the hub it told had nothing to close then. Checked
    /// here, in the hub's task, there is no gap: those revoke the session before telling
    /// the hub, so a session found live here is told ended in a command after this one.
    fn session_ended_before_registering(&self, role: &ConnRole) -> Option<SessionEnd> {
        let staff = role.staff()?;
        if self.sessions.expires_at(&staff.session).is_some() {
            return None;
        }
        Some(if staff.session_expires <= std::time::Instant::now() {
            SessionEnd::Expired
        } else {
            SessionEnd::Revoked
        })
    }

    /// Closes every connection opened with one of these sessions. At once, not when the
    /// socket's task gets round to unregistering: from now on the connection speaks for
    /// nobody, so an agent takes no new chat through it (their chats wait out the grace
    /// period, as after a dropped connection, for them to sign in again). Revocations are
    /// rare, so a scan of the connections is cheaper than an index kept up on every connect.
    fn sessions_ended(&mut self, tokens: &[String], why: SessionEnd) {
        let ended: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, entry)| entry.role.staff().is_some_and(|s| tokens.contains(&s.session)))
            .map(|(id, _)| *id)
            .collect();
        for conn in ended {
            let who = self.conns.get_mut(&conn).and_then(|entry| entry.who.take());
            self.release(conn, who);
            tracing::info!(
                conn = conn.0,
                reason = why.close_reason(),
                "closing a connection whose session ended"
            );
            self.close_conn(conn, close::SESSION_ENDED, why.close_reason());
        }
    }

    fn unregister(&mut self, conn: ConnId) {
        let Some(entry) = self.conns.remove(&conn) else { return };
        self.conn_counts[Self::role_slot(&entry.role)] -= 1;
        match &entry.role {
            ConnRole::Bot(login) => self.bot_disconnected(conn, &login.name),
            ConnRole::Customer if entry.who.is_none() => self.bot_stage_customer_gone(conn),
            _ => {}
        }
        self.release(conn, entry.who);
    }

    /// A connection no longer speaks for `who`: as if it dropped, for routing and presence.
    fn release(&mut self, conn: ConnId, who: Option<Recipient>) {
        let mut out = vec![];
        match who {
            Some(Recipient::Customer(customer)) => {
                self.delivery.detach(&Recipient::Customer(customer), conn);
                if let Some(info) = self.customers.get_mut(&customer)
                    && info.conn == Some(conn)
                {
                    info.conn = None;
                    if self.cluster.is_some() {
                        // Their token lives on for the grace period, on every node.
                        let token = info.token.to_string();
                        self.remember_token(&token, customer, self.settings.resume_grace);
                        self.route(RoutingOp::CustomerDisconnected(customer), None);
                    } else {
                        let _ = self.routing.customer_disconnected(customer, &mut out);
                    }
                }
            }
            Some(Recipient::Agent(agent)) => {
                self.delivery.detach(&Recipient::Agent(agent.clone()), conn);
                if let Some(info) = self.agents.get_mut(&agent)
                    && info.conn == Some(conn)
                {
                    info.conn = None;
                    if self.cluster.is_some() {
                        self.route(RoutingOp::AgentDisconnected(agent.clone(), None), None);
                    } else {
                        let _ = self.routing.agent_disconnected(&agent, &mut out);
                    }
                    self.buddy_agent_offline(&agent);
                }
            }
            Some(Recipient::Buddy(buddy)) => self.buddy_unregistered(conn, buddy),
            None => {}
        }
        self.apply(out);
    }

    pub(super) fn send_to_conn(&self, conn: ConnId, frame: &ServerFrame) {
        if let Some(entry) = self.conns.get(&conn) {
            entry.handle.send(Outbound::Frame(frame.encode()));
        }
    }

    /// A frame encoded already, to one connection.
    pub(super) fn send_encoded_to_conn(&self, conn: ConnId, frame: Outbound) {
        if let Some(entry) = self.conns.get(&conn) {
            entry.handle.send(frame);
        }
    }

    pub(super) fn error_to_conn(
        &self,
        conn: ConnId,
        code: &'static str,
        message: impl Into<String>,
        client_id: Option<String>,
    ) {
        self.send_to_conn(
            conn,
            &ServerFrame::Error {
                code,
                message: message.into(),
                client_id,
            },
        );
    }

    fn send(&mut self, to: Recipient, frame: &ServerFrame) {
        self.delivery.deliver(&to, &Outbound::Frame(frame.encode()));
    }

    pub(super) fn set_who(&mut self, conn: ConnId, who: Recipient) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.who = Some(who.clone());
            self.delivery.attach(who.clone(), entry.handle.clone());
            self.suspend_chats_of(&who);
        }
    }

    /// `who` has a new connection: their chats leave the direct path until the hub's
    /// batch is done, when it joins them there.
    fn suspend_chats_of(&self, who: &Recipient) {
        match who {
            Recipient::Customer(id) => {
                if let Some(log) = self.routing.customer_chat(*id).and_then(|chat| self.chats.get(&chat)) {
                    log.live.suspend();
                }
            }
            Recipient::Agent(id) => {
                for log in self.chats.values().filter(|log| log.agent == *id) {
                    log.live.suspend();
                }
            }
            Recipient::Buddy(_) => {}
        }
    }

    /// Names who a connection is without delivering them anything yet: an agent coming
    /// online in a cluster, until their welcome (which `set_who` then follows), so no
    /// frame about their chats reaches them before the snapshot that holds it.
    pub(super) fn set_who_before_welcome(&mut self, conn: ConnId, who: Recipient) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.who = Some(who);
        }
    }

    pub(super) fn conn_role(&self, conn: ConnId) -> Option<(&ConnRole, Option<&Recipient>)> {
        self.conns.get(&conn).map(|e| (&e.role, e.who.as_ref()))
    }

    /// Closes a connection now, with a close frame.
    pub(super) fn close_conn(&mut self, conn: ConnId, code: u16, reason: &'static str) {
        if let Some(entry) = self.conns.get(&conn) {
            entry.handle.send(Outbound::Close(code, reason));
        }
    }

    // ---- frames --------------------------------------------------------------

    fn frame(&mut self, conn: ConnId, frame: ClientFrame) {
        let Some((role, who)) = self.conn_role(conn) else {
            return;
        };
        let sender = match (role, who) {
            (ConnRole::Buddy { .. }, _) => return self.buddy_frame(conn, frame),
            (ConnRole::Bot(login), _) => {
                let name = login.name.clone();
                return self.bot_frame(conn, &name, frame);
            }
            (ConnRole::Agent(_), Some(Recipient::Agent(id))) => Sender::Agent(id.clone()),
            (ConnRole::Customer, Some(Recipient::Customer(id))) => Sender::Customer(*id),
            (ConnRole::Customer, _) => return self.unjoined_customer_frame(conn, frame),
            // An agent connection another one took over, or one whose account was disabled.
            _ => {
                return self.error_to_conn(
                    conn,
                    "not_joined",
                    "this connection no longer speaks for the agent",
                    None,
                );
            }
        };
        let client_id = match &frame {
            ClientFrame::Message { client_id, .. }
            | ClientFrame::Note { client_id, .. }
            | ClientFrame::SetConversationStatus { client_id, .. } => client_id.clone(),
            _ => None,
        };
        if let Err((code, message)) = match sender {
            Sender::Customer(id) => self.customer_frame(conn, id, frame),
            Sender::Agent(id) => self.agent_frame(conn, id, frame),
        } {
            self.error_to_conn(conn, code, message, client_id);
        }
    }

    fn agent_frame(&mut self, conn: ConnId, id: AgentId, frame: ClientFrame) -> Result<(), (&'static str, String)> {
        let frame_kind = frame.kind();
        match frame {
            ClientFrame::SetAvailable { available } if self.cluster.is_some() => {
                // The profile goes out when the replica replays the change.
                let conn = self.agents.get(&id).and_then(|a| a.conn);
                self.route(RoutingOp::SetAvailable(id, available), conn);
                Ok(())
            }
            ClientFrame::SetStatus { status, reason } => {
                let status = AgentStatus::from_word(&status).ok_or_else(|| {
                    (
                        "invalid_status",
                        format!("status must be available, away or busy, not {status:?}"),
                    )
                })?;
                let reason = reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
                if reason.as_ref().is_some_and(|r| r.chars().any(char::is_control)) {
                    return Err(("invalid_reason", "an away reason is one line of text".to_string()));
                }
                if reason
                    .as_ref()
                    .is_some_and(|r| r.chars().count() > AWAY_REASON_MAX_CHARS)
                {
                    return Err((
                        "reason_too_long",
                        format!("an away reason has at most {AWAY_REASON_MAX_CHARS} characters"),
                    ));
                }
                if self.cluster.is_some() {
                    let conn = self.agents.get(&id).and_then(|a| a.conn);
                    self.route(RoutingOp::SetStatus(id, status, reason), conn);
                    return Ok(());
                }
                let mut out = vec![];
                self.routing
                    .set_status(&id, status, reason, &mut out)
                    .map_err(|e| (e.code(), e.to_string()))?;
                self.send_profile(&id);
                self.apply(out);
                Ok(())
            }
            ClientFrame::AcceptOffer { offer_id } | ClientFrame::DeclineOffer { offer_id } => {
                let accept = matches!(frame_kind, "accept_offer");
                let offer = offer_id
                    .parse()
                    .map(OfferId)
                    .map_err(|_| ("unknown_offer", format!("no offer {offer_id:?} is open for you")))?;
                if self.cluster.is_some() {
                    let conn = self.agents.get(&id).and_then(|a| a.conn);
                    let op = if accept {
                        RoutingOp::AcceptOffer(id, offer)
                    } else {
                        RoutingOp::DeclineOffer(id, offer)
                    };
                    self.route(op, conn);
                    return Ok(());
                }
                let mut out = vec![];
                let answered = if accept {
                    self.routing.accept_offer(&id, offer, &mut out)
                } else {
                    self.routing.decline_offer(&id, offer, &mut out)
                };
                answered.map_err(|e| (e.code(), e.to_string()))?;
                self.apply(out);
                Ok(())
            }
            ClientFrame::Transfer {
                chat_id,
                to_agent,
                to_category,
                category,
                note,
            } => {
                let chat = self.agent_chat(&id, Some(&chat_id))?;
                self.transfer_frame(id, chat, to_agent, to_category, category, note)
            }
            ClientFrame::Note {
                chat_id,
                text,
                client_id,
            } => {
                let chat = self.agent_chat(&id, Some(&chat_id))?;
                self.note_frame(id, chat, text, client_id)
            }
            ClientFrame::TransferTargets { chat_id } => {
                let chat = self.agent_chat(&id, Some(&chat_id))?;
                let frame = self.transfer_targets(&id, chat);
                self.send_to_conn(conn, &frame);
                Ok(())
            }
            ClientFrame::SetAvailable { available } => {
                let mut out = vec![];
                self.routing
                    .set_available(&id, available, &mut out)
                    .map_err(|e| (e.code(), e.to_string()))?;
                self.send_profile(&id);
                self.apply(out);
                Ok(())
            }
            ClientFrame::Message {
                chat_id,
                text,
                client_id,
                attachments,
            } => {
                // A conversation of theirs without a live chat: its customer is away.
                if let Some(away) = chat_id.as_ref().filter(|wire| !self.chat_by_wire.contains_key(*wire)) {
                    let files = if attachments.is_empty() {
                        Vec::new()
                    } else {
                        let sender = crate::core::attachments::Uploader::Agent(id.0.clone());
                        self.attachments.for_message(&attachments, away, &sender)?
                    };
                    return self.follow_up(conn, id, away.clone(), (text, files), client_id);
                }
                let chat = self.agent_chat(&id, chat_id.as_deref())?;
                if !attachments.is_empty() {
                    let sender = crate::core::attachments::Uploader::Agent(id.0.clone());
                    return self.relay_files(chat, (Party::Agent, conn), &sender, (text, &attachments), client_id);
                }
                self.relay(chat, (Party::Agent, conn), text, client_id)
            }
            ClientFrame::Typing { chat_id, active } => {
                let chat = self.agent_chat(&id, chat_id.as_deref())?;
                self.typing(chat, Party::Agent, active);
                Ok(())
            }
            ClientFrame::EndChat { chat_id } => {
                let chat = self.agent_chat(&id, Some(&chat_id))?;
                self.agent_ends_chat(id, chat)
            }
            ClientFrame::SetConversationStatus {
                conversation_id,
                status,
                until,
                client_id,
            } => self.set_conversation_status(
                conn,
                id,
                conversation_status::StatusAsked {
                    conversation_id,
                    status,
                    until,
                    client_id,
                },
            ),
            other => Err(not_allowed(&other, "agents")),
        }
    }

    /// The agent ends their running `chat` (which resolves its conversation).
    fn agent_ends_chat(&mut self, id: AgentId, chat: ChatId) -> Result<(), (&'static str, String)> {
        if self.cluster.is_some() {
            let conn = self.agents.get(&id).and_then(|a| a.conn);
            self.route(RoutingOp::AgentEndsChat(chat, id), conn);
            return Ok(());
        }
        let mut out = vec![];
        self.routing
            .agent_ends_chat(chat, &id, &mut out)
            .map_err(|e| (e.code(), e.to_string()))?;
        self.apply(out);
        Ok(())
    }

    /// The agent's chat named by a wire id; never a chat of someone else.
    fn agent_chat(&self, agent: &AgentId, wire: Option<&str>) -> Result<ChatId, (&'static str, String)> {
        let wire = wire.ok_or_else(|| ("bad_frame", "agents must name the chat_id".to_string()))?;
        let chat = *self
            .chat_by_wire
            .get(wire)
            .ok_or_else(|| ("unknown_chat", format!("no chat {wire:?}")))?;
        match self.routing.chat_sides(chat) {
            Some((_, owner)) if owner == agent => Ok(chat),
            _ => Err(("not_your_chat", "that chat is not yours".to_string())),
        }
    }

    /// The rules every chat message meets before it is stamped: length, content,
    /// and room in the archive (a message that could not be archived is refused, not lost).
    pub(super) fn check_message(&self, text: &str) -> Result<(), (&'static str, String)> {
        if let Some(refusal) = live_chat::text_refusal(text, self.settings.max_message_len) {
            return Err(refusal);
        }
        if !self.archive.has_room_for_message() {
            return Err(archive_behind());
        }
        Ok(())
    }

    /// Stamps, records, archives and delivers one chat message to both sides.
    fn relay(
        &mut self,
        chat: ChatId,
        (from, origin): (Party, ConnId),
        text: String,
        client_id: Option<String>,
    ) -> Result<(), (&'static str, String)> {
        self.check_message(&text)?;
        if self.cluster.is_some() {
            return self.cluster_relay(chat, (from, origin), (text, Vec::new()), (client_id, None));
        }
        self.stamp_and_deliver(chat, (from, origin), (text, Vec::new()), client_id, None)
    }

    /// A customer's answer by mail into their live chat, with the files it carried (kept
    /// already): [`Self::relay`], the line marked `via: "email"` (on several nodes, the
    /// chat's log in Redis carries the mark).
    fn relay_by_mail(
        &mut self,
        chat: ChatId,
        origin: ConnId,
        (text, files): (String, Vec<crate::attachments::AttachmentMeta>),
    ) -> Result<(), (&'static str, String)> {
        self.check_mail_line(&text, &files)?;
        let via = Some(crate::store::Via::Email);
        if self.cluster.is_some() {
            return self.cluster_relay(chat, (Party::Customer, origin), (text, files), (None, via));
        }
        self.stamp_and_deliver(chat, (Party::Customer, origin), (text, files), None, via)
    }

    /// [`Self::check_message`] for a line by mail: its text may be empty when it carries files.
    pub(super) fn check_mail_line(
        &self,
        text: &str,
        files: &[crate::attachments::AttachmentMeta],
    ) -> Result<(), (&'static str, String)> {
        if files.is_empty() {
            return self.check_message(text);
        }
        if let Some(refusal) = crate::core::attachments::text_refusal(text, self.settings.max_message_len, true) {
            return Err(refusal);
        }
        if !self.archive.has_room_for_message() {
            return Err(archive_behind());
        }
        Ok(())
    }

    /// [`Self::relay`] for a message that names files: each must be `sender`'s upload for
    /// this chat (`core::attachments`); the message carries their metadata to the peer
    /// and into the archive; in a cluster, through the chat's log as any message.
    pub(super) fn relay_files(
        &mut self,
        chat: ChatId,
        (from, origin): (Party, ConnId),
        sender: &crate::core::attachments::Uploader,
        (text, ids): (String, &[String]),
        client_id: Option<String>,
    ) -> Result<(), (&'static str, String)> {
        let wire_id = self.chats.get(&chat).expect("chats in routing have a log").wire_id();
        let files = self.checked_files(wire_id, sender, (&text, ids))?;
        self.relay_checked_files(chat, (from, origin), (text, files), client_id)
    }

    /// The files `ids` of a message `sender` sends in conversation `wire_id` (a customer
    /// chat's or a buddy chat's), as the message carries them: its text may be empty, the
    /// archive must have room, and each file must be the sender's upload for it.
    pub(super) fn checked_files(
        &self,
        wire_id: &str,
        sender: &crate::core::attachments::Uploader,
        (text, ids): (&str, &[String]),
    ) -> Result<Vec<crate::attachments::AttachmentMeta>, (&'static str, String)> {
        if let Some(refusal) = crate::core::attachments::text_refusal(text, self.settings.max_message_len, true) {
            return Err(refusal);
        }
        if !self.archive.has_room_for_message() {
            return Err(archive_behind());
        }
        self.attachments.for_message(ids, wire_id, sender)
    }

    /// [`Self::relay`] for a message whose files were checked already (an agent's line
    /// written while the customer was away, going into the chat they came back to).
    pub(super) fn relay_checked_files(
        &mut self,
        chat: ChatId,
        (from, origin): (Party, ConnId),
        (text, files): (String, Vec<crate::attachments::AttachmentMeta>),
        client_id: Option<String>,
    ) -> Result<(), (&'static str, String)> {
        if self.cluster.is_some() {
            return self.cluster_relay(chat, (from, origin), (text, files), (client_id, None));
        }
        self.stamp_and_deliver(chat, (from, origin), (text, files), client_id, None)
    }

    /// Stamps a checked message of a single node's chat, archives it, delivers it to the
    /// peer and queues the sender's acknowledgement.
    fn stamp_and_deliver(
        &mut self,
        chat: ChatId,
        (from, origin): (Party, ConnId),
        (text, files): (String, Vec<crate::attachments::AttachmentMeta>),
        client_id: Option<String>,
        via: Option<crate::store::Via>,
    ) -> Result<(), (&'static str, String)> {
        let log = self.chats.get(&chat).expect("chats in routing have a log");
        let author = Author::of(from, via);
        // Under the chat's lock, as the direct path stamps: one order for both.
        let mut line = log.live.line_for_relay();
        // Room taken before the stamp: connections' tasks take room too since the check.
        let Some(room) = self.archive.try_reserve_message() else {
            self.archive.refused("new chat messages are refused");
            return Err(archive_behind());
        };
        let Stamped { frame, ack, event } = if files.is_empty() {
            line.transcript
                .record(log.live.wire_id.clone(), author, text, client_id.as_deref())
        } else {
            line.transcript
                .record_with(log.live.wire_id.clone(), author, (text, files), client_id.as_deref())
        };
        let archived = room.push(event);
        let frame = Outbound::Frame(frame);
        let (customer, agent) = (log.customer, log.agent.clone());
        let (sender, peer) = match from {
            Party::Customer => (Recipient::Customer(customer), Recipient::Agent(agent)),
            _ => (Recipient::Agent(agent), Recipient::Customer(customer)),
        };
        self.delivery.deliver(&peer, &frame);
        self.acknowledge(sender, SenderCopy::sent_from(origin, ack, frame), archived);
        drop(line);
        self.messages_relayed.increment(1);
        if from == Party::Customer {
            self.customer_line_in(chat, now_ms());
        }
        Ok(())
    }

    /// The sender's copy goes out once the message is durable — in the store, or while
    /// the store is down in the archive's spool on local disk: the compact `ack` to the
    /// connection it came from, the whole message to the sender's other connections.
    pub(super) fn acknowledge(&self, sender: Recipient, copy: SenderCopy, archived: Option<u64>) {
        self.direct
            .acks
            .acknowledge(archived, self.delivery.connections(&sender), copy);
    }

    /// Sends the acknowledgements the archive's progress now allows.
    pub(super) fn release_acks(&self) {
        self.direct.acks.release();
    }

    /// Gives the direct path back the chats this batch suspended, between their sides'
    /// connections of now (single node only: a cluster's messages take the router).
    pub(super) fn resume_direct(&mut self) {
        for live in self.direct.take_suspended() {
            let Some(log) = self.chats.get(&live.chat) else {
                continue;
            };
            if self.cluster.is_some() || !Arc::ptr_eq(&log.live, &live) {
                continue;
            }
            let customer = self.delivery.connections(&Recipient::Customer(log.customer));
            let agent = self.delivery.connections(&Recipient::Agent(log.agent.clone()));
            live.resume(customer, agent);
        }
    }

    /// A chat's log for the running chats: its line comes back to the direct path once
    /// the hub's batch is done.
    fn insert_chat(&mut self, chat: ChatId, log: ChatLog) {
        log.live.resume_later();
        self.chats.insert(chat, log);
    }

    /// A chat's log out of the running chats (ended, handed to a line or to another node):
    /// its messages go through the hub from now on.
    fn remove_chat(&mut self, chat: ChatId) -> Option<ChatLog> {
        let log = self.chats.remove(&chat)?;
        log.live.withdraw();
        Some(log)
    }

    /// A new chat's line: suspended until the hub's batch is done.
    fn new_line(&self, chat: ChatId, wire_id: &str) -> Arc<LiveChat> {
        self.new_line_from(chat, wire_id, Transcript::new(TRANSCRIPT_LIMIT))
    }

    /// A live line that goes on from `transcript` (a continued conversation).
    fn new_line_from(&self, chat: ChatId, wire_id: &str, transcript: Transcript) -> Arc<LiveChat> {
        LiveChat::new(chat, wire_id.into(), transcript, &self.direct)
    }

    fn wire(&self, chat: ChatId) -> String {
        self.chats
            .get(&chat)
            .map(|c| c.wire_id().to_string())
            .unwrap_or_default()
    }

    /// Whether `customer` is connected: in a cluster as the replica last heard (they may be
    /// on another node), else by this node's sockets.
    fn customer_connected(&self, customer: CustomerId) -> bool {
        match &self.cluster {
            Some(_) => self.routing.customer_connected(customer).unwrap_or(false),
            None => self.customers.get(&customer).is_some_and(|c| c.conn.is_some()),
        }
    }

    /// A chat as one side sees it; `None` for a chat paired but not yet opened.
    fn snapshot(&self, chat: ChatId, for_side: Party, after_seq: u64) -> Option<ChatSnapshot> {
        let log = self.chats.get(&chat)?;
        // In a cluster the peer may be on another node: the replica says whether they are
        // connected (away or back as the events stream last told), not this node's sockets.
        let (peer_name, peer_connected) = match for_side {
            Party::Customer => (
                log.agent_name.clone(),
                match &self.cluster {
                    Some(_) => self.routing.agent(&log.agent).is_some_and(|a| a.connected),
                    None => self.agents.get(&log.agent).is_some_and(|a| a.conn.is_some()),
                },
            ),
            _ => (log.customer_name.clone(), self.customer_connected(log.customer)),
        };
        Some(ChatSnapshot {
            chat_id: log.wire_id().to_string(),
            category: log.category.0.to_string(),
            category_name: self
                .category_names
                .get(log.category.as_str())
                .cloned()
                .unwrap_or_default(),
            peer_name,
            peer_connected,
            started_at: log.started_at,
            messages: match for_side {
                Party::Customer => crate::protocol::unnamed(log.live.after(after_seq)),
                _ => transfers::named_for_agent(log.live.after(after_seq), log.handed_over.as_ref()),
            },
            transfer: match for_side {
                Party::Customer => None,
                _ => log.handed_over.clone(),
            },
            continued: for_side != Party::Customer && log.continued.continued,
            reopened: for_side != Party::Customer && log.continued.reopened,
            queued_at: log.continued.queued_at.filter(|_| for_side != Party::Customer),
        })
    }

    fn category_refs(&self, ids: &[CategoryId]) -> Vec<CategoryRef> {
        ids.iter()
            .map(|c| CategoryRef {
                id: c.0.to_string(),
                name: self.category_names.get(c.as_str()).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// Sends what was coalesced during a batch: queue places and waiting counts.
    pub(super) fn flush(&mut self) {
        let mut out = vec![];
        self.routing.flush_places(&mut out);
        self.apply(out);
        if std::mem::take(&mut self.desk_dirty) {
            self.tell_desk_changes();
        }
        if self.dirty_waiting.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty_waiting);
        for category in &dirty {
            metrics::gauge!(crate::metrics::CUSTOMERS_WAITING, "category" => category.0.clone())
                .set(self.routing.waiting(category) as f64);
        }
        let agents: BTreeSet<AgentId> = dirty.iter().flat_map(|c| self.routing.agents_of(c).cloned()).collect();
        for agent in agents {
            self.send_queue_stats(&agent);
        }
    }

    /// Places or waiting counts changed since the last pass.
    pub(super) fn has_coalesced(&self) -> bool {
        self.routing.has_unflushed_places() || !self.dirty_waiting.is_empty() || self.desk_dirty
    }

    /// A waiting customer's likely wait at `place` in `category`.
    fn estimate(&self, category: &CategoryId, place: usize) -> Option<crate::protocol::Estimate> {
        self.waits
            .estimate(category, place, self.routing.serving_slots(category))
    }

    /// The longest current wait of each category where someone waits (seconds; on several
    /// nodes, of customers on every node).
    pub(super) fn longest_waits(&self) -> BTreeMap<String, f64> {
        let now = now_ms();
        self.routing
            .waiting_counts()
            .filter(|(_, n)| *n > 0)
            .filter_map(|(c, _)| {
                let front = self.routing.front(c)?;
                Some((c.0.to_string(), self.waits.waited_secs(front, now)?))
            })
            .collect()
    }

    /// Applies the categories' hours as read from hours stamped `read_at`: only where the routing (a cluster
    /// node's replica) differs and holds no newer reading (the rule itself is the routing's:
    /// this only spares the calls that would change nothing), so nodes that agree send
    /// nothing to Redis.
    fn open_categories(&mut self, wanted: Vec<(String, bool)>, read_at: u64) {
        for (category, open) in wanted {
            let category = CategoryId::from(category);
            if !self.routing.has_category(&category)
                || self.routing.is_open(&category) == open
                || read_at < self.routing.open_set_at(&category)
            {
                continue;
            }
            let op = RoutingOp::SetCategoryOpen(category.clone(), open, Some(read_at));
            self.route_or_apply(op, |routing, out| {
                routing.set_category_open(&category, open, Some(read_at), out)?;
                tracing::info!(category = %category.0, open, "category opened or closed by its hours");
                Ok(())
            });
        }
    }

    /// Puts categories in the routing mode the desk setting wants, where they differ and
    /// the wanted one was stored no earlier than the one in force (the rule itself is the
    /// routing's: this only spares the calls that would change nothing).
    fn set_category_modes(&mut self, wanted: Vec<(String, StoredMode)>) {
        for (category, StoredMode { mode, set_at }) in wanted {
            let category = CategoryId::from(category);
            if !self.routing.has_category(&category)
                || self.routing.routing_mode(&category) == mode
                || set_at < self.routing.mode_set_at(&category)
            {
                continue;
            }
            let op = RoutingOp::SetCategoryMode(category.clone(), mode, Some(set_at));
            self.route_or_apply(op, |routing, out| {
                routing.set_category_mode(&category, mode, Some(set_at), out)?;
                tracing::info!(category = %category.0, mode = mode.word(), "routing mode set");
                Ok(())
            });
        }
    }

    /// A change the desk's settings ask for, with nobody's connection behind it: sent to the
    /// cluster as `op` on a cluster node, else made by `change` on this hub's routing and
    /// its decisions applied (none where the routing refuses it).
    fn route_or_apply(
        &mut self,
        op: RoutingOp,
        change: impl FnOnce(&mut Routing, &mut Vec<Decision>) -> Result<(), RoutingError>,
    ) {
        if self.cluster.is_some() {
            self.route(op, None);
            return;
        }
        let mut out = vec![];
        if change(&mut self.routing, &mut out).is_ok() {
            self.apply(out);
        }
    }

    /// Whether `category` is open now, and whether someone who would answer is online.
    pub(super) fn desk_of(&self, category: &CategoryId) -> (bool, bool) {
        (self.routing.is_open(category), self.routing.staffed(category))
    }

    /// Tells this node's waiting customers when their category closed or opened, or when
    /// nobody is left who could answer (the offline path) or somebody came.
    fn tell_desk_changes(&mut self) {
        let now: HashMap<CategoryId, (bool, bool)> = self
            .routing
            .waiting_counts()
            .filter(|(_, n)| *n > 0)
            .map(|(c, _)| (c.clone(), self.desk_of(c)))
            .collect();
        let told = std::mem::replace(&mut self.desk_told, now);
        let changed: Vec<(CategoryId, (bool, bool))> = self
            .desk_told
            .iter()
            .filter(|(c, status)| told.get(*c).is_some_and(|before| before != *status))
            .map(|(c, status)| (c.clone(), *status))
            .collect();
        for (category, (open, agents_online)) in changed {
            let waiting: Vec<CustomerId> = self
                .customers
                .keys()
                .filter(|id| {
                    self.routing.place(**id).is_some() && self.routing.customer_category(**id) == Some(&category)
                })
                .copied()
                .collect();
            let frame = ServerFrame::DeskStatus {
                category: category.0.to_string(),
                open,
                agents_online,
            };
            for id in waiting {
                self.send(Recipient::Customer(id), &frame);
            }
        }
    }

    pub(super) fn record_gauges(&self) {
        let [customers, agents, buddies, bots] = self.conn_counts;
        metrics::gauge!(crate::metrics::CONNECTIONS, "role" => "bot").set(bots as f64);
        metrics::gauge!(crate::metrics::CONNECTIONS, "role" => "customer").set(customers as f64);
        metrics::gauge!(crate::metrics::CONNECTIONS, "role" => "agent").set(agents as f64);
        metrics::gauge!(crate::metrics::CONNECTIONS, "role" => "buddy").set(buddies as f64);
        metrics::gauge!(crate::metrics::CHATS_ACTIVE).set(self.routing.chats_active() as f64);
    }

    /// Which slot of `conn_counts` a role counts in.
    fn role_slot(role: &ConnRole) -> usize {
        match role {
            ConnRole::Customer => 0,
            ConnRole::Agent(_) => 1,
            ConnRole::Buddy { .. } => 2,
            ConnRole::Bot(_) => 3,
        }
    }

    pub(super) fn figures(&self) -> Figures {
        let now = now_ms();
        let longest = self
            .customers
            .iter()
            .filter(|(id, _)| self.routing.place(**id).is_some())
            .map(|(_, c)| now - c.queued_at)
            .max()
            .unwrap_or(0);
        let longest_wait_by_category = self.longest_waits();
        let longest_anywhere = longest_wait_by_category.values().fold(0.0_f64, |a, b| a.max(*b));
        let mut standings: Vec<(AgentStanding, AgentFigure)> = self
            .routing
            .agents()
            .map(|(id, view)| {
                let standing = view.standing();
                let figure = AgentFigure {
                    id: id.0.clone(),
                    state: match standing {
                        AgentStanding::Available => "available",
                        AgentStanding::Full => "full",
                        AgentStanding::Away => "away",
                        AgentStanding::Busy => "busy",
                        AgentStanding::Disconnected => "disconnected",
                    },
                    away_reason: view.away_reason.clone(),
                    chats: view.chats.len(),
                    limit: view.limit,
                };
                (standing, figure)
            })
            .collect();
        standings.sort_by(|(_, a), (_, b)| a.id.cmp(&b.id));
        let counted = |wanted: AgentStanding| standings.iter().filter(|(s, _)| *s == wanted).count();
        Figures {
            agents_online: standings.len() - counted(AgentStanding::Disconnected),
            agents_available: counted(AgentStanding::Available),
            agents_full: counted(AgentStanding::Full),
            customers_connected: self.customers.values().filter(|c| c.conn.is_some()).count(),
            customers_waiting: self
                .routing
                .waiting_counts()
                .map(|(c, n)| (c.0.to_string(), n))
                .collect(),
            chats_active: self.routing.chats_active(),
            longest_wait_secs: (longest as f64 / 1000.0).max(longest_anywhere),
            longest_wait_by_category,
            buddies_online: self.buddies.online(),
            agents: standings.into_iter().map(|(_, figure)| figure).collect(),
        }
    }

    /// Ends every chat, tells every connection and closes it.
    pub(super) fn shut_down(&mut self) {
        // In a cluster the chats go on: this node's people resume on another node, whose
        // reaper takes them over when this node's lease runs out.
        if self.cluster.is_none() {
            let mut out = vec![];
            // Nobody is paired while the hub stops: an agent freed by an ending chat must
            // not be given a waiting customer whose chat nothing would then end.
            self.routing.set_pairing_room(Some(0), &mut out);
            self.routing.end_all(&mut out);
            self.apply(out);
            self.end_all_continuing();
        } else {
            self.flush_closings();
        }
        self.buddy_shut_down();
        let bye = Outbound::Frame(
            ServerFrame::Shutdown {
                message: "the hub is shutting down".into(),
            }
            .encode(),
        );
        for entry in self.conns.values() {
            entry.handle.send(bye.clone());
            entry.handle.send(Outbound::Close(1001, "server shutting down"));
        }
    }
}

/// A chat message refused for want of room in the archive (nothing was stamped).
fn archive_behind() -> (&'static str, String) {
    (
        "archive_unavailable",
        "the archive is behind; try again shortly".to_string(),
    )
}

fn valid_name(raw: &str) -> Result<String, (&'static str, String)> {
    crate::core::names::checked_name(raw, MAX_NAME_CHARS).map_err(|e| (e.code(), e.to_string()))
}

fn not_allowed(frame: &ClientFrame, role: &str) -> (&'static str, String) {
    ("not_allowed", format!("{role} may not send {:?}", frame.kind()))
}

/// A resume token: 128 random bits, unguessable, from the UUID v4 generator (a CSPRNG).
/// Kept as its bits (every customer's token is in two of the hub's tables: a string each
/// was two heap blocks a customer), written as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Token(u128);

impl Token {
    pub(super) fn new() -> Self {
        Self(Uuid::new_v4().as_u128())
    }

    /// A token as a client sends it back: `None` for any text this hub never writes.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let bits = u128::from_str_radix(text, 16).ok()?;
        let token = Self(bits);
        (text.len() == 32 && token.to_string() == text).then_some(token)
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn a_token_reads_back_only_as_this_hub_writes_it() {
        let token = Token::new();
        let text = token.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(Token::parse(&text), Some(token));
        assert_eq!(Token::parse(&format!("{:032x}", 1u128)), Some(Token(1)));
        for other in [
            text.to_uppercase(),
            text[1..].to_string(),
            format!("{text}0"),
            format!("+{}", &text[1..]),
            uuid::Uuid::from_u128(token.0).hyphenated().to_string(),
            "g".repeat(32),
            String::new(),
        ] {
            assert_eq!(Token::parse(&other), None, "{other}");
        }
    }
}
