//! Labels, in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl LabelStore for MemoryStore {
    async fn labels(&self) -> StoreResult<Vec<Label>> {
        self.with(|s| {
            let mut out = s.labels.clone();
            out.sort_by(crate::store::labels::by_name);
            Ok(out)
        })
    }

    async fn create_label(&self, label: Label) -> StoreResult<()> {
        self.with(|s| add_new(&mut s.labels, label, |stored, new| stored.id == new.id))
    }

    async fn update_label(&self, label: Label) -> StoreResult<()> {
        self.with(|s| {
            let stored = s
                .labels
                .iter_mut()
                .find(|l| l.id == label.id)
                .ok_or(StoreError::NotFound)?;
            stored.name = label.name;
            stored.colour = label.colour;
            Ok(())
        })
    }

    async fn delete_label(&self, id: &str) -> StoreResult<()> {
        self.with(|s| match remove_where(&mut s.labels, |l| l.id == id) {
            true => Ok(()),
            false => Err(StoreError::NotFound),
        })
    }
}
