//! The mail outbox in the embedded store: one table by id, an index of the
//! pending mails by the instant they may next be claimed, and one by creation for the
//! admins' listing. A booking or cancellation writes its mail in the same redb write
//! transaction, so both are committed or neither. redb runs one write transaction at a
//! time, so a claim (read the ready index, rewrite the claimed rows) is atomic: two
//! claimers never take the same mail, and of two adders of one id one wins. The writes of
//! a booking or an offline message with its mail are the appointment's and the message's
//! (`embedded/appointments.rs`, `embedded/offline.rs`), through [`put_in`].

use async_trait::async_trait;

use super::{
    EmbeddedStore, ReadableTable, TableDefinition, create, encode, holds, newest_page, refuse_held, row, unavailable,
};
use crate::store::{
    MailOutcome, MailStatus, Millis, OutboxMail, OutboxStore, Page, StoreResult, apply_bounce, apply_outcome,
};

/// Mail id → JSON [`OutboxMail`] (without its id).
pub(super) const MAILS: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox_mails");
/// (ready at, mail id) for pending mails only; ready at = the later of `due_at` and the
/// claim's end, so a claimed mail reappears when its lease runs out.
const READY: TableDefinition<(i64, &str), ()> = TableDefinition::new("outbox_ready");
/// (created at, mail id), for listing newest first.
const BY_CREATED: TableDefinition<(i64, &str), ()> = TableDefinition::new("outbox_by_created");

/// When a pending mail may next be claimed.
fn ready_at(m: &OutboxMail) -> Millis {
    m.due_at.max(m.claim_until.unwrap_or(Millis::MIN))
}

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&MAILS, &READY, &BY_CREATED])
}

pub(super) fn load(table: &impl ReadableTable<&'static str, &'static [u8]>, id: &str) -> StoreResult<OutboxMail> {
    let mail: OutboxMail = super::load(table, id)?;
    Ok(OutboxMail {
        id: id.to_string(),
        ..mail
    })
}

/// Replaces the stored form of `old` with `new`, keeping the ready index in step.
fn rewrite(tx: &redb::WriteTransaction, old: &OutboxMail, new: &OutboxMail) -> StoreResult<()> {
    let mut ready = tx.open_table(READY).map_err(unavailable)?;
    if old.status == MailStatus::Pending {
        ready.remove((ready_at(old), old.id.as_str())).map_err(unavailable)?;
    }
    if new.status == MailStatus::Pending {
        ready
            .insert((ready_at(new), new.id.as_str()), ())
            .map_err(unavailable)?;
    }
    tx.open_table(MAILS)
        .map_err(unavailable)?
        .insert(new.id.as_str(), encode(new)?.as_slice())
        .map_err(unavailable)?;
    Ok(())
}

/// Stores `mail` in the caller's transaction unless its id is there (the same mail).
pub(super) fn put_in(tx: &redb::WriteTransaction, mail: &OutboxMail) -> StoreResult<()> {
    let mut mails = tx.open_table(MAILS).map_err(unavailable)?;
    if holds(&mails, mail.id.as_str())? {
        return Ok(());
    }
    mails
        .insert(mail.id.as_str(), encode(mail)?.as_slice())
        .map_err(unavailable)?;
    if mail.status == MailStatus::Pending {
        tx.open_table(READY)
            .map_err(unavailable)?
            .insert((ready_at(mail), mail.id.as_str()), ())
            .map_err(unavailable)?;
    }
    tx.open_table(BY_CREATED)
        .map_err(unavailable)?
        .insert((mail.created_at, mail.id.as_str()), ())
        .map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl OutboxStore for EmbeddedStore {
    async fn claim_mails(&self, node: &str, now: Millis, until: Millis, limit: usize) -> StoreResult<Vec<OutboxMail>> {
        let node = node.to_string();
        self.write_apart(move |tx| {
            let ids: Vec<String> = {
                let ready = tx.open_table(READY).map_err(unavailable)?;
                let mut ids = Vec::new();
                for row in ready
                    .range((Millis::MIN, "")..=(now, "\u{10FFFF}"))
                    .map_err(unavailable)?
                {
                    let (key, _) = row.map_err(unavailable)?;
                    ids.push(key.value().1.to_string());
                    if ids.len() >= limit {
                        break;
                    }
                }
                ids
            };
            let mut claimed = Vec::with_capacity(ids.len());
            for id in ids {
                let old = load(&tx.open_table(MAILS).map_err(unavailable)?, &id)?;
                if !old.claimable(now) {
                    continue;
                }
                let mut new = old.clone();
                new.claimed_by = Some(node.clone());
                new.claim_until = Some(until);
                rewrite(tx, &old, &new)?;
                claimed.push(new);
            }
            Ok(claimed)
        })
        .await
    }

    async fn finish_mail(&self, id: &str, node: &str, outcome: MailOutcome) -> StoreResult<bool> {
        let (id, node) = (id.to_string(), node.to_string());
        self.write_apart(move |tx| {
            let old = load(&tx.open_table(MAILS).map_err(unavailable)?, &id)?;
            if old.status != MailStatus::Pending || old.claimed_by.as_deref() != Some(node.as_str()) {
                return Ok(false);
            }
            let mut new = old.clone();
            apply_outcome(&mut new, outcome);
            rewrite(tx, &old, &new)?;
            Ok(true)
        })
        .await
    }

    async fn bounce_mail(&self, id: &str, reason: &str) -> StoreResult<bool> {
        let (id, reason) = (id.to_string(), reason.to_string());
        self.write_apart(move |tx| {
            let old = load(&tx.open_table(MAILS).map_err(unavailable)?, &id)?;
            let mut new = old.clone();
            if !apply_bounce(&mut new, &reason) {
                return Ok(false);
            }
            rewrite(tx, &old, &new)?;
            Ok(true)
        })
        .await
    }

    async fn mail(&self, id: &str) -> StoreResult<OutboxMail> {
        let mail: OutboxMail = self.read_apart(row(MAILS, id)).await?;
        Ok(OutboxMail {
            id: id.to_string(),
            ..mail
        })
    }

    async fn mails(&self, status: Option<MailStatus>, page: Page) -> StoreResult<(Vec<OutboxMail>, u64)> {
        self.read_apart(move |tx| {
            let mails = tx.open_table(MAILS).map_err(unavailable)?;
            newest_page(&tx.open_table(BY_CREATED).map_err(unavailable)?, page, |id| {
                let mail = load(&mails, id)?;
                Ok(status.is_none_or(|s| s == mail.status).then_some(mail))
            })
        })
        .await
    }

    async fn add_mail(&self, mail: OutboxMail) -> StoreResult<()> {
        self.write_apart(move |tx| {
            refuse_held(&tx.open_table(MAILS).map_err(unavailable)?, mail.id.as_str())?;
            put_in(tx, &mail)
        })
        .await
    }

    async fn mails_by_id_prefix(&self, prefix: &str) -> StoreResult<Vec<OutboxMail>> {
        let prefix = prefix.to_string();
        self.read_apart(move |tx| {
            let mails = tx.open_table(MAILS).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in mails.range(prefix.as_str()..).map_err(unavailable)? {
                let (key, _) = row.map_err(unavailable)?;
                let id = key.value();
                if !id.starts_with(prefix.as_str()) {
                    break;
                }
                out.push(load(&mails, id)?);
            }
            Ok(out)
        })
        .await
    }
}
