//! The categories' chat opening hours through the admin API: read them, give a category
//! hours of its own, or make it always open again. Stored in the shared store
//! (`desk_hours`); the node that takes the change applies it at once, the others at their
//! keeper's next tick (`desk_hours::TICK`).

use axum::Json;
use axum::extract::Path;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult};
use super::responses::{AdminsOnly, Unavailable};
use super::session::Admin;
use super::{ApiError, AppState, ErrorBody};
use crate::desk_hours::{self, CategoryHoursDoc, HoursDoc};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(replace, reset))
}

/// Every category with hours of its own, and the zone they are read in.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatHoursView {
    /// The desk's IANA time zone (`APPOINTMENT_TIME_ZONE`).
    pub time_zone: String,
    /// Categories not listed are always open.
    pub categories: Vec<CategoryHoursDoc>,
    /// Which categories are open now (every known one).
    pub open_now: Vec<OpenNow>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenNow {
    pub category: String,
    pub open: bool,
}

/// The answer of every operation here: the settings as they are now.
async fn view(state: &AppState) -> JsonResult<ChatHoursView> {
    let doc = desk_hours::load(&state.store).await?;
    let open_now = desk_hours::wanted_now(&state.store, &state.settings)
        .await?
        .categories
        .into_iter()
        .map(|(category, open)| OpenNow { category, open })
        .collect();
    Ok(Json(ChatHoursView {
        time_zone: state
            .settings
            .appointments
            .zone
            .iana_name()
            .unwrap_or("UTC")
            .to_string(),
        categories: doc.categories,
        open_now,
    }))
}

/// Applies the hours on this node now (the other nodes follow at their next tick).
async fn apply_now(state: &AppState) -> Result<(), ApiError> {
    let wanted = desk_hours::wanted_now(&state.store, &state.settings).await?;
    Ok(state.hub.open_categories(wanted.categories, wanted.read_at).await?)
}

/// The categories' chat opening hours.
#[utoipa::path(get, path = "/api/admin/chat-hours", tag = "admin",
    responses((status = 200, body = ChatHoursView), AdminsOnly, Unavailable))]
async fn show(Admin(state): Admin) -> JsonResult<ChatHoursView> {
    view(&state).await
}

/// Gives a category hours of its own (replacing any it had). Outside them the category
/// takes no new customer (they are offered the offline path); those already waiting keep
/// their place and are told.
#[utoipa::path(put, path = "/api/admin/chat-hours/{category}", tag = "admin",
    params(("category" = String, Path, description = "the category's id")),
    request_body = CategoryHoursDoc,
    responses((status = 200, body = ChatHoursView),
        (status = 400, description = "`bad_json`; `invalid_hours` (not HH:MM, a span closing before it opens, \
            overlapping spans, an unknown day, a bad date, the body naming another category); `unknown_category`",
            body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn replace(
    Admin(state): Admin,
    Path(category): Path<String>,
    ApiJson(doc): ApiJson<CategoryHoursDoc>,
) -> JsonResult<ChatHoursView> {
    if doc.category != category {
        return Err(ApiError::invalid(
            "invalid_hours",
            format!("the body names category {:?}, the path {category:?}", doc.category),
        ));
    }
    super::admin::known_category(&state, &category).await?;
    let doc = doc
        .canonical()
        .map_err(|e| ApiError::invalid("invalid_hours", format!("category {category:?}: {e}")))?;
    let mut all = desk_hours::load(&state.store).await?;
    all.categories.retain(|c| c.category != category);
    all.categories.push(doc);
    all.categories.sort_by(|a, b| a.category.cmp(&b.category));
    desk_hours::save(&state.store, &all).await?;
    apply_now(&state).await?;
    view(&state).await
}

/// Makes a category always open again.
#[utoipa::path(delete, path = "/api/admin/chat-hours/{category}", tag = "admin",
    params(("category" = String, Path, description = "the category's id")),
    responses((status = 200, body = ChatHoursView), AdminsOnly, Unavailable))]
async fn reset(Admin(state): Admin, Path(category): Path<String>) -> JsonResult<ChatHoursView> {
    let mut all: HoursDoc = desk_hours::load(&state.store).await?;
    all.categories.retain(|c| c.category != category);
    desk_hours::save(&state.store, &all).await?;
    apply_now(&state).await?;
    view(&state).await
}
