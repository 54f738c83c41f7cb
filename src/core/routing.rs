//! The customer-service routing rules: category queues, agent eligibility and
//! pairing, chats and their end, disconnects and grace periods.
//!
//! This module is pure and synchronous: it never does I/O, never reads a
//! clock, never allocates ids outside its own counters and knows nothing of
//! JSON. Each event is a method that either fails with [`RoutingError`] and
//! changes nothing, or applies the event and appends the resulting
//! [`Decision`]s for the adapter to carry out (deliver frames, start timers,
//! archive).
//!
//! Invariants after every event (checked by the property tests below):
//! - no agent is given a chat while at or above their limit, and never a chat
//!   of a category they do not hold;
//! - a customer is waiting in exactly one queue or in exactly one chat, never both;
//! - within a category, connected customers are paired in the order they
//!   joined (their *ticket*), including those put back at the front after
//!   their agent vanished;
//! - work conservation: no connected customer waits in a category while an
//!   agent eligible for it has spare capacity;
//! - a conversation has one live customer at most: a customer continuing it (waiting or
//!   chatting), or whose chat began it (once the adapter names conversations,
//!   [`Routing::name_conversations`]), holds it until they are forgotten, and a second
//!   join continuing it is refused ([`RoutingError::AlreadyLive`]).
//!
//! Place updates are coalesced: events only mark a queue dirty and
//! [`Routing::flush_places`] tells each waiting customer whose 1-based place
//! changed since they were last told, so a burst of events over a long queue
//! costs one pass over it rather than one per event.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

/// An anonymous customer, allocated by [`Routing::join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomerId(pub u64);

/// A chat between one customer and one agent, allocated at pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChatId(pub u64);

/// An agent account id, as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId(pub String);

/// A category id, as the store knows it. Shared, not copied: every waiting customer's
/// entry in the routing core, the places and the waits names their category, and a copy
/// each was a heap block each (an idle customer's memory is a target).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CategoryId(pub std::sync::Arc<str>);

impl CategoryId {
    pub fn new(name: &str) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for CategoryId {
    fn from(name: String) -> Self {
        Self(name.into())
    }
}

impl From<&str> for CategoryId {
    fn from(name: &str) -> Self {
        Self(name.into())
    }
}

/// A conversation a customer continues (its id as the store and the wire know it). A chat
/// is one live session of it; the core keeps one live customer per conversation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConversationId(pub String);

impl ConversationId {
    /// The conversation chat `chat` of routing domain `domain` begins (its customer joined
    /// without continuing one): the chat's id on the wire and in the archive on every node,
    /// a name-based UUID (SHA-1, as v5) of the domain's id and the chat id. The routing
    /// scripts name it alike (`lua/routing.lua`'s `conversation_of`).
    pub fn of_chat(domain: &str, chat: ChatId) -> Self {
        use sha1::Digest;
        let digest = sha1::Sha1::new()
            .chain_update(domain)
            .chain_update(b"/")
            .chain_update(chat.0.to_string());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest.finalize()[..16]);
        Self(uuid::Builder::from_sha1_bytes(bytes).into_uuid().to_string())
    }
}

/// An offer of a waiting customer to one agent (a category in offer mode), allocated when made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OfferId(pub u64);

/// How a category's customers reach agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingMode {
    /// The chosen agent gets the chat at once.
    Assign,
    /// The chosen agent is offered the customer and accepts or declines; the customer keeps
    /// their place until an agent accepts.
    Offer,
}

impl RoutingMode {
    /// The word clients send and see.
    pub fn word(self) -> &'static str {
        match self {
            Self::Assign => "assign",
            Self::Offer => "offer",
        }
    }

    pub fn from_word(word: &str) -> Option<Self> {
        [Self::Assign, Self::Offer].into_iter().find(|m| m.word() == word)
    }
}

/// Why an offer ended without a chat (an accepted one ends in [`Decision::Paired`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferEnd {
    /// The agent declined it.
    Declined,
    /// Nobody answered it in time ([`Routing::offer_expired`]).
    Lapsed,
    /// It no longer stands: the customer left or dropped, the agent dropped, went away or
    /// busy, lost the category or the room under their limit, or the category closed, was
    /// removed or left offer mode.
    Withdrawn,
}

impl OfferEnd {
    /// The word clients see.
    pub fn word(self) -> &'static str {
        match self {
            Self::Declined => "declined",
            Self::Lapsed => "lapsed",
            Self::Withdrawn => "withdrawn",
        }
    }
}

/// How many offers in a row an agent may let lapse before they are set away.
pub const LAPSES_BEFORE_AWAY: u8 = 2;

/// The away reason of an agent set away for letting offers lapse.
pub const MISSED_OFFERS_REASON: &str = "Missed two chat offers";

/// Order of arrival in a queue: lower waited longer. Kept when a customer is
/// put back after their agent vanished, so they keep their original wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// Who ended a chat, or made something happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Customer,
    Agent,
    /// The hub: grace expiry, an admin's change, shutdown.
    System,
}

/// Why a chat ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatEnd {
    /// One side chose to end it (see `ended_by`).
    Ended,
    /// The customer left or did not come back within the grace period.
    CustomerGone,
    /// The hub is shutting down.
    Shutdown,
}

/// Why a waiting customer was taken out of their queue by the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// They left, or did not come back within the grace period.
    Left,
    /// An admin removed their category.
    CategoryRemoved,
}

/// What the adapter must carry out after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A customer entered a queue (on join, or put back after their agent vanished).
    Queued {
        customer: CustomerId,
        category: CategoryId,
        place: usize,
        requeued: bool,
    },
    /// A waiting customer's place changed; only emitted by [`Routing::flush_places`].
    PlaceChanged {
        customer: CustomerId,
        place: usize,
    },
    /// A customer and an agent now chat.
    Paired {
        chat: ChatId,
        customer: CustomerId,
        agent: AgentId,
        category: CategoryId,
        ticket: Ticket,
    },
    ChatEnded {
        chat: ChatId,
        customer: CustomerId,
        agent: AgentId,
        ended_by: Party,
        reason: ChatEnd,
    },
    /// A customer left their queue; `Removal::CategoryRemoved` means the adapter closes their connection.
    Dequeued {
        customer: CustomerId,
        reason: Removal,
    },
    /// The customer of `chat` lost their connection; tell the agent.
    CustomerAway {
        chat: ChatId,
        agent: AgentId,
    },
    /// The customer of `chat` is back; tell the agent.
    CustomerBack {
        chat: ChatId,
        agent: AgentId,
    },
    /// The agent of `chat` lost their connection; tell the customer.
    AgentAway {
        chat: ChatId,
        customer: CustomerId,
    },
    /// The agent of `chat` is back; tell the customer.
    AgentBack {
        chat: ChatId,
        customer: CustomerId,
    },
    /// The agent's chat was taken from them (they vanished past the grace period,
    /// were disabled, or went offline); the customer is re-queued by a separate `Queued`
    /// and, paired again, goes on in the same chat (its id and seq), as after a transfer
    /// to a category.
    ChatWithdrawn {
        chat: ChatId,
        customer: CustomerId,
        agent: AgentId,
    },
    /// Start a grace timer; call the matching `*_grace_expired` with this epoch when it fires.
    CustomerGraceStarted {
        customer: CustomerId,
        epoch: u64,
    },
    AgentGraceStarted {
        agent: AgentId,
        epoch: u64,
    },
    /// The number of customers waiting in a category changed (for agents' and admins' live figures).
    WaitingChanged {
        category: CategoryId,
        waiting: usize,
    },
    /// An agent who was busy until their chats ended has no chat left: they are available
    /// again (tell them; their new status is already applied).
    BusyEnded {
        agent: AgentId,
    },
    /// A category opened or closed (business hours, or an admin). Closed: nobody is paired in
    /// it and nobody may join it; those already waiting keep their place (tell them).
    CategoryOpenChanged {
        category: CategoryId,
        open: bool,
    },
    /// A waiting customer is offered to an agent (a category in offer mode): tell the agent,
    /// and start the offer's timer (call [`Routing::offer_expired`] when it fires). The
    /// customer keeps their place meanwhile.
    Offered {
        offer: OfferId,
        customer: CustomerId,
        agent: AgentId,
        category: CategoryId,
        ticket: Ticket,
    },
    /// An offer ended without a chat; tell the agent. The customer waits on, in their place.
    OfferEnded {
        offer: OfferId,
        customer: CustomerId,
        agent: AgentId,
        why: OfferEnd,
    },
    /// An agent handed a running chat to another agent (same chat, same seq): tell the
    /// customer who they are with now, give the new agent the transcript. `category`: the
    /// category the chat moved into, when the transferring agent moved it (else it kept its own).
    ChatTransferred {
        chat: ChatId,
        customer: CustomerId,
        from: AgentId,
        to: AgentId,
        category: Option<CategoryId>,
    },
    /// An agent handed a running chat to a category: the customer waits in its line again
    /// with their original ticket (ahead of everyone who joined it later), and the chat goes
    /// on, same id, with the agent they are paired with next (a `Queued` follows).
    ChatToCategory {
        chat: ChatId,
        customer: CustomerId,
        from: AgentId,
        category: CategoryId,
    },
    /// The agent let [`LAPSES_BEFORE_AWAY`] offers in a row lapse and is now away (reason
    /// [`MISSED_OFFERS_REASON`]); tell them why.
    AwayAfterMissedOffers {
        agent: AgentId,
    },
}

/// Its stable code (`code()`) is its name in snake case, and reads back into it (`str::parse`).
#[derive(Debug, Clone, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum RoutingError {
    UnknownCategory,
    UnknownCustomer,
    UnknownAgent,
    UnknownChat,
    /// The chat exists but the caller is not one of its sides.
    NotYourChat,
    /// The customer is waiting, not chatting (or the other way round).
    WrongState,
    /// An agent limit outside 1 to 4.
    InvalidLimit,
    AlreadyOnline,
    AlreadyExists,
    /// The category is closed now (outside its hours): nobody may join it.
    CategoryClosed,
    /// No such offer stands for this agent (it ended, or was never theirs).
    UnknownOffer,
    /// A transfer's target agent cannot take the chat now (offline, away, busy, at their
    /// limit, or the transferring agent themselves), or does not hold the category the chat
    /// was to move into.
    AgentNotEligible,
    /// A join continuing a conversation that another customer continues now (waiting or
    /// chatting): one live customer per conversation.
    AlreadyLive,
}

impl RoutingError {
    /// The stable error code clients see.
    pub fn code(&self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for RoutingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownCategory => "no such category",
            Self::UnknownCustomer => "no such customer",
            Self::UnknownAgent => "no such agent",
            Self::UnknownChat => "no such chat",
            Self::NotYourChat => "that chat is not yours",
            Self::WrongState => "not allowed in your current state",
            Self::InvalidLimit => "the chat limit must be from 1 to 4",
            Self::AlreadyOnline => "this agent is already online",
            Self::AlreadyExists => "it exists already",
            Self::CategoryClosed => "this category is closed now",
            Self::UnknownOffer => "no such offer is open for you (it was taken back or timed out)",
            Self::AgentNotEligible => {
                "that agent cannot take this chat now (offline, away, busy, without its category, or at their limit)"
            }
            Self::AlreadyLive => "this conversation is open in another window",
        })
    }
}

impl std::error::Error for RoutingError {}

/// What an agent has chosen to do about new chats (their running chats go on in every status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    /// Takes new chats up to their limit.
    Available,
    /// Takes no new chat.
    Away,
    /// Takes no new chat until their running chats have ended, then is available again
    /// ([`Decision::BusyEnded`]); with no chat running, available at once.
    Busy,
}

impl AgentStatus {
    /// The word clients send and see.
    pub fn word(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Away => "away",
            Self::Busy => "busy",
        }
    }

    pub fn from_word(word: &str) -> Option<Self> {
        [Self::Available, Self::Away, Self::Busy]
            .into_iter()
            .find(|s| s.word() == word)
    }
}

/// The longest away reason the core keeps (characters); the adapter refuses longer ones.
pub const AWAY_REASON_MAX_CHARS: usize = 80;

/// The lowest and highest number of concurrent chats an admin may give an agent.
pub const LIMIT_RANGE: std::ops::RangeInclusive<u8> = 1..=4;

#[derive(Debug, Clone, PartialEq, Eq)]
enum CustomerState {
    Waiting,
    Chatting(ChatId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Customer {
    category: CategoryId,
    ticket: Ticket,
    state: CustomerState,
    /// `None` while connected; the epoch of the pending grace timer while away.
    away_epoch: Option<u64>,
    /// The place this customer was last told; 0 when not waiting.
    told_place: usize,
    /// The offer of this waiting customer to an agent, while one stands.
    offer: Option<OfferId>,
    /// The agents who declined this customer, let their offer lapse or transferred them to
    /// a category, since the last time every eligible agent had: the next offer or pairing
    /// goes to someone else while anyone else can take it (a round over the agents, not one
    /// agent rung over and over, nor a transfer bouncing back).
    passed: BTreeSet<AgentId>,
    /// The chat this waiting customer continues once paired (they were transferred to a
    /// category, or their agent went offline): paired again, it keeps its id (and its seq).
    continuing: Option<ChatId>,
    /// The conversation this customer continues (a returning customer), held while they are.
    conversation: Option<ConversationId>,
}

impl Customer {
    /// Can be offered or paired now: connected, and no offer stands for them.
    fn ready(&self) -> bool {
        self.away_epoch.is_none() && self.offer.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Agent {
    categories: BTreeSet<CategoryId>,
    limit: u8,
    /// Takes new chats (status available); `busy` and `available` are never both set.
    available: bool,
    /// Takes no new chat until their chats have ended (status busy).
    busy: bool,
    /// Why they are away, as they said (status away only).
    away_reason: Option<String>,
    /// `None` while connected; the epoch of the pending grace timer while away.
    away_epoch: Option<u64>,
    chats: BTreeSet<ChatId>,
    /// The offers standing for this agent: each counts against their limit.
    offers: BTreeSet<OfferId>,
    /// Offers they let lapse in a row (an answer, yes or no, resets it).
    lapses: u8,
    /// When this agent last got a chat (or came online): ties between equally
    /// loaded agents go to the one who has waited longest.
    last_assigned: u64,
}

impl Agent {
    /// Chats running and offers standing: what the limit bounds.
    fn load(&self) -> usize {
        self.chats.len() + self.offers.len()
    }

    fn has_capacity(&self) -> bool {
        self.load() < usize::from(self.limit)
    }

    fn eligible(&self) -> bool {
        self.away_epoch.is_none() && self.available && self.has_capacity()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Chat {
    customer: CustomerId,
    agent: AgentId,
    category: CategoryId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Offer {
    customer: CustomerId,
    agent: AgentId,
    category: CategoryId,
}

/// The routing state of one hub. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// Known categories, each with its queue ordered by ticket.
    queues: BTreeMap<CategoryId, BTreeSet<(Ticket, CustomerId)>>,
    /// Boxed: a hash table keeps up to twice the slots it fills, and a hub full of waiting
    /// customers paid more for the empty slots than for the entries.
    customers: HashMap<CustomerId, Box<Customer>>,
    /// Online agents (connected, or away within their grace period).
    agents: BTreeMap<AgentId, Agent>,
    chats: BTreeMap<ChatId, Chat>,
    /// Queues whose places must be re-told at the next flush.
    dirty: HashSet<CategoryId>,
    /// One counter for every id and ordering this module hands out.
    counter: u64,
    /// How many more chats may open, when the adapter limits them (the archive's room for
    /// a conversation's opening and closing); `None` is no limit.
    pairing_room: Option<usize>,
    /// A pairing was possible but the room was spent: route again once it grows.
    held_back: bool,
    /// Categories closed now (outside their hours): nobody joins or is paired in them.
    closed: BTreeSet<CategoryId>,
    /// Categories in offer mode (the others assign).
    offer_mode: BTreeSet<CategoryId>,
    /// When each category's mode in force was stored (the adapter's stamp, ms since the
    /// epoch; 0 when it was stored without one): a mode read before a newer one was stored
    /// changes nothing ([`Routing::set_category_mode`]).
    mode_set_at: BTreeMap<CategoryId, u64>,
    /// The stamp of the hours each category's open or closed state in force was read from
    /// (the adapter's, ms since the epoch; 0 without one): a state read from older hours
    /// changes nothing ([`Routing::set_category_open`]).
    open_set_at: BTreeMap<CategoryId, u64>,
    /// The offers standing, each of one waiting customer to one agent.
    offers: BTreeMap<OfferId, Offer>,
    /// The conversations customers continue now, each with its one live customer.
    live: HashMap<ConversationId, CustomerId>,
    /// The routing domain's id, when chats are named by it (a cluster): a chat that begins
    /// a conversation names it ([`ConversationId::of_chat`]), and its customer holds it as
    /// one continuing a conversation does. Not part of the state: the adapter sets it.
    domain: Option<std::sync::Arc<str>>,
}

/// A read-only view of an online agent, for the adapter's live figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    pub categories: Vec<CategoryId>,
    pub limit: u8,
    pub available: bool,
    /// Takes no new chat until their chats have ended.
    pub busy: bool,
    pub away_reason: Option<String>,
    pub connected: bool,
    pub chats: Vec<ChatId>,
    /// Offers standing for them (they count against the limit).
    pub offers: Vec<OfferId>,
}

/// Where an online agent stands, as a supervisor reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStanding {
    /// Connected, available and below their limit: the next customer can be theirs now.
    Available,
    /// Connected and available, but at their limit.
    Full,
    /// Connected and set away.
    Away,
    /// Connected, finishing their chats, taking no new one.
    Busy,
    /// Their connection dropped; they have the grace period to come back.
    Disconnected,
}

impl AgentView {
    /// The status the agent chose.
    pub fn status(&self) -> AgentStatus {
        if self.busy {
            AgentStatus::Busy
        } else if self.available {
            AgentStatus::Available
        } else {
            AgentStatus::Away
        }
    }

    /// The standing that decides whether a customer can be paired with them now.
    pub fn standing(&self) -> AgentStanding {
        if !self.connected {
            AgentStanding::Disconnected
        } else if self.busy {
            AgentStanding::Busy
        } else if !self.available {
            AgentStanding::Away
        } else if self.chats.len() + self.offers.len() >= usize::from(self.limit) {
            AgentStanding::Full
        } else {
            AgentStanding::Available
        }
    }
}

impl Routing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the conversation each chat begins from now on by routing domain `domain`
    /// ([`ConversationId::of_chat`]): so a conversation's first live chat has its one live
    /// customer too, and a join continuing it meanwhile is refused
    /// [`RoutingError::AlreadyLive`].
    pub fn name_conversations(&mut self, domain: &str) {
        self.domain = Some(domain.into());
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    // ---- categories -------------------------------------------------------

    pub fn add_category(&mut self, category: CategoryId) -> Result<(), RoutingError> {
        if self.queues.contains_key(&category) {
            return Err(RoutingError::AlreadyExists);
        }
        self.queues.insert(category, BTreeSet::new());
        Ok(())
    }

    /// Removes a category: its waiting customers are dequeued (the adapter closes
    /// them), agents stop holding it. Running chats of it go on to their end.
    pub fn remove_category(&mut self, category: &CategoryId, out: &mut Vec<Decision>) -> Result<(), RoutingError> {
        if !self.queues.contains_key(category) {
            return Err(RoutingError::UnknownCategory);
        }
        let freed = self.withdraw_offers_in(category, out);
        let queue = self.queues.remove(category).expect("checked above");
        for (_, customer) in queue {
            self.forget_customer(customer);
            out.push(Decision::Dequeued {
                customer,
                reason: Removal::CategoryRemoved,
            });
        }
        for agent in self.agents.values_mut() {
            agent.categories.remove(category);
        }
        self.closed.remove(category);
        self.offer_mode.remove(category);
        self.mode_set_at.remove(category);
        self.open_set_at.remove(category);
        self.dirty.remove(category);
        out.push(Decision::WaitingChanged {
            category: category.clone(),
            waiting: 0,
        });
        for agent in freed {
            self.route_agent(&agent, out);
        }
        Ok(())
    }

    // ---- customers --------------------------------------------------------

    /// A new customer joins `category`'s queue; paired at once when an agent is eligible.
    pub fn join(&mut self, category: &CategoryId, out: &mut Vec<Decision>) -> Result<CustomerId, RoutingError> {
        self.admit(category, None, None, out)
    }

    /// A customer comes back to conversation `conversation`: as [`Routing::join`] (or
    /// [`Routing::join_preferring`] with `preferred`), refused [`RoutingError::AlreadyLive`]
    /// while another customer continues it; they hold it until they are forgotten (they
    /// left the line, their chat ended, their category was removed).
    pub fn join_continuing(
        &mut self,
        category: &CategoryId,
        conversation: &ConversationId,
        preferred: Option<&AgentId>,
        out: &mut Vec<Decision>,
    ) -> Result<CustomerId, RoutingError> {
        self.admit(category, preferred, Some(conversation), out)
    }

    /// A customer comes back to a conversation `preferred` holds (the sticky return): as
    /// [`Routing::join`], but paired at once with `preferred` when they hold the category and
    /// can take a chat now (connected, available, below their limit), whatever the
    /// category's routing mode: they know the customer, and it is in their list. Otherwise
    /// the customer waits in the line like anyone new.
    ///
    /// FIFO holds: an agent who holds the category and can take a chat has no connected
    /// customer of it waiting for them (work conservation), so nobody is passed over.
    pub fn join_preferring(
        &mut self,
        category: &CategoryId,
        preferred: &AgentId,
        out: &mut Vec<Decision>,
    ) -> Result<CustomerId, RoutingError> {
        self.admit(category, Some(preferred), None, out)
    }

    fn admit(
        &mut self,
        category: &CategoryId,
        preferred: Option<&AgentId>,
        conversation: Option<&ConversationId>,
        out: &mut Vec<Decision>,
    ) -> Result<CustomerId, RoutingError> {
        // The core's own id of the category: the customer's entries here and in what
        // their decisions feed (places, waits) share its one allocation.
        let Some((category, _)) = self.queues.get_key_value(category) else {
            return Err(RoutingError::UnknownCategory);
        };
        let category = category.clone();
        if self.closed.contains(&category) {
            return Err(RoutingError::CategoryClosed);
        }
        if conversation.is_some_and(|c| self.live.contains_key(c)) {
            return Err(RoutingError::AlreadyLive);
        }
        let id = CustomerId(self.next());
        let ticket = Ticket(self.next());
        self.enqueue(id, category.clone(), ticket, false, out);
        if let Some(conversation) = conversation {
            self.live.insert(conversation.clone(), id);
            self.customers.get_mut(&id).expect("enqueued just now").conversation = Some(conversation.clone());
        }
        let preferred = preferred.filter(|agent| {
            self.agents
                .get(*agent)
                .is_some_and(|a| a.eligible() && a.categories.contains(&category))
        });
        if let Some(agent) = preferred
            && self.may_pair()
        {
            self.pair(id, ticket, category.clone(), agent.clone(), out);
        }
        self.route_category(&category, out);
        Ok(id)
    }

    /// Puts a customer (new, or back from a vanished agent) into their queue and tells them their place.
    fn enqueue(
        &mut self,
        id: CustomerId,
        category: CategoryId,
        ticket: Ticket,
        requeued: bool,
        out: &mut Vec<Decision>,
    ) {
        let queue = self.queues.get_mut(&category).expect("enqueue into a known category");
        let at_end = queue.last().is_none_or(|last| *last < (ticket, id));
        queue.insert((ticket, id));
        let waiting = queue.len();
        // New joins go last (their ticket is the newest), which must not cost a walk of a long queue.
        let place = if at_end {
            waiting
        } else {
            queue.range(..(ticket, id)).count() + 1
        };
        let customer = self.customers.entry(id).or_insert_with(|| {
            Box::new(Customer {
                category: category.clone(),
                ticket,
                state: CustomerState::Waiting,
                away_epoch: None,
                told_place: 0,
                offer: None,
                passed: BTreeSet::new(),
                continuing: None,
                conversation: None,
            })
        });
        customer.state = CustomerState::Waiting;
        customer.told_place = place;
        customer.passed.clear();
        if place < waiting {
            // Someone was put in front of others: their places moved.
            self.dirty.insert(category.clone());
        }
        out.push(Decision::Queued {
            customer: id,
            category: category.clone(),
            place,
            requeued,
        });
        out.push(Decision::WaitingChanged { category, waiting });
    }

    /// A customer who is gone from the routing: the conversation they continued is free.
    fn forget_customer(&mut self, id: CustomerId) {
        if let Some(conversation) = self.customers.remove(&id).and_then(|c| c.conversation) {
            self.live.remove(&conversation);
        }
    }

    fn dequeue(&mut self, id: CustomerId, out: &mut Vec<Decision>) {
        let Some(customer) = self.customers.get_mut(&id) else {
            return;
        };
        customer.told_place = 0;
        let category = customer.category.clone();
        let queue = self.queues.get_mut(&category).expect("waiting customers have a queue");
        queue.remove(&(customer.ticket, id));
        let waiting = queue.len();
        self.dirty.insert(category.clone());
        out.push(Decision::WaitingChanged { category, waiting });
    }

    /// A customer asks to leave: out of their queue, or ending their chat.
    pub fn leave(&mut self, id: CustomerId, out: &mut Vec<Decision>) -> Result<(), RoutingError> {
        let state = self
            .customers
            .get(&id)
            .ok_or(RoutingError::UnknownCustomer)?
            .state
            .clone();
        match state {
            CustomerState::Waiting => {
                let offered_to = self.withdraw_customer_offer(id, out);
                self.dequeue(id, out);
                self.forget_customer(id);
                out.push(Decision::Dequeued {
                    customer: id,
                    reason: Removal::Left,
                });
                if let Some(agent) = offered_to {
                    self.route_agent(&agent, out);
                }
            }
            CustomerState::Chatting(chat) => {
                self.end_chat_inner(chat, Party::Customer, ChatEnd::Ended, out);
            }
        }
        Ok(())
    }

    /// The customer's connection dropped: they keep their place or chat for the grace period.
    /// While away a waiting customer keeps their place but is not paired.
    pub fn customer_disconnected(&mut self, id: CustomerId, out: &mut Vec<Decision>) -> Result<(), RoutingError> {
        if !self.customers.contains_key(&id) {
            return Err(RoutingError::UnknownCustomer);
        }
        let epoch = self.next();
        let customer = self.customers.get_mut(&id).expect("checked above");
        customer.away_epoch = Some(epoch);
        if let CustomerState::Chatting(chat) = customer.state {
            let agent = self.chats[&chat].agent.clone();
            out.push(Decision::CustomerAway { chat, agent });
        }
        out.push(Decision::CustomerGraceStarted { customer: id, epoch });
        // Nobody can accept a customer who is not there: their offer goes back.
        if let Some(agent) = self.withdraw_customer_offer(id, out) {
            self.route_agent(&agent, out);
        }
        Ok(())
    }

    /// The customer came back within the grace period with their resume token.
    pub fn customer_resumed(&mut self, id: CustomerId, out: &mut Vec<Decision>) -> Result<(), RoutingError> {
        let customer = self.customers.get_mut(&id).ok_or(RoutingError::UnknownCustomer)?;
        if customer.away_epoch.take().is_none() {
            return Err(RoutingError::WrongState);
        }
        match customer.state {
            CustomerState::Chatting(chat) => {
                let agent = self.chats[&chat].agent.clone();
                out.push(Decision::CustomerBack { chat, agent });
            }
            CustomerState::Waiting => {
                let category = customer.category.clone();
                self.route_category(&category, out);
            }
        }
        Ok(())
    }

    /// The grace timer of a customer fired. Stale epochs (they came back since) are ignored.
    pub fn customer_grace_expired(&mut self, id: CustomerId, epoch: u64, out: &mut Vec<Decision>) {
        let Some(customer) = self.customers.get(&id) else {
            return;
        };
        if customer.away_epoch != Some(epoch) {
            return;
        }
        match customer.state {
            CustomerState::Waiting => {
                self.dequeue(id, out);
                self.forget_customer(id);
                out.push(Decision::Dequeued {
                    customer: id,
                    reason: Removal::Left,
                });
            }
            CustomerState::Chatting(chat) => self.end_chat_inner(chat, Party::System, ChatEnd::CustomerGone, out),
        }
    }

    // ---- agents -----------------------------------------------------------

    /// An agent's connection opens. Unknown categories are ignored (they may have been removed meanwhile).
    /// An agent still inside their grace period gets their chats back; use [`Routing::agent_resumed`].
    pub fn agent_online(
        &mut self,
        id: AgentId,
        categories: impl IntoIterator<Item = CategoryId>,
        limit: u8,
        available: bool,
        out: &mut Vec<Decision>,
    ) -> Result<(), RoutingError> {
        if !LIMIT_RANGE.contains(&limit) {
            return Err(RoutingError::InvalidLimit);
        }
        if self.agents.contains_key(&id) {
            return Err(RoutingError::AlreadyOnline);
        }
        let categories = categories.into_iter().filter(|c| self.queues.contains_key(c)).collect();
        let last_assigned = self.next();
        self.agents.insert(
            id.clone(),
            Agent {
                categories,
                limit,
                available,
                busy: false,
                away_reason: None,
                away_epoch: None,
                chats: BTreeSet::new(),
                offers: BTreeSet::new(),
                lapses: 0,
                last_assigned,
            },
        );
        self.route_agent(&id, out);
        Ok(())
    }

    /// The agent's connection dropped: their customers are told; they take no new chat until back.
    pub fn agent_disconnected(&mut self, id: &AgentId, out: &mut Vec<Decision>) -> Result<(), RoutingError> {
        if !self.agents.contains_key(id) {
            return Err(RoutingError::UnknownAgent);
        }
        let epoch = self.next();
        let agent = self.agents.get_mut(id).expect("checked above");
        agent.away_epoch = Some(epoch);
        for chat in &agent.chats {
            out.push(Decision::AgentAway {
                chat: *chat,
                customer: self.chats[chat].customer,
            });
        }
        out.push(Decision::AgentGraceStarted {
            agent: id.clone(),
            epoch,
        });
        // Their offers go to someone who is there.
        let touched = self.release_unfit_offers(id, out);
        self.route_categories(touched, out);
        Ok(())
    }

    /// The agent reconnected within the grace period and gets their chats back.
    pub fn agent_resumed(&mut self, id: &AgentId, out: &mut Vec<Decision>) -> Result<(), RoutingError> {
        let agent = self.agents.get_mut(id).ok_or(RoutingError::UnknownAgent)?;
        if agent.away_epoch.take().is_none() {
            return Err(RoutingError::WrongState);
        }
        for chat in &agent.chats {
            out.push(Decision::AgentBack {
                chat: *chat,
                customer: self.chats[chat].customer,
            });
        }
        self.route_agent(id, out);
        Ok(())
    }

    /// The agent's grace timer fired: their customers go back to the front of
    /// their queues with their original wait, and the agent goes offline.
    pub fn agent_grace_expired(&mut self, id: &AgentId, epoch: u64, out: &mut Vec<Decision>) {
        match self.agents.get(id) {
            Some(agent) if agent.away_epoch == Some(epoch) => self.agent_offline(id, out),
            _ => {}
        }
    }

    /// The agent goes offline at once (disabled, or logged out): chats are withdrawn and customers re-queued.
    pub fn agent_offline(&mut self, id: &AgentId, out: &mut Vec<Decision>) {
        if !self.agents.contains_key(id) {
            return;
        }
        let offers: Vec<OfferId> = self.agents[id].offers.iter().copied().collect();
        let mut touched = BTreeSet::new();
        for offer in offers {
            touched.insert(self.withdraw_offer(offer, OfferEnd::Withdrawn, out).category);
        }
        let agent = self.agents.remove(id).expect("checked above");
        for chat_id in agent.chats {
            let chat = self.chats.remove(&chat_id).expect("agent chats exist");
            out.push(Decision::ChatWithdrawn {
                chat: chat_id,
                customer: chat.customer,
                agent: id.clone(),
            });
            let customer = self
                .customers
                .get_mut(&chat.customer)
                .expect("chatting customers exist");
            let ticket = customer.ticket;
            if self.queues.contains_key(&chat.category) {
                // Paired again, they go on in the same chat (its id and seq): the
                // conversation goes back to the line, not a new one.
                customer.continuing = Some(chat_id);
                self.enqueue(chat.customer, chat.category.clone(), ticket, true, out);
                touched.insert(chat.category);
            } else {
                // Their category was removed while they chatted: nowhere to go back to.
                self.forget_customer(chat.customer);
                out.push(Decision::Dequeued {
                    customer: chat.customer,
                    reason: Removal::CategoryRemoved,
                });
            }
        }
        self.route_categories(touched, out);
    }

    /// Available or away (with no reason): [`Routing::set_status`].
    pub fn set_available(
        &mut self,
        id: &AgentId,
        available: bool,
        out: &mut Vec<Decision>,
    ) -> Result<(), RoutingError> {
        let status = if available {
            AgentStatus::Available
        } else {
            AgentStatus::Away
        };
        self.set_status(id, status, None, out)
    }

    /// The agent chose what to do about new chats; `reason` is kept for `Away` only.
    /// Busy with no chat running is available at once (with [`Decision::BusyEnded`]).
    pub fn set_status(
        &mut self,
        id: &AgentId,
        status: AgentStatus,
        reason: Option<String>,
        out: &mut Vec<Decision>,
    ) -> Result<(), RoutingError> {
        let agent = self.agents.get_mut(id).ok_or(RoutingError::UnknownAgent)?;
        agent.available = status == AgentStatus::Available;
        agent.busy = status == AgentStatus::Busy;
        agent.away_reason = reason.filter(|r| status == AgentStatus::Away && !r.is_empty());
        self.end_busy_when_free(id, out);
        let touched = self.release_unfit_offers(id, out);
        self.route_categories(touched, out);
        self.route_agent(id, out);
        Ok(())
    }

    /// A busy agent with no chat left is available again.
    fn end_busy_when_free(&mut self, id: &AgentId, out: &mut Vec<Decision>) {
        if let Some(agent) = self.agents.get_mut(id)
            && agent.busy
            && agent.chats.is_empty()
        {
            agent.busy = false;
            agent.available = true;
            out.push(Decision::BusyEnded { agent: id.clone() });
        }
    }

    /// An admin set the agent's limit. Lowering it never ends running chats:
    /// the agent just takes no new one until below the new limit.
    pub fn set_limit(&mut self, id: &AgentId, limit: u8, out: &mut Vec<Decision>) -> Result<(), RoutingError> {
        if !LIMIT_RANGE.contains(&limit) {
            return Err(RoutingError::InvalidLimit);
        }
        let agent = self.agents.get_mut(id).ok_or(RoutingError::UnknownAgent)?;
        agent.limit = limit;
        let touched = self.release_unfit_offers(id, out);
        self.route_categories(touched, out);
        self.route_agent(id, out);
        Ok(())
    }

    /// An admin set the agent's categories. Running chats of a dropped category go on to their end.
    pub fn set_categories(
        &mut self,
        id: &AgentId,
        categories: impl IntoIterator<Item = CategoryId>,
        out: &mut Vec<Decision>,
    ) -> Result<(), RoutingError> {
        let categories = categories.into_iter().filter(|c| self.queues.contains_key(c)).collect();
        let agent = self.agents.get_mut(id).ok_or(RoutingError::UnknownAgent)?;
        agent.categories = categories;
        let touched = self.release_unfit_offers(id, out);
        self.route_categories(touched, out);
        self.route_agent(id, out);
        Ok(())
    }

    // ---- chats --------------------------------------------------------------

    /// Ends a chat at the request of one of its sides.
    pub fn end_chat(&mut self, chat: ChatId, by: Party, out: &mut Vec<Decision>) -> Result<(), RoutingError> {
        if !self.chats.contains_key(&chat) {
            return Err(RoutingError::UnknownChat);
        }
        self.end_chat_inner(chat, by, ChatEnd::Ended, out);
        Ok(())
    }

    /// Ends every chat (shutdown); waiting customers are left to the closing connections.
    pub fn end_all(&mut self, out: &mut Vec<Decision>) {
        let chats: Vec<ChatId> = self.chats.keys().copied().collect();
        for chat in chats {
            self.end_chat_inner(chat, Party::System, ChatEnd::Shutdown, out);
        }
    }

    fn end_chat_inner(&mut self, chat_id: ChatId, by: Party, reason: ChatEnd, out: &mut Vec<Decision>) {
        let chat = self.chats.remove(&chat_id).expect("caller checked the chat exists");
        self.forget_customer(chat.customer);
        out.push(Decision::ChatEnded {
            chat: chat_id,
            customer: chat.customer,
            agent: chat.agent.clone(),
            ended_by: by,
            reason,
        });
        if let Some(agent) = self.agents.get_mut(&chat.agent) {
            agent.chats.remove(&chat_id);
            self.end_busy_when_free(&chat.agent, out);
            self.route_agent(&chat.agent, out);
        }
    }

    // ---- opening hours ------------------------------------------------------

    /// Opens or closes a category (its hours, applied by the adapter's clock), as read from
    /// hours stamped `read_at` (the adapter's stamp of the hours document). Closing keeps
    /// those waiting in line, unpaired; opening pairs them at once where agents are free.
    /// Setting the state it already has changes nothing and decides nothing; neither does a
    /// state read from older hours than the one in force: every node hands over the states
    /// it reads, and a read that an admin's newer change overtook on its way must not undo
    /// it. A state without a stamp (`None`: sent by a node of a build before stamps, during
    /// a rolling upgrade) applies and keeps the stamp in force, as Redis applied it there.
    pub fn set_category_open(
        &mut self,
        category: &CategoryId,
        open: bool,
        read_at: Option<u64>,
        out: &mut Vec<Decision>,
    ) -> Result<(), RoutingError> {
        if !self.queues.contains_key(category) {
            return Err(RoutingError::UnknownCategory);
        }
        if !take_stamp(&mut self.open_set_at, category, read_at) {
            return Ok(());
        }
        let changed = if open {
            self.closed.remove(category)
        } else {
            self.closed.insert(category.clone())
        };
        if changed {
            out.push(Decision::CategoryOpenChanged {
                category: category.clone(),
                open,
            });
            if open {
                self.route_category(category, out);
            } else {
                // Nobody is paired in a closed category: its offers go back (the customers keep their place).
                for agent in self.withdraw_offers_in(category, out) {
                    self.route_agent(&agent, out);
                }
            }
        }
        Ok(())
    }

    // ---- pairing ------------------------------------------------------------

    /// Limits how many more chats may open from now on (`None`: no limit). A customer who
    /// could be paired but finds no room stays queued, keeping their place; when the room
    /// grows they are paired at once.
    pub fn set_pairing_room(&mut self, room: Option<usize>, out: &mut Vec<Decision>) {
        self.pairing_room = room;
        self.route_held_back(out);
    }

    /// Routes every category once if a pairing was held back for want of room and room has
    /// come back since: raised by [`Routing::set_pairing_room`], or given back by an offer
    /// withdrawn in another category (whose own routing would not reach the held-back
    /// customer). Every routing pass ends with it, so no event leaves room idle while a
    /// customer waits beside an eligible agent.
    fn route_held_back(&mut self, out: &mut Vec<Decision>) {
        if self.pairing_room != Some(0) && std::mem::take(&mut self.held_back) {
            let categories: Vec<CategoryId> = self.queues.keys().cloned().collect();
            for category in &categories {
                self.route_one_category(category, out);
            }
        }
    }

    /// Whether one more chat may open now; remembers a pairing held back for want of room.
    fn may_pair(&mut self) -> bool {
        let allowed = self.pairing_room != Some(0);
        if !allowed {
            self.held_back = true;
        }
        allowed
    }

    /// Pairs the longest-waiting connected customers of `category` with the best eligible agents,
    /// until one side runs out.
    fn route_category(&mut self, category: &CategoryId, out: &mut Vec<Decision>) {
        self.route_one_category(category, out);
        self.route_held_back(out);
    }

    /// [`Routing::route_category`] without the held-back pass.
    fn route_one_category(&mut self, category: &CategoryId, out: &mut Vec<Decision>) {
        if self.closed.contains(category) {
            return;
        }
        let offering = self.offer_mode.contains(category);
        while let Some((ticket, customer)) = self.front_ready(category) {
            let choice = self.choose_agent(customer, category);
            let Some((agent, new_round)) = choice else { break };
            if !self.may_pair() {
                break;
            }
            if offering {
                self.make_offer(customer, ticket, category.clone(), agent, new_round, out);
            } else {
                self.pair(customer, ticket, category.clone(), agent, out);
            }
        }
    }

    /// The eligible agents holding `category`, best first: the least loaded, then the one
    /// idle longest.
    fn eligible_for<'a>(&'a self, category: &'a CategoryId) -> impl Iterator<Item = AgentId> + 'a {
        let mut agents: Vec<(&AgentId, &Agent)> = self
            .agents
            .iter()
            .filter(|(_, a)| a.eligible() && a.categories.contains(category))
            .collect();
        agents.sort_by_key(|(_, a)| (a.load(), a.last_assigned));
        agents.into_iter().map(|(id, _)| id.clone())
    }

    /// Routes each of `categories`, in order.
    fn route_categories(&mut self, categories: BTreeSet<CategoryId>, out: &mut Vec<Decision>) {
        for category in &categories {
            self.route_category(category, out);
        }
    }

    /// Gives an agent the longest-waiting connected customer across their categories, until full.
    fn route_agent(&mut self, id: &AgentId, out: &mut Vec<Decision>) {
        self.fill_agent(id, out);
        self.route_held_back(out);
    }

    /// [`Routing::route_agent`] without the held-back pass.
    fn fill_agent(&mut self, id: &AgentId, out: &mut Vec<Decision>) {
        loop {
            let Some(agent) = self.agents.get(id) else { return };
            if !agent.eligible() {
                return;
            }
            let best = agent
                .categories
                .iter()
                .filter(|c| !self.closed.contains(*c))
                .filter_map(|c| self.front_ready(c).map(|(t, cust)| (t, cust, c.clone())))
                .min_by_key(|(t, _, _)| *t);
            let Some((ticket, customer, category)) = best else {
                return;
            };
            if !self.may_pair() {
                return;
            }
            // Whoever's turn it is for this customer: this agent, unless they passed them.
            let (to, new_round) = self
                .choose_agent(customer, &category)
                .expect("this agent is eligible for the category");
            if self.offer_mode.contains(&category) {
                self.make_offer(customer, ticket, category, to, new_round, out);
            } else {
                self.pair(customer, ticket, category, to, out);
            }
        }
    }

    /// The longest-waiting customer of a queue who can be offered or paired now (away
    /// customers, and those with an offer standing, keep their place but are skipped).
    fn front_ready(&self, category: &CategoryId) -> Option<(Ticket, CustomerId)> {
        self.queues
            .get(category)?
            .iter()
            .find(|(_, c)| self.customers[c].ready())
            .copied()
    }

    fn pair(
        &mut self,
        customer: CustomerId,
        ticket: Ticket,
        category: CategoryId,
        agent: AgentId,
        out: &mut Vec<Decision>,
    ) {
        if let Some(room) = &mut self.pairing_room {
            *room -= 1;
        }
        self.open_chat(customer, ticket, category, agent, out);
    }

    /// Opens the chat of a waiting customer with an agent (the room was counted by the caller).
    fn open_chat(
        &mut self,
        customer: CustomerId,
        ticket: Ticket,
        category: CategoryId,
        agent: AgentId,
        out: &mut Vec<Decision>,
    ) {
        self.dequeue(customer, out);
        let continuing = self.customers.get_mut(&customer).and_then(|c| c.continuing.take());
        let chat = continuing.unwrap_or_else(|| ChatId(self.next()));
        let stamp = self.next();
        let a = self.agents.get_mut(&agent).expect("pairing an online agent");
        a.chats.insert(chat);
        a.last_assigned = stamp;
        let c = self.customers.get_mut(&customer).expect("pairing a known customer");
        c.state = CustomerState::Chatting(chat);
        c.passed.clear();
        // A chat that begins a conversation: its customer holds it, named as the chat.
        if let (None, Some(domain)) = (&c.conversation, &self.domain) {
            let named = ConversationId::of_chat(domain, chat);
            if !self.live.contains_key(&named) {
                self.live.insert(named.clone(), customer);
                c.conversation = Some(named);
            }
        }
        self.chats.insert(
            chat,
            Chat {
                customer,
                agent: agent.clone(),
                category: category.clone(),
            },
        );
        out.push(Decision::Paired {
            chat,
            customer,
            agent,
            category,
            ticket,
        });
    }

    /// Some queue changed since the last [`Routing::flush_places`].
    pub fn has_unflushed_places(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Tells every waiting customer of a changed queue their new place, if it changed.
    pub fn flush_places(&mut self, out: &mut Vec<Decision>) {
        for category in std::mem::take(&mut self.dirty) {
            let Some(queue) = self.queues.get(&category) else {
                continue;
            };
            for (index, (_, id)) in queue.iter().enumerate() {
                let customer = self.customers.get_mut(id).expect("queued customers exist");
                let place = index + 1;
                if customer.told_place != place {
                    customer.told_place = place;
                    out.push(Decision::PlaceChanged { customer: *id, place });
                }
            }
        }
    }
}

// ---- offers with a timeout: the offer mode's events ----
mod offers;

// ---- transfers of a running chat to another agent or a category ----
mod transfers;

// ---- queries: what the adapters read of the state ----
mod queries;

// ---- the state as plain data, for a replica loaded from a snapshot ----
mod state;
pub use state::{InconsistentState, RoutingState, StateAgent, StateChat, StateCustomer, StateOffer};

#[cfg(test)]
mod tests;

/// Whether a change stamped `stamp` applies over the one in force for `category` in
/// `stamps` (its stamp kept there if so): a stamp older than the one in force does not; no
/// stamp (a node of a build before stamps) always does and leaves the stamp in force as it is.
fn take_stamp(stamps: &mut BTreeMap<CategoryId, u64>, category: &CategoryId, stamp: Option<u64>) -> bool {
    let Some(stamp) = stamp else {
        return true;
    };
    let in_force = stamps.entry(category.clone()).or_default();
    if stamp < *in_force {
        return false;
    }
    *in_force = stamp;
    true
}
