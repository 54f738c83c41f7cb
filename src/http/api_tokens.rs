//! API tokens for admins (`/api/admin/api-tokens`): create one (a name, scopes, a bot
//! name with the `bot` scope, an optional expiry; its secret is in this answer only),
//! list them with their last use, revoke one. Revocation counts at once on this node and
//! within a second on every other (`api_tokens`). Also the refusal of a token put in a URL's query.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::access::ClientIp;
use super::error::{ApiJson, StatusJson, StoreAnswer, names_from};
use super::responses::{AdminsOnly, Unavailable};
use super::session::{Admin, AdminCaller};
use super::{ApiError, AppState, ErrorBody};
use crate::api_tokens::{hash, new_secret};
use crate::clock::now_ms;
use crate::cluster::bus::AdminChange;
use crate::core::api_tokens::carried_in_url;
use crate::core::api_tokens::{PREFIX, Refused, SCOPES};
use crate::store::ApiToken;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// A token's name is at most this many characters (a bot's name has its own limit,
/// `core::bots::NAME_MAX_CHARS`).
const NAME_CHARS: usize = 80;

/// A token as listed (never its secret or hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiTokenView {
    pub id: String,
    pub name: String,
    /// `read`, `bot`, `admin`.
    pub scopes: Vec<String>,
    /// The bot it acts as (with the `bot` scope).
    pub bot: Option<String>,
    /// The secret's start (`sbt_` and 4 characters), to tell tokens apart.
    pub hint: String,
    pub created_at: i64,
    /// The id of the admin who created it.
    pub created_by: String,
    pub expires_at: Option<i64>,
    /// Exact to a minute: a busy token's use is written once a minute.
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl From<ApiToken> for ApiTokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            scopes: t.scopes,
            bot: t.bot,
            hint: t.hint,
            created_at: t.created_at,
            created_by: t.created_by,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A new token, with its secret: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiToken {
    #[serde(flatten)]
    pub token: ApiTokenView,
    /// Send as `Authorization: Bearer <secret>`. Not shown again; only its hash is kept.
    pub secret: String,
}

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiToken {
    /// What it is for ("CRM sync"), 1 to 80 characters.
    pub name: String,
    /// One or more of `read` (the archive, conversations, reports: GET requests),
    /// `bot` (act as the bot named in `bot`), `admin` (everything an admin may do).
    pub scopes: Vec<String>,
    /// The bot's name (1 to 100 characters); required with the `bot` scope, refused without it.
    pub bot: Option<String>,
    /// When it stops working (ms since the epoch, in the future); never when absent.
    pub expires_at: Option<i64>,
}

/// The API tokens, revoked ones included, oldest first.
#[utoipa::path(get, path = "/api/admin/api-tokens", tag = "admin",
    responses((status = 200, body = [ApiTokenView]), AdminsOnly, Unavailable))]
async fn list(Admin(state): Admin) -> super::error::JsonResult<Vec<ApiTokenView>> {
    Ok(Json(
        state.store.api_tokens().await?.into_iter().map(Into::into).collect(),
    ))
}

/// Create a token; the answer holds its secret, which is not shown again. Only a signed-in
/// admin may (the cookie, or the session as a bearer token): an API token, whatever its
/// scopes, is refused 403 `session_required`, as a token it made would outlive its revocation.
#[utoipa::path(post, path = "/api/admin/api-tokens", tag = "admin",
    request_body(content = NewApiToken, example = json!({"name": "CRM sync", "scopes": ["read"]})),
    responses((status = 201, body = CreatedApiToken),
        (status = 400, description = "`bad_json`; `invalid_name`: empty or over 80 characters; \
            `invalid_scopes`: none, or one that is no scope; `invalid_bot`: `bot` scope without a bot name \
            (1 to 100 characters) or a bot name without it; `invalid_expiry`: not in the future", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn create(
    caller: AdminCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewApiToken>,
) -> StatusJson<CreatedApiToken> {
    // A token made by a token would stay valid when the first is revoked after a leak.
    caller.signed_in()?;
    let me = caller.account;
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > NAME_CHARS {
        return Err(ApiError::invalid("invalid_name", "a name is 1 to 80 characters"));
    }
    // `SCOPES` names every scope `core::api_tokens::Scope::parse` reads.
    let scopes = names_from(body.scopes, &SCOPES, "invalid_scopes", "scope")?;
    let bot = body.bot.filter(|b| !b.trim().is_empty());
    let bot = match (bot, scopes.iter().any(|s| s == "bot")) {
        (Some(b), true) => Some(super::bot_hooks::valid_bot(&b)?),
        (None, true) => {
            return Err(ApiError::invalid("invalid_bot", "the bot scope needs the bot's name"));
        }
        (Some(_), false) => return Err(ApiError::invalid("invalid_bot", "a bot name needs the bot scope")),
        (None, false) => None,
    };
    let now = now_ms();
    if body.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::invalid("invalid_expiry", "expires_at is in the past"));
    }
    let secret = new_secret();
    let token = ApiToken {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        scopes,
        bot,
        hash: hash(&secret),
        hint: secret.chars().take(PREFIX.len() + 4).collect(),
        created_at: now,
        created_by: me.id,
        expires_at: body.expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    state.store.add_api_token(token.clone()).await?;
    // A webhook bot whose tokens were all revoked is called at its URL again.
    // The token is stored: from here on a failure is logged, never answered, or the admin
    // would not see the secret, which is shown only now.
    if let Some(bot) = &token.bot {
        match crate::bot_hooks::get(&state.store, bot).await {
            Ok(Some(hook)) => {
                if state.hub.set_bot_hook(bot.clone(), Some(hook)).await.is_err() {
                    tracing::warn!(bot = %bot, "a new token's bot: the hub is stopping; its webhook is read at the next start");
                }
                // The other nodes call it again too.
                if let Some(cluster) = &state.cluster
                    && let Err(e) = cluster.publish(AdminChange::Bots {}).await
                {
                    tracing::warn!(bot = %bot, error = %e, "a new token's bot: the other nodes were not told; they are at their next resync");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(bot = %bot, error = %e, "a new token's bot: its webhook could not be read; it is read at the next start")
            }
        }
    }
    tracing::info!(token = %token.id, name = %token.name, scopes = ?token.scopes, "API token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiToken {
            token: token.into(),
            secret,
        }),
    ))
}

/// Revoke a token: refused from now on by the node answering, and within a second by
/// every other node (at once when the cluster's bus carries the news; a second at most
/// when it is lost). It stays listed, revoked.
#[utoipa::path(delete, path = "/api/admin/api-tokens/{id}", tag = "admin",
    params(("id" = String, Path, description = "the token's id")),
    responses((status = 200, description = "revoked (or revoked already: the first time stays)", body = ApiTokenView),
        (status = 404, description = "`not_found`: no such token", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn revoke(Admin(state): Admin, Path(id): Path<String>) -> super::error::JsonResult<ApiTokenView> {
    let token = state
        .store
        .revoke_api_token(&id, now_ms())
        .await
        .missing_as(ApiError::NotFound("API token"))?;
    state.api_tokens.forget(&id);
    // A bot socket opened with it closes now, a webhook bot left without a token is called
    // no more; the revocation stands whatever this says (a hub stopping closes them anyway).
    if let Err(e) = crate::hub::bot_token_revoked(&state.store, &state.hub, &id).await {
        tracing::warn!(token = %id, error = %e, "a revoked token's bot was not told");
    }
    // The store refuses it to every node already; the bus empties their caches. A node
    // that misses the message still refuses it once its cache entry is a second old.
    if let Some(cluster) = &state.cluster
        && let Err(e) = cluster.publish(AdminChange::ApiTokenRevoked { id: id.clone() }).await
    {
        tracing::warn!(token = %id, error = %e, "a token's revocation could not be told to the other nodes");
    }
    tracing::info!(token = %id, "API token revoked");
    Ok(Json(token.into()))
}

/// Does this query carry an API token (an `access_token` parameter, or a key or value
/// holding one, [`carried_in_url`])? Such a request is refused: a URL lands in logs,
/// proxies and browser histories.
pub fn in_query(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .any(|(key, value)| key == "access_token" || carried_in_url(&key) || carried_in_url(&value))
    })
}

/// Does this path carry an API token (in a segment or a `;parameter`, percent-encoded or
/// not, [`carried_in_url`])? Refused as one in the query is, and never logged.
pub fn in_path(path: &str) -> bool {
    carried_in_url(path)
}

/// The path as a log line may show it: not at all when it carries a token.
pub fn loggable_path(path: &str) -> &str {
    if in_path(path) {
        "(a path holding an API token)"
    } else {
        path
    }
}

/// 401 `token_in_query` for any API or websocket request with an API token in its query
/// ([`in_query`]), whatever its headers say, logged (`ApiTokens::log_refusal`) with the
/// path and the client's address. Nothing of the query is logged, nor read beyond the check.
pub async fn refuse_token_in_query(
    State(state): State<AppState>,
    client: ClientIp,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    if !in_query(request.uri().query()) && !in_path(path) {
        return next.run(request).await;
    }
    state
        .api_tokens
        .log_refusal(Refused::InQuery, None, loggable_path(path), &client);
    ApiError::refused(
        StatusCode::UNAUTHORIZED,
        "token_in_query",
        crate::api_tokens::message(Refused::InQuery),
    )
    .into_response()
}
