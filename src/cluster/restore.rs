//! Redis restarted EMPTY while nodes still hold people (`docs/cluster.md` §9,
//! "Back empty: re-assertion"): the adapter around `lua/restore.lua`.
//!
//! Every node's replica is a prefix of the same lost events stream, and each node has
//! carried out what its own prefix decided; so the domain is written back from the
//! *longest* one. Each node that finds the domain gone [`offer`]s its replica's last event
//! id; offers close one window (a lease period: any live node reaches Redis within its
//! renewal period) after the first; the node with the greatest id [`restore`]s its
//! replica's state, once. Every node then [`claim`]s the people it still holds and raises
//! its chats' seq to what it recorded; whoever nobody claims within the window is handed on
//! by the usual reaping, with the pseudo-node that held them.

use std::time::Duration;

use redis::aio::ConnectionManager;
use serde_json::{Value, json};

use super::chat_log::{ChatLine, LOG_BOUND, LOG_LIFETIME_SECS, claim_fields};
use super::routing_library::LIBRARY;
use super::routing_replies::MalformedReply;
use super::routing_scripts::{ClusterRoutingError, ROUTING_KEY};
use crate::core::routing::{
    AgentId, CategoryId, ChatId, ConversationId, CustomerId, OfferId, Party, RoutingState, StateAgent, StateChat,
    StateCustomer, StateOffer, Ticket,
};

/// The `t` of the events-stream entry `restore` adds; its arguments: the routing state,
/// the entry's ordinal, and the buddy list (JSON, `hub::buddy::snapshot`).
pub const RESTORE_TRANSITION: &str = "restore";

/// The pseudo-node holding every restored person until their node claims them
/// (`lua/restore.lua`): its `node_lost` ends the claim window.
pub const RESTORED_NODE: &str = "{restored}";

/// Set once the domain is restored (`lua/restore.lua`): when (ms, Redis's clock).
pub(crate) const RESTORED_KEY: &str = "{sb}:restored";

/// A random id of the routing domain's life in this Redis (set once, `SET NX`): chat wire
/// ids derive from it and the chat id, so both sides' nodes name a chat alike without
/// asking, and a Redis that lost its data (ids start again) names chats anew. It is also
/// how a node notices that loss: its follower finds the id gone or changed.
pub(crate) const CLUSTER_ID_KEY: &str = "{sb}:cluster-id";

/// What a node holds of the restored domain: the people connected to it (or whose grace
/// timer runs here), per chat side held here the last seq it recorded, and per
/// conversation it stamped lines of (or a customer here continues) the highest seq it
/// knows: each counter is raised to the highest any node claims. And the latest lines it
/// holds of its chats, written back into their logs: a line stamped just before the loss
/// that another node never got is read from there.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    pub customers: Vec<CustomerId>,
    pub agents: Vec<AgentId>,
    pub chats: Vec<(ChatId, Party, u64)>,
    pub conversations: Vec<(String, u64)>,
    pub lines: Vec<ChatLine>,
}

/// Where the offers stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offers {
    /// The node that offered the longest replica so far.
    pub winner: String,
    /// How long they stay open (zero or less: closed).
    pub closes_in_ms: i64,
}

/// How a restore call ended, when Redis answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// This node wrote the domain back.
    Written,
    /// Someone did already.
    Already,
    /// Not this node's turn (another offered a longer replica, or the offers are open).
    NotWinner,
}

/// A stream id's two parts (`ms-seq`); "0-0" for a replica that applied nothing.
fn id_parts(event: &str) -> (u64, u64) {
    let (ms, seq) = event.split_once('-').unwrap_or((event, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Offers this node's replica (its last applied event `last_event`).
pub async fn offer(
    conn: &mut ConnectionManager,
    node: &str,
    incarnation: u64,
    last_event: &str,
    window: Duration,
) -> Result<Offers, ClusterRoutingError> {
    let (ms, seq) = id_parts(last_event);
    let mut call = LIBRARY.restore("offer", ROUTING_KEY);
    call.arg(node)
        .arg(incarnation)
        .arg(ms)
        .arg(seq)
        .arg(window.as_millis() as u64);
    let (winner, closes_in_ms): (String, i64) = LIBRARY.invoke(&call, conn).await?;
    Ok(Offers { winner, closes_in_ms })
}

/// The state as `lua/restore.lua` reads it: ids as strings (Lua numbers are doubles).
fn encode(state: &RoutingState) -> String {
    let customers: Vec<_> = state
        .customers
        .iter()
        .map(|c| {
            let passed: Vec<&str> = c.passed.iter().map(|a| a.0.as_str()).collect();
            json!([
                c.id.0.to_string(),
                c.category.0,
                c.ticket.0.to_string(),
                c.chat.map(|chat| chat.0.to_string()).unwrap_or_default(),
                c.away_epoch.map(|e| e.to_string()).unwrap_or_default(),
                passed,
                c.continuing.map(|chat| chat.0.to_string()).unwrap_or_default(),
                c.conversation.as_ref().map_or("", |id| id.0.as_str()),
            ])
        })
        .collect();
    let agents: Vec<_> = state
        .agents
        .iter()
        .map(|a| {
            let categories: Vec<&str> = a.categories.iter().map(|c| c.as_str()).collect();
            json!([
                a.id.0,
                a.limit.to_string(),
                a.available,
                a.away_epoch.map(|e| e.to_string()).unwrap_or_default(),
                a.last_assigned.to_string(),
                categories,
                a.busy,
                a.away_reason.clone().unwrap_or_default(),
                a.lapses.to_string(),
            ])
        })
        .collect();
    let chats: Vec<_> = state
        .chats
        .iter()
        .map(|c| json!([c.id.0.to_string(), c.customer.0.to_string(), c.agent.0, c.category.0]))
        .collect();
    let offers: Vec<_> = state
        .offers
        .iter()
        .map(|o| json!([o.id.0.to_string(), o.customer.0.to_string(), o.agent.0, o.category.0]))
        .collect();
    let categories: Vec<&str> = state.categories.iter().map(|c| c.as_str()).collect();
    let closed: Vec<&str> = state.closed.iter().map(|c| c.as_str()).collect();
    let offer_mode: Vec<&str> = state.offer_mode.iter().map(|c| c.as_str()).collect();
    let mode_set_at: Vec<_> = state
        .mode_set_at
        .iter()
        .map(|(c, at)| json!([c.as_str(), at.to_string()]))
        .collect();
    let open_set_at: Vec<_> = state
        .open_set_at
        .iter()
        .map(|(c, at)| json!([c.as_str(), at.to_string()]))
        .collect();
    json!({
        "closed": closed,
        "offer_mode": offer_mode,
        "mode_set_at": mode_set_at,
        "open_set_at": open_set_at,
        "offers": offers,
        "counter": state.counter.to_string(),
        "room": state.pairing_room.map(|r| r.to_string()).unwrap_or_default(),
        "held_back": state.held_back,
        "categories": categories,
        "customers": customers,
        "agents": agents,
        "chats": chats,
    })
    .to_string()
}

/// The state `restore` wrote, from the argument of its events-stream entry.
pub fn decode(json: &str) -> Result<RoutingState, MalformedReply> {
    let bad = |what: &str| MalformedReply(format!("restored state: {what}"));
    let value: Value = serde_json::from_str(json).map_err(|e| MalformedReply(e.to_string()))?;
    let list = |v: &Value| -> Vec<Value> { v.as_array().cloned().unwrap_or_default() };
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| bad("a field is not a string"))
    };
    let number = |v: &Value| -> Result<u64, MalformedReply> {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("a field is not an id"))
    };
    let maybe = |v: &Value| -> Result<Option<u64>, MalformedReply> {
        match v.as_str() {
            Some("") => Ok(None),
            _ => number(v).map(Some),
        }
    };
    let mut state = RoutingState {
        counter: number(&value["counter"])?,
        pairing_room: match value["room"].as_str() {
            Some("") | None => None,
            Some(room) => Some(room.parse().map_err(|_| bad("room"))?),
        },
        held_back: value["held_back"].as_bool().unwrap_or(false),
        ..RoutingState::default()
    };
    for c in list(&value["categories"]) {
        state.categories.push(CategoryId::from(text(&c)?));
    }
    for c in list(&value["closed"]) {
        state.closed.push(CategoryId::from(text(&c)?));
    }
    for c in list(&value["offer_mode"]) {
        state.offer_mode.push(CategoryId::from(text(&c)?));
    }
    for m in list(&value["mode_set_at"]) {
        state.mode_set_at.push((CategoryId::from(text(&m[0])?), number(&m[1])?));
    }
    for m in list(&value["open_set_at"]) {
        state.open_set_at.push((CategoryId::from(text(&m[0])?), number(&m[1])?));
    }
    for c in list(&value["customers"]) {
        state.customers.push(StateCustomer {
            id: CustomerId(number(&c[0])?),
            category: CategoryId::from(text(&c[1])?),
            ticket: Ticket(number(&c[2])?),
            chat: maybe(&c[3])?.map(ChatId),
            away_epoch: maybe(&c[4])?,
            passed: list(&c[5])
                .iter()
                .map(|a| text(a).map(AgentId))
                .collect::<Result<_, _>>()?,
            continuing: match c.get(6) {
                Some(v) => maybe(v)?.map(ChatId),
                None => None,
            },
            conversation: c
                .get(7)
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(|id| ConversationId(id.to_string())),
        });
    }
    for a in list(&value["agents"]) {
        let categories = list(&a[5])
            .iter()
            .map(|c| text(c).map(CategoryId::from))
            .collect::<Result<_, _>>()?;
        state.agents.push(StateAgent {
            id: AgentId(text(&a[0])?),
            limit: u8::try_from(number(&a[1])?).map_err(|_| bad("limit"))?,
            available: a[2].as_bool().ok_or_else(|| bad("available"))?,
            busy: a[6].as_bool().unwrap_or(false),
            away_reason: a[7].as_str().filter(|r| !r.is_empty()).map(str::to_string),
            away_epoch: maybe(&a[3])?,
            last_assigned: number(&a[4])?,
            lapses: match a[8].as_str() {
                None => 0,
                Some(_) => u8::try_from(number(&a[8])?).map_err(|_| bad("lapses"))?,
            },
            categories,
        });
    }
    for c in list(&value["chats"]) {
        state.chats.push(StateChat {
            id: ChatId(number(&c[0])?),
            customer: CustomerId(number(&c[1])?),
            agent: AgentId(text(&c[2])?),
            category: CategoryId::from(text(&c[3])?),
        });
    }
    for o in list(&value["offers"]) {
        state.offers.push(StateOffer {
            id: OfferId(number(&o[0])?),
            customer: CustomerId(number(&o[1])?),
            agent: AgentId(text(&o[2])?),
            category: CategoryId::from(text(&o[3])?),
        });
    }
    Ok(state)
}

/// Writes `state` back as the routing domain, under the lost domain's id `lost_id` (with
/// no buddy list: [`restore_with_buddies`]).
pub async fn restore(
    conn: &mut ConnectionManager,
    node: &str,
    incarnation: u64,
    state: &RoutingState,
    lost_id: &str,
    window: Duration,
) -> Result<Restored, ClusterRoutingError> {
    restore_with_buddies(conn, node, incarnation, state, "", lost_id, window).await
}

/// Writes `state` back as the routing domain, under the lost domain's id `lost_id`, with
/// `buddies` (the buddy list, JSON) for every node to load from the restore entry.
pub async fn restore_with_buddies(
    conn: &mut ConnectionManager,
    node: &str,
    incarnation: u64,
    state: &RoutingState,
    buddies: &str,
    lost_id: &str,
    window: Duration,
) -> Result<Restored, ClusterRoutingError> {
    let mut call = LIBRARY.restore("restore", ROUTING_KEY);
    call.arg(node)
        .arg(incarnation)
        .arg(encode(state))
        .arg(lost_id)
        .arg(window.as_millis() as u64)
        .arg(buddies);
    let written: Result<String, redis::RedisError> = LIBRARY.invoke(&call, conn).await;
    match written {
        Ok(_) => Ok(Restored::Written),
        Err(e) if e.code() == Some("RESTORED") => Ok(Restored::Already),
        Err(e) if e.code() == Some("NOT_WINNER") => Ok(Restored::NotWinner),
        Err(e) => Err(e.into()),
    }
}

/// Whether the domain has been restored.
pub async fn is_restored(conn: &mut ConnectionManager) -> Result<bool, ClusterRoutingError> {
    let exists: bool = redis::cmd("EXISTS").arg(RESTORED_KEY).query_async(conn).await?;
    Ok(exists)
}

/// Lines one call writes back at most (200 chats' last 16), and about how many bytes of
/// them: a node holding many chats writes their lines back in several calls, none of
/// which holds Redis long (each line written back is one `XADD`) or sends it a huge
/// argument, as the buddy claim does (`buddy_chat_log::claim_calls`).
const CLAIM_LINES_PER_CALL: usize = 3_200;
const CLAIM_BYTES_PER_CALL: usize = 1 << 19;

/// `lines` (each with its fields as a claim sends them) in write-back calls.
fn line_calls(lines: Vec<[String; 9]>) -> Vec<Vec<[String; 9]>> {
    let mut calls = vec![];
    let (mut call, mut bytes) = (vec![], 0);
    for line in lines {
        // As sent: JSON, escapes and all.
        let size = serde_json::to_string(&line).map_or(0, |l| l.len()) + 1;
        if !call.is_empty() && (call.len() == CLAIM_LINES_PER_CALL || bytes + size > CLAIM_BYTES_PER_CALL) {
            calls.push(std::mem::take(&mut call));
            bytes = 0;
        }
        bytes += size;
        call.push(line);
    }
    if !call.is_empty() {
        calls.push(call);
    }
    calls
}

/// Claims this node's people, raises its chats' and conversations' seq and writes the
/// lines it holds back into their chats' logs: the lines first, in bounded calls
/// (`lua/restore.lua`'s `claim_lines`) while its chats are pending, then the claim
/// (`claim`), which raises the seqs and takes its sides out of the pending sets. Each
/// call can be made again (a line is written back once; seqs only go up).
pub async fn claim(
    conn: &mut ConnectionManager,
    node: &str,
    incarnation: u64,
    claims: &Claims,
    window: Duration,
) -> Result<(), ClusterRoutingError> {
    let side = |party: &Party| match party {
        Party::Customer => "customer",
        _ => "agent",
    };
    let body = json!({
        "customers": claims.customers.iter().map(|c| c.0.to_string()).collect::<Vec<_>>(),
        "agents": claims.agents.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(),
        "chats": claims
            .chats
            .iter()
            .map(|(chat, party, seq)| json!([chat.0.to_string(), side(party), seq.to_string()]))
            .collect::<Vec<_>>(),
        "conversations": claims
            .conversations
            .iter()
            .map(|(id, seq)| json!([id, seq.to_string()]))
            .collect::<Vec<_>>(),
    });
    for lines in line_calls(claims.lines.iter().map(claim_fields).collect()) {
        let mut call = LIBRARY.restore("claim_lines", ROUTING_KEY);
        call.arg(node)
            .arg(incarnation)
            .arg(json!({ "lines": lines }).to_string())
            .arg(window.as_millis() as u64)
            .arg(LOG_LIFETIME_SECS)
            .arg(LOG_BOUND);
        let _: i64 = LIBRARY.invoke(&call, conn).await?;
    }
    let mut call = LIBRARY.restore("claim", ROUTING_KEY);
    call.arg(node)
        .arg(incarnation)
        .arg(body.to_string())
        .arg(window.as_millis() as u64)
        .arg(LOG_LIFETIME_SECS)
        .arg(LOG_BOUND);
    let _: i64 = LIBRARY.invoke(&call, conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_written_for_the_restore_script_reads_back_the_same() {
        let state = RoutingState {
            categories: vec![CategoryId("general".into()), CategoryId("returns".into())],
            customers: vec![
                StateCustomer {
                    id: CustomerId(3),
                    category: CategoryId("general".into()),
                    ticket: Ticket(4),
                    chat: Some(ChatId(9)),
                    away_epoch: Some(12),
                    passed: vec![],
                    continuing: None,
                    conversation: None,
                },
                StateCustomer {
                    id: CustomerId(5),
                    category: CategoryId("returns".into()),
                    ticket: Ticket(6),
                    chat: None,
                    away_epoch: None,
                    passed: vec![AgentId("bo".into()), AgentId("cy".into())],
                    continuing: Some(ChatId(11)),
                    conversation: Some(ConversationId("0190-conv".into())),
                },
                StateCustomer {
                    id: CustomerId(13),
                    category: CategoryId("general".into()),
                    ticket: Ticket(14),
                    chat: None,
                    away_epoch: None,
                    passed: vec![AgentId("bo".into())],
                    continuing: None,
                    conversation: None,
                },
            ],
            agents: vec![
                StateAgent {
                    id: AgentId("ann".into()),
                    categories: vec![CategoryId("general".into())],
                    limit: 2,
                    available: false,
                    busy: true,
                    away_reason: None,
                    away_epoch: None,
                    last_assigned: 10,
                    lapses: 1,
                },
                StateAgent {
                    id: AgentId("bo".into()),
                    categories: vec![],
                    limit: 1,
                    available: false,
                    busy: false,
                    away_reason: Some("lunch".into()),
                    away_epoch: Some(11),
                    last_assigned: 8,
                    lapses: 0,
                },
            ],
            chats: vec![StateChat {
                id: ChatId(9),
                customer: CustomerId(3),
                agent: AgentId("ann".into()),
                category: CategoryId("general".into()),
            }],
            counter: u64::MAX - 1,
            pairing_room: Some(7),
            held_back: true,
            closed: vec![CategoryId("returns".into())],
            offer_mode: vec![CategoryId("general".into()), CategoryId("returns".into())],
            mode_set_at: vec![(CategoryId("general".into()), 1_795_896_214_055)],
            open_set_at: vec![(CategoryId("returns".into()), 1_795_896_214_056)],
            offers: vec![StateOffer {
                id: OfferId(15),
                customer: CustomerId(13),
                agent: AgentId("ann".into()),
                category: CategoryId("general".into()),
            }],
        };
        assert_eq!(decode(&encode(&state)).unwrap(), state);
        assert_eq!(
            decode(&encode(&RoutingState::default())).unwrap(),
            RoutingState::default()
        );
    }

    #[test]
    fn stream_ids_split_into_their_two_parts() {
        assert_eq!(id_parts("1700000000000-7"), (1_700_000_000_000, 7));
        assert_eq!(id_parts("0-0"), (0, 0));
    }
}
