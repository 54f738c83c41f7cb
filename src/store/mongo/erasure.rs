//! Erasure on request in MongoDB: a conversation's document, message buckets, notes and
//! rating are deleted, and its id kept in `erased_conversations`; the archive writer drops
//! any opening or note of a tombstoned id (`dropping_erased`), so an event still in a
//! node's spool, or a late writer on another node, does not bring it back. The writer's
//! memory of known conversations forgets the erased ones.

use async_trait::async_trait;
use std::collections::HashSet;

use bson::{Document, doc};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use super::{MongoStore, Named, all, page_of, unavailable};
use crate::store::{Erased, ErasureRecord, ErasureStore, Page, StoreResult};

#[derive(Serialize, Deserialize)]
struct Tombstone {
    #[serde(rename = "_id")]
    id: String,
}

const ERASED_CONVERSATIONS: Named<Tombstone> = Named::new("erased_conversations");
const ERASURE_LOG: Named<ErasureRecord> = Named::new("erasure_log");

impl MongoStore {
    /// Deletes the documents of `collection` that `filter` matches; how many.
    async fn delete_where(&self, collection: &str, filter: Document) -> StoreResult<u64> {
        let raw = self.db.collection::<Document>(collection);
        Ok(raw.delete_many(filter).await.map_err(unavailable)?.deleted_count)
    }

    /// Which of `ids` were erased on request (one query; none asked for when empty).
    pub(super) async fn erased_among(&self, ids: &[&str]) -> StoreResult<HashSet<String>> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let found = all(self.collection(ERASED_CONVERSATIONS).find(doc! {"_id": {"$in": ids}})).await?;
        Ok(found.into_iter().map(|t| t.id).collect())
    }
}

#[async_trait]
impl ErasureStore for MongoStore {
    async fn erase_conversations(&self, ids: &[String]) -> StoreResult<Erased> {
        if ids.is_empty() {
            return Ok(Erased::default());
        }
        // The tombstones first: from here on nothing of these is written again.
        for id in ids {
            self.collection(ERASED_CONVERSATIONS)
                .update_one(doc! {"_id": id}, doc! {"$setOnInsert": {"_id": id}})
                .upsert(true)
                .await
                .map_err(unavailable)?;
        }
        {
            let mut known = self.known.lock().expect("known-ids lock");
            let mut chains = self.chains.lock().expect("chains lock");
            for id in ids {
                known.remove(id);
                chains.remove(id);
            }
        }
        let raw_buckets: Collection<Document> = self.buckets.clone_with_type();
        let buckets = all(raw_buckets
            .find(doc! {"conversation_id": {"$in": ids}})
            .projection(doc! {"messages.seq": 1}))
        .await?;
        let messages: HashSet<(String, i64)> = buckets
            .iter()
            .flat_map(|b| {
                let conversation = b.get_str("conversation_id").unwrap_or_default().to_string();
                b.get_array("messages")
                    .map(|ms| {
                        ms.iter()
                            .filter_map(|m| {
                                let seq = m.as_document()?.get("seq")?;
                                seq.as_i64().or_else(|| seq.as_i32().map(i64::from))
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |seq| (conversation.clone(), seq))
            })
            .collect();
        // The reports' cache holds their agents' names and times: those days are rebuilt.
        let report_days = self.report_days_of(ids).await?;
        let erased = Erased {
            messages: messages.len() as u64,
            conversations: self
                .conversations
                .delete_many(doc! {"_id": {"$in": ids}})
                .await
                .map_err(unavailable)?
                .deleted_count,
            notes: self
                .delete_where("conversation_notes", doc! {"conversation_id": {"$in": ids}})
                .await?,
            ratings: self.delete_where("ratings", doc! {"_id": {"$in": ids}}).await?,
            offline_messages: 0,
        };
        self.delete_where("conversation_records", doc! {"_id": {"$in": ids}})
            .await?;
        raw_buckets
            .delete_many(doc! {"conversation_id": {"$in": ids}})
            .await
            .map_err(unavailable)?;
        self.forget_report_days(&report_days).await?;
        Ok(erased)
    }

    async fn erase_offline_messages_of(&self, email: &str) -> StoreResult<u64> {
        let email = email.to_lowercase();
        let offline: Collection<Document> = self.db.collection("offline_messages");
        let every = all(offline.find(doc! {}).projection(doc! {"_id": 1, "email": 1})).await?;
        let doomed: Vec<&str> = every
            .iter()
            .filter(|d| d.get_str("email").is_ok_and(|e| e.to_lowercase() == email))
            .filter_map(|d| d.get_str("_id").ok())
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        let gone = offline
            .delete_many(doc! {"_id": {"$in": doomed}})
            .await
            .map_err(unavailable)?;
        Ok(gone.deleted_count)
    }

    async fn add_erasure_record(&self, record: ErasureRecord) -> StoreResult<()> {
        self.collection(ERASURE_LOG)
            .insert_one(record)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn erasure_records(&self, page: Page) -> StoreResult<(Vec<ErasureRecord>, u64)> {
        page_of(&self.collection(ERASURE_LOG), doc! {}, doc! {"at": -1, "id": -1}, page).await
    }
}
