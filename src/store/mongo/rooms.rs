//! Rooms, guests and call logs in MongoDB.
//!
//! No transactions (a standalone server must work), so every rule rests on a single
//! document write the server does atomically:
//! - "one open room per agent" is the `_id` of an `open_rooms` document (the agent id):
//!   a second insert is a duplicate key. It is inserted before the room and removed
//!   when the room ends; a key left behind by a crash between the two writes names an
//!   ended (or missing) room and is cleared by the next creation — once it is older than
//!   [`IN_PROGRESS_MS`]: a younger key whose room is missing is another creation between
//!   its two writes, and taking it over let two racing creations both win.
//! - a room update is a `replace_one` filtered on the revision it was read at.
//! - a guest's email and phone are `_id`s in `guest_contacts`.

use async_trait::async_trait;

use bson::doc;
use serde::{Deserialize, Serialize};

use super::{
    MongoStore, Named, conflict_or_unavailable, ensure_indexes, index, insert_new, is_duplicate_key, newest_first, one,
    page_of, unavailable,
};
use crate::store::rooms::{contact_keys, may_replace};
use crate::store::{CallLog, Guest, Page, Room, RoomState, RoomStore, StoreError, StoreResult};

#[derive(Serialize, Deserialize)]
struct RoomDoc {
    #[serde(rename = "_id")]
    id: String,
    revision: i64,
    room: Room,
}

#[derive(Serialize, Deserialize)]
struct OpenRoomDoc {
    /// The agent id.
    #[serde(rename = "_id")]
    agent_id: String,
    room_id: String,
    /// When the key was written (ms, the writing node's clock); 0 in keys written before
    /// it was recorded, which are old by now.
    #[serde(default)]
    created_at: i64,
}

/// How long a key whose room is missing counts as a creation in progress (its second
/// write still to come) rather than a crash's leftover: far longer than two writes take,
/// with room for clocks of different nodes; an agent whose creation crashed waits this
/// long before opening a room again.
const IN_PROGRESS_MS: i64 = 60_000;

#[derive(Serialize, Deserialize)]
struct GuestDoc {
    #[serde(rename = "_id")]
    id: String,
    guest: Guest,
}

#[derive(Serialize, Deserialize)]
struct ContactDoc {
    /// `email:<address>` or `phone:<number>`.
    #[serde(rename = "_id")]
    key: String,
    guest_id: String,
}

#[derive(Serialize, Deserialize)]
struct CallLogDoc {
    #[serde(rename = "_id")]
    id: String,
    agent_id: String,
    started_at: i64,
    log: CallLog,
}

fn revision(room: &Room) -> StoreResult<i64> {
    i64::try_from(room.revision).map_err(|_| unavailable("room revision out of range"))
}

const ROOMS: Named<RoomDoc> = Named::new("rooms");
const OPEN_ROOMS: Named<OpenRoomDoc> = Named::new("open_rooms");
const GUESTS: Named<GuestDoc> = Named::new("guests");
const GUEST_CONTACTS: Named<ContactDoc> = Named::new("guest_contacts");
const CALL_LOGS: Named<CallLogDoc> = Named::new("call_logs");

impl MongoStore {
    /// The listing indexes of call logs (ascending, walked backwards; see the module comment of `mongo`).
    pub(super) async fn create_room_indexes(&self) -> StoreResult<()> {
        ensure_indexes(
            &self.collection(CALL_LOGS),
            [
                index(doc! {"agent_id": 1, "started_at": 1, "_id": 1}, "agent_started"),
                index(doc! {"started_at": 1, "_id": 1}, "started"),
            ],
        )
        .await
    }
}

#[async_trait]
impl RoomStore for MongoStore {
    async fn create_room(&self, room: Room) -> StoreResult<()> {
        let key = OpenRoomDoc {
            agent_id: room.agent_id.clone(),
            room_id: room.id.clone(),
            created_at: crate::clock::now_ms(),
        };
        if let Err(e) = self.collection(OPEN_ROOMS).insert_one(&key).await {
            if !is_duplicate_key(&e) {
                return Err(unavailable(e));
            }
            // Taken: by an open room (refused), or left behind by an interrupted end (cleared).
            let Some(held) = self
                .collection(OPEN_ROOMS)
                .find_one(doc! {"_id": &room.agent_id})
                .await
                .map_err(unavailable)?
            else {
                return Err(StoreError::Conflict);
            };
            match self.room(&held.room_id).await {
                Ok(r) if r.state == RoomState::Open => return Err(StoreError::Conflict),
                Err(StoreError::NotFound) if key.created_at - held.created_at < IN_PROGRESS_MS => {
                    return Err(StoreError::Conflict);
                }
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
            self.collection(OPEN_ROOMS)
                .delete_one(doc! {"_id": &room.agent_id, "room_id": &held.room_id})
                .await
                .map_err(unavailable)?;
            insert_new(&self.collection(OPEN_ROOMS), &key).await?;
        }
        let stored = RoomDoc {
            id: room.id.clone(),
            revision: revision(&room)?,
            room,
        };
        if let Err(e) = self.collection(ROOMS).insert_one(&stored).await {
            // Give the agent's key back, or they could never open a room.
            let _ = self
                .collection(OPEN_ROOMS)
                .delete_one(doc! {"_id": &stored.room.agent_id, "room_id": &stored.id})
                .await;
            return Err(conflict_or_unavailable(e));
        }
        Ok(())
    }

    async fn room(&self, id: &str) -> StoreResult<Room> {
        Ok(one(self.collection(ROOMS).find_one(doc! {"_id": id})).await?.room)
    }

    async fn open_room_of(&self, agent_id: &str) -> StoreResult<Option<Room>> {
        let Some(held) = self
            .collection(OPEN_ROOMS)
            .find_one(doc! {"_id": agent_id})
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        match self.room(&held.room_id).await {
            Ok(room) if room.state == RoomState::Open => Ok(Some(room)),
            Ok(_) | Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn update_room(&self, mut room: Room) -> StoreResult<Room> {
        let stored = self.room(&room.id).await?;
        may_replace(&stored, &room)?;
        let read_at = revision(&room)?;
        room.revision += 1;
        let replacement = RoomDoc {
            id: room.id.clone(),
            revision: revision(&room)?,
            room: room.clone(),
        };
        let result = self
            .collection(ROOMS)
            .replace_one(doc! {"_id": &room.id, "revision": read_at}, &replacement)
            .await
            .map_err(unavailable)?;
        if result.matched_count == 0 {
            return Err(StoreError::Conflict); // another update came first
        }
        if room.state == RoomState::Ended {
            self.collection(OPEN_ROOMS)
                .delete_one(doc! {"_id": &room.agent_id, "room_id": &room.id})
                .await
                .map_err(unavailable)?;
        }
        Ok(room)
    }

    async fn guest_for(&self, guest: Guest) -> StoreResult<Guest> {
        let keys = contact_keys(&guest);
        for _ in 0..3 {
            for key in &keys {
                if let Some(contact) = self
                    .collection(GUEST_CONTACTS)
                    .find_one(doc! {"_id": key})
                    .await
                    .map_err(unavailable)?
                    && let Some(mut found) = self
                        .collection(GUESTS)
                        .find_one(doc! {"_id": &contact.guest_id})
                        .await
                        .map_err(unavailable)?
                {
                    found.guest.name = guest.name.clone();
                    self.collection(GUESTS)
                        .replace_one(doc! {"_id": &found.id}, &found)
                        .await
                        .map_err(unavailable)?;
                    return Ok(found.guest);
                }
            }
            // The guest record first, then its contact keys: a key never names a missing guest.
            let stored = GuestDoc {
                id: guest.id.clone(),
                guest: guest.clone(),
            };
            match self.collection(GUESTS).insert_one(&stored).await {
                Ok(_) => {}
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(unavailable(e)),
            }
            let mut raced = false;
            for key in &keys {
                let contact = ContactDoc {
                    key: key.clone(),
                    guest_id: guest.id.clone(),
                };
                match self.collection(GUEST_CONTACTS).insert_one(&contact).await {
                    Ok(_) => {}
                    Err(e) if is_duplicate_key(&e) => raced = true,
                    Err(e) => return Err(unavailable(e)),
                }
            }
            if !raced {
                return Ok(guest);
            }
            // Someone else registered one of these contacts meanwhile: use theirs.
        }
        Err(StoreError::Conflict)
    }

    async fn save_call_log(&self, log: CallLog) -> StoreResult<()> {
        let stored = CallLogDoc {
            id: log.id.clone(),
            agent_id: log.agent_id.clone(),
            started_at: log.started_at,
            log,
        };
        self.collection(CALL_LOGS)
            .replace_one(doc! {"_id": &stored.id}, &stored)
            .upsert(true)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn call_logs(&self, agent_id: Option<&str>, page: Page) -> StoreResult<(Vec<CallLog>, u64)> {
        let query = match agent_id {
            Some(agent) => doc! {"agent_id": agent},
            None => doc! {},
        };
        let (docs, total) = page_of(&self.collection(CALL_LOGS), query, newest_first("started_at"), page).await?;
        Ok((docs.into_iter().map(|d| d.log).collect(), total))
    }
}
