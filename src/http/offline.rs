//! The offline messages API: a customer leaves a message when nobody can chat with them
//! (public, throttled per address); agents (for the categories they hold) and admins
//! (all) list them, take them, mark them handled, and answer them by mail.
//!
//! Each message is also a conversation (`offline::conversation`): open without an agent
//! in the inbox, in the customer's own list (by the browser's visitor key, a verified
//! identity), its holder the agent who takes or answers it, each answer its next line.
//!
//! Mail goes through the durable outbox (`offline` for what the mails say, the store for
//! writing each mail with its message or reply, `appointments::mailer` for sending): a
//! new message is mailed to `OFFLINE_MAIL_TO` when set; a reply to the customer, sent
//! once and retried while the relay is down, and archived with the message.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::access::ClientIp;
use super::error::{JsonResult, StatusJson, StoreAnswer};
use super::paging::page_limit;
use super::responses::{BadQuery, BodyTooLarge, ChangeUnavailable, SignedIn, Unavailable, UnknownMessage};
use super::session::{Authed, Staff};
use super::{ApiError, AppState, ErrorBody};
use crate::core::customer_details;
use crate::core::names::checked_name;
use crate::store::deadline::write_within;
use crate::store::{
    Account, CustomerProfile, MailedReply, OfflineFilter, OfflineMessage, OfflineReply, OfflineState, Page, Role,
    StoreError,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(leave, list))
        .routes(routes!(take))
        .routes(routes!(handled))
        .routes(routes!(reply))
}

/// Longest name, in characters.
const MAX_NAME: usize = 100;
/// Longest reply, in characters.
const MAX_REPLY: usize = 20_000;
/// Most messages one listing returns.
const MAX_LIMIT: u64 = 500;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaveRequest {
    /// The category id the customer chose.
    pub category: String,
    /// 1 to 100 characters, something visible.
    pub name: String,
    /// Where the answer goes.
    pub email: String,
    /// 1 character up to the hub's longest chat message (`MAX_MESSAGE_LEN`).
    pub text: String,
    /// The browser's returning-visitor key, as `join.visitor`: the conversation the message
    /// becomes is listed for this browser (`GET /api/visitor/conversations`) and continued from it.
    #[serde(default)]
    pub visitor: Option<String>,
    /// The customer's identity on the embedding site, as `join.identifier`; kept only when
    /// `identifier_hash` verifies, ignored otherwise.
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub identifier_hash: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Left {
    /// The stored message's id.
    pub id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfflineReplyView {
    pub id: String,
    pub agent_id: String,
    pub agent_name: String,
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfflineMessageView {
    pub id: String,
    /// The category's id.
    pub category: String,
    /// The category's name now (its id when the category is gone).
    pub category_name: String,
    pub name: String,
    pub email: String,
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub state: OfflineState,
    /// The account that took it (or first handled or answered it).
    pub taken_by: Option<String>,
    /// That account's display name.
    pub taken_by_name: Option<String>,
    /// The answers sent by mail, oldest first.
    pub replies: Vec<OfflineReplyView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfflinePage {
    /// Newest first.
    pub items: Vec<OfflineMessageView>,
    /// Messages matching the query before `limit`.
    pub total: u64,
    /// Messages in state `new` the caller may see (whatever the query), for the inbox's count.
    pub new_count: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OfflineQuery {
    /// Only messages in this state.
    pub state: Option<OfflineState>,
    /// Only messages of this category id.
    pub category: Option<String>,
    /// At most this many (1 to 500, default 100).
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// The answer, mailed to the customer: 1 to 20000 characters.
    pub text: String,
    /// The caller's name for this reply, making it safe to send again (after a 503, a lost
    /// answer): 1 to 64 visible ASCII characters, new for each reply and kept for
    /// its retries. The same message, caller and `client_id` are one reply and one mail:
    /// sent again, the message is answered as it is; with another text, 409
    /// `client_id_reused`. Without it, each request is a new reply.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// A `client_id`, checked (`core::client_id::is_valid`).
pub(super) fn valid_client_id(raw: &str) -> Result<&str, ApiError> {
    use crate::core::client_id::{MAX_LEN, is_valid};
    if is_valid(raw) {
        Ok(raw)
    } else {
        Err(ApiError::invalid(
            "invalid_client_id",
            format!("a client_id is 1 to {MAX_LEN} visible ASCII characters"),
        ))
    }
}

fn valid_email(raw: &str) -> Result<String, ApiError> {
    Ok(crate::core::customer_details::email(raw)?)
}

fn unknown() -> ApiError {
    ApiError::refused(
        StatusCode::NOT_FOUND,
        "unknown_offline_message",
        "there is no such offline message",
    )
}

/// Whether `account` may see and act on messages of `category`.
fn may_see(account: &Account, category: &str) -> bool {
    account.role == Role::Admin || account.categories.iter().any(|c| c == category)
}

/// Leaves a message for the desk when nobody can chat now.
#[utoipa::path(post, path = "/api/offline-messages", tag = "public",
    request_body(content = LeaveRequest, example = json!({"category": "general", "name": "Carla",
        "email": "carla@example.com", "text": "Where is my order 1234?"})),
    responses((status = 201, body = Left),
        (status = 400, description = "`bad_json`, `invalid_name`, `invalid_email`, `invalid_visitor`, `empty_text`, `text_too_long`, \
            `unknown_category`: which rule the body breaks", body = ErrorBody),
        BodyTooLarge,
        (status = 429, description = "`too_many_messages`: this address left too many messages; `Retry-After` says \
            when to try again", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds to wait"))),
        Unavailable))]
async fn leave(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Result<Json<LeaveRequest>, JsonRejection>,
) -> Response {
    let throttled = !ip.is_whitelisted(&state.settings);
    if throttled && let Err(wait) = state.offline_throttle.take(ip.key()) {
        return ApiError::too_many("too_many_messages", "messages from this address", wait).into_response();
    }
    let left = leave_checked(&state, &headers, body).await;
    if throttled && left.is_err() {
        state.offline_throttle.give_back(ip.key());
    }
    left.into_response()
}

async fn leave_checked(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Json<LeaveRequest>, JsonRejection>,
) -> StatusJson<Left> {
    let Json(body) = body?;
    let name = checked_name(&body.name, MAX_NAME)?;
    let email = valid_email(&body.email)?;
    let text = body.text.trim().to_string();
    if text.is_empty() {
        return Err(ApiError::invalid("empty_text", "the message is empty"));
    }
    let max = state.settings.max_message_len;
    if text.chars().count() > max {
        return Err(ApiError::invalid(
            "text_too_long",
            format!("a message has at most {max} characters"),
        ));
    }
    let visitor = customer_details::visitor(body.visitor.as_deref())?;
    let categories = state.store.categories().await?;
    let Some(category) = categories.iter().find(|c| c.id == body.category.trim()) else {
        return Err(ApiError::invalid("unknown_category", "there is no such category"));
    };
    let identity = match &body.identifier {
        Some(identifier) => {
            crate::identity_secret::verify(&state.store, Some(identifier), body.identifier_hash.as_deref()).await
        }
        None => None,
    };
    let customer = CustomerProfile {
        email: Some(email.clone()),
        visitor,
        identity,
        ..CustomerProfile::default()
    };
    let now = crate::clock::now_ms();
    let message = OfflineMessage {
        id: uuid::Uuid::now_v7().to_string(),
        category: category.id.clone(),
        name,
        email,
        text,
        created_at: now,
        state: OfflineState::New,
        taken_by: None,
        replies: vec![],
        handled_at: None,
        handled_by: None,
        customer: Some(customer),
    };
    let mail = state.settings.mail.offline_to.as_ref().map(|desk| {
        let console = format!("{}/agent.html", super::public_url::base_url(state, headers));
        crate::offline::desk_mail(&message, &category.name, desk, &console, now)
    });
    let id = message.id.clone();
    state.store.add_offline_message(message.clone(), mail).await?;
    metrics::counter!("switchboard_offline_messages_total").increment(1);
    if let Some(hooks) = state.archive.webhooks() {
        hooks
            .emit_durably(crate::webhooks::event::Event::offline_message_created(&message))
            .await;
    }
    // Stored: the conversation follows (finished later when the store refuses it now).
    crate::offline::conversation::sync_soon(&state.store, &message).await;
    Ok((StatusCode::CREATED, Json(Left { id })))
}

/// The views of `messages`, with category and account names.
async fn views(state: &AppState, messages: Vec<OfflineMessage>) -> Result<Vec<OfflineMessageView>, ApiError> {
    let categories = state.store.categories().await?;
    let accounts = state.store.accounts().await?;
    Ok(messages
        .into_iter()
        .map(|m| OfflineMessageView {
            category_name: categories
                .iter()
                .find(|c| c.id == m.category)
                .map_or_else(|| m.category.clone(), |c| c.name.clone()),
            taken_by_name: m
                .taken_by
                .as_ref()
                .and_then(|id| accounts.iter().find(|a| &a.id == id))
                .map(|a| a.display_name.clone()),
            id: m.id,
            category: m.category,
            name: m.name,
            email: m.email,
            text: m.text,
            created_at: m.created_at,
            state: m.state,
            taken_by: m.taken_by,
            replies: m
                .replies
                .into_iter()
                .map(|r| OfflineReplyView {
                    id: r.id,
                    agent_id: r.agent_id,
                    agent_name: r.agent_name,
                    text: r.text,
                    at: r.at,
                })
                .collect(),
        })
        .collect())
}

/// Offline messages, newest first: an agent's of the categories they hold, all for admins.
#[utoipa::path(get, path = "/api/offline-messages", tag = "session", params(OfflineQuery),
    responses((status = 200, body = OfflinePage), BadQuery, SignedIn, Unavailable))]
async fn list(
    State(state): State<AppState>,
    ip: ClientIp,
    authed: Result<Authed, ApiError>,
    query: Result<Query<OfflineQuery>, QueryRejection>,
) -> JsonResult<OfflinePage> {
    // The whitelist first, as for every staff route (this path is also the public POST's).
    if !ip.is_whitelisted(&state.settings) {
        return Err(ApiError::NotWhitelisted);
    }
    let Authed(account) = authed?;
    let Query(q) = query?;
    let limit = page_limit(q.limit, 100, MAX_LIMIT)?;
    let everything = Page {
        offset: 0,
        limit: u64::MAX,
    };
    // The desk's whole list is small (people write these by hand), so an agent's share is
    // taken from it here rather than by a filter of every backend.
    let filter = OfflineFilter {
        state: q.state,
        category: q.category.filter(|c| !c.is_empty()),
    };
    let (all, _) = state.store.offline_messages(&filter, everything).await?;
    let visible: Vec<OfflineMessage> = all.into_iter().filter(|m| may_see(&account, &m.category)).collect();
    finish_conversations(&state, &visible).await?;
    let total = visible.len() as u64;
    let new_filter = OfflineFilter {
        state: Some(OfflineState::New),
        category: None,
    };
    let (new, _) = state.store.offline_messages(&new_filter, everything).await?;
    let new_count = new.iter().filter(|m| may_see(&account, &m.category)).count() as u64;
    let items = views(&state, visible.into_iter().take(limit as usize).collect()).await?;
    Ok(Json(OfflinePage {
        items,
        total,
        new_count,
    }))
}

/// Opens the conversations of those of `messages` that should have one and have not (the
/// store refused it when they were left, and the node stopped before it was tried again).
async fn finish_conversations(state: &AppState, messages: &[OfflineMessage]) -> Result<(), ApiError> {
    let ids: Vec<String> = messages
        .iter()
        .filter(|m| m.customer.is_some())
        .map(|m| m.id.clone())
        .collect();
    let records = state.store.conversation_records(&ids).await?;
    for m in messages
        .iter()
        .filter(|m| m.customer.is_some() && !records.iter().any(|r| r.id == m.id))
    {
        crate::offline::conversation::sync_soon(&state.store, m).await;
    }
    Ok(())
}

/// The conversation of a message just taken or answered, in line with it: its holder
/// hears of it.
async fn follow(state: &AppState, m: &OfflineMessage) {
    if let Some(record) = crate::offline::conversation::sync_soon(&state.store, m).await
        && record.holder.is_some()
    {
        let _ = state.hub.conversation_changed(record, false).await;
    }
}

/// The message `id` if `account` may act on it.
async fn visible(state: &AppState, account: &Account, id: &str) -> Result<OfflineMessage, ApiError> {
    state
        .store
        .offline_message(id)
        .await
        .found_if(|m| may_see(account, &m.category), unknown())
}

/// A change's answer: the message as the store now has it, or the store's refusal.
async fn changed(state: &AppState, changed: Result<OfflineMessage, ApiError>) -> JsonResult<OfflineMessageView> {
    let m = changed?;
    Ok(Json(views(state, vec![m]).await?.remove(0)))
}

fn store_refusal(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => unknown(),
        StoreError::Conflict => ApiError::refused(
            StatusCode::CONFLICT,
            "already_taken",
            "another agent took this message, or it is handled already",
        ),
        e => e.into(),
    }
}

/// Takes a new message: it is the caller's to answer.
#[utoipa::path(post, path = "/api/offline-messages/{id}/take", tag = "session",
    params(("id" = String, Path, description = "the message's id")),
    responses((status = 200, body = OfflineMessageView), UnknownMessage,
        (status = 409, description = "`already_taken`: another agent took it, or it is handled", body = ErrorBody),
        SignedIn, ChangeUnavailable))]
async fn take(Staff(account, state): Staff, Path(id): Path<String>) -> JsonResult<OfflineMessageView> {
    visible(&state, &account, &id).await?;
    // Taken again by its taker is no change: safe to repeat after a 503.
    let taken = within_limit(&state, &id, &account.id, |store, id, agent| async move {
        store.take_offline_message(&id, &agent).await
    })
    .await;
    changed(&state, taken).await
}

/// Marks a message handled (nothing more to do for it).
#[utoipa::path(post, path = "/api/offline-messages/{id}/handled", tag = "session",
    params(("id" = String, Path, description = "the message's id")),
    responses((status = 200, body = OfflineMessageView), UnknownMessage, SignedIn, ChangeUnavailable))]
async fn handled(Staff(account, state): Staff, Path(id): Path<String>) -> JsonResult<OfflineMessageView> {
    visible(&state, &account, &id).await?;
    // Marked handled again is no change: safe to repeat after a 503.
    let handled = within_limit(&state, &id, &account.id, |store, id, agent| async move {
        store.mark_offline_message_handled(&id, &agent).await
    })
    .await;
    changed(&state, handled).await
}

/// `change` of message `id` by `agent`, then its conversation brought in line
/// ([`follow`]), answered within `ARCHIVE_WRITE_TIMEOUT_MS`: past it, 503 saying it may
/// still be made (it goes on to its end: `deadline::write_within`) and may be sent again.
async fn within_limit<F, Fut>(state: &AppState, id: &str, agent: &str, change: F) -> Result<OfflineMessage, ApiError>
where
    F: FnOnce(crate::store::SharedStore, String, String) -> Fut,
    Fut: std::future::Future<Output = Result<OfflineMessage, StoreError>> + Send + 'static,
{
    let write = change(state.store.clone(), id.to_string(), agent.to_string());
    let task_state = state.clone();
    let answer = write_within(state.settings.archive.write_timeout, async move {
        let m = write.await?;
        follow(&task_state, &m).await;
        Ok(m)
    })
    .await;
    match answer {
        Err(e @ StoreError::Unavailable(_)) => Err(ApiError::unanswered_change(e)),
        other => other.map_err(store_refusal),
    }
}

/// Answers a message by mail: the reply goes to the customer through the mail outbox
/// (sent once, retried while the relay is down), is archived with the message, and marks
/// it handled. With a `client_id` it is safe to send again: its id derives from it
/// (`offline::client_reply_id`), so a retry is the same reply and the same mail, and it is
/// answered within `ARCHIVE_WRITE_TIMEOUT_MS` like the take (`within_limit`).
#[utoipa::path(post, path = "/api/offline-messages/{id}/reply", tag = "session",
    params(("id" = String, Path, description = "the message's id")),
    request_body(content = ReplyRequest, example = json!({"text": "Your order left our store today.",
        "client_id": "3f1c2a9e-5d4b-4c1e-9a7f-2b8d6e0c4a11"})),
    responses((status = 200, body = OfflineMessageView, description = "the message with the reply archived; the mail is on its way \
            (with a `client_id` already archived: the message as it is, no second mail)"),
        (status = 400, description = "`bad_json`, `empty_text`, `text_too_long`, `invalid_client_id`", body = ErrorBody),
        UnknownMessage,
        (status = 409, description = "`client_id_reused`: this caller's reply with this `client_id` has another text", body = ErrorBody),
        BodyTooLarge, SignedIn,
        (status = 503, description = "`unavailable`: the store is unreachable or did not answer within \
            `ARCHIVE_WRITE_TIMEOUT_MS`. The reply may still be archived and mailed once it answers: with a \
            `client_id`, sending the same request again is safe (one reply, one mail); without one, it would \
            be a second reply and a second mail", body = ErrorBody)))]
async fn reply(
    Staff(account, state): Staff,
    Path(id): Path<String>,
    body: Result<Json<ReplyRequest>, JsonRejection>,
) -> JsonResult<OfflineMessageView> {
    let m = visible(&state, &account, &id).await?;
    let Json(body) = body?;
    let text = body.text.trim().to_string();
    if text.is_empty() {
        return Err(ApiError::invalid("empty_text", "the reply is empty"));
    }
    if text.chars().count() > MAX_REPLY {
        return Err(ApiError::invalid(
            "text_too_long",
            format!("a reply has at most {MAX_REPLY} characters"),
        ));
    }
    let reply_id = match body.client_id.as_deref() {
        Some(client_id) => crate::offline::client_reply_id(&id, &account.id, valid_client_id(client_id)?),
        None => uuid::Uuid::now_v7().simple().to_string(),
    };
    // Sent again after its write landed: that reply, nothing done twice.
    if let Some(earlier) = m.replies.iter().find(|r| r.id == reply_id) {
        if earlier.text != text {
            return Err(client_id_reused("a reply"));
        }
        return changed(&state, Ok(m)).await;
    }
    let reply = OfflineReply {
        id: reply_id,
        agent_id: account.id.clone(),
        agent_name: account.display_name.clone(),
        text,
        at: crate::clock::now_ms(),
    };
    let category = state
        .store
        .categories()
        .await?
        .into_iter()
        .find(|c| c.id == m.category)
        .map_or_else(|| m.category.clone(), |c| c.name);
    let mail = crate::offline::reply_mail(&m, &category, &reply);
    let sent = reply.clone();
    let task_state = state.clone();
    let answer = write_within(state.settings.archive.write_timeout, async move {
        let m = task_state
            .store
            .reply_offline_message(
                &m.id,
                MailedReply {
                    reply: sent.clone(),
                    mail,
                },
            )
            .await?;
        // Another request with the same id may have written its reply first (one reply,
        // one mail): only the one whose reply the message holds tells the hub.
        if m.replies.contains(&sent) {
            metrics::counter!("switchboard_offline_replies_total").increment(1);
            follow(&task_state, &m).await;
            // Its conversation has the answer too, as the agent's next line.
            if m.customer.is_some() {
                let _ = task_state.hub.answer_by_mail(&sent.agent_id, &m.id, sent.text).await;
            }
        }
        Ok(m)
    })
    .await;
    let m = match answer {
        // With a client id the same request is safe to send again; without, it is a new reply.
        Err(e @ StoreError::Unavailable(_)) if body.client_id.is_some() => Err(ApiError::unanswered_change(e)),
        Err(StoreError::Unavailable(detail)) => {
            tracing::warn!(%detail, "store unavailable for a reply without a client id");
            Err(ApiError::Unavailable(REPLY_UNANSWERED.into()))
        }
        other => other.map_err(store_refusal),
    }?;
    match m.replies.iter().find(|r| r.id == reply.id) {
        Some(stored) if stored.text != reply.text => Err(client_id_reused("a reply")),
        _ => changed(&state, Ok(m)).await,
    }
}

/// What the 503 of a reply without a `client_id` says: not that it is safe to send again.
const REPLY_UNANSWERED: &str = "storage did not answer in time; the reply may still be archived and mailed once it \
    does, and sending it again without a client_id would be a second reply";

/// The 409 of a `client_id` the caller named `what` (a reply, a note) with another text.
pub(super) fn client_id_reused(what: &str) -> ApiError {
    ApiError::refused(
        StatusCode::CONFLICT,
        "client_id_reused",
        format!("you sent {what} with this client_id already, with another text"),
    )
}
