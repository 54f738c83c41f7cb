//! The stored shapes of a conversation's end and of its transfers, shared by the
//! backends that serialise: both are stored inside their conversation, so without the
//! conversation's id, which the models carry. A transfer is also shown by the API so.
//!
//! The other models are stored as they are (each says how: an account's id as `_id`; a
//! mail, a canned reply and an appointment without the id the row is keyed by).

use serde::{Deserialize, Serialize};

use super::{ConversationClosed, ConversationTransferred, EndReason, InferredClosing, Millis, Side};

/// How a conversation ended; stored inside its conversation, so without the id.
#[derive(Serialize, Deserialize)]
pub(super) struct ClosedRecord {
    pub ended_at: Millis,
    pub ended_by: Side,
    pub reason: EndReason,
    /// An inferred closing (`ConversationClosed::inferred`); absent on a real one, and on
    /// closings stored before it was kept (read as real).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferred: Option<InferredClosing>,
}

impl From<&ConversationClosed> for ClosedRecord {
    fn from(c: &ConversationClosed) -> Self {
        Self {
            ended_at: c.ended_at,
            ended_by: c.ended_by,
            reason: c.reason,
            inferred: c.inferred,
        }
    }
}

impl ClosedRecord {
    pub fn of(&self, conversation_id: &str) -> ConversationClosed {
        ConversationClosed {
            id: conversation_id.to_string(),
            ended_at: self.ended_at,
            ended_by: self.ended_by,
            reason: self.reason,
            inferred: self.inferred,
        }
    }
}

/// A running service chat handed on by its agent: to another agent, to a category's
/// line, or taken from that line by an agent. Stored inside its conversation, and shown
/// by the API inside it, so without the conversation's id. Every field is written, `None`
/// as null (MongoDB's store matches a retry on them).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = TransferView)]
pub struct Transfer {
    /// When (ms since the Unix epoch).
    pub at: Millis,
    /// The highest `seq` said before the transfer.
    pub after_seq: u64,
    pub from_agent_id: String,
    pub from_agent_name: String,
    /// The agent who has it now; null while it waits in `to_category`'s line.
    pub to_agent_id: Option<String>,
    pub to_agent_name: Option<String>,
    /// The category's line it was put in (with `to_agent_id`: the line it was taken from).
    pub to_category: Option<String>,
    /// The transferring agent's note for whoever takes it next ("" for none).
    pub note: String,
}

impl From<&ConversationTransferred> for Transfer {
    fn from(t: &ConversationTransferred) -> Self {
        Self {
            at: t.at,
            after_seq: t.after_seq,
            from_agent_id: t.from_agent_id.clone(),
            from_agent_name: t.from_agent_name.clone(),
            to_agent_id: t.to_agent_id.clone(),
            to_agent_name: t.to_agent_name.clone(),
            to_category: t.to_category.clone(),
            note: t.note.clone(),
        }
    }
}

impl Transfer {
    pub fn of(&self, conversation_id: &str) -> ConversationTransferred {
        ConversationTransferred {
            id: conversation_id.to_string(),
            at: self.at,
            after_seq: self.after_seq,
            from_agent_id: self.from_agent_id.clone(),
            from_agent_name: self.from_agent_name.clone(),
            to_agent_id: self.to_agent_id.clone(),
            to_agent_name: self.to_agent_name.clone(),
            to_category: self.to_category.clone(),
            note: self.note.clone(),
        }
    }
}
