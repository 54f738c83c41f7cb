//! Categories' bots through the admin API: which bot (by the name its `bot` API token
//! acts as) a category's customers talk to first. Stored in the shared store
//! (`category_bots`); the node that takes the change tells its hub at once, and the other
//! nodes over the admin bus.

use axum::Json;
use axum::extract::Path;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult};
use super::responses::{AdminsOnly, Unavailable};
use super::session::Admin;
use super::{AppState, ErrorBody};
use crate::category_bots;
use crate::cluster::bus::AdminChange;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show)).routes(routes!(set))
}

/// Every category and the bot its customers talk to first (none: straight to its line).
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryBots {
    /// Seconds a bot may leave a customer unanswered before it hands over by itself
    /// (`BOT_REPLY_TIMEOUT_SECS`).
    pub reply_timeout_secs: f64,
    pub categories: Vec<CategoryBot>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryBot {
    pub category: String,
    pub bot: Option<String>,
    /// Its bot answers the category's customers first now: its socket is connected on
    /// some node, or it is called by webhook. False with a bot named: the customers go
    /// straight to the line until it connects.
    pub online: bool,
}

/// A category's bot, or `null` for none.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"bot": "Faq"}))]
pub struct SetBot {
    pub bot: Option<String>,
}

/// The answer of every operation here: the settings as they are now.
async fn view(state: &AppState) -> JsonResult<CategoryBots> {
    let desk = state.hub.desk().await?;
    let online = super::public::bots_online(state, &desk).await;
    let categories = category_bots::all(&state.store)
        .await?
        .into_iter()
        .map(|(category, bot)| CategoryBot {
            online: bot.is_some() && online.contains(&category),
            category,
            bot,
        })
        .collect();
    Ok(Json(CategoryBots {
        reply_timeout_secs: state.settings.bot_reply_timeout.as_secs_f64(),
        categories,
    }))
}

/// Every category's bot.
#[utoipa::path(get, path = "/api/admin/category-bots", tag = "admin",
    responses((status = 200, body = CategoryBots), AdminsOnly, Unavailable))]
async fn show(Admin(state): Admin) -> JsonResult<CategoryBots> {
    view(&state).await
}

/// Names the bot a category's customers talk to first (`null`: none). The bot is the
/// name a `bot` API token acts as; while it is not connected, customers go to the line.
#[utoipa::path(put, path = "/api/admin/category-bots/{category}", tag = "admin",
    params(("category" = String, Path, description = "the category's id")),
    request_body = SetBot,
    responses((status = 200, body = CategoryBots),
        (status = 400, description = "`bad_json`; `invalid_bot` (a blank or bad name); `unknown_category`",
            body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn set(
    Admin(state): Admin,
    Path(category): Path<String>,
    ApiJson(SetBot { bot }): ApiJson<SetBot>,
) -> JsonResult<CategoryBots> {
    let bot = bot.as_deref().map(super::bot_hooks::valid_bot).transpose()?;
    super::admin::known_category(&state, &category).await?;
    category_bots::set(&state.store, &category, bot.as_deref()).await?;
    state.hub.set_category_bot(category, bot).await?;
    super::admin::tell_other_nodes(&state, AdminChange::Bots {}).await?;
    view(&state).await
}
