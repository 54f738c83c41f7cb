//! Inbound mail keys in the in-memory store: a set (its insert says whether it was new).

use async_trait::async_trait;

use super::*;

#[async_trait]
impl InboundMailStore for MemoryStore {
    async fn inbound_seen(&self, key: &str) -> StoreResult<bool> {
        self.with(|s| Ok(s.inbound_mail.contains_key(key)))
    }

    async fn first_seen(&self, key: &str, at: Millis) -> StoreResult<bool> {
        self.with(|s| match s.inbound_mail.entry(key.to_string()) {
            std::collections::hash_map::Entry::Occupied(_) => Ok(false),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(at);
                Ok(true)
            }
        })
    }
}
