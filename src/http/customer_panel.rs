//! The agent's customer panel over HTTP: beside a chat, who the customer is (what they
//! told when joining, how long they waited) and their earlier conversations, each
//! openable. Found by the customer's email where given, otherwise by their browser's
//! returning-visitor key (`store::CustomerProfile::match_key`).
//!
//! Access follows the chat, not the earlier conversations: whoever may read conversation
//! `id` (its agents, any admin) may read the panel and the earlier conversations of the
//! same customer, though another agent served those (that is what the panel is for). An
//! earlier conversation is opened through the current one, so an agent can never reach a
//! conversation by guessing an id: it must belong to the customer of one they served.

use axum::Json;
use axum::extract::Path;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{JsonResult, StoreAnswer};
use super::history::{ConversationDetail, ConversationSummary, detail, readable, summary};
use super::responses::{NotServed, SignedIn, Unavailable};
use super::session::Staff;
use super::{ApiError, AppState, ErrorBody};
use crate::store::CustomerKey;

/// The most earlier conversations the panel lists (newest first).
const EARLIER_MAX: u64 = 20;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(panel)).routes(routes!(earlier))
}

/// How the customer was recognised across conversations.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecognisedBy {
    /// By the email address they gave.
    Email,
    /// By their browser's returning-visitor key (they gave no email).
    Visitor,
    /// By their verified identity on the embedding site (its signed-in user), on any browser.
    Identity,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerPanel {
    /// The conversation the panel is beside.
    pub conversation_id: String,
    pub customer_name: String,
    pub category: Option<String>,
    /// Their email address, when given.
    pub email: Option<String>,
    /// The page they came from (an http(s) URL), when known.
    pub page: Option<String>,
    /// Their IANA time zone, when known.
    pub zone: Option<String>,
    /// When they joined the line and when they were paired (ms since the Unix epoch).
    pub queued_at: i64,
    pub paired_at: i64,
    /// How long they waited in line (seconds).
    pub waited_secs: f64,
    /// How their earlier conversations were found; null: nothing to find them by.
    pub recognised_by: Option<RecognisedBy>,
    /// Their earlier conversations (this one left out), newest first, at most 20.
    pub earlier: Vec<ConversationSummary>,
}

/// The customer of conversation `id`: who they are and their earlier conversations.
#[utoipa::path(get, path = "/api/conversations/{id}/customer", tag = "history",
    params(("id" = String, Path, description = "the conversation id: the live chat's `chat_id`")),
    responses((status = 200, body = CustomerPanel), NotServed, SignedIn, Unavailable))]
async fn panel(Staff(me, state): Staff, Path(id): Path<String>) -> JsonResult<CustomerPanel> {
    let c = readable(&state, &me, &id).await?;
    let profile = &c.opened.customer;
    let key = profile.match_key();
    let earlier = match &key {
        Some(key) => state
            .store
            .customer_conversations(key, EARLIER_MAX + 1)
            .await?
            .iter()
            .filter(|e| e.opened.id != id)
            .take(EARLIER_MAX as usize)
            .map(summary)
            .collect(),
        None => Vec::new(),
    };
    let o = &c.opened;
    Ok(Json(CustomerPanel {
        conversation_id: o.id.clone(),
        customer_name: o.customer_name.clone(),
        category: o.category.clone(),
        email: profile.email.clone(),
        page: profile.page.clone(),
        zone: profile.zone.clone(),
        queued_at: o.queued_at,
        paired_at: o.paired_at,
        waited_secs: (o.paired_at - o.queued_at).max(0) as f64 / 1000.0,
        recognised_by: key.map(|k| match k {
            CustomerKey::Email(_) => RecognisedBy::Email,
            CustomerKey::Visitor(_) => RecognisedBy::Visitor,
            CustomerKey::Identity(_) => RecognisedBy::Identity,
        }),
        earlier,
    }))
}

/// An earlier conversation of conversation `id`'s customer, whole (messages, transfers,
/// agents' notes), for whoever may read `id`.
#[utoipa::path(get, path = "/api/conversations/{id}/customer/conversations/{other}", tag = "history",
    params(("id" = String, Path, description = "the conversation the panel is beside"),
        ("other" = String, Path, description = "an earlier conversation of the same customer (from `earlier`)")),
    responses((status = 200, body = ConversationDetail),
        (status = 404, description = "`not_found`: no such conversation, not the same customer's, or (for an agent) `id` is not one they served", body = ErrorBody),
        SignedIn, Unavailable))]
async fn earlier(Staff(me, state): Staff, Path((id, other)): Path<(String, String)>) -> JsonResult<ConversationDetail> {
    let c = readable(&state, &me, &id).await?;
    if other == id {
        return Ok(Json(detail(&c)));
    }
    let key = c
        .opened
        .customer
        .match_key()
        .ok_or(ApiError::NotFound("conversation"))?;
    let found = state
        .store
        .conversation(&other)
        .await
        .missing_as(ApiError::NotFound("conversation"))?;
    if !key.matches(&found.opened.customer) {
        return Err(ApiError::NotFound("conversation"));
    }
    Ok(Json(detail(&found)))
}
