//! Agents' notes in MongoDB: collection `conversation_notes`, one document per note,
//! `_id` the pair {conversation_id, id}, so the server keeps a note once (a retry or
//! another hub writing it gets a duplicate key, taken as "kept already") with no read
//! first. Kept apart from the conversation document, which the archive writer may not
//! have stored yet: a note needs no opening. Read by an index on `conversation_id`; the
//! few notes of a conversation are put in order here.

use bson::doc;
use mongodb::error::ErrorKind;
use serde::{Deserialize, Serialize};

use super::{DUPLICATE_KEY, MongoStore, Named, ensure_indexes, index, unavailable};
use crate::store::{ConversationNote, Millis, StoreResult};

/// A note's `_id`: its conversation and its own id (fields in this order, always).
#[derive(Serialize, Deserialize)]
struct NoteKey {
    conversation_id: String,
    id: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct NoteDoc {
    #[serde(rename = "_id")]
    key: NoteKey,
    /// The key's conversation again, for the index the reads use.
    conversation_id: String,
    at: Millis,
    agent_id: String,
    agent_name: String,
    text: String,
}

pub(super) const CONVERSATION_NOTES: Named<NoteDoc> = Named::new("conversation_notes");

impl NoteDoc {
    fn of(n: &ConversationNote) -> Self {
        Self {
            key: NoteKey {
                conversation_id: n.conversation_id.clone(),
                id: n.id.clone(),
            },
            conversation_id: n.conversation_id.clone(),
            at: n.at,
            agent_id: n.agent_id.clone(),
            agent_name: n.agent_name.clone(),
            text: n.text.clone(),
        }
    }

    pub(super) fn note(self) -> ConversationNote {
        ConversationNote {
            conversation_id: self.key.conversation_id,
            id: self.key.id,
            at: self.at,
            agent_id: self.agent_id,
            agent_name: self.agent_name,
            text: self.text,
        }
    }
}

impl MongoStore {
    pub(super) async fn create_note_indexes(&self) -> StoreResult<()> {
        let by_conversation = index(doc! {"conversation_id": 1}, "conversation");
        ensure_indexes(&self.collection(CONVERSATION_NOTES), [by_conversation]).await
    }

    /// Stores the notes no document holds yet, in one unordered `insert_many`: a note
    /// already kept (a retry, another hub, twice in the batch) is refused by its `_id` and
    /// that refusal is success; any other failure is an error (the batch is retried).
    pub(super) async fn note_all(&self, notes: &[&ConversationNote]) -> StoreResult<()> {
        if notes.is_empty() {
            return Ok(());
        }
        let docs: Vec<NoteDoc> = notes.iter().map(|n| NoteDoc::of(n)).collect();
        match self
            .collection(CONVERSATION_NOTES)
            .insert_many(&docs)
            .ordered(false)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if only_kept_already(&e) => Ok(()),
            Err(e) => Err(unavailable(format!("recording a note: {e}"))),
        }
    }
}

/// Did an `insert_many` fail only because some of its documents' `_id`s were taken?
fn only_kept_already(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::InsertMany(m) if m.write_concern_error.is_none() => m
            .write_errors
            .as_ref()
            .is_some_and(|errors| errors.iter().all(|w| w.code == DUPLICATE_KEY)),
        _ => false,
    }
}
