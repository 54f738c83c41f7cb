//! The reports' facts in the embedded store: two small tables kept by the archive fold,
//! and a read that walks the conversations paired in the range.
//!
//! - `first_agent_at`: conversation id → the time of its first agent message. Kept apart
//!   from the conversation record so the fold, which sees each message once, pays a point
//!   lookup per conversation and batch with agent lines (and a write only when it is the
//!   first), never a rewrite of the JSON record.
//! - `abandoned`: (left at, id) → JSON [`QueueAbandoned`]: a time range is a key range.
//!
//! A report over 100,000 conversations reads each one's record once (the index by pairing
//! time gives the range), so it stays a single scan of the range with point lookups.

use async_trait::async_trait;

use super::{
    BY_PAIRED, CONVERSATIONS, ConversationRec, EmbeddedStore, META, ReadableDatabase, ReadableTable, TableDefinition,
    create, decode, encode, message_log, unavailable,
};
use crate::store::{
    ArchivedMessage, ArchivedMessageRef, ConversationFacts, ConversationKind, Millis, QueueAbandoned, Rating,
    ReportFacts, ReportStore, StoreResult, reports,
};

pub(super) const FIRST_AGENT_AT: TableDefinition<&str, i64> = TableDefinition::new("first_agent_at");
const ABANDONED: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("abandoned");

/// Set in `meta` once every conversation archived before the reports existed has its
/// first agent line noted ([`backfill`]).
pub(super) const BACKFILLED: &str = "reports_first_agent_backfilled";

/// Once per file: notes the first agent line of every conversation archived before this
/// table existed (a file written by an older build), from its messages, so its reports
/// do not count those conversations unanswered. A new file has none to read.
pub(super) fn backfill(db: &redb::Database) -> StoreResult<()> {
    let tx = db.begin_read().map_err(unavailable)?;
    if tx
        .open_table(META)
        .map_err(unavailable)?
        .get(BACKFILLED)
        .map_err(unavailable)?
        .is_some()
    {
        return Ok(());
    }
    let mut firsts = Vec::new();
    for row in tx
        .open_table(CONVERSATIONS)
        .map_err(unavailable)?
        .iter()
        .map_err(unavailable)?
    {
        let (id, _) = row.map_err(unavailable)?;
        let messages = message_log::load(&tx, id.value())?;
        if let Some(at) = reports::first_agent_at(messages.iter().map(ArchivedMessage::borrowed)) {
            firsts.push((id.value().to_string(), at));
        }
    }
    drop(tx);
    let tx = db.begin_write().map_err(unavailable)?;
    {
        let mut table = tx.open_table(FIRST_AGENT_AT).map_err(unavailable)?;
        for (id, at) in &firsts {
            keep_earliest(&mut table, id, *at)?;
        }
        tx.open_table(META)
            .map_err(unavailable)?
            .insert(BACKFILLED, 1)
            .map_err(unavailable)?;
    }
    tx.commit().map_err(unavailable)?;
    if !firsts.is_empty() {
        tracing::info!(
            conversations = firsts.len(),
            "noted the first agent line of conversations archived before the reports"
        );
    }
    Ok(())
}

/// Keeps `at` as the first agent line of `conversation` unless an earlier one is kept.
fn keep_earliest(table: &mut redb::Table<'_, &'static str, i64>, conversation: &str, at: Millis) -> StoreResult<()> {
    let known = table.get(conversation).map_err(unavailable)?.map(|v| v.value());
    if known.is_none_or(|known| at < known) {
        table.insert(conversation, at).map_err(unavailable)?;
    }
    Ok(())
}

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&FIRST_AGENT_AT, &ABANDONED])
}

/// The fold's writers of the two tables, opened once per batch.
pub(super) struct Writer<'tx> {
    first_agent_at: redb::Table<'tx, &'static str, i64>,
    abandoned: redb::Table<'tx, (i64, &'static str), &'static [u8]>,
}

impl<'tx> Writer<'tx> {
    pub(super) fn open(tx: &'tx redb::WriteTransaction) -> StoreResult<Self> {
        Ok(Self {
            first_agent_at: tx.open_table(FIRST_AGENT_AT).map_err(unavailable)?,
            abandoned: tx.open_table(ABANDONED).map_err(unavailable)?,
        })
    }

    /// Notes the earliest agent line of `messages` (one conversation's, of one batch).
    pub(super) fn agent_lines(&mut self, conversation: &str, messages: &[ArchivedMessageRef<'_>]) -> StoreResult<()> {
        let Some(first) = reports::first_agent_at(messages.iter().copied()) else {
            return Ok(());
        };
        keep_earliest(&mut self.first_agent_at, conversation, first)
    }

    /// Keeps `abandoned` once (its key is its time and id).
    pub(super) fn abandoned(&mut self, abandoned: &QueueAbandoned) -> StoreResult<()> {
        self.abandoned
            .insert(
                (abandoned.left_at, abandoned.id.as_str()),
                encode(abandoned)?.as_slice(),
            )
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl ReportStore for EmbeddedStore {
    async fn report_facts(&self, from: Millis, to: Millis) -> StoreResult<ReportFacts> {
        let offline = self.offline_in(from, to).await?;
        let mut facts = self
            .read(move |tx| {
                let by_paired = tx.open_table(BY_PAIRED).map_err(unavailable)?;
                let records = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
                let first_agent = tx.open_table(FIRST_AGENT_AT).map_err(unavailable)?;
                let ratings = tx.open_table(super::ratings::RATINGS).map_err(unavailable)?;
                let mut conversations = Vec::new();
                for row in by_paired.range((from, "")..(to, "")).map_err(unavailable)? {
                    let (key, _) = row.map_err(unavailable)?;
                    let id = key.value().1;
                    let Some(record) = records.get(id).map_err(unavailable)? else {
                        continue;
                    };
                    let rec: ConversationRec = decode(record.value())?;
                    if rec.opened.kind != ConversationKind::Service {
                        continue;
                    }
                    let rating = match ratings.get(id).map_err(unavailable)? {
                        Some(v) => Some(decode::<Rating>(v.value())?),
                        None => None,
                    };
                    let bot = crate::store::reports::bot_outcome(
                        &rec.opened.agent_id,
                        rec.opened.paired_at,
                        rec.transfers
                            .iter()
                            .map(|t| (t.at, t.from_agent_id.as_str(), t.to_agent_id.as_deref())),
                    );
                    conversations.push(ConversationFacts {
                        id: id.to_string(),
                        bot,
                        first_agent_at: first_agent.get(id).map_err(unavailable)?.map(|v| v.value()),
                        ended_at: rec.closed.as_ref().map(|c| c.ended_at),
                        rating: rating.map(|r| (r.scale, r.score)),
                        category: rec.opened.category,
                        agent_id: rec.opened.agent_id,
                        agent_name: rec.opened.agent_name,
                        queued_at: rec.opened.queued_at,
                        paired_at: rec.opened.paired_at,
                    });
                }
                let abandoned_table = tx.open_table(ABANDONED).map_err(unavailable)?;
                let mut abandoned = Vec::new();
                for row in abandoned_table.range((from, "")..(to, "")).map_err(unavailable)? {
                    let (_, value) = row.map_err(unavailable)?;
                    abandoned.push(decode::<QueueAbandoned>(value.value())?);
                }
                Ok(ReportFacts {
                    conversations,
                    abandoned,
                    offline: Vec::new(),
                })
            })
            .await?;
        facts.offline = offline;
        Ok(facts)
    }
}
