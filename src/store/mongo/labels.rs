//! Labels in MongoDB: collection `labels`, `_id` the label's id (the server refuses an id
//! taken, even between nodes).

use async_trait::async_trait;

use bson::doc;

use super::{MongoStore, Named, all, delete_by_id, insert_new, matched, unavailable};
use crate::store::{Label, LabelStore, StoreResult, labels};

const LABELS: Named<Label> = Named::new("labels");

#[async_trait]
impl LabelStore for MongoStore {
    async fn labels(&self) -> StoreResult<Vec<Label>> {
        let mut out = all(self.collection(LABELS).find(doc! {})).await?;
        out.sort_by(labels::by_name);
        Ok(out)
    }

    async fn create_label(&self, label: Label) -> StoreResult<()> {
        insert_new(&self.collection(LABELS), &label).await
    }

    async fn update_label(&self, label: Label) -> StoreResult<()> {
        let result = self
            .collection(LABELS)
            .update_one(
                doc! {"_id": &label.id},
                doc! {"$set": {"name": &label.name, "colour": &label.colour}},
            )
            .await
            .map_err(unavailable)?;
        matched(result.matched_count)
    }

    async fn delete_label(&self, id: &str) -> StoreResult<()> {
        matched(delete_by_id(&self.collection(LABELS), id).await?)
    }
}
