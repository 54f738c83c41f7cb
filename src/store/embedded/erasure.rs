//! Erasure on request in the embedded store: a conversation is removed from every table
//! that holds it (its record, the listing and search indexes, its messages, notes and rating) in one
//! write transaction, and its id kept in `erased_conversations`, which `apply` consults so
//! that an event of it still in a journal or arriving late is dropped. Freed pages are
//! reused by redb; the bytes leave the file as pages are rewritten (the store compacts
//! them over time, not at once).

use async_trait::async_trait;
use std::ops::Bound;

use redb::ReadableTableMetadata;

use super::erased::ERASED;
use super::{
    BY_AGENT, BY_CATEGORY, BY_PAIRED, CONVERSATIONS, EmbeddedStore, TableDefinition, create, decode, encode,
    load_record, message_log, unavailable,
};
use crate::store::{Erased, ErasureRecord, ErasureStore, OfflineMessage, Page, StoreResult};

/// (at, record id) → JSON [`ErasureRecord`].
const ERASURES: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("erasure_log");

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&ERASED, &ERASURES])
}

/// Erases conversation `id` in the caller's transaction.
fn erase_one(tx: &redb::WriteTransaction, id: &str) -> StoreResult<Erased> {
    let mut erased = Erased::default();
    tx.open_table(ERASED)
        .map_err(unavailable)?
        .insert(id, ())
        .map_err(unavailable)?;
    let mut conversations = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
    if let Some(rec) = load_record(&conversations, id)? {
        let paired_at = rec.opened.paired_at;
        let opened = rec.opened();
        let mut by_agent = tx.open_table(BY_AGENT).map_err(unavailable)?;
        let agents = std::iter::once(opened.agent_id.clone()).chain(
            rec.transfers()
                .into_iter()
                .flat_map(|t| std::iter::once(t.from_agent_id).chain(t.to_agent_id)),
        );
        for agent in agents {
            by_agent.remove((agent.as_str(), paired_at, id)).map_err(unavailable)?;
        }
        if let Some(category) = &opened.category {
            let mut by_category = tx.open_table(BY_CATEGORY).map_err(unavailable)?;
            by_category
                .remove((category.as_str(), paired_at, id))
                .map_err(unavailable)?;
        }
        tx.open_table(BY_PAIRED)
            .map_err(unavailable)?
            .remove((paired_at, id))
            .map_err(unavailable)?;
        let mut by_customer = super::customers::open(tx)?;
        for key in opened.customer.indexed_keys() {
            by_customer.remove((key.as_str(), paired_at, id)).map_err(unavailable)?;
        }
        // Its search terms, found from its text: before its messages go.
        super::search_index::erase(tx, &rec)?;
        conversations.remove(id).map_err(unavailable)?;
        erased.conversations = 1;
    }
    super::conversations::erase(tx, id)?;
    erased.messages = message_log::erase(tx, id)?;
    erased.notes = super::notes::erase(tx, id)?;
    erased.ratings = super::ratings::erase(tx, id)?;
    Ok(erased)
}

#[async_trait]
impl ErasureStore for EmbeddedStore {
    async fn erase_conversations(&self, ids: &[String]) -> StoreResult<Erased> {
        let ids = ids.to_vec();
        self.write(move |tx| {
            let mut erased = Erased::default();
            for id in &ids {
                erased.add(erase_one(tx, id)?);
            }
            Ok(erased)
        })
        .await
    }

    async fn erase_offline_messages_of(&self, email: &str) -> StoreResult<u64> {
        let email = email.to_lowercase();
        self.write(move |tx| {
            let doomed: Vec<OfflineMessage> = super::offline::all(tx)?
                .into_iter()
                .filter(|m| m.email.to_lowercase() == email)
                .collect();
            for m in &doomed {
                super::offline::remove(tx, m)?;
            }
            Ok(doomed.len() as u64)
        })
        .await
    }

    async fn add_erasure_record(&self, record: ErasureRecord) -> StoreResult<()> {
        self.write(move |tx| {
            tx.open_table(ERASURES)
                .map_err(unavailable)?
                .insert((record.at, record.id.as_str()), encode(&record)?.as_slice())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn erasure_records(&self, page: Page) -> StoreResult<(Vec<ErasureRecord>, u64)> {
        self.read(move |tx| {
            let table = tx.open_table(ERASURES).map_err(unavailable)?;
            let total = table.len().map_err(unavailable)?;
            let mut out = Vec::new();
            let all = (Bound::<(i64, &str)>::Unbounded, Bound::<(i64, &str)>::Unbounded);
            for row in table
                .range::<(i64, &str)>(all)
                .map_err(unavailable)?
                .rev()
                .skip(page.offset as usize)
            {
                if out.len() as u64 >= page.limit {
                    break;
                }
                let (_, value) = row.map_err(unavailable)?;
                out.push(decode(value.value())?);
            }
            Ok((out, total))
        })
        .await
    }
}
