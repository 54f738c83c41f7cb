//! The calls a webhook bot gets, in the OpenAPI document's `webhooks` section beside the
//! webhook payloads: each frame a socket bot would be sent (`conversation`, the
//! customer's `message`, `customer_email`, `conversation_ended`; docs/protocol.md, "Webhook
//! bots"), POSTed as the frame's JSON, signed with the bot's secret. Listed under
//! `bot.<frame type>` so they never clash with an event type. The structs are the
//! documented schema only: the frames are `protocol::ServerFrame`'s, and a hub test checks
//! real calls against these.

// Never built: each is the schema of a frame `protocol.rs` makes.
#![allow(dead_code)]

use serde_json::{Value, json};
use utoipa::openapi::Components;
use utoipa::{PartialSchema, ToSchema};

use super::schema::{Named, named};
use crate::store::{Millis, Via};

/// A line of a bot's conversation, as its `message` frame and a `conversation`'s
/// `messages` carry it.
#[derive(ToSchema)]
pub struct BotCallLine {
    chat_id: String,
    /// Unique over all conversations.
    id: String,
    /// Its place in the conversation, from 1.
    seq: u64,
    /// `customer`, or `agent` for the bot's own lines (with `via: "bot"`).
    from: String,
    text: String,
    at: Millis,
    /// The sender's own id for the line, when it gave one.
    client_id: Option<String>,
    /// `bot` for the bot's lines; `email` for a customer's answer by mail.
    via: Option<Via>,
}

/// `conversation`: a customer came to the bot.
#[derive(ToSchema)]
pub struct BotCallConversation {
    chat_id: String,
    category: String,
    customer_name: String,
    /// The address the customer gave, if any.
    email: Option<String>,
    /// Its latest lines, oldest first (at most 50).
    messages: Vec<BotCallLine>,
}

/// `customer_email`: the customer gave their address.
#[derive(ToSchema)]
pub struct BotCallCustomerEmail {
    chat_id: String,
    email: String,
}

/// `conversation_ended`: the conversation is no longer the bot's.
#[derive(ToSchema)]
pub struct BotCallConversationEnded {
    chat_id: String,
    /// `handed_over`, `resolved`, `customer_left` or `customer_gone`.
    reason: String,
    /// With `handed_over`: `asked`, `timeout`, `bot_unreachable` or `node_lost`.
    why: Option<String>,
}

/// Each frame a webhook bot is called with, in the order docs/protocol.md lists them.
fn frames() -> [Named; 4] {
    [
        named::<BotCallConversation>("conversation"),
        named::<BotCallLine>("message"),
        named::<BotCallCustomerEmail>("customer_email"),
        named::<BotCallConversationEnded>("conversation_ended"),
    ]
}

/// Adds the frames' schemas (and a line's, and `Via`, which a line names) to `components`.
pub fn register(components: &mut Components) {
    components.schemas.insert(Via::name().into_owned(), Via::schema());
    components
        .schemas
        .insert(BotCallLine::name().into_owned(), BotCallLine::schema());
    for (_, name, schema) in frames() {
        components.schemas.insert(name, schema);
    }
}

/// The section's entries for a webhook bot's calls: `bot.<frame type>` → the POST.
pub fn section() -> serde_json::Map<String, Value> {
    let headers = super::schema::signed_headers(
        "the bot's secret (shown when its URL was set)",
        "the call's id: the same when a call that failed at a replaced URL is made again at the new one",
        "the frame's `type`",
    );
    frames()
        .into_iter()
        .map(|(frame_type, name, _)| {
            let body = json!({"allOf": [
                {"$ref": format!("#/components/schemas/{name}")},
                {"type": "object", "required": ["type"], "properties": {"type": {"const": frame_type}}},
            ]});
            let post = json!({"post": {
                "summary": format!("`{frame_type}`, POSTed to a webhook bot's URL: the frame a socket bot would get (docs/protocol.md, Webhook bots)"),
                "parameters": headers,
                "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
                "responses": {"2XX": {"description": "taken; answer at once and act afterwards over `/api/bot/…`. Any other answer, or none within `BOT_REPLY_TIMEOUT_SECS` (10 s at most), hands the conversation over to people"}},
            }});
            (format!("bot.{frame_type}"), post)
        })
        .collect()
}
