//! Transfers: an agent hands a running chat to another agent, or to a category.
//!
//! - To an agent: any colleague who could take a chat now (connected, available, below
//!   their limit; never the agent themselves), whether or not they hold the chat's
//!   category, else [`RoutingError::AgentNotEligible`] and nothing changes. The chat keeps
//!   its category, or moves into one the new agent holds when the transferring agent names
//!   it (one they do not hold: `AgentNotEligible`; no such category: `UnknownCategory`).
//!   The chat keeps its id, so its seq goes on; the new agent's load grows by one, the old
//!   one's shrinks.
//! - To a category (the chat's own or another; open): the customer waits in its line again
//!   with their original ticket, so they are served before everyone who joined it later,
//!   and the transferring agent has passed them (they are paired with someone else while
//!   anyone else can take them). Paired again, the chat goes on under its id
//!   (`Customer::continuing`). While they wait they are a waiting customer like any other
//!   (away, leave, grace, removal of the category).
//!
//! A transfer never leaves a customer in two chats or in none: they are in the chat (now
//! another agent's) or in exactly one queue (the property tests check it after every event).

use super::{AgentId, CategoryId, Chat, ChatId, CustomerState, Decision, Routing, RoutingError};

impl Routing {
    /// The running `chat`, if `by` is its agent.
    fn chat_run_by(&self, chat: ChatId, by: &AgentId) -> Result<&Chat, RoutingError> {
        let running = self.chats.get(&chat).ok_or(RoutingError::UnknownChat)?;
        if &running.agent != by {
            return Err(RoutingError::NotYourChat);
        }
        Ok(running)
    }

    /// The agent `by` ends their running `chat`: refused `NotYourChat` when it is not theirs
    /// (any more: on several nodes a transfer of theirs may apply before it).
    pub fn agent_ends_chat(&mut self, chat: ChatId, by: &AgentId, out: &mut Vec<Decision>) -> Result<(), RoutingError> {
        self.chat_run_by(chat, by)?;
        self.end_chat(chat, super::Party::Agent, out)
    }

    /// Hands `chat`, run by `by`, to the agent `to`; with `category`, the chat goes on in
    /// that category (one `to` holds), else in its own.
    pub fn transfer_to_agent(
        &mut self,
        chat: ChatId,
        by: &AgentId,
        to: &AgentId,
        category: Option<&CategoryId>,
        out: &mut Vec<Decision>,
    ) -> Result<(), RoutingError> {
        let running = self.chat_run_by(chat, by)?;
        let customer = running.customer;
        let moved = category.filter(|c| **c != running.category).cloned();
        if category.is_some_and(|c| !self.queues.contains_key(c)) {
            return Err(RoutingError::UnknownCategory);
        }
        match self.agents.get(to) {
            Some(target) if to != by && target.eligible() && category.is_none_or(|c| target.categories.contains(c)) => {
            }
            _ => return Err(RoutingError::AgentNotEligible),
        }
        let stamp = self.next();
        self.agents
            .get_mut(by)
            .expect("a chat's agent is online")
            .chats
            .remove(&chat);
        let target = self.agents.get_mut(to).expect("checked above");
        target.chats.insert(chat);
        target.last_assigned = stamp;
        let running = self.chats.get_mut(&chat).expect("checked above");
        running.agent = to.clone();
        if let Some(category) = &moved {
            running.category = category.clone();
            self.customers
                .get_mut(&customer)
                .expect("a chat's customer exists")
                .category = category.clone();
        }
        out.push(Decision::ChatTransferred {
            chat,
            customer,
            from: by.clone(),
            to: to.clone(),
            category: moved,
        });
        self.end_busy_when_free(by, out);
        self.route_agent(by, out);
        Ok(())
    }

    /// Hands `chat`, run by `by`, to `category`'s line.
    pub fn transfer_to_category(
        &mut self,
        chat: ChatId,
        by: &AgentId,
        category: &CategoryId,
        out: &mut Vec<Decision>,
    ) -> Result<(), RoutingError> {
        self.chat_run_by(chat, by)?;
        if !self.queues.contains_key(category) {
            return Err(RoutingError::UnknownCategory);
        }
        if self.closed.contains(category) {
            return Err(RoutingError::CategoryClosed);
        }
        let ended = self.chats.remove(&chat).expect("checked above");
        self.agents
            .get_mut(by)
            .expect("a chat's agent is online")
            .chats
            .remove(&chat);
        let customer = self
            .customers
            .get_mut(&ended.customer)
            .expect("a chat's customer exists");
        customer.category = category.clone();
        customer.continuing = Some(chat);
        let ticket = customer.ticket;
        out.push(Decision::ChatToCategory {
            chat,
            customer: ended.customer,
            from: by.clone(),
            category: category.clone(),
        });
        self.enqueue(ended.customer, category.clone(), ticket, true, out);
        let customer = self.customers.get_mut(&ended.customer).expect("queued just now");
        debug_assert_eq!(customer.state, CustomerState::Waiting);
        customer.passed.insert(by.clone());
        self.route_category(category, out);
        self.end_busy_when_free(by, out);
        self.route_agent(by, out);
        Ok(())
    }
}
