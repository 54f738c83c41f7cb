//! Routes anyone may call: the category list for the customer's welcome page
//! and the health endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::access::ClientIp;
use super::{ApiError, AppState, CategoryView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(categories))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The service categories customers can queue for.
#[utoipa::path(get, path = "/api/categories", tag = "public", responses((status = 200, body = [CategoryView])))]
async fn categories(State(state): State<AppState>) -> Result<Json<Vec<CategoryView>>, ApiError> {
    Ok(Json(
        state.store.categories().await?.iter().map(CategoryView::from).collect(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the archive store is failing or its buffer overflowed.
    pub status: &'static str,
    pub store: &'static str,
    /// Archive events accepted but not yet written.
    pub archive_backlog: usize,
    pub archive_degraded: bool,
    /// The archive buffer filled and chat messages are being refused.
    pub archive_overflowing: bool,
    pub archive_write_errors: u64,
}

fn health(state: &AppState) -> Health {
    let s = &state.archive.status;
    let degraded = s.degraded.load(Ordering::Relaxed);
    let overflowing = s.overflowing.load(Ordering::Relaxed);
    Health {
        status: if degraded || overflowing { "degraded" } else { "ok" },
        store: state.store.backend(),
        archive_backlog: s.backlog.load(Ordering::Relaxed),
        archive_degraded: degraded,
        archive_overflowing: overflowing,
        archive_write_errors: s.write_errors.load(Ordering::Relaxed),
    }
}

/// What a caller is shown: whitelisted addresses the details, everyone else `status` only.
fn shown_to(state: &AppState, ip: ClientIp, health: Health) -> Json<serde_json::Value> {
    if ip.is_whitelisted(&state.settings) {
        Json(serde_json::to_value(health).expect("health serialises"))
    } else {
        Json(serde_json::json!({ "status": health.status }))
    }
}

/// The process is alive; `status` says whether the archive is degraded. Callers outside
/// `AGENT_WHITELIST` get `status` only.
#[utoipa::path(get, path = "/healthz", tag = "public", responses((status = 200, body = Health,
    description = "the details for whitelisted addresses; `{\"status\"}` only for others")))]
async fn healthz(State(state): State<AppState>, ip: ClientIp) -> Json<serde_json::Value> {
    shown_to(&state, ip, health(&state))
}

/// Ready to serve: the store answers and the archive is not behind.
#[utoipa::path(get, path = "/readyz", tag = "public", responses(
    (status = 200, body = Health, description = "ready; the details for whitelisted addresses, `status` only for others"),
    (status = 503, body = Health, description = "not ready; the details for whitelisted addresses, `status` only for others")))]
async fn readyz(State(state): State<AppState>, ip: ClientIp) -> Response {
    let h = health(&state);
    let store_ok = state.store.ping().await.is_ok();
    let ready = store_ok && !h.archive_degraded && !h.archive_overflowing;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, shown_to(&state, ip, h)).into_response()
}
