//! The buddy list when Redis restarted EMPTY (`docs/cluster.md` §9, "Back
//! empty: the buddy list"): this node hands its replica of the buddy list to the restore
//! with its routing replica, loads the restored list from the restore entry, and claims
//! the buddy connections it still holds. The desk's side (applying a claim, handing on
//! the unclaimed) is `hub::buddy::reassert`.

use std::collections::BTreeMap;

use super::super::HubState;
use crate::core::presence::BuddyId;
use crate::hub::buddy::snapshot::BuddySnapshot;
use crate::hub::buddy_events::BuddyEvent;
use crate::hub::delivery::{ConnId, Recipient};

/// The close a buddy page gets when this node cannot keep it through a restore: the page
/// reconnects (to any node) and joins again with its key.
const REJOIN: (u16, &str) = (1012, "the cluster is restoring its data; reconnect");

impl HubState {
    /// Redis lost its data: the buddy list's replica, as JSON, for the restore. Joins under
    /// way may have been lost with the stream: their pages reconnect and join again. Until
    /// this node's claim is applied, new joins are refused and desks wait.
    pub(in crate::hub::service) fn buddies_data_lost(&mut self) -> String {
        self.close_buddy_joins();
        self.buddies.start_reasserting();
        serde_json::to_string(&self.buddies.snapshot()).expect("a buddy snapshot is JSON")
    }

    /// The follower read the restore entry: the buddy list becomes the restored one (the
    /// longest replica's, perhaps another node's). A node that went through the loss
    /// (`buddies_data_lost`) sends its pages a fresh welcome from it (their lists may have
    /// missed what the longer replica applied) and claims what it holds: its pages per
    /// person and the desks it announced. Any other node (one that joined the empty Redis
    /// before the restore, or replays the stream from before it) holds nothing of the
    /// restored list: its pages, welcomed into a list the restore replaced, join again.
    pub(in crate::hub) fn restore_loaded(&mut self, snapshot: BuddySnapshot) {
        if self.buddy_node().is_none() {
            return;
        }
        let went_through_the_loss = self.buddies.reasserting();
        match self.buddies.load(snapshot) {
            Ok(gained) => self.buddy_archive_gained(gained),
            Err(e) => {
                // Every replica loads the same entry and fails alike: all start afresh (the
                // pages, unknown to an empty list, join again; the desks are claimed).
                tracing::error!(error = %e, "could not load the restored buddy list: it starts afresh");
                self.buddies.load_nothing();
            }
        }
        // Joins under way: their events may fall either side of the claim (or before the
        // restore entry, which drops them). They join again after it.
        self.close_buddy_joins();
        if !went_through_the_loss {
            self.let_go_of_buddy_pages();
            return self.announce_overwritten_desks();
        }
        let mut pages: BTreeMap<BuddyId, u32> = BTreeMap::new();
        let held: Vec<(ConnId, BuddyId)> = self
            .conns
            .iter()
            .filter_map(|(conn, entry)| match entry.who {
                Some(Recipient::Buddy(id)) => Some((*conn, id)),
                _ => None,
            })
            .collect();
        for (conn, id) in held {
            if self.buddies.knows(id) {
                *pages.entry(id).or_default() += 1;
                let welcome = self.buddy_welcome(id);
                self.send_to_conn(conn, &welcome);
            } else {
                // Someone the restored list does not have (it cannot happen: every page
                // here was welcomed by an event the longest replica applied): join again.
                self.let_go_of_buddy_page(conn);
            }
        }
        let desks = self.claimed_desks();
        let claim = BuddyEvent::Claimed {
            pages: pages.into_iter().map(|(id, n)| (id.0, n)).collect(),
            desks,
        };
        tracing::warn!("claiming this node's buddy connections in the restored buddy list");
        self.buddy_submit(claim, None, None);
    }

    /// Closes this node's buddy pages without counting their closes (the replicas counted
    /// them already, or never did): they reconnect, to any node, and join again.
    pub(in crate::hub) fn let_go_of_buddy_pages(&mut self) {
        let pages: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, entry)| matches!(entry.who, Some(Recipient::Buddy(_))))
            .map(|(conn, _)| *conn)
            .collect();
        for conn in pages {
            self.let_go_of_buddy_page(conn);
        }
        self.close_buddy_joins();
    }

    /// Closes the pages whose `buddy_join` is under way (1012): they join again.
    fn close_buddy_joins(&mut self) {
        let joining: Vec<ConnId> = self.buddies.joining.drain().collect();
        for conn in joining {
            self.close_conn(conn, REJOIN.0, REJOIN.1);
        }
    }

    /// A staff buddy page registering while this node's claim is on its way: it comes back
    /// (1013, try again) and registers after the claim.
    pub(in crate::hub) fn close_buddy_conn_for_now(&mut self, conn: ConnId) {
        self.close_conn(conn, 1013, "the cluster is restoring the buddy list; try again");
    }

    fn let_go_of_buddy_page(&mut self, conn: ConnId) {
        if let Some(who) = self.conns.get_mut(&conn).and_then(|e| e.who.take()) {
            self.delivery.detach(&who, conn);
        }
        self.close_conn(conn, REJOIN.0, REJOIN.1);
    }
}
