//! Ratings: one per conversation (the map's key), in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl RatingStore for MemoryStore {
    async fn rate_conversation(&self, id: &str, rating: Rating) -> StoreResult<()> {
        self.with(|s| match s.ratings.entry(id.to_string()) {
            _ if s.erased.contains(id) => Err(StoreError::NotFound),
            std::collections::hash_map::Entry::Occupied(_) => Err(StoreError::Conflict),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(rating);
                Ok(())
            }
        })
    }
}
