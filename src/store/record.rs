//! The stored shapes shared by the backends that serialise: an account, an
//! archived message, the end of a conversation, a transfer, a mail, a canned reply and
//! an appointment.
//!
//! The public model types have no serde on purpose (an account's password hash
//! cannot be serialised into a response by accident); the stores convert
//! through these records instead. The account id is named `_id`, MongoDB's
//! primary key; the embedded store's JSON carries the same name. The records of a
//! mail, a canned reply and an appointment carry no id: the embedded store keys its
//! row by it, and a MongoDB document puts its `_id` beside the record's fields
//! (`#[serde(flatten)]`), with what only MongoDB stores (an appointment's `status`,
//! a reply's `owner_key`).

use serde::{Deserialize, Serialize};

use super::{
    Account, Appointment, AppointmentStatus, ArchivedMessage, CannedReply, ConversationClosed, ConversationTransferred,
    EndReason, MailAttachment, MailPurpose, MailStatus, Millis, OutboxMail, Role, Side,
};

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

/// A mail of the outbox, without its id.
#[derive(Serialize, Deserialize)]
pub(super) struct MailRecord {
    pub appointment_id: String,
    pub purpose: MailPurpose,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub attachments: Vec<MailAttachment>,
    pub status: MailStatus,
    pub attempts: u32,
    pub due_at: Millis,
    pub claimed_by: Option<String>,
    pub claim_until: Option<Millis>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub sent_at: Option<Millis>,
}

impl MailRecord {
    pub fn of(m: &OutboxMail) -> Self {
        Self {
            appointment_id: m.appointment_id.clone(),
            purpose: m.purpose,
            to: m.to.clone(),
            subject: m.subject.clone(),
            text: m.text.clone(),
            attachments: m.attachments.clone(),
            status: m.status,
            attempts: m.attempts,
            due_at: m.due_at,
            claimed_by: m.claimed_by.clone(),
            claim_until: m.claim_until,
            last_error: m.last_error.clone(),
            created_at: m.created_at,
            sent_at: m.sent_at,
        }
    }

    pub fn into_model(self, id: String) -> OutboxMail {
        OutboxMail {
            id,
            appointment_id: self.appointment_id,
            purpose: self.purpose,
            to: self.to,
            subject: self.subject,
            text: self.text,
            attachments: self.attachments,
            status: self.status,
            attempts: self.attempts,
            due_at: self.due_at,
            claimed_by: self.claimed_by,
            claim_until: self.claim_until,
            last_error: self.last_error,
            created_at: self.created_at,
            sent_at: self.sent_at,
        }
    }
}

/// A canned reply, without its id.
#[derive(Serialize, Deserialize)]
pub(super) struct CannedRecord {
    pub owner: Option<String>,
    pub shortcut: String,
    pub title: String,
    pub text: String,
    #[serde(default)]
    pub categories: Vec<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl CannedRecord {
    pub fn of(r: &CannedReply) -> Self {
        Self {
            owner: r.owner.clone(),
            shortcut: r.shortcut.clone(),
            title: r.title.clone(),
            text: r.text.clone(),
            categories: r.categories.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }

    pub fn reply(self, id: String) -> CannedReply {
        CannedReply {
            id,
            owner: self.owner,
            shortcut: self.shortcut,
            title: self.title,
            text: self.text,
            categories: self.categories,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// An appointment, without its id and its status (each backend stores the status its
/// own way: the embedded store as `cancelled`, MongoDB as `status`, which its partial
/// index reads).
#[derive(Serialize, Deserialize)]
pub(super) struct AppointmentRecord {
    pub start: Millis,
    pub end: Millis,
    pub representative_id: String,
    pub category: Option<String>,
    pub name: String,
    pub email: String,
    pub comment: String,
    pub cancel_token_hash: String,
    pub created_at: Millis,
    pub cancelled_at: Option<Millis>,
    pub sequence: u32,
    #[serde(default)]
    pub customer_zone: Option<String>,
    #[serde(default)]
    pub customer_hour12: bool,
    #[serde(default)]
    pub cancel_reason: Option<String>,
}

impl AppointmentRecord {
    pub fn of(a: &Appointment) -> Self {
        Self {
            start: a.start,
            end: a.end,
            representative_id: a.representative_id.clone(),
            category: a.category.clone(),
            name: a.name.clone(),
            email: a.email.clone(),
            comment: a.comment.clone(),
            cancel_token_hash: a.cancel_token_hash.clone(),
            created_at: a.created_at,
            cancelled_at: a.cancelled_at,
            sequence: a.sequence,
            customer_zone: a.customer_zone.clone(),
            customer_hour12: a.customer_hour12,
            cancel_reason: a.cancel_reason.clone(),
        }
    }

    pub fn into_model(self, id: String, status: AppointmentStatus) -> Appointment {
        Appointment {
            id,
            start: self.start,
            end: self.end,
            representative_id: self.representative_id,
            category: self.category,
            name: self.name,
            email: self.email,
            comment: self.comment,
            status,
            cancel_token_hash: self.cancel_token_hash,
            created_at: self.created_at,
            cancelled_at: self.cancelled_at,
            sequence: self.sequence,
            customer_zone: self.customer_zone,
            customer_hour12: self.customer_hour12,
            cancel_reason: self.cancel_reason,
        }
    }
}
