//! The chat widget's look as an admin edits it on the admin page: the desk's name, colour
//! and greeting. Stored as a desk setting in the shared store (so every node serves the
//! same); without one, the `WIDGET_*` settings apply. The same rules as the settings'.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult};
use super::responses::{AdminsOnly, Unavailable};
use super::session::Admin;
use super::{ApiError, AppState, ErrorBody};
use crate::config::widget::{valid_color, valid_greeting, valid_title};
use crate::store::StoreResult;

/// The store key of the admin's widget look.
const KEY: &str = crate::desk_name::WIDGET_LOOK_KEY;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, replace, reset))
}

/// The widget's look.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Acme help", "color": "#0f766e", "greeting": "Hello! How can we help?",
    "categories": ["sales"]}))]
pub struct WidgetLook {
    /// 1 to 60 characters, one line.
    pub title: String,
    /// `#rgb` or `#rrggbb`.
    pub color: String,
    /// 1 to 300 characters, one line.
    pub greeting: String,
    /// The topics (category ids) the widget offers, in this order; empty: every category.
    #[serde(default)]
    pub categories: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetLookView {
    pub title: String,
    pub color: String,
    pub greeting: String,
    /// The topics the widget offers, in order; empty: every category.
    pub categories: Vec<String>,
    /// `settings` (the `WIDGET_*` settings) or `admin` (set on the admin page).
    pub source: &'static str,
    /// The hub's public address (`PUBLIC_URL`, no trailing slash) for the snippet a site
    /// pastes; null when unset (the page then shows the address it was opened at).
    pub public_url: Option<String>,
}

/// The look in force: the admin's, else the settings'.
pub async fn look(state: &AppState) -> StoreResult<(WidgetLook, &'static str)> {
    let w = &state.settings.widget;
    let settings = WidgetLook {
        title: w.title.clone(),
        color: w.color.clone(),
        greeting: w.greeting.clone(),
        categories: Vec::new(),
    };
    let Some(raw) = state.store.desk_setting(KEY).await? else {
        return Ok((settings, "settings"));
    };
    match serde_json::from_str::<WidgetLook>(&raw) {
        Ok(stored) => Ok((stored, "admin")),
        Err(e) => {
            tracing::error!(error = %e, "the stored widget look is unreadable; using the WIDGET_* settings");
            Ok((settings, "settings"))
        }
    }
}

/// The answer of every operation here: the settings as they are now.
async fn view(state: &AppState) -> JsonResult<WidgetLookView> {
    let (look, source) = look(state).await?;
    Ok(Json(WidgetLookView {
        title: look.title,
        color: look.color,
        greeting: look.greeting,
        categories: look.categories,
        source,
        public_url: state.settings.public_url.clone(),
    }))
}

/// The widget's look in force.
#[utoipa::path(get, path = "/api/admin/widget", tag = "admin",
    responses((status = 200, body = WidgetLookView), AdminsOnly, Unavailable))]
async fn show(Admin(state): Admin) -> JsonResult<WidgetLookView> {
    view(&state).await
}

/// Sets the widget's look for every node (pages already open keep theirs until reloaded).
#[utoipa::path(put, path = "/api/admin/widget", tag = "admin",
    request_body = WidgetLook,
    responses((status = 200, body = WidgetLookView),
        (status = 400, description = "`bad_json`; `invalid_widget` (which field breaks which rule); `unknown_category`", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn replace(Admin(state): Admin, ApiJson(raw): ApiJson<WidgetLook>) -> JsonResult<WidgetLookView> {
    let bad = |field: &str, why: String| ApiError::invalid("invalid_widget", format!("{field} {why}"));
    let known = state.store.categories().await?;
    let mut categories: Vec<String> = Vec::new();
    for id in raw.categories {
        if !known.iter().any(|c| c.id == id) {
            return Err(ApiError::invalid("unknown_category", format!("no category {id:?}")));
        }
        if !categories.contains(&id) {
            categories.push(id);
        }
    }
    let look = WidgetLook {
        title: valid_title(&raw.title).map_err(|why| bad("title", why))?,
        color: valid_color(&raw.color).map_err(|why| bad("color", why))?,
        greeting: valid_greeting(&raw.greeting).map_err(|why| bad("greeting", why))?,
        categories,
    };
    let stored = serde_json::to_string(&look).expect("a look serialises");
    state.store.set_desk_setting(KEY, Some(stored)).await?;
    view(&state).await
}

/// Back to the `WIDGET_*` settings.
#[utoipa::path(delete, path = "/api/admin/widget", tag = "admin",
    responses((status = 200, body = WidgetLookView), AdminsOnly, Unavailable))]
async fn reset(Admin(state): Admin) -> JsonResult<WidgetLookView> {
    state.store.set_desk_setting(KEY, None).await?;
    view(&state).await
}
