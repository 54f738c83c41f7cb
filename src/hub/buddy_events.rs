//! The buddy list's events: every change to the buddy desk, as one record the desk
//! applies in order.
//!
//! On one node an event is applied as soon as it is made. In a cluster it goes to the
//! routing events stream first (`cluster::buddy_log`), and every node applies every
//! event in the stream's order through its own replica of the desk, so the presence
//! core decides the same on every node: ids, epochs, refusals and all. Everything an
//! event needs that is not the same everywhere (a new key, a chat's wire id, a message's
//! id and time) is drawn by the node that makes it and travels in the event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::presence::BuddyId;

/// One change to the buddy desk, as made by one connection or timer of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub(crate) enum BuddyEvent {
    /// A buddy page's connection `conn` joined. `key`: the key it sent (staff: their
    /// account's); `new_key`: the key a new public person gets.
    PageJoined {
        conn: u64,
        staff: bool,
        key: Option<String>,
        new_key: String,
        name: String,
        role: Option<String>,
    },
    /// A buddy page's connection of `who` closed.
    PageClosed {
        who: u64,
    },
    /// An agent's desk connection opened: they show on the staff roster.
    DeskOpened {
        key: String,
        name: String,
        role: String,
    },
    DeskClosed {
        key: String,
    },
    /// `who`'s leave grace period (`epoch`) ran out on the node running its timer.
    GraceExpired {
        who: u64,
        epoch: u64,
    },
    /// After Redis lost its data and the buddy list was restored: what the making node
    /// still holds — its open buddy pages per person, and the desks (key, name, role) of
    /// its agents. The replicas set that node's counts to these (docs/cluster.md §9).
    Claimed {
        pages: Vec<(u64, u32)>,
        desks: Vec<(String, String, String)>,
    },
    /// Something `who` did on connection `conn`; a refusal is told there.
    Act {
        conn: u64,
        who: u64,
        action: BuddyAction,
    },
}

impl BuddyEvent {
    /// Whether sending this event after Redis lost its data could count a connection
    /// twice: a close the restored list may hold already, or a claim of an earlier
    /// restore. The node's claim of the new one counts its connections as they are instead
    /// (`hub::cluster::outbox` drops these from the own calls kept through the outage).
    pub(crate) fn is_squared_by_a_claim(&self) -> bool {
        matches!(
            self,
            BuddyEvent::PageClosed { .. } | BuddyEvent::DeskClosed { .. } | BuddyEvent::Claimed { .. }
        )
    }
}

/// What a joined person asks of the buddy list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "a", rename_all = "snake_case")]
pub(crate) enum BuddyAction {
    Invite {
        to: u64,
    },
    Cancel {
        invitation: u64,
    },
    Decline {
        invitation: u64,
    },
    /// `wire`: the chat's id on the wire and in the archive, should it start.
    Accept {
        invitation: u64,
        wire: String,
    },
    End {
        chat: String,
    },
    Message {
        chat: Option<String>,
        id: String,
        at: i64,
        text: String,
        client_id: Option<String>,
        /// The files it carries, checked by the sender's node.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<crate::attachments::AttachmentMeta>,
    },
    Typing {
        chat: Option<String>,
        active: bool,
    },
}

/// One node's open connections of one person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Held {
    /// Buddy pages.
    pub pages: u32,
    /// Service-desk connections of an agent (the staff roster).
    pub desks: u32,
}

/// Who has open connections where, and which node runs whose grace timer: what a node's
/// loss turns into disconnects. Ordered maps, so every replica walks them in one order
/// and the core draws the same epochs everywhere. On one node, every node name is `""`.
#[derive(Default)]
pub(crate) struct Holders {
    held: BTreeMap<BuddyId, BTreeMap<String, Held>>,
    /// The node running each person's leave grace timer, and the timer's epoch.
    timers: BTreeMap<BuddyId, (String, u64)>,
}

impl Holders {
    pub fn opened(&mut self, who: BuddyId, node: &str, page: bool) {
        let held = self.held.entry(who).or_default().entry(node.to_string()).or_default();
        if page {
            held.pages += 1;
        } else {
            held.desks += 1;
        }
        self.timers.remove(&who);
    }

    /// Counts one connection of `who` on `node` closed; false when that node held none
    /// (its connections were already handed on as a node loss).
    pub fn closed(&mut self, who: BuddyId, node: &str, page: bool) -> bool {
        let Some(nodes) = self.held.get_mut(&who) else {
            return false;
        };
        let Some(held) = nodes.get_mut(node) else {
            return false;
        };
        let count = if page { &mut held.pages } else { &mut held.desks };
        if *count == 0 {
            return false;
        }
        *count -= 1;
        if *held == Held::default() {
            nodes.remove(node);
        }
        if nodes.is_empty() {
            self.held.remove(&who);
        }
        true
    }

    /// Whether `who` has a buddy page open on any node.
    pub fn has_page(&self, who: BuddyId) -> bool {
        self.held
            .get(&who)
            .is_some_and(|nodes| nodes.values().any(|h| h.pages > 0))
    }

    /// The nodes where `who` has a buddy page open, in name order.
    pub fn page_nodes(&self, who: BuddyId) -> Vec<String> {
        self.held.get(&who).map_or_else(Vec::new, |nodes| {
            nodes
                .iter()
                .filter(|(_, h)| h.pages > 0)
                .map(|(node, _)| node.clone())
                .collect()
        })
    }

    pub fn timer_started(&mut self, who: BuddyId, node: &str, epoch: u64) {
        self.timers.insert(who, (node.to_string(), epoch));
    }

    pub fn timer_ended(&mut self, who: BuddyId, epoch: u64) {
        if self.timers.get(&who).is_some_and(|(_, e)| *e == epoch) {
            self.timers.remove(&who);
        }
    }

    /// Every count and timer, in id order: what a snapshot of the desk carries.
    #[allow(clippy::type_complexity)]
    pub fn parts(&self) -> (Vec<(BuddyId, String, Held)>, Vec<(BuddyId, String, u64)>) {
        let held = self
            .held
            .iter()
            .flat_map(|(who, nodes)| nodes.iter().map(|(node, h)| (*who, node.clone(), *h)))
            .collect();
        let timers = self
            .timers
            .iter()
            .map(|(who, (node, epoch))| (*who, node.clone(), *epoch))
            .collect();
        (held, timers)
    }

    /// Holders from [`Holders::parts`].
    pub fn from_parts(held: Vec<(BuddyId, String, Held)>, timers: Vec<(BuddyId, String, u64)>) -> Self {
        let mut holders = Holders::default();
        for (who, node, h) in held.into_iter().filter(|(_, _, h)| *h != Held::default()) {
            holders.held.entry(who).or_default().insert(node, h);
        }
        for (who, node, epoch) in timers {
            holders.timers.insert(who, (node, epoch));
        }
        holders
    }

    /// Every node holding a connection or running a timer.
    pub fn nodes(&self) -> impl Iterator<Item = String> + '_ {
        let held = self.held.values().flat_map(|nodes| nodes.keys().cloned());
        held.chain(self.timers.values().map(|(node, _)| node.clone()))
    }

    /// What `node` holds of each person, in id order.
    pub fn held_on(&self, node: &str) -> Vec<(BuddyId, Held)> {
        self.held
            .iter()
            .filter_map(|(who, nodes)| nodes.get(node).map(|h| (*who, *h)))
            .collect()
    }

    /// The timers `node` runs: who and which epoch, in id order.
    pub fn timers_on(&self, node: &str) -> Vec<(BuddyId, u64)> {
        self.timers
            .iter()
            .filter(|(_, (n, _))| n == node)
            .map(|(who, (_, epoch))| (*who, *epoch))
            .collect()
    }

    /// `lost`'s connections, removed, each person's count (pages and desks) in id order.
    pub fn take_node(&mut self, lost: &str) -> Vec<(BuddyId, u32)> {
        let mut gone = vec![];
        for (who, nodes) in &mut self.held {
            if let Some(held) = nodes.remove(lost) {
                gone.push((*who, held.pages + held.desks));
            }
        }
        self.held.retain(|_, nodes| !nodes.is_empty());
        gone
    }

    /// The timers `lost` ran, handed to `heir`: who and which epoch, in id order.
    pub fn hand_timers(&mut self, lost: &str, heir: &str) -> Vec<(BuddyId, u64)> {
        let mut handed = vec![];
        for (who, (node, epoch)) in &mut self.timers {
            if node == lost {
                *node = heir.to_string();
                handed.push((*who, *epoch));
            }
        }
        handed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_as_written() {
        let events = [
            BuddyEvent::PageJoined {
                conn: 3,
                staff: false,
                key: None,
                new_key: "k".into(),
                name: "Ann".into(),
                role: None,
            },
            BuddyEvent::Act {
                conn: 3,
                who: 1,
                action: BuddyAction::Message {
                    chat: Some("c".into()),
                    id: "m".into(),
                    at: 5,
                    text: "hi \"there\"".into(),
                    client_id: None,
                    files: vec![],
                },
            },
        ];
        for event in events {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<BuddyEvent>(&json).unwrap(), event);
        }
    }

    #[test]
    fn a_lost_node_gives_up_its_connections_and_timers_only() {
        let mut h = Holders::default();
        let (a, b) = (BuddyId(1), BuddyId(2));
        h.opened(a, "n1", true);
        h.opened(a, "n1", false);
        h.opened(a, "n2", true);
        h.opened(b, "n2", true);
        h.timer_started(b, "n1", 7);
        assert_eq!(h.take_node("n1"), vec![(a, 2)]);
        assert!(!h.closed(a, "n1", true), "already handed on");
        assert!(h.has_page(a));
        assert_eq!(h.hand_timers("n1", "n3"), vec![(b, 7)]);
        assert_eq!(h.page_nodes(a), ["n2"]);
        assert!(h.closed(a, "n2", true));
        assert!(!h.has_page(a));
        assert!(h.page_nodes(a).is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Open { who: u64, node: usize, page: bool },
        Close { who: u64, node: usize, page: bool },
        Lose { node: usize, heir: usize },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (1..4u64, 0..3usize, any::<bool>()).prop_map(|(who, node, page)| Op::Open { who, node, page }),
            (1..4u64, 0..3usize, any::<bool>()).prop_map(|(who, node, page)| Op::Close { who, node, page }),
            (0..3usize, 0..3usize).prop_map(|(node, heir)| Op::Lose { node, heir }),
        ]
    }

    proptest::proptest! {
        /// Driven as the desk drives them, the holders and the presence core agree after
        /// every step of random opens, closes (some of them stale: after their node was
        /// lost) and node losses: each person has as many connections in the core as the
        /// nodes hold, a close a lost node already gave up changes nothing, and once every
        /// node is lost nobody is connected.
        #[test]
        fn holders_and_the_core_count_the_same_connections(ops in proptest::collection::vec(op(), 1..60)) {
            use crate::core::presence::Presence;
            const NODES: [&str; 3] = ["n0", "n1", "n2"];
            let (mut h, mut p, mut out) = (Holders::default(), Presence::new(), vec![]);
            let count = |h: &Holders, who: BuddyId| -> usize {
                h.held.get(&who).map_or(0, |nodes| nodes.values().map(|x| (x.pages + x.desks) as usize).sum())
            };
            for op in ops {
                match op {
                    Op::Open { who, node, page } => {
                        p.connect(BuddyId(who), "x", &mut out).unwrap();
                        h.opened(BuddyId(who), NODES[node], page);
                    }
                    Op::Close { who, node, page } => {
                        if h.closed(BuddyId(who), NODES[node], page) {
                            p.disconnect(BuddyId(who), &mut out).unwrap();
                        }
                    }
                    Op::Lose { node, heir } => {
                        for (who, n) in h.take_node(NODES[node]) {
                            for _ in 0..n {
                                p.disconnect(who, &mut out).unwrap();
                            }
                        }
                        h.hand_timers(NODES[node], NODES[heir]);
                    }
                }
                for who in 1..4 {
                    proptest::prop_assert_eq!(p.connections(BuddyId(who)), count(&h, BuddyId(who)));
                }
            }
            for node in NODES {
                for (who, n) in h.take_node(node) {
                    for _ in 0..n {
                        p.disconnect(who, &mut out).unwrap();
                    }
                }
            }
            for who in 1..4 {
                proptest::prop_assert_eq!(p.connections(BuddyId(who)), 0);
            }
        }
    }
}
