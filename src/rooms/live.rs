//! The rooms task: the one owner of every room's live state (who is connected, the
//! call). It applies `core::room`'s rules to what the room sockets report and carries
//! out the decisions: frames to the members' outboxes, grace timers, call logs and the
//! room's end in the store. No locks: sockets and HTTP handlers talk to it through a
//! bounded channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::frames::{PeerView, RoomClientFrame, RoomServerFrame};
use super::token::{PersonKind, RoomClaims};
use crate::clock::now_ms;
use crate::core::room::{Call, CallEnd, Ended, LiveRoom, Refusal, Seat};
use crate::store::{CallLog, CallPeer, SharedStore};

/// Commands waiting for the rooms task, at most. Each is small and handled in
/// microseconds; a full queue makes senders wait, which slows sockets, never loses a frame.
pub const COMMANDS: usize = 4_096;
/// Frames waiting for one member's socket, at most. A call's signalling is a burst of a
/// few dozen ICE candidates; a member that lets 256 pile up is not reading and is closed.
pub const OUTBOX: usize = 256;
/// Ended rooms remembered (so a late token for one is refused at once), at most.
const ENDED_REMEMBERED: usize = 10_000;

/// What the rooms task sends a member's socket.
#[derive(Debug)]
pub enum Outbound {
    Frame(Arc<str>),
    /// Close the socket with this code and reason.
    Close(u16, &'static str),
}

/// One member's socket, as the rooms task reaches it.
#[derive(Debug, Clone)]
pub struct Conn {
    pub id: u64,
    pub out: mpsc::Sender<Outbound>,
}

/// What a member connecting gets back.
#[derive(Debug)]
pub struct Admitted {
    pub seat: Seat,
    pub peer: Option<PeerView>,
    pub call: &'static str,
}

/// The live state of a room as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LiveView {
    pub agent_present: bool,
    /// The agent's name while they hold their seat, for a lobby's "who is inside"
    /// (`ws::room`'s `peek`); not in the API's answer (the agent knows their own name).
    #[serde(skip)]
    pub agent: Option<String>,
    /// The visitor's name and whether they are connected now, if a visitor holds the seat.
    pub visitor: Option<String>,
    pub visitor_present: bool,
    /// `idle`, `ringing` or `active`.
    pub call: &'static str,
    /// The visitor seat's holder (a person id of room tokens), for the join check.
    #[serde(skip)]
    pub visitor_person: Option<String>,
}

pub enum Command {
    Connect {
        claims: RoomClaims,
        agent_id: String,
        /// The chat the room was opened from, for the call log.
        conversation_id: Option<String>,
        conn: Conn,
        reply: oneshot::Sender<Result<Admitted, Refusal>>,
    },
    Frame {
        room: String,
        seat: Seat,
        conn_id: u64,
        frame: RoomClientFrame,
    },
    Disconnect {
        room: String,
        seat: Seat,
        conn_id: u64,
    },
    GraceOver {
        room: String,
        seat: Seat,
        conn_id: u64,
    },
    /// The agent ended the room (the store says so already).
    End {
        room: String,
    },
    /// The host's `end_room`, once the store says the room ended: close it live.
    EndedInStore {
        room: String,
        /// The call the end stopped, for its log.
        ended: Option<Ended>,
    },
    View {
        room: String,
        reply: oneshot::Sender<Option<LiveView>>,
    },
    /// This node no longer holds the room's home in the cluster (`rooms::cluster`): its
    /// copy of the live room ends here (the call logged), the stored room stays open.
    Lost {
        room: String,
    },
}

/// Who holds a seat, beyond what the core knows.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    kind: PersonKind,
    guest_id: Option<String>,
    /// The connection now, or the last one while away.
    conn: Conn,
    connected: bool,
}

struct Entry {
    core: LiveRoom,
    agent_id: String,
    conversation_id: Option<String>,
    members: HashMap<Seat, Member>,
}

/// A room opened from a chat (`POST /api/chats/{id}/video`: the agent's "Video", or a
/// customer's call request) is a phone-like call: one side rings, the other accepts.
/// Every other room (the agent's own rooms, appointments) is a meeting: being in it is
/// being in the call, which starts by itself once both seats are here.
pub fn rings(conversation_id: Option<&str>) -> bool {
    conversation_id.is_some()
}

/// `call_mode` in the welcome: `ring` or `auto`.
pub fn call_mode(conversation_id: Option<&str>) -> &'static str {
    if rings(conversation_id) { "ring" } else { "auto" }
}

struct Task {
    rooms: HashMap<String, Entry>,
    /// Ended room id → when, oldest forgotten first past [`ENDED_REMEMBERED`].
    ended: HashMap<String, i64>,
    store: SharedStore,
    grace: Duration,
    commands: mpsc::Sender<Command>,
}

pub fn start(
    store: SharedStore,
    grace: Duration,
    shutdown: CancellationToken,
) -> (mpsc::Sender<Command>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel(COMMANDS);
    let mut task = Task {
        rooms: HashMap::new(),
        ended: HashMap::new(),
        store,
        grace,
        commands: tx.clone(),
    };
    let handle = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                command = rx.recv() => match command {
                    Some(c) => task.handle(c),
                    None => break,
                },
            }
        }
        task.shut_down().await;
    });
    (tx, handle)
}

fn call_name(call: &Call, seat: Seat) -> &'static str {
    match call {
        Call::Idle => "idle",
        Call::Ringing { caller } if *caller == seat => "ringing_out",
        Call::Ringing { .. } => "ringing_in",
        Call::Active(_) => "active",
    }
}

fn kind_name(kind: PersonKind) -> &'static str {
    match kind {
        PersonKind::Agent => "agent",
        PersonKind::Customer => "customer",
        PersonKind::Guest => "guest",
    }
}

fn refusal_frame(r: Refusal) -> RoomServerFrame {
    let (code, message) = match r {
        Refusal::RoomEnded => ("room_ended", "the meeting has ended"),
        Refusal::Full => ("room_full", "already two people"),
        Refusal::PeerAbsent => ("peer_absent", "the other side is not in the room"),
        Refusal::CallInProgress => ("call_in_progress", "a call is ringing or active already"),
        Refusal::NoCall => ("no_call", "there is no call"),
        Refusal::NotRinging => ("not_ringing", "nothing is ringing for you"),
        Refusal::NotInRoom => ("not_in_room", "you are not in this room"),
        Refusal::NotHost => ("not_host", "only the host can end the meeting for everyone"),
    };
    RoomServerFrame::error(code, message)
}

/// Call control in a meeting room, where nothing rings.
fn automatic_call() -> RoomServerFrame {
    RoomServerFrame::error(
        "automatic_call",
        "in this room the call runs by itself while both are in it; leave to end your part",
    )
}

impl Entry {
    fn send(&self, seat: Seat, frame: &RoomServerFrame) {
        if let Some(m) = self.members.get(&seat).filter(|m| m.connected) {
            deliver(&m.conn, Outbound::Frame(frame.encode().into()));
        }
    }

    fn both(&self, frame: &RoomServerFrame) {
        let text: Arc<str> = frame.encode().into();
        for m in self.members.values().filter(|m| m.connected) {
            deliver(&m.conn, Outbound::Frame(text.clone()));
        }
    }

    fn peer_view(&self, seat: Seat) -> Option<PeerView> {
        let m = self.members.get(&seat)?;
        Some(PeerView {
            name: m.name.clone(),
            kind: m.kind,
            present: m.connected,
            admission: (seat == Seat::Visitor)
                .then(|| self.core.holder(seat).map(|h| h.person.clone()))
                .flatten(),
        })
    }

    fn rings(&self) -> bool {
        rings(self.conversation_id.as_deref())
    }

    /// A meeting room with both seats here and no call yet: the call starts now, as if
    /// rung and accepted, and both get `call_started` (a member who has just arrived gets
    /// it right after their welcome). The agent's page offers (the impolite side), so the
    /// two never offer at once, whoever came first.
    fn start_when_both_in(&mut self, now: i64) {
        if self.rings() || self.core.call != Call::Idle {
            return;
        }
        // Refused, untouched, unless both are connected.
        if self.core.start_call(Seat::Agent).is_err() {
            return;
        }
        if self.core.accept(Seat::Visitor, now).is_err() {
            let _ = self.core.hang_up(Seat::Agent, now);
            return;
        }
        for s in [Seat::Agent, Seat::Visitor] {
            self.send(s, &RoomServerFrame::CallStarted { polite: s.polite() });
        }
    }

    fn who(&self, seat: Seat) -> &'static str {
        self.members.get(&seat).map_or("system", |m| kind_name(m.kind))
    }

    /// The call log of a call that ended, if it had been accepted.
    fn call_log(&self, ended: &Ended, room: &str) -> Option<CallLog> {
        let summary = ended.summary?;
        let visitor = self.members.get(&Seat::Visitor);
        Some(CallLog {
            id: uuid::Uuid::now_v7().to_string(),
            room_id: room.to_string(),
            agent_id: self.agent_id.clone(),
            peer: match visitor.map(|v| v.kind) {
                Some(PersonKind::Guest) => CallPeer::Guest,
                _ => CallPeer::Customer,
            },
            peer_name: visitor.map(|v| v.name.clone()).unwrap_or_default(),
            guest_id: visitor.and_then(|v| v.guest_id.clone()),
            conversation_id: self.conversation_id.clone(),
            started_at: summary.started_at,
            length_secs: (summary.length_ms / 1000) as u64,
            connected_secs: (summary.connected_ms / 1000) as u64,
            camera_secs: (summary.camera_ms / 1000) as u64,
        })
    }
}

/// Queues a frame without waiting; a member whose outbox is full is not reading and is closed.
fn deliver(conn: &Conn, out: Outbound) {
    if let Err(mpsc::error::TrySendError::Full(_)) = conn.out.try_send(out) {
        // The socket task sees the Close only after draining; dropping its sender is not
        // possible here (others hold it), so it is told through a fresh attempt later.
        tracing::info!(conn = conn.id, "room member not reading; closing");
        let out = conn.out.clone();
        tokio::spawn(async move {
            let _ = out.send(Outbound::Close(1008, "not reading")).await;
        });
    }
}

impl Task {
    fn handle(&mut self, command: Command) {
        match command {
            Command::Connect {
                claims,
                agent_id,
                conversation_id,
                conn,
                reply,
            } => {
                let _ = reply.send(self.connect(claims, agent_id, conversation_id, conn));
            }
            Command::Frame {
                room,
                seat,
                conn_id,
                frame,
            } => self.frame(&room, seat, conn_id, frame),
            Command::Disconnect { room, seat, conn_id } => self.disconnect(&room, seat, conn_id),
            Command::GraceOver { room, seat, conn_id } => self.grace_over(&room, seat, conn_id),
            Command::End { room } => self.end(&room, "agent"),
            Command::EndedInStore { room, ended } => self.close_ended(&room, "agent", ended),
            Command::Lost { room } => self.lost(&room),
            Command::View { room, reply } => {
                let view = self.rooms.get(&room).map(|e| LiveView {
                    agent_present: e.core.holder(Seat::Agent).is_some_and(|h| h.here),
                    agent: e.members.get(&Seat::Agent).map(|m| m.name.clone()),
                    visitor: e.members.get(&Seat::Visitor).map(|m| m.name.clone()),
                    visitor_present: e.core.holder(Seat::Visitor).is_some_and(|h| h.here),
                    call: match e.core.call {
                        Call::Idle => "idle",
                        Call::Ringing { .. } => "ringing",
                        Call::Active(_) => "active",
                    },
                    visitor_person: e.core.holder(Seat::Visitor).map(|h| h.person.clone()),
                });
                let _ = reply.send(view);
            }
        }
    }

    fn connect(
        &mut self,
        claims: RoomClaims,
        agent_id: String,
        conversation_id: Option<String>,
        conn: Conn,
    ) -> Result<Admitted, Refusal> {
        if self.ended.contains_key(&claims.room) {
            return Err(Refusal::RoomEnded);
        }
        let seat = if claims.kind == PersonKind::Agent {
            Seat::Agent
        } else {
            Seat::Visitor
        };
        let entry = self.rooms.entry(claims.room.clone()).or_insert_with(|| Entry {
            core: LiveRoom::new(),
            agent_id,
            conversation_id,
            members: HashMap::new(),
        });
        let seated = entry.core.join(seat, &claims.sub)?;
        let member = Member {
            name: claims.name.clone(),
            kind: claims.kind,
            guest_id: claims.guest_id.clone(),
            conn,
            connected: true,
        };
        if let Some(old) = entry.members.insert(seat, member)
            && old.connected
        {
            deliver(&old.conn, Outbound::Close(4000, "replaced by a newer connection"));
        }
        {
            // A reload can connect again before its old socket is known closed (replaced):
            // the other side hears `peer_back` all the same, to negotiate the call afresh.
            let frame = if seated.back || seated.replaced {
                RoomServerFrame::PeerBack
            } else {
                RoomServerFrame::PeerJoined {
                    peer: entry.peer_view(seat).expect("just seated"),
                    changed_hands: seated.changed_hands,
                }
            };
            entry.send(seat.other(), &frame);
        }
        // The call as the member finds it; a meeting's call that starts with their arrival
        // comes as `call_started` right after the welcome.
        let call = call_name(&entry.core.call, seat);
        entry.start_when_both_in(now_ms());
        Ok(Admitted {
            seat,
            peer: entry.peer_view(seat.other()),
            call,
        })
    }

    fn frame(&mut self, room: &str, seat: Seat, conn_id: u64, frame: RoomClientFrame) {
        let Some(entry) = self.rooms.get_mut(room) else { return };
        // A frame from a replaced connection speaks for no one.
        if entry
            .members
            .get(&seat)
            .is_none_or(|m| m.conn.id != conn_id || !m.connected)
        {
            return;
        }
        let now = now_ms();
        if !entry.rings()
            && matches!(
                frame,
                RoomClientFrame::StartCall {}
                    | RoomClientFrame::AcceptCall {}
                    | RoomClientFrame::RejectCall { .. }
                    | RoomClientFrame::HangUp {}
            )
        {
            entry.send(seat, &automatic_call());
            return;
        }
        let result: Result<Option<Ended>, Refusal> = match frame {
            RoomClientFrame::Ping {} => {
                entry.send(seat, &RoomServerFrame::Pong);
                Ok(None)
            }
            RoomClientFrame::Signal { data } => entry.core.signal(seat).map(|to| {
                entry.send(to, &RoomServerFrame::Signal { data });
                None
            }),
            RoomClientFrame::StartCall {} => entry.core.start_call(seat).map(|()| {
                entry.send(seat, &RoomServerFrame::CallRinging);
                let from = entry.members.get(&seat).map(|m| m.name.clone()).unwrap_or_default();
                entry.send(seat.other(), &RoomServerFrame::CallIncoming { from });
                None
            }),
            RoomClientFrame::AcceptCall {} => entry.core.accept(seat, now).map(|()| {
                for s in [Seat::Agent, Seat::Visitor] {
                    entry.send(s, &RoomServerFrame::CallStarted { polite: s.polite() });
                }
                None
            }),
            RoomClientFrame::RejectCall { reason } => entry.core.reject(seat, now).inspect(|_| {
                entry.both(&RoomServerFrame::CallEnded {
                    by: entry.who(seat),
                    reason: "rejected",
                    detail: reason.map(|r| r.chars().take(100).collect()),
                });
            }),
            RoomClientFrame::HangUp {} => entry.core.hang_up(seat, now).inspect(|_| {
                entry.both(&RoomServerFrame::CallEnded {
                    by: entry.who(seat),
                    reason: "hung_up",
                    detail: None,
                });
            }),
            RoomClientFrame::Report { connected, camera } => {
                entry.core.report(seat, connected, camera, now).map(|()| None)
            }
            // To the other member if they are connected; nobody to tell is no error (the
            // sender tells them again when they arrive or are back).
            RoomClientFrame::Media { mic, camera } => {
                entry.send(seat.other(), &RoomServerFrame::PeerMedia { mic, camera });
                Ok(None)
            }
            RoomClientFrame::Leave {} => {
                self.leave(room, seat, now);
                return;
            }
            RoomClientFrame::EndRoom {} => match entry.core.end_by(seat, now) {
                Ok(ended) => {
                    self.end_in_store_then_close(room, ended);
                    return;
                }
                Err(r) => Err(r),
            },
        };
        match result {
            Ok(Some(ended)) => self.log(room, &ended),
            Ok(None) => {}
            Err(r) => {
                if let Some(entry) = self.rooms.get(room) {
                    entry.send(seat, &refusal_frame(r));
                }
            }
        }
    }

    fn disconnect(&mut self, room: &str, seat: Seat, conn_id: u64) {
        let Some(entry) = self.rooms.get_mut(room) else { return };
        let Some(member) = entry.members.get_mut(&seat) else {
            return;
        };
        if member.conn.id != conn_id || !member.connected {
            return; // an older, replaced connection
        }
        member.connected = false;
        if entry.core.away(seat, now_ms()).is_ok() {
            entry.send(seat.other(), &RoomServerFrame::PeerAway);
        }
        // The visitor's reservation in the store goes with the grace period, before the
        // seat is given up here: whoever hears `peer_left` may hand the seat to the next
        // admission at once. (Were they back meanwhile, their live seat still holds it.)
        let visitor = entry
            .core
            .holder(seat)
            .filter(|_| seat == Seat::Visitor)
            .map(|h| h.person.clone());
        let (commands, grace, room, store) = (self.commands.clone(), self.grace, room.to_string(), self.store.clone());
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(person) = visitor {
                super::release_seat(&store, &room, &person).await;
            }
            let _ = commands.send(Command::GraceOver { room, seat, conn_id }).await;
        });
    }

    fn grace_over(&mut self, room: &str, seat: Seat, conn_id: u64) {
        let Some(entry) = self.rooms.get_mut(room) else { return };
        let still_away = entry
            .members
            .get(&seat)
            .is_some_and(|m| m.conn.id == conn_id && !m.connected);
        if !still_away {
            return;
        }
        let Ok(ended) = entry.core.gone(seat, now_ms()) else {
            return;
        };
        if let Some(e) = &ended
            && e.why == CallEnd::Gone(seat)
        {
            entry.send(
                seat.other(),
                &RoomServerFrame::CallEnded {
                    by: "system",
                    reason: "peer_gone",
                    detail: None,
                },
            );
        }
        entry.send(seat.other(), &RoomServerFrame::PeerLeft);
        if let Some(e) = ended {
            self.log(room, &e);
        }
        if let Some(entry) = self.rooms.get_mut(room) {
            entry.members.remove(&seat);
            if entry.members.is_empty() {
                // Nobody left in it: the live state goes; the next member starts afresh.
                self.rooms.remove(room);
            }
        }
    }

    /// `seat` leaves: their seat is free at once (the store's reservation too, before
    /// they hear `left`, so a join they make next finds it free), a call they were in
    /// ends, the other side gets `peer_left`; the room stays open.
    fn leave(&mut self, room: &str, seat: Seat, now: i64) {
        let Some(entry) = self.rooms.get_mut(room) else { return };
        let person = entry.core.holder(seat).map(|h| h.person.clone());
        let ended = match entry.core.leave(seat, now) {
            Ok(ended) => ended,
            Err(r) => return entry.send(seat, &refusal_frame(r)),
        };
        if let Some(e) = &ended {
            entry.send(
                seat.other(),
                &RoomServerFrame::CallEnded {
                    by: entry.who(seat),
                    reason: "peer_left",
                    detail: None,
                },
            );
            // Logged while the leaver is still known, for the visitor's name.
            if let Some(log) = entry.call_log(e, room) {
                self.save(log);
            }
        }
        let Some(entry) = self.rooms.get_mut(room) else { return };
        entry.send(seat.other(), &RoomServerFrame::PeerLeft);
        let leaver = entry.members.remove(&seat);
        if entry.members.is_empty() {
            self.rooms.remove(room);
        }
        let Some(leaver) = leaver else { return };
        let visitor = person.filter(|_| seat == Seat::Visitor);
        let (store, room) = (self.store.clone(), room.to_string());
        tokio::spawn(async move {
            if let Some(person) = visitor {
                super::release_seat(&store, &room, &person).await;
            }
            deliver(&leaver.conn, Outbound::Frame(RoomServerFrame::Left.encode().into()));
            deliver(&leaver.conn, Outbound::Close(1000, "you left"));
        });
    }

    /// Ends the room live: the call (logged), `room_ended` to both, their sockets closed.
    fn end(&mut self, room: &str, by: &'static str) {
        let ended = self
            .rooms
            .get_mut(room)
            .and_then(|entry| entry.core.end(now_ms()).ok().flatten());
        self.close_ended(room, by, ended);
    }

    /// Carries out a room's end that the core decided (`ended`: the call it ended).
    fn close_ended(&mut self, room: &str, by: &'static str, ended: Option<Ended>) {
        if let Some(entry) = self.rooms.remove(room) {
            if let Some(e) = &ended {
                entry.both(&RoomServerFrame::CallEnded {
                    by,
                    reason: "room_ended",
                    detail: None,
                });
                if let Some(log) = entry.call_log(e, room) {
                    self.save(log);
                }
            }
            entry.both(&RoomServerFrame::RoomEnded { by });
            for m in entry.members.values().filter(|m| m.connected) {
                deliver(&m.conn, Outbound::Close(1000, "the room ended"));
            }
        }
        if self.ended.len() >= ENDED_REMEMBERED
            && let Some(oldest) = self.ended.iter().min_by_key(|(_, at)| **at).map(|(id, _)| id.clone())
        {
            self.ended.remove(&oldest);
        }
        self.ended.insert(room.to_string(), now_ms());
    }

    /// The room's home moved to another node: this copy ends without ending the room.
    fn lost(&mut self, room: &str) {
        let Some(mut entry) = self.rooms.remove(room) else {
            return;
        };
        if let Ok(Some(ended)) = entry.core.end(now_ms()) {
            entry.both(&RoomServerFrame::CallEnded {
                by: "system",
                reason: "home_lost",
                detail: None,
            });
            if let Some(log) = entry.call_log(&ended, room) {
                self.save(log);
            }
        }
        entry.both(&RoomServerFrame::error(
            "home_lost",
            "the server holding this room's call stopped; join again to continue",
        ));
        for m in entry.members.values().filter(|m| m.connected) {
            deliver(
                &m.conn,
                Outbound::Close(super::frames::HOME_LOST, "the room's server stopped"),
            );
        }
    }

    /// The host ended the room from its socket: the stored room ends too (the agent's API
    /// does that itself).
    /// Ends the room in the store first, then live, as `DELETE /api/rooms/{id}` does:
    /// whoever is told `room_ended` and joins again at once finds the room ended, never
    /// its old seat still held (`409 seat_taken`).
    fn end_in_store_then_close(&self, room: &str, ended: Option<Ended>) {
        let (store, commands, room) = (self.store.clone(), self.commands.clone(), room.to_string());
        tokio::spawn(async move {
            if let Err(e) = super::end_stored_room(&store, &room).await {
                tracing::warn!(room, error = %e, "could not mark the room ended in the store");
            }
            let _ = commands.send(Command::EndedInStore { room, ended }).await;
        });
    }

    fn log(&self, room: &str, ended: &Ended) {
        if let Some(log) = self.rooms.get(room).and_then(|e| e.call_log(ended, room)) {
            self.save(log);
        }
    }

    fn save(&self, log: CallLog) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.save_call_log(log.clone()).await {
                tracing::error!(call = %log.id, error = %e, "a call log could not be stored");
            }
        });
    }

    /// The hub stops: calls end (logged), members are told and closed (1001).
    async fn shut_down(&mut self) {
        let now = now_ms();
        let mut logs = Vec::new();
        for (room, mut entry) in std::mem::take(&mut self.rooms) {
            if let Ok(Some(ended)) = entry.core.end(now) {
                entry.both(&RoomServerFrame::CallEnded {
                    by: "system",
                    reason: "shutdown",
                    detail: None,
                });
                logs.extend(entry.call_log(&ended, &room));
            }
            for m in entry.members.values().filter(|m| m.connected) {
                deliver(&m.conn, Outbound::Close(1001, "the hub is shutting down"));
            }
        }
        // Awaited here, not spawned: the runtime may stop right after this task.
        for log in logs {
            match tokio::time::timeout(Duration::from_secs(5), self.store.save_call_log(log.clone())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(call = %log.id, error = %e, "a call log could not be stored at shutdown"),
                Err(_) => tracing::error!(call = %log.id, "storing a call log at shutdown timed out"),
            }
        }
    }
}
