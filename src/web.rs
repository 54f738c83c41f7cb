//! The pages under `web/`, compiled into the binary so `make run` needs no
//! other server (in debug builds they are read from disk, so edits show on reload),
//! and the browser hardening headers every response carries.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::Embed;

use crate::http::AppState;

#[derive(Embed)]
#[folder = "web/"]
struct Pages;

/// What the pages may load: their own scripts, styles, images and sockets, nothing
/// inline (so injected markup cannot run), and no page may frame them.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The browser hardening headers, on pages and API alike (a JSON answer opened as a
/// page is a page too). Handlers that set one of these keep theirs; the pages set
/// their own `Cache-Control`, and everything else is `no-store` (tokens, accounts and
/// transcripts must not stay in a cache).
pub fn harden(router: Router) -> Router {
    use axum::http::HeaderValue;
    use tower_http::set_header::SetResponseHeaderLayer as Set;
    router
        .layer(Set::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        // For browsers that predate frame-ancestors.
        .layer(Set::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(Set::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // Chat URLs carry nothing secret, but nothing here needs to tell another site where a user came from.
        .layer(Set::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(Set::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { page("index.html") }))
        .route("/{*path}", get(|Path(p): Path<String>| async move { page(&p) }))
}

fn page(path: &str) -> Response {
    if path.starts_with("api/") {
        // The API's unknown paths answer like the API does: JSON with a code.
        return crate::http::ApiError::NotFound("API route").into_response();
    }
    match Pages::get(path) {
        Some(file) => {
            let mime = file.metadata.mimetype().to_string();
            (
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CACHE_CONTROL, "no-cache".to_string()),
                ],
                file.data,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
