//! Video rooms, their guests and call logs: what is stored of them.
//!
//! A room belongs to one agent and is either for one known customer (named by an
//! E.164 phone number and/or an email address) or for any guest who knows its
//! password. Its access code is kept only as a hash, with an expiry and a version
//! that each new invitation bumps, so an old code stops working the moment a new one
//! is sent. Wrong attempts are counted per client address inside the room, so the
//! lock survives a restart and holds across nodes sharing the store.
//!
//! Rooms are updated by compare-and-set on `revision` (see [`super::RoomStore::update_room`]):
//! two wrong attempts arriving together both count. "One open room per agent" is a
//! unique key in every backend, never a check followed by an insert.

use super::{Page, StoreResult};
use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use super::Millis;

/// Whom a room is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Audience {
    /// One known customer, named by phone and/or email (a room from a chat or an
    /// appointment names neither: its customer gets a token, never a password): who
    /// joins with the password must give the phone number and the email it names.
    Customer {
        phone: Option<String>,
        email: Option<String>,
    },
    /// Anyone with the password, who gives a name and an email or phone.
    Guest,
}

/// The current access code of a room: its hash, when it stops working and which
/// invitation sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessCode {
    /// PHC string (argon2) of the 5 digits.
    pub hash: String,
    pub expires_at: Millis,
    /// 1 for the first invitation, +1 for each one after.
    pub version: u32,
}

/// The rules count wrong attempts (`core::room`, which knows no serde); a room stores
/// them as `[{address, count}]`.
pub use crate::core::room::WrongAttempts;

/// The visitor seat's reservation (`core::room`'s rules); stored as `{admission, until}`.
pub use crate::core::room::SeatHold;

mod stored_seat {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::SeatHold;

    #[derive(Serialize, Deserialize)]
    struct Stored {
        admission: String,
        until: i64,
    }

    pub fn serialize<S: Serializer>(hold: &Option<SeatHold>, to: S) -> Result<S::Ok, S::Error> {
        hold.as_ref()
            .map(|h| Stored {
                admission: h.admission.clone(),
                until: h.until,
            })
            .serialize(to)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Option<SeatHold>, D::Error> {
        Ok(Option::<Stored>::deserialize(from)?.map(|s| SeatHold {
            admission: s.admission,
            until: s.until,
        }))
    }
}

mod stored_attempts {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::WrongAttempts;

    #[derive(Serialize, Deserialize)]
    struct Stored {
        address: String,
        count: u32,
    }

    pub fn serialize<S: Serializer>(attempts: &[WrongAttempts], to: S) -> Result<S::Ok, S::Error> {
        to.collect_seq(attempts.iter().map(|a| Stored {
            address: a.address.clone(),
            count: a.count,
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Vec<WrongAttempts>, D::Error> {
        let stored = Vec::<Stored>::deserialize(from)?;
        Ok(stored
            .into_iter()
            .map(|s| WrongAttempts {
                address: s.address,
                count: s.count,
            })
            .collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomState {
    Open,
    /// For good: an ended room is never reopened; the agent creates a new one.
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// Random, unguessable (UUIDv4): it is part of the invitation link.
    pub id: String,
    pub agent_id: String,
    pub title: String,
    pub audience: Audience,
    /// PHC string (argon2) of the room's password.
    pub password_hash: String,
    pub code: Option<AccessCode>,
    #[serde(with = "stored_attempts")]
    pub wrong_attempts: Vec<WrongAttempts>,
    pub state: RoomState,
    pub created_at: Millis,
    pub ended_at: Option<Millis>,
    /// Bumped by every stored update; an update naming an older revision is refused.
    pub revision: u64,
    /// The chat this room was opened from ("video" in the agent console), if it was.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// The visitor seat's reservation by the last admission (a join), if any: updated by
    /// compare-and-set like the rest, so two joins racing on two nodes cannot both get it.
    #[serde(default, with = "stored_seat")]
    pub seat: Option<SeatHold>,
    /// No joins after this (ms): an appointment's room closes at its slot's end plus
    /// `APPOINTMENT_ROOM_GRACE_MINUTES`. `None`: open until its host ends it.
    #[serde(default)]
    pub open_until: Option<Millis>,
}

impl Room {
    /// A room that opens now, with no code and no wrong attempts yet.
    pub fn new_open(
        id: String,
        agent_id: String,
        title: String,
        audience: Audience,
        password_hash: String,
        conversation_id: Option<String>,
    ) -> Self {
        Self {
            id,
            agent_id,
            title,
            audience,
            password_hash,
            code: None,
            wrong_attempts: vec![],
            state: RoomState::Open,
            created_at: crate::clock::now_ms(),
            ended_at: None,
            revision: 0,
            conversation_id,
            seat: None,
            open_until: None,
        }
    }
}

/// Someone who joined a guest room; created on first join, reused by email, else phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guest {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub created_at: Millis,
}

/// Who the agent talked to in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallPeer {
    Customer,
    Guest,
}

/// One call in a room, as the hub observed it (plus the clients' validated reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallLog {
    pub id: String,
    pub room_id: String,
    pub agent_id: String,
    pub peer: CallPeer,
    /// The customer's or guest's name as they joined.
    pub peer_name: String,
    /// The guest record, for guest rooms.
    pub guest_id: Option<String>,
    /// The chat a call was started from, when it was.
    pub conversation_id: Option<String>,
    pub started_at: Millis,
    /// From the accepted start to the end.
    pub length_secs: u64,
    /// Seconds both sides reported a connected peer connection; never more than `length_secs`.
    pub connected_secs: u64,
    /// Seconds the customer's (guest's) camera was on; never more than `length_secs`.
    pub camera_secs: u64,
}

/// Whether `update` may replace `stored` (the rule every backend applies inside its
/// write): read at the stored revision, and not reopening an ended room.
pub(super) fn may_replace(stored: &Room, update: &Room) -> Result<(), super::StoreError> {
    if stored.revision != update.revision
        || (stored.state == RoomState::Ended && update.state == RoomState::Open)
        || stored.agent_id != update.agent_id
    {
        return Err(super::StoreError::Conflict);
    }
    Ok(())
}

/// The keys a guest is found by: `email:<address>` and `phone:<number>`, in that order.
pub(super) fn contact_keys(guest: &Guest) -> Vec<String> {
    let email = guest.email.iter().map(|e| format!("email:{}", e.to_lowercase()));
    let phone = guest.phone.iter().map(|p| format!("phone:{p}"));
    email.chain(phone).collect()
}

/// Video rooms, their guests and call logs.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Stores a new open room (its `revision` as given). `Conflict` when its agent already
    /// has an open room: a unique key of the backend decides, so two creations racing
    /// cannot both win.
    async fn create_room(&self, room: Room) -> StoreResult<()>;
    async fn room(&self, id: &str) -> StoreResult<Room>;
    /// The agent's open room, if any.
    async fn open_room_of(&self, agent_id: &str) -> StoreResult<Option<Room>>;
    /// Replaces a room read at `room.revision` and returns it as stored, at the next
    /// revision. `Conflict` when another update came first (read again and retry) or when
    /// it would reopen an ended room; `NotFound` when there is no such room. Ending a room
    /// frees its agent's open-room key.
    async fn update_room(&self, room: Room) -> StoreResult<Room>;
    /// The guest with `guest.email` (else with `guest.phone`) if there is one, with the
    /// name given now; else `guest` itself, stored. At least one of the two must be set.
    async fn guest_for(&self, guest: Guest) -> StoreResult<Guest>;
    /// Stores a call log, replacing one with the same id (a call is logged again as it goes).
    async fn save_call_log(&self, log: CallLog) -> StoreResult<()>;
    /// Call logs newest first (of one agent when given) and the total count before paging.
    async fn call_logs(&self, agent_id: Option<&str>, page: Page) -> StoreResult<(Vec<CallLog>, u64)>;
}
