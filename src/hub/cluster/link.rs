//! The hub's link to the cluster, when `REDIS_URL` is set: three tasks beside
//! the hub task, which stays the one owner of this node's connections.
//!
//! - The **router** serialises this node's calls to Redis (routing transitions as their
//!   fenced scripts, chat messages, gap fills) from a bounded channel, and turns what
//!   only the caller needs — refusals, a stamped message — into hub commands.
//! - The **follower** reads the routing events stream in order and hands each batch to
//!   the hub, which replays it through its replica of the routing core and carries out
//!   the decisions for the people this node holds (`hub/service/cluster.rs`).
//! - The **subscriber** listens on this node's channel for chat messages, typing and
//!   drafts from other nodes, and tells the hub when its subscription was cut (so it
//!   re-reads its chats' logs).
//!
//! Nothing here holds state the hub reads: every reply is a command on the hub's channel.
//! The follower and the subscriber are in `follower.rs`; the router's part in a
//! re-assertion in `reassert.rs`.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::follower;
use super::outbox::{self, OWN_CALLS_CAPACITY, OwnCall, RefusedJoin, Sent};
use super::own_calls::OwnCalls;
pub(crate) use super::reassert::Periods;
pub(crate) use super::reassert::Reassert;
use super::reassert::{Rejoin, after_every_claim, reassert_here, rejoined};
use super::rereads::{Log, REREAD_BATCH, Rereads};
use super::tasks::{AGENT_NAMES_KEY, RETRY_PAUSE};
use crate::cluster::agent_endings;
use crate::cluster::buddy_chat_log;
use crate::cluster::buddy_line::BuddyLine;
use crate::cluster::buddy_log;
use crate::cluster::chat_log::{self, ChatLine, NodeMessage};
use crate::cluster::lease::NodeLost;
use crate::cluster::node::Cluster;
use crate::cluster::replica::RoutingOp;
use crate::cluster::resume_tokens;
use crate::cluster::routing_scripts::{Applied, ClusterRoutingError, RedisRouting};
use crate::core::routing::{AgentId, CategoryId, ChatId, CustomerId, Party, RoutingError};
use crate::hub::delivery::{ConnId, Recipient};
use crate::hub::ended_away::KEPT_PER_AGENT;
use crate::hub::transcript::Transcript;
use crate::hub::{Command, RefusedCall, tell};

/// Calls waiting for the router at most: one Redis round trip each, so a full channel
/// means Redis is slow or away; the hub then refuses with `cluster_unavailable` rather
/// than queueing without bound. (Every chat's log read again, customers' and buddies',
/// goes outside it: `rereads`.)
pub(crate) const ROUTER_BUFFER: usize = 8_192;
/// Customers' joins sent together at most: a burst's joins queued behind the first go
/// with it (30 of ~75 µs of Redis each: ~2 ms, far within a call's 1 s timeout; and a list
/// `join_all` polls in order, so they are sent, and applied, in the order made).
const JOIN_BATCH: usize = 30;
/// The code of every refusal that comes from Redis being unreachable or this node fenced.
pub(crate) const UNAVAILABLE: &str = "cluster_unavailable";

/// What the hub asks of Redis.
pub(crate) enum RouterCall {
    /// A routing transition; a refusal is told to `conn`, when given.
    Op { op: RoutingOp, conn: Option<ConnId> },
    /// Before an agent's `agent_online`: their display name, for their customers' nodes.
    AgentName { agent: AgentId, name: String },
    /// A chat message to stamp; `sender` is told a refusal.
    Message(QueuedMessage),
    /// Typing or a draft for the chat's other side, if on another node.
    Signal {
        chat: ChatId,
        from: Party,
        what: NodeMessage,
    },
    /// Typing in a buddy chat (its wire id), for the nodes holding the peer's pages.
    BuddyTyping {
        nodes: Vec<String>,
        chat: String,
        from: u64,
        active: bool,
    },
    /// A buddy chat message to stamp in its chat's log (docs/cluster.md §15).
    BuddyStamp(Box<BuddyOutgoing>),
    /// A buddy line kept here, for the other nodes that need it.
    BuddyPublish { nodes: Vec<String>, line: BuddyLine },
    /// A buddy chat's log after `after` (`Command::BuddyLogRead`).
    BuddyRead { chat: String, after: u64 },
    /// A buddy chat over and archived: its log and seq counter expire a day later.
    BuddyExpire { chat: String },
    /// The next seq of a line an agent writes into conversation `id` while its customer
    /// is away (`archived`: its last seq in the archive), for `Command::FollowUpSeq`.
    ConversationSeq {
        id: String,
        archived: u64,
        asked: Box<crate::hub::follow_up_line::FollowUpLine>,
    },
    /// The chat's messages after `after`, from its log.
    Fill { chat: ChatId, after: u64 },
    /// The last read of an ended chat's log by the node archiving it: every line stamped
    /// before the end, which may have reached this node after the end's event (pub/sub and
    /// the events stream are not ordered with each other), goes to the archive before the
    /// closing does.
    ClosingRead { chat: ChatId, after: u64 },
    // ---- a customer's resume on another node ----
    /// Records which customer a resume token (its key, `resume_tokens::key`) resumes, for `ttl`.
    RememberToken {
        key: String,
        customer: CustomerId,
        ttl: Duration,
    },
    /// The token resumes nobody any more.
    ForgetToken { key: String },
    /// A resume on `conn` with a token this node did not issue: whose is it?
    FindToken { conn: ConnId, token: String, last_seq: u64 },
    // ---- an agent's welcome on another node ----
    /// How `agent`'s chats ended lately, as the nodes that told them kept them
    /// (`Command::AgentEndingsRead`). Sent right before the agent's coming online: the
    /// router tells the hub before it sends that call, so the read is in before the
    /// events stream brings the welcome.
    ReadEndings { agent: AgentId },
    /// A customer away when their chat ended: what they get on resuming elsewhere
    /// (JSON, kept under `resume_tokens::ended_key` for `ttl`). With `read_after`, the
    /// chat's log is read once more first, and its lines after the seq this node had
    /// recorded at the end join the visit's chat: stamped before the end, they may reach
    /// this node after the end's event (pub/sub and the events stream are not ordered with
    /// each other; a node stopped and woken has both waiting and takes either first).
    /// Without, the visit is recorded as it is (again, after Redis lost its data).
    RememberEndedVisit {
        key: String,
        visit: serde_json::Value,
        ttl: Duration,
        read_after: Option<(ChatId, u64)>,
        /// The token of this node's own copy of the visit, which the lines read complete
        /// (`Command::EndedVisitRead`); `None` for a reaper's, which keeps no copy.
        local: Option<String>,
    },
    // ---- the buddy list across nodes ----
    /// A buddy-list event (JSON) made by this process (`Link::nonce`) for the events
    /// stream; a refusal is told to `conn` (with `client_id`, the message it refuses).
    Buddy {
        event: String,
        process: String,
        conn: Option<ConnId>,
        client_id: Option<String>,
    },
    // ---- Redis restarted empty ----
    /// Every category the hub knows (the store's may have grown since start-up): added to
    /// the routing domain now if this node is a member, and at every (re)join after.
    Categories(Vec<CategoryId>),
    /// What this node holds of the lost domain, once the router found Redis empty on
    /// rejoining (`Command::ClusterDataLost`): offered, restored if the longest, claimed.
    Reassert(Box<Reassert>),
}

/// The hub's end of the link.
pub(crate) struct Link {
    pub node: String,
    /// Names this process's joins (`<nonce>:<connection>:<join number>`): connection ids restart with
    /// the process, request ids must not.
    pub nonce: String,
    /// Each call with the hub's fencing generation: how many `ClusterFenced` it had
    /// handled when it made the call. The router refuses a call made before the hub
    /// learnt of a fence, so nothing a fenced node believed is acted on under its new
    /// incarnation.
    pub calls: mpsc::Sender<(u64, RouterCall)>,
    /// Chats whose logs the router reads again, a batch at a time between its calls.
    pub rereads: Arc<Rereads>,
}

/// Starts the router, follower and subscriber for the hub behind `hub`.
/// `categories`: the store's, added to the routing domain whenever this node (re)joins.
pub(crate) fn start(
    cluster: &Cluster,
    hub: mpsc::WeakSender<Command>,
    categories: Vec<CategoryId>,
    periods: Periods,
    shutdown: CancellationToken,
) -> Link {
    let (calls, rx) = mpsc::channel(test_only_router_buffer().unwrap_or(ROUTER_BUFFER));
    let rereads = Arc::new(Rereads::default());
    tokio::spawn(router(
        cluster.clone(),
        (rx, rereads.clone()),
        hub.clone(),
        categories,
        periods,
        shutdown.clone(),
    ));
    tokio::spawn(follower::follower(
        cluster.clone(),
        hub.clone(),
        periods,
        shutdown.clone(),
    ));
    tokio::spawn(follower::subscriber(cluster.clone(), hub, shutdown));
    Link {
        node: cluster.node_id().to_string(),
        nonce: uuid::Uuid::new_v4().simple().to_string(),
        calls,
        rereads,
    }
}

fn refused(
    conn: Option<ConnId>,
    who: Option<Recipient>,
    code: &'static str,
    message: String,
    call: RefusedCall,
) -> Command {
    Command::ClusterRefused {
        conn,
        who,
        code,
        message,
        client_id: None,
        call,
    }
}

/// The code and words a caller is told for a failed call.
fn refusal(e: &ClusterRoutingError) -> (&'static str, String) {
    match e {
        ClusterRoutingError::Refused(r) => (r.code(), r.to_string()),
        ClusterRoutingError::Fenced => (UNAVAILABLE, "this node is rejoining the cluster; try again".into()),
        ClusterRoutingError::NotHeld => (
            UNAVAILABLE,
            "you are connected on another node; this page will try again".into(),
        ),
        other => (UNAVAILABLE, format!("the cluster cannot take this now: {other}")),
    }
}

async fn router(
    cluster: Cluster,
    (mut calls, rereads): (mpsc::Receiver<(u64, RouterCall)>, Arc<Rereads>),
    hub: mpsc::WeakSender<Command>,
    mut categories: Vec<CategoryId>,
    periods: Periods,
    shutdown: CancellationToken,
) {
    let mut status = cluster.watch();
    let mut redis = RedisRouting::new(cluster.conn(), cluster.node_id(), 0);
    let mut conn = cluster.conn();
    let mut held: Option<u64> = None;
    // How many fences this router has told the hub of (see `Link::calls`).
    let mut fences: u64 = 0;
    // This node's own calls Redis did not take, sent in order when it answers again
    // (`hub::cluster::outbox`); own buddy events are named `<once>:<n>` so each is recorded once.
    let mut own: OwnCalls<OwnCall> = OwnCalls::new(OWN_CALLS_CAPACITY);
    let (once, mut own_events) = (uuid::Uuid::new_v4().simple().to_string(), 0u64);
    // The routing domain's id this node works under (`CLUSTER_ID_KEY`), read when it
    // first joins: finding another (or none) on a rejoin means Redis lost its data.
    let mut domain: Option<String> = None;
    // *Suspended* since: the node lost its lease (or a script refused it as fenced) and
    // cannot know yet how Redis will come back. Every call is refused, the connections
    // are kept; the next incarnation decides (docs/cluster.md §9).
    let mut suspended: Option<tokio::time::Instant> = None;
    // Redis came back empty and this node's re-assertion has not run yet: every call but
    // the hub's `Reassert` is refused (no id is drawn below the restored counter).
    // (Since when: a hub that never hands its part over is let go after the grace period.)
    let mut reasserting: Option<tokio::time::Instant> = None;
    // A call taken from the channel behind a batch of messages it did not belong to: the
    // next one handled.
    let mut next: Option<(u64, RouterCall)> = None;
    loop {
        let let_go_at = suspended.or(reasserting).map(|since| since + periods.grace);
        let call = if let Some(call) = next.take() {
            call
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                // Own calls waiting while the status says Redis answers: try them again (not
                // while suspended or re-asserting: they wait for the node's standing).
                _ = tokio::time::sleep(RETRY_PAUSE), if !own.is_empty() && suspended.is_none() && reasserting.is_none() => {
                    if let Some(incarnation) = held.filter(|_| status.borrow().usable())
                        && send_own(&mut own, &redis, &mut conn, incarnation, &hub).await
                    {
                        suspended.get_or_insert_with(tokio::time::Instant::now);
                    }
                    continue;
                }
                _ = sleep_until(let_go_at) => {
                    // Nobody could keep anything past the grace period anyway.
                    tracing::warn!("suspended for the whole grace period: letting go of this node's people");
                    suspended = None;
                    reasserting = None;
                    fences += 1;
                    tell(&hub, Command::ClusterFenced).await;
                    drop_own(&mut own);
                    continue;
                }
                changed = status.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = status.borrow_and_update().incarnation;
                    if now == held {
                        // Redis answers again, under the same lease: this node's own calls
                        // kept meanwhile go first.
                        if let Some(incarnation) = held.filter(|_| {
                            status.borrow().usable() && !own.is_empty() && suspended.is_none() && reasserting.is_none()
                        }) && send_own(&mut own, &redis, &mut conn, incarnation, &hub).await
                        {
                            suspended.get_or_insert_with(tokio::time::Instant::now);
                        }
                        continue;
                    }
                    if held.is_some() {
                        suspended.get_or_insert_with(tokio::time::Instant::now);
                    }
                    held = now;
                    let Some(incarnation) = now else { continue };
                    redis.set_incarnation(incarnation);
                    match rejoined(&mut conn, &mut domain, suspended.is_some()).await {
                        Rejoin::DataLost => {
                            // Keep the people: the hub hands over what it holds to re-assert.
                            // Buddy closes kept through the outage may be in the restored list
                            // already: the node's claim counts its connections as they are.
                            outbox::drop_buddy_closes(&mut own);
                            outbox::drop_joins(&mut own);
                            suspended = None;
                            reasserting = Some(tokio::time::Instant::now());
                            tell(&hub, Command::ClusterDataLost).await;
                            continue;
                        }
                        Rejoin::Fenced => {
                            // Back with its data, and this node's lease was lost meanwhile:
                            // whatever it believed it held may have been handed on. Its people
                            // reconnect; the node starts afresh.
                            suspended = None;
                            fences += 1;
                            tell(&hub, Command::ClusterFenced).await;
                            drop_own(&mut own);
                        }
                        Rejoin::Fresh => {}
                    }
                    // A node restarted under the same id hands itself its previous
                    // incarnation's people (their grace timers start here).
                    if let Err(e) = redis.node_lost(cluster.node_id()).await {
                        tracing::warn!(error = %e, "could not take back this node's previous people");
                    }
                    add_categories(&redis, &categories).await;
                    continue;
                }
                call = calls.recv() => match call {
                    Some(call) => call,
                    None => return,
                },
                // Chats whose logs the hub asked to read again: a batch, then whatever
                // else waits (the select takes its ready branches in random order).
                () = rereads.wanted() => {
                    for (log, after) in rereads.take(REREAD_BATCH) {
                        let read = match log {
                            Log::Chat(chat) => Command::ChatLogRead {
                                chat,
                                read: read_log(&mut conn, chat, after).await,
                            },
                            Log::Buddy(chat) => Command::BuddyLogReread {
                                read: read_buddy_log(&mut conn, &chat, after).await,
                                chat,
                            },
                        };
                        tell(&hub, read).await;
                    }
                    continue;
                }
            }
        };
        let (generation, call) = call;
        if matches!(call, RouterCall::Op { .. } | RouterCall::AgentName { .. }) {
            test_only_release_own_calls();
        }
        // Made before the hub handled the last fence: for what the node believed then.
        let mut member = held.filter(|_| {
            status.borrow().usable() && generation == fences && suspended.is_none() && reasserting.is_none()
        });
        // Still a member under the lease the call was made under, though Redis may not
        // answer — or suspended, or re-asserting, which the next incarnation decides: an
        // own call made now may wait in the outbox (dropped if the node turns out fenced,
        // sent after the re-assertion if Redis lost its data).
        let keeps = (held.is_some() || suspended.is_some() || reasserting.is_some()) && generation == fences;
        if let Some(incarnation) = member
            && !own.is_empty()
        {
            // Nothing new before the own calls kept while Redis was away.
            if send_own(&mut own, &redis, &mut conn, incarnation, &hub).await {
                suspended.get_or_insert_with(tokio::time::Instant::now);
            }
            if !own.is_empty() || suspended.is_some() {
                member = None;
            }
        }
        match call {
            RouterCall::Reassert(reassert) => {
                let Some(incarnation) = held.filter(|_| reasserting.is_some()) else {
                    continue;
                };
                reasserting = None;
                let lost_id = domain.clone().unwrap_or_default();
                match reassert_here(&cluster, &mut conn, incarnation, &reassert, &lost_id, periods.lease).await {
                    Ok(()) => {
                        tracing::warn!(
                            customers = reassert.claims.customers.len(),
                            agents = reassert.claims.agents.len(),
                            "re-asserted this node's people in the restored routing domain"
                        );
                        // Right behind the claim: the own calls kept through the outage
                        // (a page closed while this node was suspended).
                        if !own.is_empty() && send_own(&mut own, &redis, &mut conn, incarnation, &hub).await {
                            suspended.get_or_insert_with(tokio::time::Instant::now);
                        }
                        add_categories(&redis, &categories).await;
                        after_every_claim(conn.clone(), hub.clone(), periods.lease);
                        tell(&hub, Command::BotStagesAgain).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not re-assert this node's people: letting go of them");
                        fences += 1;
                        tell(&hub, Command::ClusterFenced).await;
                        drop_own(&mut own);
                        add_categories(&redis, &categories).await;
                    }
                }
            }
            RouterCall::Categories(known) => {
                categories = known;
                if member.is_some() {
                    add_categories(&redis, &categories).await;
                }
            }
            RouterCall::Op { op, conn: who } if who.is_none() && keeps => {
                // Nobody waits for it: if Redis does not take it, it waits in the outbox.
                let result = match member {
                    Some(_) => op.run(&redis).await.map(|_| ()),
                    None => Err(ClusterRoutingError::Redis(redis::RedisError::from(
                        std::io::Error::from(std::io::ErrorKind::NotConnected),
                    ))),
                };
                match result {
                    Err(e) if outbox::unanswered(&e) => keep_own(&mut own, OwnCall::Op(op)),
                    Err(ClusterRoutingError::Fenced) => {
                        // Suspended: the next incarnation decides (dropped if fenced,
                        // sent after a re-assertion if Redis lost its data).
                        suspended.get_or_insert_with(tokio::time::Instant::now);
                        keep_own(&mut own, OwnCall::Op(op));
                    }
                    Err(e) => tracing::debug!(error = %e, ?op, "a routing call without a caller was refused"),
                    Ok(()) => {}
                }
            }
            RouterCall::Op { op, conn: who } => {
                if member.is_none() {
                    let message = "the cluster (Redis) is unavailable; try again shortly".to_string();
                    tell(&hub, refused(who, None, UNAVAILABLE, message, refused_call(&op))).await;
                    continue;
                }
                // Customers' joins waiting behind a join, made under the same standing, go
                // together: sent at once on the shared connection, which pipelines them
                // (one round trip, not one each), and applied by Redis in this order.
                let mut batch = vec![(op, who)];
                if matches!(batch[0], (RoutingOp::Join { .. }, Some(_))) {
                    while batch.len() < JOIN_BATCH {
                        match calls.try_recv() {
                            Ok((
                                made,
                                RouterCall::Op {
                                    op: op @ RoutingOp::Join { .. },
                                    conn: Some(conn),
                                },
                            )) if made == generation => {
                                batch.push((op, Some(conn)));
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                // (A first try refused as Redis was not ready, `LOADING` or `BUSY`, is tried
                // again after the others' first tries: two joins of one millisecond may then
                // be applied in the other order.)
                let firsts = futures_util::future::join_all(batch.iter().map(|(op, _)| op.run(&redis))).await;
                let firsts: Vec<_> = batch
                    .iter()
                    .zip(firsts)
                    .map(|((op, _), first)| test_only_lost_answer(&redis, op, first))
                    .collect();
                // Once a second try went unanswered, the batch's other calls are not tried
                // again one by one (a timeout each): the joins wait in the outbox.
                let mut retry = true;
                for ((op, who), first) in batch.into_iter().zip(firsts) {
                    let settle = Settle {
                        redis: &redis,
                        conn: &mut conn,
                        own: &mut own,
                        keeps,
                        retry,
                        hub: &hub,
                    };
                    let settled = settle.call(op, who, first).await;
                    if settled.fenced {
                        suspended.get_or_insert_with(tokio::time::Instant::now);
                    }
                    retry &= !settled.unanswered;
                }
            }
            // Not while this node is no member (Redis away, fenced): the sign-in it goes
            // before is refused anyway, and a write Redis leaves unanswered would hold the
            // calls queued behind it for a timeout, per sign-in.
            RouterCall::AgentName { agent, name } if member.is_some() => {
                let _: Result<(), _> = redis::cmd("HSET")
                    .arg(AGENT_NAMES_KEY)
                    .arg(&agent.0)
                    .arg(&name)
                    .query_async(&mut conn)
                    .await;
            }
            RouterCall::AgentName { .. } => {}
            RouterCall::Message(message) => {
                let Some(incarnation) = member else {
                    let command = Command::ClusterRefused {
                        conn: None,
                        who: Some(message.sender),
                        code: UNAVAILABLE,
                        message: "the cluster (Redis) is unavailable; the message was not sent".into(),
                        // The sender matches the refusal to their message by it.
                        client_id: message.client_id,
                        call: RefusedCall::Other,
                    };
                    tell(&hub, command).await;
                    continue;
                };
                // Messages waiting behind it, made under the same standing, go in the same
                // round trip (one pipeline, stamped in this order).
                let mut batch = vec![message];
                while batch.len() < chat_log::APPEND_BATCH {
                    match calls.try_recv() {
                        Ok((made, RouterCall::Message(message))) if made == generation => batch.push(message),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if stamp_messages(&mut conn, &hub, cluster.node_id(), incarnation, batch).await {
                    suspended.get_or_insert_with(tokio::time::Instant::now);
                }
            }
            RouterCall::Signal { chat, from, what } => {
                let _ = chat_log::signal(&mut conn, cluster.node_id(), chat, from, &what).await;
            }
            RouterCall::BuddyTyping {
                nodes,
                chat,
                from,
                active,
            } => {
                let _ = chat_log::publish_buddy_typing(&mut conn, &nodes, &chat, from, active).await;
            }
            RouterCall::BuddyStamp(message) => {
                let outgoing = buddy_chat_log::Outgoing {
                    chat: &message.chat,
                    sender: message.sender,
                    id: &message.id,
                    at: message.at,
                    text: &message.text,
                    client_id: message.client_id.as_deref(),
                    floor: message.floor,
                    files: &message.files,
                };
                let result = match member {
                    Some(incarnation) => {
                        let mut result = Err(ClusterRoutingError::Fenced);
                        // Once more after a connection error: the script stamps an id once.
                        for _ in 0..2 {
                            result = buddy_chat_log::stamp(&mut conn, cluster.node_id(), incarnation, &outgoing).await;
                            if !matches!(&result, Err(e) if outbox::unanswered(e)) {
                                break;
                            }
                        }
                        result
                    }
                    None => Err(ClusterRoutingError::Fenced),
                };
                let command = match result {
                    Ok(stamp) => {
                        let BuddyOutgoing {
                            conn: who,
                            chat,
                            sender,
                            text,
                            client_id,
                            files,
                            ..
                        } = *message;
                        Command::BuddyStamped {
                            conn: who,
                            line: BuddyLine {
                                chat,
                                seq: stamp.seq,
                                p: stamp.p,
                                sender,
                                id: stamp.id,
                                at: stamp.at,
                                text,
                                client_id,
                                files,
                            },
                        }
                    }
                    Err(e) => {
                        if matches!(e, ClusterRoutingError::Fenced) && member.is_some() {
                            suspended.get_or_insert_with(tokio::time::Instant::now);
                        }
                        let (code, text) = refusal(&e);
                        Command::ClusterRefused {
                            conn: Some(message.conn),
                            who: None,
                            code,
                            message: text,
                            client_id: message.client_id,
                            call: RefusedCall::Other,
                        }
                    }
                };
                tell(&hub, command).await;
            }
            RouterCall::BuddyPublish { nodes, line } => {
                let mut published = buddy_chat_log::publish(&mut conn, &nodes, &line).await;
                if published.is_err() {
                    published = buddy_chat_log::publish(&mut conn, &nodes, &line).await;
                }
                if let Err(e) = published {
                    // The receivers find the gap at the chat's next line, their read at its
                    // end, or their read after their channel comes back.
                    tracing::warn!(error = %e, "a buddy line was not published");
                }
            }
            RouterCall::BuddyExpire { chat } => {
                if let Err(e) = buddy_chat_log::expire(&mut conn, &chat).await {
                    tracing::warn!(chat, error = %e, "a buddy chat's log was left without its expiry");
                }
            }
            RouterCall::BuddyRead { chat, after } => {
                let read = read_buddy_log(&mut conn, &chat, after).await;
                tell(&hub, Command::BuddyLogRead { chat, read }).await;
            }
            RouterCall::ConversationSeq { id, archived, asked } => {
                use crate::cluster::conversation_seq::{self, SeqError};
                use crate::hub::follow_up_line::SeqRefused;
                let drawn = match member {
                    // No second try after a connection error: a counter raised twice
                    // would leave a gap, which is worse than the agent sending it again.
                    Some(incarnation) => {
                        let customer = match asked.writer {
                            crate::hub::follow_up_line::Writer::CustomerWaiting(customer) => Some(customer.0),
                            _ => None,
                        };
                        let node = (cluster.node_id(), incarnation);
                        match conversation_seq::next(&mut conn, node, &id, archived, customer).await {
                            Ok(seq) => Ok(seq),
                            Err(SeqError::Live) => Err(SeqRefused::Live),
                            Err(SeqError::Cluster(e)) => Err(SeqRefused::Unavailable(refusal(&e).1)),
                        }
                    }
                    None => Err(SeqRefused::Unavailable(refusal(&ClusterRoutingError::Fenced).1)),
                };
                tell(&hub, Command::FollowUpSeq { id, asked, drawn }).await;
            }
            RouterCall::Fill { chat, after } => {
                test_only_fill_delay(cluster.node_id()).await;
                let read = read_log(&mut conn, chat, after).await;
                tell(&hub, Command::ChatLogRead { chat, read }).await;
            }
            RouterCall::ClosingRead { chat, after } => {
                let read = read_log(&mut conn, chat, after).await;
                tell(&hub, Command::ChatClosingLines { chat, read }).await;
            }
            RouterCall::RememberToken { key, customer, ttl } => {
                test_only_token_write_delay().await;
                tracing::debug!(key = %key, customer = customer.0, ?ttl, "recording a resume token");
                if let Err(e) = resume_tokens::remember(&mut conn, &key, customer, ttl).await {
                    tracing::warn!(error = %e, "could not record a resume token: it resumes on this node only");
                }
            }
            RouterCall::ForgetToken { key } => {
                // Not while this node is no member (fenced, suspended): see `forget`.
                if let Some(incarnation) = member {
                    let forgot = resume_tokens::forget(&mut conn, &key, cluster.node_id(), incarnation).await;
                    tracing::debug!(key = %key, ?forgot, "forgetting a resume token");
                }
            }
            RouterCall::RememberEndedVisit {
                key,
                mut visit,
                ttl,
                read_after,
                local,
            } => {
                let late = match read_after {
                    Some((chat, recorded)) => {
                        let read = read_log(&mut conn, chat, recorded).await;
                        add_late_lines(&mut visit, recorded, read)
                    }
                    None => vec![],
                };
                let visit = visit.to_string();
                if let Err(e) = resume_tokens::remember_ended(&mut conn, &key, &visit, ttl).await {
                    tracing::warn!(error = %e, "could not record an ended chat: a resume on another node will not show it");
                }
                if let Some(token) = local {
                    tell(&hub, Command::EndedVisitRead { token, late }).await;
                }
            }
            RouterCall::ReadEndings { agent } => {
                // Not while this node is no member (Redis away, fenced): the welcome then
                // tells what this node kept, and the router goes on at once with the calls
                // queued behind (a read timing out per sign-in would hold them all).
                let mut read = match member {
                    Some(_) => agent_endings::read(&mut conn, &agent.0, KEPT_PER_AGENT).await,
                    None => Ok(Vec::new()),
                };
                if matches!(&read, Err(e) if endings_asked_again(e)) {
                    read = agent_endings::read(&mut conn, &agent.0, KEPT_PER_AGENT).await;
                }
                let entries = read
                    .inspect_err(|e| {
                        tracing::warn!(agent = %agent.0, error = %e, "could not read how an agent's chats ended: their welcome tells what this node kept")
                    })
                    .unwrap_or_default();
                tell(&hub, Command::AgentEndingsRead { agent, entries }).await;
            }
            RouterCall::FindToken {
                conn: who,
                token,
                last_seq,
            } => {
                let (key, ended) = (resume_tokens::key(&token), resume_tokens::ended_key(&token));
                // The nodes record their customers' tokens again right behind their claims,
                // which a restore takes for one lease period: a token not found until a
                // period after that may be one of them.
                let settling = periods.lease * 2;
                // Only as a member: a lookup takes the ended visit it finds (see `Found::NotMember`).
                let mut found = Ok(resume_tokens::Found::NotMember);
                if let Some(incarnation) = member {
                    // Once more after a broken connection (no error code from Redis).
                    for _ in 0..2 {
                        let node = cluster.node_id();
                        found = resume_tokens::find_or_take_ended(&mut conn, &key, &ended, settling, node, incarnation)
                            .await;
                        if !found.as_ref().is_err_and(|e| e.code().is_none()) {
                            break;
                        }
                    }
                }
                // Not looked up: the connection is told and stays open; the client sends
                // `resume` again a moment later (docs/protocol.md).
                tracing::debug!(key = %key, ?found, "looked a resume token up");
                let command = match found {
                    Ok(resume_tokens::Found::Known {
                        customer,
                        ended_visit,
                        stream_at,
                    }) => Command::TokenFound {
                        conn: who,
                        token,
                        customer,
                        ended_visit,
                        last_seq,
                        stream_at,
                    },
                    Ok(resume_tokens::Found::NotMember) => refused(
                        Some(who),
                        None,
                        UNAVAILABLE,
                        "this node cannot resume now; resume again shortly".into(),
                        RefusedCall::Other,
                    ),
                    // Not "expired": it may be recorded again in a moment.
                    Ok(resume_tokens::Found::Restoring) => refused(
                        Some(who),
                        None,
                        UNAVAILABLE,
                        "the cluster is restoring its data; resume again shortly".into(),
                        RefusedCall::Other,
                    ),
                    Err(e) => refused(
                        Some(who),
                        None,
                        UNAVAILABLE,
                        format!("the cluster cannot resume now: {e}"),
                        RefusedCall::Other,
                    ),
                };
                tell(&hub, command).await;
            }
            RouterCall::Buddy {
                event,
                process,
                conn: None,
                ..
            } if keeps => {
                // A page closing, a grace expiry: kept in the outbox if Redis does not take it.
                own_events += 1;
                let once = format!("{once}:{own_events}");
                let result = match member {
                    Some(incarnation) => {
                        buddy_log::append(&mut conn, cluster.node_id(), incarnation, &event, &process, Some(&once))
                            .await
                    }
                    None => Err(ClusterRoutingError::Redis(redis::RedisError::from(
                        std::io::Error::from(std::io::ErrorKind::NotConnected),
                    ))),
                };
                match result {
                    Err(e) if outbox::unanswered(&e) => keep_own(&mut own, OwnCall::Buddy { event, process, once }),
                    Err(ClusterRoutingError::Fenced) => {
                        suspended.get_or_insert_with(tokio::time::Instant::now);
                        keep_own(&mut own, OwnCall::Buddy { event, process, once });
                    }
                    Err(e) => tracing::warn!(error = %e, "a buddy event of this node was refused"),
                    Ok(()) => {}
                }
            }
            RouterCall::Buddy {
                event,
                process,
                conn: who,
                client_id,
            } => {
                // Named, so that the retry after a broken connection is recorded once.
                own_events += 1;
                let once = format!("{once}:{own_events}");
                let result = match member {
                    Some(incarnation) => {
                        let mut result = Err(ClusterRoutingError::Fenced);
                        for _ in 0..2 {
                            result = buddy_log::append(
                                &mut conn,
                                cluster.node_id(),
                                incarnation,
                                &event,
                                &process,
                                Some(&once),
                            )
                            .await;
                            if !matches!(&result, Err(e) if outbox::unanswered(e)) {
                                break;
                            }
                        }
                        result
                    }
                    None => Err(ClusterRoutingError::Fenced),
                };
                if let Err(e) = result {
                    if matches!(e, ClusterRoutingError::Fenced) && member.is_some() {
                        suspended.get_or_insert_with(tokio::time::Instant::now);
                    }
                    let (code, message) = refusal(&e);
                    let command = Command::ClusterRefused {
                        conn: who,
                        who: None,
                        code,
                        message,
                        client_id,
                        call: RefusedCall::Other,
                    };
                    tell(&hub, command).await;
                }
            }
        }
    }
}

/// A buddy chat message on its way to be stamped (`RouterCall::BuddyStamp`).
pub(crate) struct BuddyOutgoing {
    /// The page that sent it, told the refusal or, later, acknowledged.
    pub conn: ConnId,
    /// The chat's wire id.
    pub chat: String,
    pub sender: u64,
    pub id: String,
    pub at: i64,
    pub text: String,
    pub client_id: Option<String>,
    /// The highest seq of the chat this node has.
    pub floor: u64,
    /// The files it carries (`attachments::files_json`), empty for none.
    pub files: String,
}

/// A chat message on its way to be stamped (`RouterCall::Message`).
pub(crate) struct QueuedMessage {
    pub chat: ChatId,
    pub from: Party,
    pub sender: Recipient,
    pub id: String,
    pub at: i64,
    pub text: String,
    pub client_id: Option<String>,
    /// The files it carries: their metadata as a JSON array, empty for none.
    pub files: String,
    /// How it came other than over the chat (a customer's mail).
    pub via: Option<crate::store::Via>,
}

/// Stamps `batch` in one round trip (`chat_log::append_many`) and tells the hub each
/// message's fate in order: its line, or its refusal to the sender. A connection error
/// (one idle across a Redis restart fails its first call, "broken pipe", and reconnects)
/// sends the batch once more, safely: the script stamps a message id once. True when
/// Redis answered that this node is fenced.
async fn stamp_messages(
    conn: &mut ConnectionManager,
    hub: &mpsc::WeakSender<Command>,
    node: &str,
    incarnation: u64,
    batch: Vec<QueuedMessage>,
) -> bool {
    let batch: Vec<(QueuedMessage, String)> = batch
        .into_iter()
        .filter_map(|m| {
            let sender = match &m.sender {
                Recipient::Customer(c) => c.0.to_string(),
                Recipient::Agent(a) => a.0.clone(),
                Recipient::Buddy(_) => return None,
            };
            Some((m, sender))
        })
        .collect();
    let outgoing: Vec<chat_log::Outgoing> = batch
        .iter()
        .map(|(m, sender)| chat_log::Outgoing {
            chat: m.chat,
            from: m.from,
            sender,
            id: &m.id,
            at: m.at,
            text: &m.text,
            client_id: m.client_id.as_deref(),
            files: &m.files,
            via: m.via,
        })
        .collect();
    let mut stamped = Err(ClusterRoutingError::Fenced);
    for _ in 0..2 {
        stamped = chat_log::append_many(conn, node, incarnation, &outgoing).await;
        if !matches!(&stamped, Err(e) if outbox::unanswered(e)) {
            break;
        }
    }
    drop(outgoing);
    let (stamps, failed) = match stamped {
        Ok(stamps) => (stamps, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut fenced = matches!(failed, Some(ClusterRoutingError::Fenced));
    let failed = failed.as_ref().map(refusal);
    let mut stamps = stamps.into_iter();
    let mut lines = Vec::new();
    for (m, _) in batch {
        let refused = match (stamps.next(), &failed) {
            (Some(Ok(stamp)), _) => {
                let Some((id, at)) = stamp.first else {
                    lines.push(ChatLine {
                        chat: m.chat,
                        seq: stamp.seq,
                        id: m.id,
                        at: m.at,
                        from: m.from,
                        text: m.text,
                        client_id: m.client_id,
                        files: m.files,
                        via: m.via,
                    });
                    continue;
                };
                // Sent again (after a refusal whose call Redis applied late, or by a page
                // that never saw its ack): it is the message first stamped, acknowledged
                // and archived as that one, which the hub may have recorded long since.
                let line = ChatLine {
                    chat: m.chat,
                    seq: stamp.seq,
                    id,
                    at,
                    from: m.from,
                    text: m.text,
                    client_id: m.client_id,
                    files: m.files,
                    via: m.via,
                };
                tell_lines(hub, std::mem::take(&mut lines)).await;
                tell(hub, Command::ChatSentAgain { sent: m.id, line }).await;
                continue;
            }
            (Some(Err(e)), _) => {
                fenced |= matches!(e, ClusterRoutingError::Fenced);
                refusal(&e)
            }
            (None, Some(refused)) => refused.clone(),
            (None, None) => (UNAVAILABLE, "the cluster did not answer for this message".to_string()),
        };
        // The lines before it first, so the hub hears of each message in order.
        tell_lines(hub, std::mem::take(&mut lines)).await;
        let (code, message) = refused;
        let command = Command::ClusterRefused {
            conn: None,
            who: Some(m.sender),
            code,
            message,
            // The sender matches the refusal to their message by it.
            client_id: m.client_id,
            call: RefusedCall::Other,
        };
        tell(hub, command).await;
    }
    tell_lines(hub, lines).await;
    fenced
}

/// Tells the hub of stamped messages, if any.
async fn tell_lines(hub: &mpsc::WeakSender<Command>, lines: Vec<ChatLine>) {
    if !lines.is_empty() {
        tell(hub, Command::ChatLines { lines }).await;
    }
}

/// Reads `chat`'s log after `after`: once more after a connection error (see `Message`).
/// A read that fails finds nothing: the caller goes on with what it recorded.
async fn read_log(conn: &mut ConnectionManager, chat: ChatId, after: u64) -> chat_log::LogRead {
    let mut read = chat_log::read_after(conn, chat, after).await;
    if matches!(&read, Err(e) if outbox::unanswered(e)) {
        read = chat_log::read_after(conn, chat, after).await;
    }
    read.unwrap_or_else(|e| {
        tracing::warn!(chat = chat.0, error = %e, "could not read a chat's log: going on with what is recorded");
        chat_log::LogRead::default()
    })
}

/// A buddy chat's log after `after`, tried twice when unanswered (`None`: it could not
/// be read).
async fn read_buddy_log(conn: &mut ConnectionManager, chat: &str, after: u64) -> Option<buddy_chat_log::LogRead> {
    let mut read = buddy_chat_log::read_after(conn, chat, after).await;
    if matches!(&read, Err(e) if outbox::unanswered(e)) {
        read = buddy_chat_log::read_after(conn, chat, after).await;
    }
    read.inspect_err(|e| tracing::warn!(chat, error = %e, "could not read a buddy chat's log"))
        .ok()
}

/// Adds to a kept visit's chat (`visit["resumed"]["chat"]`, recorded up to `recorded`) the
/// lines of its log after that seq, as the hub records them (`hub/service/cluster/chat.rs`):
/// in seq order, stepping over what no log holds any more (`LogRead::in_order`), the
/// newest `LOG_BOUND` kept. Returns the lines added.
fn add_late_lines(
    visit: &mut serde_json::Value,
    recorded: u64,
    read: chat_log::LogRead,
) -> Vec<crate::protocol::ChatMessage> {
    let chat = &mut visit["resumed"]["chat"];
    let Some(wire_id) = chat["chat_id"].as_str().map(str::to_owned) else {
        return vec![];
    };
    let mut transcript = Transcript::from_parts(recorded, vec![], chat_log::LOG_BOUND);
    transcript.take_read(&wire_id, read);
    let late = transcript.after(recorded);
    if let Some(messages) = chat["messages"].as_array_mut() {
        messages.extend(late.iter().filter_map(|m| serde_json::to_value(m).ok()));
        let over = messages.len().saturating_sub(chat_log::LOG_BOUND);
        messages.drain(..over);
    }
    late
}

/// Whether the router's read of an agent's endings that failed with `e` is asked once
/// more: only when the answer was lost on a connection that broke (the manager connects
/// again). A Redis that does not answer (a timeout, an I/O error too) is not asked twice:
/// every call queued behind the read would wait a second timeout.
fn endings_asked_again(e: &redis::RedisError) -> bool {
    e.is_connection_dropped()
}

/// What a routing call's caller is told of it.
fn refused_call(op: &RoutingOp) -> RefusedCall {
    match op {
        RoutingOp::Join { request, .. } => RefusedCall::Join {
            request: request.clone(),
        },
        RoutingOp::CustomerResumed(_) => RefusedCall::Resume,
        _ => RefusedCall::Other,
    }
}

/// What the router needs to settle a routing call once Redis answered its first try (or
/// did not).
struct Settle<'a> {
    redis: &'a RedisRouting,
    /// For the reads of own calls sent again (`outbox::send`).
    conn: &'a mut ConnectionManager,
    own: &'a mut OwnCalls<OwnCall>,
    /// Whether an own call (or a join whose answer was lost) may wait in the outbox.
    keeps: bool,
    /// Whether a call safe to repeat is tried again when its answer was lost.
    retry: bool,
    hub: &'a mpsc::WeakSender<Command>,
}

/// What settling a call came to.
struct Settled {
    /// Redis found this node fenced: the router suspends.
    fenced: bool,
    /// Redis did not answer it, tried again or not.
    unanswered: bool,
}

impl Settle<'_> {
    /// Tries again what is safe to, keeps a join whose answer was lost, tells the caller a
    /// refusal.
    async fn call(
        self,
        op: RoutingOp,
        who: Option<ConnId>,
        mut result: Result<Applied, ClusterRoutingError>,
    ) -> Settled {
        let redis = self.redis;
        // An agent's coming online (or back): the agent, and the call that takes it back.
        // A take-back names the sign-in it takes back (`docs/cluster.md` §13). A coming
        // back's (`agent_disconnected`) cannot undo a newer sign-in of the agent in Redis:
        // it goes before any later call of this node (tried at once, else first in the
        // outbox, and a call with a caller is refused while the outbox holds anything),
        // and no other node can take the agent while they are connected here
        // (`already_online`), unless it reaped this node, which fences the take-back and
        // empties the outbox. The grace's expiry it starts applies only under the away
        // epoch it set, which a newer sign-in's resume clears (one that crosses the expiry
        // is refused `unknown_agent`: the replica shows the agent away, so the hub asks
        // `agent_resumed`). Replayed here, it closes only the desk still held for the
        // sign-in it names (a second tab that took that sign-in's place before its refusal
        // came: `sign_ins::ends_desk`); a newer sign-in's desk stays.
        let mut coming = match &op {
            RoutingOp::AgentOnline { agent, sign_in, .. } => {
                Some((agent.clone(), RoutingOp::AgentOffline(agent.clone(), sign_in.clone())))
            }
            RoutingOp::AgentResumed(agent, sign_in) => Some((
                agent.clone(),
                RoutingOp::AgentDisconnected(agent.clone(), sign_in.clone()),
            )),
            _ => None,
        };
        // Chosen from a replica behind Redis: the agent signing in here is already
        // known there, away from the node they dropped from, whose disconnect this
        // replica had not applied yet. Redis holds the truth: they come back, here.
        // (Still connected elsewhere, they keep the `already_online` refusal.)
        if let (
            RoutingOp::AgentOnline { agent, sign_in, .. },
            Err(ClusterRoutingError::Refused(RoutingError::AlreadyOnline)),
        ) = (&op, &result)
        {
            let resumed = RoutingOp::AgentResumed(agent.clone(), sign_in.clone());
            let resumed = test_only_lost_answer(redis, &resumed, resumed.run(redis).await);
            if !matches!(resumed, Err(ClusterRoutingError::Refused(RoutingError::WrongState))) {
                coming = Some((
                    agent.clone(),
                    RoutingOp::AgentDisconnected(agent.clone(), sign_in.clone()),
                ));
                result = resumed;
            }
        }
        // An agent's coming online (or back) whose answer was lost may stand in Redis:
        // refused, the hub would close their desk and hold nobody, and they would stay
        // connected there for this node, every later sign-in refused `already_online`.
        // So it is made known: Redis's record of the agent read — held here and connected,
        // it was applied, and their welcome comes (or came) through the events stream as
        // any; otherwise it was not, and the refusal says so. When the read goes unanswered
        // too, it is taken back by the matching call (`agent_offline`, `agent_disconnected`),
        // tried at once and else kept first in the outbox (sent before anything new of this
        // node, only if the agent is still this node's and connected:
        // `outbox::still_applies`), and the hub lets go of the desk even if its welcome went
        // out meanwhile (`RefusedCall::AgentTakenBack`).
        let lost = coming.filter(|_| who.is_some() && matches!(&result, Err(e) if outbox::unanswered(e)));
        let mut call = refused_call(&op);
        let mut fenced_taking_back = false;
        if let Some((agent, take_back)) = lost {
            match test_only_lost_read(outbox::agent_held_here(self.conn, redis.node(), &agent).await).await {
                Ok(true) => {
                    tracing::info!(agent = %agent.0, "an agent's coming online whose answer was lost was applied");
                    return Settled {
                        fenced: false,
                        unanswered: false,
                    };
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(?take_back, error = %e, "an agent's coming online went unanswered: taken back");
                    keep_own(self.own, OwnCall::Op(take_back));
                    fenced_taking_back = send_own(self.own, redis, self.conn, redis.incarnation(), self.hub).await;
                    call = RefusedCall::AgentTakenBack;
                }
            }
        }
        // A join whose answer was lost may have been applied: retried with the
        // same request id, it gets the first answer and changes nothing. Setting
        // availability twice is setting it once. (A connection idle across a Redis
        // restart fails its first call and reconnects.)
        let repeatable = matches!(
            op,
            RoutingOp::Join { .. }
                | RoutingOp::SetAvailable(..)
                | RoutingOp::SetStatus(..)
                | RoutingOp::SetCategoryOpen(..)
        );
        if self.retry && repeatable && matches!(&result, Err(e) if outbox::unanswered(e)) {
            result = op.run(redis).await;
        }
        let unanswered = matches!(&result, Err(e) if outbox::unanswered(e));
        let settled = |fenced: bool| Settled {
            fenced: fenced || fenced_taking_back,
            unanswered,
        };
        // Still unanswered, the join may stand in Redis: refused, the customer
        // would join again and be paired twice, the first customer held by nobody
        // (an agent's chat with no one). They wait for the answer instead; its
        // repeat goes first when Redis answers again (the outbox).
        let op = match (op, who) {
            (op @ RoutingOp::Join { .. }, Some(conn)) if self.keeps && unanswered => {
                let since = tokio::time::Instant::now();
                match self.own.push(OwnCall::Join { op, conn, since }) {
                    Ok(()) => return settled(false),
                    Err(OwnCall::Join { op, .. }) => op,
                    Err(_) => unreachable!("the outbox gives back the call it could not keep"),
                }
            }
            (op, _) => op,
        };
        // A customer's `leave` that crossed the end of their visit (the agent ended
        // their chat, their grace ran out): the events stream tells them how it
        // ended, and this refusal would reach them first and say nothing they
        // could act on (scenario 4, seed 5: `resumed`, `leave`, `unknown_customer`).
        let left_already = matches!(
            (&op, &result),
            (
                RoutingOp::Leave(_),
                Err(ClusterRoutingError::Refused(RoutingError::UnknownCustomer))
            )
        );
        match result {
            Ok(_) | Err(ClusterRoutingError::NodeAlive) => settled(false),
            Err(_) if left_already => settled(false),
            Err(e) => {
                if who.is_none() {
                    tracing::debug!(error = %e, ?op, "a routing call without a caller was refused");
                }
                let (code, message) = refusal(&e);
                tell(self.hub, refused(who, None, code, message, call)).await;
                settled(matches!(e, ClusterRoutingError::Fenced))
            }
        }
    }
}

/// Sends the own calls kept while Redis was away (see `hub::cluster::outbox`); `true`
/// when a script answered that this node is fenced: the caller suspends the node, and its
/// next incarnation decides what becomes of the calls (`drop_own`, or sent after a
/// re-assertion).
async fn send_own(
    own: &mut OwnCalls<OwnCall>,
    redis: &RedisRouting,
    conn: &mut ConnectionManager,
    incarnation: u64,
    hub: &mpsc::WeakSender<Command>,
) -> bool {
    if test_only_own_calls_held() {
        return false;
    }
    let node = redis.node().to_string();
    let mut joins_refused = vec![];
    let sent = outbox::send(own, redis, conn, (&node, incarnation), &mut joins_refused).await;
    for RefusedJoin { conn, request, error } in joins_refused {
        let (code, message) = refusal(&error);
        tell(
            hub,
            refused(Some(conn), None, code, message, RefusedCall::Join { request }),
        )
        .await;
    }
    matches!(sent, Sent::Fenced)
}

/// Keeps an own call Redis did not take, behind the others.
fn keep_own(own: &mut OwnCalls<OwnCall>, call: OwnCall) {
    if let Err(call) = own.push(call) {
        tracing::warn!(
            ?call,
            "the outbox of this node's own calls is full: dropped one (its person stays as Redis last had them until this node's loss)"
        );
    }
}

/// This node was fenced: the reaper's `node_lost` handed its people on (a disconnect for
/// each, grace timers on the reaper), which is what the kept calls would have done.
fn drop_own(own: &mut OwnCalls<OwnCall>) {
    let dropped = own.drop_all();
    if !dropped.is_empty() {
        let ops = dropped.iter().filter(|c| !matches!(c, OwnCall::Buddy { .. })).count();
        tracing::warn!(
            routing = ops,
            buddy = dropped.len() - ops,
            "this node was fenced: its own calls kept while Redis was away are dropped (the reaper handed its people on)"
        );
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Adds `categories` to the routing domain (those it has already are refused, harmlessly).
async fn add_categories(redis: &RedisRouting, categories: &[CategoryId]) {
    for category in categories {
        match redis.add_category(category).await {
            Ok(_) | Err(ClusterRoutingError::Refused(_)) => {}
            Err(e) => tracing::warn!(error = %e, "could not add a category to the cluster's routing"),
        }
    }
}

/// The reaper's hook (`cluster::lease`): a dead node's people are handed to this node
/// by the `node_lost` routing script; their grace timers start here when this node's
/// replica replays it.
pub struct RoutingHandover {
    cluster: std::sync::OnceLock<Cluster>,
}

impl RoutingHandover {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// Once the cluster is started (the hook exists before it).
    pub fn attach(&self, cluster: Cluster) {
        let _ = self.cluster.set(cluster);
    }
}

#[async_trait::async_trait]
impl NodeLost for RoutingHandover {
    async fn node_lost(&self, node: &str, _incarnation: Option<u64>) -> Result<(), String> {
        let cluster = self.cluster.get().ok_or("the cluster is not started yet")?;
        let incarnation = cluster.status().incarnation.ok_or("this node holds no lease")?;
        let redis = RedisRouting::new(cluster.conn(), cluster.node_id(), incarnation);
        match redis.node_lost(node).await {
            Ok(applied) => {
                tracing::warn!(
                    dead = node,
                    handed_over = applied.decisions.len(),
                    "took over a dead node's people: their grace period runs here"
                );
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// TEST ONLY (read in debug builds alone; a release build never looks at it):
/// `SWITCHBOARD_TEST_ROUTER_BUFFER` sets how many calls the router's queue holds instead
/// of [`ROUTER_BUFFER`], so a test can have a node hold more chats than it.
fn test_only_router_buffer() -> Option<usize> {
    crate::test_hooks::number::<usize>("SWITCHBOARD_TEST_ROUTER_BUFFER").filter(|n| *n > 0)
}

/// TEST ONLY (read in debug builds alone; a release build never looks at it):
/// `SWITCHBOARD_TEST_TOKEN_WRITE_DELAY_MS` holds back every separate resume-token write
/// of this link by that long, so a test can kill a node between a `welcome` and a token
/// write that would follow it (a join's token is written by the join's own
/// script, so such a kill must not lose it).
async fn test_only_token_write_delay() {
    crate::test_hooks::pause("SWITCHBOARD_TEST_TOKEN_WRITE_DELAY_MS").await;
}

/// TEST ONLY (read in debug builds alone; a release build never looks at it):
/// `SWITCHBOARD_TEST_FILL_DELAY=<node id>:<ms>` makes that node's reads of a chat's log
/// (`RouterCall::Fill`) take `ms` longer, as on a loaded machine, so a test can end the
/// chat while a read is out.
async fn test_only_fill_delay(node: &str) {
    let words = crate::test_hooks::for_node("SWITCHBOARD_TEST_FILL_DELAY", node);
    if let Some(ms) = words.as_ref().and_then(|w| w.first()?.parse::<u64>().ok()) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// TEST ONLY (read in debug builds alone; a release build never looks at it):
/// `SWITCHBOARD_TEST_LOST_ANSWER=<node id>:<RoutingOp variant>[:read]` (e.g.
/// `node0:AgentOnline`) loses the answer of that node's first such routing call Redis
/// applied, as a timeout on a loaded machine does: the router sees its connection time
/// out, while the transition stands in Redis and in the events stream. With `:read`, the
/// read of the agent's record that follows goes unanswered too, and Redis answers none of
/// the node's own calls kept meanwhile (the take-back) until the hub's next call to the
/// router: it goes first, as a call waiting behind an outage does.
fn test_only_lost_answer(
    redis: &RedisRouting,
    op: &RoutingOp,
    first: Result<Applied, ClusterRoutingError>,
) -> Result<Applied, ClusterRoutingError> {
    #[cfg(debug_assertions)]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static LOST_ONE: AtomicBool = AtomicBool::new(false);
        let words = crate::test_hooks::for_node("SWITCHBOARD_TEST_LOST_ANSWER", redis.node()).unwrap_or_default();
        let variant: String = format!("{op:?}").chars().take_while(|c| c.is_alphanumeric()).collect();
        let named = words.first() == Some(&variant);
        if named && first.is_ok() && !LOST_ONE.swap(true, Ordering::SeqCst) {
            tracing::warn!(?op, "test hook: the answer of a call Redis applied is lost");
            if words.get(1).map(String::as_str) == Some("read") {
                test_hook::READ_TO_LOSE.store(true, Ordering::SeqCst);
            }
            let lost = std::io::Error::from(std::io::ErrorKind::TimedOut);
            return Err(ClusterRoutingError::Redis(lost.into()));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = (redis, op);
    first
}

/// The state of `SWITCHBOARD_TEST_LOST_ANSWER`'s `:read` (debug builds only).
#[cfg(debug_assertions)]
mod test_hook {
    use std::sync::atomic::AtomicBool;
    /// The read of an agent's record after the lost answer goes unanswered.
    pub(super) static READ_TO_LOSE: AtomicBool = AtomicBool::new(false);
    /// Redis answers none of the own calls kept until the hub's next call to the router.
    pub(super) static OWN_CALLS_HELD: AtomicBool = AtomicBool::new(false);
}

/// TEST ONLY: the read of the agent's record after a lost answer, unanswered when the hook
/// says so (and the own calls held from then on). With
/// `SWITCHBOARD_TEST_LOST_READ_GATE=<path>` too, it goes unanswered only once the file at
/// `<path>` exists (looked for every 20 ms, for a minute at most): a read timing out late,
/// while the test does what a page would meanwhile (a second tab opened).
async fn test_only_lost_read(read: Result<bool, ClusterRoutingError>) -> Result<bool, ClusterRoutingError> {
    #[cfg(debug_assertions)]
    if test_hook::READ_TO_LOSE.swap(false, std::sync::atomic::Ordering::SeqCst) {
        if let Some(gate) = crate::test_hooks::value("SWITCHBOARD_TEST_LOST_READ_GATE") {
            let until = tokio::time::Instant::now() + Duration::from_secs(60);
            while !std::path::Path::new(&gate).exists() && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tracing::warn!("test hook: the read of the agent's record goes unanswered");
        test_hook::OWN_CALLS_HELD.store(true, std::sync::atomic::Ordering::SeqCst);
        let lost = std::io::Error::from(std::io::ErrorKind::TimedOut);
        return Err(ClusterRoutingError::Redis(lost.into()));
    }
    read
}

/// TEST ONLY: whether the own calls kept are held unanswered (`test_only_lost_read`).
fn test_only_own_calls_held() -> bool {
    #[cfg(debug_assertions)]
    if test_hook::OWN_CALLS_HELD.load(std::sync::atomic::Ordering::SeqCst) {
        return true;
    }
    false
}

/// TEST ONLY: the hub made a new call: the own calls held go first.
fn test_only_release_own_calls() {
    #[cfg(debug_assertions)]
    test_hook::OWN_CALLS_HELD.store(false, std::sync::atomic::Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endings_read_is_asked_again_after_a_broken_connection_not_a_timeout() {
        let io = |kind| redis::RedisError::from(std::io::Error::from(kind));
        assert!(endings_asked_again(&io(std::io::ErrorKind::BrokenPipe)));
        assert!(endings_asked_again(&io(std::io::ErrorKind::ConnectionReset)));
        assert!(!endings_asked_again(&io(std::io::ErrorKind::TimedOut)));
    }

    fn line(seq: u64) -> chat_log::ChatLine {
        chat_log::ChatLine {
            chat: ChatId(1),
            seq,
            id: format!("m{seq}"),
            at: 1_000,
            from: crate::core::routing::Party::Customer,
            text: format!("line {seq}"),
            client_id: None,
            files: String::new(),
            via: None,
        }
    }

    /// An ended visit's late lines skip to where the log's run starts, but not while the
    /// chat's claims are still coming after Redis lost its data: a claim may still write
    /// back what the log lacks below that.
    #[test]
    fn an_ended_visits_late_lines_skip_nothing_while_claims_are_coming() {
        let late = |restoring: bool| {
            let mut visit = serde_json::json!({"resumed": {"chat": {"chat_id": "w1", "messages": []}}});
            let read = chat_log::LogRead {
                lines: vec![line(5), line(6)],
                restoring,
            };
            add_late_lines(&mut visit, 2, read);
            visit["resumed"]["chat"]["messages"].as_array().map_or(0, Vec::len)
        };
        assert_eq!(late(false), 2, "past what no log holds");
        assert_eq!(late(true), 0, "nothing skipped while restoring");
    }

    /// After the claims, with lines 1..7 and 9..24 in the log, an ended visit recorded up
    /// to 4 gets 5..7 and 9..24: only the hole (8) is skipped, not the lines below it.
    #[test]
    fn an_ended_visits_late_lines_step_over_a_hole_of_the_log() {
        let mut visit = serde_json::json!({"resumed": {"chat": {"chat_id": "w1", "messages": []}}});
        let read = chat_log::LogRead {
            lines: (5..=7).chain(9..=24).map(line).collect(),
            restoring: false,
        };
        add_late_lines(&mut visit, 4, read);
        let seqs: Vec<u64> = visit["resumed"]["chat"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["seq"].as_u64())
            .collect();
        assert_eq!(seqs, (5..=7).chain(9..=24).collect::<Vec<_>>());
    }
}
