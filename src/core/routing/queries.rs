//! What the adapters read of the routing state: places in line, queues, agents, chats.
//! Reads only: every change is an event in `routing.rs`.

use std::collections::BTreeSet;

use super::{AgentId, AgentView, CategoryId, ChatId, CustomerId, CustomerState, OfferId, Routing, RoutingMode, Ticket};

impl Routing {
    pub fn has_category(&self, category: &CategoryId) -> bool {
        self.queues.contains_key(category)
    }

    pub fn waiting(&self, category: &CategoryId) -> usize {
        self.queues.get(category).map_or(0, BTreeSet::len)
    }

    /// Waiting customers per category, in category order.
    pub fn waiting_counts(&self) -> impl Iterator<Item = (&CategoryId, usize)> {
        self.queues.iter().map(|(c, q)| (c, q.len()))
    }

    /// The ticket of the longest-waiting customer of each category (for "longest current wait").
    pub fn oldest_ticket(&self, category: &CategoryId) -> Option<Ticket> {
        self.queues.get(category)?.first().map(|(t, _)| *t)
    }

    /// The customer's place in line (1-based), or `None` when not waiting.
    pub fn place(&self, id: CustomerId) -> Option<usize> {
        let c = self.customers.get(&id)?;
        (c.state == CustomerState::Waiting).then(|| self.queues[&c.category].range(..(c.ticket, id)).count() + 1)
    }

    pub fn customer_chat(&self, id: CustomerId) -> Option<ChatId> {
        match self.customers.get(&id)?.state {
            CustomerState::Chatting(chat) => Some(chat),
            CustomerState::Waiting => None,
        }
    }

    /// The chat a waiting customer goes on in when paired (they were handed to a category).
    pub fn customer_continuing(&self, id: CustomerId) -> Option<ChatId> {
        self.customers.get(&id)?.continuing
    }

    /// The conversation a customer continues (a returning customer), if any.
    pub fn customer_conversation(&self, id: CustomerId) -> Option<&super::ConversationId> {
        self.customers.get(&id)?.conversation.as_ref()
    }

    /// The customer continuing conversation `id` now (waiting or chatting), if any.
    pub fn conversation_customer(&self, id: &super::ConversationId) -> Option<CustomerId> {
        self.live.get(id).copied()
    }

    pub fn customer_category(&self, id: CustomerId) -> Option<&CategoryId> {
        self.customers.get(&id).map(|c| &c.category)
    }

    pub fn chat_sides(&self, chat: ChatId) -> Option<(CustomerId, &AgentId)> {
        self.chats.get(&chat).map(|c| (c.customer, &c.agent))
    }

    pub fn chat_category(&self, chat: ChatId) -> Option<&CategoryId> {
        self.chats.get(&chat).map(|c| &c.category)
    }

    pub fn agent(&self, id: &AgentId) -> Option<AgentView> {
        self.agents.get(id).map(|a| AgentView {
            categories: a.categories.iter().cloned().collect(),
            limit: a.limit,
            available: a.available,
            busy: a.busy,
            away_reason: a.away_reason.clone(),
            connected: a.away_epoch.is_none(),
            chats: a.chats.iter().copied().collect(),
            offers: a.offers.iter().copied().collect(),
        })
    }

    pub fn agents(&self) -> impl Iterator<Item = (&AgentId, AgentView)> {
        self.agents
            .keys()
            .map(|id| (id, self.agent(id).expect("listed agents exist")))
    }

    /// Agents (connected or away within grace) holding `category`.
    pub fn agents_of(&self, category: &CategoryId) -> impl Iterator<Item = &AgentId> {
        self.agents
            .iter()
            .filter(move |(_, a)| a.categories.contains(category))
            .map(|(id, _)| id)
    }

    /// Whether a category is open now (unknown ones are not).
    pub fn is_open(&self, category: &CategoryId) -> bool {
        self.queues.contains_key(category) && !self.closed.contains(category)
    }

    /// Whether someone will answer in `category` soon: a connected agent holding it who is
    /// not away (available, busy finishing their chats, or full). Customers are told when
    /// nobody is (the offline path).
    pub fn staffed(&self, category: &CategoryId) -> bool {
        self.agents
            .values()
            .any(|a| a.away_epoch.is_none() && (a.available || a.busy) && a.categories.contains(category))
    }

    /// The chat slots of the agents who may serve `category` now or soon (connected, holding
    /// it, available or busy finishing their chats): the estimate's `S`.
    pub fn serving_slots(&self, category: &CategoryId) -> usize {
        self.agents
            .values()
            .filter(|a| a.away_epoch.is_none() && (a.available || a.busy) && a.categories.contains(category))
            .map(|a| usize::from(a.limit))
            .sum()
    }

    /// The longest-waiting customer of a category (away or not).
    pub fn front(&self, category: &CategoryId) -> Option<CustomerId> {
        self.queues.get(category)?.first().map(|(_, c)| *c)
    }

    /// The stamp of the hours `category`'s open or closed state in force was read from (0: never, or without one).
    pub fn open_set_at(&self, category: &CategoryId) -> u64 {
        self.open_set_at.get(category).copied().unwrap_or(0)
    }

    /// When `category`'s mode in force was stored (0: never, or without a stamp).
    pub fn mode_set_at(&self, category: &CategoryId) -> u64 {
        self.mode_set_at.get(category).copied().unwrap_or(0)
    }

    /// How `category`'s customers reach agents (unknown ones assign).
    pub fn routing_mode(&self, category: &CategoryId) -> RoutingMode {
        if self.offer_mode.contains(category) {
            RoutingMode::Offer
        } else {
            RoutingMode::Assign
        }
    }

    /// A standing offer: its customer, agent and category.
    pub fn offer(&self, id: OfferId) -> Option<(CustomerId, &AgentId, &CategoryId)> {
        self.offers.get(&id).map(|o| (o.customer, &o.agent, &o.category))
    }

    /// The offers standing (each holds a chat's room in the archive until it ends).
    pub fn offers_standing(&self) -> usize {
        self.offers.len()
    }

    pub fn chats_active(&self) -> usize {
        self.chats.len()
    }

    pub fn customers_connected(&self) -> usize {
        self.customers.values().filter(|c| c.away_epoch.is_none()).count()
    }

    /// Whether a known customer is connected (`Some(false)`: away within grace). A
    /// cluster node's replica replays a node's loss with it (`cluster::replica`).
    pub fn customer_connected(&self, id: CustomerId) -> Option<bool> {
        self.customers.get(&id).map(|c| c.away_epoch.is_none())
    }
}
