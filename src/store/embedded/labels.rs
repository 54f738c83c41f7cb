//! Labels in the embedded store: one table by id; listing reads them all (a desk has tens).

use async_trait::async_trait;

use super::{EmbeddedStore, TableDefinition, create, load, put, put_new, rows, unavailable, write_row};
use crate::store::{Label, LabelStore, StoreError, StoreResult, labels};

/// Label id → JSON [`Label`].
const LABELS: TableDefinition<&str, &[u8]> = TableDefinition::new("labels");

/// Creates the labels' table in a new (or older) store file, at open.
pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&LABELS])
}

#[async_trait]
impl LabelStore for EmbeddedStore {
    async fn labels(&self) -> StoreResult<Vec<Label>> {
        let mut out: Vec<Label> = self.read(rows(LABELS)).await?;
        out.sort_by(labels::by_name);
        Ok(out)
    }

    async fn create_label(&self, label: Label) -> StoreResult<()> {
        self.write(write_row(LABELS, label.id.clone(), label, put_new)).await
    }

    async fn update_label(&self, label: Label) -> StoreResult<()> {
        self.write(move |tx| {
            let mut table = tx.open_table(LABELS).map_err(unavailable)?;
            let stored: Label = load(&table, &label.id)?;
            let changed = Label {
                name: label.name,
                colour: label.colour,
                ..stored
            };
            put(&mut table, changed.id.as_str(), &changed)?;
            Ok(())
        })
        .await
    }

    async fn delete_label(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |tx| {
            let mut table = tx.open_table(LABELS).map_err(unavailable)?;
            match table.remove(id.as_str()).map_err(unavailable)? {
                Some(_) => Ok(()),
                None => Err(StoreError::NotFound),
            }
        })
        .await
    }
}
