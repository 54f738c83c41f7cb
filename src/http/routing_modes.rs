//! The categories' routing modes through the admin API: `assign` (the chosen agent gets
//! the chat at once) or `offer` (the agent is offered the customer and accepts or
//! declines within `OFFER_TIMEOUT_SECS`). Stored in the shared store (a setting per category);
//! the node that takes the change applies it at once, the others at their keeper's next
//! tick (`desk_hours::TICK`).

use axum::Json;
use axum::extract::Path;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult};
use super::responses::{AdminsOnly, Unavailable};
use super::session::Admin;
use super::{ApiError, AppState, ErrorBody};
use crate::core::routing::RoutingMode;
use crate::routing_modes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show)).routes(routes!(set))
}

/// Every category's routing mode, and how long an offer waits for its answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoutingView {
    /// Seconds an agent has to answer an offer (`OFFER_TIMEOUT_SECS`).
    pub offer_timeout_secs: f64,
    pub categories: Vec<CategoryMode>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryMode {
    pub category: String,
    /// `assign` or `offer`.
    pub mode: &'static str,
}

/// A category's new routing mode.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"mode": "offer"}))]
pub struct SetMode {
    /// `assign` or `offer`.
    pub mode: String,
}

/// The answer of every operation here: the settings as they are now.
async fn view(state: &AppState) -> JsonResult<RoutingView> {
    let categories = routing_modes::wanted_now(&state.store)
        .await?
        .into_iter()
        .map(|(category, stored)| CategoryMode {
            category,
            mode: stored.mode.word(),
        })
        .collect();
    Ok(Json(RoutingView {
        offer_timeout_secs: state.settings.offer_timeout.as_secs_f64(),
        categories,
    }))
}

/// Every category's routing mode.
#[utoipa::path(get, path = "/api/admin/routing", tag = "admin",
    responses((status = 200, body = RoutingView), AdminsOnly, Unavailable))]
async fn show(Admin(state): Admin) -> JsonResult<RoutingView> {
    view(&state).await
}

/// Sets a category's routing mode. Back to `assign`, the offers standing in it are
/// withdrawn and their customers assigned at once.
#[utoipa::path(put, path = "/api/admin/routing/{category}", tag = "admin",
    params(("category" = String, Path, description = "the category's id")),
    request_body = SetMode,
    responses((status = 200, body = RoutingView),
        (status = 400, description = "`bad_json`; `invalid_mode` (not `assign` or `offer`); `unknown_category`",
            body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn set(
    Admin(state): Admin,
    Path(category): Path<String>,
    ApiJson(SetMode { mode }): ApiJson<SetMode>,
) -> JsonResult<RoutingView> {
    let mode = RoutingMode::from_word(&mode)
        .ok_or_else(|| ApiError::invalid("invalid_mode", format!("mode must be assign or offer, not {mode:?}")))?;
    super::admin::known_category(&state, &category).await?;
    let stored = routing_modes::set(&state.store, &category, mode).await?;
    state.hub.set_category_modes(vec![(category, stored)]).await?;
    view(&state).await
}
