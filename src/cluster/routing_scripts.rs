//! The routing domain of a cluster in Redis: every transition of `core::routing` as one
//! atomic Lua script (`lua/routing.lua`) that checks the calling node's fencing, applies the
//! rule and appends its decisions to the `{sb}:routing-events` stream; this module is the
//! async adapter around them, turning replies back into the core's [`Decision`] values.
//!
//! The scripts restate the core's rules; the core stays their one authoritative statement
//! and the oracle: `tests/cluster_routing/` runs random event sequences through both and
//! requires identical decisions, ids, queue order and places. Ids (customers, chats,
//! tickets, grace epochs) come from one Redis counter drawn in the core's own order, so the
//! two agree exactly and ids are unique across the cluster.
//!
//! The key layout, the fencing and the events are described in `docs/cluster.md`.

use std::sync::LazyLock;

use super::routing_library::LIBRARY;
use super::routing_replies::{MalformedReply, RoutingSnapshot, parse_decisions, parse_snapshot};
use super::routing_transitions::Transition;
use crate::core::places::Places;
use crate::core::routing::{
    AgentId, AgentStatus, CategoryId, ChatId, ConversationId, CustomerId, Decision, OfferId, Party, RoutingError,
    RoutingMode, Ticket,
};
use redis::Script;
use redis::aio::ConnectionManager;

/// The common prefix (one Redis Cluster hash tag) of every key the cluster uses.
pub const KEY_PREFIX: &str = "{sb}:";
/// The key every script names in KEYS, so Redis Cluster routes it to the tag's slot.
pub(crate) const ROUTING_KEY: &str = "{sb}:counter";
/// The stream each transition appends its decisions to (bounded in `lua/routing.lua`).
pub const EVENTS_KEY: &str = "{sb}:routing-events";

const SNAPSHOT_LUA: &str = concat!(include_str!("lua/bytes_order.lua"), include_str!("lua/snapshot.lua"));

static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| Script::new(SNAPSHOT_LUA));

/// A conversation a joining customer continues (`replica::RoutingOp::Join`): the chat's
/// id on every node, its lines numbered on from `last_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continues {
    pub id: String,
    pub last_seq: u64,
    /// It was resolved when the customer came back (a reopen): the node pairing them with
    /// an agent tells the agent so. Rides in the join's event (the script ignores it).
    pub reopened: bool,
    /// The agent whose list it was in when the customer came back (id, display name), and
    /// the note of its last hand-over (a bot's; empty otherwise): the node pairing them with
    /// another agent tells that agent it was handed on, as the customer's node would. Ride
    /// in the join's event after `reopened` (the script ignores them).
    pub holder: Option<(AgentId, String)>,
    pub note: String,
    /// Its earlier agents' turns that ended (each agent's name and the last seq of their
    /// turn, in order), as its archive's hand-ons tell the customer's node: the node pairing
    /// them names those agents' lines in the hand-over note as that node would. Rides in the
    /// join's event after `note`, as JSON `[[through_seq, name], …]` (the script ignores it).
    pub turns: Vec<(u64, String)>,
}

/// Why a transition did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ClusterRoutingError {
    /// The rules refused it (the same refusal the core gives); nothing changed.
    #[error("refused: {0}")]
    Refused(RoutingError),
    /// This node is not alive under its incarnation (lease lapsed, or superseded): it must
    /// stop acting on what it believed and re-join. Nothing changed.
    #[error("this node is fenced: its lease lapsed or another incarnation replaced it")]
    Fenced,
    /// `node_lost` was asked about a node whose lease still runs. Nothing changed.
    #[error("that node is still alive")]
    NodeAlive,
    /// The person a message is from is held by another node: this connection of theirs is
    /// stale (the node itself is alive). Nothing changed.
    #[error("the sender is held by another node")]
    NotHeld,
    /// Redis did not answer, or failed. When the call was sent, the transition may or may
    /// not have been applied (see `docs/cluster.md`, section 9: the events stream tells).
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    #[error(transparent)]
    Malformed(#[from] MalformedReply),
}

impl From<redis::RedisError> for ClusterRoutingError {
    fn from(err: redis::RedisError) -> Self {
        match err.code() {
            Some("FENCED") => Self::Fenced,
            Some("node_alive") => Self::NodeAlive,
            Some("not_held") => Self::NotHeld,
            // The core's error for a code the scripts reply with (`RoutingError::code()`).
            Some(code) => match code.parse() {
                Ok(refusal) => Self::Refused(refusal),
                Err(_) => Self::Redis(err),
            },
            None => Self::Redis(err),
        }
    }
}

/// What an applied transition decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub decisions: Vec<Decision>,
    /// The ticket of each `Decision::Queued` among `decisions`, in order (the place mirror needs them).
    pub queued_tickets: Vec<Ticket>,
    /// The events stream entry of this transition (every applied transition has one).
    pub event_id: Option<String>,
}

impl Applied {
    /// Tells a place mirror what this transition changed in the queues.
    pub fn update_places(&self, places: &mut Places) {
        let mut tickets = self.queued_tickets.iter();
        for decision in &self.decisions {
            match decision {
                Decision::Queued {
                    customer,
                    category,
                    place,
                    ..
                } => {
                    let ticket = tickets.next().expect("one ticket per Queued decision");
                    places.queued(*customer, category.clone(), *ticket, *place);
                }
                Decision::Paired { customer, .. } | Decision::Dequeued { customer, .. } => places.removed(*customer),
                _ => {}
            }
        }
    }
}

/// One node's handle on the routing domain: every call is one script, fenced by this
/// node's id and incarnation. Cheap to clone (the connection manager is shared).
#[derive(Clone)]
pub struct RedisRouting {
    conn: ConnectionManager,
    node: String,
    incarnation: u64,
}

fn flag(value: bool) -> &'static str {
    if value { "1" } else { "0" }
}

fn status_word(status: AgentStatus) -> &'static str {
    match status {
        AgentStatus::Available => "available",
        AgentStatus::Away => "away",
        AgentStatus::Busy => "busy",
    }
}

fn party(by: Party) -> &'static str {
    match by {
        Party::Customer => "customer",
        Party::Agent => "agent",
        Party::System => "system",
    }
}

/// An agent's id, then the sign-in a call is made for when there is one.
fn signed<'a>(agent: &'a str, sign_in: &'a str) -> Vec<&'a str> {
    let mut args = vec![agent];
    if !sign_in.is_empty() {
        args.push(sign_in);
    }
    args
}

impl RedisRouting {
    pub fn new(conn: ConnectionManager, node: impl Into<String>, incarnation: u64) -> Self {
        Self {
            conn,
            node: node.into(),
            incarnation,
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// After re-joining the cluster under a new incarnation.
    pub fn set_incarnation(&mut self, incarnation: u64) {
        self.incarnation = incarnation;
    }

    async fn run(&self, transition: Transition, args: &[&str]) -> Result<(Applied, String), ClusterRoutingError> {
        let mut call = LIBRARY.transition(transition.name(), ROUTING_KEY);
        call.arg(&self.node).arg(self.incarnation);
        for arg in args {
            call.arg(*arg);
        }
        let mut conn = self.conn.clone();
        let (decisions, event_id, extra): (String, String, String) = LIBRARY.invoke(&call, &mut conn).await?;
        let (decisions, queued_tickets) = parse_decisions(&decisions)?;
        let applied = Applied {
            decisions,
            queued_tickets,
            event_id: (!event_id.is_empty()).then_some(event_id),
        };
        Ok((applied, extra))
    }

    async fn apply(&self, transition: Transition, args: &[&str]) -> Result<Applied, ClusterRoutingError> {
        Ok(self.run(transition, args).await?.0)
    }

    pub async fn add_category(&self, category: &CategoryId) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::AddCategory, &[&category.0]).await
    }

    pub async fn remove_category(&self, category: &CategoryId) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::RemoveCategory, &[&category.0]).await
    }

    /// A new customer, connected to this node, joins `category`'s queue.
    pub async fn join(&self, category: &CategoryId) -> Result<(CustomerId, Applied), ClusterRoutingError> {
        self.join_with(&[&category.0]).await
    }

    /// A join that may be retried after a lost answer: the same `request` (unique per
    /// join, e.g. the connection's id) within a minute gets the first reply again and
    /// changes nothing.
    pub async fn join_request(
        &self,
        category: &CategoryId,
        request: &str,
    ) -> Result<(CustomerId, Applied), ClusterRoutingError> {
        self.join_with(&[&category.0, request]).await
    }

    /// A [`join_request`](Self::join_request) whose event also carries the customer's
    /// display name and video wish (arguments the script records but does not read), so
    /// every node replaying the stream knows whom a pairing names.
    pub async fn join_described(
        &self,
        category: &CategoryId,
        request: &str,
        name: &str,
        video: bool,
    ) -> Result<(CustomerId, Applied), ClusterRoutingError> {
        self.join_with(&[&category.0, request, name, flag(video)]).await
    }

    /// A [`join_described`](Self::join_described) that also records the customer's resume
    /// token key (`resume_tokens::key`, never the token) → their id for `token_ttl`, in
    /// the same script: the token is known cluster-wide once the join is applied, before
    /// the node can send it in a `welcome`. Empty `token_key`: none recorded.
    /// `message`, what the customer came about, rides in the event for the nodes that
    /// offer them to an agent, and so does `profile` (as JSON; none when empty) for the
    /// node that archives their chat. `preferred`: the agent holding the conversation the
    /// customer returns to (the core's `join_preferring`); `continues`, the conversation
    /// they continue (its id and last seq: routing.lua's `k_conv_seq`).
    #[allow(clippy::too_many_arguments)]
    pub async fn join_with_token(
        &self,
        category: &CategoryId,
        request: &str,
        name: &str,
        video: bool,
        (token_key, token_ttl): (&str, std::time::Duration),
        message: &str,
        profile: &crate::store::CustomerProfile,
        preferred: Option<&AgentId>,
        continues: Option<&Continues>,
    ) -> Result<(CustomerId, Applied), ClusterRoutingError> {
        if token_key.is_empty()
            && message.is_empty()
            && profile.is_empty()
            && preferred.is_none()
            && continues.is_none()
        {
            return self.join_described(category, request, name, video).await;
        }
        let ms = u64::try_from(token_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
            .to_string();
        // The message and the profile ride last (the script ignores them; the events
        // stream carries them).
        let profile = match profile.is_empty() {
            true => String::new(),
            false => serde_json::to_string(profile).unwrap_or_default(),
        };
        let last_seq = continues.map_or(String::new(), |c| c.last_seq.to_string());
        let reopened = flag(continues.is_some_and(|c| c.reopened));
        let (holder, holder_name) = continues
            .and_then(|c| c.holder.as_ref())
            .map_or(("", ""), |(id, name)| (id.0.as_str(), name.as_str()));
        let turns = continues
            .filter(|c| !c.turns.is_empty())
            .map_or(String::new(), |c| serde_json::to_string(&c.turns).unwrap_or_default());
        self.join_with(&[
            &category.0,
            request,
            name,
            flag(video),
            token_key,
            &ms,
            message,
            &profile,
            preferred.map_or("", |agent| agent.0.as_str()),
            continues.map_or("", |c| c.id.as_str()),
            &last_seq,
            reopened,
            holder,
            holder_name,
            continues.map_or("", |c| c.note.as_str()),
            &turns,
        ])
        .await
    }

    /// A customer returning to a conversation `preferred` holds joins `category`
    /// (`Routing::join_preferring`).
    pub async fn join_preferring(
        &self,
        category: &CategoryId,
        preferred: &AgentId,
    ) -> Result<(CustomerId, Applied), ClusterRoutingError> {
        self.join_with(&[&category.0, "", "", "", "", "", "", "", &preferred.0])
            .await
    }

    /// A customer continuing conversation `conversation` joins `category`, preferring its
    /// holder when given (`Routing::join_continuing`): refused `already_live` while another
    /// customer continues it, on any node.
    pub async fn join_continuing(
        &self,
        category: &CategoryId,
        conversation: &ConversationId,
        preferred: Option<&AgentId>,
    ) -> Result<(CustomerId, Applied), ClusterRoutingError> {
        let preferred = preferred.map_or("", |agent| agent.0.as_str());
        self.join_with(&[&category.0, "", "", "", "", "", "", "", preferred, &conversation.0, "0"])
            .await
    }

    async fn join_with(&self, args: &[&str]) -> Result<(CustomerId, Applied), ClusterRoutingError> {
        let (applied, id) = self.run(Transition::Join, args).await?;
        let id = id.parse().map_err(|_| MalformedReply(format!("customer id {id:?}")))?;
        Ok((CustomerId(id), applied))
    }

    pub async fn leave(&self, customer: CustomerId) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::Leave, &[&customer.0.to_string()]).await
    }

    /// The customer's connection to this node dropped; this node runs their grace timer.
    pub async fn customer_disconnected(&self, customer: CustomerId) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::CustomerDisconnected, &[&customer.0.to_string()])
            .await
    }

    /// The customer came back, to this node.
    pub async fn customer_resumed(&self, customer: CustomerId) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::CustomerResumed, &[&customer.0.to_string()])
            .await
    }

    pub async fn customer_grace_expired(
        &self,
        customer: CustomerId,
        epoch: u64,
    ) -> Result<Applied, ClusterRoutingError> {
        self.apply(
            Transition::CustomerGraceExpired,
            &[&customer.0.to_string(), &epoch.to_string()],
        )
        .await
    }

    /// An agent's connection to this node opens.
    pub async fn agent_online(
        &self,
        agent: &AgentId,
        categories: &[CategoryId],
        limit: u8,
        available: bool,
    ) -> Result<Applied, ClusterRoutingError> {
        self.agent_online_signed(agent, categories, limit, available, "").await
    }

    /// An [`agent_online`](Self::agent_online) made for the sign-in `sign_in`
    /// (`docs/cluster.md` §13; empty: none): it rides in the event after an empty
    /// argument that ends the categories, and the script does not read it.
    pub async fn agent_online_signed(
        &self,
        agent: &AgentId,
        categories: &[CategoryId],
        limit: u8,
        available: bool,
        sign_in: &str,
    ) -> Result<Applied, ClusterRoutingError> {
        let limit = limit.to_string();
        let mut args = vec![agent.0.as_str(), limit.as_str(), flag(available)];
        args.extend(categories.iter().map(|c| c.as_str()));
        if !sign_in.is_empty() {
            args.extend(["", sign_in]);
        }
        self.apply(Transition::AgentOnline, &args).await
    }

    pub async fn agent_disconnected(&self, agent: &AgentId) -> Result<Applied, ClusterRoutingError> {
        self.agent_disconnected_signed(agent, "").await
    }

    /// An [`agent_disconnected`](Self::agent_disconnected) taking back the coming back of
    /// the sign-in `sign_in` (empty: none), which rides in the event; the script does not
    /// read it.
    pub async fn agent_disconnected_signed(
        &self,
        agent: &AgentId,
        sign_in: &str,
    ) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::AgentDisconnected, &signed(&agent.0, sign_in))
            .await
    }

    pub async fn agent_resumed(&self, agent: &AgentId) -> Result<Applied, ClusterRoutingError> {
        self.agent_resumed_signed(agent, "").await
    }

    /// An [`agent_resumed`](Self::agent_resumed) made for the sign-in `sign_in` (empty:
    /// none), which rides in the event; the script does not read it.
    pub async fn agent_resumed_signed(&self, agent: &AgentId, sign_in: &str) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::AgentResumed, &signed(&agent.0, sign_in)).await
    }

    pub async fn agent_grace_expired(&self, agent: &AgentId, epoch: u64) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::AgentGraceExpired, &[&agent.0, &epoch.to_string()])
            .await
    }

    pub async fn agent_offline(&self, agent: &AgentId) -> Result<Applied, ClusterRoutingError> {
        self.agent_offline_signed(agent, "").await
    }

    /// An [`agent_offline`](Self::agent_offline) taking back the coming online of the
    /// sign-in `sign_in` (empty: none), which rides in the event; the script does not read it.
    pub async fn agent_offline_signed(&self, agent: &AgentId, sign_in: &str) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::AgentOffline, &signed(&agent.0, sign_in)).await
    }

    pub async fn set_available(&self, agent: &AgentId, available: bool) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::SetAvailable, &[&agent.0, flag(available)]).await
    }

    pub async fn set_status(
        &self,
        agent: &AgentId,
        status: AgentStatus,
        reason: Option<&str>,
    ) -> Result<Applied, ClusterRoutingError> {
        let args = [&agent.0, status_word(status), reason.unwrap_or("")];
        self.apply(Transition::SetStatus, &args).await
    }

    /// Opens or closes `category`, as read from hours stamped `read_at` (ms; older hours
    /// than the state in force changes nothing; `None` sends no stamp, as a node of a
    /// build before stamps does: it applies and keeps the stamp in force).
    pub async fn set_category_open(
        &self,
        category: &CategoryId,
        open: bool,
        read_at: Option<u64>,
    ) -> Result<Applied, ClusterRoutingError> {
        let read_at = read_at.map(|at| at.to_string());
        let mut args: Vec<&str> = vec![&category.0, flag(open)];
        args.extend(read_at.as_deref());
        self.apply(Transition::SetCategoryOpen, &args).await
    }

    /// How `category`'s customers reach agents: `assign` or `offer`, as stored at `set_at`
    /// (ms; an older one than the mode in force changes nothing; `None` as for
    /// [`Self::set_category_open`]).
    pub async fn set_category_mode(
        &self,
        category: &CategoryId,
        mode: RoutingMode,
        set_at: Option<u64>,
    ) -> Result<Applied, ClusterRoutingError> {
        let set_at = set_at.map(|at| at.to_string());
        let mut args: Vec<&str> = vec![&category.0, mode.word()];
        args.extend(set_at.as_deref());
        self.apply(Transition::SetCategoryMode, &args).await
    }

    pub async fn accept_offer(&self, agent: &AgentId, offer: OfferId) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::AcceptOffer, &[&agent.0, &offer.0.to_string()])
            .await
    }

    pub async fn decline_offer(&self, agent: &AgentId, offer: OfferId) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::DeclineOffer, &[&agent.0, &offer.0.to_string()])
            .await
    }

    /// An offer's timer fired (on any node: an offer no longer standing is ignored).
    pub async fn offer_expired(&self, offer: OfferId) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::OfferExpired, &[&offer.0.to_string()]).await
    }

    /// Hands `chat`, run by `by`, to the agent `to`, moving it into `category` when named
    /// (one `to` holds). The transferring agent's `note` rides in the event's arguments for
    /// the new agent's node (the script does not read it).
    pub async fn transfer_to_agent(
        &self,
        chat: ChatId,
        by: &AgentId,
        to: &AgentId,
        category: Option<&CategoryId>,
        note: &str,
    ) -> Result<Applied, ClusterRoutingError> {
        let category = category.map_or("", |c| &*c.0);
        self.apply(
            Transition::TransferToAgent,
            &[&chat.0.to_string(), &by.0, &to.0, note, category],
        )
        .await
    }

    /// Hands `chat`, run by `by`, to `category`'s line (`note` as for an agent).
    pub async fn transfer_to_category(
        &self,
        chat: ChatId,
        by: &AgentId,
        category: &CategoryId,
        note: &str,
    ) -> Result<Applied, ClusterRoutingError> {
        self.apply(
            Transition::TransferToCategory,
            &[&chat.0.to_string(), &by.0, &category.0, note],
        )
        .await
    }

    pub async fn set_limit(&self, agent: &AgentId, limit: u8) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::SetLimit, &[&agent.0, &limit.to_string()]).await
    }

    pub async fn set_categories(
        &self,
        agent: &AgentId,
        categories: &[CategoryId],
    ) -> Result<Applied, ClusterRoutingError> {
        let mut args = vec![agent.0.as_str()];
        args.extend(categories.iter().map(|c| c.as_str()));
        self.apply(Transition::SetCategories, &args).await
    }

    pub async fn end_chat(&self, chat: ChatId, by: Party) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::EndChat, &[&chat.0.to_string(), party(by)]).await
    }

    /// The agent `agent` ends their chat: refused `not_your_chat` when it is not theirs.
    pub async fn agent_ends_chat(&self, chat: ChatId, agent: &AgentId) -> Result<Applied, ClusterRoutingError> {
        self.apply(
            Transition::EndChat,
            &[&chat.0.to_string(), party(Party::Agent), &agent.0],
        )
        .await
    }

    pub async fn set_pairing_room(&self, room: Option<usize>) -> Result<Applied, ClusterRoutingError> {
        let room = room.map(|r| r.to_string()).unwrap_or_default();
        self.apply(Transition::SetPairingRoom, &[&room]).await
    }

    /// Hands everyone `lost` held (a node whose lease ran out, or this node's own previous
    /// incarnation) to this node: see `node_lost` in `lua/routing.lua`.
    pub async fn node_lost(&self, lost: &str) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::NodeLost, &[lost]).await
    }

    /// A consistent read of the whole routing domain (no fencing: it changes nothing).
    pub async fn snapshot(&self) -> Result<RoutingSnapshot, ClusterRoutingError> {
        read_snapshot(&mut self.conn.clone()).await
    }
}

/// A consistent read of the whole routing domain (`lua/snapshot.lua`).
pub async fn read_snapshot(conn: &mut ConnectionManager) -> Result<RoutingSnapshot, ClusterRoutingError> {
    let json: String = SNAPSHOT.key(ROUTING_KEY).invoke_async(conn).await?;
    Ok(parse_snapshot(&json)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::routing_transitions::ROUTING_LUA;

    #[test]
    fn every_refusal_code_maps_back_to_the_core_error() {
        use strum::IntoEnumIterator;
        for e in RoutingError::iter() {
            assert_eq!(e.code().parse::<RoutingError>(), Ok(e));
        }
        assert!("FENCED".parse::<RoutingError>().is_err());
    }

    #[test]
    fn every_transition_has_a_function_in_the_script() {
        for t in Transition::ALL {
            assert!(
                ROUTING_LUA.contains(&format!("function T.{}(", t.name())),
                "{} has no function in lua/routing.lua",
                t.name()
            );
        }
    }
}
