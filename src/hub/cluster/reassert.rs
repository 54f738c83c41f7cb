//! The router's and the follower's part when Redis restarted EMPTY while this node still
//! holds people (`docs/cluster.md` §9, "Back empty: re-assertion"): telling a
//! lost domain from a fence on rejoining, offering this node's replica, writing it back
//! if it is the longest, claiming this node's people, and waiting for the restore.
//! Split out of `link.rs`, whose tasks call these (this module imports nothing
//! of it); the scripts' adapter is `cluster::restore`.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cluster::node::Cluster;
use crate::cluster::routing_scripts::{ClusterRoutingError, EVENTS_KEY};
use crate::cluster::{buddy_chat_log, restore};
use crate::hub::{Command, tell};

/// Pause between two looks at Redis while waiting (as the link's tasks pause after a failure).
const RETRY_PAUSE: Duration = Duration::from_millis(200);
use crate::cluster::restore::CLUSTER_ID_KEY;

/// The lease and grace periods, which pace a suspension and a re-assertion.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Periods {
    /// The offer and claim window of a re-assertion.
    pub lease: Duration,
    /// The longest a node stays suspended before letting go of its people.
    pub grace: Duration,
}

/// A node's part in restoring a routing domain Redis lost (`cluster::restore`).
pub(crate) struct Reassert {
    /// The node's replica of the lost domain, and the last event it applied.
    pub state: crate::core::routing::RoutingState,
    pub last_event: String,
    /// The people it still holds, and its chats' last recorded seqs.
    pub claims: restore::Claims,
    /// Its replica of the buddy list (JSON, `hub::buddy::snapshot`).
    pub buddies: String,
    /// The running buddy chats it holds lines of: their highest seqs and latest lines.
    pub buddy_chats: Vec<buddy_chat_log::BuddyClaim>,
}

/// What a new incarnation finds.
pub(super) enum Rejoin {
    /// The first membership, or one after the node let go of its people.
    Fresh,
    /// A suspended node finds the same routing domain: Redis kept its data, and this node
    /// was (or will be) reaped. It lets go of its people.
    Fenced,
    /// The routing domain's id is gone or another: Redis lost its data.
    DataLost,
}

/// What the routing domain's id tells a node that just took a new incarnation; `domain`:
/// the id it joined under (read and kept at its first membership).
pub(super) async fn rejoined(conn: &mut ConnectionManager, domain: &mut Option<String>, suspended: bool) -> Rejoin {
    let Some(known) = domain.as_deref() else {
        match read_cluster_id(conn).await {
            Ok(id) => *domain = Some(id),
            Err(e) => tracing::warn!(error = %e, "cannot read the cluster's id on joining"),
        }
        return Rejoin::Fresh;
    };
    // The first call after Redis came back may fail on the broken connection (the
    // connection manager reconnects after it): a few tries before concluding anything.
    let mut now: redis::RedisResult<Option<String>> = Ok(None);
    for _ in 0..5 {
        now = redis::cmd("GET").arg(CLUSTER_ID_KEY).query_async(conn).await;
        if now.is_ok() {
            break;
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    match now {
        Ok(now) if now.as_deref() != Some(known) => {
            tracing::error!(
                known, now = ?now,
                "Redis lost the cluster's data: this node re-asserts what its people hold"
            );
            Rejoin::DataLost
        }
        Ok(_) if !suspended => Rejoin::Fresh,
        Ok(_) => Rejoin::Fenced,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the cluster's id on rejoining: letting go of this node's people");
            if suspended { Rejoin::Fenced } else { Rejoin::Fresh }
        }
    }
}

/// How long a node waits at most for the restored domain before giving up (and letting
/// go of its people): the offers' window, the winner's two more, and as much again.
pub(super) const REASSERT_WINDOWS: u32 = 6;

/// Offers this node's replica, restores it if it is the longest (or the winner never
/// wrote), then claims this node's people (`cluster::restore`).
pub(super) async fn reassert_here(
    cluster: &Cluster,
    conn: &mut ConnectionManager,
    incarnation: u64,
    reassert: &Reassert,
    lost_id: &str,
    window: Duration,
) -> Result<(), ClusterRoutingError> {
    let node = cluster.node_id();
    let give_up = tokio::time::Instant::now() + window * REASSERT_WINDOWS;
    // A connection error (no reply: the connection manager reconnects after it) is tried
    // again until `give_up`; any reply is final.
    let retry = |e: &ClusterRoutingError| {
        matches!(e, ClusterRoutingError::Redis(e) if e.code().is_none()) && tokio::time::Instant::now() < give_up
    };
    loop {
        let step = async {
            if restore::is_restored(conn).await? {
                return Ok(None);
            }
            let offers = restore::offer(conn, node, incarnation, &reassert.last_event, window).await?;
            if offers.closes_in_ms <= 0 {
                match restore::restore_with_buddies(
                    conn,
                    node,
                    incarnation,
                    &reassert.state,
                    &reassert.buddies,
                    lost_id,
                    window,
                )
                .await?
                {
                    restore::Restored::Written => {
                        tracing::warn!(last_event = %reassert.last_event, "wrote this node's replica back as the routing domain");
                        return Ok(None);
                    }
                    restore::Restored::Already => return Ok(None),
                    restore::Restored::NotWinner => {}
                }
            }
            Ok::<_, ClusterRoutingError>(Some(offers.closes_in_ms))
        };
        let closes_in_ms = match step.await {
            Ok(None) => break,
            Ok(Some(closes_in_ms)) => closes_in_ms,
            Err(e) if retry(&e) => 0,
            Err(e) => return Err(e),
        };
        if tokio::time::Instant::now() > give_up {
            return Err(ClusterRoutingError::Fenced);
        }
        let pause = u64::try_from(closes_in_ms).unwrap_or(0).clamp(10, 200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    loop {
        match restore::claim(conn, node, incarnation, &reassert.claims, window).await {
            Err(e) if retry(&e) => tokio::time::sleep(RETRY_PAUSE.min(window / 4)).await,
            Err(e) => return Err(e),
            Ok(()) => break,
        }
    }
    claim_buddy_chats(conn, node, incarnation, &reassert.buddy_chats, give_up).await;
    Ok(())
}

/// Once every node that offered has claimed its buddy chats (`{sb}:bchat-pending` gone:
/// each claims them right after its people and chats), or the claim window is over, tells
/// the hub to read its chats' and buddy chats' logs: the lines other nodes wrote back are
/// there then. A task of its own, so the router goes on meanwhile.
pub(super) fn after_every_claim(mut conn: ConnectionManager, hub: mpsc::WeakSender<Command>, window: Duration) {
    tokio::spawn(async move {
        let give_up = tokio::time::Instant::now() + window;
        while tokio::time::Instant::now() < give_up {
            let pending: redis::RedisResult<bool> = redis::cmd("EXISTS")
                .arg(buddy_chat_log::CLAIMS_PENDING_KEY)
                .query_async(&mut conn)
                .await;
            if matches!(pending, Ok(false)) {
                break;
            }
            tokio::time::sleep(RETRY_PAUSE / 2).await;
        }
        tell(&hub, Command::EveryClaimIn).await;
    });
}

/// Claims this node's buddy chats in the restored domain (`cluster::buddy_chat_log::claim`),
/// a few hundred a call, the last call saying it is complete. A claim Redis does not take
/// by `give_up` is left: buddy stamps go on when the restore's window is over, and the
/// `floor` each stamp carries still keeps a node's own seqs.
async fn claim_buddy_chats(
    conn: &mut ConnectionManager,
    node: &str,
    incarnation: u64,
    chats: &[buddy_chat_log::BuddyClaim],
    give_up: tokio::time::Instant,
) {
    let calls = buddy_chat_log::claim_calls(chats);
    let count = calls.len();
    for (i, part) in calls.into_iter().enumerate() {
        loop {
            match buddy_chat_log::claim(conn, node, incarnation, part, i + 1 == count).await {
                Ok(()) => break,
                // No answer (the connection manager reconnects after it), or Redis busy
                // with a long script: the same call again.
                Err(ClusterRoutingError::Redis(e))
                    if matches!(e.code(), None | Some("BUSY")) && tokio::time::Instant::now() < give_up =>
                {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => {
                    return tracing::error!(error = %e, "could not claim this node's buddy chats in the restored domain");
                }
            }
        }
    }
}

/// Whether the events stream holds a restore entry (`cluster::restore`) newer than `last`,
/// the last entry this follower applied: one it has not applied. A restore is among the
/// first entries of the stream that Redis started again after losing its data.
pub(super) async fn restored_after(conn: &mut ConnectionManager, last: &str) -> bool {
    const LOOK_AT: usize = 1_000;
    let entries: redis::RedisResult<redis::streams::StreamRangeReply> = redis::cmd("XRANGE")
        .arg(EVENTS_KEY)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(LOOK_AT)
        .query_async(conn)
        .await;
    let newer = |id: &str| {
        let parts = |s: &str| -> (u64, u64) {
            let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
            (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
        };
        parts(id) > parts(last)
    };
    entries.is_ok_and(|reply| {
        reply.ids.iter().any(|entry| {
            newer(&entry.id)
                && entry
                    .get::<String>("t")
                    .is_some_and(|t| t == restore::RESTORE_TRANSITION)
        })
    })
}

/// The follower found the domain lost: waits until the nodes have restored it (true), or
/// until Redis has answered without a restore for eight lease periods — every router gave
/// up too, and let go of its people — and then starts the replica afresh (true); false on
/// shutdown.
pub(super) async fn wait_for_restore(
    conn: &mut ConnectionManager,
    hub: &mpsc::WeakSender<Command>,
    periods: Periods,
    shutdown: &CancellationToken,
) -> bool {
    let patience = periods.lease * (REASSERT_WINDOWS + 2);
    let mut give_up = tokio::time::Instant::now() + patience;
    loop {
        match restore::is_restored(conn).await {
            Ok(true) => return true,
            Ok(false) => {}
            // Redis away again: the nodes cannot restore it meanwhile.
            Err(_) => give_up = tokio::time::Instant::now() + patience,
        }
        if tokio::time::Instant::now() > give_up {
            tracing::error!("the routing domain was not restored: this node's replica starts afresh");
            let command = Command::RoutingReload {
                state: Default::default(),
                last_event: "0-0".to_string(),
                restored: false,
            };
            tell(hub, command).await;
            tell(hub, Command::BuddiesRestored(Box::default())).await;
            return true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(RETRY_PAUSE) => {}
        }
    }
}

/// The routing domain's id in this Redis: the one set, or a new one set now (`SET NX`,
/// so every node that finds it missing agrees on the first one written).
pub(super) async fn read_cluster_id(conn: &mut ConnectionManager) -> redis::RedisResult<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let _: Option<String> = redis::cmd("SET")
        .arg(CLUSTER_ID_KEY)
        .arg(&id)
        .arg("NX")
        .query_async(conn)
        .await?;
    redis::cmd("GET").arg(CLUSTER_ID_KEY).query_async(conn).await
}
