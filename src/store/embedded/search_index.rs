//! Archive search in the embedded store: postings, `(term, conversation id) -> ()`, one row
//! for each distinct term of a conversation's names and messages ([`conversation_terms`]).
//!
//! Why this shape:
//! - They are written by `apply`, in the same fold (one redb commit) as the messages and
//!   openings they come from, so nothing is searched that is not stored and nothing stored
//!   is missing from the index; the acknowledgement's path (the journal append) does no
//!   more work than before. A fold inserts each distinct term of a batch's messages of a
//!   conversation once, and an insert of a row already there changes nothing, so a replay
//!   of the journal adds nothing twice.
//! - A query reads one key range per term (ids in key order) and intersects them, then
//!   checks each candidate conversation against the listing's other filters and against
//!   the text itself ([`crate::store::search`]: every word in its names or in one message).
//!   A one-word query needs no look at the messages: a conversation holding the term
//!   anywhere matches.
//! - A conversation's rows are found again from its own text (the tokenizer is pure and
//!   versioned with the schema), so erasure removes exactly them, and a file written
//!   before search existed (schema 4 and older) is indexed once when opened
//!   ([`backfill`]), which marks it schema 5.

use std::collections::BTreeSet;

use redb::TableDefinition;

use super::{
    CONVERSATIONS, ConversationRec, EmbeddedStore, all, create, keys_under, load_record, message_log, ratings,
    unavailable,
};
use crate::store::memory::matches;
use crate::store::search::{SearchQuery, conversation_terms, first_hit, names_match};
use crate::store::{Conversation, ConversationFilter, Millis, Page, StoreResult};

/// (term, conversation id) -> ().
const POSTINGS: TableDefinition<(&str, &str), ()> = TableDefinition::new("search_terms");

pub(super) type Table<'tx> = redb::Table<'tx, (&'static str, &'static str), ()>;

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&POSTINGS])
}

pub(super) fn open(tx: &redb::WriteTransaction) -> StoreResult<Table<'_>> {
    tx.open_table(POSTINGS).map_err(unavailable)
}

/// Posts `terms` for conversation `id` (a set: idempotent).
pub(super) fn add<'t>(table: &mut Table<'_>, terms: impl IntoIterator<Item = &'t String>, id: &str) -> StoreResult<()> {
    for term in terms {
        table.insert((term.as_str(), id), ()).map_err(unavailable)?;
    }
    Ok(())
}

/// Every term posted for conversation `id`, found again from its stored text.
fn terms_of(tx: &redb::WriteTransaction, rec: &ConversationRec) -> StoreResult<BTreeSet<String>> {
    let messages = message_log::load_for_write(tx, &rec.opened.id)?;
    Ok(conversation_terms(&rec.opened(), &rec.transfers(), &messages))
}

/// Removes conversation `id`'s rows (an erasure), before its messages go. Returns how many.
pub(super) fn erase(tx: &redb::WriteTransaction, rec: &ConversationRec) -> StoreResult<u64> {
    let terms = terms_of(tx, rec)?;
    let mut table = open(tx)?;
    let mut removed = 0;
    for term in &terms {
        removed += u64::from(
            table
                .remove((term.as_str(), rec.opened.id.as_str()))
                .map_err(unavailable)?
                .is_some(),
        );
    }
    Ok(removed)
}

/// Indexes every stored conversation (a file written before search existed). Returns how
/// many conversations it indexed.
pub(super) fn backfill(tx: &redb::WriteTransaction) -> StoreResult<u64> {
    let records: Vec<ConversationRec> = all(&tx.open_table(CONVERSATIONS).map_err(unavailable)?)?;
    for rec in &records {
        let terms = terms_of(tx, rec)?;
        add(&mut open(tx)?, &terms, &rec.opened.id)?;
    }
    Ok(records.len() as u64)
}

/// The ids of conversations posted under every term of `query`, in id order.
fn candidates(tx: &redb::ReadTransaction, query: &SearchQuery) -> StoreResult<Vec<String>> {
    let table = tx.open_table(POSTINGS).map_err(unavailable)?;
    let posted = |term: &str| keys_under(&table, term);
    let mut terms = query.terms().iter();
    let Some(first) = terms.next() else {
        return Ok(Vec::new());
    };
    let mut ids = posted(first)?;
    for term in terms {
        if ids.is_empty() {
            break;
        }
        // Both in id order: one merge.
        let more = posted(term)?;
        let mut kept = Vec::with_capacity(ids.len().min(more.len()));
        let mut others = more.iter().peekable();
        for id in ids {
            while others.next_if(|other| other.as_str() < id.as_str()).is_some() {}
            if others.peek().is_some_and(|other| **other == id) {
                kept.push(id);
            }
        }
        ids = kept;
    }
    Ok(ids)
}

impl EmbeddedStore {
    /// [`crate::store::ArchiveStore::conversations`] with a text: the postings' candidates, checked
    /// against the other filters and the text, newest paired first.
    pub(super) async fn search(
        &self,
        filter: &ConversationFilter,
        query: SearchQuery,
        page: Page,
    ) -> StoreResult<(Vec<Conversation>, u64)> {
        let rest = ConversationFilter {
            text: None,
            ..filter.clone()
        };
        self.read(move |tx| {
            let conversations = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
            // Posted anywhere is matched when there is only one word to hold.
            let one_word = query.terms().len() == 1;
            let desk = super::conversations::DeskCheck::of(tx, &rest)?;
            let mut hits: Vec<(Millis, String)> = Vec::new();
            for id in candidates(tx, &query)? {
                let Some(rec) = load_record(&conversations, &id)? else {
                    continue;
                };
                let (opened, transfers) = (rec.opened(), rec.transfers());
                if !matches(&rest, &opened, &transfers) {
                    continue;
                }
                if let Some(desk) = &desk
                    && !desk.admits(&rest, &id)?
                {
                    continue;
                }
                if !one_word
                    && !names_match(&query, &opened, &transfers)
                    && first_hit(&query, &message_log::load(tx, &id)?).is_none()
                {
                    continue;
                }
                hits.push((opened.paired_at, id));
            }
            hits.sort_unstable_by(|a, b| b.cmp(a));
            let total = hits.len() as u64;
            let mut out = Vec::new();
            let start = usize::try_from(page.offset).unwrap_or(usize::MAX);
            let count = usize::try_from(page.limit).unwrap_or(usize::MAX);
            for (_, id) in hits.into_iter().skip(start).take(count) {
                let Some(rec) = load_record(&conversations, &id)? else {
                    continue;
                };
                let messages = message_log::load(tx, &id)?;
                let rating = ratings::load(tx, &id)?;
                out.push(rec.into_conversation(messages, rating, Vec::new()));
            }
            Ok((out, total))
        })
        .await
    }
}
