//! Categories (in creation order) and the desk settings admins store, in the embedded store.

use async_trait::async_trait;

use super::*;

/// Key → the value an admin stored (appointment hours, as JSON).
const DESK_SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("desk_settings");

/// Creates the desk settings' table in a new (or older) store file, at open.
pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&DESK_SETTINGS])
}

#[async_trait]
impl DeskStore for EmbeddedStore {
    async fn categories(&self) -> StoreResult<Vec<Category>> {
        self.read_apart(|tx| {
            let order = tx.open_table(CATEGORY_ORDER).map_err(unavailable)?;
            let categories = tx.open_table(CATEGORIES).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in order.iter().map_err(unavailable)? {
                let (_, id) = row.map_err(unavailable)?;
                let guard = categories
                    .get(id.value())
                    .map_err(unavailable)?
                    .ok_or_else(|| unavailable("category index out of step"))?;
                let rec: CategoryRec = decode(guard.value())?;
                out.push(Category {
                    id: rec.id,
                    name: rec.name,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn create_category(&self, category: Category) -> StoreResult<()> {
        self.write_apart(move |tx| {
            let mut categories = tx.open_table(CATEGORIES).map_err(unavailable)?;
            refuse_held(&categories, category.id.as_str())?;
            let mut meta = tx.open_table(META).map_err(unavailable)?;
            let pos = meta
                .get(NEXT_CATEGORY_POS)
                .map_err(unavailable)?
                .map(|v| v.value())
                .unwrap_or(0);
            meta.insert(NEXT_CATEGORY_POS, pos + 1).map_err(unavailable)?;
            let rec = CategoryRec {
                id: category.id.clone(),
                name: category.name,
                pos,
            };
            put(&mut categories, category.id.as_str(), &rec)?;
            tx.open_table(CATEGORY_ORDER)
                .map_err(unavailable)?
                .insert(pos, category.id.as_str())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn rename_category(&self, id: &str, name: &str) -> StoreResult<()> {
        let (id, name) = (id.to_string(), name.to_string());
        self.write_apart(move |tx| {
            let mut categories = tx.open_table(CATEGORIES).map_err(unavailable)?;
            let mut rec: CategoryRec = load(&categories, &id)?;
            rec.name = name;
            put(&mut categories, id.as_str(), &rec)?;
            Ok(())
        })
        .await
    }

    async fn delete_category(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.write_apart(move |tx| {
            let mut categories = tx.open_table(CATEGORIES).map_err(unavailable)?;
            let rec: CategoryRec = {
                let guard = categories
                    .remove(id.as_str())
                    .map_err(unavailable)?
                    .ok_or(StoreError::NotFound)?;
                decode(guard.value())?
            };
            tx.open_table(CATEGORY_ORDER)
                .map_err(unavailable)?
                .remove(rec.pos)
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn desk_setting(&self, key: &str) -> StoreResult<Option<String>> {
        let key = key.to_string();
        self.read_apart(move |tx| {
            let table = tx.open_table(DESK_SETTINGS).map_err(unavailable)?;
            Ok(table
                .get(key.as_str())
                .map_err(unavailable)?
                .map(|v| v.value().to_string()))
        })
        .await
    }

    async fn set_desk_setting(&self, key: &str, value: Option<String>) -> StoreResult<()> {
        let key = key.to_string();
        self.write_apart(move |tx| {
            let mut table = tx.open_table(DESK_SETTINGS).map_err(unavailable)?;
            match value {
                Some(v) => table.insert(key.as_str(), v.as_str()).map_err(unavailable)?,
                None => table.remove(key.as_str()).map_err(unavailable)?,
            };
            Ok(())
        })
        .await
    }
}
