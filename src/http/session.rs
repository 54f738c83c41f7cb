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
use crate::auth::{SESSION_COOKIE, verify_sign_in};
use crate::hub::SessionEnd;
use crate::store::{Account, Role, StoreError};

/// The session token of a request: a bearer token, else the session cookie.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_string());
    }
    CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_string())
}

/// A signed-in, enabled account.
pub struct Authed(pub Account);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
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

/// A signed-in admin.
pub struct AdminOnly(pub Account);

impl FromRequestParts<AppState> for AdminOnly {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Authed(account) = Authed::from_request_parts(parts, state).await?;
        if account.role != Role::Admin {
            return Err(ApiError::Forbidden("only admins may do this".into()));
        }
        Ok(AdminOnly(account))
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
    let matched = match verify_sign_in(body.password, hash).await {
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
        .secure(state.settings.cookie_secure || https.0)
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
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, body = AccountView), SignedIn, Unavailable))]
async fn me(Authed(account): Authed) -> Json<AccountView> {
    Json(AccountView::from(&account))
}
