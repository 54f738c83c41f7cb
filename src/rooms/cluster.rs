//! Rooms across nodes (issue 16 on the cluster of issue 15); `docs/cluster.md`, section
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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::Script;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::frames::{PeerView, RoomServerFrame};
use super::live::{Admitted, Command, Conn, LiveView, OUTBOX, Outbound};
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
/// The Close code a member gets when the node holding their room's live state is gone.
pub const HOME_LOST: u16 = 4503;

const NOW_MS: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function alive(id, inc)
  if redis.call('HGET', KEYS[1], id) ~= inc then return false end
  local d = redis.call('ZSCORE', KEYS[2], id)
  return d ~= false and d ~= nil and tonumber(d) >= now
end
";

/// KEYS: nodes, leases, the room's home key. ARGV: node, incarnation, claim ttl ms.
/// Fenced: a caller that is not alive changes nothing. Returns the home: the current one
/// while it is alive, else the caller (who now holds the claim).
const CLAIM: &str = "if not alive(ARGV[1], ARGV[2]) then
  return redis.error_reply('FENCED node ' .. ARGV[1] .. ' incarnation ' .. ARGV[2] .. ' is not alive')
end
local mine = ARGV[1] .. ' ' .. ARGV[2]
local cur = redis.call('GET', KEYS[3])
if cur then
  local id, inc = string.match(cur, '^(.*) (%d+)$')
  if id and alive(id, inc) then
    if cur == mine then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
    return cur
  end
end
redis.call('SET', KEYS[3], mine, 'PX', ARGV[3])
return mine";

/// KEYS: nodes, leases, then home keys. ARGV: the caller as `"<node> <incarnation>"`,
/// claim ttl ms. Renews the claims still the caller's; returns 1 (kept) or 0 (lost) each.
const RENEW: &str = "local out = {}
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out";

/// KEYS: nodes, leases. ARGV: `"<node> <incarnation>"` each. Returns 1 (alive) or 0 each.
const ALIVE: &str = "local out = {}
for i = 1, #ARGV do
  local id, inc = string.match(ARGV[i], '^(.*) (%d+)$')
  out[#out + 1] = (id and alive(id, inc)) and 1 or 0
end
return out";

fn script(body: &str) -> Script {
    Script::new(&format!("{NOW_MS}{body}"))
}

pub fn home_key(room: &str) -> String {
    format!("{{sb}}:room-home:{room}")
}

pub fn channel(node: &str) -> String {
    format!("{{sb}}:rooms:to:{node}")
}

/// A node as the claims name it: `"<node id> <incarnation>"`.
fn split_node(home: &str) -> (&str, &str) {
    home.rsplit_once(' ').unwrap_or((home, ""))
}

/// What the members' and homes' nodes tell each other, one JSON message each.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Wire {
    /// Member's node → home: seat this member (`conn` is their socket on `from`).
    Connect {
        req: u64,
        from: String,
        /// The member's node's incarnation, so the home can watch that node for its death.
        from_incarnation: u64,
        conn: u64,
        claims: RoomClaims,
        agent_id: String,
        conversation_id: Option<String>,
    },
    /// Home → member's node: the answer to `Connect`.
    Admitted {
        req: u64,
        result: Result<WireAdmitted, String>,
    },
    /// Member's node → home: a room frame the member sent (already checked for size,
    /// rate and shape on the member's node).
    Frame {
        from: String,
        conn: u64,
        text: String,
    },
    /// Member's node → home: the member's socket closed.
    Disconnect {
        from: String,
        conn: u64,
    },
    /// Home → member's node: a frame for the member, or a Close.
    Out {
        conn: u64,
        frame: Option<String>,
        close: Option<(u16, String)>,
    },
    /// Any node → home: the live state, for the join check and the agent's view.
    View {
        req: u64,
        from: String,
        room: String,
    },
    Viewed {
        req: u64,
        view: Option<WireView>,
    },
    /// Any node → home: the agent ended the room (the store says so already).
    End {
        room: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct WireAdmitted {
    visitor: bool,
    peer: Option<PeerView>,
    call: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireView {
    agent_present: bool,
    visitor: Option<String>,
    visitor_present: bool,
    call: String,
    visitor_person: Option<String>,
}

/// The call states' names are a closed set: back to the `'static` names the frames use.
fn call_name(name: &str) -> &'static str {
    match name {
        "ringing_in" => "ringing_in",
        "ringing_out" => "ringing_out",
        "ringing" => "ringing",
        "active" => "active",
        _ => "idle",
    }
}

/// The Close reasons the rooms task gives, back to `'static`.
fn close_reason(reason: &str) -> &'static str {
    match reason {
        "the room ended" => "the room ended",
        "replaced by a newer connection" => "replaced by a newer connection",
        "not reading" => "not reading",
        "the hub is shutting down" => "the hub is shutting down",
        "the room's server stopped" => "the room's server stopped",
        _ => "closed by the room's server",
    }
}

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

    // ---------- the listener ----------

    async fn listen(self, shutdown: CancellationToken) {
        let mine = channel(self.0.cluster.node_id());
        let mut pause = RESUBSCRIBE_START;
        loop {
            let subscription = tokio::time::timeout(ANSWER_TIMEOUT, async {
                let mut pubsub = self.0.cluster.client().get_async_pubsub().await?;
                pubsub.subscribe(&mine).await?;
                Ok::<_, redis::RedisError>(pubsub)
            });
            let pubsub = tokio::select! {
                _ = shutdown.cancelled() => return,
                s = subscription => s.ok(),
            };
            match pubsub {
                Some(Ok(mut pubsub)) => {
                    pause = RESUBSCRIBE_START;
                    let mut messages = pubsub.on_message();
                    loop {
                        let message = tokio::select! {
                            _ = shutdown.cancelled() => return,
                            m = messages.next() => m,
                        };
                        let Some(message) = message else { break };
                        match message
                            .get_payload::<String>()
                            .ok()
                            .and_then(|p| serde_json::from_str::<Wire>(&p).ok())
                        {
                            Some(wire) => self.received(wire).await,
                            None => tracing::warn!("ignored a malformed message on this node's rooms channel"),
                        }
                    }
                    tracing::warn!("the rooms channel subscription was cut; subscribing again");
                }
                Some(Err(e)) => tracing::warn!(error = %e, "cannot subscribe to this node's rooms channel"),
                None => tracing::warn!("subscribing to this node's rooms channel timed out"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(RESUBSCRIBE_MAX);
        }
    }

    async fn received(&self, wire: Wire) {
        match wire {
            Wire::Admitted { req, .. } | Wire::Viewed { req, .. } => {
                let waiting = self.0.pending.lock().expect("not poisoned").remove(&req);
                if let Some(reply) = waiting {
                    let _ = reply.send(wire);
                }
            }
            Wire::Out { conn, frame, close } => {
                let out = self
                    .0
                    .remote
                    .lock()
                    .expect("not poisoned")
                    .get(&conn)
                    .map(|m| m.out.clone());
                let Some(out) = out else { return };
                // Never waits: one member not reading must not hold up this node's rooms
                // channel. A full outbox closes that member, as the rooms task does.
                let full = |out: mpsc::Sender<Outbound>| {
                    tracing::info!(conn, "remote room member not reading; closing");
                    tokio::spawn(async move {
                        let _ = out.send(Outbound::Close(1008, "not reading")).await;
                    });
                };
                if let Some(text) = frame
                    && let Err(mpsc::error::TrySendError::Full(_)) = out.try_send(Outbound::Frame(text.into()))
                {
                    return full(out);
                }
                if let Some((code, reason)) = close
                    && let Err(mpsc::error::TrySendError::Full(_)) =
                        out.try_send(Outbound::Close(code, close_reason(&reason)))
                {
                    full(out);
                }
            }
            Wire::Connect {
                req,
                from,
                from_incarnation,
                conn,
                claims,
                agent_id,
                conversation_id,
            } => {
                let member = RemoteJoin {
                    req,
                    node: from,
                    incarnation: from_incarnation,
                    conn,
                };
                self.seat_remote(member, claims, agent_id, conversation_id).await;
            }
            Wire::Frame { from, conn, text } => {
                let found = self
                    .0
                    .stand_ins
                    .lock()
                    .expect("not poisoned")
                    .get(&(from, conn))
                    .map(|s| (s.id, s.room.clone(), s.seat));
                let Some((conn_id, room, seat)) = found else { return };
                // Checked on the member's node already; a frame that does not parse here
                // comes from a node of another version and is dropped.
                if let Ok(frame) = serde_json::from_str(&text) {
                    let _ = self
                        .0
                        .commands
                        .send(Command::Frame {
                            room,
                            seat,
                            conn_id,
                            frame,
                        })
                        .await;
                }
            }
            Wire::Disconnect { from, conn } => {
                let gone = self.0.stand_ins.lock().expect("not poisoned").remove(&(from, conn));
                if let Some(s) = gone {
                    let _ = self
                        .0
                        .commands
                        .send(Command::Disconnect {
                            room: s.room,
                            seat: s.seat,
                            conn_id: s.id,
                        })
                        .await;
                }
            }
            Wire::View { req, from, room } => {
                let rooms = self.clone();
                tokio::spawn(async move {
                    let view = local_view(&rooms.0.commands, &room).await.map(|v| WireView {
                        agent_present: v.agent_present,
                        visitor: v.visitor,
                        visitor_present: v.visitor_present,
                        call: v.call.to_string(),
                        visitor_person: v.visitor_person,
                    });
                    let _ = rooms.publish(&from, &Wire::Viewed { req, view }).await;
                });
            }
            Wire::End { room } => {
                let _ = self.0.commands.send(Command::End { room }).await;
            }
        }
    }

    /// Home side: a member on another node connects; they get a stand-in connection here
    /// whose frames a relay task publishes to their node, in order. The stand-in is
    /// registered and the connect queued to the rooms task before this returns, so a
    /// `frame` or `disconnect` the listener reads next comes after it, as on one node.
    async fn seat_remote(
        &self,
        member: RemoteJoin,
        claims: RoomClaims,
        agent_id: String,
        conversation_id: Option<String>,
    ) {
        let RemoteJoin {
            req,
            node,
            incarnation,
            conn: remote_conn,
        } = member;
        let id = self.0.next_stand_in.fetch_add(1, Ordering::Relaxed);
        let (out, mut outbox) = mpsc::channel::<Outbound>(OUTBOX);
        let rooms = self.clone();
        let to = node.clone();
        tokio::spawn(async move {
            while let Some(o) = outbox.recv().await {
                let wire = match o {
                    Outbound::Frame(text) => Wire::Out {
                        conn: remote_conn,
                        frame: Some(text.to_string()),
                        close: None,
                    },
                    Outbound::Close(code, reason) => Wire::Out {
                        conn: remote_conn,
                        frame: None,
                        close: Some((code, reason.to_string())),
                    },
                };
                if let Err(e) = rooms.publish(&to, &wire).await {
                    tracing::warn!(error = %e, "a room frame could not be relayed to the member's node");
                }
            }
        });
        let seat = seat_of(&claims);
        let room = claims.room.clone();
        self.0.stand_ins.lock().expect("not poisoned").insert(
            (node.clone(), remote_conn),
            StandIn {
                id,
                room: room.clone(),
                seat,
                node: format!("{node} {incarnation}"),
            },
        );
        self.0.homed.lock().expect("not poisoned").insert(room);
        let (reply, answer) = oneshot::channel();
        let command = Command::Connect {
            claims,
            agent_id,
            conversation_id,
            conn: Conn { id, out },
            reply,
        };
        if self.0.commands.send(command).await.is_err() {
            return; // this node is stopping; the member's node times out
        }
        let rooms = self.clone();
        tokio::spawn(async move {
            let result = match answer.await {
                Ok(Ok(a)) => Ok(WireAdmitted {
                    visitor: a.seat == Seat::Visitor,
                    peer: a.peer,
                    call: a.call.to_string(),
                }),
                Ok(Err(why)) => {
                    rooms
                        .0
                        .stand_ins
                        .lock()
                        .expect("not poisoned")
                        .remove(&(node.clone(), remote_conn));
                    Err(match why {
                        Refusal::Full => "full".to_string(),
                        _ => "ended".to_string(),
                    })
                }
                Err(_) => return,
            };
            if let Err(e) = rooms.publish(&node, &Wire::Admitted { req, result }).await {
                tracing::warn!(error = %e, "the answer to a remote room member could not be sent");
            }
        });
    }

    // ---------- the watcher ----------

    async fn watch(self, tick: Duration, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            if let Err(e) = self.check().await {
                tracing::warn!(error = %e, "cannot check the rooms' homes and members in Redis");
            }
        }
    }

    async fn alive(&self, nodes: &[String]) -> redis::RedisResult<Vec<bool>> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.0.alive.key(NODES_KEY);
        call.key(LEASES_KEY);
        for n in nodes {
            call.arg(n);
        }
        let answer: Vec<u8> = call.invoke_async(&mut self.0.cluster.conn()).await?;
        Ok(answer.into_iter().map(|a| a == 1).collect())
    }

    /// One tick: dead homes, dead members' nodes, claims this node lost.
    async fn check(&self) -> redis::RedisResult<()> {
        let Some(me) = self.me() else { return Ok(()) };
        // Member side: remote members whose home is dead.
        let homes: Vec<String> = {
            let remote = self.0.remote.lock().expect("not poisoned");
            let set: HashSet<&String> = remote.values().map(|m| &m.home).collect();
            set.into_iter().cloned().collect()
        };
        let dead: HashSet<String> = homes
            .iter()
            .zip(self.alive(&homes).await?)
            .filter(|(_, alive)| !alive)
            .map(|(h, _)| h.clone())
            .collect();
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
        let nodes: Vec<String> = {
            let stand_ins = self.0.stand_ins.lock().expect("not poisoned");
            let set: HashSet<&String> = stand_ins.values().map(|s| &s.node).collect();
            set.into_iter().cloned().collect()
        };
        let dead: HashSet<String> = nodes
            .iter()
            .zip(self.alive(&nodes).await?)
            .filter(|(_, alive)| !alive)
            .map(|(n, _)| n.clone())
            .collect();
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
                let _ = self
                    .0
                    .commands
                    .send(Command::Disconnect {
                        room: s.room,
                        seat: s.seat,
                        conn_id: s.id,
                    })
                    .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_split_at_their_last_space_and_names_come_back_static() {
        assert_eq!(split_node("node a 12"), ("node a", "12"));
        assert_eq!(call_name("ringing_in"), "ringing_in");
        assert_eq!(call_name("anything"), "idle");
        assert_eq!(close_reason("the room ended"), "the room ended");
        assert_eq!(home_key("r1"), "{sb}:room-home:r1");
        assert_eq!(channel("n1"), "{sb}:rooms:to:n1");
    }
}
