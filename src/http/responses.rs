//! The refusals many operations share, declared once for the OpenAPI document.
//!
//! Each variant is one status an operation can answer, with the `ApiError`
//! codes behind it (see `error.rs`); handlers never build these types, they only
//! name them in their `responses(...)`, so every operation lists the same words
//! for the same refusal.

use utoipa::IntoResponses;

use super::ErrorBody;

/// Refusals of an operation for any signed-in agent or admin.
#[derive(IntoResponses)]
pub enum SignedIn {
    /// `unauthorized`: no session, or one that expired or was revoked (signed out, password changed).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `not_whitelisted`: the caller's address is outside `AGENT_WHITELIST` (checked first, with or
    /// without a session); `forbidden`: the account is disabled.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// Refusals of an operation for admins only.
#[derive(IntoResponses)]
pub enum AdminsOnly {
    /// `unauthorized`: no session, or one that expired or was revoked (signed out, password changed).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `not_whitelisted`: the caller's address is outside `AGENT_WHITELIST` (checked first, with or
    /// without a session); `forbidden`: the account is an agent's, or disabled.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// The store is down or the hub is stopping; nothing was changed.
#[derive(IntoResponses)]
pub enum Unavailable {
    /// `unavailable`: the store is unreachable or the hub is shutting down; try again shortly.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}
