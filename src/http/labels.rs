//! Labels over HTTP: the desk's list, which admins keep (`/api/admin/labels`) and staff
//! read (`/api/labels`), and the labels of one conversation, which its holder or an admin
//! adds and removes (`/api/conversations/{id}/labels/{label}`).
//!
//! A change to a conversation's labels is a compare-and-set on its record
//! (`conversations::relabel`), so two people labelling at once both land; its holder's
//! consoles, on this node and the others, hear it as a `conversation_status` frame.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult, StatusJson, StoreAnswer};
use super::responses::{AdminsOnly, ChangeUnavailable, NoLabel, NotInList, SignedIn, Unavailable};
use super::session::{Admin, Authed, Staff};
use super::{ApiError, AppState, ErrorBody};
use crate::cluster::bus::AdminChange;
use crate::conversations::{ConversationError, relabel};
use crate::core::conversation::labels::{LabelChange, MAX_LABELS};
use crate::core::conversation::{Actor, Refusal};
use crate::core::names::checked_name;
use crate::core::routing::AgentId;
use crate::store::{ConversationRecord, Label, Role};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(create))
        .routes(routes!(update, delete))
        .routes(routes!(add_to_conversation, remove_from_conversation))
}

/// The refusal of a label id that names none (`NoLabel`).
const NO_LABEL: ApiError = ApiError::NotFound("label");

/// A label as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelView {
    /// Stays when the label is renamed; what conversations carry.
    pub id: String,
    pub name: String,
    /// `#rrggbb`.
    pub colour: String,
}

impl From<Label> for LabelView {
    fn from(l: Label) -> Self {
        Self {
            id: l.id,
            name: l.name,
            colour: l.colour,
        }
    }
}

/// A new label.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLabel {
    /// 1 to 60 characters, as category names.
    pub name: String,
    /// `#rrggbb`.
    pub colour: String,
    /// 1 to 40 lowercase letters, digits or '-'; absent: made from the name.
    pub id: Option<String>,
}

/// A label's new name or colour (either may be left out).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelEdit {
    pub name: Option<String>,
    pub colour: Option<String>,
}

fn valid_name(raw: &str) -> Result<String, ApiError> {
    Ok(checked_name(raw, 60)?)
}

fn valid_colour(raw: &str) -> Result<String, ApiError> {
    let hex = raw.trim().strip_prefix('#').unwrap_or("");
    if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(format!("#{}", hex.to_ascii_lowercase()))
    } else {
        Err(ApiError::invalid("invalid_colour", "a colour is #rrggbb (hexadecimal)"))
    }
}

/// The desk's labels, by name.
#[utoipa::path(get, path = "/api/labels", tag = "conversations",
    responses((status = 200, description = "every label, by name", body = [LabelView]), SignedIn, Unavailable))]
async fn list(_: Authed, State(state): State<AppState>) -> JsonResult<Vec<LabelView>> {
    Ok(Json(state.store.labels().await?.into_iter().map(Into::into).collect()))
}

/// Define a label.
#[utoipa::path(post, path = "/api/admin/labels", tag = "admin",
    request_body(content = NewLabel, example = json!({"name": "Billing", "colour": "#1f6feb"})),
    responses((status = 201, body = LabelView),
        (status = 400, description = "`bad_json`, `invalid_name`, `invalid_colour`, `invalid_id`: which rule the body breaks", body = ErrorBody),
        (status = 409, description = "`conflict`: a label with this id exists", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn create(Admin(state): Admin, ApiJson(body): ApiJson<NewLabel>) -> StatusJson<LabelView> {
    let name = valid_name(&body.name)?;
    let colour = valid_colour(&body.colour)?;
    let rule = "a label id has 1 to 40 lowercase letters, digits or '-' (give one when the name has no such letters)";
    let id = super::admin::slug_id(body.id, &name, rule)?;
    let label = Label {
        id,
        name,
        colour,
        created_at: crate::clock::now_ms(),
    };
    let taken = ApiError::Conflict(format!("the label {:?} exists", label.id));
    state.store.create_label(label.clone()).await.taken_as(taken)?;
    Ok((StatusCode::CREATED, Json(label.into())))
}

/// Rename a label or change its colour (its id stays, and so do the conversations carrying it).
#[utoipa::path(patch, path = "/api/admin/labels/{id}", tag = "admin",
    params(("id" = String, Path, description = "the label's id")),
    request_body(content = LabelEdit, example = json!({"colour": "#d29922"})),
    responses((status = 200, body = LabelView),
        (status = 400, description = "`bad_json`, `invalid_name`, `invalid_colour`: which rule the body breaks", body = ErrorBody),
        NoLabel,
        AdminsOnly, Unavailable))]
async fn update(
    Admin(state): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LabelEdit>,
) -> JsonResult<LabelView> {
    let name = body.name.as_deref().map(valid_name).transpose()?;
    let colour = body.colour.as_deref().map(valid_colour).transpose()?;
    let stored = state
        .store
        .labels()
        .await?
        .into_iter()
        .find(|l| l.id == id)
        .ok_or(NO_LABEL)?;
    let label = Label {
        name: name.unwrap_or(stored.name),
        colour: colour.unwrap_or(stored.colour),
        ..stored
    };
    state.store.update_label(label.clone()).await.missing_as(NO_LABEL)?;
    Ok(Json(label.into()))
}

/// Delete a label: it disappears from every view and filter; conversations keep its id
/// unseen (a label made again with that id shows on them again).
#[utoipa::path(delete, path = "/api/admin/labels/{id}", tag = "admin",
    params(("id" = String, Path, description = "the label's id")),
    responses((status = 204, description = "deleted"),
        NoLabel,
        AdminsOnly, Unavailable))]
async fn delete(Admin(state): Admin, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.store.delete_label(&id).await.missing_as(NO_LABEL)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A conversation's labels after a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationLabels {
    pub conversation_id: String,
    /// Label ids, in the order they were added (a deleted label's id included).
    pub labels: Vec<String>,
}

/// Put a label on a conversation (its holder, or an admin); one it carries already is no change.
#[utoipa::path(put, path = "/api/conversations/{id}/labels/{label}", tag = "conversations",
    params(("id" = String, Path, description = "the conversation id"), ("label" = String, Path, description = "the label's id")),
    responses((status = 200, body = ConversationLabels),
        (status = 400, description = "`unknown_label`: the desk defines no such label; `too_many_labels`: it carries 20", body = ErrorBody),
        NotInList,
        SignedIn, ChangeUnavailable))]
async fn add_to_conversation(
    Staff(me, state): Staff,
    Path((id, label)): Path<(String, String)>,
) -> JsonResult<ConversationLabels> {
    let defined = state.store.labels().await?.iter().any(|l| l.id == label);
    change(&state, &me, &id, LabelChange::Add, &label, defined).await
}

/// Take a label off a conversation (its holder, or an admin); one it does not carry is no change.
#[utoipa::path(delete, path = "/api/conversations/{id}/labels/{label}", tag = "conversations",
    params(("id" = String, Path, description = "the conversation id"), ("label" = String, Path, description = "the label's id")),
    responses((status = 200, body = ConversationLabels),
        NotInList,
        SignedIn, ChangeUnavailable))]
async fn remove_from_conversation(
    Staff(me, state): Staff,
    Path((id, label)): Path<(String, String)>,
) -> JsonResult<ConversationLabels> {
    change(&state, &me, &id, LabelChange::Remove, &label, false).await
}

async fn change(
    state: &AppState,
    me: &crate::store::Account,
    id: &str,
    change: LabelChange,
    label: &str,
    defined: bool,
) -> JsonResult<ConversationLabels> {
    let agent = AgentId(me.id.clone());
    let by = match me.role {
        Role::Admin => Actor::Admin,
        Role::Agent => Actor::Agent(&agent),
    };
    let (changed, record) = relabel(
        &state.store,
        state.settings.archive.write_timeout,
        id,
        by,
        change,
        label,
        defined,
    )
    .await
    .map_err(|e| match e {
        // Someone else's conversation looks like a missing one to an agent.
        ConversationError::NotFound | ConversationError::Refused(Refusal::NotYours) => {
            ApiError::NotFound("conversation")
        }
        ConversationError::Refused(Refusal::TooManyLabels) => ApiError::invalid(
            "too_many_labels",
            format!("a conversation carries at most {MAX_LABELS} labels"),
        ),
        ConversationError::Refused(_) => ApiError::invalid("unknown_label", format!("no label {label:?}")),
        // A label put on or taken off again changes nothing: safe to repeat.
        ConversationError::Store(e) => ApiError::unanswered_change(e),
    })?;
    if changed {
        tell_holder(state, &record).await;
    }
    Ok(Json(ConversationLabels {
        conversation_id: record.id,
        labels: record.labels,
    }))
}

/// Tells the conversation's holder of its record as stored now (its labels, or who holds
/// it: the hub also points lines followed up on here at a new holder), on this node and
/// (through the bus) on the others. The change is stored either way: a console that
/// misses it sees it at its next refresh.
pub(super) async fn tell_holder(state: &AppState, record: &ConversationRecord) {
    let _ = state.hub.conversation_changed(record.clone(), false).await;
    if let Some(cluster) = &state.cluster
        && let Err(e) = cluster
            .publish(AdminChange::Conversation {
                record: record.clone(),
                woken: false,
            })
            .await
    {
        tracing::warn!(conversation = %record.id, error = %e, "other nodes were not told of a conversation's change");
    }
}
