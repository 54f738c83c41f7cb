//! A request whose `Content-Length` says its body is over the route's limit is refused
//! 413 at once, before a byte of the body is read.
//!
//! The JSON extractors apply their limit ([`MAX_JSON_BODY`]) only to what has arrived, so
//! a client that declared a huge body and sent none held its request until
//! `HTTP_REQUEST_TIMEOUT_SECS` ended it with a bodiless 408. The file upload, whose limit
//! is `ATTACHMENT_MAX_BYTES`, checks its own declared length the same way
//! ([`declared_over`]).

use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, MAX_JSON_BODY};

/// Whether `headers` declare a body longer than `limit` bytes. A length that is not a
/// number is hyper's to refuse; a body sent without one (chunked) is cut off by the
/// extractor as it passes the limit.
pub fn declared_over(headers: &HeaderMap, limit: u64) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|length| length > limit)
}

/// Middleware for the JSON routes: a declared body over [`MAX_JSON_BODY`] is 413
/// `body_too_large` (as one that arrives over it is), without waiting for the body.
pub async fn refuse_declared_over_json_limit(request: Request, next: Next) -> Response {
    if declared_over(request.headers(), MAX_JSON_BODY as u64) {
        return ApiError::json_body_too_large().into_response();
    }
    next.run(request).await
}
