//! Webhook events: what each type carries (`data`) and the envelope every delivery's body
//! is (`id`, `type`, `created_at`, `data`). The field names here are the documented,
//! stable schema (docs/webhooks.md): fields may be added, none renamed or removed.

use serde::Serialize;
use serde_json::{Value, json};

use crate::core::conversation::Status;
use crate::store::{
    Appointment, ArchivedMessage, ConversationNote, ConversationOpened, ConversationRecord, ConversationStatus,
    ConversationTransferred, Millis, OfflineMessage, Rating, Side,
};

/// One event, before it is fanned out to the endpoints that want it.
#[derive(Debug, Clone)]
pub struct Event {
    /// UUIDv7.
    pub id: String,
    pub event_type: &'static str,
    /// What in-order delivery is kept within: the conversation (or offline message).
    pub ordering_key: String,
    pub created_at: Millis,
    pub data: Value,
}

/// The schema's version every body carries: fields may be added within it; a change a
/// receiver must know of (a field renamed, removed or of another type) would be a new one.
pub const VERSION: &str = "1";

/// The body of a delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Envelope<'a> {
    /// The schema's version: "1".
    #[schema(example = "1")]
    pub version: &'a str,
    /// The event's id: the same in every retry (a receiver drops ids it has seen).
    pub id: &'a str,
    /// One of the event types (`conversation.created` …).
    #[serde(rename = "type")]
    pub event_type: &'a str,
    /// When it happened, ms since the Unix epoch.
    pub created_at: Millis,
    /// What the type carries: each type's `data` schema (`webhooks` in this document,
    /// docs/webhooks.md).
    #[schema(value_type = Object)]
    pub data: &'a Value,
}

impl Event {
    fn new(event_type: &'static str, ordering_key: &str, created_at: Millis, data: Value) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            event_type,
            ordering_key: ordering_key.to_string(),
            created_at,
            data,
        }
    }

    /// An event that happens once to `what` (a conversation's creation, a message), whose
    /// id is therefore derived from it: two nodes that both make it (a chat's lines archived
    /// again by the node its chat ends on, or after a hand-over) make one event, which the
    /// store keeps as one delivery per endpoint, and a receiver can drop a repeat by its id.
    fn once(event_type: &'static str, what: &str, ordering_key: &str, created_at: Millis, data: Value) -> Self {
        let name = format!("{event_type}:{what}");
        Self {
            id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string(),
            ..Self::new(event_type, ordering_key, created_at, data)
        }
    }

    /// The JSON body sent, exactly as signed.
    pub fn body(&self) -> String {
        serde_json::to_string(&Envelope {
            version: VERSION,
            id: &self.id,
            event_type: self.event_type,
            created_at: self.created_at,
            data: &self.data,
        })
        .unwrap_or_default()
    }

    /// A customer was paired with an agent: their conversation exists.
    pub fn conversation_created(opened: &ConversationOpened) -> Self {
        Self::once(
            "conversation.created",
            &opened.id,
            &opened.id,
            opened.paired_at,
            json!({
                "conversation_id": opened.id,
                "category": opened.category,
                "customer_name": opened.customer_name,
                "agent_id": opened.agent_id,
                "agent_name": opened.agent_name,
                "queued_at": opened.queued_at,
                "paired_at": opened.paired_at,
            }),
        )
    }

    /// A conversation created earlier goes to a person: the one who takes it after its bot
    /// handed it over, or the one a customer continuing it is paired with. `previous`: who
    /// held it before (a bot's id is `bot:<name>`).
    pub fn conversation_assigned(opened: &ConversationOpened, previous: Option<&str>) -> Self {
        let to = (opened.agent_id.as_str(), opened.agent_name.as_str());
        Self::assigned(&opened.id, opened.category.as_deref(), to, previous, opened.paired_at)
    }

    /// A conversation nobody is live in was put in `to`'s list (id, name) by its holder, an
    /// admin, or an agent taking it unassigned; `previous`: its holder before.
    pub fn conversation_reassigned(
        record: &ConversationRecord,
        to: (&str, &str),
        previous: Option<&str>,
        at: Millis,
    ) -> Self {
        Self::assigned(&record.id, Some(&record.category), to, previous, at)
    }

    fn assigned(
        id: &str,
        category: Option<&str>,
        (agent_id, agent_name): (&str, &str),
        previous: Option<&str>,
        at: Millis,
    ) -> Self {
        Self::new(
            "conversation.assigned",
            id,
            at,
            json!({
                "conversation_id": id,
                "category": category,
                "agent_id": agent_id,
                "agent_name": agent_name,
                "previous_agent_id": previous,
                "at": at,
            }),
        )
    }

    /// An agent handed a running conversation on: to a colleague (`to_agent_id`) or to a
    /// category's line (`to_agent_id` null). `category`: the one it is in now. The
    /// transfer's note is not sent: it is for colleagues, as internal notes are.
    pub fn conversation_transferred(t: &ConversationTransferred, category: &str) -> Self {
        let what = format!(
            "{}@{}:{}>{}/{}",
            t.id,
            t.at,
            t.from_agent_id,
            t.to_agent_id.as_deref().unwrap_or(""),
            t.to_category.as_deref().unwrap_or("")
        );
        Self::once(
            "conversation.transferred",
            &what,
            &t.id,
            t.at,
            json!({
                "conversation_id": t.id,
                "category": category,
                "from_agent_id": t.from_agent_id,
                "from_agent_name": t.from_agent_name,
                "to_agent_id": t.to_agent_id,
                "to_agent_name": t.to_agent_name,
                "to_category": t.to_category,
                "at": t.at,
            }),
        )
    }

    /// A transfer gave a conversation to the named agent `t.to_agent_id`: handed straight
    /// to them, or taken by them from the line it was handed to at `handed_at` (which,
    /// with the agent, names the assignment: two nodes recording it make one event).
    pub fn assigned_by_transfer(t: &ConversationTransferred, category: &str, handed_at: Millis) -> Option<Self> {
        let agent = t.to_agent_id.as_deref()?;
        Some(Self::once(
            "conversation.assigned",
            &format!("{}@{handed_at}:{agent}", t.id),
            &t.id,
            t.at,
            json!({
                "conversation_id": t.id,
                "category": category,
                "agent_id": agent,
                "agent_name": t.to_agent_name,
                "previous_agent_id": t.from_agent_id,
                "at": t.at,
            }),
        ))
    }

    /// A conversation's status changed (`resolved` included).
    pub fn status_changed(record: &ConversationRecord, from: Status, at: Millis) -> Self {
        Self::new(
            "conversation.status_changed",
            &record.id,
            at,
            json!({
                "conversation_id": record.id,
                "category": record.category,
                "status": record.status,
                "previous_status": status_name(from),
                "snoozed_until": record.snoozed_until,
                "holder": record.holder,
                "resolved_at": record.resolved_at,
            }),
        )
    }

    /// A line of the customer's or the agent's (never the hub's own, never a note): `None`
    /// for other lines.
    pub fn message_created(conversation_id: &str, message: &ArchivedMessage) -> Option<Self> {
        if message.from == Side::System {
            return None;
        }
        Some(Self::once(
            "message.created",
            &message.id,
            conversation_id,
            message.at,
            json!({
                "conversation_id": conversation_id,
                "message_id": message.id,
                "seq": message.seq,
                "from": message.from,
                "text": message.text,
                "via": message.via,
                "at": message.at,
            }),
        ))
    }

    /// An agent's internal note: its own type, so only an endpoint that asks for notes by
    /// name gets one (they are for staff; `message.created` never carries them).
    pub fn note_created(note: &ConversationNote) -> Self {
        Self::once(
            "note.created",
            &note.id,
            &note.conversation_id,
            note.at,
            json!({
                "conversation_id": note.conversation_id,
                "note_id": note.id,
                "agent_id": note.agent_id,
                "agent_name": note.agent_name,
                "text": note.text,
                "at": note.at,
            }),
        )
    }

    pub fn rating_given(conversation_id: &str, rating: &Rating) -> Self {
        Self::new(
            "rating.given",
            conversation_id,
            rating.at,
            json!({
                "conversation_id": conversation_id,
                "score": rating.score,
                "scale": rating.scale,
                "comment": rating.comment,
                "at": rating.at,
            }),
        )
    }

    /// A customer booked appointment `a`.
    pub fn appointment_booked(a: &Appointment) -> Self {
        Self::appointment("appointment.booked", a, &a.id, a.created_at, |data| {
            data.insert("name".into(), json!(a.name));
            data.insert("email".into(), json!(a.email));
            data.insert("comment".into(), json!(a.comment));
            data.insert("created_at".into(), json!(a.created_at));
        })
    }

    /// Appointment `was` moved to another slot (or representative): `now`, at `at`.
    pub fn appointment_rescheduled(was: &Appointment, now: &Appointment, at: Millis) -> Self {
        let what = format!("{}#{}", now.id, now.sequence);
        Self::appointment("appointment.rescheduled", now, &what, at, |data| {
            data.insert("previous_start".into(), json!(was.start));
            data.insert("previous_end".into(), json!(was.end));
            data.insert("previous_representative_id".into(), json!(was.representative_id));
            data.insert("at".into(), json!(at));
        })
    }

    /// Appointment `a` was cancelled (by its customer or by staff).
    pub fn appointment_cancelled(a: &Appointment) -> Self {
        let at = a.cancelled_at.unwrap_or(a.created_at);
        Self::appointment("appointment.cancelled", a, &a.id, at, |data| {
            data.insert("reason".into(), json!(a.cancel_reason));
            data.insert("cancelled_at".into(), json!(a.cancelled_at));
        })
    }

    /// An appointment's event (once per `what`, in order per appointment): the fields
    /// every appointment event has, and those `more` adds.
    fn appointment(
        event_type: &'static str,
        a: &Appointment,
        what: &str,
        at: Millis,
        more: impl FnOnce(&mut serde_json::Map<String, Value>),
    ) -> Self {
        let mut data = serde_json::Map::new();
        data.insert("appointment_id".into(), json!(a.id));
        data.insert("category".into(), json!(a.category));
        data.insert("representative_id".into(), json!(a.representative_id));
        data.insert("start".into(), json!(a.start));
        data.insert("end".into(), json!(a.end));
        data.insert("sequence".into(), json!(a.sequence));
        more(&mut data);
        Self::once(event_type, what, &a.id, at, Value::Object(data))
    }

    pub fn offline_message_created(message: &OfflineMessage) -> Self {
        Self::new(
            "offline_message.created",
            &message.id,
            message.created_at,
            json!({
                "offline_message_id": message.id,
                "category": message.category,
                "name": message.name,
                "email": message.email,
                "text": message.text,
                "created_at": message.created_at,
            }),
        )
    }
}

fn status_name(status: Status) -> ConversationStatus {
    match status {
        Status::Open => ConversationStatus::Open,
        Status::Pending => ConversationStatus::Pending,
        Status::Snoozed { .. } => ConversationStatus::Snoozed,
        Status::Resolved => ConversationStatus::Resolved,
    }
}
