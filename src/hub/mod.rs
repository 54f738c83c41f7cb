//! The hub: one task that owns all live state and applies the pure rules.
//!
//! Connections and HTTP handlers talk to it through [`Hub`], a cheap handle
//! over a bounded command channel. The task feeds each command to the routing
//! and presence cores, then carries out their decisions: it encodes frames
//! (through `protocol`), delivers them (through [`delivery::Delivery`]),
//! starts grace timers and hands conversation events to the archive. Owning
//! the state in one task means no locks, and total order. The exception is a
//! running chat's messages on a single node: the sending connection's task
//! relays them itself under the chat's lock (`live_chat`, the direct path),
//! while the hub is not working on that chat; both sides still see one order.
//!
//! Queue places and waiting counts are not sent after every event: a pass sends
//! them once the hub has applied what it was given, and passes are spaced by
//! their cost, which coalesces updates over long queues (see `PASS_SPACING_MIN`).

pub mod admin_bus;
pub(crate) mod bot_calls;
pub mod bot_relay;
pub mod bot_sweeps;
mod buddy;
mod buddy_events;
pub mod cluster;
pub mod delivery;
mod ended_away;
mod follow_up_line;
pub mod live_chat;
pub mod outbox;
mod service;
pub mod token_expiry;
mod transcript;
mod waits;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::archive::Archive;
use crate::auth::Sessions;
use crate::config::Settings;
use crate::core::presence::BuddyId;
use crate::core::routing::{AgentId, CustomerId, OfferId};
use crate::protocol::ClientFrame;
use crate::routing_modes::StoredMode;
use crate::store::{Account, Category};
use delivery::{ConnHandle, ConnId};

pub use bot_calls::{bot_token_revoked, load_bot_hooks};
pub use service::{Figures, close};

/// Commands queued for the hub at most; senders wait when it is full, which
/// slows readers instead of growing memory.
const COMMAND_BUFFER: usize = 8_192;
/// Commands taken from the channel at once.
const MAX_BATCH: usize = 512;
/// Coalesced updates (queue places, waiting counts) go out in a pass as soon as the
/// hub has applied what it was given, but passes are spaced: the next may start no
/// sooner than `PASS_SPACING_FACTOR` times the last one's duration after it, within
/// these bounds. A route over a short queue is told at once; a burst of routes over a
/// long queue costs one pass per spacing, not one per route, so the long queue cannot
/// crowd routing out of the core.
const PASS_SPACING_MIN: Duration = Duration::from_millis(5);
const PASS_SPACING_MAX: Duration = Duration::from_millis(100);
/// The pass itself is a fraction of what it causes: each update it queues also costs
/// its connection a wake-up and a socket write (~4 times the hub's share, measured).
const PASS_SPACING_FACTOR: u32 = 10;
/// How often the gauges of /metrics are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_millis(500);

/// Who a connection speaks for, fixed when it registers.
#[derive(Debug, Clone)]
pub enum ConnRole {
    /// Not joined yet: the first frame must be `join` or `resume`.
    Customer,
    /// Boxed, as in `Buddy`: the hub keeps a role per connection, and most are customers.
    Agent(Box<StaffLogin>),
    /// A buddy-list page; `staff` is set for signed-in agents and admins.
    Buddy { staff: Option<Box<StaffLogin>> },
    /// A bot, by its API token (`/ws/bot`).
    Bot(Box<BotLogin>),
}

/// What a bot does in one of its conversations, over its socket or the HTTP API (and,
/// on several nodes, forwarded to the node holding the conversation: `bot_relay`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "act", rename_all = "snake_case")]
pub enum BotAct {
    /// A line to the customer.
    Message { text: String, client_id: Option<String> },
    /// Asks the customer for their email address.
    AskEmail,
    /// Hands the conversation to its category's line, with a note for the agent.
    Handover { note: Option<String> },
    /// The conversation is done, resolved by the bot.
    Resolve,
}

/// A bot's line as recorded: the `ack` frame a socket bot gets once it is durable, and
/// its archive sequence number to wait for (`None`: the archive refused it).
#[derive(Debug, Clone)]
pub struct BotLine {
    pub ack: axum::extract::ws::Utf8Bytes,
    pub archived: Option<u64>,
}

/// A bot's connection: the name its token acts as, and which categories name it (read
/// from the store as it connected, so a hub started since learns them).
#[derive(Debug, Clone)]
pub struct BotLogin {
    pub name: String,
    pub token_id: String,
    pub categories: Vec<String>,
}

impl ConnRole {
    /// The sign-in a staff connection (agent desk, staff buddy list) was opened with.
    pub fn staff(&self) -> Option<&StaffLogin> {
        match self {
            Self::Agent(staff) | Self::Buddy { staff: Some(staff) } => Some(staff),
            Self::Buddy { staff: None } | Self::Customer | Self::Bot(_) => None,
        }
    }
}

/// A signed-in account and the session its connection was opened with. The connection
/// lives only as long as that session: revoking it (sign-out, a password change) or its
/// expiry closes the connection with [`close::SESSION_ENDED`]. The hub closes revoked
/// sessions' connections; each connection's task watches its own session's expiry.
#[derive(Debug, Clone)]
pub struct StaffLogin {
    pub account: Account,
    /// The id of the session the upgrade request carried (`auth::session_id` of its token).
    pub session: String,
    pub session_expires: std::time::Instant,
}

/// Why sessions ended, for the reason of the close frame their connections get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Signed out, or ended by a password change or an admin.
    Revoked,
    Expired,
}

impl SessionEnd {
    pub fn close_reason(self) -> &'static str {
        match self {
            Self::Revoked => "session revoked",
            Self::Expired => "session expired",
        }
    }
}

pub(crate) enum Command {
    Register {
        conn: ConnHandle,
        role: ConnRole,
    },
    Frame {
        conn: ConnId,
        frame: ClientFrame,
    },
    /// A frame that could not be decoded still counts as activity; nothing to do here.
    Unregister {
        conn: ConnId,
    },
    CustomerGraceExpired {
        customer: CustomerId,
        epoch: u64,
    },
    AgentGraceExpired {
        agent: AgentId,
        epoch: u64,
    },
    BuddyGraceExpired {
        buddy: BuddyId,
        epoch: u64,
    },
    /// An offer's timer fired (it lapses if still standing).
    OfferExpired {
        offer: OfferId,
    },
    /// A chat's internal notes, read from the archive for an agent given the chat.
    NotesLoaded {
        agent: AgentId,
        chat_id: String,
        notes: Vec<crate::store::ConversationNote>,
    },
    /// A joining customer's identity, checked against the desk's secret (kept in the
    /// details only when it verified): the join goes on.
    IdentityChecked {
        conn: ConnId,
        asked: Box<service::continuing::JoinAsked>,
    },
    /// A bot's reply timer for conversation `chat_id`, armed in `epoch`, ran out.
    BotReplyTimeout {
        chat_id: String,
        epoch: u64,
    },
    /// Bot `bot` has this hook now (or none): an admin's change, or the store read at start.
    BotHook {
        bot: String,
        hook: Option<crate::bot_hooks::BotHook>,
    },
    /// A call to webhook bot `bot` about conversation `chat_id` failed: it is handed over.
    BotCallFailed {
        bot: String,
        chat_id: String,
    },
    /// What a join's lookup of its category's bot's socket on another node found (or why
    /// it could not be looked up): the join goes on.
    BotFound {
        conn: ConnId,
        asked: Box<service::continuing::JoinAsked>,
        bot: String,
        found: Result<crate::core::bots::SocketAt, String>,
    },
    /// A frame for bot `bot`'s socket here, about conversation `chat_id`, from the node
    /// `from` holding its stage.
    RemoteBotFrame {
        from: String,
        bot: String,
        chat_id: String,
        frame: String,
    },
    /// Bot `bot`'s socket on node `node` is gone (or cannot be reached): the conversations
    /// it held here go to their lines.
    RemoteBotGone {
        bot: String,
        node: String,
    },
    /// Several nodes: this node's bots channel was subscribed again after a gap: the bot
    /// sockets here are recorded again.
    BotSocketsAgain,
    /// Several nodes: Redis lost its data and this node re-asserted its people: the bot
    /// stages here record their tickets (under the node's new incarnation) and claims again.
    /// Not sooner: should the re-assertion fail, the node lets go of its stages, and a
    /// ticket naming its live incarnation would keep their customers waiting for a take-over
    /// that never comes.
    BotStagesAgain,
    /// Several nodes: what forwards a socket bot's actions to the node holding their stage.
    BotForwarder(std::sync::Arc<bot_relay::Forwarder>),
    /// Bot `bot` acts on conversation `chat_id` over the HTTP API.
    BotAct {
        bot: String,
        chat_id: String,
        act: BotAct,
        reply: oneshot::Sender<Result<Option<BotLine>, (&'static str, String)>>,
    },
    /// API tokens (by id) were revoked: bot sockets opened with one of them close.
    ApiTokensRevoked {
        ids: Vec<String>,
    },
    /// Category `category` now names bot `bot` (or none): an admin's change.
    CategoryBot {
        category: String,
        bot: Option<String>,
    },
    /// Several nodes: bot `bot`'s newest socket here (`conn`) waits for the answers of
    /// `nodes`, the others told of it.
    BotAsked {
        bot: String,
        conn: ConnId,
        nodes: Vec<String>,
    },
    /// Several nodes: bot `bot`'s newest socket is on node `to`.
    BotTakenOver {
        bot: String,
        to: String,
    },
    /// Several nodes: node `from`'s conversations of bot `bot`, for its newest socket here.
    BotHeld {
        bot: String,
        from: String,
        views: Vec<crate::protocol::BotConversation>,
    },
    /// Bot `bot`'s socket `conn` waited long enough for the other nodes: its welcome goes
    /// out with what came.
    BotWelcomeDue {
        bot: String,
        conn: ConnId,
    },
    /// Several nodes: bot conversations of a dead node this node took over whose customers
    /// did not come back within the grace period (their tickets, taken): they end.
    LostBotStages(Vec<bot_relay::Ticket>),
    /// What a `resume` on several nodes found under a token no customer holds: a bot
    /// stage's ticket (its node died), or nothing.
    BotTicket {
        conn: ConnId,
        found: Box<service::bots::TicketFound>,
    },
    /// A conversation a customer asked to continue, read from the store (or why not).
    ContinueLoaded {
        conn: ConnId,
        asked: Box<service::continuing::JoinAsked>,
        found: Result<Box<service::continuing::Continued>, (&'static str, String)>,
    },
    /// The conversation a customer waits to continue, read for their resume on a node that
    /// did not take their join (several nodes), or why not (`cluster::resume_continuing`).
    ContinuingReadForResume {
        customer: crate::core::routing::CustomerId,
        found: Result<Box<service::continuing::Continued>, (&'static str, String)>,
    },
    /// The lines after a resuming customer's `last_seq` that their chat's log no longer
    /// held (several nodes, after Redis lost its data), read from the archive
    /// (`cluster::resume_catch_up`): none if the store did not have them in time.
    ArchiveReadForResume {
        chat: crate::core::routing::ChatId,
        lines: Vec<crate::store::ArchivedMessage>,
    },
    /// A customer's answer by mail to a conversation (`inbound`).
    LineByMail {
        conversation: String,
        text: String,
        /// The files the mail carried, kept and checked already.
        files: Vec<crate::attachments::AttachmentMeta>,
        outcome: follow_up_line::Outcome,
    },
    /// An agent's answer to an offline message, mailed: a line of its conversation too.
    AnswerByMail {
        agent: String,
        conversation: String,
        text: String,
    },
    /// Lines of a continued conversation written on another node while its customer came
    /// back (several nodes), read from the store once it had them (`continuing::catch_up`).
    LateLinesRead {
        customer: crate::core::routing::CustomerId,
        id: String,
        lines: Vec<crate::protocol::ChatMessage>,
    },
    /// A conversation an agent writes into while its customer is away, read from the store.
    FollowUpRead {
        id: String,
        read: Result<service::follow_up::Read, crate::store::StoreError>,
    },
    /// The seq Redis drew for a line an agent writes into conversation `id` while its
    /// customer is away (several nodes), or why none.
    FollowUpSeq {
        id: String,
        asked: Box<follow_up_line::FollowUpLine>,
        drawn: Result<u64, follow_up_line::SeqRefused>,
    },
    /// A conversation's change took effect in the store (`conversations::writer`).
    /// Whether a customer is live in conversation `id` (chatting, or waiting to continue
    /// it), as this node's routing (a replica on several nodes) knows it, and with whom.
    ConversationLive {
        id: String,
        reply: oneshot::Sender<Option<Option<crate::core::routing::AgentId>>>,
    },
    ConversationChanged {
        record: crate::store::ConversationRecord,
        /// Its snooze ran out: every agent who may list it hears so.
        woken: bool,
    },
    /// A conversation's record as read for a chat log made here anew: its status only.
    ConversationStatusRead {
        record: Option<crate::store::ConversationRecord>,
    },
    /// A status change asked over HTTP by an agent or an admin; the record as stored, or
    /// the refusal's code and message.
    SetConversationStatus {
        by: Box<crate::store::Account>,
        id: String,
        status: String,
        until: Option<i64>,
        reply: oneshot::Sender<Result<crate::store::ConversationRecord, (&'static str, String)>>,
    },
    /// The store's answer to an agent's `set_conversation_status`.
    ConversationStatusAnswer {
        conn: ConnId,
        asker: AgentId,
        client_id: Option<String>,
        answer: Result<crate::store::ConversationRecord, crate::conversations::ConversationError>,
    },
    /// Categories' routing modes as the desk setting wants them; only real changes are applied.
    CategoryModes {
        wanted: Vec<(String, StoredMode)>,
    },
    /// The grace period of a chat that ended while its customer was away is over.
    ForgetEndedVisit {
        token: String,
    },
    /// The router read the log of a chat that ended while its customer, held here, was
    /// away: `late`, the lines after those this node had recorded at the end, complete
    /// the node's own copy of the visit (`service::EndedVisit`).
    EndedVisitRead {
        token: String,
        late: Vec<crate::protocol::ChatMessage>,
    },
    /// Carries a pause of the direct path: a disabled account's connections relay
    /// nothing more once the change is asked for, though the hub applies it later.
    AccountChanged {
        account: Account,
        pause: live_chat::DirectPause,
    },
    CategoriesChanged {
        categories: Vec<Category>,
        removed: Option<String>,
    },
    Figures {
        reply: oneshot::Sender<Figures>,
    },
    /// Categories as their hours wanted them (id, open), read from hours stamped `read_at` (ms); only
    /// real changes are applied, and none older than the state in force.
    OpenCategories {
        wanted: Vec<(String, bool)>,
        read_at: u64,
    },
    /// Each category: open now, and someone online who could answer.
    Desk {
        reply: oneshot::Sender<Vec<DeskCategory>>,
    },
    /// These sessions ended: the connections opened with them close.
    SessionsEnded {
        tokens: Vec<String>,
        why: SessionEnd,
        /// As `AccountChanged`'s: a revoked session's connections relay nothing more.
        pause: live_chat::DirectPause,
    },
    // ---- attachments ----
    /// The live chat (its wire id) of the customer whose resume token is `token`, if any.
    ChatOfCustomerToken {
        token: String,
        reply: oneshot::Sender<Option<String>>,
    },
    /// Whether `chat_id` is a live chat of `agent`'s (`buddy`: a running buddy chat of that
    /// account's), on any node (this node's routing and buddy list are replicas of the
    /// cluster's).
    IsAgentsChat {
        agent: String,
        chat_id: String,
        buddy: bool,
        reply: oneshot::Sender<bool>,
    },
    /// The live chat (its wire id) of `customer`, as this node's routing (a replica on
    /// several nodes) knows it: a customer whose socket is on another node.
    ChatOfCustomer {
        customer: CustomerId,
        reply: oneshot::Sender<Option<String>>,
    },
    // ---- rooms and 1-to-1 video ----
    /// The customer's name in `agent`'s live chat `chat_id`, if it is one.
    ChatCustomer {
        agent: String,
        chat_id: String,
        reply: oneshot::Sender<Option<String>>,
    },
    /// Sends the customer of `agent`'s live chat `chat_id` a video invitation; replies
    /// whether the chat was still the agent's.
    VideoInvite {
        agent: String,
        chat_id: String,
        room_id: String,
        link: String,
        reply: oneshot::Sender<bool>,
    },
    /// Sends `frame` (a server frame's JSON) to `agent`'s connections on this node: a line
    /// another node stamped for them (`AdminChange::Line`).
    AgentFrame {
        agent: String,
        frame: String,
    },
    /// Tells `agent`, if connected to this node, that the customer rated chat `chat_id`.
    ChatRated {
        agent: String,
        chat_id: String,
        rating: crate::store::Rating,
    },
    // ---- several nodes through Redis: the hub on the routing scripts ----
    /// The routing domain's id in Redis, which chat wire ids derive from.
    ClusterStarted {
        cluster_id: String,
    },
    /// The next routing events, in Redis's order, for the replica to replay; with the
    /// display names of agents they bring online.
    RoutingEvents {
        events: Vec<crate::cluster::routing_events::RoutingEvent>,
        agent_names: Vec<(AgentId, String)>,
    },
    /// A call of this node was refused (by the rules, or Redis is away): tell the
    /// connection or person that made it; `call` says what more a refusal undoes.
    ClusterRefused {
        conn: Option<ConnId>,
        who: Option<delivery::Recipient>,
        code: &'static str,
        message: String,
        client_id: Option<String>,
        call: RefusedCall,
    },
    /// This node lost its lease: its people were or will be handed on; it closes their
    /// connections (they resume elsewhere) and starts afresh under its new incarnation.
    ClusterFenced,
    /// Redis lost its data (restarted empty), found by the router on rejoining: the node
    /// keeps its people and hands the router what it holds to re-assert
    /// (`cluster::link::Reassert`).
    ClusterDataLost,
    /// The events this node had not read were trimmed away, or the routing domain was
    /// restored after a loss: its replica becomes this snapshot of the routing domain
    /// (up to `last_event`), and the events after it follow.
    RoutingReload {
        state: crate::core::routing::RoutingState,
        last_event: String,
        /// Read from a restore entry (`cluster::restore`), the first of the stream Redis
        /// started again after losing its data; not a snapshot after a trimmed gap.
        restored: bool,
    },
    /// The buddy list written into the restore of the routing domain after Redis lost its
    /// data (read from the restore entry, right after its `RoutingReload`): the desk
    /// becomes it, and this node claims the buddy connections it holds.
    BuddiesRestored(Box<buddy::snapshot::BuddySnapshot>),
    /// Every node that took part in the restore claimed its chats and buddy chats (their
    /// seqs, and the lines it holds written back to their logs), or the claim window is
    /// over: this node reads their logs for the lines only another node had.
    EveryClaimIn,
    /// Stamped chat messages: this node's own (the script's reply) or a peer node's (pub/sub).
    ChatLines {
        lines: Vec<crate::cluster::chat_log::ChatLine>,
    },
    /// A read of `chat`'s log after a seq this node had recorded (`RouterCall::Fill`, or
    /// every chat read again: `hub::cluster::rereads`): a gap's lines, stepping over what
    /// no log holds any more (`chat_log::LogRead::in_order`).
    ChatLogRead {
        chat: crate::core::routing::ChatId,
        read: crate::cluster::chat_log::LogRead,
    },
    /// This node's chat message that its sender sent again (same client id and text) and
    /// Redis had stamped before: `line` is the first sending's (its seq, id and time), `sent`
    /// the id this sending went under, by which the node knows the connection to acknowledge.
    ChatSentAgain {
        sent: String,
        line: crate::cluster::chat_log::ChatLine,
    },
    /// An ended chat's log as read after its end (`RouterCall::ClosingRead`): the lines
    /// the archiving node had not recorded go to the archive, then the closing.
    ChatClosingLines {
        chat: crate::core::routing::ChatId,
        read: crate::cluster::chat_log::LogRead,
    },
    /// A buddy chat message this node sent, stamped in its chat's log; `conn` sent it.
    BuddyStamped {
        conn: delivery::ConnId,
        line: crate::cluster::buddy_line::BuddyLine,
    },
    /// A buddy chat's log as read (`RouterCall::BuddyRead`; `None`: it could not be read).
    BuddyLogRead {
        chat: String,
        read: Option<crate::cluster::buddy_chat_log::LogRead>,
    },
    /// A buddy chat's log read again with every chat's (`hub::cluster::rereads`), outside
    /// the router's queue: nothing waits for it (`None`: it could not be read).
    BuddyLogReread {
        chat: String,
        read: Option<crate::cluster::buddy_chat_log::LogRead>,
    },
    /// Typing or a draft from another node.
    ChatSignal(crate::cluster::chat_log::NodeMessage),
    /// The node's chat channel was cut and is back: re-read every chat's log.
    ChatResync,
    /// Whose a resume token issued by another node is (`None`: nobody's, or expired),
    /// and the chat its customer missed the end of, if another node kept one.
    TokenFound {
        conn: delivery::ConnId,
        token: String,
        customer: Option<crate::core::routing::CustomerId>,
        ended_visit: Option<String>,
        last_seq: u64,
        /// The events stream's newest entry at the lookup (`resume_tokens::Found`).
        stream_at: Option<String>,
    },
    /// An agent signing in here: how their chats ended lately, as Redis keeps them
    /// (`cluster::agent_endings`, oldest first), read before their coming online is sent.
    AgentEndingsRead {
        agent: crate::core::routing::AgentId,
        entries: Vec<String>,
    },
}

/// What a refused cluster call was, for what its refusal must undo beyond telling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusedCall {
    /// The join of this request id: its pending state goes, if it is the connection's
    /// join under way. A refusal of an earlier join (already answered: refused when Redis
    /// lost its data, then refused again by the router) changes and tells nothing.
    Join { request: String },
    /// A customer's resume: the connection attached in hope closes (1013) and tries again.
    Resume,
    /// An agent's coming online (or back) on this connection whose answer was lost and
    /// which the router takes back (`hub::cluster::link`): their desk closes (1013) and
    /// this node lets go of them, even if their welcome went out meanwhile.
    AgentTakenBack,
    /// Anything else: telling is all.
    Other,
}

/// A category as a customer choosing it needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskCategory {
    pub id: String,
    /// Inside its opening hours (a closed category takes no join).
    pub open: bool,
    /// A connected agent holding it who is not away (on several nodes: anywhere).
    pub agents_online: bool,
    /// Whether the category's bot, if it names one, answers its customers first now.
    pub bot: BotReach,
}

/// Whether a category's bot can take its next customer, as this node's hub knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotReach {
    /// The category names no bot, or its bot has neither a socket here nor a hook.
    No,
    /// Its socket is on this node, or it is a webhook bot (every node calls it).
    Here,
    /// Several nodes: its socket may be on another node (the bot is named, to look up).
    Elsewhere(String),
}

/// A cheap, cloneable handle on the hub task.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::Sender<Command>,
    /// The last answer of [`Hub::desk`] and when its command was sent. The public category
    /// list asks on every request: one command at a time, whose answer every caller who
    /// arrived before it was sent shares, so a flood never queues commands before the
    /// hub's chat traffic and nobody gets an answer older than their request.
    desk_cache: Arc<DeskCache>,
}

/// [`Hub::desk`]'s single flight, and the direct path's pauses (`live_chat`: a change of
/// who may speak for whom pauses it until the hub has applied the change). One pointer
/// in every handle: each connection keeps one.
#[derive(Default)]
struct DeskCache {
    answer: crate::single_flight::SingleFlight<(), Vec<DeskCategory>>,
    pauses: Arc<AtomicU32>,
}

/// A frame handed to the hub ([`Hub::frame`]).
pub enum FrameTaken {
    /// It is in the hub's queue.
    Now,
    /// The queue is full: the frame is in once this completes.
    Once(std::pin::Pin<Box<dyn Future<Output = Result<(), HubGone>> + Send>>),
}

/// Why the hub could not take a command.
#[derive(Debug, thiserror::Error)]
#[error("the hub is shutting down")]
pub struct HubGone;

impl Hub {
    /// Starts the hub task. It ends when `shutdown` is cancelled, after telling every connection.
    pub fn start(
        settings: Arc<Settings>,
        attachments: crate::attachments::Attachments,
        categories: Vec<Category>,
        archive: Archive,
        sessions: Sessions,
        cluster: Option<crate::cluster::node::Cluster>,
        shutdown: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(COMMAND_BUFFER);
        let desk_cache = Arc::new(DeskCache::default());
        let direct = live_chat::Shared::new(
            archive.clone(),
            settings.max_message_len,
            metrics::counter!(crate::metrics::MESSAGES_RELAYED),
            desk_cache.pauses.clone(),
        );
        let hub = Self {
            tx: tx.clone(),
            desk_cache,
        };
        let conversation_writer =
            service::conversation_status::writer(&archive, &settings, tx.downgrade(), cluster.clone());
        let bus = cluster.clone();
        // ---- several nodes through Redis: routing through the scripts ----
        let link = cluster.map(|c| {
            // Re-asserted on every (re)join: a Redis that lost its data learns them again.
            let known = categories
                .iter()
                .map(|c| crate::core::routing::CategoryId::from(c.id.as_str()))
                .collect();
            let periods = cluster::link::Periods {
                lease: settings.cluster.lease,
                grace: settings.resume_grace,
            };
            cluster::link::start(&c, tx.downgrade(), known, periods, shutdown.clone())
        });
        let state = service::HubState::new(
            settings,
            attachments,
            categories,
            archive,
            sessions,
            tx.downgrade(),
            link,
            direct,
            conversation_writer,
        )
        .with_bus(bus);
        let task = tokio::spawn(run(state, rx, shutdown));
        (hub, task)
    }

    async fn send(&self, command: Command) -> Result<(), HubGone> {
        self.tx.send(command).await.map_err(|_| HubGone)
    }

    /// Sends the command `asking` makes of a reply channel, and waits for the answer.
    async fn ask<T>(&self, asking: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, HubGone> {
        let (reply, answer) = oneshot::channel();
        self.send(asking(reply)).await?;
        answer.await.map_err(|_| HubGone)
    }

    pub async fn register(&self, conn: ConnHandle, role: ConnRole) -> Result<(), HubGone> {
        self.send(Command::Register { conn, role }).await
    }

    /// Hands a connection's frame to the hub, or the wait for room in its queue when full.
    ///
    /// Not an `async fn`: its future would hold the frame and the command (~450 bytes) and
    /// sit in every connection's task, used or not; the rare wait is boxed instead.
    pub fn frame(&self, conn: ConnId, frame: ClientFrame) -> Result<FrameTaken, HubGone> {
        self.take(Command::Frame { conn, frame })
    }

    fn take(&self, command: Command) -> Result<FrameTaken, HubGone> {
        match self.tx.try_send(command) {
            Ok(()) => Ok(FrameTaken::Now),
            Err(mpsc::error::TrySendError::Full(command)) => {
                let hub = self.clone();
                Ok(FrameTaken::Once(Box::pin(async move { hub.send(command).await })))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(HubGone),
        }
    }

    pub async fn unregister(&self, conn: ConnId) -> Result<(), HubGone> {
        self.send(Command::Unregister { conn }).await
    }

    /// An admin changed an account: its categories, limit, name or enabled flag apply at once.
    pub async fn account_changed(&self, account: Account) -> Result<(), HubGone> {
        let pause = live_chat::DirectPause::new(&self.desk_cache.pauses);
        self.send(Command::AccountChanged { account, pause }).await
    }

    /// The category list changed; `removed` names a category that is gone.
    pub async fn categories_changed(&self, categories: Vec<Category>, removed: Option<String>) -> Result<(), HubGone> {
        self.send(Command::CategoriesChanged { categories, removed }).await
    }

    /// Sessions (by id) were revoked or expired: every connection opened with one of them is closed.
    pub async fn sessions_ended(&self, tokens: Vec<String>, why: SessionEnd) -> Result<(), HubGone> {
        if tokens.is_empty() {
            return Ok(());
        }
        let pause = live_chat::DirectPause::new(&self.desk_cache.pauses);
        self.send(Command::SessionsEnded { tokens, why, pause }).await
    }

    /// An admin named `category`'s bot (or none).
    pub async fn set_category_bot(&self, category: String, bot: Option<String>) -> Result<(), HubGone> {
        self.send(Command::CategoryBot { category, bot }).await
    }

    /// Bot `bot` has `hook` now (or none): the hub calls it there while it has no socket.
    pub async fn set_bot_hook(&self, bot: String, hook: Option<crate::bot_hooks::BotHook>) -> Result<(), HubGone> {
        self.send(Command::BotHook { bot, hook }).await
    }

    /// Bot `bot` acts on conversation `chat_id` (the HTTP API): `Ok(Some(line))` for a
    /// message, `Ok(None)` for the rest, or the refusal (code, message) a socket would get.
    pub async fn bot_act(
        &self,
        bot: String,
        chat_id: String,
        act: BotAct,
    ) -> Result<Result<Option<BotLine>, (&'static str, String)>, HubGone> {
        self.ask(|reply| Command::BotAct {
            bot,
            chat_id,
            act,
            reply,
        })
        .await
    }

    /// API tokens (by id) were revoked: a bot socket opened with one closes at once and
    /// its conversations are handed over, as when the bot goes away.
    pub async fn api_tokens_revoked(&self, ids: Vec<String>) -> Result<(), HubGone> {
        if ids.is_empty() {
            return Ok(());
        }
        self.send(Command::ApiTokensRevoked { ids }).await
    }

    /// Sets conversation `id`'s status as `by` asks over HTTP (see
    /// `HubState::set_conversation_status_asked`).
    pub async fn set_conversation_status(
        &self,
        by: crate::store::Account,
        id: String,
        status: String,
        until: Option<i64>,
    ) -> Result<Result<crate::store::ConversationRecord, (&'static str, String)>, HubGone> {
        self.ask(|reply| Command::SetConversationStatus {
            by: Box::new(by),
            id,
            status,
            until,
            reply,
        })
        .await
    }

    /// Sets categories' routing modes as the desk setting wants (see `routing_modes`).
    pub async fn set_category_modes(&self, wanted: Vec<(String, StoredMode)>) -> Result<(), HubGone> {
        self.send(Command::CategoryModes { wanted }).await
    }

    /// Opens and closes categories as their hours want, as read at `read_at` (ms, the
    /// reading's stamp: see `desk_hours`).
    pub async fn open_categories(&self, wanted: Vec<(String, bool)>, read_at: u64) -> Result<(), HubGone> {
        self.send(Command::OpenCategories { wanted, read_at }).await
    }

    /// Whether each category is open now and has somebody online to answer.
    /// Single-flight: see `desk_cache`.
    pub async fn desk(&self) -> Result<Vec<DeskCategory>, HubGone> {
        self.desk_cache
            .answer
            .get((), || async { self.ask(|reply| Command::Desk { reply }).await })
            .await
    }

    pub async fn figures(&self) -> Result<Figures, HubGone> {
        self.ask(|reply| Command::Figures { reply }).await
    }

    // ---- attachments ----
    /// The live chat of the customer whose resume token is `token` on this node, `None`
    /// when there is none (a token of nobody, a customer waiting in line, a chat ended).
    pub async fn chat_of_customer_token(&self, token: &str) -> Result<Option<String>, HubGone> {
        self.ask(|reply| Command::ChatOfCustomerToken {
            token: token.to_string(),
            reply,
        })
        .await
    }

    /// Whether `chat_id` is a live chat of `agent`'s, wherever its sides' sockets are.
    pub async fn is_agents_chat(&self, agent: &str, chat_id: &str) -> Result<bool, HubGone> {
        self.staff_in_chat(agent, chat_id, false).await
    }

    /// Whether `chat_id` is a running buddy chat of account `account`'s (the staff
    /// roster's), wherever its members' pages are.
    pub async fn is_buddy_chat_of(&self, account: &str, chat_id: &str) -> Result<bool, HubGone> {
        self.staff_in_chat(account, chat_id, true).await
    }

    async fn staff_in_chat(&self, account: &str, chat_id: &str, buddy: bool) -> Result<bool, HubGone> {
        self.ask(|reply| Command::IsAgentsChat {
            agent: account.to_string(),
            chat_id: chat_id.to_string(),
            buddy,
            reply,
        })
        .await
    }

    /// The live chat of `customer`, wherever their socket is (found by their token in
    /// Redis on another node), `None` when there is none.
    pub async fn chat_of_customer(&self, customer: CustomerId) -> Result<Option<String>, HubGone> {
        self.ask(|reply| Command::ChatOfCustomer { customer, reply }).await
    }

    // ---- rooms and 1-to-1 video ----
    /// The customer's name in the agent's live chat, `None` if it is not one.
    pub async fn chat_customer(&self, agent: &str, chat_id: &str) -> Result<Option<String>, HubGone> {
        self.ask(|reply| Command::ChatCustomer {
            agent: agent.to_string(),
            chat_id: chat_id.to_string(),
            reply,
        })
        .await
    }

    /// Sends `frame` to `agent`'s connections on this node, if any.
    pub async fn frame_to_agent(&self, agent: String, frame: String) -> Result<(), HubGone> {
        self.send(Command::AgentFrame { agent, frame }).await
    }

    /// Tells the agent (when their connection is on this node) that a chat of theirs was rated.
    pub async fn chat_rated(&self, agent: &str, chat_id: &str, rating: crate::store::Rating) -> Result<(), HubGone> {
        self.send(Command::ChatRated {
            agent: agent.to_string(),
            chat_id: chat_id.to_string(),
            rating,
        })
        .await
    }

    /// A conversation changed on another node: its holder, where connected here, is told.
    /// A customer's answer by mail to conversation `conversation`: their line in it.
    /// `files`: those the mail carried, kept already (`inbound::files`).
    /// `Err`: why it is not a line (yet): the mail is offered again later.
    pub async fn line_by_mail(
        &self,
        conversation: &str,
        text: String,
        files: Vec<crate::attachments::AttachmentMeta>,
    ) -> Result<(), String> {
        let (outcome, told) = follow_up_line::Outcome::new();
        self.send(Command::LineByMail {
            conversation: conversation.to_string(),
            text,
            files,
            outcome,
        })
        .await
        .map_err(|_| "the hub is stopping".to_string())?;
        // The store's read and Redis's seq take milliseconds; a minute means they are down.
        match tokio::time::timeout(std::time::Duration::from_secs(60), told).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the hub dropped the line".to_string()),
            Err(_) => Err("the line was not stamped within a minute".to_string()),
        }
    }

    /// `agent`'s answer `text` to the offline message that is conversation `conversation`,
    /// stored and mailed: the conversation gets it as the agent's next line.
    pub async fn answer_by_mail(&self, agent: &str, conversation: &str, text: String) -> Result<(), HubGone> {
        self.send(Command::AnswerByMail {
            agent: agent.to_string(),
            conversation: conversation.to_string(),
            text,
        })
        .await
    }

    /// `None` when no customer is live in conversation `id`; else the agent paired with
    /// them (`None` while they wait in line), as this node's routing knows it.
    pub async fn conversation_live(&self, id: &str) -> Result<Option<Option<crate::core::routing::AgentId>>, HubGone> {
        self.ask(|reply| Command::ConversationLive {
            id: id.to_string(),
            reply,
        })
        .await
    }

    /// A conversation's record changed (stored already): its holder here hears it, and with
    /// `woken` (its snooze ran out) every agent here who may list it.
    pub async fn conversation_changed(
        &self,
        record: crate::store::ConversationRecord,
        woken: bool,
    ) -> Result<(), HubGone> {
        self.send(Command::ConversationChanged { record, woken }).await
    }

    /// Invites the customer of the agent's live chat into a video room; false if the
    /// chat is no longer the agent's.
    pub async fn video_invite(&self, agent: &str, chat_id: &str, room_id: &str, link: String) -> Result<bool, HubGone> {
        self.ask(|reply| Command::VideoInvite {
            agent: agent.to_string(),
            chat_id: chat_id.to_string(),
            room_id: room_id.to_string(),
            link,
            reply,
        })
        .await
    }
}

async fn run(mut state: service::HubState, mut rx: mpsc::Receiver<Command>, shutdown: CancellationToken) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut progress = state.archive.progress.clone();
    let mut archive_alive = true;
    let mut gauges = tokio::time::interval(GAUGE_INTERVAL);
    gauges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let pass_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(pass_timer);
    let mut pass_armed = false;
    let mut next_pass_earliest = Instant::now();
    loop {
        // What the hub did to running chats is done: they go back to the direct path.
        state.resume_direct();
        if !pass_armed && state.has_coalesced() {
            pass_timer.as_mut().reset(next_pass_earliest);
            pass_armed = true;
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            // Before new commands: a steady stream of them must not hold the pass back.
            _ = &mut pass_timer, if pass_armed => {
                pass_armed = false;
                let started = Instant::now();
                state.flush();
                let spacing = (started.elapsed() * PASS_SPACING_FACTOR).clamp(PASS_SPACING_MIN, PASS_SPACING_MAX);
                next_pass_earliest = Instant::now() + spacing;
            }
            changed = progress.changed(), if archive_alive => match changed {
                Ok(()) => {
                    state.release_acks();
                    // Events written give room back: customers held in line may be paired now.
                    state.refresh_pairing_room();
                }
                Err(_) => archive_alive = false,
            },
            n = rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    break;
                }
                for command in batch.drain(..) {
                    state.handle(command);
                }
            }
            _ = gauges.tick() => {
                state.record_gauges();
                // Resumes that waited too long for this node's replica are told to retry.
                state.settle_awaiting_replica();
            }
        }
    }
    state.shut_down();
    // Whatever the archive commits while connections close still gets acknowledged.
    state.release_acks();
}

/// Hands a command to the hub, unless it is gone: how a task the hub started off its own
/// (a timer, a read of the store or Redis) brings it the answer.
async fn tell(hub: &mpsc::WeakSender<Command>, command: Command) {
    if let Some(tx) = hub.upgrade() {
        let _ = tx.send(command).await;
    }
}

/// Starts a timer that sends `command` to the hub after `delay`, unless the hub is gone.
fn after(tx: &mpsc::WeakSender<Command>, delay: Duration, command: Command) {
    let tx = tx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        tell(&tx, command).await;
    });
}

/// Category id → display name, for frames that show both.
pub(crate) type CategoryNames = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::outbox::Outbox;
    use super::*;
    use crate::store::{MemoryStore, Role};

    fn agent_account() -> Account {
        Account {
            id: "ann-id".into(),
            username: "ann".into(),
            display_name: "Ann".into(),
            role: Role::Agent,
            password_hash: String::new(),
            categories: vec!["general".into()],
            max_chats: 1,
            enabled: true,
            created_at: 0,
        }
    }

    /// A hub over an in-memory store that checks staff connections against `sessions`.
    fn started(sessions: Sessions) -> (Hub, CancellationToken) {
        let (archive, _archive_task) = Archive::start(Arc::new(MemoryStore::new()), 64, None).expect("no spool");
        let categories = vec![Category {
            id: "general".into(),
            name: "General".into(),
        }];
        let shutdown = CancellationToken::new();
        let settings = Arc::new(Settings::for_tests());
        let (hub, _hub_task) = Hub::start(
            settings.clone(),
            crate::attachments::Attachments::in_memory(settings.attachments.max_bytes),
            categories,
            archive,
            sessions,
            None,
            shutdown.clone(),
        );
        (hub, shutdown)
    }

    /// Registers a connection the way a socket's task does, and returns
    /// what the hub queued for it once the registration has been handled.
    async fn register(hub: &Hub, id: u64, role: ConnRole) -> outbox::Taken {
        let outbox = Arc::new(Outbox::new(16));
        let handle = ConnHandle {
            id: ConnId(id),
            outbox: outbox.clone(),
        };
        hub.register(handle, role).await.expect("the hub runs");
        // Commands are handled in order: once this answers, the registration has been.
        hub.figures().await.expect("the hub runs");
        outbox.take().unwrap_or_default()
    }

    /// A sign-in as the upgrade request found it: session `id`, live until `expires`.
    fn staff(id: &str, expires: std::time::Instant) -> Box<StaffLogin> {
        Box::new(StaffLogin {
            account: agent_account(),
            session: id.to_string(),
            session_expires: expires,
        })
    }

    /// The upgrade request checks the session, then the socket registers: a sign-out in
    /// between is told to a hub that has no connection to close yet, so the registration
    /// itself must find the session gone.
    #[tokio::test]
    async fn a_connection_whose_session_ended_before_it_registered_is_closed_with_4001() {
        let sessions = Sessions::new(Arc::new(MemoryStore::new()), Duration::from_secs(3600));
        let (hub, shutdown) = started(sessions.clone());
        let token = sessions.open("ann-id").await.expect("opened");
        let id = crate::auth::session_id(&token);
        let expires = sessions.expires_at(&id).expect("live");
        let checked_at_upgrade = staff(&id, expires);
        let closed = sessions.close(&token).await.expect("signed out");
        assert_eq!(closed.as_ref(), Some(&id), "signed out");
        hub.sessions_ended(vec![id.clone()], SessionEnd::Revoked)
            .await
            .expect("the hub runs");

        let taken = register(&hub, 1, ConnRole::Agent(checked_at_upgrade.clone())).await;
        assert_eq!(taken.close, Some((close::SESSION_ENDED, "session revoked")));
        assert!(taken.frames.is_empty(), "no welcome: {:?}", taken.frames);
        let taken = register(
            &hub,
            2,
            ConnRole::Buddy {
                staff: Some(checked_at_upgrade),
            },
        )
        .await;
        assert_eq!(taken.close, Some((close::SESSION_ENDED, "session revoked")));
        let figures = hub.figures().await.expect("the hub runs");
        assert_eq!(figures.agents_online, 0, "the dead session speaks for nobody");

        // A live session's connection registers as ever, and is not replaced by the dead one.
        let live = crate::auth::session_id(&sessions.open("ann-id").await.expect("opened"));
        let expires = sessions.expires_at(&live).expect("live");
        let taken = register(&hub, 3, ConnRole::Agent(staff(&live, expires))).await;
        assert_eq!(taken.close, None);
        assert!(!taken.frames.is_empty(), "the agent's welcome");
        assert_eq!(hub.figures().await.expect("the hub runs").agents_online, 1);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_connection_whose_session_expired_before_it_registered_is_closed_with_4001() {
        let sessions = Sessions::new(Arc::new(MemoryStore::new()), Duration::from_millis(20));
        let (hub, shutdown) = started(sessions.clone());
        let id = crate::auth::session_id(&sessions.open("ann-id").await.expect("opened"));
        let expires = sessions.expires_at(&id).expect("live");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let taken = register(&hub, 1, ConnRole::Agent(staff(&id, expires))).await;
        assert_eq!(taken.close, Some((close::SESSION_ENDED, "session expired")));
        assert_eq!(hub.figures().await.expect("the hub runs").agents_online, 0);
        shutdown.cancel();
    }
}
