//! Agents' notes in the embedded store: a table of their own keyed (conversation id, note
//! id), apart from the conversation record, so a note is kept before its conversation's
//! opening is stored, and a retried note finds its key taken (the first wins). Written by
//! the archive's folds and journal replay (`apply`), read with a conversation or alone.

use serde::{Deserialize, Serialize};

use super::{ReadableTable, TableDefinition, create, decode, encode, keys_under, unavailable};
use crate::store::{ConversationNote, Millis, StoreResult, note_order};

/// (conversation id, note id) -> JSON [`NoteRecord`].
const NOTES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("conversation_notes");

/// The notes table open for writing.
pub(super) type Table<'tx> = redb::Table<'tx, (&'static str, &'static str), &'static [u8]>;

/// A note as stored; its conversation and id are the key.
#[derive(Serialize, Deserialize)]
struct NoteRecord {
    at: Millis,
    agent_id: String,
    agent_name: String,
    text: String,
}

/// Creates the notes table in a new (or older) store file, at open.
pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&NOTES])
}

/// The notes table, opened for writing in the caller's transaction.
pub(super) fn open(tx: &redb::WriteTransaction) -> StoreResult<Table<'_>> {
    tx.open_table(NOTES).map_err(unavailable)
}

/// Stores `note` unless its (conversation, id) is there already. True when it was new.
pub(super) fn insert(table: &mut Table<'_>, note: &ConversationNote) -> StoreResult<bool> {
    let key = (note.conversation_id.as_str(), note.id.as_str());
    if table.get(key).map_err(unavailable)?.is_some() {
        return Ok(false);
    }
    let record = NoteRecord {
        at: note.at,
        agent_id: note.agent_id.clone(),
        agent_name: note.agent_name.clone(),
        text: note.text.clone(),
    };
    table.insert(key, encode(&record)?.as_slice()).map_err(unavailable)?;
    Ok(true)
}

/// The notes of conversation `id`, in [`note_order`], read in the caller's transaction.
pub(super) fn load(tx: &redb::ReadTransaction, id: &str) -> StoreResult<Vec<ConversationNote>> {
    let table = tx.open_table(NOTES).map_err(unavailable)?;
    let mut notes = Vec::new();
    // Every key of the conversation: from (id, "") up to, not including, the next id.
    for row in table.range::<(&str, &str)>((id, "")..).map_err(unavailable)? {
        let (key, value) = row.map_err(unavailable)?;
        let (conversation_id, note_id) = key.value();
        if conversation_id != id {
            break;
        }
        let record: NoteRecord = decode(value.value())?;
        notes.push(ConversationNote {
            conversation_id: conversation_id.to_string(),
            id: note_id.to_string(),
            at: record.at,
            agent_id: record.agent_id,
            agent_name: record.agent_name,
            text: record.text,
        });
    }
    notes.sort_by(note_order);
    Ok(notes)
}

/// Removes every note of `conversation_id` (an erasure on request); how many there were.
pub(super) fn erase(tx: &redb::WriteTransaction, conversation_id: &str) -> StoreResult<u64> {
    let mut table = open(tx)?;
    let keys = keys_under(&table, conversation_id)?;
    for note in &keys {
        table.remove((conversation_id, note.as_str())).map_err(unavailable)?;
    }
    Ok(keys.len() as u64)
}
