//! Every tick: remote members whose home died, stand-ins whose member's node died,
//! and the renewal of this node's home claims (a claim lost ends the room's copy here).

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::wire::home_key;
use super::{CLAIM_TTL_MS, HOME_LOST, RemoteMember, RoomsCluster, StandIn, local_view};
use crate::cluster::lease::{LEASES_KEY, NODES_KEY};
use crate::rooms::frames::RoomServerFrame;
use crate::rooms::live::{Command, Outbound};

impl RoomsCluster {
    // ---------- the watcher ----------

    pub(super) async fn watch(self, tick: Duration, shutdown: CancellationToken) {
        let mut ticks = crate::ticks::Ticks::new(tick, &shutdown);
        while ticks.next().await {
            if let Err(e) = self.check().await {
                tracing::warn!(error = %e, "cannot check the rooms' homes and members in Redis");
            }
        }
    }

    /// Those of `nodes` the cluster's registry does not hold alive (one call for all).
    async fn dead_among(&self, nodes: HashSet<String>) -> redis::RedisResult<HashSet<String>> {
        if nodes.is_empty() {
            return Ok(HashSet::new());
        }
        let nodes: Vec<String> = nodes.into_iter().collect();
        let mut call = self.0.alive.key(NODES_KEY);
        call.key(LEASES_KEY);
        for n in &nodes {
            call.arg(n);
        }
        let answer: Vec<u8> = call.invoke_async(&mut self.0.cluster.conn()).await?;
        Ok(nodes
            .into_iter()
            .zip(answer)
            .filter(|(_, alive)| *alive != 1)
            .map(|(n, _)| n)
            .collect())
    }

    /// One tick: dead homes, dead members' nodes, claims this node lost.
    async fn check(&self) -> redis::RedisResult<()> {
        let Some(me) = self.me() else { return Ok(()) };
        // Member side: remote members whose home is dead.
        let homes: HashSet<String> = {
            let remote = self.0.remote.lock().expect("not poisoned");
            remote.values().map(|m| m.home.clone()).collect()
        };
        let dead = self.dead_among(homes).await?;
        // Also those seated under an earlier incarnation of this node: the home took this
        // node for dead and dropped them.
        let orphans: Vec<RemoteMember> = {
            let mut remote = self.0.remote.lock().expect("not poisoned");
            let ids: Vec<u64> = remote
                .iter()
                .filter(|(_, m)| dead.contains(&m.home) || m.via != me)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter().filter_map(|id| remote.remove(&id)).collect()
        };
        if !orphans.is_empty() {
            let lost = RoomServerFrame::error(
                "home_lost",
                "the server holding this room's call stopped; join again to continue",
            )
            .encode();
            for m in orphans {
                let _ = m.out.try_send(Outbound::Frame(lost.as_str().into()));
                let _ = m.out.try_send(Outbound::Close(HOME_LOST, "the room's server stopped"));
            }
        }
        // Home side: stand-ins whose member's node is dead are disconnected (the seat
        // then waits out the grace period, as for a member whose socket dropped).
        let nodes: HashSet<String> = {
            let stand_ins = self.0.stand_ins.lock().expect("not poisoned");
            stand_ins.values().map(|s| s.node.clone()).collect()
        };
        let dead = self.dead_among(nodes).await?;
        if !dead.is_empty() {
            let gone: Vec<StandIn> = {
                let mut stand_ins = self.0.stand_ins.lock().expect("not poisoned");
                let keys: Vec<(String, u64)> = stand_ins
                    .iter()
                    .filter(|(_, s)| dead.contains(&s.node))
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.into_iter().filter_map(|k| stand_ins.remove(&k)).collect()
            };
            for s in gone {
                s.disconnect(&self.0.commands).await;
            }
        }
        // Home side: renew the claims of live rooms; a room whose claim is gone (this
        // node was reaped while stalled, and another took it) ends here.
        let homed: Vec<String> = self.0.homed.lock().expect("not poisoned").iter().cloned().collect();
        let mut live = Vec::new();
        for room in homed {
            if local_view(&self.0.commands, &room).await.is_some() {
                live.push(room);
            } else {
                self.0.homed.lock().expect("not poisoned").remove(&room);
            }
        }
        if live.is_empty() {
            return Ok(());
        }
        let mut call = self.0.renew.key(NODES_KEY);
        call.key(LEASES_KEY);
        for room in &live {
            call.key(home_key(room));
        }
        let kept: Vec<u8> = call
            .arg(&me)
            .arg(CLAIM_TTL_MS)
            .invoke_async(&mut self.0.cluster.conn())
            .await?;
        for (room, kept) in live.into_iter().zip(kept) {
            if kept == 0 {
                tracing::warn!(room, "this node no longer holds the room's home; ending its copy");
                self.0.homed.lock().expect("not poisoned").remove(&room);
                let _ = self.0.commands.send(Command::Lost { room }).await;
            }
        }
        Ok(())
    }
}
