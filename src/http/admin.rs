//! The admin API: agents (create, list, update, disable), categories (add,
//! rename, remove) and live figures. Every change reaches the hub at once, so
//! routing follows it without a reconnect.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult, StatusJson, StoreAnswer};
use super::responses::{AdminsOnly, NoAccount, NoCategory, Unavailable};
use super::session::{Admin, AdminCaller};
use super::{AccountView, ApiError, AppState, CategoryView, ErrorBody};
use crate::auth::hash_password;
use crate::cluster::bus::AdminChange;
use crate::core::names::{checked_name, is_slug, slug};
use crate::core::routing::LIMIT_RANGE;
use crate::hub::{Figures, SessionEnd};
use crate::store::{Account, Category, Role};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, update_agent))
        .routes(routes!(create_category))
        .routes(routes!(rename_category, delete_category))
        .routes(routes!(figures))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    /// 3 to 64 characters: lowercase letters, digits, `.`, `_`, `-`.
    pub username: String,
    /// 1 to 100 characters, something visible, no control or text-direction characters
    /// (else `invalid_name`); shown to customers.
    pub display_name: String,
    /// At least 8 characters.
    pub password: String,
    /// Category ids this agent serves.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Concurrent chats, 1 to 4 (default 1).
    #[serde(default = "one")]
    pub max_chats: u8,
    /// `agent` (default) or `admin`.
    #[serde(default = "agent_role")]
    pub role: Role,
}

fn one() -> u8 {
    1
}

fn agent_role() -> Role {
    Role::Agent
}

/// Fields to change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    pub display_name: Option<String>,
    pub password: Option<String>,
    pub categories: Option<Vec<String>>,
    pub max_chats: Option<u8>,
    /// `false` disables the account: its sessions end and its chats go back to the queue.
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCategory {
    /// Optional stable id (lowercase letters, digits, `-`); derived from the name when absent.
    pub id: Option<String>,
    /// 1 to 60 characters, something visible, no control or text-direction characters (else `invalid_name`).
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryRename {
    pub name: String,
}

fn valid_username(raw: &str) -> Result<String, ApiError> {
    let u = raw.trim().to_string();
    let ok = (3..=64).contains(&u.len())
        && u.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    ok.then_some(u).ok_or_else(|| {
        ApiError::invalid(
            "invalid_username",
            "a username has 3 to 64 lowercase letters, digits, '.', '_' or '-'",
        )
    })
}

/// The id asked for (trimmed), else one made from `name` ([`slug`]): a category's, a
/// label's; 400 `invalid_id` saying `rule` unless it is a slug.
pub(super) fn slug_id(asked: Option<String>, name: &str, rule: &'static str) -> Result<String, ApiError> {
    let id = asked.map(|id| id.trim().to_string()).unwrap_or_else(|| slug(name));
    if !is_slug(&id) {
        return Err(ApiError::invalid("invalid_id", rule));
    }
    Ok(id)
}

/// Display names and category names follow the one rule for names people see ([`checked_name`]).
fn valid_name(raw: &str, max_chars: usize) -> Result<String, ApiError> {
    Ok(checked_name(raw, max_chars)?)
}

fn valid_display_name(raw: &str) -> Result<String, ApiError> {
    valid_name(raw, 100)
}

fn valid_password(p: &str) -> Result<(), ApiError> {
    if p.chars().count() >= 8 {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "weak_password",
            "a password has at least 8 characters",
        ))
    }
}

fn valid_limit(n: u8) -> Result<u8, ApiError> {
    if LIMIT_RANGE.contains(&n) {
        Ok(n)
    } else {
        Err(ApiError::invalid(
            "invalid_limit",
            format!("max_chats must be from 1 to 4, not {n}"),
        ))
    }
}

/// `Ok` when `id` names a category of the desk, else 400 `unknown_category`.
pub(super) async fn known_category(state: &AppState, id: &str) -> Result<(), ApiError> {
    if !state.store.categories().await?.iter().any(|c| c.id == id) {
        return Err(unknown_category(id));
    }
    Ok(())
}

/// 400 `unknown_category`: `id` names no category of the desk.
pub(super) fn unknown_category(id: &str) -> ApiError {
    ApiError::invalid("unknown_category", format!("no category {id:?}"))
}

/// `ids` without repeats, when each names a category of the desk; else 400 `unknown_category`.
pub(super) async fn valid_categories(state: &AppState, ids: Vec<String>) -> Result<Vec<String>, ApiError> {
    let known = state.store.categories().await?;
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !known.iter().any(|c| c.id == id) {
            return Err(unknown_category(&id));
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// All agent and admin accounts.
#[utoipa::path(get, path = "/api/admin/agents", tag = "admin",
    responses((status = 200, body = [AccountView]), AdminsOnly, Unavailable))]
async fn list_agents(Admin(state): Admin) -> JsonResult<Vec<AccountView>> {
    Ok(Json(
        state.store.accounts().await?.iter().map(AccountView::from).collect(),
    ))
}

/// Create an agent (or another admin). An admin (`role: admin`) only by an admin signed in
/// with the session cookie, never an API token: a leaked token must not make itself an
/// admin who can sign in (403 `session_required` for any bearer token).
#[utoipa::path(post, path = "/api/admin/agents", tag = "admin",
    request_body(content = NewAgent, example = json!({"username": "ann", "display_name": "Ann", "password": "a-long-password",
        "categories": ["general"], "max_chats": 2})),
    responses((status = 201, body = AccountView),
        (status = 400, description = "`bad_json`, `invalid_username`, `invalid_name`, `weak_password`, `invalid_limit`, \
            `unknown_category`: which rule the body breaks", body = ErrorBody),
        (status = 409, description = "`conflict`: the username is taken", body = ErrorBody),
        AdminsOnly,
        (status = 503, description = "`unavailable`: too many passwords are being hashed at once, the store is \
            unreachable or the hub is stopping; try again shortly", body = ErrorBody)))]
async fn create_agent(
    caller: AdminCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewAgent>,
) -> StatusJson<AccountView> {
    if body.role == Role::Admin {
        caller.cookie_session()?;
    }
    let username = valid_username(&body.username)?;
    let display_name = valid_display_name(&body.display_name)?;
    valid_password(&body.password)?;
    let max_chats = valid_limit(body.max_chats)?;
    let categories = valid_categories(&state, body.categories).await?;
    let account = Account {
        id: uuid::Uuid::new_v4().to_string(),
        username,
        display_name,
        role: body.role,
        password_hash: hash_password(body.password, state.settings.password_hash_cost).await?,
        categories,
        max_chats,
        enabled: true,
        created_at: crate::clock::now_ms(),
    };
    let taken = ApiError::Conflict(format!("the username {:?} is taken", account.username));
    state.store.create_account(account.clone()).await.taken_as(taken)?;
    Ok((StatusCode::CREATED, Json(AccountView::from(&account))))
}

/// One account.
#[utoipa::path(get, path = "/api/admin/agents/{id}", tag = "admin", params(("id" = String, Path, description = "the account id")),
    responses((status = 200, body = AccountView), NoAccount, AdminsOnly, Unavailable))]
async fn get_agent(Admin(state): Admin, Path(id): Path<String>) -> JsonResult<AccountView> {
    let account = state.store.account(&id).await.missing_as(ApiError::NotFound("agent"))?;
    Ok(Json(AccountView::from(&account)))
}

/// Change an account; categories, limit and disabling apply to routing at once. An admin
/// account only by an admin signed in with the session cookie, never an API token: a
/// leaked token must neither sign in as that admin (its password) nor lock the admins out
/// (disabling them) — 403 `session_required` for any bearer token.
#[utoipa::path(patch, path = "/api/admin/agents/{id}", tag = "admin", params(("id" = String, Path, description = "the account id")),
    request_body(content = AgentUpdate, example = json!({"display_name": "Ann Smith", "max_chats": 2})),
    responses((status = 200, body = AccountView),
        (status = 400, description = "`bad_json`, `invalid_name`, `weak_password`, `invalid_limit`, `unknown_category`, \
            `cannot_disable_self`: which rule the body breaks", body = ErrorBody),
        NoAccount, AdminsOnly,
        (status = 503, description = "`unavailable`: too many passwords are being hashed at once, the store is \
            unreachable or the hub is stopping; `cluster_unavailable`: on several nodes, Redis is unreachable \
            (nothing was changed); try again shortly", body = ErrorBody)))]
async fn update_agent(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AgentUpdate>,
) -> JsonResult<AccountView> {
    let me = &caller.account;
    cluster_ready(&state)?;
    let mut account = state.store.account(&id).await.missing_as(ApiError::NotFound("agent"))?;
    // A leaked token must neither sign in as an admin (a password) nor lock the admins
    // out (disabling, re-limiting them): an admin account is the cookie session's alone.
    if account.role == Role::Admin {
        caller.cookie_session()?;
    }
    if let Some(name) = body.display_name {
        account.display_name = valid_display_name(&name)?;
    }
    if let Some(limit) = body.max_chats {
        account.max_chats = valid_limit(limit)?;
    }
    if let Some(categories) = body.categories {
        account.categories = valid_categories(&state, categories).await?;
    }
    if let Some(enabled) = body.enabled {
        if !enabled && account.id == me.id {
            return Err(ApiError::invalid(
                "cannot_disable_self",
                "an admin cannot disable their own account",
            ));
        }
        account.enabled = enabled;
    }
    let password_changed = body.password.is_some();
    if let Some(password) = body.password {
        valid_password(&password)?;
        account.password_hash = hash_password(password, state.settings.password_hash_cost).await?;
    }
    state.store.update_account(account.clone()).await?;
    let ended = if !account.enabled || password_changed {
        state.sessions.close_all_of(&account.id).await?
    } else {
        vec![]
    };
    // The account change first: a disabled agent's sockets close with 4003, which says more.
    state.hub.account_changed(account.clone()).await?;
    state.hub.sessions_ended(ended.clone(), SessionEnd::Revoked).await?;
    tell_other_nodes(&state, AdminChange::Account { id: account.id.clone() }).await?;
    if !ended.is_empty() {
        tell_other_nodes(&state, AdminChange::SessionsEnded { ids: ended }).await?;
    }
    Ok(Json(AccountView::from(&account)))
}

fn valid_category_name(raw: &str) -> Result<String, ApiError> {
    valid_name(raw, 60)
}

async fn announce_categories(state: &AppState, removed: Option<String>) -> Result<(), ApiError> {
    let categories = state.store.categories().await?;
    state.hub.categories_changed(categories, removed.clone()).await?;
    tell_other_nodes(state, AdminChange::Categories { removed }).await
}

// ---- several nodes through Redis ----

/// Refuses an admin change (before anything changes) while this node cannot tell the
/// other nodes of it: they would go on with the old accounts or categories.
fn cluster_ready(state: &AppState) -> Result<(), ApiError> {
    match &state.cluster {
        Some(cluster) => cluster
            .require_usable()
            .map_err(|e| ApiError::ClusterUnavailable(e.to_string())),
        None => Ok(()),
    }
}

/// Tells the other nodes of a change this node has made and applied. If that fails, the
/// change is saved and applied here; the others reload it when their bus reconnects.
pub(super) async fn tell_other_nodes(state: &AppState, change: AdminChange) -> Result<(), ApiError> {
    let Some(cluster) = &state.cluster else { return Ok(()) };
    cluster.publish(change).await.map_err(|e| {
        ApiError::ClusterUnavailable(format!(
            "saved, but {e}; they apply it once their Redis connection is back"
        ))
    })
}

/// Add a category.
#[utoipa::path(post, path = "/api/admin/categories", tag = "admin",
    request_body(content = NewCategory, example = json!({"id": "returns", "name": "Returns & refunds"})),
    responses((status = 201, body = CategoryView),
        (status = 400, description = "`bad_json`, `invalid_name`, `invalid_id`: which rule the body breaks", body = ErrorBody),
        (status = 409, description = "`conflict`: a category with this id exists", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn create_category(Admin(state): Admin, ApiJson(body): ApiJson<NewCategory>) -> StatusJson<CategoryView> {
    cluster_ready(&state)?;
    let name = valid_category_name(&body.name)?;
    let id = slug_id(
        body.id,
        &name,
        "a category id has 1 to 40 lowercase letters, digits or '-'",
    )?;
    let category = Category { id, name };
    let taken = ApiError::Conflict(format!("the category {:?} exists", category.id));
    state.store.create_category(category.clone()).await.taken_as(taken)?;
    announce_categories(&state, None).await?;
    Ok((StatusCode::CREATED, Json(CategoryView::from(&category))))
}

/// Rename a category (its id stays).
#[utoipa::path(patch, path = "/api/admin/categories/{id}", tag = "admin", params(("id" = String, Path, description = "the category id")),
    request_body(content = CategoryRename, example = json!({"name": "Sales and offers"})),
    responses((status = 200, body = CategoryView),
        (status = 400, description = "`bad_json`, `invalid_name`: which rule the body breaks", body = ErrorBody),
        NoCategory, AdminsOnly, Unavailable))]
async fn rename_category(
    Admin(state): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CategoryRename>,
) -> JsonResult<CategoryView> {
    cluster_ready(&state)?;
    let name = valid_category_name(&body.name)?;
    state
        .store
        .rename_category(&id, &name)
        .await
        .missing_as(ApiError::NotFound("category"))?;
    announce_categories(&state, None).await?;
    Ok(Json(CategoryView { id, name }))
}

/// Remove a category: its waiting customers are told and disconnected; agents stop holding it.
#[utoipa::path(delete, path = "/api/admin/categories/{id}", tag = "admin", params(("id" = String, Path, description = "the category id")),
    responses((status = 204, description = "removed"), NoCategory, AdminsOnly, Unavailable))]
async fn delete_category(Admin(state): Admin, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    cluster_ready(&state)?;
    state
        .store
        .delete_category(&id)
        .await
        .missing_as(ApiError::NotFound("category"))?;
    // Accounts keep no dangling category, and online agents drop it at once.
    for mut account in state.store.accounts().await? {
        if account.categories.contains(&id) {
            account.categories.retain(|c| c != &id);
            state.store.update_account(account.clone()).await?;
            let id = account.id.clone();
            state.hub.account_changed(account).await?;
            tell_other_nodes(&state, AdminChange::Account { id }).await?;
        }
    }
    announce_categories(&state, Some(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Live figures: agents online and available, customers connected and waiting, chats active.
#[utoipa::path(get, path = "/api/admin/stats", tag = "admin",
    responses((status = 200, body = Figures), AdminsOnly, Unavailable))]
async fn figures(Admin(state): Admin) -> JsonResult<Figures> {
    Ok(Json(state.hub.figures().await?))
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs_are_lowercase_and_dashed() {
        assert_eq!(slug("  Returns & Refunds "), "returns-refunds");
        assert_eq!(slug("Billing"), "billing");
    }
}
