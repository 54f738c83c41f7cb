//! Canned replies over HTTP: the desk's list, kept by admins
//! (`/api/admin/canned-replies`), and each agent's own (`/api/canned-replies`), where an
//! agent also reads the desk's replies that apply to their categories.
//!
//! A shortcut is `[a-z0-9_-]{1,32}`, unique per owner (the store's unique key decides:
//! 409 `shortcut_taken`); a title has 1 to 100 characters; a text at most
//! `MAX_MESSAGE_LEN` characters (it becomes a message); categories must exist.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult, StatusJson, StoreAnswer};
use super::responses::{AdminsOnly, NoDeskReply, ReplyRules, SignedIn, Unavailable};
use super::session::{Admin, Staff};
use super::{ApiError, AppState, ErrorBody};
use crate::core::names::checked_name;
use crate::store::{CannedReply, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_desk, create_desk))
        .routes(routes!(update_desk, delete_desk))
        .routes(routes!(list_mine, create_mine))
        .routes(routes!(update_mine, delete_mine))
}

/// A canned reply as written by an admin or an agent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CannedReplyInput {
    /// `[a-z0-9_-]{1,32}`, unique per owner (the desk, or the agent).
    pub shortcut: String,
    /// 1 to 100 characters.
    pub title: String,
    /// 1 to `MAX_MESSAGE_LEN` characters; `{customer}`, `{customer_first_name}` and `{agent}` are filled in by the console.
    pub text: String,
    /// Category ids it applies to; empty or absent: all.
    #[serde(default)]
    pub categories: Vec<String>,
}

/// A canned reply as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CannedReplyView {
    pub id: String,
    pub shortcut: String,
    pub title: String,
    pub text: String,
    /// Category ids it applies to; empty: all.
    pub categories: Vec<String>,
    /// `desk` (kept by admins) or `own` (the caller's).
    pub scope: CannedScope,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CannedScope {
    Desk,
    Own,
}

impl From<CannedReply> for CannedReplyView {
    fn from(r: CannedReply) -> Self {
        Self {
            scope: if r.owner.is_some() {
                CannedScope::Own
            } else {
                CannedScope::Desk
            },
            id: r.id,
            shortcut: r.shortcut,
            title: r.title,
            text: r.text,
            categories: r.categories,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The reply `input` describes, checked, for `owner`, with a new id (creations) or `id`.
async fn checked(
    state: &AppState,
    input: CannedReplyInput,
    id: String,
    owner: Option<String>,
) -> Result<CannedReply, ApiError> {
    let shortcut = input.shortcut.trim().to_string();
    let shortcut_ok = (1..=32).contains(&shortcut.len())
        && shortcut
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !shortcut_ok {
        return Err(ApiError::invalid(
            "invalid_shortcut",
            "a shortcut has 1 to 32 lowercase letters, digits, '_' or '-'",
        ));
    }
    let title =
        checked_name(&input.title, 100).map_err(|e| ApiError::invalid("invalid_title", format!("title: {e}")))?;
    let max = state.settings.max_message_len;
    let len = input.text.chars().count();
    if input.text.trim().is_empty() || len > max {
        return Err(ApiError::invalid(
            "invalid_text",
            format!("a text has 1 to {max} characters, not {len}"),
        ));
    }
    let categories = super::admin::valid_categories(state, input.categories).await?;
    let now = crate::clock::now_ms();
    Ok(CannedReply {
        id,
        owner,
        shortcut,
        title,
        text: input.text,
        categories,
        created_at: now,
        updated_at: now,
    })
}

fn shortcut_taken(shortcut: &str) -> ApiError {
    ApiError::refused(
        StatusCode::CONFLICT,
        "shortcut_taken",
        format!("the shortcut {shortcut:?} is taken"),
    )
}

async fn create(state: &AppState, reply: CannedReply) -> StatusJson<CannedReplyView> {
    let taken = shortcut_taken(&reply.shortcut);
    state.store.create_canned_reply(reply.clone()).await.taken_as(taken)?;
    Ok((StatusCode::CREATED, Json(reply.into())))
}

/// The reply `id` when it belongs to `owner`; else 404 (another's replies are not there for the caller).
async fn owned(state: &AppState, id: &str, owner: Option<&str>) -> Result<CannedReply, ApiError> {
    state
        .store
        .canned_reply(id)
        .await
        .found_if(|r| r.owner.as_deref() == owner, ApiError::NotFound("canned reply"))
}

async fn update(
    state: &AppState,
    id: String,
    owner: Option<String>,
    input: CannedReplyInput,
) -> JsonResult<CannedReplyView> {
    let stored = owned(state, &id, owner.as_deref()).await?;
    let mut reply = checked(state, input, id, owner).await?;
    reply.created_at = stored.created_at;
    match state.store.update_canned_reply(reply.clone()).await {
        Ok(()) => Ok(Json(reply.into())),
        Err(StoreError::Conflict) => Err(shortcut_taken(&reply.shortcut)),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("canned reply")),
        Err(e) => Err(e.into()),
    }
}

async fn delete(state: &AppState, id: String, owner: Option<&str>) -> Result<StatusCode, ApiError> {
    owned(state, &id, owner).await?;
    state.store.delete_canned_reply(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- the desk's list (admins) ----

#[utoipa::path(get, path = "/api/admin/canned-replies", tag = "admin",
    responses((status = 200, description = "the desk's canned replies, by shortcut", body = [CannedReplyView]),
        AdminsOnly, Unavailable))]
async fn list_desk(Admin(state): Admin) -> JsonResult<Vec<CannedReplyView>> {
    let replies = state.store.canned_replies(None).await?;
    Ok(Json(replies.into_iter().map(Into::into).collect()))
}

#[utoipa::path(post, path = "/api/admin/canned-replies", tag = "admin",
    request_body(content = CannedReplyInput, example = json!({"shortcut": "hello", "title": "Greeting",
        "text": "Hello {customer}, I am {agent}. How can I help?", "categories": []})),
    responses((status = 201, body = CannedReplyView), ReplyRules,
        (status = 409, description = "`shortcut_taken`: the desk has a reply with this shortcut", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn create_desk(Admin(state): Admin, ApiJson(input): ApiJson<CannedReplyInput>) -> StatusJson<CannedReplyView> {
    let reply = checked(&state, input, uuid::Uuid::new_v4().to_string(), None).await?;
    create(&state, reply).await
}

#[utoipa::path(put, path = "/api/admin/canned-replies/{id}", tag = "admin",
    params(("id" = String, Path, description = "the canned reply's id")),
    request_body = CannedReplyInput,
    responses((status = 200, body = CannedReplyView), ReplyRules, NoDeskReply,
        (status = 409, description = "`shortcut_taken`: another reply of the desk has this shortcut", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn update_desk(
    Admin(state): Admin,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CannedReplyInput>,
) -> JsonResult<CannedReplyView> {
    update(&state, id, None, input).await
}

#[utoipa::path(delete, path = "/api/admin/canned-replies/{id}", tag = "admin",
    params(("id" = String, Path, description = "the canned reply's id")),
    responses((status = 204, description = "deleted"), NoDeskReply, AdminsOnly, Unavailable))]
async fn delete_desk(Admin(state): Admin, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    delete(&state, id, None).await
}

// ---- an agent's own, and the desk's that apply to them ----

#[utoipa::path(get, path = "/api/canned-replies", tag = "agent",
    responses((status = 200, description = "the desk's replies that apply to one of the caller's categories (or to all), \
        then the caller's own, each by shortcut", body = [CannedReplyView]),
        SignedIn, Unavailable))]
async fn list_mine(Staff(me, state): Staff) -> JsonResult<Vec<CannedReplyView>> {
    let desk = state.store.canned_replies(None).await?;
    let own = state.store.canned_replies(Some(&me.id)).await?;
    let applies = |r: &CannedReply| r.categories.is_empty() || r.categories.iter().any(|c| me.categories.contains(c));
    Ok(Json(
        desk.into_iter().filter(applies).chain(own).map(Into::into).collect(),
    ))
}

#[utoipa::path(post, path = "/api/canned-replies", tag = "agent",
    request_body(content = CannedReplyInput, example = json!({"shortcut": "later", "title": "Call back",
        "text": "I will call you back today, {customer}."})),
    responses((status = 201, body = CannedReplyView), ReplyRules,
        (status = 409, description = "`shortcut_taken`: the caller has a reply with this shortcut", body = ErrorBody),
        SignedIn, Unavailable))]
async fn create_mine(
    Staff(me, state): Staff,
    ApiJson(input): ApiJson<CannedReplyInput>,
) -> StatusJson<CannedReplyView> {
    let reply = checked(&state, input, uuid::Uuid::new_v4().to_string(), Some(me.id)).await?;
    create(&state, reply).await
}

#[utoipa::path(put, path = "/api/canned-replies/{id}", tag = "agent",
    params(("id" = String, Path, description = "the canned reply's id")),
    request_body = CannedReplyInput,
    responses((status = 200, body = CannedReplyView), ReplyRules,
        (status = 404, description = "`not_found`: no such reply of the caller's own (the desk's and other \
            agents' are not theirs to change)", body = ErrorBody),
        (status = 409, description = "`shortcut_taken`: another reply of the caller has this shortcut", body = ErrorBody),
        SignedIn, Unavailable))]
async fn update_mine(
    Staff(me, state): Staff,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CannedReplyInput>,
) -> JsonResult<CannedReplyView> {
    update(&state, id, Some(me.id), input).await
}

#[utoipa::path(delete, path = "/api/canned-replies/{id}", tag = "agent",
    params(("id" = String, Path, description = "the canned reply's id")),
    responses((status = 204, description = "deleted"),
        (status = 404, description = "`not_found`: no such reply of the caller's own", body = ErrorBody),
        SignedIn, Unavailable))]
async fn delete_mine(Staff(me, state): Staff, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    delete(&state, id, Some(&me.id)).await
}
