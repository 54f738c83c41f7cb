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

use super::responses::Unavailable;
use super::{ApiError, AppState, CategoryView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(categories))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The service categories customers can queue for.
#[utoipa::path(get, path = "/api/categories", tag = "public", responses((status = 200, body = [CategoryView]), Unavailable))]
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

/// The process is alive; `status` says whether the archive is degraded.
#[utoipa::path(get, path = "/healthz", tag = "public", responses((status = 200, body = Health)))]
async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(health(&state))
}

/// Ready to serve: the store answers and the archive is not behind.
#[utoipa::path(get, path = "/readyz", tag = "public", responses(
    (status = 200, description = "ready", body = Health),
    (status = 503, description = "not ready: the store does not answer, or the archive is degraded or overflowing", body = Health)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let h = health(&state);
    let store_ok = state.store.ping().await.is_ok();
    let ready = store_ok && !h.archive_degraded && !h.archive_overflowing;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(h)).into_response()
}
