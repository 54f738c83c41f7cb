//! The stored shapes shared by the backends that serialise: an account, an
//! archived message, the end of a conversation, a transfer.
//!
//! The public model types have no serde on purpose (an account's password hash
//! cannot be serialised into a response by accident); the stores convert
//! through these records instead. The account id is named `_id`, MongoDB's
//! primary key; the embedded store's JSON carries the same name.

use serde::{Deserialize, Serialize};

use super::{Account, ArchivedMessage, ConversationClosed, ConversationTransferred, EndReason, Millis, Role, Side};

#[derive(Serialize, Deserialize)]
pub(super) struct AccountRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
    pub categories: Vec<String>,
    pub max_chats: u8,
    pub enabled: bool,
    pub created_at: Millis,
}

impl From<&Account> for AccountRecord {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id.clone(),
            username: a.username.clone(),
            display_name: a.display_name.clone(),
            role: a.role,
            password_hash: a.password_hash.clone(),
            categories: a.categories.clone(),
            max_chats: a.max_chats,
            enabled: a.enabled,
            created_at: a.created_at,
        }
    }
}

impl From<AccountRecord> for Account {
    fn from(a: AccountRecord) -> Self {
        Self {
            id: a.id,
            username: a.username,
            display_name: a.display_name,
            role: a.role,
            password_hash: a.password_hash,
            categories: a.categories,
            max_chats: a.max_chats,
            enabled: a.enabled,
            created_at: a.created_at,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct MessageRecord {
    pub id: String,
    pub seq: u64,
    pub from: Side,
    pub text: String,
    pub at: Millis,
}

impl From<&ArchivedMessage> for MessageRecord {
    fn from(m: &ArchivedMessage) -> Self {
        Self {
            id: m.id.clone(),
            seq: m.seq,
            from: m.from,
            text: m.text.clone(),
            at: m.at,
        }
    }
}

impl From<MessageRecord> for ArchivedMessage {
    fn from(m: MessageRecord) -> Self {
        Self {
            id: m.id,
            seq: m.seq,
            from: m.from,
            text: m.text,
            at: m.at,
        }
    }
}

/// How a conversation ended; stored inside its conversation, so without the id.
#[derive(Serialize, Deserialize)]
pub(super) struct ClosedRecord {
    pub ended_at: Millis,
    pub ended_by: Side,
    pub reason: EndReason,
}

impl From<&ConversationClosed> for ClosedRecord {
    fn from(c: &ConversationClosed) -> Self {
        Self {
            ended_at: c.ended_at,
            ended_by: c.ended_by,
            reason: c.reason,
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
        }
    }
}

/// A transfer of a conversation; stored inside its conversation, so without the id.
/// Every field is written, `None` as null (MongoDB's store matches a retry on them).
#[derive(Serialize, Deserialize)]
pub(super) struct TransferRecord {
    pub at: Millis,
    pub after_seq: u64,
    pub from_agent_id: String,
    pub from_agent_name: String,
    pub to_agent_id: Option<String>,
    pub to_agent_name: Option<String>,
    pub to_category: Option<String>,
    pub note: String,
}

impl From<&ConversationTransferred> for TransferRecord {
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

impl TransferRecord {
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
