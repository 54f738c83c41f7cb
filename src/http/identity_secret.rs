//! The desk's identity secret, for admins (`identity_secret`): whether one is set, a new
//! one made (shown once, in the answer, for the site's server: it is never shown again,
//! and the hashes made with the one before stop verifying at once), or none (identities
//! are ignored from then on).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::error::JsonResult;
use super::responses::{AdminsOnly, Unavailable};
use super::session::{Admin, AdminOnly};
use crate::identity_secret::{self as secret, IdentitySecret};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, rotate, disable))
}

/// Whether identities are verified, and since when (never the secret itself).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"enabled": true, "created_at": 1767225600000_i64}))]
pub struct IdentitySecretState {
    pub enabled: bool,
    /// When the secret in force was made (ms since the Unix epoch); null when none is.
    pub created_at: Option<i64>,
}

impl From<Option<IdentitySecret>> for IdentitySecretState {
    fn from(s: Option<IdentitySecret>) -> Self {
        Self {
            enabled: s.is_some(),
            created_at: s.map(|s| s.created_at),
        }
    }
}

/// A secret just made: the only time it is shown.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"secret": "9f2c4e1a7b3d5f608192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8", "created_at": 1767225600000_i64}))]
pub struct NewIdentitySecret {
    /// 64 hex digits: the site's server signs each identifier with it (HMAC-SHA256, this
    /// text as the key, the hash in hex).
    pub secret: String,
    pub created_at: i64,
}

/// Whether an identity secret is set.
#[utoipa::path(get, path = "/api/admin/identity-secret", tag = "admin",
    responses((status = 200, body = IdentitySecretState), AdminsOnly, Unavailable))]
async fn show(Admin(state): Admin) -> JsonResult<IdentitySecretState> {
    Ok(Json(secret::load(&state.store).await?.into()))
}

/// A new identity secret, replacing the one before (whose hashes stop verifying).
#[utoipa::path(post, path = "/api/admin/identity-secret", tag = "admin",
    responses((status = 200, description = "the new secret, shown this once", body = NewIdentitySecret),
        AdminsOnly, Unavailable))]
async fn rotate(AdminOnly(me): AdminOnly, State(state): State<AppState>) -> JsonResult<NewIdentitySecret> {
    let made = secret::rotate(&state.store).await?;
    tracing::info!(by = %me.username, "a new identity secret was made");
    Ok(Json(NewIdentitySecret {
        secret: made.secret,
        created_at: made.created_at,
    }))
}

/// No identity secret: identities are ignored from now on.
#[utoipa::path(delete, path = "/api/admin/identity-secret", tag = "admin",
    responses((status = 200, body = IdentitySecretState), AdminsOnly, Unavailable))]
async fn disable(AdminOnly(me): AdminOnly, State(state): State<AppState>) -> JsonResult<IdentitySecretState> {
    secret::disable(&state.store).await?;
    tracing::info!(by = %me.username, "the identity secret was removed");
    Ok(Json(None.into()))
}
