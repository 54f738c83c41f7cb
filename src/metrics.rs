//! Prometheus metrics through the `metrics` facade: the hub and the archive
//! record, `/metrics` renders. One recorder per process (tests start several
//! hubs in one process; they share it).

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::http::AppState;

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

async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let s = &state.archive.status;
    // The archive's figures are read at scrape time; the writer stays free of metric calls.
    metrics::gauge!(ARCHIVE_BACKLOG).set(s.backlog.load(Ordering::Relaxed) as f64);
    metrics::counter!(ARCHIVE_WRITE_ERRORS).absolute(s.write_errors.load(Ordering::Relaxed));
    metrics::counter!(ARCHIVE_EVENTS_WRITTEN).absolute(s.events_written.load(Ordering::Relaxed));
    metrics::counter!(ARCHIVE_REFUSED).absolute(s.refused.load(Ordering::Relaxed));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle().render())
}
