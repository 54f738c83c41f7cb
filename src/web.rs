//! The pages under `web/`, compiled into the binary so `make run` needs no
//! other server (in debug builds they are read from disk, so edits show on reload).

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
