//! The desk's part when Redis restarted EMPTY (`docs/cluster.md` §9, "Back empty: the
//! buddy list"): loading the restored list, applying a node's claim of what it still
//! holds, and handing on the connections, timers and chats of the nodes that never claimed
//! (with the restore's pseudo-node, when the reaper finds its lease run out). Every replica
//! applies these at the same point of the stream, so they decide alike; the node that made
//! a claim also carries out its local part (timers, pages it cannot count).

use super::desk::{BuddyDesk, Roster, role_named, role_str, staff_key};
use super::snapshot::{BadSnapshot, BuddySnapshot};
use crate::core::presence::BuddyId;
use crate::core::routing::AgentId;
use crate::hub::buddy_events::BuddyEvent;
use crate::hub::delivery::Recipient;
use crate::hub::service::HubState;
use crate::hub::{Command, after};

impl BuddyDesk {
    /// Replaces the replica with a restored one; this node's own bookkeeping stays. Returns
    /// the running chats the restored list has more lines of than this node had, each with
    /// the last seq this node had (0: it did not know the chat).
    pub(crate) fn load(&mut self, snapshot: BuddySnapshot) -> Result<Vec<(String, u64)>, BadSnapshot> {
        let mut restored = BuddyDesk::from_snapshot(snapshot)?;
        restored.joining = std::mem::take(&mut self.joining);
        restored.reasserting = self.reasserting;
        restored.deferred_desks = std::mem::take(&mut self.deferred_desks);
        restored.announced_desks = std::mem::take(&mut self.announced_desks);
        restored.applied_desks = std::mem::take(&mut self.applied_desks);
        // Buddy lines are not in the stream the restore replaced: what this node recorded
        // of a chat beyond the restoring node's replica stays (a seq counter Redis lost
        // starts from the highest a node has, `lua/buddy_message.lua`), and the lines
        // under way go on.
        let mut gained = vec![];
        for chat in restored.chats.values_mut() {
            let ours = self
                .chat_by_wire
                .get(&chat.wire_id)
                .and_then(|key| self.chats.remove(key));
            let our_last = ours.as_ref().map_or(0, |ours| ours.transcript.last_seq());
            match ours {
                Some(ours) if our_last >= chat.transcript.last_seq() => chat.transcript = ours.transcript,
                _ => gained.push((chat.wire_id.clone(), our_last)),
            }
        }
        restored.lines = std::mem::take(&mut self.lines);
        *self = restored;
        Ok(gained)
    }

    pub(crate) fn start_reasserting(&mut self) {
        self.reasserting = true;
    }

    pub(crate) fn stop_reasserting(&mut self) {
        self.reasserting = false;
        self.deferred_desks.clear();
    }

    /// Whether joins wait for this node's claim.
    pub(crate) fn reasserting(&self) -> bool {
        self.reasserting
    }

    pub(crate) fn knows(&self, id: BuddyId) -> bool {
        self.people.contains_key(&id)
    }

    /// This node let go of its people: none of its desks is open any more.
    pub(crate) fn forget_desks(&mut self) {
        self.announced_desks.clear();
        self.deferred_desks.clear();
        self.applied_desks.clear();
    }

    /// A load that failed: the replica starts afresh, as on every other node.
    pub(crate) fn load_nothing(&mut self) {
        let _ = self.load(BuddySnapshot::default());
    }
}

impl HubState {
    /// The desks this node announced, as a claim names them.
    pub(in crate::hub) fn claimed_desks(&self) -> Vec<(String, String, String)> {
        self.buddies
            .announced_desks
            .iter()
            .filter_map(|agent| self.buddy_desk(agent))
            .collect()
    }

    /// A restore this node did not take part in replaced the list its desks were opened
    /// in: the ones the replica had applied before it are announced again. (Those whose
    /// opening comes after the restore entry are applied after it, as any event.)
    pub(in crate::hub) fn announce_overwritten_desks(&mut self) {
        let overwritten = std::mem::take(&mut self.buddies.applied_desks);
        for (key, name, role) in self.claimed_desks() {
            if overwritten.contains(&key) {
                self.buddy_submit(BuddyEvent::DeskOpened { key, name, role }, None, None);
            }
        }
    }

    /// An agent's desk as a claim names it: their staff key, name and role.
    pub(in crate::hub) fn buddy_desk(&self, agent: &AgentId) -> Option<(String, String, String)> {
        let account = self.agent_account(agent)?;
        Some((
            staff_key(&account.id),
            account.display_name.clone(),
            role_str(account.role).to_string(),
        ))
    }

    /// `node` claims what it still holds of the restored list: its count of each person's
    /// pages and desks becomes the claimed one. A count above the claim is connections
    /// that closed while their close was lost with the stream: closed now (the leave grace
    /// runs on `node`). A desk below it is one whose opening was lost: opened now. Pages
    /// below it cannot be squared (the replicas do not know those connections): `node`
    /// closes them, and they join again. A node whose people were handed on already (its
    /// claim came after the window) holds nothing: the same rules apply to zero counts.
    pub(super) fn buddy_claimed(
        &mut self,
        node: &str,
        mine: bool,
        pages: Vec<(u64, u32)>,
        desks: Vec<(String, String, String)>,
    ) {
        self.buddies.unclaimed.remove(node);
        let held = self.buddies.holders.held_on(node);
        // Before the closes below, whose timers start as they are applied.
        let timers = self.buddies.holders.timers_on(node);
        let claimed_pages: std::collections::BTreeMap<BuddyId, u32> =
            pages.iter().map(|(who, n)| (BuddyId(*who), *n)).collect();
        for (who, h) in &held {
            let claimed = claimed_pages.get(who).copied().unwrap_or(0);
            for _ in claimed..h.pages {
                self.buddy_closed(*who, node, true);
            }
            let desk_claimed = desks.iter().any(|d| self.buddies.by_key.get(&d.0) == Some(who));
            for _ in u32::from(desk_claimed)..h.desks {
                self.buddy_closed(*who, node, false);
            }
        }
        for (who, claimed) in &claimed_pages {
            let counted = held.iter().find(|(w, _)| w == who).map_or(0, |(_, h)| h.pages);
            if *claimed > counted && mine {
                tracing::warn!(buddy = who.0, "pages the restored list does not count: they join again");
                self.delivery.close(
                    &Recipient::Buddy(*who),
                    1012,
                    "the cluster is restoring its data; reconnect",
                );
            }
        }
        for (key, name, role) in &desks {
            let id = self.buddies.by_key.get(key).copied();
            let counted = id
                .and_then(|id| held.iter().find(|(w, _)| *w == id))
                .map_or(0, |(_, h)| h.desks);
            if counted == 0 {
                // A desk whose opening was lost with the stream: opened now.
                let id = self
                    .buddies
                    .person_for(Some(key), name, Roster::Staff, role_named(Some(role)), "");
                let mut out = vec![];
                if self.buddies.staff.connect(id, name, &mut out).is_ok() {
                    self.buddies.holders.opened(id, node, false);
                    self.buddy_apply(Roster::Staff, node, out);
                }
            }
        }
        if mine {
            // The desks open in the list for this node are the claimed ones now.
            self.buddies.applied_desks = desks.iter().map(|(key, _, _)| key.clone()).collect();
            // Timers of `node` in the restored list that this node may not run (they were
            // started by events past its own replica): run again; a repeat is a stale epoch.
            for (who, epoch) in timers {
                after(
                    &self.timers,
                    self.settings.buddy_grace,
                    Command::BuddyGraceExpired { buddy: who, epoch },
                );
            }
            self.buddy_claim_done();
        }
    }

    /// This node's claim is applied: joins are taken again, and the desks that opened
    /// meanwhile (the claim left them out) are announced.
    fn buddy_claim_done(&mut self) {
        let deferred: Vec<AgentId> = std::mem::take(&mut self.buddies.deferred_desks).into_iter().collect();
        self.buddies.stop_reasserting();
        for agent in deferred {
            self.buddy_agent_online(&agent);
        }
    }

    /// The restore's pseudo-node was reaped (its lease ran out, a window after the restore):
    /// every node that has not claimed is lost, as if reaped itself, in name order, with
    /// `heir` taking its timers and chats. This node among them lets its pages go.
    pub(in crate::hub) fn buddy_unclaimed_lost(&mut self, heir: &str) {
        let here = self.buddy_node().unwrap_or("").to_string();
        let unclaimed = std::mem::take(&mut self.buddies.unclaimed);
        let mut handed_on_here = false;
        for node in unclaimed {
            tracing::warn!(node = %node, "a node did not claim its buddies in the restored list: handing them on");
            if node == here {
                self.let_go_of_buddy_pages();
                handed_on_here = true;
            }
            self.buddy_node_lost(&node, heir);
        }
        if handed_on_here {
            // Its desks were counted closed with it, and its agents are still here: a
            // claim of them alone opens them again (a claim sets counts, so this one is
            // harmless should the lost one land after all).
            let desks = self.claimed_desks();
            self.buddy_submit(BuddyEvent::Claimed { pages: vec![], desks }, None, None);
        }
        // This node's claim, if it made one, is applied or lost by now: joins are taken
        // again either way.
        if self.buddies.reasserting() {
            self.buddy_claim_done();
        }
    }
}
