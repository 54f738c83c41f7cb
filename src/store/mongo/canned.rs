//! Canned replies in MongoDB: collection `canned_replies`, `_id` the reply's id, with a
//! unique index on (owner key, shortcut) — the desk's owner key is the empty string — so
//! the server refuses a shortcut taken (duplicate key) even between nodes.

use async_trait::async_trait;

use bson::doc;
use serde::{Deserialize, Serialize};

use super::{
    MongoStore, Named, all, conflict_or_unavailable, delete_by_id, ensure_indexes, insert_new, matched, one,
    unique_index,
};
use crate::store::{CannedReply, CannedStore, StoreResult};

/// A reply with its `_id`, and its owner key: the unique index's first field.
#[derive(Serialize, Deserialize)]
struct CannedDoc {
    #[serde(rename = "_id")]
    id: String,
    /// `owner`, or "" for the desk's.
    owner_key: String,
    #[serde(flatten)]
    reply: CannedReply,
}

const CANNED_REPLIES: Named<CannedDoc> = Named::new("canned_replies");

impl CannedDoc {
    fn of(reply: CannedReply) -> Self {
        Self {
            id: reply.id.clone(),
            owner_key: reply.owner_key().to_string(),
            reply,
        }
    }

    fn reply(self) -> CannedReply {
        CannedReply {
            id: self.id,
            ..self.reply
        }
    }
}

impl MongoStore {
    pub(super) async fn create_canned_indexes(&self) -> StoreResult<()> {
        let unique = unique_index(doc! {"owner_key": 1, "shortcut": 1}, "owner_shortcut_unique");
        ensure_indexes(&self.collection(CANNED_REPLIES), [unique]).await
    }
}

#[async_trait]
impl CannedStore for MongoStore {
    async fn canned_replies(&self, owner: Option<&str>) -> StoreResult<Vec<CannedReply>> {
        let canned = self.collection(CANNED_REPLIES);
        let docs = all(canned
            .find(doc! {"owner_key": owner.unwrap_or("")})
            .sort(doc! {"shortcut": 1}))
        .await?;
        Ok(docs.into_iter().map(CannedDoc::reply).collect())
    }

    async fn canned_reply(&self, id: &str) -> StoreResult<CannedReply> {
        Ok(one(self.collection(CANNED_REPLIES).find_one(doc! {"_id": id}))
            .await?
            .reply())
    }

    async fn create_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        insert_new(&self.collection(CANNED_REPLIES), &CannedDoc::of(reply)).await
    }

    async fn update_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        // Owner and creation time stay as stored: only the fields an edit may change are set.
        let categories: Vec<bson::Bson> = reply.categories.iter().map(|c| bson::Bson::String(c.clone())).collect();
        let result = self
            .collection(CANNED_REPLIES)
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
        matched(result.matched_count)
    }

    async fn delete_canned_reply(&self, id: &str) -> StoreResult<bool> {
        Ok(delete_by_id(&self.collection(CANNED_REPLIES), id).await? > 0)
    }
}
