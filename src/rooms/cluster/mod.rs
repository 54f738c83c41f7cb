//! Rooms across nodes; `docs/cluster.md`, section
//! "Rooms across nodes", is the design.
//!
//! Each live room has one **home**: the node whose rooms task (`rooms::live`) owns the
//! room's `core::room` state. The first member to connect claims it in Redis, atomically
//! (`{sb}:room-home:<room>` = `"<node> <incarnation>"`, by a script that takes over only
//! from a node that is no longer alive, fenced like every cluster change). A member
//! connected to another node is a **remote member**: their socket stays on their node,
//! which forwards the room frames to the home over the home's pub/sub channel
//! (`{sb}:rooms:to:<node>`); the home gives the member a local stand-in connection whose
//! frames a relay task publishes back to the member's node. So the rules (full, signalling
//! only to the other seat, call control, the call log written once) are decided in one
//! place, exactly as on one node.
//!
//! Failures: every tick (`CLUSTER_RENEW_MS`) a node checks, in one script, that the homes
//! of its remote members and the nodes of its stand-ins are alive. A dead home: its
//! members get `error` `home_lost` and a Close 4503 (the live state is gone; reconnecting
//! re-homes the room on a live node, the stored room is still open). A dead member node:
//! the home treats it as that member's disconnect (peer away, then the grace period). A
//! home that lost its claim (reaped while stalled) ends its copy of the room the same way.
//!
//! Here: the claim, connecting a member wherever the room lives, and [`Link`]; the
//! listener and the stand-ins in `relay`, the per-tick checks in `watch`, the scripts
//! and messages in `wire`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::frames::PeerView;
use super::live::{Admitted, Command, Conn, LiveView, Outbound};
use super::token::RoomClaims;
use crate::cluster::lease::{LEASES_KEY, NODES_KEY};
use crate::cluster::node::Cluster;
use crate::core::room::{Refusal, Seat};

/// How long a member's node waits for the home's answer to a connect or a view: a home
/// that does not answer within it is treated as unreachable (the member may retry).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// A home claim lives this long unless its home renews it (every tick while the room is
/// live): a claim of a room nobody is in any more expires by itself.
const CLAIM_TTL_MS: u64 = 10 * 60 * 1000;
/// Connection ids of stand-ins for remote members: above every local socket's id
/// (`AppState::next_conn` counts from 1), so the rooms task never confuses the two.
const STAND_IN_IDS: u64 = 1 << 62;
/// First and longest pause before subscribing again after the subscription failed.
const RESUBSCRIBE_START: Duration = Duration::from_millis(200);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);

mod relay;
mod watch;
mod wire;

use wire::{ALIVE, CLAIM, RENEW, Wire, call_name, script, split_node};
pub use wire::{HOME_LOST, channel, home_key};

/// Why a member could not be seated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefused {
    Room(Refusal),
    /// Redis or the home did not answer, or this node holds no lease.
    Unavailable,
    Shutdown,
}

/// A member's socket on a node that is not their room's home.
struct RemoteMember {
    out: mpsc::Sender<Outbound>,
    home: String,
    /// This node as it was when the member was seated: after a rejoin under a new
    /// incarnation the home has dropped the member's stand-in (it saw this node die).
    via: String,
}

/// A member on another node asking to be seated here.
struct RemoteJoin {
    req: u64,
    node: String,
    incarnation: u64,
    conn: u64,
}

/// The home's stand-in for a member on another node.
struct StandIn {
    id: u64,
    room: String,
    seat: Seat,
    /// The member's node as `"<node> <incarnation>"`, watched for its death.
    node: String,
}

impl StandIn {
    /// Takes the member out of its room: their socket closed, or their node died.
    async fn disconnect(self, commands: &mpsc::Sender<Command>) {
        let disconnect = Command::Disconnect {
            room: self.room,
            seat: self.seat,
            conn_id: self.id,
        };
        let _ = commands.send(disconnect).await;
    }
}

struct Inner {
    cluster: Cluster,
    commands: mpsc::Sender<Command>,
    claim: Script,
    renew: Script,
    alive: Script,
    next_req: AtomicU64,
    next_stand_in: AtomicU64,
    /// Answers awaited from other nodes, by request id.
    pending: Mutex<HashMap<u64, oneshot::Sender<Wire>>>,
    /// Member side: this node's sockets whose room lives elsewhere, by connection id.
    remote: Mutex<HashMap<u64, RemoteMember>>,
    /// Home side: stand-ins, by (member's node id, their connection id).
    stand_ins: Mutex<HashMap<(String, u64), StandIn>>,
    /// Home side: rooms whose claim this node holds (renewed while they are live).
    homed: Mutex<HashSet<String>>,
}

/// Rooms' side of the cluster. Cheap to clone.
#[derive(Clone)]
pub struct RoomsCluster(Arc<Inner>);

/// Where a connected member's frames go.
pub enum Link {
    /// The room lives on this node.
    Local {
        commands: mpsc::Sender<Command>,
        room: String,
        seat: Seat,
        conn_id: u64,
    },
    /// The room lives on `home`; frames travel over pub/sub.
    Remote {
        cluster: RoomsCluster,
        home: String,
        conn_id: u64,
    },
}

/// The frame could not be handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkDown {
    /// This node is stopping.
    Shutdown,
    /// Redis did not take it: the member is told; the connection lives on.
    Unavailable,
}

impl Link {
    pub async fn frame(&self, frame: super::frames::RoomClientFrame, text: &str) -> Result<(), LinkDown> {
        match self {
            Link::Local {
                commands,
                room,
                seat,
                conn_id,
            } => commands
                .send(Command::Frame {
                    room: room.clone(),
                    seat: *seat,
                    conn_id: *conn_id,
                    frame,
                })
                .await
                .map_err(|_| LinkDown::Shutdown),
            Link::Remote { cluster, home, conn_id } => {
                let wire = Wire::Frame {
                    from: cluster.0.cluster.node_id().to_string(),
                    conn: *conn_id,
                    text: text.to_string(),
                };
                cluster.publish(split_node(home).0, &wire).await.map_err(|e| {
                    tracing::warn!(error = %e, "a room frame could not be forwarded to the room's home");
                    LinkDown::Unavailable
                })
            }
        }
    }

    pub async fn disconnect(&self) {
        match self {
            Link::Local {
                commands,
                room,
                seat,
                conn_id,
            } => {
                let _ = commands
                    .send(Command::Disconnect {
                        room: room.clone(),
                        seat: *seat,
                        conn_id: *conn_id,
                    })
                    .await;
            }
            Link::Remote { cluster, home, conn_id } => {
                cluster.0.remote.lock().expect("not poisoned").remove(conn_id);
                let wire = Wire::Disconnect {
                    from: cluster.0.cluster.node_id().to_string(),
                    conn: *conn_id,
                };
                // A lost Disconnect is caught by the home when this node dies; while it
                // lives the home keeps the seat until the member's grace runs out anyway.
                if let Err(e) = cluster.publish(split_node(home).0, &wire).await {
                    tracing::warn!(error = %e, "a room member's disconnect could not reach the room's home");
                }
            }
        }
    }
}

fn seat_of(claims: &RoomClaims) -> Seat {
    if claims.kind == super::token::PersonKind::Agent {
        Seat::Agent
    } else {
        Seat::Visitor
    }
}

impl RoomsCluster {
    /// Starts the listener on this node's channel and the watcher of homes and members.
    pub fn start(
        cluster: Cluster,
        commands: mpsc::Sender<Command>,
        tick: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        let rooms = RoomsCluster(Arc::new(Inner {
            cluster,
            commands,
            claim: script(CLAIM),
            renew: script(RENEW),
            alive: script(ALIVE),
            next_req: AtomicU64::new(1),
            next_stand_in: AtomicU64::new(STAND_IN_IDS),
            pending: Mutex::default(),
            remote: Mutex::default(),
            stand_ins: Mutex::default(),
            homed: Mutex::default(),
        }));
        tokio::spawn(rooms.clone().listen(shutdown.clone()));
        tokio::spawn(rooms.clone().watch(tick, shutdown));
        rooms
    }

    fn me(&self) -> Option<String> {
        let incarnation = self.0.cluster.status().incarnation?;
        Some(format!("{} {incarnation}", self.0.cluster.node_id()))
    }

    async fn publish(&self, node: &str, wire: &Wire) -> redis::RedisResult<()> {
        let text = serde_json::to_string(wire).expect("room wire messages serialise");
        let mut conn = self.0.cluster.conn();
        redis::cmd("PUBLISH")
            .arg(channel(node))
            .arg(text)
            .query_async::<i64>(&mut conn)
            .await
            .map(drop)
    }

    /// The room's home, claiming it for this node when it has none alive.
    async fn claim(&self, room: &str) -> Result<String, ConnectRefused> {
        let me = self.me().ok_or(ConnectRefused::Unavailable)?;
        let (node, incarnation) = split_node(&me);
        let home: String = self
            .0
            .claim
            .key(NODES_KEY)
            .key(LEASES_KEY)
            .key(home_key(room))
            .arg(node)
            .arg(incarnation)
            .arg(CLAIM_TTL_MS)
            .invoke_async(&mut self.0.cluster.conn())
            .await
            .map_err(|e| {
                tracing::warn!(room, error = %e, "cannot claim a room's home in Redis");
                ConnectRefused::Unavailable
            })?;
        if home == me {
            self.0.homed.lock().expect("not poisoned").insert(room.to_string());
        }
        Ok(home)
    }

    /// The room's home as Redis has it now, if another node's.
    async fn other_home(&self, room: &str) -> Option<String> {
        let me = self.me()?;
        let mut conn = self.0.cluster.conn();
        let home: Option<String> = redis::cmd("GET")
            .arg(home_key(room))
            .query_async(&mut conn)
            .await
            .ok()?;
        home.filter(|h| *h != me)
    }

    async fn ask(&self, node: &str, req: u64, wire: Wire) -> Option<Wire> {
        let (reply, answer) = oneshot::channel();
        self.0.pending.lock().expect("not poisoned").insert(req, reply);
        let answered = match self.publish(node, &wire).await {
            Ok(()) => tokio::time::timeout(ANSWER_TIMEOUT, answer)
                .await
                .ok()
                .and_then(Result::ok),
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach another node about a room");
                None
            }
        };
        self.0.pending.lock().expect("not poisoned").remove(&req);
        answered
    }

    /// Seats a member whose socket is on this node, wherever the room lives.
    pub async fn connect(
        &self,
        claims: RoomClaims,
        agent_id: String,
        conversation_id: Option<String>,
        conn: Conn,
    ) -> Result<(Admitted, Link), ConnectRefused> {
        let room = claims.room.clone();
        let home = self.claim(&room).await?;
        if Some(&home) == self.me().as_ref() {
            let seat = seat_of(&claims);
            let conn_id = conn.id;
            let admitted = local_connect(&self.0.commands, claims, agent_id, conversation_id, conn).await?;
            let link = Link::Local {
                commands: self.0.commands.clone(),
                room,
                seat,
                conn_id,
            };
            return Ok((admitted, link));
        }
        let conn_id = conn.id;
        // Registered before asking, so frames the home sends right after seating the
        // member wait in their outbox behind the welcome, as on one node.
        self.0.remote.lock().expect("not poisoned").insert(
            conn_id,
            RemoteMember {
                out: conn.out,
                home: home.clone(),
                via: self.me().unwrap_or_default(),
            },
        );
        let req = self.0.next_req.fetch_add(1, Ordering::Relaxed);
        let from_incarnation = self.0.cluster.status().incarnation.unwrap_or(0);
        let wire = Wire::Connect {
            req,
            from: self.0.cluster.node_id().to_string(),
            from_incarnation,
            conn: conn_id,
            claims,
            agent_id,
            conversation_id,
        };
        let answer = self.ask(split_node(&home).0, req, wire).await;
        let refused = |why| {
            self.0.remote.lock().expect("not poisoned").remove(&conn_id);
            Err(why)
        };
        if answer.is_none() {
            // The home may still seat the member after this node gave up waiting: tell it
            // the member is gone (after the connect, in order), so no seat is held for no one.
            let gone = Wire::Disconnect {
                from: self.0.cluster.node_id().to_string(),
                conn: conn_id,
            };
            let _ = self.publish(split_node(&home).0, &gone).await;
        }
        match answer {
            Some(Wire::Admitted { result: Ok(a), .. }) => Ok((
                Admitted {
                    seat: if a.visitor { Seat::Visitor } else { Seat::Agent },
                    peer: a.peer,
                    call: call_name(&a.call),
                },
                Link::Remote {
                    cluster: self.clone(),
                    home,
                    conn_id,
                },
            )),
            Some(Wire::Admitted { result: Err(code), .. }) => refused(ConnectRefused::Room(match code.as_str() {
                "full" => Refusal::Full,
                _ => Refusal::RoomEnded,
            })),
            _ => refused(ConnectRefused::Unavailable),
        }
    }

    /// The live state of a room, asked of its home when that is another node.
    pub async fn view(&self, room: &str) -> Option<LiveView> {
        let Some(home) = self.other_home(room).await else {
            return local_view(&self.0.commands, room).await;
        };
        let req = self.0.next_req.fetch_add(1, Ordering::Relaxed);
        let wire = Wire::View {
            req,
            from: self.0.cluster.node_id().to_string(),
            room: room.to_string(),
        };
        match self.ask(split_node(&home).0, req, wire).await {
            Some(Wire::Viewed { view: Some(v), .. }) => Some(LiveView {
                agent_present: v.agent_present,
                agent: v.agent,
                visitor: v.visitor,
                visitor_present: v.visitor_present,
                call: call_name(&v.call),
                visitor_person: v.visitor_person,
            }),
            _ => None,
        }
    }

    /// The agent ended the room: its home ends the live state.
    pub async fn ended(&self, room: &str) {
        let _ = self.0.commands.send(Command::End { room: room.to_string() }).await;
        if let Some(home) = self.other_home(room).await
            && let Err(e) = self
                .publish(split_node(&home).0, &Wire::End { room: room.to_string() })
                .await
        {
            tracing::warn!(room, error = %e, "the room's home could not be told that the room ended");
        }
    }
}

/// Seats a member in this node's rooms task.
pub async fn local_connect(
    commands: &mpsc::Sender<Command>,
    claims: RoomClaims,
    agent_id: String,
    conversation_id: Option<String>,
    conn: Conn,
) -> Result<Admitted, ConnectRefused> {
    let (reply, answer) = oneshot::channel();
    let command = Command::Connect {
        claims,
        agent_id,
        conversation_id,
        conn,
        reply,
    };
    commands.send(command).await.map_err(|_| ConnectRefused::Shutdown)?;
    match answer.await {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(r)) => Err(ConnectRefused::Room(r)),
        Err(_) => Err(ConnectRefused::Shutdown),
    }
}

/// This node's rooms task's view of a room.
pub async fn local_view(commands: &mpsc::Sender<Command>, room: &str) -> Option<LiveView> {
    let (reply, answer) = oneshot::channel();
    commands
        .send(Command::View {
            room: room.to_string(),
            reply,
        })
        .await
        .ok()?;
    answer.await.ok().flatten()
}
