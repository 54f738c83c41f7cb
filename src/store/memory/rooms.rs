//! Rooms, guests and call logs, in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl RoomStore for MemoryStore {
    async fn create_room(&self, room: Room) -> StoreResult<()> {
        self.with(|s| {
            if s.rooms.contains_key(&room.id) || s.open_rooms.contains_key(&room.agent_id) {
                return Err(StoreError::Conflict);
            }
            s.open_rooms.insert(room.agent_id.clone(), room.id.clone());
            s.rooms.insert(room.id.clone(), room);
            Ok(())
        })
    }

    async fn room(&self, id: &str) -> StoreResult<Room> {
        self.with(|s| found(s.rooms.get(id)))
    }

    async fn open_room_of(&self, agent_id: &str) -> StoreResult<Option<Room>> {
        self.with(|s| Ok(s.open_rooms.get(agent_id).and_then(|id| s.rooms.get(id)).cloned()))
    }

    async fn update_room(&self, mut room: Room) -> StoreResult<Room> {
        self.with(|s| {
            let stored = s.rooms.get(&room.id).ok_or(StoreError::NotFound)?;
            crate::store::rooms::may_replace(stored, &room)?;
            room.revision += 1;
            if room.state == RoomState::Ended && s.open_rooms.get(&room.agent_id) == Some(&room.id) {
                s.open_rooms.remove(&room.agent_id);
            }
            s.rooms.insert(room.id.clone(), room.clone());
            Ok(room)
        })
    }

    async fn guest_for(&self, guest: Guest) -> StoreResult<Guest> {
        self.with(|s| {
            for key in crate::store::rooms::contact_keys(&guest) {
                if let Some(found) = s
                    .guests
                    .iter_mut()
                    .find(|g| crate::store::rooms::contact_keys(g).contains(&key))
                {
                    found.name = guest.name.clone();
                    return Ok(found.clone());
                }
            }
            s.guests.push(guest.clone());
            Ok(guest)
        })
    }

    async fn save_call_log(&self, log: CallLog) -> StoreResult<()> {
        self.with(|s| {
            match s.call_logs.iter_mut().find(|l| l.id == log.id) {
                Some(slot) => *slot = log,
                None => s.call_logs.push(log),
            }
            Ok(())
        })
    }

    async fn call_logs(&self, agent_id: Option<&str>, page: Page) -> StoreResult<(Vec<CallLog>, u64)> {
        self.with(|s| {
            let hits: Vec<&CallLog> = s
                .call_logs
                .iter()
                .filter(|l| agent_id.is_none_or(|a| l.agent_id == a))
                .collect();
            Ok(newest_page(hits, |l| (l.started_at, l.id.as_str()), page))
        })
    }
}
