//! A customer's data erased on request, in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl ErasureStore for MemoryStore {
    async fn erase_conversations(&self, ids: &[String]) -> StoreResult<Erased> {
        self.with(|s| {
            let mut erased = Erased::default();
            for id in ids {
                s.erased.insert(id.clone());
                s.records.remove(id);
                erased.notes += s.notes.remove(id).map_or(0, |n| n.len() as u64);
                erased.ratings += u64::from(s.ratings.remove(id).is_some());
                if let Some(index) = s.by_id.remove(id) {
                    let gone = s.conversations.remove(index);
                    erased.conversations += 1;
                    erased.messages += gone.messages.len() as u64;
                    for i in s.by_id.values_mut() {
                        if *i > index {
                            *i -= 1;
                        }
                    }
                }
            }
            Ok(erased)
        })
    }

    async fn erase_offline_messages_of(&self, email: &str) -> StoreResult<u64> {
        let email = email.to_lowercase();
        self.with(|s| {
            let before = s.offline.len();
            s.offline.retain(|_, m| m.email.to_lowercase() != email);
            Ok((before - s.offline.len()) as u64)
        })
    }

    async fn add_erasure_record(&self, record: ErasureRecord) -> StoreResult<()> {
        self.with(|s| s.erasures.push(record));
        Ok(())
    }

    async fn erasure_records(&self, page: Page) -> StoreResult<(Vec<ErasureRecord>, u64)> {
        self.with(|s| {
            Ok(newest_page(
                s.erasures.iter().collect(),
                |r| (r.at, r.id.as_str()),
                page,
            ))
        })
    }
}
