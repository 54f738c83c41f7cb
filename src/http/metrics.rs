//! `/metrics`: the Prometheus text exposition of what `crate::metrics` records — for
//! whitelisted addresses, or anyone with the `METRICS_TOKEN` bearer (live figures per
//! category are nobody else's business). Outsiders are answered 401 with a `Bearer`
//! challenge when a token is set (403 when none is), and logged at DEBUG only, since
//! they choose how often they ask.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, OpenApiBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::access::ClientIp;
use crate::http::error::ErrorDetail;
use crate::http::{ApiError, AppState, ErrorBody};
use crate::metrics::{ARCHIVE_BACKLOG, ARCHIVE_EVENTS_WRITTEN, ARCHIVE_REFUSED, ARCHIVE_WRITE_ERRORS, handle};

/// The name of the `METRICS_TOKEN` bearer scheme in the OpenAPI document.
const TOKEN_SCHEME: &str = "metrics_token";

/// `/metrics`, documented: `server.rs` hands it to the API's router, whose OpenAPI
/// document it joins (the scheme and the tag come along).
pub fn router() -> OpenApiRouter<AppState> {
    let scheme = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "`Authorization: Bearer <METRICS_TOKEN>`: lets a scraper outside `AGENT_WHITELIST` read `/metrics`",
            ))
            .build(),
    );
    let doc = OpenApiBuilder::new()
        .components(Some(
            ComponentsBuilder::new().security_scheme(TOKEN_SCHEME, scheme).build(),
        ))
        .tags(Some([TagBuilder::new()
            .name("operations")
            .description(Some(
                "For operators' tools: whitelisted addresses, or the METRICS_TOKEN bearer",
            ))
            .build()]))
        .build();
    OpenApiRouter::with_openapi(doc).routes(routes!(render))
}

/// Whether a caller may read the metrics, and if not, whether a token could change that.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    Granted,
    /// Outside the whitelist with no or a wrong bearer, while `METRICS_TOKEN` is set.
    TokenNeeded,
    /// Outside the whitelist and no `METRICS_TOKEN` is set: no credential helps.
    Refused,
}

/// A whitelisted address, or the `METRICS_TOKEN` bearer, may read the metrics.
fn access(state: &AppState, ip: ClientIp, headers: &HeaderMap) -> Access {
    if ip.is_whitelisted(&state.settings) {
        return Access::Granted;
    }
    let Some(expected) = &state.settings.http.metrics_token else {
        return Access::Refused;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    // Compared in time that depends on the lengths only, so the token cannot be guessed byte by byte.
    let matches = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0;
    if matches { Access::Granted } else { Access::TokenNeeded }
}

/// The Prometheus text exposition of the hub's figures: for whitelisted addresses, or
/// anyone with the `METRICS_TOKEN` bearer.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, content_type = "text/plain", body = String,
            description = "the Prometheus text format (version 0.0.4)"),
        (status = 401, body = crate::http::ErrorBody,
            description = "outside `AGENT_WHITELIST` without the right `METRICS_TOKEN` bearer, when one is set",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"metrics\"`"))),
        (status = 403, body = crate::http::ErrorBody,
            description = "outside `AGENT_WHITELIST` and no `METRICS_TOKEN` is set"),
    ))]
pub(crate) async fn render(State(state): State<AppState>, ip: ClientIp, headers: HeaderMap) -> Response {
    // Refusals are logged at DEBUG: at INFO an outsider could write a log line per request.
    match access(&state, ip, &headers) {
        Access::Granted => {}
        Access::TokenNeeded => {
            tracing::debug!(client = %ip, "refused /metrics: outside AGENT_WHITELIST, no or a wrong METRICS_TOKEN");
            let body = ErrorBody {
                error: ErrorDetail {
                    code: "unauthorized".into(),
                    message: "outside AGENT_WHITELIST, metrics need the METRICS_TOKEN bearer".into(),
                },
            };
            // The challenge tells a scraper that a bearer token is the way in (RFC 6750).
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"metrics\""),
                )],
                Json(body),
            )
                .into_response();
        }
        Access::Refused => {
            tracing::debug!(client = %ip, "refused /metrics: outside AGENT_WHITELIST and no METRICS_TOKEN is set");
            return ApiError::Forbidden("metrics are for whitelisted addresses (no METRICS_TOKEN is set)".into())
                .into_response();
        }
    }
    let s = &state.archive.status;
    // The archive's figures are read at scrape time; the writer stays free of metric calls.
    metrics::gauge!(ARCHIVE_BACKLOG).set(s.backlog.load(Ordering::Relaxed) as f64);
    metrics::counter!(ARCHIVE_WRITE_ERRORS).absolute(s.write_errors.load(Ordering::Relaxed));
    metrics::counter!(ARCHIVE_EVENTS_WRITTEN).absolute(s.events_written.load(Ordering::Relaxed));
    metrics::counter!(ARCHIVE_REFUSED).absolute(s.refused.load(Ordering::Relaxed));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle().render()).into_response()
}
