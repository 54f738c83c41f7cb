//! Rooms, guests and call logs in the embedded store: JSON values keyed by
//! id, plus the unique keys and the time index the store's rules need.

use async_trait::async_trait;

use redb::{ReadableTable, TableDefinition};

use super::{EmbeddedStore, create, decode, find, load, put, put_new_indexed, row, unavailable};
use crate::store::rooms::{contact_keys, may_replace};
use crate::store::{CallLog, Guest, Page, Room, RoomState, RoomStore, StoreResult};

/// Room id -> JSON room.
const ROOMS: TableDefinition<&str, &[u8]> = TableDefinition::new("rooms");
/// Agent id -> their open room's id: the unique key "one open room per agent".
const OPEN_ROOMS: TableDefinition<&str, &str> = TableDefinition::new("open_rooms");
/// Guest id -> JSON guest.
const GUESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("guests");
/// `email:<address>` / `phone:<number>` -> guest id.
const GUEST_CONTACTS: TableDefinition<&str, &str> = TableDefinition::new("guest_contacts");
/// Call log id -> JSON call log.
const CALL_LOGS: TableDefinition<&str, &[u8]> = TableDefinition::new("call_logs");
/// (started_at, call log id) -> (): newest first is this walked backwards.
const CALLS_BY_START: TableDefinition<(i64, &str), ()> = TableDefinition::new("call_logs_by_start");

/// Creates the tables at open, so read transactions never meet a missing one.
pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(
        tx,
        &[
            &ROOMS,
            &OPEN_ROOMS,
            &GUESTS,
            &GUEST_CONTACTS,
            &CALL_LOGS,
            &CALLS_BY_START,
        ],
    )
}

#[async_trait]
impl RoomStore for EmbeddedStore {
    async fn create_room(&self, room: Room) -> StoreResult<()> {
        self.write(move |tx| put_new_indexed(tx, ROOMS, OPEN_ROOMS, &room.id, room.agent_id.as_str(), &room))
            .await
    }

    async fn room(&self, id: &str) -> StoreResult<Room> {
        self.read(row(ROOMS, id)).await
    }

    async fn open_room_of(&self, agent_id: &str) -> StoreResult<Option<Room>> {
        let agent_id = agent_id.to_string();
        self.read(move |tx| {
            let open = tx.open_table(OPEN_ROOMS).map_err(unavailable)?;
            let Some(id) = open.get(agent_id.as_str()).map_err(unavailable)? else {
                return Ok(None);
            };
            find(&tx.open_table(ROOMS).map_err(unavailable)?, id.value())
        })
        .await
    }

    async fn update_room(&self, mut room: Room) -> StoreResult<Room> {
        self.write(move |tx| {
            let mut rooms = tx.open_table(ROOMS).map_err(unavailable)?;
            let stored: Room = load(&rooms, &room.id)?;
            may_replace(&stored, &room)?;
            room.revision += 1;
            if room.state == RoomState::Ended {
                let mut open = tx.open_table(OPEN_ROOMS).map_err(unavailable)?;
                let holds = open
                    .get(room.agent_id.as_str())
                    .map_err(unavailable)?
                    .is_some_and(|id| id.value() == room.id);
                if holds {
                    open.remove(room.agent_id.as_str()).map_err(unavailable)?;
                }
            }
            put(&mut rooms, room.id.as_str(), &room)?;
            Ok(room)
        })
        .await
    }

    async fn guest_for(&self, guest: Guest) -> StoreResult<Guest> {
        self.write(move |tx| {
            let mut guests = tx.open_table(GUESTS).map_err(unavailable)?;
            let mut contacts = tx.open_table(GUEST_CONTACTS).map_err(unavailable)?;
            let keys = contact_keys(&guest);
            let mut found = None;
            for key in &keys {
                if let Some(id) = contacts.get(key.as_str()).map_err(unavailable)? {
                    found = Some(id.value().to_string());
                    break;
                }
            }
            let stored = match found {
                Some(id) => {
                    let mut old: Guest = {
                        let guard = guests
                            .get(id.as_str())
                            .map_err(unavailable)?
                            .ok_or_else(|| unavailable("guest index out of step"))?;
                        decode(guard.value())?
                    };
                    old.name = guest.name;
                    old
                }
                None => {
                    for key in &keys {
                        contacts.insert(key.as_str(), guest.id.as_str()).map_err(unavailable)?;
                    }
                    guest
                }
            };
            put(&mut guests, stored.id.as_str(), &stored)?;
            Ok(stored)
        })
        .await
    }

    async fn save_call_log(&self, log: CallLog) -> StoreResult<()> {
        self.write(move |tx| {
            let mut logs = tx.open_table(CALL_LOGS).map_err(unavailable)?;
            let mut by_start = tx.open_table(CALLS_BY_START).map_err(unavailable)?;
            let old: Option<CallLog> = match logs.get(log.id.as_str()).map_err(unavailable)? {
                Some(guard) => Some(decode(guard.value())?),
                None => None,
            };
            if let Some(old) = old {
                by_start
                    .remove((old.started_at, old.id.as_str()))
                    .map_err(unavailable)?;
            }
            by_start
                .insert((log.started_at, log.id.as_str()), ())
                .map_err(unavailable)?;
            put(&mut logs, log.id.as_str(), &log)?;
            Ok(())
        })
        .await
    }

    async fn call_logs(&self, agent_id: Option<&str>, page: Page) -> StoreResult<(Vec<CallLog>, u64)> {
        let agent_id = agent_id.map(str::to_string);
        self.read(move |tx| {
            let logs = tx.open_table(CALL_LOGS).map_err(unavailable)?;
            let by_start = tx.open_table(CALLS_BY_START).map_err(unavailable)?;
            let mut total = 0u64;
            let mut out = Vec::new();
            for row in by_start.iter().map_err(unavailable)?.rev() {
                let (key, _) = row.map_err(unavailable)?;
                let id = key.value().1;
                let in_page = total >= page.offset && (out.len() as u64) < page.limit;
                if agent_id.is_none() && !in_page {
                    total += 1;
                    continue;
                }
                let guard = logs
                    .get(id)
                    .map_err(unavailable)?
                    .ok_or_else(|| unavailable("call log index out of step"))?;
                let log: CallLog = decode(guard.value())?;
                if agent_id.as_ref().is_some_and(|a| *a != log.agent_id) {
                    continue;
                }
                if in_page {
                    out.push(log);
                }
                total += 1;
            }
            Ok((out, total))
        })
        .await
    }
}
