//! Prometheus metrics through the `metrics` facade: the hub and the archive
//! record, `/metrics` renders — for whitelisted addresses, or anyone with the
//! `METRICS_TOKEN` bearer (live figures per category are nobody else's business). One recorder per process (tests start several
//! hubs in one process; they share it).

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::http::access::ClientIp;
use crate::http::{ApiError, AppState};

pub const CONNECTIONS: &str = "switchboard_connections";
pub const CUSTOMERS_WAITING: &str = "switchboard_customers_waiting";
pub const CHATS_ACTIVE: &str = "switchboard_chats_active";
pub const ROUTES: &str = "switchboard_routes_total";
pub const MESSAGES_RELAYED: &str = "switchboard_messages_relayed_total";
pub const ARCHIVE_BACKLOG: &str = "switchboard_archive_backlog";
pub const ARCHIVE_WRITE_ERRORS: &str = "switchboard_archive_write_errors_total";
pub const ARCHIVE_EVENTS_WRITTEN: &str = "switchboard_archive_events_written_total";
pub const ARCHIVE_REFUSED: &str = "switchboard_archive_refused_total";

/// Installs the process-wide recorder once and returns its handle.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may exist (an embedding program's); ours still renders what it records.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

/// Is this caller allowed to read the metrics: a whitelisted address, or the `METRICS_TOKEN` bearer?
fn may_read(state: &AppState, ip: ClientIp, headers: &HeaderMap) -> bool {
    if ip.is_whitelisted(&state.settings) {
        return true;
    }
    let Some(expected) = &state.settings.metrics_token else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    // Compared in time that depends on the lengths only, so the token cannot be guessed byte by byte.
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

async fn render(State(state): State<AppState>, ip: ClientIp, headers: HeaderMap) -> Response {
    if !may_read(&state, ip, &headers) {
        tracing::info!(client = %ip, "refused /metrics: not in AGENT_WHITELIST and no METRICS_TOKEN");
        return ApiError::Forbidden("metrics are for whitelisted addresses or the METRICS_TOKEN bearer".into())
            .into_response();
    }
    let s = &state.archive.status;
    // The archive's figures are read at scrape time; the writer stays free of metric calls.
    metrics::gauge!(ARCHIVE_BACKLOG).set(s.backlog.load(Ordering::Relaxed) as f64);
    metrics::counter!(ARCHIVE_WRITE_ERRORS).absolute(s.write_errors.load(Ordering::Relaxed));
    metrics::counter!(ARCHIVE_EVENTS_WRITTEN).absolute(s.events_written.load(Ordering::Relaxed));
    metrics::counter!(ARCHIVE_REFUSED).absolute(s.refused.load(Ordering::Relaxed));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle().render()).into_response()
}
