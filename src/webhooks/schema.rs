//! The webhook payloads in the OpenAPI document: the envelope every delivery's body is
//! ([`super::event::Envelope`], as `WebhookEnvelope`) and each event type's `data`, as
//! component schemas, and the OpenAPI 3.1 `webhooks` section naming them per event type,
//! with the signature headers. utoipa has no `webhooks` yet, so [`section`] is added to the
//! document's JSON where it is served. The structs here are the documented schema only:
//! the events are made in `event.rs`, and a hub test checks real deliveries against this.

// Never built: each is the schema of a `data` object `event.rs` makes.
#![allow(dead_code)]

use serde_json::{Value, json};
use utoipa::openapi::{Components, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::sign::{EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::store::{ConversationStatus, Millis};

/// `conversation.created`.
#[derive(ToSchema)]
pub struct WebhookConversationCreated {
    conversation_id: String,
    category: String,
    customer_name: String,
    /// The agent's account id, or `bot:<name>` when the category's bot takes it first.
    agent_id: String,
    agent_name: String,
    queued_at: Millis,
    paired_at: Millis,
}

/// `conversation.assigned`.
#[derive(ToSchema)]
pub struct WebhookConversationAssigned {
    conversation_id: String,
    category: String,
    agent_id: String,
    agent_name: Option<String>,
    /// Who held it before (`bot:<name>` after a bot; the transferring agent after a transfer).
    previous_agent_id: Option<String>,
    at: Millis,
}

/// `conversation.transferred`.
#[derive(ToSchema)]
pub struct WebhookConversationTransferred {
    conversation_id: String,
    /// The category it is in now.
    category: String,
    from_agent_id: String,
    from_agent_name: String,
    /// The colleague it was handed to; null when handed to a category's line.
    to_agent_id: Option<String>,
    to_agent_name: Option<String>,
    /// The line it was handed to (with a colleague: the category they moved it to).
    to_category: Option<String>,
    at: Millis,
}

/// `conversation.status_changed`.
#[derive(ToSchema)]
pub struct WebhookConversationStatusChanged {
    conversation_id: String,
    category: String,
    status: ConversationStatus,
    previous_status: ConversationStatus,
    snoozed_until: Option<Millis>,
    /// The agent whose list it is in.
    holder: Option<String>,
    /// When it was last resolved (`null` if never): kept after it opens again, so `status`
    /// says what it is now.
    resolved_at: Option<Millis>,
}

/// `message.created`.
#[derive(ToSchema)]
pub struct WebhookMessageCreated {
    conversation_id: String,
    message_id: String,
    /// Its place in the conversation.
    seq: u64,
    /// `customer` or `agent` (a bot's lines are `agent`).
    from: String,
    /// `bot` for a bot's line, `email` for a customer's answer by mail.
    via: Option<String>,
    text: String,
    at: Millis,
}

/// `note.created`: an agent's internal note, for staff only (sent only to endpoints that
/// ask for it by name).
#[derive(ToSchema)]
pub struct WebhookNoteCreated {
    conversation_id: String,
    note_id: String,
    agent_id: String,
    agent_name: String,
    text: String,
    at: Millis,
}

/// `rating.given`.
#[derive(ToSchema)]
pub struct WebhookRatingGiven {
    conversation_id: String,
    score: u8,
    scale: u8,
    comment: Option<String>,
    at: Millis,
}

/// `offline_message.created`.
#[derive(ToSchema)]
pub struct WebhookOfflineMessageCreated {
    offline_message_id: String,
    category: String,
    name: String,
    email: String,
    text: String,
    created_at: Millis,
}

/// `appointment.booked`.
#[derive(ToSchema)]
pub struct WebhookAppointmentBooked {
    appointment_id: String,
    /// Null for the desk's general calendar.
    category: Option<String>,
    representative_id: String,
    start: Millis,
    end: Millis,
    /// The invitation's `SEQUENCE`: 0.
    sequence: u32,
    name: String,
    email: String,
    comment: String,
    created_at: Millis,
}

/// `appointment.rescheduled`.
#[derive(ToSchema)]
pub struct WebhookAppointmentRescheduled {
    appointment_id: String,
    category: Option<String>,
    representative_id: String,
    start: Millis,
    end: Millis,
    /// Raised by each change, as its invitation's.
    sequence: u32,
    previous_start: Millis,
    previous_end: Millis,
    previous_representative_id: String,
    at: Millis,
}

/// `appointment.cancelled`.
#[derive(ToSchema)]
pub struct WebhookAppointmentCancelled {
    appointment_id: String,
    category: Option<String>,
    representative_id: String,
    start: Millis,
    end: Millis,
    sequence: u32,
    /// The customer's reason, if they gave one.
    reason: Option<String>,
    cancelled_at: Option<Millis>,
}

/// A kind of POST (an event type, a bot's frame type), its body's schema's component
/// name and the schema.
pub(super) type Named = (&'static str, String, RefOr<Schema>);

/// The POST of `kind`, whose body (or its `data`) is `T`.
pub(super) fn named<T: ToSchema>(kind: &'static str) -> Named {
    (kind, T::name().into_owned(), T::schema())
}

/// Each event type with its `data` schema.
fn data() -> [Named; 11] {
    [
        named::<WebhookConversationCreated>("conversation.created"),
        named::<WebhookConversationAssigned>("conversation.assigned"),
        named::<WebhookConversationTransferred>("conversation.transferred"),
        named::<WebhookConversationStatusChanged>("conversation.status_changed"),
        named::<WebhookMessageCreated>("message.created"),
        named::<WebhookNoteCreated>("note.created"),
        named::<WebhookRatingGiven>("rating.given"),
        named::<WebhookOfflineMessageCreated>("offline_message.created"),
        named::<WebhookAppointmentBooked>("appointment.booked"),
        named::<WebhookAppointmentRescheduled>("appointment.rescheduled"),
        named::<WebhookAppointmentCancelled>("appointment.cancelled"),
    ]
}

/// The envelope's component name.
const ENVELOPE: &str = "WebhookEnvelope";

/// Adds the envelope's and every event type's `data` schema to `components`.
pub fn register(components: &mut Components) {
    components
        .schemas
        .insert(ENVELOPE.to_string(), super::event::Envelope::schema());
    for (_, name, schema) in data() {
        components.schemas.insert(name, schema);
    }
}

/// The signature headers of a POST signed with `secret_is` (what the key is), its id and
/// type headers saying `id_is` and `type_is`.
pub(super) fn signed_headers(secret_is: &str, id_is: &str, type_is: &str) -> Value {
    let header = |name: &str, what: &str| {
        // As docs/webhooks.md writes them (`Switchboard-Signature`); names are case-blind.
        let name: Vec<String> = name
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase())
                    .into_iter()
                    .chain(chars)
                    .collect()
            })
            .collect();
        json!({"name": name.join("-"), "in": "header", "required": true, "description": what, "schema": {"type": "string"}})
    };
    json!([
        header(
            TIMESTAMP_HEADER,
            "Unix seconds when this attempt was sent; refuse an old one (replays)"
        ),
        header(
            SIGNATURE_HEADER,
            &format!("`v1=` and the hex HMAC-SHA256, keyed with {secret_is}, of `<timestamp>.<raw body>`")
        ),
        header(EVENT_ID_HEADER, id_is),
        header(EVENT_TYPE_HEADER, type_is),
    ])
}

/// The OpenAPI 3.1 `webhooks` object's entries for the events: per event type, the POST
/// a receiver gets (the envelope with that `type` and its `data`, the signature headers)
/// and what it answers. (A webhook bot's calls are `super::bot_call_schema`'s.)
pub fn section() -> serde_json::Map<String, Value> {
    let headers = signed_headers(
        "the endpoint's secret",
        "the event's `id`, the same in every retry",
        "the event's `type`",
    );
    let mut section = serde_json::Map::new();
    for (event_type, name, _) in data() {
        let body = json!({"allOf": [
            {"$ref": format!("#/components/schemas/{ENVELOPE}")},
            {"type": "object", "required": ["type", "data"], "properties": {
                "type": {"const": event_type},
                "data": {"$ref": format!("#/components/schemas/{name}")},
            }},
        ]});
        section.insert(
            event_type.to_string(),
            json!({"post": {
                "summary": format!("`{event_type}`, POSTed to each endpoint that wants it (docs/webhooks.md)"),
                "parameters": headers,
                "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
                "responses": {"2XX": {"description": "delivered; any other answer (or none within 10 s) is tried again later"}},
            }}),
        );
    }
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_its_data_schema() {
        let documented: Vec<&str> = data().iter().map(|(t, _, _)| *t).collect();
        assert_eq!(documented, crate::core::webhooks::EVENT_TYPES);
    }
}
