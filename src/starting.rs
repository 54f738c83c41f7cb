//! The hub before its store is open: the port is bound at once and answers probes.
//!
//! Opening the store may wait a long time (a MongoDB server that starts after the hub
//! is retried until it answers). Meanwhile an orchestrator must see a live process
//! that is not ready yet, rather than a port that accepts connections and never
//! answers: `/healthz` answers 200 `{"status":"starting"}` (alive, do not restart
//! it), `/readyz` and every other path 503 (send no traffic yet). The real routes
//! take over the same listening socket once the store is open.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves the starting-up answers on `listener` until `until` is cancelled, then stops
/// accepting (the caller then serves the real routes on the same socket) and lets the
/// requests in progress finish.
pub async fn serve_until(listener: TcpListener, store: &'static str, until: CancellationToken) -> std::io::Result<()> {
    let app = router(store);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(until.cancelled_owned())
        .await
}

fn router(store: &'static str) -> Router {
    let body = move || json!({"status": "starting", "store": store});
    Router::new()
        .route("/healthz", get(move || async move { Json(body()) }))
        .route(
            "/readyz",
            get(move || async move { (StatusCode::SERVICE_UNAVAILABLE, Json(body())) }),
        )
        .fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"error": {"code": "starting", "message": "the hub is starting: its store is not open yet"}}),
                ),
            )
                .into_response()
        })
}
