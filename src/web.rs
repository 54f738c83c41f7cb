//! The pages under `web/`, compiled into the binary so `make run` needs no
//! other server (in debug builds they are read from disk, so edits show on reload),
//! and the browser hardening headers every response carries.

use axum::Router;
use axum::extract::{Path, State};
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
        // For browsers that predate frame-ancestors; not on a page that other sites may
        // frame (the widget page), whose frame-ancestors lists them.
        .layer(Set::if_not_present(header::X_FRAME_OPTIONS, |response: &Response| {
            let frameable = response
                .headers()
                .get(header::CONTENT_SECURITY_POLICY)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|csp| !csp.contains("frame-ancestors 'none'"));
            (!frameable).then(|| HeaderValue::from_static("DENY"))
        }))
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
        .route("/widget.html", get(widget_page))
        // The rating link of a transcript mail (`/rate?token=…`).
        .route("/rate", get(|| async { page("rate.html") }))
        .route("/{*path}", get(|Path(p): Path<String>| async move { page(&p) }))
}

/// The chat widget's page, the one page other sites may frame: those of
/// `WIDGET_ALLOWED_ORIGINS` (and the hub's own).
async fn widget_page(State(state): State<AppState>) -> Response {
    let mut response = page("widget.html");
    let csp = CONTENT_SECURITY_POLICY.replace(
        "frame-ancestors 'none'",
        &format!("frame-ancestors {}", state.settings.widget.frame_ancestors()),
    );
    if let Ok(value) = header::HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
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
