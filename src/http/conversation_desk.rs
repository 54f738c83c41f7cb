//! Working a conversation outside its live chat: an internal note on it
//! (`POST /api/conversations/{id}/notes`), the agents who may hold it
//! (`GET /api/conversations/{id}/assignees`), and putting it in another agent's list
//! (`POST /api/conversations/{id}/assign`). A live chat has its own frames (`note`,
//! `transfer`); these reach a conversation whose customer left, is parked, or waits
//! unassigned as an offline message.
//!
//! A reassignment is a compare-and-set on the conversation's record
//! (`core::conversation::Conversation::reassign` decides), so of two "Assign to me" at
//! once the second gets 409. It is refused while a customer is live in the conversation:
//! a live chat's agent is the routing core's pairing alone. The race with a customer
//! coming back at that moment is closed on both sides: a return reads the holder to
//! prefer, and its pairing is written to the record afterwards (`Automatic::Continued`),
//! so a reassignment stored before that write is overwritten by the pairing; one stored
//! after it finds the customer live when it looks again right after its write, and puts
//! the record back to the live chat's agent (409 `conversation_live`). Either way the
//! record ends with the one agent the routing core paired, and limits are the routing
//! core's alone (a conversation nobody is live in counts against no one's).
//!
//! The agents told — the one whose list it left and the one whose list it entered — hear
//! `conversation_assigned` on this node and, through the admin bus, on the others, as a
//! note's holder hears `note`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult};
use super::labels::tell_holder;
use super::responses::{ChangeUnavailable, SignedIn};
use super::session::Authed;
use super::{ApiError, AppState, ErrorBody};
use crate::clock::now_ms;
use crate::cluster::bus::AdminChange;
use crate::conversations::{ConversationError, Conversations};
use crate::core::conversation::{Actor, Refusal, Rules};
use crate::core::routing::AgentId;
use crate::protocol::ServerFrame;
use crate::store::deadline::write_within;
use crate::store::{Account, ArchiveEvent, ConversationNote, ConversationRecord, Role, StoreError};
use crate::webhooks::event::Event;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_note))
        .routes(routes!(assignees))
        .routes(routes!(assign))
}

/// A note to add.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NoteRequest {
    /// For agents only; a message's length rules apply.
    pub text: String,
}

/// A note as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedNote {
    pub conversation_id: String,
    /// Names the note (a UUIDv7).
    pub id: String,
    /// When it was written (ms since the Unix epoch).
    pub at: i64,
    pub agent_id: String,
    pub agent_name: String,
    pub text: String,
}

/// An agent who may hold the conversation (serves its category).
#[derive(Debug, Serialize, ToSchema)]
pub struct Assignee {
    pub id: String,
    pub name: String,
    /// Holds it now.
    pub holder: bool,
}

/// Whose list to put it in.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AssignRequest {
    /// An enabled agent serving its category; the caller's own id is "Assign to me".
    pub agent_id: String,
}

/// The conversation's holder after the change.
#[derive(Debug, Serialize, ToSchema)]
pub struct Assigned {
    pub conversation_id: String,
    pub holder: String,
    pub holder_name: String,
    /// False when it was in that agent's list already.
    pub changed: bool,
}

/// The record of conversation `id` if `me` may see it: an admin any, an agent those of
/// the categories they serve (anything else looks like no conversation at all).
async fn visible(state: &AppState, me: &Account, id: &str) -> Result<ConversationRecord, ApiError> {
    let record = match state.store.conversation_record(id).await {
        Ok(record) => record,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("conversation")),
        Err(e) => return Err(e.into()),
    };
    if me.role == Role::Admin || me.categories.contains(&record.category) {
        Ok(record)
    } else {
        Err(ApiError::NotFound("conversation"))
    }
}

/// Adds an internal note to a conversation (its holder, or an admin), live or not; its
/// holder's consoles show it as a live chat's `note`.
#[utoipa::path(post, path = "/api/conversations/{id}/notes", tag = "conversations",
    params(("id" = String, Path, description = "the conversation id")),
    request_body = NoteRequest,
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 201, body = AddedNote),
        (status = 400, description = "`empty_message`, `message_too_long`: the text breaks a message's rules", body = ErrorBody),
        (status = 404, description = "`not_found`: no such conversation, or (for an agent) not in their list", body = ErrorBody),
        SignedIn, ChangeUnavailable))]
async fn add_note(
    Authed(me): Authed,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NoteRequest>,
) -> Result<(StatusCode, Json<AddedNote>), ApiError> {
    let record = visible(&state, &me, &id).await?;
    if me.role != Role::Admin && record.holder.as_deref() != Some(me.id.as_str()) {
        return Err(ApiError::NotFound("conversation"));
    }
    if let Some((code, message)) = crate::hub::live_chat::text_refusal(&body.text, state.settings.max_message_len) {
        return Err(ApiError::invalid(code, message));
    }
    let note = ConversationNote {
        conversation_id: id.clone(),
        id: uuid::Uuid::now_v7().to_string(),
        at: now_ms(),
        agent_id: me.id.clone(),
        agent_name: me.display_name.clone(),
        text: body.text,
    };
    let store = state.store.clone();
    let event = ArchiveEvent::Note(note.clone());
    // `note.created` for endpoints that asked for notes, as for a note written in a live chat.
    let hook = state.archive.webhooks().and_then(|hooks| hooks.event_of(&event));
    write_within(state.settings.archive_write_timeout, async move {
        store.archive(&[event]).await
    })
    .await
    .map_err(ApiError::unanswered_change)?;
    if let (Some(hooks), Some(hook)) = (state.archive.webhooks(), hook) {
        hooks.emit(hook);
    }
    let frame = ServerFrame::Note {
        chat_id: id.clone(),
        note: crate::protocol::NoteView {
            id: note.id.clone(),
            at: note.at,
            agent_name: note.agent_name.clone(),
            text: note.text.clone(),
        },
        client_id: None,
    };
    let mut told = vec![me.id.clone()];
    told.extend(record.holder.clone());
    told.dedup();
    tell(&state, &told, &frame).await;
    Ok((
        StatusCode::CREATED,
        Json(AddedNote {
            conversation_id: id,
            id: note.id,
            at: note.at,
            agent_id: note.agent_id,
            agent_name: note.agent_name,
            text: note.text,
        }),
    ))
}

/// The enabled agents serving the conversation's category: whom it may be assigned to.
#[utoipa::path(get, path = "/api/conversations/{id}/assignees", tag = "conversations",
    params(("id" = String, Path, description = "the conversation id")),
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, body = Vec<Assignee>),
        (status = 404, description = "`not_found`: no such conversation, or (for an agent) not of a category they serve", body = ErrorBody),
        SignedIn))]
async fn assignees(
    Authed(me): Authed,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> JsonResult<Vec<Assignee>> {
    let record = visible(&state, &me, &id).await?;
    let mut agents: Vec<Assignee> = state
        .store
        .accounts()
        .await?
        .into_iter()
        .filter(|a| a.enabled && a.categories.contains(&record.category))
        .map(|a| Assignee {
            holder: record.holder.as_deref() == Some(a.id.as_str()),
            id: a.id,
            name: a.display_name,
        })
        .collect();
    agents.sort_by_key(|a| a.name.to_lowercase());
    Ok(Json(agents))
}

/// Puts a conversation whose customer is not live in an agent's list: its holder hands it
/// on, an admin moves any, any agent takes an unassigned one for themselves.
#[utoipa::path(post, path = "/api/conversations/{id}/assign", tag = "conversations",
    params(("id" = String, Path, description = "the conversation id")),
    request_body = AssignRequest,
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, body = Assigned),
        (status = 400, description = "`unknown_agent`: no enabled agent of that id serves its category", body = ErrorBody),
        (status = 404, description = "`not_found`: no such conversation, or (for an agent) not theirs to hand on", body = ErrorBody),
        (status = 409, description = "`already_assigned`: another agent holds it (took it earlier, or first of two at \
            once); `conversation_live`: its customer is \
            live in it now (a live chat is moved by a transfer)", body = ErrorBody),
        SignedIn, ChangeUnavailable))]
async fn assign(
    Authed(me): Authed,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AssignRequest>,
) -> JsonResult<Assigned> {
    let before = visible(&state, &me, &id).await?;
    let target = match state.store.account(&body.agent_id).await {
        Ok(a) if a.enabled && a.categories.contains(&before.category) => a,
        Ok(_) | Err(StoreError::NotFound) => {
            return Err(ApiError::invalid(
                "unknown_agent",
                format!(
                    "no enabled agent {:?} serves this conversation's category",
                    body.agent_id
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if state.hub.conversation_live(&id).await?.is_some() {
        return Err(live());
    }
    let to = AgentId(target.id.clone());
    let mine = AgentId(me.id.clone());
    let by = match me.role {
        Role::Admin => Actor::Admin,
        Role::Agent => Actor::Agent(&mine),
    };
    let conversations = Conversations::new(state.store.clone(), Rules::default())
        .answering_within(state.settings.archive_write_timeout);
    let (changed, record) = conversations
        .change(&id, false, |c, _| c.reassign(by, &to, now_ms()))
        .await
        .map_err(|e| match e {
            ConversationError::NotFound | ConversationError::Refused(Refusal::NotYours) => {
                ApiError::NotFound("conversation")
            }
            ConversationError::Refused(Refusal::AlreadyAssigned) => ApiError::refused(
                StatusCode::CONFLICT,
                "already_assigned",
                "another agent holds this conversation",
            ),
            ConversationError::Refused(_) => live(),
            // Assigned again to the same agent is no change: safe to repeat.
            ConversationError::Store(e) => ApiError::unanswered_change(e),
        })?;
    if changed {
        // A customer who came back while it was written: the pairing stands.
        if let Some(live_with) = state.hub.conversation_live(&id).await? {
            if let Some(agent) = live_with.filter(|a| *a != to) {
                let restored = conversations
                    .change(&id, true, |c, _| {
                        if c.holder() == Some(&to) {
                            c.assigned(agent.clone(), now_ms());
                        }
                        Ok(())
                    })
                    .await;
                if let Ok(((), record)) = restored {
                    tell_holder(&state, &record).await;
                }
            }
            return Err(live());
        }
        let customer_name = match state.store.conversation(&id).await {
            Ok(c) => c.opened.customer_name,
            Err(_) => String::new(),
        };
        let frame = ServerFrame::ConversationAssigned {
            conversation_id: id.clone(),
            holder: target.id.clone(),
            holder_name: target.display_name.clone(),
            from: before.holder.clone(),
            by_name: me.display_name.clone(),
            customer_name,
        };
        let mut told: Vec<String> = before.holder.iter().cloned().collect();
        told.push(target.id.clone());
        tell(&state, &told, &frame).await;
        tell_holder(&state, &record).await;
        if let Some(hooks) = state.archive.webhooks() {
            let to = (target.id.as_str(), target.display_name.as_str());
            hooks.emit(Event::conversation_reassigned(
                &record,
                to,
                before.holder.as_deref(),
                now_ms(),
            ));
        }
    }
    Ok(Json(Assigned {
        conversation_id: record.id,
        holder: target.id,
        holder_name: target.display_name,
        changed,
    }))
}

fn live() -> ApiError {
    ApiError::refused(
        StatusCode::CONFLICT,
        "conversation_live",
        "its customer is chatting now: a live chat is moved by a transfer",
    )
}

/// `frame` to each of `agents`' consoles, on this node and (through the bus) the others.
/// The change is stored either way: a console that misses it sees it at its next refresh.
async fn tell(state: &AppState, agents: &[String], frame: &ServerFrame) {
    let encoded = frame.encode().to_string();
    for agent in agents {
        let _ = state.hub.frame_to_agent(agent.clone(), encoded.clone()).await;
        if let Some(cluster) = &state.cluster
            && let Err(e) = cluster
                .publish(AdminChange::Line {
                    agent: agent.clone(),
                    frame: encoded.clone(),
                })
                .await
        {
            tracing::warn!(%agent, error = %e, "other nodes were not told of a conversation's change");
        }
    }
}
