//! The routing state as plain data, and a `Routing` built from it: how a cluster node
//! starts its replica from a snapshot of the routing domain in Redis when the events
//! stream no longer holds everything it needs (a node joining late, past a trimmed stream;
//! `docs/cluster.md` §13). No rule is restated here: the state is taken as it is, and the
//! round trip `Routing::state` → `Routing::from_state` gives back the same `Routing`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{
    Agent, AgentId, CategoryId, Chat, ChatId, ConversationId, Customer, CustomerId, CustomerState, Offer, OfferId,
    Routing, Ticket,
};

/// A customer waiting or chatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCustomer {
    pub id: CustomerId,
    pub category: CategoryId,
    pub ticket: Ticket,
    /// The chat they are in; `None` while waiting.
    pub chat: Option<ChatId>,
    /// The epoch of their grace timer while away.
    pub away_epoch: Option<u64>,
    /// The agents who passed them this round (declined, let lapse, transferred), bytewise order.
    pub passed: Vec<AgentId>,
    /// The chat a waiting customer continues once paired (transferred to a category, or
    /// their agent went offline).
    pub continuing: Option<ChatId>,
    /// The conversation they continue (a returning customer), its one live customer.
    pub conversation: Option<ConversationId>,
}

/// An online agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateAgent {
    pub id: AgentId,
    pub categories: Vec<CategoryId>,
    pub limit: u8,
    pub available: bool,
    /// Busy until their chats end.
    pub busy: bool,
    pub away_reason: Option<String>,
    pub away_epoch: Option<u64>,
    /// The stamp of their last assignment (ties between equally loaded agents).
    pub last_assigned: u64,
    /// Offers they let lapse in a row.
    pub lapses: u8,
}

/// A running chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChat {
    pub id: ChatId,
    pub customer: CustomerId,
    pub agent: AgentId,
    /// The chat's category (it may have been removed since: the chat runs on).
    pub category: CategoryId,
}

/// An offer standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateOffer {
    pub id: OfferId,
    pub customer: CustomerId,
    pub agent: AgentId,
    pub category: CategoryId,
}

/// Everything a `Routing` holds that decides anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingState {
    pub categories: Vec<CategoryId>,
    pub customers: Vec<StateCustomer>,
    pub agents: Vec<StateAgent>,
    pub chats: Vec<StateChat>,
    /// The last id drawn: the next transition draws after it.
    pub counter: u64,
    pub pairing_room: Option<usize>,
    pub held_back: bool,
    /// Categories closed now, bytewise order.
    pub closed: Vec<CategoryId>,
    /// Categories in offer mode, bytewise order.
    pub offer_mode: Vec<CategoryId>,
    /// When each category's mode in force was stored, bytewise order of the category.
    pub mode_set_at: Vec<(CategoryId, u64)>,
    /// The stamp of the hours each category's open or closed state in force was read from, bytewise order.
    pub open_set_at: Vec<(CategoryId, u64)>,
    /// Offers standing, by id.
    pub offers: Vec<StateOffer>,
}

/// Why a state cannot be a `Routing`: it names someone or something it does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inconsistent routing state: {0}")]
pub struct InconsistentState(pub String);

impl Routing {
    /// This routing's state as plain data.
    pub fn state(&self) -> RoutingState {
        let mut customers: Vec<StateCustomer> = self
            .customers
            .iter()
            .map(|(id, c)| StateCustomer {
                id: *id,
                category: c.category.clone(),
                ticket: c.ticket,
                chat: match c.state {
                    CustomerState::Waiting => None,
                    CustomerState::Chatting(chat) => Some(chat),
                },
                away_epoch: c.away_epoch,
                passed: c.passed.iter().cloned().collect(),
                continuing: c.continuing,
                conversation: c.conversation.clone(),
            })
            .collect();
        customers.sort_by_key(|c| c.id);
        RoutingState {
            categories: self.queues.keys().cloned().collect(),
            customers,
            agents: self
                .agents
                .iter()
                .map(|(id, a)| StateAgent {
                    id: id.clone(),
                    categories: a.categories.iter().cloned().collect(),
                    limit: a.limit,
                    available: a.available,
                    busy: a.busy,
                    away_reason: a.away_reason.clone(),
                    away_epoch: a.away_epoch,
                    last_assigned: a.last_assigned,
                    lapses: a.lapses,
                })
                .collect(),
            chats: self
                .chats
                .iter()
                .map(|(id, c)| StateChat {
                    id: *id,
                    customer: c.customer,
                    agent: c.agent.clone(),
                    category: c.category.clone(),
                })
                .collect(),
            counter: self.counter,
            pairing_room: self.pairing_room,
            held_back: self.held_back,
            closed: self.closed.iter().cloned().collect(),
            offer_mode: self.offer_mode.iter().cloned().collect(),
            mode_set_at: self.mode_set_at.iter().map(|(c, at)| (c.clone(), *at)).collect(),
            open_set_at: self.open_set_at.iter().map(|(c, at)| (c.clone(), *at)).collect(),
            offers: self
                .offers
                .iter()
                .map(|(id, o)| StateOffer {
                    id: *id,
                    customer: o.customer,
                    agent: o.agent.clone(),
                    category: o.category.clone(),
                })
                .collect(),
        }
    }

    /// A routing holding exactly `state`. Every waiting customer counts as told their
    /// current place (a node loading a snapshot tells only later moves).
    pub fn from_state(state: RoutingState) -> Result<Routing, InconsistentState> {
        let bad = |what: String| Err(InconsistentState(what));
        let mut queues: BTreeMap<CategoryId, BTreeSet<(Ticket, CustomerId)>> =
            state.categories.into_iter().map(|c| (c, BTreeSet::new())).collect();
        let mut customers = HashMap::new();
        let mut live = HashMap::new();
        for c in state.customers {
            if let Some(conversation) = &c.conversation
                && live.insert(conversation.clone(), c.id).is_some()
            {
                return bad(format!("two customers continue conversation {conversation:?}"));
            }
            let customer_state = match c.chat {
                None => {
                    // Waiting in a known category (a chatting one's may have been removed).
                    let Some(queue) = queues.get_mut(&c.category) else {
                        return bad(format!(
                            "customer {:?} waits in unknown category {:?}",
                            c.id, c.category
                        ));
                    };
                    queue.insert((c.ticket, c.id));
                    CustomerState::Waiting
                }
                Some(chat) => CustomerState::Chatting(chat),
            };
            let customer = Customer {
                category: c.category,
                ticket: c.ticket,
                state: customer_state,
                away_epoch: c.away_epoch,
                told_place: 0,
                offer: None,
                passed: c.passed.into_iter().collect(),
                continuing: c.continuing,
                conversation: c.conversation,
            };
            customers.insert(c.id, Box::new(customer));
        }
        for queue in queues.values() {
            for (index, (_, id)) in queue.iter().enumerate() {
                customers.get_mut(id).expect("queued just now").told_place = index + 1;
            }
        }
        let mut agents: BTreeMap<AgentId, Agent> = state
            .agents
            .into_iter()
            .map(|a| {
                let agent = Agent {
                    categories: a.categories.into_iter().collect(),
                    limit: a.limit,
                    available: a.available,
                    busy: a.busy,
                    away_reason: a.away_reason,
                    away_epoch: a.away_epoch,
                    chats: BTreeSet::new(),
                    offers: BTreeSet::new(),
                    lapses: a.lapses,
                    last_assigned: a.last_assigned,
                };
                (a.id, agent)
            })
            .collect();
        let mut chats = BTreeMap::new();
        for chat in state.chats {
            if !customers
                .get(&chat.customer)
                .is_some_and(|c| c.state == CustomerState::Chatting(chat.id))
            {
                return bad(format!("chat {:?} without its customer {:?}", chat.id, chat.customer));
            }
            let Some(agent) = agents.get_mut(&chat.agent) else {
                return bad(format!("chat {:?} without its agent {:?}", chat.id, chat.agent));
            };
            agent.chats.insert(chat.id);
            chats.insert(
                chat.id,
                Chat {
                    customer: chat.customer,
                    agent: chat.agent,
                    category: chat.category,
                },
            );
        }
        if let Some((id, _)) = customers.iter().find(|(_, c)| {
            c.continuing
                .is_some_and(|chat| c.state != CustomerState::Waiting || chats.contains_key(&chat))
        }) {
            return bad(format!(
                "customer {id:?} continues a chat that is running, or is not waiting"
            ));
        }
        if let Some((id, _)) = customers
            .iter()
            .find(|(_, c)| matches!(c.state, CustomerState::Chatting(chat) if !chats.contains_key(&chat)))
        {
            return bad(format!("customer {id:?} in a chat that is not running"));
        }
        if let Some(unknown) = state.closed.iter().find(|c| !queues.contains_key(*c)) {
            return bad(format!("unknown category {unknown:?} closed"));
        }
        if let Some(unknown) = state.offer_mode.iter().find(|c| !queues.contains_key(*c)) {
            return bad(format!("unknown category {unknown:?} in offer mode"));
        }
        if let Some((unknown, _)) = state.mode_set_at.iter().find(|(c, _)| !queues.contains_key(c)) {
            return bad(format!("unknown category {unknown:?} with a mode's stamp"));
        }
        if let Some((unknown, _)) = state.open_set_at.iter().find(|(c, _)| !queues.contains_key(c)) {
            return bad(format!("unknown category {unknown:?} with an opening's stamp"));
        }
        let mut offers = BTreeMap::new();
        for o in state.offers {
            let Some(customer) = customers
                .get_mut(&o.customer)
                .filter(|c| c.state == CustomerState::Waiting && c.offer.is_none() && c.category == o.category)
            else {
                return bad(format!("offer {:?} of a customer not waiting for one", o.id));
            };
            customer.offer = Some(o.id);
            let Some(agent) = agents.get_mut(&o.agent) else {
                return bad(format!("offer {:?} to an agent not online", o.id));
            };
            agent.offers.insert(o.id);
            offers.insert(
                o.id,
                Offer {
                    customer: o.customer,
                    agent: o.agent,
                    category: o.category,
                },
            );
        }
        Ok(Routing {
            closed: state.closed.into_iter().collect(),
            offer_mode: state.offer_mode.into_iter().collect(),
            mode_set_at: state.mode_set_at.into_iter().collect(),
            open_set_at: state.open_set_at.into_iter().collect(),
            offers,
            queues,
            customers,
            agents,
            chats,
            dirty: HashSet::new(),
            counter: state.counter,
            pairing_room: state.pairing_room,
            held_back: state.held_back,
            live,
            domain: None,
        })
    }
}
