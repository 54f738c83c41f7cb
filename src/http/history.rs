//! The conversation archive over HTTP: agents read their own past
//! conversations, admins all of them; filtered, paged, newest first.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::responses::{SignedIn, Unavailable};
use super::session::Authed;
use super::{ApiError, AppState, ErrorBody};
use crate::store::{
    Conversation, ConversationFilter, ConversationKind, EndReason, Page, Rating, Role, Side, StoreError,
};

/// The most conversations one page returns.
const MAX_PAGE: u64 = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(one))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only this category id.
    pub category: Option<String>,
    /// Only this agent's conversations (admins; agents always see only their own).
    pub agent_id: Option<String>,
    /// Paired at or after this time (ms since the Unix epoch).
    pub from: Option<i64>,
    /// Paired before this time (ms since the Unix epoch).
    pub to: Option<i64>,
    #[serde(default)]
    pub offset: u64,
    /// 1 to 200, default 50.
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationSummary {
    pub id: String,
    pub kind: ConversationKind,
    pub category: Option<String>,
    pub customer_name: String,
    pub agent_id: String,
    pub agent_name: String,
    pub queued_at: i64,
    pub paired_at: i64,
    pub ended_at: Option<i64>,
    pub ended_by: Option<Side>,
    pub reason: Option<EndReason>,
    pub message_count: usize,
    /// The customer's rating, once given (`POST /api/ratings`).
    pub rating: Option<Rating>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub seq: u64,
    pub from: Side,
    pub text: String,
    pub at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub summary: ConversationSummary,
    pub messages: Vec<MessageView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    /// Conversations matching the filter, before paging.
    pub total: u64,
    pub items: Vec<ConversationSummary>,
}

fn summary(c: &Conversation) -> ConversationSummary {
    let o = &c.opened;
    ConversationSummary {
        id: o.id.clone(),
        kind: o.kind,
        category: o.category.clone(),
        customer_name: o.customer_name.clone(),
        agent_id: o.agent_id.clone(),
        agent_name: o.agent_name.clone(),
        queued_at: o.queued_at,
        paired_at: o.paired_at,
        ended_at: c.closed.as_ref().map(|e| e.ended_at),
        ended_by: c.closed.as_ref().map(|e| e.ended_by),
        reason: c.closed.as_ref().map(|e| e.reason),
        message_count: c.messages.len(),
        rating: c.rating.clone(),
    }
}

/// Past conversations, newest first. Agents see only their own.
#[utoipa::path(get, path = "/api/conversations", tag = "history", params(HistoryQuery),
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, body = ConversationPage),
        (status = 400, description = "`bad_query`: a parameter is malformed or out of range", body = ErrorBody),
        SignedIn, Unavailable))]
async fn list(
    Authed(me): Authed,
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConversationPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("bad_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "bad_query",
            format!("limit must be from 1 to {MAX_PAGE}"),
        ));
    }
    let agent_id = match me.role {
        Role::Admin => q.agent_id,
        Role::Agent => Some(me.id.clone()),
    };
    let filter = ConversationFilter {
        category: q.category,
        agent_id,
        from: q.from,
        to: q.to,
    };
    let (items, total) = state
        .store
        .conversations(
            &filter,
            Page {
                offset: q.offset,
                limit,
            },
        )
        .await?;
    Ok(Json(ConversationPage {
        total,
        items: items.iter().map(summary).collect(),
    }))
}

/// One conversation with every message. Agents may only open their own.
#[utoipa::path(get, path = "/api/conversations/{id}", tag = "history",
    params(("id" = String, Path, description = "the conversation id: the live chat's `chat_id`")),
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, body = ConversationDetail),
        (status = 404, description = "`not_found`: no such conversation, or (for an agent) not one of theirs", body = ErrorBody),
        SignedIn, Unavailable))]
async fn one(
    Authed(me): Authed,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ConversationDetail>, ApiError> {
    let c = match state.store.conversation(&id).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("conversation")),
        Err(e) => return Err(e.into()),
    };
    // Someone else's conversation looks exactly like a missing one to an agent.
    if me.role == Role::Agent && c.opened.agent_id != me.id {
        return Err(ApiError::NotFound("conversation"));
    }
    let messages = c
        .messages
        .iter()
        .map(|m| MessageView {
            id: m.id.clone(),
            seq: m.seq,
            from: m.from,
            text: m.text.clone(),
            at: m.at,
        })
        .collect();
    Ok(Json(ConversationDetail {
        summary: summary(&c),
        messages,
    }))
}
