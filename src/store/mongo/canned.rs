//! Canned replies in MongoDB: collection `canned_replies`, `_id` the reply's id, with a
//! unique index on (owner key, shortcut) — the desk's owner key is the empty string — so
//! the server refuses a shortcut taken (duplicate key) even between nodes.

use async_trait::async_trait;

use bson::doc;
use futures_util::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use serde::{Deserialize, Serialize};

use super::{MongoStore, conflict_or_unavailable, unavailable};
use crate::store::{CannedReply, CannedStore, Millis, StoreError, StoreResult};

#[derive(Serialize, Deserialize)]
struct CannedDoc {
    #[serde(rename = "_id")]
    id: String,
    owner: Option<String>,
    /// `owner`, or "" for the desk's: the unique index's first field.
    owner_key: String,
    shortcut: String,
    title: String,
    text: String,
    #[serde(default)]
    categories: Vec<String>,
    created_at: Millis,
    updated_at: Millis,
}

impl CannedDoc {
    fn of(r: CannedReply) -> Self {
        Self {
            owner_key: r.owner_key().to_string(),
            id: r.id,
            owner: r.owner,
            shortcut: r.shortcut,
            title: r.title,
            text: r.text,
            categories: r.categories,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }

    fn reply(self) -> CannedReply {
        CannedReply {
            id: self.id,
            owner: self.owner,
            shortcut: self.shortcut,
            title: self.title,
            text: self.text,
            categories: self.categories,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

impl MongoStore {
    fn canned(&self) -> Collection<CannedDoc> {
        self.db.collection("canned_replies")
    }

    pub(super) async fn create_canned_indexes(&self) -> StoreResult<()> {
        let unique = IndexModel::builder()
            .keys(doc! {"owner_key": 1, "shortcut": 1})
            .options(
                IndexOptions::builder()
                    .name("owner_shortcut_unique".to_string())
                    .unique(true)
                    .build(),
            )
            .build();
        self.canned().create_index(unique).await.map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl CannedStore for MongoStore {
    async fn canned_replies(&self, owner: Option<&str>) -> StoreResult<Vec<CannedReply>> {
        let cursor = self
            .canned()
            .find(doc! {"owner_key": owner.unwrap_or("")})
            .sort(doc! {"shortcut": 1})
            .await
            .map_err(unavailable)?;
        let docs: Vec<CannedDoc> = cursor.try_collect().await.map_err(unavailable)?;
        Ok(docs.into_iter().map(CannedDoc::reply).collect())
    }

    async fn canned_reply(&self, id: &str) -> StoreResult<CannedReply> {
        self.canned()
            .find_one(doc! {"_id": id})
            .await
            .map_err(unavailable)?
            .map(CannedDoc::reply)
            .ok_or(StoreError::NotFound)
    }

    async fn create_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        self.canned()
            .insert_one(CannedDoc::of(reply))
            .await
            .map_err(conflict_or_unavailable)?;
        Ok(())
    }

    async fn update_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        // Owner and creation time stay as stored: only the fields an edit may change are set.
        let categories: Vec<bson::Bson> = reply.categories.iter().map(|c| bson::Bson::String(c.clone())).collect();
        let result = self
            .canned()
            .update_one(
                doc! {"_id": &reply.id},
                doc! {"$set": {
                    "shortcut": &reply.shortcut,
                    "title": &reply.title,
                    "text": &reply.text,
                    "categories": categories,
                    "updated_at": reply.updated_at,
                }},
            )
            .await
            .map_err(conflict_or_unavailable)?;
        if result.matched_count == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_canned_reply(&self, id: &str) -> StoreResult<bool> {
        let result = self.canned().delete_one(doc! {"_id": id}).await.map_err(unavailable)?;
        Ok(result.deleted_count > 0)
    }
}
