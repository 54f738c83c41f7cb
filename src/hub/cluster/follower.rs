//! What a node reads from Redis: the **follower** reads the routing events
//! stream in order and hands each batch to the hub, which replays it through its replica
//! (`hub/service/cluster.rs`) — and, when Redis lost its data, waits for the restore and
//! loads the replica and the buddy list from its entry; the **subscriber** listens on this
//! node's channel for chat messages, typing and drafts from other nodes, and tells the hub
//! when its subscription was cut (so it re-reads its chats' logs). Started by
//! `link::start`, beside the router.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::reassert::{Periods, read_cluster_id, restored_after, wait_for_restore};
use super::tasks::{AGENT_NAMES_KEY, RETRY_PAUSE};
use crate::cluster::chat_log::{self, NodeMessage};
use crate::cluster::node::Cluster;
use crate::cluster::restore;
use crate::cluster::routing_events::{Followed, RoutingEvent, follow_blocking};
use crate::cluster::routing_scripts::read_snapshot;
use crate::cluster::subscription::{self, Listener, Resubscribing};
use crate::core::routing::AgentId;
use crate::hub::{Command, tell};

/// Routing events handed to the hub per batch (one read per batch).
const FOLLOW_BATCH: usize = 1_000;
/// How long the follower's blocking read waits for a new event before looking again.
const FOLLOW_BLOCK_MS: u64 = 1_000;
/// After a read that found events, how long the follower lets the stream fill before it
/// reads again: on a busy stream each read then takes what a few milliseconds brought
/// instead of the one or two events since the last, so Redis runs fewer reads and checks
/// and wakes each node less often, for about this much more delay (the timer counts whole
/// milliseconds). An idle stream's first event still wakes the blocking read at once, and
/// a full batch is followed by the next read at once: the follower is behind.
const FOLLOW_PACE: Duration = Duration::from_millis(2);

/// A connection of the follower's own: its blocking reads must not hold up the node's
/// shared connection, and may wait longer than its 1 s timeout.
fn blocking_conn(cluster: &Cluster) -> redis::RedisResult<ConnectionManager> {
    let wait = Duration::from_millis(FOLLOW_BLOCK_MS * 3);
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(wait))
        .set_response_timeout(Some(wait))
        .set_number_of_retries(1);
    ConnectionManager::new_lazy_with_config(cluster.client().clone(), config)
}

pub(super) async fn follower(
    cluster: Cluster,
    hub: mpsc::WeakSender<Command>,
    periods: Periods,
    shutdown: CancellationToken,
) {
    let mut conn = match blocking_conn(&cluster) {
        Ok(conn) => conn,
        Err(e) => return tracing::error!(error = %e, "cannot open the routing events follower's connection"),
    };
    // The cluster's id first: the hub names chats with it.
    let mut cluster_id = loop {
        match read_cluster_id(&mut conn).await {
            Ok(cluster_id) => {
                tell(
                    &hub,
                    Command::ClusterStarted {
                        cluster_id: cluster_id.clone(),
                    },
                )
                .await;
                break cluster_id;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the cluster's id; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RETRY_PAUSE) => {}
        }
    };
    let (mut last, mut seen) = ("0-0".to_string(), 0u64);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let followed = follow_blocking(&mut conn, &cluster_id, &last, seen, FOLLOW_BATCH, FOLLOW_BLOCK_MS).await;
        if followed.is_ok() {
            // Redis answers: the node's status says so at once, before the hub hears what
            // was read (a customer welcomed by it may write straight away).
            cluster.redis_answered();
        }
        let pause = match followed {
            Ok(Followed::Events(mut events)) if !events.is_empty() => {
                let behind = events.len() >= FOLLOW_BATCH;
                // The routing domain was written back after Redis lost its data
                // (`cluster::restore`): the replica becomes the restored state, and the
                // events after it follow. What came before it was overwritten.
                let restored = events.iter().rposition(|e| e.transition == restore::RESTORE_TRANSITION);
                if let Some(at) = restored {
                    let entry = events.drain(..=at).next_back().expect("found");
                    // Counted from the entry's own ordinal: what came before it may be
                    // entries of the lost stream (this follower's `seen`) or of the new one.
                    seen = entry
                        .args
                        .get(1)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(seen + at as u64 + 1);
                    last.clone_from(&entry.id);
                    match entry.args.first().map(|state| restore::decode(state)) {
                        Some(Ok(state)) => {
                            tracing::warn!(from = %entry.id, "loading this node's routing replica from the restored domain");
                            let last_event = entry.id.clone();
                            let command = Command::RoutingReload {
                                state,
                                last_event,
                                restored: true,
                            };
                            tell(&hub, command).await;
                        }
                        _ => tracing::error!(entry = %entry.id, "a restore entry this node cannot read"),
                    }
                    // The buddy list restored with it (an empty one if it cannot be read:
                    // this node's buddies then join again).
                    let buddies = entry.args.get(2).map(|json| serde_json::from_str(json));
                    let buddies = match buddies {
                        Some(Ok(buddies)) => buddies,
                        _ => {
                            tracing::error!(entry = %entry.id, "a restore entry's buddy list this node cannot read");
                            Box::default()
                        }
                    };
                    tell(&hub, Command::BuddiesRestored(buddies)).await;
                }
                if !events.is_empty() {
                    last.clone_from(&events.last().expect("not empty").id);
                    seen += events.len() as u64;
                    test_only_follower_lag(&cluster, &events).await;
                    let agent_names = agent_names(&mut conn, &events).await;
                    tell(&hub, Command::RoutingEvents { events, agent_names }).await;
                }
                if behind {
                    continue;
                }
                FOLLOW_PACE
            }
            // Nothing new within the read's wait: read again (it waits on the stream itself).
            Ok(Followed::Events(_)) => continue,
            Ok(Followed::Lost) => {
                // Redis restarted empty. The nodes' routers write the lost domain back
                // (`cluster::restore`) from the longest replica, this node's perhaps: the
                // replica stays as it is until then, and then loads what was restored.
                // Should no node restore it (every one gave up), the domain starts again
                // empty under a new id, and so does the replica.
                tracing::error!(old = %cluster_id, "Redis lost the cluster's data: waiting for the nodes to restore it");
                if !wait_for_restore(&mut conn, &hub, periods, &shutdown).await {
                    return;
                }
                match read_cluster_id(&mut conn).await {
                    Ok(id) => {
                        // The new stream from its first entry: the restore's, unless a node
                        // called before it (overwritten by it).
                        cluster_id.clone_from(&id);
                        (last, seen) = ("0-0".to_string(), 0);
                        tell(&hub, Command::ClusterStarted { cluster_id: id }).await;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the cluster's id; retrying");
                        RETRY_PAUSE
                    }
                }
            }
            Ok(Followed::Gap) if restored_after(&mut conn, &last).await => {
                // Redis lost its data and the domain was restored before this follower
                // noticed (the restore brought the domain's id back): the new stream from
                // its first entry, the restore's.
                tracing::error!(after = %last, "the routing domain was restored after Redis lost its data");
                (last, seen) = ("0-0".to_string(), 0);
                continue;
            }
            Ok(Followed::Gap) => match read_snapshot(&mut conn).await {
                // Events this node had not read were trimmed away (it joined late, or
                // fell far behind): its replica starts again from the whole state, and
                // it follows on from the last event the snapshot includes.
                Ok(snapshot) => {
                    tracing::warn!(
                        after = %last, from = %snapshot.last_event,
                        "routing events this node had not read were trimmed away: loading its replica from a snapshot"
                    );
                    last.clone_from(&snapshot.last_event);
                    seen = snapshot.events_added;
                    tell(
                        &hub,
                        Command::RoutingReload {
                            state: snapshot.state,
                            last_event: snapshot.last_event,
                            restored: false,
                        },
                    )
                    .await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a snapshot of the routing; retrying");
                    RETRY_PAUSE
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the routing events; retrying");
                RETRY_PAUSE
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// The display names of the agents these events bring online.
async fn agent_names(conn: &mut ConnectionManager, events: &[RoutingEvent]) -> Vec<(AgentId, String)> {
    let agents: Vec<&String> = events
        .iter()
        .filter(|e| matches!(e.transition.as_str(), "agent_online" | "agent_resumed"))
        .filter_map(|e| e.args.first())
        .collect();
    if agents.is_empty() {
        return vec![];
    }
    let names: Vec<Option<String>> = match redis::cmd("HMGET")
        .arg(AGENT_NAMES_KEY)
        .arg(&agents)
        .query_async(conn)
        .await
    {
        Ok(names) => names,
        Err(_) => return vec![],
    };
    agents
        .into_iter()
        .zip(names)
        .filter_map(|(a, n)| Some((AgentId(a.clone()), n?)))
        .collect()
}

/// Listens on this node's chat channel until `shutdown` (`subscription::listen`, every
/// [`RETRY_PAUSE`] again after a failure or a cut).
pub(super) async fn subscriber(cluster: Cluster, hub: mpsc::WeakSender<Command>, shutdown: CancellationToken) {
    let channel = chat_log::node_channel(cluster.node_id());
    let resubscribing = Resubscribing {
        timeout: Duration::from_secs(5),
        first_pause: RETRY_PAUSE,
        longest_pause: RETRY_PAUSE,
    };
    let listener = NodeChannel {
        deaf: std::sync::atomic::AtomicBool::new(test_only_deaf_chat_channel(&cluster)),
        hub,
    };
    subscription::listen(
        &cluster,
        &channel,
        "this node's chat channel",
        resubscribing,
        &listener,
        &shutdown,
    )
    .await;
}

struct NodeChannel {
    hub: mpsc::WeakSender<Command>,
    /// Drops the chat lines published to it until it subscribes again (a test's hook:
    /// [`test_only_deaf_chat_channel`]).
    deaf: std::sync::atomic::AtomicBool,
}

impl Listener for NodeChannel {
    async fn resubscribed(&self) {
        self.deaf.store(false, std::sync::atomic::Ordering::Relaxed);
        // Messages published while the subscription was cut are in the chats' logs.
        tracing::info!("re-reading this node's chats' logs after a gap on its chat channel");
        tell(&self.hub, Command::ChatResync).await;
    }

    async fn received(&self, payload: String) {
        match chat_log::parse_node_message(&payload) {
            Some(NodeMessage::Line(line)) if self.deaf.load(std::sync::atomic::Ordering::Relaxed) => {
                tracing::warn!(
                    chat = line.chat.0,
                    seq = line.seq,
                    "test hook: a chat line dropped as if lost with a cut"
                );
            }
            Some(NodeMessage::BuddyLine(line)) if self.deaf.load(std::sync::atomic::Ordering::Relaxed) => {
                tracing::warn!(
                    chat = line.chat,
                    seq = line.seq,
                    "test hook: a buddy line dropped as if lost with a cut"
                );
            }
            Some(NodeMessage::Line(line)) => tell(&self.hub, Command::ChatLines { lines: vec![line] }).await,
            Some(signal) => tell(&self.hub, Command::ChatSignal(signal)).await,
            None => tracing::warn!("ignored a malformed message on this node's chat channel"),
        }
    }
}

/// Debug builds only: `SWITCHBOARD_TEST_DEAF_CHAT_CHANNEL=<node id>` makes that node's
/// chat channel drop every chat line published to it (customers' and buddies') until it
/// subscribes again after a cut, as if each were lost with one: a test can stage a line
/// stamped and acknowledged on one side that the other side's node never got before Redis
/// lost its data, or before its channel was cut.
fn test_only_deaf_chat_channel(cluster: &Cluster) -> bool {
    crate::test_hooks::for_node("SWITCHBOARD_TEST_DEAF_CHAT_CHANNEL", cluster.node_id()).is_some()
}

/// Debug builds only: `SWITCHBOARD_TEST_FOLLOWER_LAG=<node id>:<ms>` holds every batch of
/// events that node's follower read back for that long before its hub applies them, so a
/// test can stage a replica behind the stream (a resume on a node that has not applied the
/// customer's join yet). `<node id>:<ms>:<transition>` holds only a batch holding that
/// transition (what comes after it is read once it is handed over, so it waits too): a
/// test that needs one event replayed late (a `leave`) does not wait that long for each
/// step before it. `<node id>:<ms>:<transition>:<maker's node id>` holds only a batch
/// holding that transition made by that node (one agent's `set_available`, not another's).
async fn test_only_follower_lag(cluster: &Cluster, events: &[RoutingEvent]) {
    let Some(words) = crate::test_hooks::for_node("SWITCHBOARD_TEST_FOLLOWER_LAG", cluster.node_id()) else {
        return;
    };
    let (ms, transition, maker) = (words.first(), words.get(1), words.get(2));
    let held = transition.is_none_or(|t| {
        events
            .iter()
            .any(|e| &e.transition == t && maker.is_none_or(|m| &e.node == m))
    });
    if let (true, Some(ms)) = (held, ms.and_then(|ms| ms.parse::<u64>().ok())) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
