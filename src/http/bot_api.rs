//! A bot's actions over HTTP (`/api/bot/…`), with its `bot` API token as
//! `Authorization: Bearer`: what a socket bot sends as frames — a line to the customer,
//! asking for their email, handing over, resolving — on one of its conversations. A
//! webhook bot (`bot_hooks`) answers the calls it gets this way; a socket bot may too.
//! The hub checks each as the frame (`hub::BotAct`), so the refusals are the same codes.

use axum::Json;
use axum::extract::{FromRequestParts, Path};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::ApiJson;
use super::responses::{BadJson, BodyTooLarge, Unavailable};
use super::session::bot_token;
use super::{ApiError, AppState, ErrorBody};
use crate::hub::BotAct;
use crate::hub::bot_relay::{ActedLine, RelayDown, act_here};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(message))
        .routes(routes!(ask_email))
        .routes(routes!(handover))
        .routes(routes!(resolve))
}

/// Refusals of every bot action.
#[derive(utoipa::IntoResponses)]
pub enum BotsOnly {
    /// `invalid_token`: no API token, or one malformed, unknown, expired or revoked.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `not_whitelisted`: the caller's address is outside `AGENT_WHITELIST`; `missing_scope`:
    /// not a `bot` token.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// `not_your_chat`: no conversation this bot holds now (one handed over or ended included).
    #[response(status = 404)]
    NotYours(ErrorBody),
    /// `rate_limited`: too many requests with this API token, or (a line) the customer has not
    /// yet received this bot's earlier lines; try again after `Retry-After` seconds.
    #[response(status = 429, headers(("Retry-After" = u64, description = "seconds until the token may be used again")))]
    TooMany(ErrorBody),
}

/// The bot a `bot` API token acts as (401 `invalid_token`, 403 `missing_scope`, 429), and
/// the app's state: what every bot action takes first (`Bot(bot, state): Bot`).
pub struct Bot(pub String, pub AppState);

impl FromRequestParts<AppState> for Bot {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let asked = super::session::Asked::of(parts, state).await;
        bot_token(state, &parts.headers, &asked)
            .await
            .map(|(bot, _)| Bot(bot, state.clone()))
    }
}

/// A line for the customer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "We are open 9 to 5.", "client_id": "b1"}))]
pub struct BotMessage {
    pub text: String,
    /// Echoed in the answer, as in a socket's `ack`.
    pub client_id: Option<String>,
}

/// A hand-over's note for the agent (1,000 characters kept).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BotHandover {
    pub note: Option<String>,
}

/// The `ack` a socket bot would get: the line is durable.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct BotAck {
    /// `ack`.
    #[serde(rename = "type")]
    pub kind: String,
    pub chat_id: String,
    pub id: String,
    pub seq: u64,
    pub at: i64,
    pub client_id: Option<String>,
}

/// `act` by bot `bot` on conversation `id`, refused as the frame would be; on several
/// nodes carried out by the node holding the conversation (`hub::bot_relay`).
async fn act(state: &AppState, bot: String, id: String, act: BotAct) -> Result<Option<ActedLine>, ApiError> {
    let acted = match &state.bot_relay {
        Some(relay) => relay.act(bot, id, act).await.map_err(|e| match e {
            RelayDown::Gone => ApiError::from(crate::hub::HubGone),
            RelayDown::Unavailable(why) => ApiError::ClusterUnavailable(why),
        })?,
        None => act_here(&state.hub, &state.archive, bot, id, act).await?,
    };
    acted.map_err(|(code, message)| {
        // The customer has not yet received the bot's earlier lines (core::bot_lines).
        if code == "rate_limited" {
            return ApiError::TooMany {
                code,
                what: "lines to this customer at once",
                retry_after: std::time::Duration::from_secs(1),
            };
        }
        let status = match code {
            "not_your_chat" => StatusCode::NOT_FOUND,
            "archive_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::refused(status, code, message)
    })
}

/// 204 for an action that was taken.
fn done(acted: Result<Option<ActedLine>, ApiError>) -> Result<StatusCode, ApiError> {
    acted.map(|_| StatusCode::NO_CONTENT)
}

/// Sends a line to the customer of one of the bot's conversations; answers once it is
/// durable, with the `ack` a socket bot would get.
#[utoipa::path(post, path = "/api/bot/conversations/{id}/messages", tag = "bot",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the conversation's id (`chat_id`)")),
    request_body = BotMessage,
    responses((status = 200, body = BotAck),
        (status = 400, description = "`bad_json`; `empty_message`, `message_too_long` as on the socket", body = ErrorBody),
        (status = 503, description = "`archive_unavailable`: the archive cannot take a line now; nothing was sent, try again. \
            `cluster_unavailable` (several nodes): Redis, or the node holding the conversation, did not answer in time \
            (or this node stopped while it waited), and the line may have gone out (as with `not_yet_durable`, sending it again may show it twice); or that node \
            was not listening for a moment (a Redis blip), and nothing was sent. \
            `not_yet_durable`: the line went to the customer, but the archive had not kept it within 10 s; do not send it \
            again (it would be a second line). `unavailable`: the hub is stopping", body = ErrorBody),
        BotsOnly))]
async fn message(
    Bot(bot, state): Bot,
    Path(id): Path<String>,
    ApiJson(BotMessage { text, client_id }): ApiJson<BotMessage>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let line = act(&state, bot, id, BotAct::Message { text, client_id })
        .await?
        .ok_or_else(|| ApiError::Unavailable("the line was not recorded".into()))?;
    if !line.durable {
        return Err(ApiError::refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_yet_durable",
            "the line went to the customer, but the archive had not kept it within 10 s: do not send it again",
        ));
    }
    let ack: serde_json::Value = serde_json::from_str(&line.ack).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(ack))
}

/// Asks the customer for their email address (they get `email_asked`).
#[utoipa::path(post, path = "/api/bot/conversations/{id}/ask-email", tag = "bot",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the conversation's id")),
    responses((status = 204, description = "asked"),
        BotsOnly, Unavailable))]
async fn ask_email(Bot(bot, state): Bot, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    done(act(&state, bot, id, BotAct::AskEmail).await)
}

/// Hands the conversation to its category's line (people), with an optional note.
#[utoipa::path(post, path = "/api/bot/conversations/{id}/handover", tag = "bot",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the conversation's id")),
    request_body(content = BotHandover, description = "optional"),
    responses((status = 204, description = "handed over"),
        BadJson,
        BodyTooLarge, BotsOnly, Unavailable))]
async fn handover(
    Bot(bot, state): Bot,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let body = body?;
    // The body is optional: none is a hand-over without a note.
    let BotHandover { note } = if body.iter().all(u8::is_ascii_whitespace) {
        BotHandover::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("bad_json", e.to_string()))?
    };
    done(act(&state, bot, id, BotAct::Handover { note }).await)
}

/// The conversation is done: it ends, resolved by the bot.
#[utoipa::path(post, path = "/api/bot/conversations/{id}/resolve", tag = "bot",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the conversation's id")),
    responses((status = 204, description = "resolved"),
        BotsOnly, Unavailable))]
async fn resolve(Bot(bot, state): Bot, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    done(act(&state, bot, id, BotAct::Resolve).await)
}
