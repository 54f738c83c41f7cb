//! The hub before its store is open: the port is bound at once and answers probes.
//!
//! Opening the store may wait a long time (a MongoDB server that starts after the hub
//! is retried until it answers). Meanwhile an orchestrator must see a live process
//! that is not ready yet, rather than a port that accepts connections and never
//! answers: `/healthz` answers 200 `{"status":"starting"}` (alive, do not restart
//! it), `/readyz` and every other path 503 (send no traffic yet). Whitelisted callers
//! also see which store is awaited (`"store"`); outsiders see the status only, as on
//! the running hub. The real routes take over the same listening socket once the store
//! is open.
//!
//! The port is served by the hub's own listener (`http::listener`), so it has the same
//! request-head deadline, per-address cap, accept backoff and HTTP/1.1-only rule, and
//! every connection it accepted is closed at the handover: none lives on answering
//! "starting" beside the real routes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::http::access::client_ip;

/// How long the requests under way at the handover may take to finish before their
/// connections are closed: a probe is answered in microseconds, and an idle or
/// half-sent connection must not hold start-up.
pub const HANDOVER_GRACE: Duration = Duration::from_secs(2);

/// Serves the starting-up answers on `listener` until `until` is cancelled, then stops
/// accepting (the caller then serves the real routes on the same socket) and closes
/// every connection within [`HANDOVER_GRACE`].
pub async fn serve_until(
    listener: TcpListener,
    settings: Arc<Settings>,
    until: CancellationToken,
) -> std::io::Result<()> {
    let app = router(settings.clone());
    crate::http::listener::serve_then_close(listener, app, settings, until, HANDOVER_GRACE).await
}

fn router(settings: Arc<Settings>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"error": {"code": "starting", "message": "the hub is starting: its store is not open yet"}}),
                ),
            )
                .into_response()
        })
        .with_state(settings)
}

/// Alive, not ready: 200 "starting".
async fn healthz(
    State(settings): State<Arc<Settings>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Json<Value> {
    Json(status_view(&settings, peer, &headers))
}

/// Not ready: 503 "starting".
async fn readyz(
    State(settings): State<Arc<Settings>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(status_view(&settings, peer, &headers)),
    )
}

/// `{"status":"starting"}`, with the awaited store for whitelisted callers only.
fn status_view(settings: &Settings, peer: SocketAddr, headers: &HeaderMap) -> Value {
    if client_ip(settings, peer.ip(), headers).is_whitelisted(settings) {
        json!({"status": "starting", "store": crate::store::backend_name(settings)})
    } else {
        json!({"status": "starting"})
    }
}
