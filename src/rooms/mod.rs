//! Rooms and 1-to-1 video: the live side of rooms.
//!
//! - [`live`]: the rooms task, sole owner of who is in which room and of each call;
//!   it applies `core::room` and sends frames to the members' sockets;
//! - [`token`]: room tokens (JWT) that open a room's websocket as one person;
//! - [`ice`]: the STUN/TURN servers browsers get, with TURN REST credentials;
//! - [`frames`]: the room websocket's JSON;
//! - [`cluster`]: with several nodes, each live room's home node and the forwarding of
//!   remote members' frames to it;
//! - [`waiting`]: appointments' customers waiting for their representative to start.
//!
//! The HTTP side (create, invite, join, end, call logs) is `http::rooms`; the socket is
//! `ws::room`; sending invitations is `mail`.

pub mod cluster;
pub mod frames;
pub mod ice;
pub mod live;
pub mod token;
pub mod waiting;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::Settings;
use crate::mail::Senders;
use crate::store::{RoomState, SharedStore, StoreError, StoreResult};

/// What handlers and sockets use of rooms. Cheap to clone.
#[derive(Clone)]
pub struct Rooms {
    pub commands: mpsc::Sender<live::Command>,
    pub tokens: Arc<token::RoomTokens>,
    pub senders: Senders,
    /// With `REDIS_URL`: rooms live on a home node each; `None` on one node.
    pub cluster: Option<cluster::RoomsCluster>,
    /// Customers waiting for their appointment's call to start.
    pub waiting: waiting::Waiting,
}

impl Rooms {
    /// Starts the rooms task; it stops when `shutdown` is cancelled, ending every call.
    pub fn start(
        settings: &Settings,
        store: SharedStore,
        cluster: Option<crate::cluster::node::Cluster>,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (commands, task) = live::start(store, settings.resume_grace, shutdown.clone());
        let cluster =
            cluster.map(|c| cluster::RoomsCluster::start(c, commands.clone(), settings.cluster.renew, shutdown));
        let rooms = Self {
            commands,
            tokens: Arc::new(token::RoomTokens::new(&settings.rooms)),
            senders: Senders::from_settings(settings),
            cluster,
            waiting: waiting::Waiting::default(),
        };
        (rooms, task)
    }

    /// Seats a member whose socket is on this node (in the room's home, wherever it is).
    pub async fn connect(
        &self,
        claims: token::RoomClaims,
        agent_id: String,
        conversation_id: Option<String>,
        conn: live::Conn,
    ) -> Result<(live::Admitted, cluster::Link), cluster::ConnectRefused> {
        if let Some(c) = &self.cluster {
            return c.connect(claims, agent_id, conversation_id, conn).await;
        }
        let link = cluster::Link::Local {
            commands: self.commands.clone(),
            room: claims.room.clone(),
            seat: if claims.kind == token::PersonKind::Agent {
                crate::core::room::Seat::Agent
            } else {
                crate::core::room::Seat::Visitor
            },
            conn_id: conn.id,
        };
        let admitted = cluster::local_connect(&self.commands, claims, agent_id, conversation_id, conn).await?;
        Ok((admitted, link))
    }

    /// The live state of a room, `None` when no one is (or was recently) in it.
    pub async fn view(&self, room: &str) -> Option<live::LiveView> {
        match &self.cluster {
            Some(c) => c.view(room).await,
            None => cluster::local_view(&self.commands, room).await,
        }
    }

    /// Reserves `room`'s visitor seat for `admission` until `until` (ms), by
    /// compare-and-set on the stored room (re-reading on conflict), so it holds across
    /// nodes: refused while another admission is in the live room (connected or within
    /// its grace period) or holds an unexpired reservation, and for an ended room.
    pub async fn reserve_seat(
        &self,
        store: &SharedStore,
        room: &str,
        admission: &str,
        until: i64,
    ) -> Result<crate::store::Room, SeatRefused> {
        for _ in 0..5 {
            let live = self.view(room).await.and_then(|v| v.visitor_person);
            let mut stored = match store.room(room).await {
                Ok(r) => r,
                Err(StoreError::NotFound) => return Err(SeatRefused::Ended),
                Err(e) => return Err(SeatRefused::Store(e)),
            };
            if stored.state == RoomState::Ended {
                return Err(SeatRefused::Ended);
            }
            crate::core::room::reserve_seat(&mut stored.seat, live.as_deref(), admission, until, now_ms())
                .map_err(|_| SeatRefused::Taken)?;
            match store.update_room(stored).await {
                Err(StoreError::Conflict) => continue,
                Ok(r) => return Ok(r),
                Err(e) => return Err(SeatRefused::Store(e)),
            }
        }
        Err(SeatRefused::Store(StoreError::Conflict))
    }

    /// Tells the live room it ended (its store record says so already).
    pub async fn ended(&self, room: &str) {
        match &self.cluster {
            Some(c) => c.ended(room).await,
            None => {
                let _ = self.commands.send(live::Command::End { room: room.to_string() }).await;
            }
        }
    }
}

/// Why a visitor seat was not reserved.
#[derive(Debug)]
pub enum SeatRefused {
    /// No such room, or it ended.
    Ended,
    /// Another admission holds the seat.
    Taken,
    Store(StoreError),
}

/// A new admission's person id: opaque and random, so no two people admitted to a
/// room share one (a second person can never pass for the first), and no address or
/// phone number reaches a token or a TURN server's logs. `kind` is `customer` or `guest`.
pub fn new_admission(kind: token::PersonKind) -> String {
    let kind = match kind {
        token::PersonKind::Agent => "agent",
        token::PersonKind::Customer => "customer",
        token::PersonKind::Guest => "guest",
    };
    format!("{kind}:{}", uuid::Uuid::new_v4().simple())
}

/// Frees `room`'s visitor seat reservation if `admission` holds it (they did not come
/// back within the grace period); retried on conflict, logged when the store fails.
pub async fn release_seat(store: &SharedStore, room: &str, admission: &str) {
    for _ in 0..5 {
        let mut stored = match store.room(room).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => return,
            Err(e) => {
                tracing::warn!(room, error = %e, "could not free the visitor seat in the store");
                return;
            }
        };
        if stored.seat.as_ref().is_none_or(|h| h.admission != admission) {
            return;
        }
        crate::core::room::release_seat(&mut stored.seat, admission);
        match store.update_room(stored).await {
            Err(StoreError::Conflict) => continue,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(room, error = %e, "could not free the visitor seat in the store");
                return;
            }
        }
    }
}

/// Marks a stored room ended (retrying when another update came first); an ended
/// room stays ended.
pub async fn end_stored_room(store: &SharedStore, room: &str) -> StoreResult<crate::store::Room> {
    for _ in 0..5 {
        let mut stored = store.room(room).await?;
        if stored.state == RoomState::Ended {
            return Ok(stored);
        }
        stored.state = RoomState::Ended;
        stored.ended_at = Some(now_ms());
        match store.update_room(stored).await {
            Err(StoreError::Conflict) => continue,
            other => return other,
        }
    }
    Err(StoreError::Conflict)
}
