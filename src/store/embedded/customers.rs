//! Customers in the embedded store: an index (customer key, paired time, conversation id)
//! written with each opening, so a customer's earlier conversations are found without a
//! scan, and the email a customer gives during or after their chat. A transcript reads a
//! conversation without its notes (the `notes` table is not opened).

use async_trait::async_trait;
use std::ops::Bound;

use super::{CONVERSATIONS, ConversationRec, EmbeddedStore, TableDefinition, create, load_record, put, unavailable};
use crate::store::{
    Conversation, CustomerKey, CustomerProfile, CustomerStore, CustomerTranscript, Millis, StoreError, StoreResult,
};

/// (indexed customer key ([`CustomerKey::indexed`]), paired time, conversation id).
const BY_CUSTOMER: TableDefinition<(&str, i64, &str), ()> = TableDefinition::new("conversations_by_customer");

/// The index, opened for writing in the caller's transaction.
pub(super) type Table<'tx> = redb::Table<'tx, (&'static str, i64, &'static str), ()>;

/// Creates the index in a new (or older) store file, at open.
pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&BY_CUSTOMER])
}

pub(super) fn open(tx: &redb::WriteTransaction) -> StoreResult<Table<'_>> {
    tx.open_table(BY_CUSTOMER).map_err(unavailable)
}

/// Indexes conversation `id` under every key of `profile` (a set: idempotent).
pub(super) fn index(table: &mut Table<'_>, profile: &CustomerProfile, paired_at: Millis, id: &str) -> StoreResult<()> {
    for key in profile.indexed_keys() {
        table.insert((key.as_str(), paired_at, id), ()).map_err(unavailable)?;
    }
    Ok(())
}

#[async_trait]
impl CustomerStore for EmbeddedStore {
    async fn customer_conversations(&self, key: &CustomerKey, limit: u64) -> StoreResult<Vec<Conversation>> {
        let key = key.indexed();
        self.read(move |tx| {
            let table = tx.open_table(BY_CUSTOMER).map_err(unavailable)?;
            let conversations = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
            let range = (
                Bound::Included((key.as_str(), i64::MIN, "")),
                Bound::Included((key.as_str(), i64::MAX, "\u{10FFFF}")),
            );
            let mut out = Vec::new();
            for row in table.range::<(&str, i64, &str)>(range).map_err(unavailable)?.rev() {
                if out.len() as u64 >= limit {
                    break;
                }
                let (row, _) = row.map_err(unavailable)?;
                let Some(rec) = load_record(&conversations, row.value().2)? else {
                    continue;
                };
                let id = rec.opened.id.clone();
                let messages = super::message_log::load(tx, &id)?;
                let rating = super::ratings::load(tx, &id)?;
                out.push(rec.into_conversation(messages, rating, Vec::new()));
            }
            Ok(out)
        })
        .await
    }

    async fn set_customer_email(&self, id: &str, email: &str) -> StoreResult<()> {
        let (id, email) = (id.to_string(), email.to_string());
        self.write(move |tx| {
            let mut conversations = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
            let mut rec: ConversationRec = load_record(&conversations, &id)?.ok_or(StoreError::NotFound)?;
            let mut by_customer = open(tx)?;
            let paired_at = rec.opened.paired_at;
            for key in rec.opened.customer.indexed_keys() {
                by_customer
                    .remove((key.as_str(), paired_at, id.as_str()))
                    .map_err(unavailable)?;
            }
            rec.opened.customer.email = Some(email);
            index(&mut by_customer, &rec.opened.customer, paired_at, &id)?;
            put(&mut conversations, id.as_str(), &rec)?;
            Ok(())
        })
        .await
    }

    async fn customer_transcript(&self, id: &str) -> StoreResult<CustomerTranscript> {
        let id = id.to_string();
        self.read(move |tx| {
            let conversations = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
            let rec = load_record(&conversations, &id)?.ok_or(StoreError::NotFound)?;
            let messages = super::message_log::load(tx, &id)?;
            let rating = super::ratings::load(tx, &id)?;
            Ok(CustomerTranscript {
                opened: rec.opened(),
                closed: rec.closed(),
                messages,
                rating,
            })
        })
        .await
    }
}
