//! Webhook bots through the admin API: give a bot (the name a `bot` API token acts as) an
//! outgoing URL, which the hub then calls with what a socket bot is sent (`bot_hooks`,
//! `hub::bot_calls`); its secret, to check the calls' signatures with, is in the answer
//! only. The URL is checked as a webhook endpoint's (private addresses too).

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult};
use super::responses::{AdminsOnly, Unavailable};
use super::session::Admin;
use super::{ApiError, AppState, ErrorBody};
use crate::bot_hooks::{self, BotHook};
use crate::cluster::bus::AdminChange;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(set, remove))
}

/// A bot's name as an admin gives it (its hook's, its category's, its token's), checked and
/// trimmed, or 400 `invalid_bot`.
pub(super) fn valid_bot(raw: &str) -> Result<String, ApiError> {
    crate::core::bots::checked_name(raw).map_err(|e| ApiError::invalid("invalid_bot", format!("bot: {e}")))
}

/// A bot a live `bot` token acts as, and where it is called (none: it connects to `/ws/bot`).
#[derive(Debug, Serialize, ToSchema)]
pub struct BotHookView {
    pub bot: String,
    pub url: Option<String>,
}

/// Where a bot is called.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://bots.example.com/faq"}))]
pub struct SetBotHook {
    /// http or https.
    pub url: String,
}

/// A bot's hook as set, with the secret its calls are signed with: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedBotHook {
    pub bot: String,
    pub url: String,
    /// The calls' `Switchboard-Signature` is `v1=` and the hex HMAC-SHA256 of
    /// `<Switchboard-Timestamp>.<body>` under this secret, as for webhooks.
    pub secret: String,
}

/// The bots the desk's live `bot` tokens act as, and the URL each is called at.
#[utoipa::path(get, path = "/api/admin/bot-hooks", tag = "admin",
    responses((status = 200, body = [BotHookView]), AdminsOnly, Unavailable))]
async fn list(Admin(state): Admin) -> JsonResult<Vec<BotHookView>> {
    let bots = bot_hooks::all(&state.store).await?;
    Ok(Json(
        bots.into_iter()
            .map(|(bot, hook)| BotHookView {
                bot,
                url: hook.map(|h| h.url),
            })
            .collect(),
    ))
}

/// Calls bot `bot` at this URL from now on (a new secret each time; the calls not yet
/// made at an earlier URL come here): customers of the categories naming it talk to it
/// first while it has a URL or a socket.
#[utoipa::path(put, path = "/api/admin/bot-hooks/{bot}", tag = "admin",
    params(("bot" = String, Path, description = "the bot's name, as its `bot` token acts as")),
    request_body = SetBotHook,
    responses((status = 200, body = CreatedBotHook),
        (status = 400, description = "`bad_json`; `invalid_bot` (a blank or bad name); `unknown_bot`: no live `bot` token \
            acts as it (it could never answer: create its token first); `invalid_url`: not http(s), \
            does not resolve, or resolves to a loopback, link-local or private address while those are not allowed (`/api/admin/webhooks/private-addresses`)",
            body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn set(
    Admin(state): Admin,
    Path(bot): Path<String>,
    ApiJson(SetBotHook { url }): ApiJson<SetBotHook>,
) -> JsonResult<CreatedBotHook> {
    let bot = valid_bot(&bot)?;
    // A bot without a live token could never answer: every customer would wait out the
    // reply timeout, and a restarted hub would ignore the URL.
    if !bot_hooks::all(&state.store).await?.iter().any(|(name, _)| *name == bot) {
        return Err(ApiError::invalid(
            "unknown_bot",
            format!("no live bot token acts as {bot}: create one first (API tokens, scope bot)"),
        ));
    }
    let url = super::webhooks::checked_url(&state, &url).await?;
    let hook = BotHook {
        url: url.to_string(),
        secret: crate::webhooks::sign::new_secret(),
    };
    bot_hooks::set(&state.store, &bot, Some(&hook)).await?;
    state.hub.set_bot_hook(bot.clone(), Some(hook.clone())).await?;
    super::admin::tell_other_nodes(&state, AdminChange::Bots {}).await?;
    tracing::info!(bot = %bot, host = %crate::bot_hooks::host_of(&hook.url), "a bot's webhook was set");
    Ok(Json(CreatedBotHook {
        bot,
        url: hook.url,
        secret: hook.secret,
    }))
}

/// The bot is no longer called by webhook; conversations it holds then (unless its socket
/// is connected) go to their categories' lines.
#[utoipa::path(delete, path = "/api/admin/bot-hooks/{bot}", tag = "admin",
    params(("bot" = String, Path, description = "the bot's name")),
    responses((status = 204, description = "removed (or there was none)"), AdminsOnly, Unavailable))]
async fn remove(Admin(state): Admin, Path(bot): Path<String>) -> Result<StatusCode, ApiError> {
    // Named as `set` names it, so what was set is what is removed.
    let bot = bot.trim().to_string();
    bot_hooks::set(&state.store, &bot, None).await?;
    state.hub.set_bot_hook(bot, None).await?;
    super::admin::tell_other_nodes(&state, AdminChange::Bots {}).await?;
    Ok(StatusCode::NO_CONTENT)
}
