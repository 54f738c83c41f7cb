//! A node's replica of the routing domain: every routing transition as one
//! value, [`RoutingOp`], that either runs as its fenced script on Redis (the authority)
//! or is applied to a local `core::routing::Routing`. A node replays the events stream
//! (`{sb}:routing-events`, every applied transition with its arguments, in Redis's order)
//! through the core, so its replica makes exactly the decisions the scripts made — the
//! differential test proves the two identical, ids included — and the hub keeps reading
//! places, agent views and chat sides synchronously from it.

use super::routing_scripts::{Applied, ClusterRoutingError, RedisRouting};
use crate::core::routing::{
    AgentId, AgentStatus, CategoryId, ChatId, CustomerId, Decision, OfferId, Party, Routing, RoutingError, RoutingMode,
};

pub use super::routing_scripts::Continues;

/// One routing transition, as a node asks for it and as the events stream records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingOp {
    AddCategory(CategoryId),
    RemoveCategory(CategoryId),
    /// `request` names the joining connection (`docs/cluster.md` §9); `name` and `video`
    /// ride along in the event's arguments (the script ignores them) so the node of the
    /// agent this customer is paired with knows whom it talks to without asking Redis.
    Join {
        category: CategoryId,
        request: String,
        name: String,
        video: bool,
        /// The key of the customer's resume token (`resume_tokens::key`), recorded by the
        /// join's script with the customer's id; empty when replayed.
        token_key: String,
        /// What the customer came about (`join.message`; empty: nothing), for an agent
        /// offered them on any node. The script ignores it.
        message: String,
        /// What the customer told about themselves, for whichever node archives their chat
        /// (JSON in the event's arguments; absent: nothing). The script ignores it. Boxed:
        /// a join is the largest transition by far.
        profile: Box<crate::store::CustomerProfile>,
        /// The agent holding the conversation the customer returns to: paired at once
        /// when they may take it (`Routing::join_preferring`).
        preferred: Option<AgentId>,
        /// The conversation the customer continues: the chat's id on every node, its lines
        /// numbered on from `last_seq` (the script raises it to the conversation's counter,
        /// and the event records the raised one).
        continues: Option<Continues>,
    },
    Leave(CustomerId),
    CustomerDisconnected(CustomerId),
    CustomerResumed(CustomerId),
    CustomerGraceExpired(CustomerId, u64),
    /// `sign_in` names the sign-in (the connection) the call is made for
    /// (`docs/cluster.md` §13): it rides in the event's arguments, which the script ends
    /// the categories before, so the node that made it welcomes only that sign-in.
    AgentOnline {
        agent: AgentId,
        categories: Vec<CategoryId>,
        limit: u8,
        available: bool,
        sign_in: Option<String>,
    },
    /// A take-back of a coming back names the sign-in whose coming back it takes back
    /// (the script does not read it); a page's closing names none.
    AgentDisconnected(AgentId, Option<String>),
    /// The sign-in it is made for rides along, as in [`RoutingOp::AgentOnline`].
    AgentResumed(AgentId, Option<String>),
    AgentGraceExpired(AgentId, u64),
    /// A take-back names the sign-in whose coming online it takes back (the script does
    /// not read it); any other going offline names none.
    AgentOffline(AgentId, Option<String>),
    SetAvailable(AgentId, bool),
    /// The agent's status and, when away, their reason.
    SetStatus(AgentId, AgentStatus, Option<String>),
    /// A category opens (`true`) or closes: its hours, applied by a node's clock, and the
    /// stamp of the hours document it was read from (ms; `None` from a node of a build
    /// before stamps, whose entries carry none).
    SetCategoryOpen(CategoryId, bool, Option<u64>),
    /// How a category's customers reach agents, and when that mode was stored (ms; `None`
    /// as for [`RoutingOp::SetCategoryOpen`]).
    SetCategoryMode(CategoryId, RoutingMode, Option<u64>),
    AcceptOffer(AgentId, OfferId),
    DeclineOffer(AgentId, OfferId),
    /// An offer's timer fired.
    OfferExpired(OfferId),
    SetLimit(AgentId, u8),
    /// The agent `by` hands `chat` to the agent `to`, moving it into `category` when
    /// named; `note` (for the new agent) rides in the event's arguments, which the script
    /// does not read.
    TransferToAgent {
        chat: ChatId,
        by: AgentId,
        to: AgentId,
        category: Option<CategoryId>,
        note: String,
    },
    /// The agent `by` hands `chat` to `category`'s line; `note` as above.
    TransferToCategory {
        chat: ChatId,
        by: AgentId,
        category: CategoryId,
        note: String,
    },
    SetCategories(AgentId, Vec<CategoryId>),
    EndChat(ChatId, Party),
    /// An agent ends their own chat (refused when it is not theirs).
    AgentEndsChat(ChatId, AgentId),
    SetPairingRoom(Option<usize>),
    /// Everyone `node` held, handed to the caller. Replayed from the event's own decisions
    /// (the replica does not know who a node held; the decisions name them in order).
    NodeLost(String, Vec<Decision>),
}

/// Why an event of the stream could not be read as a transition.
#[derive(Debug, thiserror::Error)]
#[error("unreadable routing event {transition} {args:?}")]
pub struct UnreadableEvent {
    pub transition: String,
    pub args: Vec<String>,
}

fn party(word: &str) -> Option<Party> {
    match word {
        "customer" => Some(Party::Customer),
        "agent" => Some(Party::Agent),
        "system" => Some(Party::System),
        _ => None,
    }
}

impl RoutingOp {
    /// The transition an events stream entry records (`decisions`: the entry's own, needed
    /// for `node_lost` only).
    pub fn from_event(transition: &str, a: &[String], decisions: &[Decision]) -> Result<Self, UnreadableEvent> {
        let bad = || UnreadableEvent {
            transition: transition.to_string(),
            args: a.to_vec(),
        };
        let arg = |i: usize| a.get(i).ok_or_else(bad);
        let customer = |i: usize| arg(i)?.parse().map(CustomerId).map_err(|_| bad());
        let number = |i: usize| arg(i)?.parse::<u64>().map_err(|_| bad());
        // A stamp the entry may lack (written by a node of a build before it): `None`.
        let stamp = |i: usize| match a.get(i) {
            Some(_) => number(i).map(Some),
            None => Ok(None),
        };
        let limit = |i: usize| number(i).and_then(|n| u8::try_from(n).map_err(|_| bad()));
        let agent = || arg(0).map(|a| AgentId(a.clone()));
        // The sign-in an agent's call names, absent in an entry of a build before them.
        let signed = |i: usize| a.get(i).filter(|s| !s.is_empty()).cloned();
        let cats = |from: usize| {
            a.iter()
                .skip(from)
                .map(|c| CategoryId::from(c.as_str()))
                .collect::<Vec<_>>()
        };
        Ok(match transition {
            "add_category" => Self::AddCategory(CategoryId::from(arg(0)?.as_str())),
            "remove_category" => Self::RemoveCategory(CategoryId::from(arg(0)?.as_str())),
            "join" => Self::Join {
                category: CategoryId::from(arg(0)?.as_str()),
                request: a.get(1).cloned().unwrap_or_default(),
                name: a.get(2).cloned().unwrap_or_default(),
                video: a.get(3).is_some_and(|v| v == "1"),
                token_key: a.get(4).cloned().unwrap_or_default(),
                message: a.get(6).cloned().unwrap_or_default(),
                // A profile that does not read back is dropped, not the event.
                profile: Box::new(a.get(7).and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default()),
                preferred: a.get(8).filter(|p| !p.is_empty()).map(|p| AgentId(p.clone())),
                continues: a.get(9).filter(|id| !id.is_empty()).map(|id| Continues {
                    id: id.clone(),
                    last_seq: a.get(10).and_then(|s| s.parse().ok()).unwrap_or(0),
                    // Absent in an entry of a build before it: not told as a reopen.
                    reopened: a.get(11).is_some_and(|v| v == "1"),
                    // Absent likewise: nobody named as having had it.
                    holder: a
                        .get(12)
                        .filter(|h| !h.is_empty())
                        .map(|h| (AgentId(h.clone()), a.get(13).cloned().unwrap_or_default())),
                    note: a.get(14).cloned().unwrap_or_default(),
                    // Absent likewise (or unreadable): no earlier turn named.
                    turns: a.get(15).and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default(),
                }),
            },
            "leave" => Self::Leave(customer(0)?),
            "customer_disconnected" => Self::CustomerDisconnected(customer(0)?),
            "customer_resumed" => Self::CustomerResumed(customer(0)?),
            "customer_grace_expired" => Self::CustomerGraceExpired(customer(0)?, number(1)?),
            "agent_online" => {
                // An empty argument ends the categories; the sign-in follows it.
                let mut categories = cats(3);
                let sign_in = match categories.iter().position(|c| c.as_str().is_empty()) {
                    Some(end) => {
                        let after = categories.drain(end..).nth(1);
                        after.map(|s| s.as_str().to_string()).filter(|s| !s.is_empty())
                    }
                    None => None,
                };
                Self::AgentOnline {
                    agent: agent()?,
                    limit: limit(1)?,
                    available: arg(2)? == "1",
                    categories,
                    sign_in,
                }
            }
            "agent_disconnected" => Self::AgentDisconnected(agent()?, signed(1)),
            "agent_resumed" => Self::AgentResumed(agent()?, signed(1)),
            "agent_grace_expired" => Self::AgentGraceExpired(agent()?, number(1)?),
            "agent_offline" => Self::AgentOffline(agent()?, signed(1)),
            "set_available" => Self::SetAvailable(agent()?, arg(1)? == "1"),
            "set_status" => Self::SetStatus(
                agent()?,
                match arg(1)?.as_str() {
                    "available" => AgentStatus::Available,
                    "away" => AgentStatus::Away,
                    "busy" => AgentStatus::Busy,
                    _ => return Err(bad()),
                },
                a.get(2).filter(|r| !r.is_empty()).cloned(),
            ),
            "set_category_open" => Self::SetCategoryOpen(CategoryId::from(arg(0)?.as_str()), arg(1)? == "1", stamp(2)?),
            "set_category_mode" => Self::SetCategoryMode(
                CategoryId::from(arg(0)?.as_str()),
                RoutingMode::from_word(arg(1)?).ok_or_else(bad)?,
                stamp(2)?,
            ),
            "accept_offer" => Self::AcceptOffer(agent()?, OfferId(number(1)?)),
            "decline_offer" => Self::DeclineOffer(agent()?, OfferId(number(1)?)),
            "offer_expired" => Self::OfferExpired(OfferId(number(0)?)),
            "transfer_to_agent" => Self::TransferToAgent {
                chat: ChatId(number(0)?),
                by: AgentId(arg(1)?.clone()),
                to: AgentId(arg(2)?.clone()),
                note: a.get(3).cloned().unwrap_or_default(),
                category: a.get(4).filter(|c| !c.is_empty()).map(|c| CategoryId::from(c.as_str())),
            },
            "transfer_to_category" => Self::TransferToCategory {
                chat: ChatId(number(0)?),
                by: AgentId(arg(1)?.clone()),
                category: CategoryId::from(arg(2)?.as_str()),
                note: a.get(3).cloned().unwrap_or_default(),
            },
            "set_limit" => Self::SetLimit(agent()?, limit(1)?),
            "set_categories" => Self::SetCategories(agent()?, cats(1)),
            "end_chat" => match a.get(2).filter(|agent| !agent.is_empty()) {
                Some(agent) => Self::AgentEndsChat(ChatId(number(0)?), AgentId(agent.clone())),
                None => Self::EndChat(ChatId(number(0)?), party(arg(1)?).ok_or_else(bad)?),
            },
            "set_pairing_room" => Self::SetPairingRoom(match arg(0)?.as_str() {
                "" => None,
                n => Some(n.parse().map_err(|_| bad())?),
            }),
            "node_lost" => Self::NodeLost(arg(0)?.clone(), decisions.to_vec()),
            _ => return Err(bad()),
        })
    }

    /// Applies the transition to a core (the replica, or the single node's own routing):
    /// the decisions, and the new customer's id for a join.
    pub fn apply(&self, core: &mut Routing, out: &mut Vec<Decision>) -> Result<Option<CustomerId>, RoutingError> {
        match self {
            Self::AddCategory(c) => core.add_category(c.clone())?,
            Self::RemoveCategory(c) => core.remove_category(c, out)?,
            Self::Join {
                category,
                preferred,
                continues: Some(continues),
                ..
            } => {
                let conversation = crate::core::routing::ConversationId(continues.id.clone());
                return core
                    .join_continuing(category, &conversation, preferred.as_ref(), out)
                    .map(Some);
            }
            Self::Join {
                category,
                preferred: Some(preferred),
                ..
            } => return core.join_preferring(category, preferred, out).map(Some),
            Self::Join { category, .. } => return core.join(category, out).map(Some),
            Self::Leave(c) => core.leave(*c, out)?,
            Self::CustomerDisconnected(c) => core.customer_disconnected(*c, out)?,
            Self::CustomerResumed(c) => core.customer_resumed(*c, out)?,
            Self::CustomerGraceExpired(c, epoch) => core.customer_grace_expired(*c, *epoch, out),
            Self::AgentOnline {
                agent,
                categories,
                limit,
                available,
                ..
            } => core.agent_online(agent.clone(), categories.iter().cloned(), *limit, *available, out)?,
            Self::AgentDisconnected(a, _) => core.agent_disconnected(a, out)?,
            Self::AgentResumed(a, _) => core.agent_resumed(a, out)?,
            Self::AgentGraceExpired(a, epoch) => core.agent_grace_expired(a, *epoch, out),
            Self::AgentOffline(a, _) => core.agent_offline(a, out),
            Self::SetAvailable(a, available) => core.set_available(a, *available, out)?,
            Self::SetStatus(a, status, reason) => core.set_status(a, *status, reason.clone(), out)?,
            Self::SetCategoryOpen(c, open, read_at) => core.set_category_open(c, *open, *read_at, out)?,
            Self::SetCategoryMode(c, mode, set_at) => core.set_category_mode(c, *mode, *set_at, out)?,
            Self::AcceptOffer(a, offer) => core.accept_offer(a, *offer, out)?,
            Self::DeclineOffer(a, offer) => core.decline_offer(a, *offer, out)?,
            Self::OfferExpired(offer) => core.offer_expired(*offer, out),
            Self::TransferToAgent {
                chat, by, to, category, ..
            } => core.transfer_to_agent(*chat, by, to, category.as_ref(), out)?,
            Self::TransferToCategory { chat, by, category, .. } => {
                core.transfer_to_category(*chat, by, category, out)?
            }
            Self::SetLimit(a, limit) => core.set_limit(a, *limit, out)?,
            Self::SetCategories(a, categories) => core.set_categories(a, categories.iter().cloned(), out)?,
            Self::EndChat(chat, by) => core.end_chat(*chat, *by, out)?,
            Self::AgentEndsChat(chat, agent) => core.agent_ends_chat(*chat, agent, out)?,
            Self::SetPairingRoom(room) => core.set_pairing_room(*room, out),
            Self::NodeLost(_, decisions) => {
                // The script's order: each person the lost node held, connected ones
                // disconnected as by the core, away ones only told to start a timer again.
                for d in decisions {
                    match d {
                        Decision::CustomerGraceStarted { customer, .. } => {
                            if core.customer_connected(*customer) == Some(true) {
                                core.customer_disconnected(*customer, out)?;
                            } else {
                                out.push(d.clone());
                            }
                        }
                        Decision::AgentGraceStarted { agent, .. } => {
                            if core.agent(agent).is_some_and(|v| v.connected) {
                                core.agent_disconnected(agent, out)?;
                            } else {
                                out.push(d.clone());
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(None)
    }

    /// Runs the transition as its fenced script: Redis applies it (or refuses it) and
    /// appends it to the events stream.
    pub async fn run(&self, redis: &RedisRouting) -> Result<Applied, ClusterRoutingError> {
        match self {
            Self::AddCategory(c) => redis.add_category(c).await,
            Self::RemoveCategory(c) => redis.remove_category(c).await,
            Self::Join {
                category,
                request,
                name,
                video,
                token_key,
                message,
                profile,
                preferred,
                continues,
            } => redis
                .join_with_token(
                    category,
                    request,
                    name,
                    *video,
                    (token_key, crate::cluster::resume_tokens::HELD_FOR),
                    message,
                    profile,
                    preferred.as_ref(),
                    continues.as_ref(),
                )
                .await
                .map(|(_, applied)| applied),
            Self::Leave(c) => redis.leave(*c).await,
            Self::CustomerDisconnected(c) => redis.customer_disconnected(*c).await,
            Self::CustomerResumed(c) => redis.customer_resumed(*c).await,
            Self::CustomerGraceExpired(c, epoch) => redis.customer_grace_expired(*c, *epoch).await,
            Self::AgentOnline {
                agent,
                categories,
                limit,
                available,
                sign_in,
            } => {
                let sign_in = sign_in.as_deref().unwrap_or_default();
                redis
                    .agent_online_signed(agent, categories, *limit, *available, sign_in)
                    .await
            }
            Self::AgentDisconnected(a, sign_in) => {
                redis
                    .agent_disconnected_signed(a, sign_in.as_deref().unwrap_or_default())
                    .await
            }
            Self::AgentResumed(a, sign_in) => {
                redis
                    .agent_resumed_signed(a, sign_in.as_deref().unwrap_or_default())
                    .await
            }
            Self::AgentGraceExpired(a, epoch) => redis.agent_grace_expired(a, *epoch).await,
            Self::AgentOffline(a, sign_in) => {
                redis
                    .agent_offline_signed(a, sign_in.as_deref().unwrap_or_default())
                    .await
            }
            Self::SetAvailable(a, available) => redis.set_available(a, *available).await,
            Self::SetStatus(a, status, reason) => redis.set_status(a, *status, reason.as_deref()).await,
            Self::SetCategoryOpen(c, open, read_at) => redis.set_category_open(c, *open, *read_at).await,
            Self::SetCategoryMode(c, mode, set_at) => redis.set_category_mode(c, *mode, *set_at).await,
            Self::AcceptOffer(a, offer) => redis.accept_offer(a, *offer).await,
            Self::DeclineOffer(a, offer) => redis.decline_offer(a, *offer).await,
            Self::OfferExpired(offer) => redis.offer_expired(*offer).await,
            Self::TransferToAgent {
                chat,
                by,
                to,
                category,
                note,
            } => redis.transfer_to_agent(*chat, by, to, category.as_ref(), note).await,
            Self::TransferToCategory {
                chat,
                by,
                category,
                note,
            } => redis.transfer_to_category(*chat, by, category, note).await,
            Self::SetLimit(a, limit) => redis.set_limit(a, *limit).await,
            Self::SetCategories(a, categories) => redis.set_categories(a, categories).await,
            Self::EndChat(chat, by) => redis.end_chat(*chat, *by).await,
            Self::AgentEndsChat(chat, agent) => redis.agent_ends_chat(*chat, agent).await,
            Self::SetPairingRoom(room) => redis.set_pairing_room(*room).await,
            Self::NodeLost(node, _) => redis.node_lost(node).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_join_event_reads_back_with_the_name_and_video_it_carried() {
        let op = RoutingOp::from_event("join", &s(&["sales", "n1:7", "Zoë", "1"]), &[]).unwrap();
        assert_eq!(
            op,
            RoutingOp::Join {
                category: CategoryId("sales".into()),
                request: "n1:7".into(),
                name: "Zoë".into(),
                video: true,
                token_key: String::new(),
                message: String::new(),
                profile: Default::default(),
                preferred: None,
                continues: None,
            }
        );
        let back = RoutingOp::from_event("join", &s(&["sales", "", "", "", "", "", "", "", "ann"]), &[]).unwrap();
        assert!(matches!(back, RoutingOp::Join { preferred: Some(AgentId(a)), .. } if a == "ann"));
        let continuing = s(&["sales", "", "", "", "", "", "", "", "ann", "conv-1", "41"]);
        let back = RoutingOp::from_event("join", &continuing, &[]).unwrap();
        assert!(
            matches!(back, RoutingOp::Join { continues: Some(Continues { id, last_seq: 41, reopened: false, holder: None, .. }), .. } if id == "conv-1")
        );
        // A reopen (the conversation was resolved) rides after the seq.
        let reopening = s(&["sales", "", "", "", "", "", "", "", "ann", "conv-1", "41", "1"]);
        let back = RoutingOp::from_event("join", &reopening, &[]).unwrap();
        assert!(matches!(
            back,
            RoutingOp::Join {
                continues: Some(Continues { reopened: true, .. }),
                ..
            }
        ));
        // Who held it, and the note of its last hand-over, ride after the reopen.
        let mut held = vec!["sales"];
        held.extend([""; 8]);
        held.extend(["conv-1", "41", "1", "ann", "Ann", "a bot's note"]);
        let held = s(&held);
        let back = RoutingOp::from_event("join", &held, &[]).unwrap();
        assert!(matches!(
            back,
            RoutingOp::Join { continues: Some(Continues { holder: Some((AgentId(h), name)), note, .. }), .. }
                if h == "ann" && name == "Ann" && note == "a bot's note"
        ));
        assert!(RoutingOp::from_event("leave", &s(&["x"]), &[]).is_err());
        assert!(RoutingOp::from_event("nonsense", &[], &[]).is_err());
    }

    #[test]
    fn an_agents_sign_in_reads_back_after_the_categories_it_ends() {
        let signed = RoutingOp::from_event("agent_online", &s(&["ann", "2", "0", "sales", "", "n1:7"]), &[]).unwrap();
        assert_eq!(
            signed,
            RoutingOp::AgentOnline {
                agent: AgentId("ann".into()),
                categories: vec![CategoryId("sales".into())],
                limit: 2,
                available: false,
                sign_in: Some("n1:7".into()),
            }
        );
        // An entry of a build before sign-ins: every argument after the flag is a category.
        let before = RoutingOp::from_event("agent_online", &s(&["ann", "2", "1", "sales", "help"]), &[]).unwrap();
        assert!(matches!(&before, RoutingOp::AgentOnline { categories, sign_in: None, .. } if categories.len() == 2));
        let back = RoutingOp::from_event("agent_resumed", &s(&["ann", "n1:7"]), &[]).unwrap();
        assert_eq!(
            back,
            RoutingOp::AgentResumed(AgentId("ann".into()), Some("n1:7".into()))
        );
        let offline = RoutingOp::from_event("agent_offline", &s(&["ann"]), &[]).unwrap();
        assert_eq!(offline, RoutingOp::AgentOffline(AgentId("ann".into()), None));
    }

    #[test]
    fn a_node_loss_replays_as_the_disconnects_of_the_connected_and_timers_of_the_away() {
        let mut core = Routing::new();
        let mut out = vec![];
        core.add_category(CategoryId("c".into())).unwrap();
        let a = core.join(&CategoryId("c".into()), &mut out).unwrap();
        let b = core.join(&CategoryId("c".into()), &mut out).unwrap();
        core.customer_disconnected(b, &mut out).unwrap();
        let epoch_b = match out.last() {
            Some(Decision::CustomerGraceStarted { epoch, .. }) => *epoch,
            other => panic!("{other:?}"),
        };
        // What the script would record: a disconnected now (a new epoch), b's timer again.
        let mut expected = vec![];
        let mut copy = core.clone();
        copy.customer_disconnected(a, &mut expected).unwrap();
        expected.push(Decision::CustomerGraceStarted {
            customer: b,
            epoch: epoch_b,
        });
        let op = RoutingOp::NodeLost("gone".into(), expected.clone());
        let mut replayed = vec![];
        op.apply(&mut core, &mut replayed).unwrap();
        assert_eq!(replayed, expected);
        assert_eq!(core.customer_connected(a), Some(false));
    }
}
