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
        self.with(|s| {
            s.canned
                .iter()
                .find(|r| r.id == id)
                .cloned()
                .ok_or(StoreError::NotFound)
        })
    }

    async fn create_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        self.with(|s| {
            let taken = s
                .canned
                .iter()
                .any(|r| r.id == reply.id || (r.owner_key() == reply.owner_key() && r.shortcut == reply.shortcut));
            if taken {
                return Err(StoreError::Conflict);
            }
            s.canned.push(reply);
            Ok(())
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
        self.with(|s| {
            let before = s.canned.len();
            s.canned.retain(|r| r.id != id);
            Ok(s.canned.len() != before)
        })
    }
}
