//! Signing in and out, and the extractors that require a session.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::access::{ClientIp, OverHttps};
use super::error::ApiJson;
use super::responses::{SignedIn, Unavailable};
use super::{AccountView, ApiError, AppState, ErrorBody};
use crate::api_tokens::Refusal;
use crate::auth::{SESSION_COOKIE, verify_sign_in};
use crate::core::api_tokens::{Refused, Scope};
use crate::hub::SessionEnd;
use crate::store::{Account, Role, StoreError};

/// The session token of a request: a bearer token, else the session cookie.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = bearer_token(headers) {
        return Some(bearer);
    }
    CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_string())
}

/// A signed-in, enabled account; or an API token (`Authorization: Bearer sbt_…`) acting
/// as an admin: with the `read` scope for a GET or HEAD, with `admin` for anything else.
pub struct Authed(pub Account);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(secret) = api_token(&parts.headers) {
            let need = if parts.method.is_safe() {
                Scope::Read
            } else {
                Scope::Admin
            };
            let asked = Asked::of(parts, state).await;
            return token_account(state, &secret, need, &asked).await.map(Authed);
        }
        let token = session_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let id = state.sessions.account_of(&token).await?.ok_or(ApiError::Unauthorized)?;
        match state.store.account(&id).await {
            Ok(account) if account.enabled => Ok(Authed(account)),
            Ok(_) => Err(ApiError::Forbidden("this account is disabled".into())),
            Err(StoreError::NotFound) => Err(ApiError::Unauthorized),
            Err(e) => Err(e.into()),
        }
    }
}

/// A signed-in admin, or an API token with the `admin` scope.
pub struct AdminOnly(pub Account);

impl FromRequestParts<AppState> for AdminOnly {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(secret) = api_token(&parts.headers) {
            let asked = Asked::of(parts, state).await;
            return token_account(state, &secret, Scope::Admin, &asked).await.map(AdminOnly);
        }
        let Authed(account) = Authed::from_request_parts(parts, state).await?;
        if account.role != Role::Admin {
            return Err(ApiError::Forbidden("only admins may do this".into()));
        }
        Ok(AdminOnly(account))
    }
}

/// What most staff handlers take first: the caller, signed in as [`Authed`] checks, and the
/// app's state, in one argument (`Staff(me, state): Staff`).
pub struct Staff(pub Account, pub AppState);

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Authed(account) = Authed::from_request_parts(parts, state).await?;
        Ok(Staff(account, state.clone()))
    }
}

/// What most admin handlers take first: the app's state, for a caller [`AdminOnly`] lets
/// in (`Admin(state): Admin`).
pub struct Admin(pub AppState);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        AdminOnly::from_request_parts(parts, state).await?;
        Ok(Admin(state.clone()))
    }
}

/// A signed-in admin by the session cookie alone: never a bearer token, so never an API
/// token whatever its scopes. For a change a leaked token must not make (letting webhooks
/// into the server's network): 403 `session_required` for any bearer token.
pub struct CookieAdmin(pub Account);

impl FromRequestParts<AppState> for CookieAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if bearer_token(&parts.headers).is_some() {
            return Err(session_required(parts.uri.path()));
        }
        let AdminOnly(account) = AdminOnly::from_request_parts(parts, state).await?;
        Ok(CookieAdmin(account))
    }
}

/// A signed-in admin or an API token with the `admin` scope, as [`AdminOnly`], for a route
/// where only some changes are a [`CookieAdmin`]'s (making an admin, changing an admin
/// account: a leaked token must neither become an admin's session nor lock the admins out).
pub struct AdminCaller {
    pub account: Account,
    /// The route, when the caller came with a bearer token rather than the cookie.
    bearer_on: Option<String>,
}

impl AdminCaller {
    /// Ok for an admin signed in with the session cookie; 403 `session_required` for a
    /// bearer token, as [`CookieAdmin`] answers.
    pub fn cookie_session(&self) -> Result<(), ApiError> {
        match &self.bearer_on {
            Some(route) => Err(session_required(route)),
            None => Ok(()),
        }
    }

    /// Ok for an admin signed in (the cookie, or their session as a bearer token); 403
    /// `session_required` for an API token: for what a leaked token must not do even with
    /// the `admin` scope, such as making another token that outlives its revocation.
    pub fn signed_in(&self) -> Result<(), ApiError> {
        match &self.bearer_on {
            Some(route) if self.account.id.starts_with(API_TOKEN_ACCOUNT) => {
                tracing::info!(%route, "an API token was refused a change only a signed-in admin may make");
                Err(ApiError::refused(
                    StatusCode::FORBIDDEN,
                    "session_required",
                    "only a signed-in admin may do this (the admin page, or their session as a bearer token), not an API token",
                ))
            }
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let AdminOnly(account) = AdminOnly::from_request_parts(parts, state).await?;
        let bearer_on = bearer_token(&parts.headers).map(|_| parts.uri.path().to_string());
        Ok(AdminCaller { account, bearer_on })
    }
}

/// The refusal of a change only an admin signed in on the admin page may make, logged with
/// `route` (never the token itself: the route, for whoever wonders who tried).
fn session_required(route: &str) -> ApiError {
    tracing::info!(%route, "a bearer token was refused a change only an admin signed in on the admin page may make");
    ApiError::refused(
        StatusCode::FORBIDDEN,
        "session_required",
        "only an admin signed in on the admin page may change this, not an API token or any bearer token",
    )
}

/// A signed-in admin, or an API token with the `read` scope (or `admin`): for what
/// admins read that a reading script may read too (the reports).
pub struct AdminOrReader(pub Account);

impl FromRequestParts<AppState> for AdminOrReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(secret) = api_token(&parts.headers) {
            let asked = Asked::of(parts, state).await;
            return token_account(state, &secret, Scope::Read, &asked)
                .await
                .map(AdminOrReader);
        }
        let AdminOnly(account) = AdminOnly::from_request_parts(parts, state).await?;
        Ok(AdminOrReader(account))
    }
}

/// How the account an API token acts as is named (`api-token:<token id>`): never a
/// person's id, which is a UUID.
const API_TOKEN_ACCOUNT: &str = "api-token:";

/// The `Authorization: Bearer` token of a request, if any.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|bearer| bearer.trim().to_string())
}

/// The API token of a request: a bearer token with the API token prefix (a session token
/// never has it). Never the `sb_session` cookie: an API token is a script's, sent as a
/// bearer token only; in the cookie it is no session and is refused as an unknown one.
pub fn api_token(headers: &HeaderMap) -> Option<String> {
    bearer_token(headers).filter(|t| t.starts_with(crate::core::api_tokens::PREFIX))
}

/// Where a request with an API token went, for the log line of a refusal: its route (the
/// path, never the query) and the client's address.
pub struct Asked {
    pub route: String,
    pub client: ClientIp,
}

impl Asked {
    pub async fn of(parts: &mut Parts, state: &AppState) -> Self {
        Self {
            route: parts.uri.path().to_string(),
            client: ClientIp::from_request_parts(parts, state)
                .await
                .unwrap_or(ClientIp::UNPARSABLE),
        }
    }
}

/// The admin an API token acts as, if it is live, within its rate and holds `need`.
/// It is no account of the store: its id is `api-token:<token id>`, so whatever it does
/// is told apart from people's doing.
async fn token_account(state: &AppState, secret: &str, need: Scope, asked: &Asked) -> Result<Account, ApiError> {
    let token = token_with(state, secret, need, asked).await?;
    Ok(Account {
        id: format!("{API_TOKEN_ACCOUNT}{}", token.id),
        username: format!("{API_TOKEN_ACCOUNT}{}", token.id),
        display_name: token.name,
        role: Role::Admin,
        password_hash: String::new(),
        categories: vec![],
        max_chats: 1,
        enabled: true,
        created_at: token.created_at,
    })
}

/// Logs a refused token (`ApiTokens::log_refusal`: rate limited, never the secret) and
/// gives the answer's refusal.
fn refused(state: &AppState, why: Refused, secret: Option<&str>, id: Option<&str>, asked: &Asked) -> Refused {
    let name = secret.map(|secret| crate::api_tokens::log_name(secret, id));
    state
        .api_tokens
        .log_refusal(why, name.as_deref(), &asked.route, &asked.client);
    why
}

/// The live API token `secret` is, within its rate and holding `need` (401, 429, 403
/// otherwise; each refusal logged).
pub async fn token_with(
    state: &AppState,
    secret: &str,
    need: Scope,
    asked: &Asked,
) -> Result<crate::store::ApiToken, ApiError> {
    let token = match state.api_tokens.verify(secret).await {
        Ok(token) => token,
        Err(Refusal::Invalid(why, id)) => {
            let why = refused(state, why, Some(secret), id.as_deref(), asked);
            return Err(ApiError::refused(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                crate::api_tokens::message(why),
            ));
        }
        Err(Refusal::TooFast(wait, id)) => {
            refused(state, Refused::RateLimited, Some(secret), Some(&id), asked);
            return Err(ApiError::too_many("rate_limited", "requests with this API token", wait));
        }
        Err(Refusal::Store(e)) => return Err(e.into()),
    };
    if !crate::core::api_tokens::allows(&token.scopes, need) {
        refused(state, Refused::MissingScope, Some(secret), Some(&token.id), asked);
        return Err(ApiError::refused(
            StatusCode::FORBIDDEN,
            "missing_scope",
            format!("this API token lacks the `{}` scope", need.name()),
        ));
    }
    Ok(token)
}

/// The bot a request's `bot` API token acts as, and that token (401 `invalid_token`, 429,
/// 403 `missing_scope`; each refusal logged): the bot API's calls and the bot socket are
/// let in alike.
pub async fn bot_token(
    state: &AppState,
    headers: &HeaderMap,
    asked: &Asked,
) -> Result<(String, crate::store::ApiToken), ApiError> {
    let Some(secret) = api_token(headers) else {
        let why = refused(state, Refused::Missing, None, None, asked);
        return Err(ApiError::refused(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            crate::api_tokens::message(why),
        ));
    };
    let token = token_with(state, &secret, Scope::Bot, asked).await?;
    match token.bot.clone() {
        Some(bot) => Ok((bot, token)),
        None => {
            let why = refused(state, Refused::NoBot, Some(&secret), Some(&token.id), asked);
            Err(ApiError::refused(
                StatusCode::FORBIDDEN,
                "missing_scope",
                crate::api_tokens::message(why),
            ))
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`; browsers get it as an HttpOnly cookie too.
    pub token: String,
    pub account: AccountView,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// Sign in as an agent or admin.
#[utoipa::path(post, path = "/api/login", tag = "session",
    request_body(content = LoginRequest, example = json!({"username": "ann", "password": "a-long-password"})),
    responses(
        (status = 200, description = "signed in; the token is also set as the `sb_session` cookie", body = LoginResponse),
        (status = 400, description = "`bad_credentials`: wrong username or password (the same for an unknown username); \
            `bad_json`: the body is not a login request", body = ErrorBody),
        (status = 403, description = "`not_whitelisted`: the caller's address is outside `AGENT_WHITELIST`; \
            `forbidden`: the account is disabled", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many failed sign-ins for this account or from this \
            address; try again after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until a sign-in is allowed again"))),
        (status = 503, description = "`unavailable`: too many sign-ins are waiting for their passwords to be checked, \
            or the store is unreachable; try again shortly", body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    https: OverHttps,
    jar: CookieJar,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    // Before anything is looked up or hashed: a throttled guess costs nothing and cannot succeed.
    let attempt = state.sign_in_throttle.attempt(ip.key(), &body.username)?;
    let refused = || ApiError::Invalid {
        code: "bad_credentials",
        message: "wrong username or password".into(),
    };
    let account = match state.store.account_by_username(body.username.trim()).await {
        Ok(account) => Some(account),
        // Checked against a dummy hash all the same: an unknown user costs what a wrong password does.
        Err(StoreError::NotFound) => None,
        Err(e) => {
            state.sign_in_throttle.unchecked(attempt);
            return Err(e.into());
        }
    };
    let hash = account.as_ref().map(|a| a.password_hash.clone());
    let matched = match verify_sign_in(body.password, hash, state.settings.password_hash_cost).await {
        Ok(matched) => matched,
        Err(busy) => {
            state.sign_in_throttle.unchecked(attempt);
            return Err(busy.into());
        }
    };
    let Some(account) = account.filter(|_| matched) else {
        // The attempt stays counted as a failure.
        return Err(refused());
    };
    state.sign_in_throttle.succeeded(attempt);
    if !account.enabled {
        return Err(ApiError::Forbidden("this account is disabled".into()));
    }
    let token = state.sessions.open(&account.id).await?;
    // The cookie lives as long as the session (a browser keeps it across restarts, no longer),
    // and is sent only over https when the request came that way or COOKIE_SECURE says so.
    let cookie = Cookie::build((SESSION_COOKIE, token.clone()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(state.settings.http.cookie_secure || https.0)
        .max_age(time::Duration::try_from(state.settings.session_ttl).unwrap_or(time::Duration::MAX))
        .build();
    let body = LoginResponse {
        token,
        account: AccountView::from(&account),
    };
    Ok((jar.add(cookie), Json(body)).into_response())
}

/// Sign out: the session ends. Without a session it does nothing and answers the same.
#[utoipa::path(post, path = "/api/logout", tag = "session",
    security((), ("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 204, description = "signed out; the `sb_session` cookie is cleared"),
        (status = 403, description = "`not_whitelisted`: the caller's address is outside `AGENT_WHITELIST`", body = ErrorBody),
        Unavailable))]
async fn logout(State(state): State<AppState>, headers: HeaderMap, jar: CookieJar) -> Result<Response, ApiError> {
    if let Some(token) = session_token(&headers)
        && let Some(id) = state.sessions.close(&token).await?
    {
        // Sockets opened with the session close too; a hub shutting down closes them anyway.
        let _ = state.hub.sessions_ended(vec![id.clone()], SessionEnd::Revoked).await;
        // And on the other nodes. Signing out is never refused: the session is gone from
        // the store, so no node lets it in again; only sockets open elsewhere stay open
        // until their bus reconnects, which is logged.
        if let Some(cluster) = &state.cluster
            && let Err(e) = cluster
                .publish(crate::cluster::bus::AdminChange::SessionsEnded { ids: vec![id] })
                .await
        {
            tracing::warn!(error = %e, "a sign-out could not be told to the other nodes");
        }
    }
    Ok((
        jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
        StatusCode::NO_CONTENT,
    )
        .into_response())
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/me", tag = "session",
    responses((status = 200, body = AccountView), SignedIn, Unavailable))]
async fn me(Authed(account): Authed) -> Json<AccountView> {
    Json(AccountView::from(&account))
}
