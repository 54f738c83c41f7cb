//! The routing domain of a cluster in Redis: every transition of `core::routing` as one
//! atomic Lua script (`lua/routing.lua`) that checks the calling node's fencing, applies the
//! rule and appends its decisions to the `{sb}:routing-events` stream; this module is the
//! async adapter around them, turning replies back into the core's [`Decision`] values.
//!
//! The scripts restate the core's rules; the core stays their one authoritative statement
//! and the oracle: `tests/cluster_routing.rs` runs random event sequences through both and
//! requires identical decisions, ids, queue order and places. Ids (customers, chats,
//! tickets, grace epochs) come from one Redis counter drawn in the core's own order, so the
//! two agree exactly and ids are unique across the cluster.
//!
//! The key layout, the fencing and the events are described in `docs/cluster.md`.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionManager;
use serde_json::Value;

use crate::core::places::Places;
use crate::core::routing::{
    AgentId, AgentView, CategoryId, ChatEnd, ChatId, CustomerId, Decision, Party, Removal, RoutingError, Ticket,
};

/// The common prefix (one Redis Cluster hash tag) of every key the cluster uses.
pub const KEY_PREFIX: &str = "{sb}:";
/// The key every script names in KEYS, so Redis Cluster routes it to the tag's slot.
const ROUTING_KEY: &str = "{sb}:counter";
/// The stream each transition appends its decisions to (bounded in `lua/routing.lua`).
pub const EVENTS_KEY: &str = "{sb}:routing-events";

const ROUTING_LUA: &str = include_str!("lua/routing.lua");
const SNAPSHOT_LUA: &str = include_str!("lua/snapshot.lua");

/// The transitions, each one script: the shared body plus the line that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transition {
    AddCategory,
    RemoveCategory,
    Join,
    Leave,
    CustomerDisconnected,
    CustomerResumed,
    CustomerGraceExpired,
    AgentOnline,
    AgentDisconnected,
    AgentResumed,
    AgentGraceExpired,
    AgentOffline,
    SetAvailable,
    SetLimit,
    SetCategories,
    EndChat,
    SetPairingRoom,
    NodeLost,
}

impl Transition {
    const ALL: [Transition; 18] = [
        Self::AddCategory,
        Self::RemoveCategory,
        Self::Join,
        Self::Leave,
        Self::CustomerDisconnected,
        Self::CustomerResumed,
        Self::CustomerGraceExpired,
        Self::AgentOnline,
        Self::AgentDisconnected,
        Self::AgentResumed,
        Self::AgentGraceExpired,
        Self::AgentOffline,
        Self::SetAvailable,
        Self::SetLimit,
        Self::SetCategories,
        Self::EndChat,
        Self::SetPairingRoom,
        Self::NodeLost,
    ];

    /// The name of its function in `lua/routing.lua` (and the `t` field of its events).
    fn name(self) -> &'static str {
        match self {
            Self::AddCategory => "add_category",
            Self::RemoveCategory => "remove_category",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::CustomerDisconnected => "customer_disconnected",
            Self::CustomerResumed => "customer_resumed",
            Self::CustomerGraceExpired => "customer_grace_expired",
            Self::AgentOnline => "agent_online",
            Self::AgentDisconnected => "agent_disconnected",
            Self::AgentResumed => "agent_resumed",
            Self::AgentGraceExpired => "agent_grace_expired",
            Self::AgentOffline => "agent_offline",
            Self::SetAvailable => "set_available",
            Self::SetLimit => "set_limit",
            Self::SetCategories => "set_categories",
            Self::EndChat => "end_chat",
            Self::SetPairingRoom => "set_pairing_room",
            Self::NodeLost => "node_lost",
        }
    }
}

/// The scripts, hashed once; `redis::Script` sends EVALSHA and loads a script the server lacks.
static SCRIPTS: LazyLock<Vec<Script>> = LazyLock::new(|| {
    Transition::ALL
        .iter()
        .map(|t| Script::new(&format!("{ROUTING_LUA}\nreturn run('{}')\n", t.name())))
        .collect()
});
static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| Script::new(SNAPSHOT_LUA));

fn script(transition: Transition) -> &'static Script {
    let index = Transition::ALL
        .iter()
        .position(|t| *t == transition)
        .expect("every transition is listed in ALL");
    &SCRIPTS[index]
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
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    #[error("malformed reply from a routing script: {0}")]
    Malformed(String),
}

impl From<redis::RedisError> for ClusterRoutingError {
    fn from(err: redis::RedisError) -> Self {
        match err.code() {
            Some("FENCED") => Self::Fenced,
            Some("node_alive") => Self::NodeAlive,
            Some(code) => match routing_error(code) {
                Some(refusal) => Self::Refused(refusal),
                None => Self::Redis(err),
            },
            None => Self::Redis(err),
        }
    }
}

/// The core's error for a code the scripts reply with (`RoutingError::code()`).
fn routing_error(code: &str) -> Option<RoutingError> {
    use RoutingError::*;
    [
        UnknownCategory,
        UnknownCustomer,
        UnknownAgent,
        UnknownChat,
        NotYourChat,
        WrongState,
        InvalidLimit,
        AlreadyOnline,
        AlreadyExists,
    ]
    .into_iter()
    .find(|e| e.code() == code)
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

fn party(by: Party) -> &'static str {
    match by {
        Party::Customer => "customer",
        Party::Agent => "agent",
        Party::System => "system",
    }
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
        let mut invocation = script(transition).key(ROUTING_KEY);
        invocation.arg(&self.node).arg(self.incarnation);
        for arg in args {
            invocation.arg(*arg);
        }
        let mut conn = self.conn.clone();
        let (decisions, event_id, extra): (String, String, String) = invocation.invoke_async(&mut conn).await?;
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
        let (applied, id) = self.run(Transition::Join, &[&category.0]).await?;
        let id = id
            .parse()
            .map_err(|_| ClusterRoutingError::Malformed(format!("customer id {id:?}")))?;
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
        let limit = limit.to_string();
        let mut args = vec![agent.0.as_str(), limit.as_str(), flag(available)];
        args.extend(categories.iter().map(|c| c.0.as_str()));
        self.apply(Transition::AgentOnline, &args).await
    }

    pub async fn agent_disconnected(&self, agent: &AgentId) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::AgentDisconnected, &[&agent.0]).await
    }

    pub async fn agent_resumed(&self, agent: &AgentId) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::AgentResumed, &[&agent.0]).await
    }

    pub async fn agent_grace_expired(&self, agent: &AgentId, epoch: u64) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::AgentGraceExpired, &[&agent.0, &epoch.to_string()])
            .await
    }

    pub async fn agent_offline(&self, agent: &AgentId) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::AgentOffline, &[&agent.0]).await
    }

    pub async fn set_available(&self, agent: &AgentId, available: bool) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::SetAvailable, &[&agent.0, flag(available)]).await
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
        args.extend(categories.iter().map(|c| c.0.as_str()));
        self.apply(Transition::SetCategories, &args).await
    }

    pub async fn end_chat(&self, chat: ChatId, by: Party) -> Result<Applied, ClusterRoutingError> {
        self.apply(Transition::EndChat, &[&chat.0.to_string(), party(by)]).await
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
        let mut conn = self.conn.clone();
        let json: String = SNAPSHOT.key(ROUTING_KEY).invoke_async(&mut conn).await?;
        parse_snapshot(&json)
    }
}

// ---- the snapshot -----------------------------------------------------------------------

/// One waiting customer, in queue order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCustomer {
    pub customer: CustomerId,
    pub ticket: Ticket,
    /// The epoch of their grace timer while away.
    pub away: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatSnapshot {
    pub chat: ChatId,
    pub customer: CustomerId,
    pub agent: AgentId,
    pub category: CategoryId,
    pub customer_away: Option<u64>,
}

/// The routing domain at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingSnapshot {
    /// Every known category, bytewise order, with its queue in order.
    pub queues: Vec<(CategoryId, Vec<WaitingCustomer>)>,
    /// Online agents, bytewise order.
    pub agents: Vec<(AgentId, AgentView)>,
    /// Running chats by id.
    pub chats: Vec<ChatSnapshot>,
    pub pairing_room: Option<usize>,
    /// The last routing event this snapshot includes ("0-0": none yet).
    pub last_event: String,
}

impl RoutingSnapshot {
    /// Loads a place mirror with these queues, as if every waiting customer had been told their place.
    pub fn load_places(&self, places: &mut Places) {
        for (category, queue) in &self.queues {
            for (index, waiting) in queue.iter().enumerate() {
                places.queued(waiting.customer, category.clone(), waiting.ticket, index + 1);
            }
        }
    }
}

// ---- parsing replies ----------------------------------------------------------------------

fn malformed(what: impl std::fmt::Display) -> ClusterRoutingError {
    ClusterRoutingError::Malformed(what.to_string())
}

/// A JSON array; Lua's cjson writes an empty table as `{}`.
fn list(value: &Value) -> Result<&[Value], ClusterRoutingError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(map) if map.is_empty() => Ok(&[]),
        other => Err(malformed(format!("expected a list, got {other}"))),
    }
}

fn text(items: &[Value], i: usize) -> Result<&str, ClusterRoutingError> {
    items
        .get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(format!("field {i} of {items:?} is not a string")))
}

/// A decimal id (ids travel as strings: Lua numbers are doubles).
fn id(items: &[Value], i: usize) -> Result<u64, ClusterRoutingError> {
    let s = text(items, i)?;
    s.parse().map_err(|_| malformed(format!("{s:?} is not an id")))
}

/// An optional id: the empty string is none.
fn maybe_id(items: &[Value], i: usize) -> Result<Option<u64>, ClusterRoutingError> {
    match text(items, i)? {
        "" => Ok(None),
        _ => id(items, i).map(Some),
    }
}

fn count(items: &[Value], i: usize) -> Result<usize, ClusterRoutingError> {
    items
        .get(i)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| malformed(format!("field {i} of {items:?} is not a count")))
}

fn boolean(items: &[Value], i: usize) -> Result<bool, ClusterRoutingError> {
    items
        .get(i)
        .and_then(Value::as_bool)
        .ok_or_else(|| malformed(format!("field {i} of {items:?} is not a boolean")))
}

fn category(items: &[Value], i: usize) -> Result<CategoryId, ClusterRoutingError> {
    text(items, i).map(|s| CategoryId(s.to_string()))
}

fn agent(items: &[Value], i: usize) -> Result<AgentId, ClusterRoutingError> {
    text(items, i).map(|s| AgentId(s.to_string()))
}

fn parse_party(s: &str) -> Result<Party, ClusterRoutingError> {
    match s {
        "customer" => Ok(Party::Customer),
        "agent" => Ok(Party::Agent),
        "system" => Ok(Party::System),
        other => Err(malformed(format!("party {other:?}"))),
    }
}

fn parse_chat_end(s: &str) -> Result<ChatEnd, ClusterRoutingError> {
    match s {
        "ended" => Ok(ChatEnd::Ended),
        "customer_gone" => Ok(ChatEnd::CustomerGone),
        "shutdown" => Ok(ChatEnd::Shutdown),
        other => Err(malformed(format!("chat end {other:?}"))),
    }
}

fn parse_removal(s: &str) -> Result<Removal, ClusterRoutingError> {
    match s {
        "left" => Ok(Removal::Left),
        "category_removed" => Ok(Removal::CategoryRemoved),
        other => Err(malformed(format!("removal {other:?}"))),
    }
}

/// The decisions of one transition as the scripts encode them (in replies and in the
/// events stream's `d` field), with the ticket of each `Queued`.
pub fn parse_decisions(json: &str) -> Result<(Vec<Decision>, Vec<Ticket>), ClusterRoutingError> {
    let value: Value = serde_json::from_str(json).map_err(malformed)?;
    let mut decisions = Vec::new();
    let mut tickets = Vec::new();
    for entry in list(&value)? {
        let d = list(entry)?;
        let decision = match text(d, 0)? {
            "queued" => {
                tickets.push(Ticket(id(d, 5)?));
                Decision::Queued {
                    customer: CustomerId(id(d, 1)?),
                    category: category(d, 2)?,
                    place: count(d, 3)?,
                    requeued: boolean(d, 4)?,
                }
            }
            "paired" => Decision::Paired {
                chat: ChatId(id(d, 1)?),
                customer: CustomerId(id(d, 2)?),
                agent: agent(d, 3)?,
                category: category(d, 4)?,
                ticket: Ticket(id(d, 5)?),
            },
            "chat_ended" => Decision::ChatEnded {
                chat: ChatId(id(d, 1)?),
                customer: CustomerId(id(d, 2)?),
                agent: agent(d, 3)?,
                ended_by: parse_party(text(d, 4)?)?,
                reason: parse_chat_end(text(d, 5)?)?,
            },
            "dequeued" => Decision::Dequeued {
                customer: CustomerId(id(d, 1)?),
                reason: parse_removal(text(d, 2)?)?,
            },
            "customer_away" => Decision::CustomerAway {
                chat: ChatId(id(d, 1)?),
                agent: agent(d, 2)?,
            },
            "customer_back" => Decision::CustomerBack {
                chat: ChatId(id(d, 1)?),
                agent: agent(d, 2)?,
            },
            "agent_away" => Decision::AgentAway {
                chat: ChatId(id(d, 1)?),
                customer: CustomerId(id(d, 2)?),
            },
            "agent_back" => Decision::AgentBack {
                chat: ChatId(id(d, 1)?),
                customer: CustomerId(id(d, 2)?),
            },
            "chat_withdrawn" => Decision::ChatWithdrawn {
                chat: ChatId(id(d, 1)?),
                customer: CustomerId(id(d, 2)?),
                agent: agent(d, 3)?,
            },
            "customer_grace" => Decision::CustomerGraceStarted {
                customer: CustomerId(id(d, 1)?),
                epoch: id(d, 2)?,
            },
            "agent_grace" => Decision::AgentGraceStarted {
                agent: agent(d, 1)?,
                epoch: id(d, 2)?,
            },
            "waiting" => Decision::WaitingChanged {
                category: category(d, 1)?,
                waiting: count(d, 2)?,
            },
            other => return Err(malformed(format!("unknown decision {other:?}"))),
        };
        decisions.push(decision);
    }
    Ok((decisions, tickets))
}

/// One entry of the events stream, as a node reads it (XREAD/XRANGE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingEvent {
    pub id: String,
    /// The transition's name (`join`, `node_lost`, ...).
    pub transition: String,
    /// The node that made it.
    pub node: String,
    /// The transition's arguments after the fencing pair, as the script got them.
    pub args: Vec<String>,
    pub applied: Applied,
}

/// Reads the events after `after` (an entry id; "0-0" for all), at most `count`.
pub async fn read_events(
    conn: &mut ConnectionManager,
    after: &str,
    count: usize,
) -> Result<Vec<RoutingEvent>, ClusterRoutingError> {
    let start = format!("({after}");
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(EVENTS_KEY)
        .arg(start)
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?;
    reply
        .ids
        .into_iter()
        .map(|entry| {
            let field = |name: &str| -> Result<String, ClusterRoutingError> {
                entry
                    .get::<String>(name)
                    .ok_or_else(|| malformed(format!("event {} has no {name}", entry.id)))
            };
            let (decisions, queued_tickets) = parse_decisions(&field("d")?)?;
            let args: Value = serde_json::from_str(&field("a")?).map_err(malformed)?;
            let args = list(&args)?
                .iter()
                .map(|a| a.as_str().map(str::to_string).ok_or_else(|| malformed("an argument")))
                .collect::<Result<_, _>>()?;
            Ok(RoutingEvent {
                transition: field("t")?,
                node: field("n")?,
                args,
                applied: Applied {
                    decisions,
                    queued_tickets,
                    event_id: Some(entry.id.clone()),
                },
                id: entry.id,
            })
        })
        .collect()
}

fn parse_snapshot(json: &str) -> Result<RoutingSnapshot, ClusterRoutingError> {
    let value: Value = serde_json::from_str(json).map_err(malformed)?;
    let field = |name: &str| {
        value
            .get(name)
            .ok_or_else(|| malformed(format!("snapshot without {name}")))
    };
    let mut queues = Vec::new();
    for entry in list(field("categories")?)? {
        let e = list(entry)?;
        let mut queue = Vec::new();
        for waiting in list(e.get(1).ok_or_else(|| malformed("queue without members"))?)? {
            let w = list(waiting)?;
            queue.push(WaitingCustomer {
                customer: CustomerId(id(w, 0)?),
                ticket: Ticket(id(w, 1)?),
                away: maybe_id(w, 2)?,
            });
        }
        queues.push((category(e, 0)?, queue));
    }
    let mut agents = Vec::new();
    for entry in list(field("agents")?)? {
        let a = list(entry)?;
        let limit = count(a, 1)?;
        let categories = list(a.get(4).ok_or_else(|| malformed("agent without categories"))?)?
            .iter()
            .map(|c| {
                c.as_str()
                    .map(|s| CategoryId(s.to_string()))
                    .ok_or_else(|| malformed("category"))
            })
            .collect::<Result<_, _>>()?;
        let chats = list(a.get(5).ok_or_else(|| malformed("agent without chats"))?)?
            .iter()
            .map(|c| {
                c.as_str()
                    .and_then(|s| s.parse().ok())
                    .map(ChatId)
                    .ok_or_else(|| malformed("chat id"))
            })
            .collect::<Result<_, _>>()?;
        let view = AgentView {
            categories,
            limit: u8::try_from(limit).map_err(malformed)?,
            available: boolean(a, 2)?,
            connected: maybe_id(a, 3)?.is_none(),
            chats,
        };
        agents.push((agent(a, 0)?, view));
    }
    let mut chats = Vec::new();
    for entry in list(field("chats")?)? {
        let c = list(entry)?;
        chats.push(ChatSnapshot {
            chat: ChatId(id(c, 0)?),
            customer: CustomerId(id(c, 1)?),
            agent: agent(c, 2)?,
            category: category(c, 3)?,
            customer_away: maybe_id(c, 4)?,
        });
    }
    let pairing_room = match field("room")?.as_str() {
        Some("") => None,
        Some(room) => Some(room.parse().map_err(|_| malformed(format!("room {room:?}")))?),
        None => return Err(malformed("room is not a string")),
    };
    let last_event = field("last_event")?
        .as_str()
        .ok_or_else(|| malformed("last_event"))?
        .to_string();
    Ok(RoutingSnapshot {
        queues,
        agents,
        chats,
        pairing_room,
        last_event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_code_maps_back_to_the_core_error() {
        use RoutingError::*;
        for e in [
            UnknownCategory,
            UnknownCustomer,
            UnknownAgent,
            UnknownChat,
            NotYourChat,
            WrongState,
            InvalidLimit,
            AlreadyOnline,
            AlreadyExists,
        ] {
            assert_eq!(routing_error(e.code()), Some(e));
        }
        assert_eq!(routing_error("FENCED"), None);
    }

    #[test]
    fn decisions_parse_from_the_scripts_encoding_including_lua_empty_tables() {
        assert_eq!(parse_decisions("{}").unwrap(), (vec![], vec![]));
        let (decisions, tickets) = parse_decisions(
            r#"[["queued","7","sales",2,false,"8"],["waiting","sales",2],
                ["paired","9","7","ann","sales","8"],["agent_grace","ann","10"]]"#,
        )
        .unwrap();
        assert_eq!(tickets, vec![Ticket(8)]);
        assert_eq!(
            decisions,
            vec![
                Decision::Queued {
                    customer: CustomerId(7),
                    category: CategoryId("sales".into()),
                    place: 2,
                    requeued: false
                },
                Decision::WaitingChanged {
                    category: CategoryId("sales".into()),
                    waiting: 2
                },
                Decision::Paired {
                    chat: ChatId(9),
                    customer: CustomerId(7),
                    agent: AgentId("ann".into()),
                    category: CategoryId("sales".into()),
                    ticket: Ticket(8)
                },
                Decision::AgentGraceStarted {
                    agent: AgentId("ann".into()),
                    epoch: 10
                },
            ]
        );
        assert!(parse_decisions(r#"[["teleported","1"]]"#).is_err());
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
