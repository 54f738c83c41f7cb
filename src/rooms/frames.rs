//! The room websocket's JSON frames (`/ws/room`), both ways; docs/protocol.md describes
//! them. Kept apart from `protocol.rs` (the chat protocol): the two share no frame.

use serde::{Deserialize, Serialize};

use super::ice::IceServer;
use super::token::PersonKind;

/// The Close code a member gets when the node holding their room's live state is gone
/// (rooms across nodes, `rooms::cluster`; also sent by a home that finds its claim gone).
pub const HOME_LOST: u16 = 4503;

/// A frame from a room member. Frames without fields are empty structs, so that
/// `deny_unknown_fields` refuses extra fields on them too (serde ignores them on unit variants).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoomClientFrame {
    /// An offer, answer or ICE candidate for the other member; relayed as it is.
    Signal {
        data: serde_json::Value,
    },
    /// Ring the other member.
    StartCall {},
    AcceptCall {},
    /// Decline a ringing call; `reason` e.g. `media_not_ready`.
    RejectCall {
        #[serde(default)]
        reason: Option<String>,
    },
    /// End the ringing or active call; both get `call_ended`.
    HangUp {},
    /// Leave the room: your seat is free, a call you were in ends, the room stays open
    /// and you may come back (with your token while it lasts). Answered by `left`, then
    /// a Close 1000.
    Leave {},
    /// The host (the agent) ends the room for everyone: both get `room_ended`. Anyone
    /// else gets `error` `not_host`.
    EndRoom {},
    /// Periodic report in an active call: peer connection connected, camera on.
    Report {
        connected: bool,
        camera: bool,
    },
    /// The member's own microphone and camera, on or off: sent when either changes and
    /// when the other member arrives or is back; relayed as `peer_media`, kept nowhere.
    Media {
        mic: bool,
        camera: bool,
    },
    Ping {},
}

/// The other member as a member sees them (also between nodes: `rooms::cluster`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    pub name: String,
    pub kind: PersonKind,
    /// Connected now (false while away within the grace period).
    pub present: bool,
    /// The visitor's admission (an opaque id, the same for the same join, never an
    /// email or phone), as the agent sees them; absent for the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<String>,
}

/// A frame to a room member.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoomServerFrame {
    RoomWelcome {
        room_id: String,
        title: String,
        name: String,
        kind: PersonKind,
        /// Perfect negotiation: the polite side yields when offers collide.
        polite: bool,
        peer: Option<PeerView>,
        /// `idle`, `ringing_in` (rung by the peer), `ringing_out` (ringing the peer), `active`.
        call: &'static str,
        /// `auto`: a meeting, whose call starts by itself while both are in it (no
        /// ringing); `ring`: a room opened from a chat, where one side rings
        /// (`start_call`) and the other accepts (`live::rings`).
        call_mode: &'static str,
        ice_servers: Vec<IceServer>,
        /// A fresh token for reconnecting (within the grace period, no code needed).
        token: String,
        token_expires_at: i64,
        /// When the room stops taking joins (an appointment's: its slot's end plus
        /// `APPOINTMENT_ROOM_GRACE_MINUTES`), ms; absent: until the host ends it.
        #[serde(skip_serializing_if = "Option::is_none")]
        open_until: Option<i64>,
    },
    /// Someone took the free seat. `changed_hands`: the visitor seat went to another
    /// admission than the one that held it last (a new join after the first left).
    PeerJoined {
        peer: PeerView,
        changed_hands: bool,
    },
    PeerAway,
    /// The same admission is back within the grace period (or connected again before its
    /// old connection was known closed). In an active call both sides set up a fresh peer
    /// connection: the call goes on.
    PeerBack,
    /// The peer left, or did not come back within the grace period; their seat is free.
    PeerLeft,
    /// You left (your `leave`): the hub closes with 1000 next; the room stays open.
    Left,
    /// You rang; waiting for the peer.
    CallRinging,
    /// The peer rings you: answer `accept_call` or `reject_call`.
    CallIncoming {
        from: String,
    },
    /// Both sides: set up the peer connection now.
    CallStarted {
        polite: bool,
    },
    /// Both sides: `by` is who ended it (`agent`, `customer`, `guest`, `system`);
    /// `reason`: `hung_up`, `rejected`, `peer_left`, `peer_gone`, `room_ended`,
    /// `shutdown`, `home_lost`.
    CallEnded {
        by: &'static str,
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    Signal {
        data: serde_json::Value,
    },
    /// The other member's microphone and camera, from their `media`.
    PeerMedia {
        mic: bool,
        camera: bool,
    },
    /// The host ended the room for everyone; the hub closes with 1000.
    RoomEnded {
        by: &'static str,
    },
    Error {
        code: &'static str,
        message: String,
    },
    Pong,
    /// The answer to a `peek` first frame (a lobby asking who is inside, without
    /// joining): the other seat's holder, if any, and whether the asker is in the room
    /// already on another connection (another tab or device). Then a Close 1000.
    RoomInside {
        peer: Option<InsideView>,
        elsewhere: bool,
    },
}

/// Who holds the other seat, as a lobby shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InsideView {
    pub name: String,
    /// Connected now (false while away within the grace period).
    pub present: bool,
}

impl RoomServerFrame {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("room frames always serialise")
    }
}
