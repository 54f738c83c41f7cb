//! Categories (in creation order) and the desk settings admins store, in MongoDB.

use async_trait::async_trait;

use super::*;

#[derive(Serialize, Deserialize)]
pub(super) struct CategoryDoc {
    #[serde(rename = "_id")]
    id: String,
    name: String,
    /// A UUIDv7 taken at creation: sorts in creation order (monotonic within a process).
    order: String,
}

#[derive(Serialize, Deserialize)]
struct DeskSettingDoc {
    #[serde(rename = "_id")]
    key: String,
    value: String,
}

const DESK_SETTINGS: Named<DeskSettingDoc> = Named::new("desk_settings");

#[async_trait]
impl DeskStore for MongoStore {
    async fn categories(&self) -> StoreResult<Vec<Category>> {
        let docs = all(self.categories.find(doc! {}).sort(doc! {"order": 1, "_id": 1})).await?;
        Ok(docs.into_iter().map(|c| Category { id: c.id, name: c.name }).collect())
    }

    async fn create_category(&self, category: Category) -> StoreResult<()> {
        let doc = CategoryDoc {
            id: category.id,
            name: category.name,
            order: uuid::Uuid::now_v7().to_string(),
        };
        insert_new(&self.categories, &doc).await
    }

    async fn rename_category(&self, id: &str, name: &str) -> StoreResult<()> {
        let result = self
            .categories
            .update_one(doc! {"_id": id}, doc! {"$set": {"name": name}})
            .await
            .map_err(unavailable)?;
        matched(result.matched_count)
    }

    async fn delete_category(&self, id: &str) -> StoreResult<()> {
        matched(delete_by_id(&self.categories, id).await?)
    }

    async fn desk_setting(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(by_id(&self.collection(DESK_SETTINGS), key).await?.map(|d| d.value))
    }

    async fn set_desk_setting(&self, key: &str, value: Option<String>) -> StoreResult<()> {
        match value {
            Some(value) => {
                self.collection(DESK_SETTINGS)
                    .replace_one(
                        doc! {"_id": key},
                        DeskSettingDoc {
                            key: key.to_string(),
                            value,
                        },
                    )
                    .upsert(true)
                    .await
                    .map_err(unavailable)?;
            }
            None => {
                delete_by_id(&self.collection(DESK_SETTINGS), key).await?;
            }
        }
        Ok(())
    }
}
