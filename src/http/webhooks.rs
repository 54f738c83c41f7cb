//! Webhook endpoints for admins (`/api/admin/webhooks`): register one (its URL, the events
//! it wants; its secret is shown in this answer only), list, enable or disable, delete,
//! read its delivery log, and send a logged delivery's event again. A URL must be http(s), and its host must resolve to public
//! addresses unless private ones are allowed (`webhooks::private_addresses`: the admins'
//! choice, `webhook_private_addresses`, unless `WEBHOOK_ALLOW_PRIVATE` decides).

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, ApiQuery, JsonResult, StatusJson, StoreAnswer, names_from};
use super::paging::page_limit;
use super::responses::{AdminsOnly, BadQuery, NoEndpoint, Unavailable};
use super::session::Admin;
use super::{ApiError, AppState, ErrorBody};
use crate::cluster::bus::AdminChange;
use crate::core::webhooks::EVENT_TYPES;
use crate::store::{DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint};
use crate::webhooks::{private_addresses, sign, target};

/// An outgoing URL an admin gave (a webhook endpoint's, a webhook bot's): http(s), and
/// resolving to public addresses only unless private ones are allowed now (400 `invalid_url`).
/// Each refusal is logged (at INFO, with the address's host, never its path or query: they
/// may carry a secret), so an operator sees who tried to point the hub where.
pub(super) async fn checked_url(state: &AppState, raw: &str) -> Result<url::Url, ApiError> {
    let refused = |why: String, host: &str| {
        tracing::info!(%host, %why, "an outgoing URL an admin gave was refused");
        ApiError::invalid("invalid_url", why)
    };
    let url = target::parse(raw).map_err(|e| refused(e.to_string(), "(not a URL)"))?;
    let host = url.host_str().unwrap_or("").to_string();
    let allow_private = private_addresses::allowed_now(state.settings.webhooks.allow_private, &state.store).await?;
    target::resolve(&url, allow_private)
        .await
        .map_err(|e| refused(e.to_string(), &host))?;
    Ok(url)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(update, delete))
        .routes(routes!(deliveries))
        .routes(routes!(send_again))
        .routes(routes!(journal))
}

/// The refusal of an endpoint id that names none (`NoEndpoint`).
const NO_ENDPOINT: ApiError = ApiError::NotFound("webhook");

/// The answering node's webhook journal.
#[derive(Debug, Serialize, ToSchema)]
pub struct JournalView {
    /// The node answering (`NODE_ID`): each node has a journal of its own.
    pub node: String,
    /// Events journaled on this node, not yet handed on as deliveries (each becomes one
    /// per endpoint wanting it). It grows while the store cannot take deliveries.
    pub backlog: u64,
    /// Journal records this node could not read (damaged, or written by a newer version),
    /// set aside in the journal file's `set_aside` table for an operator.
    pub set_aside: u64,
}

/// This node's webhook journal: events not yet handed on as deliveries, and records set
/// aside as unreadable.
#[utoipa::path(get, path = "/api/admin/webhooks/journal", tag = "admin",
    responses((status = 200, body = JournalView), AdminsOnly,
        (status = 503, description = "`unavailable`: webhooks are not running on this node (it is starting or stopping)", body = ErrorBody)))]
async fn journal(Admin(state): Admin) -> JsonResult<JournalView> {
    let hooks = state
        .archive
        .webhooks()
        .ok_or_else(|| ApiError::Unavailable("webhooks are not running on this node".into()))?;
    let file = hooks.journal();
    Ok(Json(JournalView {
        node: state.settings.cluster.node_id.clone(),
        backlog: file.backlog(),
        set_aside: file.set_aside(),
    }))
}

/// An endpoint as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why the hub disabled it (sustained failure), if it did.
    pub disabled_reason: Option<String>,
    pub created_at: i64,
}

impl From<WebhookEndpoint> for WebhookView {
    fn from(e: WebhookEndpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            events: e.events,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            created_at: e.created_at,
        }
    }
}

/// A new endpoint, with its secret: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub endpoint: WebhookView,
    /// The HMAC-SHA256 key of its signatures (docs/webhooks.md). Not shown again.
    pub secret: String,
}

/// An endpoint to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// http or https.
    pub url: String,
    /// One or more of the event types (docs/webhooks.md): `conversation.created`,
    /// `conversation.assigned`, `conversation.transferred`, `conversation.status_changed`,
    /// `message.created`, `note.created` (agents' internal notes: only when named),
    /// `rating.given`, `offline_message.created`, `appointment.booked`,
    /// `appointment.rescheduled`, `appointment.cancelled`.
    pub events: Vec<String>,
}

/// A change to an endpoint: each field given is changed, the others stay. Its id and
/// secret never change (delete and register again for a new secret).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEdit {
    /// Enabled or disabled; enabling it again clears its failures.
    pub enabled: Option<bool>,
    /// A new address, checked as at registration.
    pub url: Option<String>,
    /// The event types it wants from now on (at least one), checked as at registration.
    pub events: Option<Vec<String>>,
}

/// One delivery of an event to an endpoint, with its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// When it is (next) tried, while pending.
    pub due_at: i64,
    pub created_at: i64,
    /// Oldest first: status code, latency and the start of the answer of each.
    pub attempts: Vec<DeliveryAttempt>,
}

impl From<WebhookDelivery> for DeliveryView {
    fn from(d: WebhookDelivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            due_at: d.due_at,
            created_at: d.created_at,
            attempts: d.attempts,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// 1 to 200, default 50.
    pub limit: Option<u64>,
}

/// The webhook endpoints, oldest first.
#[utoipa::path(get, path = "/api/admin/webhooks", tag = "admin",
    responses((status = 200, body = [WebhookView]), AdminsOnly, Unavailable))]
async fn list(Admin(state): Admin) -> JsonResult<Vec<WebhookView>> {
    Ok(Json(
        state.store.webhooks().await?.into_iter().map(Into::into).collect(),
    ))
}

/// Register an endpoint; the answer holds its secret, which is not shown again.
#[utoipa::path(post, path = "/api/admin/webhooks", tag = "admin",
    request_body(content = NewWebhook, example = json!({"url": "https://crm.example.com/switchboard", "events": ["conversation.created", "message.created"]})),
    responses((status = 201, body = CreatedWebhook),
        (status = 400, description = "`bad_json`; `invalid_url`: not http(s), does not resolve, or resolves to a loopback, link-local or private address while those are not allowed (`/api/admin/webhooks/private-addresses`); `invalid_events`: none, or one that is no event type", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn create(Admin(state): Admin, ApiJson(body): ApiJson<NewWebhook>) -> StatusJson<CreatedWebhook> {
    let url = checked_url(&state, &body.url).await?;
    let events = checked_events(body.events)?;
    let endpoint = WebhookEndpoint {
        id: uuid::Uuid::now_v7().to_string(),
        url: url.to_string(),
        events,
        secret: sign::new_secret(),
        enabled: true,
        disabled_reason: None,
        failures_in_a_row: 0,
        created_at: crate::clock::now_ms(),
    };
    state.store.add_webhook(endpoint.clone()).await?;
    endpoints_changed(&state).await;
    let secret = endpoint.secret.clone();
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            endpoint: endpoint.into(),
            secret,
        }),
    ))
}

/// The event types asked for, each known, each once, at least one.
fn checked_events(asked: Vec<String>) -> Result<Vec<String>, ApiError> {
    names_from(asked, &EVENT_TYPES, "invalid_events", "event type")
}

/// Change an endpoint: enable or disable it, point it at another address, or change the
/// events it wants. Disabled, it gets no new events; its pending deliveries wait and go, in
/// order, once it is enabled again. A new address or events apply to what is delivered
/// from then on, its pending deliveries included (they go to the new address); its id and
/// secret stay.
#[utoipa::path(patch, path = "/api/admin/webhooks/{id}", tag = "admin",
    params(("id" = String, Path, description = "the endpoint's id")),
    request_body(content = WebhookEdit, example = json!({"enabled": true})),
    responses((status = 200, body = WebhookView),
        (status = 400, description = "`bad_json`; `invalid_url` and `invalid_events` as at registration", body = ErrorBody),
        NoEndpoint,
        AdminsOnly, Unavailable))]
async fn update(
    Admin(state): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookEdit>,
) -> JsonResult<WebhookView> {
    let mut endpoint = state.store.webhook(&id).await.missing_as(NO_ENDPOINT)?;
    // Everything checked before anything changes: a refused edit changes nothing.
    let url = match &body.url {
        Some(raw) => Some(checked_url(&state, raw).await?),
        None => None,
    };
    let events = body.events.map(checked_events).transpose()?;
    if let Some(url) = url {
        endpoint.url = url.to_string();
    }
    if let Some(events) = events {
        endpoint.events = events;
    }
    if let Some(enabled) = body.enabled {
        endpoint.enabled = enabled;
        if enabled {
            endpoint.disabled_reason = None;
            endpoint.failures_in_a_row = 0;
        }
    }
    state
        .store
        .put_webhook(endpoint.clone())
        .await
        .missing_as(NO_ENDPOINT)?;
    endpoints_changed(&state).await;
    Ok(Json(endpoint.into()))
}

/// Delete an endpoint and its delivery log; nothing more is sent to it.
#[utoipa::path(delete, path = "/api/admin/webhooks/{id}", tag = "admin",
    params(("id" = String, Path, description = "the endpoint's id")),
    responses((status = 204, description = "deleted"),
        NoEndpoint,
        AdminsOnly, Unavailable))]
async fn delete(Admin(state): Admin, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.store.delete_webhook(&id).await.missing_as(NO_ENDPOINT)?;
    endpoints_changed(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Endpoints changed: this node's webhooks read them again at once, and every other
/// node's once told on the admin bus. The change is saved either way: with Redis away the
/// others' deliverers read it at their next look (twice a second), so it is not refused.
pub(super) async fn endpoints_changed(state: &AppState) {
    if let Some(hooks) = state.archive.webhooks() {
        hooks.endpoints_changed().await;
    }
    if let Err(e) = super::admin::tell_other_nodes(state, AdminChange::Webhooks {}).await {
        tracing::warn!(error = ?e, "other nodes see a webhook endpoint's change at their next look");
    }
}

/// An endpoint's delivery log, newest first.
#[utoipa::path(get, path = "/api/admin/webhooks/{id}/deliveries", tag = "admin",
    params(("id" = String, Path, description = "the endpoint's id"), LogQuery),
    responses((status = 200, body = [DeliveryView]), BadQuery,
        NoEndpoint,
        AdminsOnly, Unavailable))]
async fn deliveries(
    Admin(state): Admin,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> JsonResult<Vec<DeliveryView>> {
    let limit = page_limit(q.limit, 50, 200)?;
    state.store.webhook(&id).await.missing_as(NO_ENDPOINT)?;
    let log = state
        .store
        .deliveries_of(&id, usize::try_from(limit).unwrap_or(200))
        .await?;
    Ok(Json(log.into_iter().map(Into::into).collect()))
}

/// Send a logged delivery's event again: a new pending delivery of the same event (same
/// `id` and body, signed afresh) through the durable queue, after the conversation's
/// pending ones to this endpoint. The endpoint must be enabled.
#[utoipa::path(post, path = "/api/admin/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "admin",
    params(("id" = String, Path, description = "the endpoint's id"),
        ("delivery" = String, Path, description = "the logged delivery's id")),
    responses((status = 202, description = "queued: the new delivery, pending", body = DeliveryView),
        (status = 404, description = "`not_found`: no such endpoint, or no such delivery of it", body = ErrorBody),
        (status = 409, description = "`endpoint_disabled`: enable the endpoint first (a disabled one is sent nothing)", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn send_again(Admin(state): Admin, Path((id, delivery)): Path<(String, String)>) -> StatusJson<DeliveryView> {
    let endpoint = state.store.webhook(&id).await.missing_as(NO_ENDPOINT)?;
    // The whole log is read: a delivery older than the page shown may be sent again too.
    let logged = state
        .store
        .deliveries_of(&id, usize::MAX)
        .await?
        .into_iter()
        .find(|d| d.id == delivery)
        .ok_or(ApiError::NotFound("delivery"))?;
    if !endpoint.enabled {
        return Err(ApiError::refused(
            StatusCode::CONFLICT,
            "endpoint_disabled",
            "the endpoint is disabled: enable it first, then send again",
        ));
    }
    let stopping = || ApiError::Unavailable("webhooks are not running on this node".into());
    let hooks = state.archive.webhooks().ok_or_else(stopping)?;
    let again = hooks.send_again(logged).await.ok_or_else(stopping)?;
    Ok((StatusCode::ACCEPTED, Json(again.into())))
}
