//! A returning customer's own conversations, for the customer page and the widget: the
//! conversations started from this browser, and those of the customer's verified identity
//! on the embedding site (from any browser), newest first, each with its status and last
//! line, so the customer can continue one (`join` with `conversation`).
//!
//! The browser's visitor key (a long random secret the page made and keeps) is a
//! credential, sent in the `X-Visitor-Key` header (never in the address, which logs and
//! referrers keep); so is an identity with its hash (`core::identity`, in `X-Identifier`
//! and `X-Identifier-Hash`). A key that started nothing gets an empty list, as an unknown
//! one does, and an identity whose hash does not verify adds nothing, as an unknown one
//! does: the answer tells nothing of anyone else. An email is never enough: anyone can
//! type one.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::history::{MessageView, message_view};
use super::responses::Unavailable;
use super::{ApiError, AppState};
use crate::core::customer_details;
use crate::store::{ConversationStatus, CustomerKey};

/// The header that carries the browser's visitor key.
pub const VISITOR_HEADER: &str = "x-visitor-key";
/// The headers that carry the customer's identity (percent-encoded UTF-8) and its hash.
pub const IDENTIFIER_HEADER: &str = "x-identifier";
pub const IDENTIFIER_HASH_HEADER: &str = "x-identifier-hash";
/// The most conversations listed: a customer page shows a short list, not an archive.
const LISTED: u64 = 20;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(own_conversations))
}

/// One of the customer's own conversations, as their page lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnConversation {
    /// The conversation id: `join.conversation` continues it.
    pub id: String,
    /// The category id (a continued conversation stays in it).
    pub category: Option<String>,
    /// The name the customer gave in it (a continued one goes on under it).
    pub customer_name: String,
    /// The agent who had it last.
    pub agent_name: String,
    pub status: ConversationStatus,
    /// When it started (ms since the Unix epoch).
    pub started_at: i64,
    /// Its last line, if any.
    pub last_message: Option<MessageView>,
    /// When its last line is an agent's: the agent who wrote it (not necessarily
    /// `agent_name`: a conversation handed on has lines by several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message_by: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnConversations {
    /// Newest first, at most 20.
    pub conversations: Vec<OwnConversation>,
    /// Whether a conversation can be continued on this desk: always true (on one node and
    /// on several), kept for pages written when several nodes could not.
    pub can_continue: bool,
}

/// The conversations this browser started (by its visitor key), and those of the
/// customer's verified identity, newest first.
#[utoipa::path(get, path = "/api/visitor/conversations", tag = "public",
    params(("X-Visitor-Key" = String, Header, example = "b7f3c2a1e9d84f0c9a1b", description = "the browser's visitor key (16 to 64 letters, digits, '_' or '-'), as sent in `join.visitor`"),
        ("X-Identifier" = Option<String>, Header, description = "the customer's identity on the embedding site, percent-encoded (UTF-8), as sent in `join.identifier`; ignored unless `X-Identifier-Hash` verifies"),
        ("X-Identifier-Hash" = Option<String>, Header, description = "hex HMAC-SHA256 of the identifier under the desk's identity secret, as sent in `join.identifier_hash`")),
    responses((status = 200, body = OwnConversations),
        (status = 400, description = "`invalid_visitor`: no key, or not a key's shape", body = super::ErrorBody),
        Unavailable))]
async fn own_conversations(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<OwnConversations>, ApiError> {
    let raw = headers.get(VISITOR_HEADER).and_then(|v| v.to_str().ok());
    let key = customer_details::visitor(raw)?
        .ok_or_else(|| ApiError::invalid("invalid_visitor", "send the browser's visitor key in X-Visitor-Key"))?;
    let mut keys = vec![CustomerKey::Visitor(key)];
    keys.extend(identity(&state, &headers).await.map(CustomerKey::Identity));
    let mut found = Vec::new();
    for key in &keys {
        let theirs = state.store.customer_conversations(key, LISTED).await?;
        // Only what this key started (the store's index also holds emails, never matched here).
        found.extend(theirs.into_iter().filter(|c| key.matches(&c.opened.customer)));
    }
    // One list: each once, newest first, at most LISTED.
    found.sort_by(|a, b| (b.opened.paired_at, &b.opened.id).cmp(&(a.opened.paired_at, &a.opened.id)));
    found.dedup_by(|a, b| a.opened.id == b.opened.id);
    found.truncate(LISTED as usize);
    let ids: Vec<String> = found.iter().map(|c| c.opened.id.clone()).collect();
    let records = state.store.conversation_records(&ids).await?;
    let conversations = found
        .iter()
        .map(|c| OwnConversation {
            id: c.opened.id.clone(),
            category: c.opened.category.clone(),
            customer_name: c.opened.customer_name.clone(),
            agent_name: c.opened.agent_name.clone(),
            // An archive from before statuses: an ended conversation reads resolved.
            status: records
                .iter()
                .find(|r| r.id == c.opened.id)
                .map(|r| r.status)
                .unwrap_or(match c.closed {
                    Some(_) => ConversationStatus::Resolved,
                    None => ConversationStatus::Open,
                }),
            started_at: c.opened.paired_at,
            last_message: last(c).map(message_view),
            last_message_by: last(c)
                .filter(|m| m.from == crate::store::Side::Agent)
                .map(|m| c.line_authors().of(m.seq).to_string()),
        })
        .collect();
    Ok(Json(OwnConversations {
        conversations,
        can_continue: true,
    }))
}

/// The customer's identity, when the headers name one whose hash verifies.
async fn identity(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let identifier = percent_encoding::percent_decode_str(header(IDENTIFIER_HEADER)?)
        .decode_utf8()
        .ok()?;
    crate::identity_secret::verify(&state.store, Some(&identifier), header(IDENTIFIER_HASH_HEADER)).await
}

/// A conversation's last line, if any.
fn last(c: &crate::store::Conversation) -> Option<&crate::store::ArchivedMessage> {
    c.messages.iter().max_by_key(|m| m.seq)
}
