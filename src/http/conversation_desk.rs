//! Working a conversation outside its live chat: an internal note on it
//! (`POST /api/conversations/{id}/notes`), the agents who may hold it
//! (`GET /api/conversations/{id}/assignees`), and putting it in another agent's list
//! (`POST /api/conversations/{id}/assign`), and its holder having opened it
//! (`POST /api/conversations/{id}/opened`: its "snooze ended" mark cleared). A live chat has its own frames (`note`,
//! `transfer`); these reach a conversation whose customer left, is parked, or waits
//! unassigned as an offline message. A note named by a `client_id` is one note however
//! often it is sent (`core::client_id`, as an answer by mail).
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
//! note's holder hears `note`. The node that answers then archives the move as a hand-over
//! after the conversation's last line (`conversations::archived_holder`), so its lines keep
//! their authors and the archive names its new agent; a retry writes the same one, kept once,
//! and one the store refuses is tried again in the background (the move stands: 200).

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult, StatusJson};
use super::labels::tell_holder;
use super::offline::{client_id_reused, valid_client_id};
use super::responses::{ChangeUnavailable, NotInList, NotOfTheirCategories, SignedIn};
use super::session::Staff;
use super::{ApiError, AppState, ErrorBody};
use crate::clock::now_ms;
use crate::cluster::bus::AdminChange;
use crate::conversations::archived_holder::{HandOvers, archive_holder_soon};
use crate::conversations::{ConversationError, Conversations};
use crate::core::client_id;
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
        .routes(routes!(opened))
        .routes(routes!(set_status))
}

/// A conversation's new status, as the `set_conversation_status` frame names it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "pending"}))]
pub struct StatusChange {
    /// `open`, `pending`, `snoozed` or `resolved`.
    pub status: String,
    /// A snooze's end (milliseconds since the epoch): only with `snoozed`.
    #[serde(default)]
    pub until: Option<i64>,
}

/// A conversation's status as stored after the change.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    pub conversation_id: String,
    pub status: crate::store::ConversationStatus,
    /// While snoozed: until when (milliseconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snoozed_until: Option<i64>,
    /// When it took this status.
    pub since: i64,
}

/// Sets a conversation's status: its holder (an agent) or an admin, any conversation, as
/// the console's `set_conversation_status` does. A live chat is not resolved here: its
/// agent ends the chat (409 `conversation_live`).
#[utoipa::path(put, path = "/api/conversations/{id}/status", tag = "conversations",
    params(("id" = String, Path, description = "the conversation id")),
    request_body = StatusChange,
    responses((status = 200, body = StatusView),
        (status = 400, description = "`invalid_status` (not open, pending, snoozed or resolved; `until` with another status than snoozed, or a snooze without it); `snooze_in_past`; `snooze_too_far` (over a year ahead); `bad_json`", body = ErrorBody),
        NotInList,
        (status = 409, description = "`conversation_live`: resolving it while its customer chats with its agent (the agent ends the chat); `already_live` and other refusals of the conversation's rules", body = ErrorBody),
        SignedIn, ChangeUnavailable))]
async fn set_status(
    Staff(me, state): Staff,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<StatusChange>,
) -> JsonResult<StatusView> {
    let answer = state
        .hub
        .set_conversation_status(me, id, change.status, change.until)
        .await?;
    let record = answer.map_err(|(code, message)| match code {
        "unknown_conversation" => ApiError::NotFound("conversation"),
        "store_unavailable" => ApiError::Unavailable(message),
        "bad_frame" | "invalid_status" => ApiError::invalid("invalid_status", message),
        "snooze_in_past" | "snooze_too_far" => ApiError::invalid(code, message),
        _ => ApiError::refused(StatusCode::CONFLICT, code, message),
    })?;
    Ok(Json(StatusView {
        conversation_id: record.id,
        status: record.status,
        snoozed_until: record.snoozed_until,
        since: record.status_since,
    }))
}

/// A note to add. An unknown field is refused (`bad_json`): a misspelt `client_id` would
/// otherwise make a resend a second note.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// For agents only; a message's length rules apply.
    pub text: String,
    /// The caller's name for this note, making it safe to send again (after a 503, a lost
    /// answer): 1 to 64 visible ASCII characters, new for each note and kept for its
    /// retries. The same conversation, caller and `client_id` are one note (and one
    /// `note.created`): sent again, the note is answered as stored; with another text, 409
    /// `client_id_reused`. Without it, each request is a new note.
    #[serde(default)]
    pub client_id: Option<String>,
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
/// holder's consoles show it as a live chat's `note`. With a `client_id` it is safe to send
/// again: its id derives from it (`core::client_id`) and the store keeps a note once by
/// its id, so a retry is the same note; what follows a note (`note.created`, the consoles
/// told) goes with its write, on the write's own task, so a write that lands after a 503
/// is followed once.
#[utoipa::path(post, path = "/api/conversations/{id}/notes", tag = "conversations",
    params(("id" = String, Path, description = "the conversation id")),
    request_body(content = NoteRequest, example = json!({"text": "Promised a refund by Friday.",
        "client_id": "3f1c2a9e-5d4b-4c1e-9a7f-2b8d6e0c4a11"})),
    responses((status = 201, body = ConversationNote, description = "the note stored (with a `client_id` stored already: \
            that note, as stored, nothing told again)"),
        (status = 400, description = "`empty_message`, `message_too_long`: the text breaks a message's rules; \
            `invalid_client_id`", body = ErrorBody),
        NotInList,
        (status = 409, description = "`client_id_reused`: this caller's note with this `client_id` has another text", body = ErrorBody),
        SignedIn,
        (status = 503, description = "`unavailable`: the store is unreachable or did not answer within \
            `ARCHIVE_WRITE_TIMEOUT_MS`. The note may still be stored once it answers: with a `client_id`, sending \
            the same request again is safe (one note); without one, it would be a second note", body = ErrorBody)))]
async fn add_note(
    Staff(me, state): Staff,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NoteRequest>,
) -> StatusJson<ConversationNote> {
    let record = visible(&state, &me, &id).await?;
    if me.role != Role::Admin && record.holder.as_deref() != Some(me.id.as_str()) {
        return Err(ApiError::NotFound("conversation"));
    }
    if let Some((code, message)) = crate::hub::live_chat::text_refusal(&body.text, state.settings.max_message_len) {
        return Err(ApiError::invalid(code, message));
    }
    let client_id = body.client_id.as_deref().map(valid_client_id).transpose()?;
    let note = ConversationNote {
        conversation_id: id.clone(),
        id: client_id.map_or_else(
            || uuid::Uuid::now_v7().to_string(),
            |client_id| client_id::derived_id(&NOTE_NAMESPACE, &id, &me.id, client_id).to_string(),
        ),
        at: now_ms(),
        agent_id: me.id.clone(),
        agent_name: me.display_name.clone(),
        text: body.text,
    };
    // Sent again after its write landed: that note, nothing done twice.
    if client_id.is_some()
        && let Some(stored) = stored_note(&state, &note).await?
    {
        return added(stored, &note);
    }
    let mut told = vec![me.id.clone()];
    told.extend(record.holder.clone());
    told.dedup();
    let task_state = state.clone();
    let written = note.clone();
    let named = client_id.is_some();
    let stored = write_within(state.settings.archive.write_timeout, async move {
        let event = ArchiveEvent::Note(written.clone());
        task_state.store.archive(std::slice::from_ref(&event)).await?;
        // Another request with the same id may have stored its note first (the store keeps
        // the first): only the one whose note is kept follows it.
        // A failed read back takes it for ours: a second `note.created` has the same event
        // id (derived from the note's), which endpoints' deliveries keep once.
        let stored = match named {
            true => stored_note(&task_state, &written).await.ok().flatten(),
            false => None,
        }
        .unwrap_or_else(|| written.clone());
        if stored == written {
            follow_note(&task_state, &event, &told).await;
        }
        Ok(stored)
    })
    .await
    .map_err(|e| match e {
        // With a client id the same request is safe to send again; without, it is a new note.
        StoreError::Unavailable(detail) if !named => {
            tracing::warn!(%detail, "store unavailable for a note without a client id");
            ApiError::Unavailable(NOTE_UNANSWERED.into())
        }
        e => ApiError::unanswered_change(e),
    })?;
    added(stored, &note)
}

/// What the 503 of a note without a `client_id` says: not that it is safe to send again.
const NOTE_UNANSWERED: &str = "storage did not answer in time; the note may still be stored once it does, and \
    sending it again without a client_id would be a second note";

/// The namespace of a named note's id (random, fixed: changing it would make a retry across
/// an upgrade a second note).
const NOTE_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x2d0c_57e1_8a3f_4b96_b1d4_7e09_c6a2_f358);

/// The note the store keeps under `note`'s id, if any.
async fn stored_note(state: &AppState, note: &ConversationNote) -> Result<Option<ConversationNote>, StoreError> {
    let notes = state.store.conversation_notes(&note.conversation_id).await?;
    Ok(notes.into_iter().find(|n| n.id == note.id))
}

/// A note just kept: `note.created` for endpoints that asked for notes (as for a note
/// written in a live chat), and the agents `told` (the writer and the holder) see it.
async fn follow_note(state: &AppState, event: &ArchiveEvent, told: &[String]) {
    if let Some(hooks) = state.archive.webhooks()
        && let Some(hook) = hooks.event_of(event)
    {
        hooks.emit_durably(hook).await;
    }
    let ArchiveEvent::Note(note) = event else { return };
    let frame = ServerFrame::Note {
        chat_id: note.conversation_id.clone(),
        note: crate::protocol::NoteView::of(note),
        client_id: None,
    };
    tell(state, told, &frame).await;
}

/// The answer for `sent` once the store holds `stored` under its id: 409 if that is
/// another text the caller named the same way.
fn added(stored: ConversationNote, sent: &ConversationNote) -> StatusJson<ConversationNote> {
    if stored.text != sent.text {
        return Err(client_id_reused("a note"));
    }
    Ok((StatusCode::CREATED, Json(stored)))
}

/// Its holder opened it in their console: no longer marked "snooze ended"
/// (`snooze_ended_at` in the inbox), for all their consoles on every node, as the mark is in
/// the conversation's record. Anyone else's opening changes nothing (it is the holder's
/// attention the mark asks for); nor does one of a conversation not marked.
#[utoipa::path(post, path = "/api/conversations/{id}/opened", tag = "conversations",
    params(("id" = String, Path, description = "the conversation id")),
    responses((status = 204, description = "seen: its holder's inbox no longer marks it (safe to repeat)"),
        NotOfTheirCategories,
        SignedIn, ChangeUnavailable))]
async fn opened(Staff(me, state): Staff, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let record = visible(&state, &me, &id).await?;
    if record.snooze_ended_at.is_none() || record.holder.as_deref() != Some(me.id.as_str()) {
        return Ok(StatusCode::NO_CONTENT);
    }
    let mine = AgentId(me.id.clone());
    conversations(&state)
        .change(&id, false, |c, _| Ok(c.opened_by(&mine)))
        .await
        .map_err(|e| match e {
            ConversationError::Store(e) => ApiError::unanswered_change(e),
            _ => ApiError::NotFound("conversation"),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// Conversations' lasting state as these changes write it: each store call within the
/// archive's write timeout (past it, 503 as the store's fault).
fn conversations(state: &AppState) -> Conversations {
    Conversations::new(state.store.clone(), Rules::default()).answering_within(state.settings.archive.write_timeout)
}

/// The enabled agents serving the conversation's category: whom it may be assigned to.
#[utoipa::path(get, path = "/api/conversations/{id}/assignees", tag = "conversations",
    params(("id" = String, Path, description = "the conversation id")),
    responses((status = 200, body = Vec<Assignee>),
        NotOfTheirCategories,
        SignedIn))]
async fn assignees(Staff(me, state): Staff, Path(id): Path<String>) -> JsonResult<Vec<Assignee>> {
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
/// on, an admin moves any, any agent takes an unassigned one for themselves. The archive
/// records the move as one of its `transfers` (from the agent it named, or from nobody with
/// `to_category` for one taken unassigned; `after_seq` its last line) and names the new
/// agent. Safe to repeat: sent again, nothing changes or is told again. A hand-over the
/// store does not take once the record changed is still answered 200 and archived in the
/// background, once.
#[utoipa::path(post, path = "/api/conversations/{id}/assign", tag = "conversations",
    params(("id" = String, Path, description = "the conversation id")),
    request_body = AssignRequest,
    responses((status = 200, body = Assigned),
        (status = 400, description = "`unknown_agent`: no enabled agent of that id serves its category", body = ErrorBody),
        (status = 404, description = "`not_found`: no such conversation, or (for an agent) not theirs to hand on", body = ErrorBody),
        (status = 409, description = "`already_assigned`: another agent holds it (took it earlier, or first of two at \
            once); `conversation_live`: its customer is \
            live in it now (a live chat is moved by a transfer)", body = ErrorBody),
        SignedIn, ChangeUnavailable))]
async fn assign(
    Staff(me, state): Staff,
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
    let conversations = conversations(&state);
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
            hooks
                .emit_durably(Event::conversation_reassigned(
                    &record,
                    to,
                    before.holder.as_deref(),
                    now_ms(),
                ))
                .await;
        }
    }
    // The archive's hand-over, after the consoles and hooks were told: the move stands,
    // so a store that refuses it gets it in the background; a retry writes it (once) too.
    let place = HandOvers {
        store: state.store.clone(),
        archive: state.archive.clone(),
        cluster: state.cluster.clone(),
        limit: state.settings.archive.write_timeout,
    };
    archive_holder_soon(place, record.clone(), target.display_name.clone()).await;
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
