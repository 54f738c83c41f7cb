//! The desk's address as people reach it, for the links the API hands out and mails
//! (a room's invitation, an appointment's pages): `PUBLIC_URL` when set, else the
//! request's own `Host` (over plain http: behind a proxy, set `PUBLIC_URL`).

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::AppState;

/// The base of absolute links, without a trailing slash: `https://desk.example.org`.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.settings.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// [`base_url`] of the request, for a handler that builds links.
pub struct PublicUrl(pub String);

impl FromRequestParts<AppState> for PublicUrl {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(PublicUrl(base_url(state, &parts.headers)))
    }
}
