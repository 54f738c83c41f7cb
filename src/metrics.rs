//! Prometheus metrics through the `metrics` facade: the names the hub and the archive
//! record under, and the one recorder per process (tests start several hubs in one
//! process; they share it). Rendering them at `/metrics` is `http::metrics`'s job, so
//! this module, which the hub uses, imports nothing of the HTTP layer.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const CONNECTIONS: &str = "switchboard_connections";
pub const CUSTOMERS_WAITING: &str = "switchboard_customers_waiting";
pub const CHATS_ACTIVE: &str = "switchboard_chats_active";
pub const ROUTES: &str = "switchboard_routes_total";
pub const MESSAGES_RELAYED: &str = "switchboard_messages_relayed_total";
pub const ARCHIVE_BACKLOG: &str = "switchboard_archive_backlog";
pub const ARCHIVE_WRITE_ERRORS: &str = "switchboard_archive_write_errors_total";
pub const ARCHIVE_EVENTS_WRITTEN: &str = "switchboard_archive_events_written_total";
pub const ARCHIVE_REFUSED: &str = "switchboard_archive_refused_total";
/// Webhook events journaled on this node, not yet handed on as deliveries.
pub const WEBHOOK_JOURNAL_BACKLOG: &str = "switchboard_webhook_journal_backlog";
/// Webhook journal records that could not be decoded, set aside in its file for an operator.
pub const WEBHOOK_JOURNAL_SET_ASIDE: &str = "switchboard_webhook_journal_set_aside";
/// Appends to the webhook journal that failed (each tried again until written).
pub const WEBHOOK_JOURNAL_WRITE_FAILURES: &str = "switchboard_webhook_journal_write_failures_total";
/// Connections closed before their first request because descriptors ran short.
pub const CONNECTIONS_SHED: &str = "switchboard_connections_shed_total";

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
