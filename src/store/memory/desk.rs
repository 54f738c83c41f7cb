//! Categories and desk settings, in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl DeskStore for MemoryStore {
    async fn categories(&self) -> StoreResult<Vec<Category>> {
        self.with(|s| Ok(s.categories.clone()))
    }

    async fn create_category(&self, category: Category) -> StoreResult<()> {
        self.with(|s| add_new(&mut s.categories, category, |c, new| c.id == new.id))
    }

    async fn rename_category(&self, id: &str, name: &str) -> StoreResult<()> {
        self.with(|s| {
            let c = s
                .categories
                .iter_mut()
                .find(|c| c.id == id)
                .ok_or(StoreError::NotFound)?;
            c.name = name.to_string();
            Ok(())
        })
    }

    async fn delete_category(&self, id: &str) -> StoreResult<()> {
        self.with(|s| match remove_where(&mut s.categories, |c| c.id == id) {
            true => Ok(()),
            false => Err(StoreError::NotFound),
        })
    }

    async fn desk_setting(&self, key: &str) -> StoreResult<Option<String>> {
        self.with(|s| Ok(s.desk_settings.get(key).cloned()))
    }

    async fn set_desk_setting(&self, key: &str, value: Option<String>) -> StoreResult<()> {
        self.with(|s| {
            match value {
                Some(v) => s.desk_settings.insert(key.to_string(), v),
                None => s.desk_settings.remove(key),
            };
            Ok(())
        })
    }
}
