//! The random routing events, written once for the two tests that draw them: the core's
//! property tests (`../tests.rs`) and the cluster's comparison of the Redis scripts with the
//! core (`tests/cluster_routing/differential.rs`, which includes this file by its path).
//! Each test names its [`Draw`] (they differ in a few weights) and adds its own events; the names
//! used here (`cat`, `agent` and the routing's types) are the including module's.

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

use super::{AgentId, AgentStatus, CategoryId, CustomerId, OfferId, RoutingMode, agent, cat};

pub const CATEGORIES: [&str; 3] = ["c0", "c1", "c2"];
pub const AGENTS: [&str; 3] = ["a0", "a1", "a2"];

/// One event: indices into [`CATEGORIES`], [`AGENTS`] and what the test has seen.
#[derive(Debug, Clone)]
pub enum Op {
    AddCategory(usize),
    RemoveCategory(usize),
    Join(usize),
    Leave(usize),
    CustomerDisconnect(usize),
    CustomerResume(usize),
    CustomerExpire(usize, bool),
    AgentOnline(usize, u8, u8, bool),
    AgentDisconnect(usize),
    AgentResume(usize),
    AgentExpire(usize, bool),
    AgentOffline(usize),
    SetAvailable(usize, bool),
    SetLimit(usize, u8),
    SetCategories(usize, u8),
    EndChat(usize, bool),
    SetPairingRoom(Option<u8>),
    /// The node stops renewing its lease; the other node reaps it; it re-joins (the
    /// cluster's comparison only).
    #[allow(dead_code, reason = "the core's own tests never draw it")]
    NodeLost,
    /// 0 available, 1 away (with a reason), 2 busy until their chats end.
    SetStatus(usize, u8),
    /// A category opens (`true`) or closes, read after every reading before.
    SetCategoryOpen(usize, bool),
    /// The same, read `back` readings before the newest (a read an admin's change overtook).
    SetOpenRead(usize, bool, u8),
    /// The same, sent without a stamp (by a node of a build before stamps).
    SetOpenUnstamped(usize, bool),
    /// A category to offer mode (`true`) or back to assign, stored after every mode before.
    SetMode(usize, bool),
    /// The same, read `back` stores before the newest (a read an admin's change overtook).
    SetModeRead(usize, bool, u8),
    /// The same, sent without a stamp.
    SetModeUnstamped(usize, bool),
    /// An offer seen (index into those seen), answered by its own agent (`true`) or another.
    Accept(usize, bool),
    Decline(usize, bool),
    /// An offer's timer fires (whether it still stands or not).
    OfferExpire(usize),
    /// A customer's chat (their index) handed by its agent (`true`) or another to an agent,
    /// keeping its category or moving into the one named (which that agent may not hold).
    TransferToAgent(usize, bool, usize, Option<usize>),
    /// A customer's chat handed by its agent (`true`) or another to a category's line.
    TransferToCategory(usize, bool, usize),
    /// A customer's chat ended by its agent (`true`) or another, naming themselves (the
    /// cluster's comparison only).
    #[allow(dead_code, reason = "the core's own tests never draw it")]
    AgentEnds(usize, bool),
    /// A customer returns to a conversation held by an agent (the sticky return).
    JoinPreferring(usize, usize),
    /// A customer continues conversation `v<n>` (a reopen), preferring an agent or not:
    /// refused `already_live` while another customer continues it.
    JoinContinuing(usize, usize, Option<usize>),
    /// A customer continues the conversation a chat seen began (index into those seen):
    /// refused `already_live` while that chat's customer is still there.
    ContinueChat(usize, usize),
}

/// The status `SetStatus` asks for.
pub fn status(s: u8) -> AgentStatus {
    match s % 3 {
        0 => AgentStatus::Available,
        1 => AgentStatus::Away,
        _ => AgentStatus::Busy,
    }
}

/// The mode `SetMode` and its kin ask for.
pub fn mode_of(offer: bool) -> RoutingMode {
    if offer { RoutingMode::Offer } else { RoutingMode::Assign }
}

/// The categories of bit mask `m` (`AgentOnline`, `SetCategories`).
pub fn mask(m: u8) -> Vec<CategoryId> {
    (0..3)
        .filter(|i| m & (1 << i) != 0)
        .map(|i| cat(CATEGORIES[i]))
        .collect()
}

/// Customer `i` of those seen (wrapping); an id nobody has while there is none.
pub fn nth_customer(customers: &[CustomerId], i: usize) -> CustomerId {
    if customers.is_empty() {
        CustomerId(u64::MAX)
    } else {
        customers[i % customers.len()]
    }
}

/// Who answers for agent `to`: they themselves (`own`), or another of [`AGENTS`].
pub fn own_or_other(to: AgentId, own: bool) -> AgentId {
    if own {
        to
    } else {
        agent(AGENTS.iter().find(|a| agent(a) != to).expect("several agents"))
    }
}

/// Offer `i` of those seen, counted from the newest (wrapping), and who answers it (see
/// [`own_or_other`]); an offer nobody made while there is none.
pub fn nth_offer(offers: &[(OfferId, AgentId)], i: usize, own: bool) -> (OfferId, AgentId) {
    match offers.len() {
        0 => (OfferId(u64::MAX), agent(AGENTS[0])),
        n => {
            let (offer, to) = offers[n - 1 - i % n].clone();
            (offer, own_or_other(to, own))
        }
    }
}

/// Whose draw of the shared events: they differ in a few weights.
#[derive(Clone, Copy)]
#[allow(dead_code, reason = "each test draws its own")]
pub enum Draw {
    /// The core's property tests.
    Core,
    /// The cluster's comparison: a little more towards pairing (customers and agents coming
    /// back, agents coming online), fewer transfers, two conversations to continue, and the
    /// offers answered mostly among the last few made.
    Cluster,
}

/// Which offer an answer or a timer is about, counted from the newest made: mostly one of
/// the last few (likely still standing), sometimes any (likely long gone).
pub fn offer_index() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0..3usize, 1 => any::<usize>()]
}

/// `weight => strategy` pairs as `Union::new_weighted` takes them (boxed: their types differ).
macro_rules! weighted {
    ($($weight:expr => $strategy:expr),* $(,)?) => { vec![$(($weight, $strategy.boxed())),*] };
}

/// The events both tests draw, each with its weight, for `Union::new_weighted`: the test
/// adds its own (`SetPairingRoom`, and the cluster's `NodeLost` and `AgentEnds`).
pub fn weighted_ops(draw: Draw) -> Vec<(u32, BoxedStrategy<Op>)> {
    // Where the draws differ: how many conversations (`v0`, `v1`, …) `JoinContinuing`
    // names, and the weights of customers and agents coming back, agents coming online and
    // each transfer.
    let (continued, customer_resume, agent_resume, agent_online, transfer) = match draw {
        Draw::Core => (3usize, 2, 1, 3, 3),
        Draw::Cluster => (2, 3, 2, 4, 2),
    };
    let offer = || match draw {
        Draw::Core => any::<usize>().boxed(),
        Draw::Cluster => offer_index().boxed(),
    };
    weighted![
        1 => (0..3usize).prop_map(Op::AddCategory),
        1 => (0..3usize).prop_map(Op::RemoveCategory),
        6 => (0..3usize).prop_map(Op::Join),
        3 => (0..3usize, 0..3usize).prop_map(|(c, a)| Op::JoinPreferring(c, a)),
        3 => (0..3usize, 0..continued, prop::option::of(0..3usize)).prop_map(|(c, v, a)| Op::JoinContinuing(c, v, a)),
        3 => (0..3usize, any::<usize>()).prop_map(|(c, i)| Op::ContinueChat(c, i)),
        2 => any::<usize>().prop_map(Op::Leave),
        2 => any::<usize>().prop_map(Op::CustomerDisconnect),
        customer_resume => any::<usize>().prop_map(Op::CustomerResume),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(c, s)| Op::CustomerExpire(c, s)),
        agent_online => (0..3usize, 0..8u8, 0..6u8, any::<bool>()).prop_map(|(a, m, l, v)| Op::AgentOnline(a, m, l, v)),
        1 => (0..3usize).prop_map(Op::AgentDisconnect),
        agent_resume => (0..3usize).prop_map(Op::AgentResume),
        1 => (0..3usize, any::<bool>()).prop_map(|(a, s)| Op::AgentExpire(a, s)),
        1 => (0..3usize).prop_map(Op::AgentOffline),
        2 => (0..3usize, any::<bool>()).prop_map(|(a, v)| Op::SetAvailable(a, v)),
        2 => (0..3usize, 0..6u8).prop_map(|(a, l)| Op::SetLimit(a, l)),
        2 => (0..3usize, 0..8u8).prop_map(|(a, m)| Op::SetCategories(a, m)),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(c, by_agent)| Op::EndChat(c, by_agent)),
        2 => (0..3usize, 0..3u8).prop_map(|(a, s)| Op::SetStatus(a, s)),
        2 => (0..3usize, any::<bool>()).prop_map(|(c, open)| Op::SetCategoryOpen(c, open)),
        1 => (0..3usize, any::<bool>(), 0..3u8).prop_map(|(c, open, back)| Op::SetOpenRead(c, open, back)),
        2 => (0..3usize, any::<bool>()).prop_map(|(c, offer)| Op::SetMode(c, offer)),
        1 => (0..3usize, any::<bool>(), 0..3u8).prop_map(|(c, offer, back)| Op::SetModeRead(c, offer, back)),
        1 => (0..3usize, any::<bool>()).prop_map(|(c, open)| Op::SetOpenUnstamped(c, open)),
        1 => (0..3usize, any::<bool>()).prop_map(|(c, offer)| Op::SetModeUnstamped(c, offer)),
        3 => (offer(), prop::bool::weighted(0.9)).prop_map(|(i, own)| Op::Accept(i, own)),
        2 => (offer(), prop::bool::weighted(0.9)).prop_map(|(i, own)| Op::Decline(i, own)),
        3 => offer().prop_map(Op::OfferExpire),
        transfer => (any::<usize>(), prop::bool::weighted(0.9), 0..3usize, prop::option::of(0..3usize))
            .prop_map(|(c, own, a, k)| Op::TransferToAgent(c, own, a, k)),
        transfer => (any::<usize>(), prop::bool::weighted(0.9), 0..3usize)
            .prop_map(|(c, own, k)| Op::TransferToCategory(c, own, k)),
    ]
}
