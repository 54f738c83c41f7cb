//! Canned replies, in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl CannedStore for MemoryStore {
    async fn canned_replies(&self, owner: Option<&str>) -> StoreResult<Vec<CannedReply>> {
        self.with(|s| {
            let mut out: Vec<CannedReply> = s
                .canned
                .iter()
                .filter(|r| r.owner.as_deref() == owner)
                .cloned()
                .collect();
            out.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
            Ok(out)
        })
    }

    async fn canned_reply(&self, id: &str) -> StoreResult<CannedReply> {
        self.with(|s| found(s.canned.iter().find(|r| r.id == id)))
    }

    async fn create_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        self.with(|s| {
            add_new(&mut s.canned, reply, |r, new| {
                r.id == new.id || (r.owner_key() == new.owner_key() && r.shortcut == new.shortcut)
            })
        })
    }

    async fn update_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        self.with(|s| {
            let index = s
                .canned
                .iter()
                .position(|r| r.id == reply.id)
                .ok_or(StoreError::NotFound)?;
            let stored = &s.canned[index];
            let taken = s
                .canned
                .iter()
                .any(|r| r.id != reply.id && r.owner_key() == stored.owner_key() && r.shortcut == reply.shortcut);
            if taken {
                return Err(StoreError::Conflict);
            }
            let stored = &mut s.canned[index];
            *stored = CannedReply {
                owner: stored.owner.clone(),
                created_at: stored.created_at,
                ..reply
            };
            Ok(())
        })
    }

    async fn delete_canned_reply(&self, id: &str) -> StoreResult<bool> {
        self.with(|s| Ok(remove_where(&mut s.canned, |r| r.id == id)))
    }
}
