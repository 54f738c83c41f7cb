//! Offline messages in the embedded store: one table by id (JSON), and an index by
//! creation for listing newest first. A message with its desk mail, or a reply with its
//! mail, is one redb write transaction, so both are committed or neither; redb runs one
//! write transaction at a time, so taking a message (read, check, rewrite) is one decision.

use async_trait::async_trait;

use super::outbox::put_in;
use super::{
    EmbeddedStore, ReadableTable, TableDefinition, create, decode, encode, newest_page, refuse_held, row, unavailable,
};
use crate::store::{MailedReply, Millis, OfflineFilter, OfflineMessage, OfflineStore, OutboxMail, Page, StoreResult};

/// Message id → JSON [`OfflineMessage`].
const OFFLINE: TableDefinition<&str, &[u8]> = TableDefinition::new("offline_messages");
/// (created at, message id), for listing newest first.
const BY_CREATED: TableDefinition<(i64, &str), ()> = TableDefinition::new("offline_messages_by_created");

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&OFFLINE, &BY_CREATED])
}

fn load(table: &impl ReadableTable<&'static str, &'static [u8]>, id: &str) -> StoreResult<OfflineMessage> {
    super::load(table, id)
}

fn save(tx: &redb::WriteTransaction, m: &OfflineMessage) -> StoreResult<()> {
    tx.open_table(OFFLINE)
        .map_err(unavailable)?
        .insert(m.id.as_str(), encode(m)?.as_slice())
        .map_err(unavailable)?;
    Ok(())
}

/// Reads message `id` in the caller's transaction, applies `change` and stores the result.
fn change_in<T>(
    tx: &redb::WriteTransaction,
    id: &str,
    change: impl FnOnce(&mut OfflineMessage) -> StoreResult<T>,
) -> StoreResult<(OfflineMessage, T)> {
    let mut m = load(&tx.open_table(OFFLINE).map_err(unavailable)?, id)?;
    let out = change(&mut m)?;
    save(tx, &m)?;
    Ok((m, out))
}

impl EmbeddedStore {
    /// The reports' facts of the messages left in `[from, to)`.
    pub(super) async fn offline_in(&self, from: Millis, to: Millis) -> StoreResult<Vec<crate::store::OfflineFacts>> {
        self.read(move |tx| {
            let by_created = tx.open_table(BY_CREATED).map_err(unavailable)?;
            let table = tx.open_table(OFFLINE).map_err(unavailable)?;
            let mut facts = Vec::new();
            for row in by_created.range((from, "")..(to, "")).map_err(unavailable)? {
                let (key, _) = row.map_err(unavailable)?;
                facts.push(crate::store::reports::offline_facts(&load(&table, key.value().1)?));
            }
            Ok(facts)
        })
        .await
    }
}

/// Every offline message (an erasure looks for a customer's; they are few).
pub(super) fn all(tx: &redb::WriteTransaction) -> StoreResult<Vec<OfflineMessage>> {
    let table = tx.open_table(OFFLINE).map_err(unavailable)?;
    table
        .iter()
        .map_err(unavailable)?
        .map(|row| row.map_err(unavailable).and_then(|(_, v)| decode(v.value())))
        .collect()
}

/// Removes message `m` and its listing entry (an erasure on request).
pub(super) fn remove(tx: &redb::WriteTransaction, m: &OfflineMessage) -> StoreResult<()> {
    tx.open_table(OFFLINE)
        .map_err(unavailable)?
        .remove(m.id.as_str())
        .map_err(unavailable)?;
    tx.open_table(BY_CREATED)
        .map_err(unavailable)?
        .remove((m.created_at, m.id.as_str()))
        .map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl OfflineStore for EmbeddedStore {
    async fn add_offline_message(&self, m: OfflineMessage, mail: Option<OutboxMail>) -> StoreResult<()> {
        self.write(move |tx| {
            refuse_held(&tx.open_table(OFFLINE).map_err(unavailable)?, m.id.as_str())?;
            save(tx, &m)?;
            tx.open_table(BY_CREATED)
                .map_err(unavailable)?
                .insert((m.created_at as Millis, m.id.as_str()), ())
                .map_err(unavailable)?;
            if let Some(mail) = &mail {
                put_in(tx, mail)?;
            }
            Ok(())
        })
        .await
    }

    async fn offline_message(&self, id: &str) -> StoreResult<OfflineMessage> {
        self.read(row(OFFLINE, id)).await
    }

    async fn offline_messages(&self, filter: &OfflineFilter, page: Page) -> StoreResult<(Vec<OfflineMessage>, u64)> {
        let filter = filter.clone();
        self.read(move |tx| {
            let table = tx.open_table(OFFLINE).map_err(unavailable)?;
            newest_page(&tx.open_table(BY_CREATED).map_err(unavailable)?, page, |id| {
                let m = load(&table, id)?;
                Ok(filter.matches(&m).then_some(m))
            })
        })
        .await
    }

    async fn take_offline_message(&self, id: &str, agent: &str) -> StoreResult<OfflineMessage> {
        let (id, agent) = (id.to_string(), agent.to_string());
        self.write(move |tx| Ok(change_in(tx, &id, |m| m.take_by(&agent))?.0))
            .await
    }

    async fn mark_offline_message_handled(&self, id: &str, by: &str) -> StoreResult<OfflineMessage> {
        let (id, by) = (id.to_string(), by.to_string());
        self.write(move |tx| Ok(change_in(tx, &id, |m| Ok(m.mark_handled(&by, crate::clock::now_ms())))?.0))
            .await
    }

    async fn reply_offline_message(&self, id: &str, mailed: MailedReply) -> StoreResult<OfflineMessage> {
        let MailedReply { reply, mail } = mailed;
        let id = id.to_string();
        self.write(move |tx| {
            let (m, added) = change_in(tx, &id, |m| Ok(m.add_reply(reply)))?;
            if added {
                put_in(tx, &mail)?;
            }
            Ok(m)
        })
        .await
    }
}
