//! Whether webhooks may reach private addresses, as admins see and change it
//! (`/api/admin/webhooks/private-addresses`): the admins' choice while the operator leaves
//! `WEBHOOK_ALLOW_PRIVATE` unset, shown locked (and refused a change) while it is set.
//!
//! Read by any admin, an `admin`-scoped API token included; changed only by an admin
//! signed in with the session cookie (`CookieAdmin`): a leaked token must not be able to
//! open the server's own network to outgoing requests. Every change is logged with who
//! made it, and applies on every node within a second (`webhooks::private_addresses`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult};
use super::responses::{AdminsOnly, BadJson, Unavailable};
use super::session::{Admin, CookieAdmin};
use super::{ApiError, AppState, ErrorBody};
use crate::core::webhooks::private_allowed;
use crate::store::PrivateAddressesChoice;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, change))
}

/// Whether webhooks may reach loopback, link-local and private addresses, and who decides.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrivateAddressesView {
    /// Whether webhook endpoints and webhook bots may be (and are) sent to such addresses now,
    /// as stored: what a registration is checked against.
    pub allowed: bool,
    /// What the node answering heeds for its deliveries and webhook bots' calls now: its
    /// last reading of `allowed` (false after a reading that failed). It follows a change
    /// within a second.
    pub effective: bool,
    /// Set by the server's operator (`WEBHOOK_ALLOW_PRIVATE` is `true` or `false`): admins
    /// cannot change it.
    pub locked: bool,
    /// The username of the admin who last changed the admins' choice; null before anyone did.
    pub changed_by: Option<String>,
    /// When (ms since the epoch); null before anyone did.
    pub changed_at: Option<i64>,
}

/// The admins' choice to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivateAddressesEdit {
    /// Allow webhooks to reach loopback, link-local and private addresses.
    pub allowed: bool,
}

async fn view(state: &AppState) -> JsonResult<PrivateAddressesView> {
    let operator = state.settings.webhooks.allow_private;
    let choice = state.store.webhook_private_addresses().await?;
    Ok(Json(PrivateAddressesView {
        allowed: private_allowed(operator, choice.as_ref().map(|c| c.allowed)),
        // Without webhooks running (never, once the hub started), the operator's word alone.
        effective: (state.archive.webhooks()).map_or_else(|| private_allowed(operator, None), |h| h.private.allowed()),
        locked: operator.is_some(),
        changed_by: choice.as_ref().map(|c| c.changed_by.clone()),
        changed_at: choice.map(|c| c.changed_at),
    }))
}

/// Whether webhooks may reach loopback, link-local and private addresses, and whether the
/// server's operator settled it (`WEBHOOK_ALLOW_PRIVATE`).
#[utoipa::path(get, path = "/api/admin/webhooks/private-addresses", tag = "admin",
    responses((status = 200, body = PrivateAddressesView), AdminsOnly, Unavailable))]
async fn show(Admin(state): Admin) -> JsonResult<PrivateAddressesView> {
    view(&state).await
}

/// Allow or refuse webhooks (endpoints and webhook bots) loopback, link-local and private
/// addresses: checked at registration and at every delivery or call, on every node within
/// a second. Only by an admin signed in with the session cookie, never an API token: a
/// leaked token must not open the server's network (403 `session_required` for any bearer
/// token). Refused while the operator set `WEBHOOK_ALLOW_PRIVATE`.
#[utoipa::path(put, path = "/api/admin/webhooks/private-addresses", tag = "admin",
    request_body(content = PrivateAddressesEdit, example = json!({"allowed": true})),
    security(("session_cookie" = [])),
    responses((status = 200, body = PrivateAddressesView),
        BadJson,
        (status = 409, description = "`set_by_operator`: the server's `WEBHOOK_ALLOW_PRIVATE` decides (`false`: never; `true`: always); admins cannot change it", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn change(
    CookieAdmin(admin): CookieAdmin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PrivateAddressesEdit>,
) -> JsonResult<PrivateAddressesView> {
    if let Some(operator) = state.settings.webhooks.allow_private {
        let says = if operator {
            "WEBHOOK_ALLOW_PRIVATE=true on the server: webhooks may always reach private addresses"
        } else {
            "WEBHOOK_ALLOW_PRIVATE=false on the server: webhooks may never reach private addresses"
        };
        return Err(ApiError::refused(
            StatusCode::CONFLICT,
            "set_by_operator",
            format!("{says}; only the server's operator can change that"),
        ));
    }
    state
        .store
        .set_webhook_private_addresses(PrivateAddressesChoice {
            allowed: body.allowed,
            changed_by: admin.username.clone(),
            changed_at: crate::clock::now_ms(),
        })
        .await?;
    tracing::info!(admin = %admin.username, allowed = body.allowed, "an admin changed whether webhooks may reach private addresses");
    // Read again here at once, and on the other nodes on the admin bus (or their next look).
    super::webhooks::endpoints_changed(&state).await;
    view(&state).await
}
