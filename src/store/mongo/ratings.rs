//! Ratings in MongoDB: collection `ratings`, `_id` the conversation's id, so the server
//! refuses a second rating (duplicate key) atomically, even between nodes. Kept apart
//! from the conversation document, which the archive writer may not have stored yet.

use async_trait::async_trait;
use std::collections::HashMap;

use bson::doc;
use serde::{Deserialize, Serialize};

use super::{MongoStore, Named, all, conflict_or_unavailable, unavailable};
use crate::store::{Millis, Rating, RatingScale, RatingStore, StoreResult};

#[derive(Serialize, Deserialize)]
struct RatingDoc {
    /// The conversation's id.
    #[serde(rename = "_id")]
    id: String,
    score: i32,
    scale: RatingScale,
    comment: Option<String>,
    at: Millis,
}

const RATINGS: Named<RatingDoc> = Named::new("ratings");

impl RatingDoc {
    fn rating(self) -> Rating {
        Rating {
            score: self.score.clamp(0, 255) as u8,
            scale: self.scale,
            comment: self.comment,
            at: self.at,
        }
    }
}

impl MongoStore {
    /// The ratings of the conversations `ids`, by conversation id.
    pub(super) async fn ratings_of(&self, ids: &[&str]) -> StoreResult<HashMap<String, Rating>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let docs = all(self.collection(RATINGS).find(doc! {"_id": {"$in": ids}})).await?;
        Ok(docs.into_iter().map(|d| (d.id.clone(), d.rating())).collect())
    }
}

#[async_trait]
impl RatingStore for MongoStore {
    async fn rate_conversation(&self, id: &str, rating: Rating) -> StoreResult<()> {
        if !self.erased_among(&[id]).await?.is_empty() {
            return Err(crate::store::StoreError::NotFound); // erased on request
        }
        let doc = RatingDoc {
            id: id.to_string(),
            score: i32::from(rating.score),
            scale: rating.scale,
            comment: rating.comment,
            at: rating.at,
        };
        let inserted = self
            .collection(RATINGS)
            .insert_one(doc)
            .await
            .map_err(conflict_or_unavailable);
        // The reports' cache patches what was touched (see `mongo/reports.rs`): after the
        // rating is stored, and again when a retry finds it stored (the touch after the
        // first try may have failed). A rating before its conversation's opening needs
        // nothing: the opening is touched itself.
        if matches!(inserted, Ok(_) | Err(crate::store::StoreError::Conflict)) {
            self.conversations
                .update_one(doc! {"_id": id}, doc! {"$currentDate": {super::archive::TOUCHED: true}})
                .await
                .map_err(unavailable)?;
        }
        inserted.map(|_| ())
    }
}
