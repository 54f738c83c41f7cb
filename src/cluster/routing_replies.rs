//! The replies of the cluster routing scripts (`lua/routing.lua`, `lua/snapshot.lua`),
//! decoded: the decisions of a transition as the scripts encode them (in replies and in the
//! events stream), and the snapshot of the whole routing domain.

use serde_json::Value;

use crate::core::places::Places;
use crate::core::routing::{
    AgentId, AgentView, CategoryId, ChatEnd, ChatId, ConversationId, CustomerId, Decision, OfferEnd, OfferId, Party,
    Removal, RoutingState, StateAgent, StateChat, StateCustomer, StateOffer, Ticket,
};

/// A reply that is not what the scripts write: a script and this adapter disagree.
#[derive(Debug, thiserror::Error)]
#[error("malformed reply from a routing script: {0}")]
pub struct MalformedReply(pub String);

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
    /// How many routing events were ever added, up to and including `last_event`.
    pub events_added: u64,
    /// The same instant as a core's whole state, for a replica loaded from it
    /// (`Routing::from_state`).
    pub state: RoutingState,
}

impl RoutingSnapshot {
    /// Loads a place mirror with these queues (see [`Places::reload`]).
    pub fn reload_places(&self, places: &mut Places) {
        places.reload(
            self.queues
                .iter()
                .map(|(category, queue)| (category.clone(), queue.iter().map(|w| (w.ticket, w.customer)).collect())),
        );
    }
}

// ---- parsing replies ----------------------------------------------------------------------

fn malformed(what: impl std::fmt::Display) -> MalformedReply {
    MalformedReply(what.to_string())
}

/// A JSON array; Lua's cjson writes an empty table as `{}`.
fn list(value: &Value) -> Result<&[Value], MalformedReply> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(map) if map.is_empty() => Ok(&[]),
        other => Err(malformed(format!("expected a list, got {other}"))),
    }
}

fn text(items: &[Value], i: usize) -> Result<&str, MalformedReply> {
    items
        .get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(format!("field {i} of {items:?} is not a string")))
}

/// A decimal id (ids travel as strings: Lua numbers are doubles).
fn id(items: &[Value], i: usize) -> Result<u64, MalformedReply> {
    let s = text(items, i)?;
    s.parse().map_err(|_| malformed(format!("{s:?} is not an id")))
}

/// An optional id: the empty string is none.
fn maybe_id(items: &[Value], i: usize) -> Result<Option<u64>, MalformedReply> {
    match text(items, i)? {
        "" => Ok(None),
        _ => id(items, i).map(Some),
    }
}

/// The conversation a customer continues (absent or empty: none).
fn conversation(items: &[Value], i: usize) -> Option<ConversationId> {
    items
        .get(i)
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(|id| ConversationId(id.to_string()))
}

fn count(items: &[Value], i: usize) -> Result<usize, MalformedReply> {
    items
        .get(i)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| malformed(format!("field {i} of {items:?} is not a count")))
}

fn boolean(items: &[Value], i: usize) -> Result<bool, MalformedReply> {
    items
        .get(i)
        .and_then(Value::as_bool)
        .ok_or_else(|| malformed(format!("field {i} of {items:?} is not a boolean")))
}

fn category(items: &[Value], i: usize) -> Result<CategoryId, MalformedReply> {
    text(items, i).map(|s| CategoryId::from(s.to_string()))
}

fn agent(items: &[Value], i: usize) -> Result<AgentId, MalformedReply> {
    text(items, i).map(|s| AgentId(s.to_string()))
}

fn parse_party(s: &str) -> Result<Party, MalformedReply> {
    match s {
        "customer" => Ok(Party::Customer),
        "agent" => Ok(Party::Agent),
        "system" => Ok(Party::System),
        other => Err(malformed(format!("party {other:?}"))),
    }
}

fn parse_chat_end(s: &str) -> Result<ChatEnd, MalformedReply> {
    match s {
        "ended" => Ok(ChatEnd::Ended),
        "customer_gone" => Ok(ChatEnd::CustomerGone),
        "shutdown" => Ok(ChatEnd::Shutdown),
        other => Err(malformed(format!("chat end {other:?}"))),
    }
}

fn parse_offer_end(s: &str) -> Result<OfferEnd, MalformedReply> {
    match s {
        "declined" => Ok(OfferEnd::Declined),
        "lapsed" => Ok(OfferEnd::Lapsed),
        "withdrawn" => Ok(OfferEnd::Withdrawn),
        other => Err(malformed(format!("offer end {other:?}"))),
    }
}

/// A list of strings (field `i` of `items`; absent: empty).
fn strings(items: &[Value], i: usize) -> Result<Vec<String>, MalformedReply> {
    let Some(value) = items.get(i) else {
        return Ok(vec![]);
    };
    list(value)?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| malformed(format!("field {i} of {items:?} is not a list of strings")))
        })
        .collect()
}

/// A list of decimal ids (field `i` of `items`; absent: empty).
fn ids(items: &[Value], i: usize) -> Result<Vec<u64>, MalformedReply> {
    strings(items, i)?
        .into_iter()
        .map(|s| s.parse().map_err(|_| malformed(format!("{s:?} is not an id"))))
        .collect()
}

fn parse_removal(s: &str) -> Result<Removal, MalformedReply> {
    match s {
        "left" => Ok(Removal::Left),
        "category_removed" => Ok(Removal::CategoryRemoved),
        other => Err(malformed(format!("removal {other:?}"))),
    }
}

/// The decisions of one transition as the scripts encode them (in replies and in the
/// events stream's `d` field), with the ticket of each `Queued`.
pub fn parse_decisions(json: &str) -> Result<(Vec<Decision>, Vec<Ticket>), MalformedReply> {
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
            "busy_ended" => Decision::BusyEnded { agent: agent(d, 1)? },
            "category_open" => Decision::CategoryOpenChanged {
                category: category(d, 1)?,
                open: boolean(d, 2)?,
            },
            "offered" => Decision::Offered {
                offer: OfferId(id(d, 1)?),
                customer: CustomerId(id(d, 2)?),
                agent: agent(d, 3)?,
                category: category(d, 4)?,
                ticket: Ticket(id(d, 5)?),
            },
            "offer_ended" => Decision::OfferEnded {
                offer: OfferId(id(d, 1)?),
                customer: CustomerId(id(d, 2)?),
                agent: agent(d, 3)?,
                why: parse_offer_end(text(d, 4)?)?,
            },
            "away_missed_offers" => Decision::AwayAfterMissedOffers { agent: agent(d, 1)? },
            "chat_transferred" => Decision::ChatTransferred {
                chat: ChatId(id(d, 1)?),
                customer: CustomerId(id(d, 2)?),
                from: agent(d, 3)?,
                to: agent(d, 4)?,
                // Absent from an entry written before a chat could move category.
                category: match d.get(5) {
                    Some(_) if !text(d, 5)?.is_empty() => Some(category(d, 5)?),
                    _ => None,
                },
            },
            "chat_to_category" => Decision::ChatToCategory {
                chat: ChatId(id(d, 1)?),
                customer: CustomerId(id(d, 2)?),
                from: agent(d, 3)?,
                category: category(d, 4)?,
            },
            other => return Err(malformed(format!("unknown decision {other:?}"))),
        };
        decisions.push(decision);
    }
    Ok((decisions, tickets))
}

/// A transition's arguments as the events stream logs them (a JSON list of strings).
pub fn parse_args(json: &str) -> Result<Vec<String>, MalformedReply> {
    let value: Value = serde_json::from_str(json).map_err(malformed)?;
    list(&value)?
        .iter()
        .map(|a| a.as_str().map(str::to_string).ok_or_else(|| malformed("an argument")))
        .collect()
}

pub fn parse_snapshot(json: &str) -> Result<RoutingSnapshot, MalformedReply> {
    let value: Value = serde_json::from_str(json).map_err(malformed)?;
    let field = |name: &str| {
        value
            .get(name)
            .ok_or_else(|| malformed(format!("snapshot without {name}")))
    };
    let mut state = RoutingState::default();
    let mut queues = Vec::new();
    for entry in list(field("categories")?)? {
        let e = list(entry)?;
        let mut queue = Vec::new();
        for waiting in list(e.get(1).ok_or_else(|| malformed("queue without members"))?)? {
            let w = list(waiting)?;
            let customer = WaitingCustomer {
                customer: CustomerId(id(w, 0)?),
                ticket: Ticket(id(w, 1)?),
                away: maybe_id(w, 2)?,
            };
            state.customers.push(StateCustomer {
                id: customer.customer,
                category: category(e, 0)?,
                ticket: customer.ticket,
                chat: None,
                away_epoch: customer.away,
                passed: strings(w, 3)?.into_iter().map(AgentId).collect(),
                continuing: maybe_id(w, 4)?.map(ChatId),
                conversation: conversation(w, 5),
            });
            queue.push(customer);
        }
        state.categories.push(category(e, 0)?);
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
                    .map(|s| CategoryId::from(s.to_string()))
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
            busy: boolean(a, 7)?,
            away_reason: Some(text(a, 8)?).filter(|r| !r.is_empty()).map(str::to_string),
            connected: maybe_id(a, 3)?.is_none(),
            chats,
            offers: ids(a, 10)?.into_iter().map(OfferId).collect(),
        };
        state.agents.push(StateAgent {
            id: agent(a, 0)?,
            categories: view.categories.clone(),
            limit: view.limit,
            available: view.available,
            busy: view.busy,
            away_reason: view.away_reason.clone(),
            away_epoch: maybe_id(a, 3)?,
            last_assigned: id(a, 6)?,
            lapses: a
                .get(9)
                .and_then(Value::as_u64)
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| malformed("agent without lapses"))?,
        });
        agents.push((agent(a, 0)?, view));
    }
    let mut chats = Vec::new();
    for entry in list(field("chats")?)? {
        let c = list(entry)?;
        let chat = ChatSnapshot {
            chat: ChatId(id(c, 0)?),
            customer: CustomerId(id(c, 1)?),
            agent: agent(c, 2)?,
            category: category(c, 3)?,
            customer_away: maybe_id(c, 4)?,
        };
        state.customers.push(StateCustomer {
            id: chat.customer,
            category: category(c, 6)?,
            ticket: Ticket(id(c, 5)?),
            chat: Some(chat.chat),
            away_epoch: chat.customer_away,
            passed: strings(c, 7)?.into_iter().map(AgentId).collect(),
            continuing: None,
            conversation: conversation(c, 8),
        });
        state.chats.push(StateChat {
            id: chat.chat,
            customer: chat.customer,
            agent: chat.agent.clone(),
            category: chat.category.clone(),
        });
        chats.push(chat);
    }
    state.customers.sort_by_key(|c| c.id);
    state.closed = list(field("closed")?)?
        .iter()
        .map(|c| {
            c.as_str()
                .map(|s| CategoryId::from(s.to_string()))
                .ok_or_else(|| malformed("closed category"))
        })
        .collect::<Result<_, _>>()?;
    state.offer_mode = strings(std::slice::from_ref(field("offer_mode")?), 0)?
        .into_iter()
        .map(CategoryId::from)
        .collect();
    for entry in list(field("mode_set_at")?)? {
        let m = list(entry)?;
        state.mode_set_at.push((category(m, 0)?, id(m, 1)?));
    }
    for entry in list(field("open_set_at")?)? {
        let m = list(entry)?;
        state.open_set_at.push((category(m, 0)?, id(m, 1)?));
    }
    for entry in list(field("offers")?)? {
        let o = list(entry)?;
        state.offers.push(StateOffer {
            id: OfferId(id(o, 0)?),
            customer: CustomerId(id(o, 1)?),
            agent: agent(o, 2)?,
            category: category(o, 3)?,
        });
    }
    state.counter = id(std::slice::from_ref(field("counter")?), 0)?;
    state.held_back = field("held_back")?.as_bool().ok_or_else(|| malformed("held_back"))?;
    let pairing_room = match field("room")?.as_str() {
        Some("") => None,
        Some(room) => Some(room.parse().map_err(|_| malformed(format!("room {room:?}")))?),
        None => return Err(malformed("room is not a string")),
    };
    let last_event = field("last_event")?
        .as_str()
        .ok_or_else(|| malformed("last_event"))?
        .to_string();
    let events_added = field("added")?.as_u64().ok_or_else(|| malformed("added"))?;
    state.pairing_room = pairing_room;
    Ok(RoutingSnapshot {
        state,
        events_added,
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
    fn decisions_parse_from_the_scripts_encoding_including_lua_empty_tables() {
        assert_eq!(parse_decisions("{}").unwrap(), (vec![], vec![]));
        let (decisions, tickets) = parse_decisions(
            r#"[["queued","7","sales",2,false,"8"],["waiting","sales",2],
                ["paired","9","7","ann","sales","8"],["agent_grace","ann","10"],
                ["offered","11","7","ann","sales","8"],["offer_ended","11","7","ann","lapsed"],
                ["away_missed_offers","ann"]]"#,
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
                Decision::Offered {
                    offer: OfferId(11),
                    customer: CustomerId(7),
                    agent: AgentId("ann".into()),
                    category: CategoryId("sales".into()),
                    ticket: Ticket(8)
                },
                Decision::OfferEnded {
                    offer: OfferId(11),
                    customer: CustomerId(7),
                    agent: AgentId("ann".into()),
                    why: OfferEnd::Lapsed
                },
                Decision::AwayAfterMissedOffers {
                    agent: AgentId("ann".into())
                },
            ]
        );
        assert!(parse_decisions(r#"[["teleported","1"]]"#).is_err());
    }
}
