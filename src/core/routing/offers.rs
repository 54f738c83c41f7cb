//! Offers with a timeout: a category in offer mode does not hand its next customer to the
//! chosen agent; it offers them, and the agent accepts (the chat opens) or declines. An
//! offer nobody answers lapses when the adapter's timer fires ([`Routing::offer_expired`]),
//! counting as a decline; an agent who lets [`LAPSES_BEFORE_AWAY`] offers in a row lapse is
//! set away, so nobody is rung forever.
//!
//! Rules (the property tests in `tests.rs` check them after every event):
//! - a customer has at most one offer standing, to one agent; while it stands they keep
//!   their place in line but are skipped by routing (not "ready");
//! - a standing offer counts against the agent's limit, as a chat does;
//! - an offer stands only while it could be accepted: the customer connected and
//!   waiting, the agent connected, available, holding the category, within their limit,
//!   the category open and in offer mode. Any event that breaks one of these withdraws it
//!   ([`OfferEnd::Withdrawn`]) and routes the customer on;
//! - offers go in ticket order (FIFO per category, as pairing does), each to the best
//!   eligible agent who has not passed the customer (declined, or let the offer lapse);
//!   when every eligible agent has passed, a new round starts with all of them.
//!
//! The pairing room (`set_pairing_room`) is spent when an offer is made and given back
//! when it ends without a chat: an accepted offer opens its chat in the room it reserved.

use std::collections::BTreeSet;

use super::{
    AgentId, CategoryId, CustomerId, Decision, LAPSES_BEFORE_AWAY, MISSED_OFFERS_REASON, Offer, OfferEnd, OfferId,
    Routing, RoutingError, RoutingMode, Ticket,
};

impl Routing {
    /// Sets how `category`'s customers reach agents, as the mode stored at `set_at` (the
    /// adapter's stamp) says. Leaving offer mode takes back its offers (the customers are
    /// then assigned); setting the mode it has changes nothing. A mode stored before the one
    /// in force changes nothing either: every node hands over the modes it reads, and a read
    /// that an admin's newer change overtook on its way must not undo that change. A mode
    /// without a stamp (`None`: a node of a build before stamps) applies and keeps the stamp
    /// in force.
    pub fn set_category_mode(
        &mut self,
        category: &CategoryId,
        mode: RoutingMode,
        set_at: Option<u64>,
        out: &mut Vec<Decision>,
    ) -> Result<(), RoutingError> {
        if !self.queues.contains_key(category) {
            return Err(RoutingError::UnknownCategory);
        }
        if !super::take_stamp(&mut self.mode_set_at, category, set_at) {
            return Ok(());
        }
        match mode {
            RoutingMode::Offer => {
                // Assigning left nobody ready beside an eligible agent: nothing to route.
                self.offer_mode.insert(category.clone());
            }
            RoutingMode::Assign => {
                if self.offer_mode.remove(category) {
                    let freed = self.withdraw_offers_in(category, out);
                    self.route_category(category, out);
                    for agent in freed {
                        self.route_agent(&agent, out);
                    }
                }
            }
        }
        Ok(())
    }

    /// The agent accepts an offer made to them: the chat opens.
    pub fn accept_offer(
        &mut self,
        agent: &AgentId,
        offer: OfferId,
        out: &mut Vec<Decision>,
    ) -> Result<(), RoutingError> {
        self.check_own_offer(agent, offer)?;
        let Offer { customer, category, .. } = self.offers.remove(&offer).expect("checked above");
        let a = self.agents.get_mut(agent).expect("an offer's agent is online");
        a.offers.remove(&offer);
        a.lapses = 0;
        let c = self.customers.get_mut(&customer).expect("an offer's customer waits");
        c.offer = None;
        let ticket = c.ticket;
        self.open_chat(customer, ticket, category, agent.clone(), out);
        Ok(())
    }

    /// The agent declines an offer made to them: the customer is offered to the next
    /// eligible agent (to this one again only once every eligible agent has passed).
    pub fn decline_offer(
        &mut self,
        agent: &AgentId,
        offer: OfferId,
        out: &mut Vec<Decision>,
    ) -> Result<(), RoutingError> {
        self.check_own_offer(agent, offer)?;
        self.agents.get_mut(agent).expect("an offer's agent is online").lapses = 0;
        self.pass(offer, OfferEnd::Declined, out);
        Ok(())
    }

    /// Refuses an answer to an offer that does not stand, or stands for another agent.
    fn check_own_offer(&self, agent: &AgentId, offer: OfferId) -> Result<(), RoutingError> {
        match self.offers.get(&offer) {
            Some(o) if &o.agent == agent => Ok(()),
            _ => Err(RoutingError::UnknownOffer),
        }
    }

    /// An offer's timer fired. Unanswered, it lapses as a decline; the agent's second lapse
    /// in a row sets them away. An offer no longer standing (answered, withdrawn) is ignored.
    pub fn offer_expired(&mut self, offer: OfferId, out: &mut Vec<Decision>) {
        let Some(agent) = self.offers.get(&offer).map(|o| o.agent.clone()) else {
            return;
        };
        let a = self.agents.get_mut(&agent).expect("an offer's agent is online");
        a.lapses += 1;
        let set_away = a.lapses >= LAPSES_BEFORE_AWAY;
        if set_away {
            a.lapses = 0;
            a.available = false;
            a.busy = false;
            a.away_reason = Some(MISSED_OFFERS_REASON.to_string());
        }
        self.pass(offer, OfferEnd::Lapsed, out);
        if set_away {
            out.push(Decision::AwayAfterMissedOffers { agent });
        }
    }

    /// An offer declined or lapsed: the agent has passed the customer; whatever else of the
    /// agent's no longer stands goes back too (they were set away); then routes.
    fn pass(&mut self, offer: OfferId, why: OfferEnd, out: &mut Vec<Decision>) {
        let ended = self.withdraw_offer(offer, why, out);
        self.customers
            .get_mut(&ended.customer)
            .expect("an offer's customer waits")
            .passed
            .insert(ended.agent.clone());
        let mut touched = self.release_unfit_offers(&ended.agent, out);
        touched.insert(ended.category);
        self.route_categories(touched, out);
        self.route_agent(&ended.agent, out);
    }

    /// The agent whose turn it is to be offered or given `customer`: the best eligible agent
    /// holding `category` who has not passed them; when all have, the best of them, with
    /// `true` (a new round: who passed is forgotten). `None`: nobody eligible.
    pub(super) fn choose_agent(&self, customer: CustomerId, category: &CategoryId) -> Option<(AgentId, bool)> {
        let passed = &self.customers[&customer].passed;
        let mut first = None;
        for agent in self.eligible_for(category) {
            if !passed.contains(&agent) {
                return Some((agent, false));
            }
            first.get_or_insert(agent);
        }
        first.map(|agent| (agent, true))
    }

    /// Offers a ready customer to an agent (chosen by [`Routing::choose_agent`]).
    pub(super) fn make_offer(
        &mut self,
        customer: CustomerId,
        ticket: Ticket,
        category: CategoryId,
        agent: AgentId,
        new_round: bool,
        out: &mut Vec<Decision>,
    ) {
        if let Some(room) = &mut self.pairing_room {
            *room -= 1;
        }
        let offer = OfferId(self.next());
        let c = self.customers.get_mut(&customer).expect("offering a known customer");
        if new_round {
            c.passed.clear();
        }
        c.offer = Some(offer);
        self.agents
            .get_mut(&agent)
            .expect("offering to an online agent")
            .offers
            .insert(offer);
        self.offers.insert(
            offer,
            Offer {
                customer,
                agent: agent.clone(),
                category: category.clone(),
            },
        );
        out.push(Decision::Offered {
            offer,
            customer,
            agent,
            category,
            ticket,
        });
    }

    /// Ends a standing offer without a chat: the customer is ready again (routing them is
    /// the caller's), the room it reserved is free, the agent is told.
    pub(super) fn withdraw_offer(&mut self, offer: OfferId, why: OfferEnd, out: &mut Vec<Decision>) -> Offer {
        let ended = self.offers.remove(&offer).expect("withdrawing a standing offer");
        if let Some(agent) = self.agents.get_mut(&ended.agent) {
            agent.offers.remove(&offer);
        }
        if let Some(customer) = self.customers.get_mut(&ended.customer) {
            customer.offer = None;
        }
        if let Some(room) = &mut self.pairing_room {
            *room += 1;
        }
        out.push(Decision::OfferEnded {
            offer,
            customer: ended.customer,
            agent: ended.agent.clone(),
            why,
        });
        ended
    }

    /// Withdraws the offer standing for a customer, if any; the agent it was made to.
    pub(super) fn withdraw_customer_offer(&mut self, customer: CustomerId, out: &mut Vec<Decision>) -> Option<AgentId> {
        let offer = self.customers.get(&customer)?.offer?;
        Some(self.withdraw_offer(offer, OfferEnd::Withdrawn, out).agent)
    }

    /// Withdraws every offer standing in `category`, oldest first; the agents it freed, in order.
    pub(super) fn withdraw_offers_in(&mut self, category: &CategoryId, out: &mut Vec<Decision>) -> BTreeSet<AgentId> {
        let offers: Vec<OfferId> = self
            .offers
            .iter()
            .filter(|(_, o)| &o.category == category)
            .map(|(id, _)| *id)
            .collect();
        offers
            .into_iter()
            .map(|offer| self.withdraw_offer(offer, OfferEnd::Withdrawn, out).agent)
            .collect()
    }

    /// Withdraws the agent's offers that no longer stand after a change to them: all of
    /// them when they are disconnected or not available, those of a category they no longer
    /// hold, then the newest while chats and offers exceed their limit. The categories of
    /// the customers this made ready (to be routed by the caller).
    pub(super) fn release_unfit_offers(&mut self, id: &AgentId, out: &mut Vec<Decision>) -> BTreeSet<CategoryId> {
        let mut touched = BTreeSet::new();
        let Some(agent) = self.agents.get(id) else {
            return touched;
        };
        let absent = agent.away_epoch.is_some() || !agent.available;
        let unfit: Vec<OfferId> = agent
            .offers
            .iter()
            .filter(|offer| absent || !agent.categories.contains(&self.offers[offer].category))
            .copied()
            .collect();
        for offer in unfit {
            touched.insert(self.withdraw_offer(offer, OfferEnd::Withdrawn, out).category);
        }
        while let Some(agent) = self.agents.get(id)
            && agent.load() > usize::from(agent.limit)
            && let Some(newest) = agent.offers.last().copied()
        {
            touched.insert(self.withdraw_offer(newest, OfferEnd::Withdrawn, out).category);
        }
        touched
    }
}
