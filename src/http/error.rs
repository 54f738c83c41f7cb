//! The one error type of the HTTP API: every failure is JSON with a stable
//! code and a human message, and never carries internal details (those go to
//! the log).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// The request is malformed or a value is out of range; `code` says which rule.
    Invalid {
        code: &'static str,
        message: String,
    },
    /// No session, or an expired one.
    Unauthorized,
    /// Signed in, but not allowed (wrong role, disabled).
    Forbidden(String),
    /// The caller's address is not in `AGENT_WHITELIST`.
    NotWhitelisted,
    NotFound(&'static str),
    Conflict(String),
    /// Too many connections, or the store is down.
    Unavailable(String),
    /// A bug or an unexpected failure; logged, and answered without details.
    Internal(String),
    /// Too many failed sign-ins from this address or for this account: 429 with `Retry-After`.
    TooManyAttempts(crate::http::throttle::TooManyAttempts),
    // ---- several nodes through Redis ----
    /// The change needs the cluster (Redis, and this node's lease), which is unavailable:
    /// 503 `cluster_unavailable`.
    ClusterUnavailable(String),
    // ---- rooms and 1-to-1 video ----
    /// A refusal with its own status and code (a room that is full, ended or locked, a
    /// sender that failed).
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_limit`, `not_whitelisted`, `unauthorized`, …
    pub code: String,
    /// For people.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::TooManyAttempts(throttled) => return too_many_attempts(throttled),
            Self::Invalid { code, message } => (StatusCode::BAD_REQUEST, code, message),
            Self::Refused { status, code, message } => (status, code, message),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "sign in first".to_string()),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, "forbidden", message),
            Self::NotWhitelisted => (
                StatusCode::FORBIDDEN,
                "not_whitelisted",
                "agent and admin access is not allowed from this address".to_string(),
            ),
            Self::NotFound(what) => (StatusCode::NOT_FOUND, "not_found", format!("no such {what}")),
            Self::Conflict(message) => (StatusCode::CONFLICT, "conflict", message),
            Self::Unavailable(message) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
            Self::ClusterUnavailable(message) => (StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable", message),
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error answering a request");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side".to_string(),
                )
            }
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
            },
        };
        (status, Json(body)).into_response()
    }
}

/// 429 with `Retry-After` in whole seconds, rounded up so a client that waits that long gets through.
fn too_many_attempts(throttled: crate::http::throttle::TooManyAttempts) -> Response {
    let wait = throttled.retry_after.as_secs() + u64::from(throttled.retry_after.subsec_nanos() > 0);
    let body = ErrorBody {
        error: ErrorDetail {
            code: "too_many_attempts".to_string(),
            message: format!("too many failed sign-ins; try again in {} s", wait.max(1)),
        },
    };
    let retry_after = [(axum::http::header::RETRY_AFTER, wait.max(1).to_string())];
    (StatusCode::TOO_MANY_REQUESTS, retry_after, Json(body)).into_response()
}

impl From<crate::http::throttle::TooManyAttempts> for ApiError {
    fn from(throttled: crate::http::throttle::TooManyAttempts) -> Self {
        metrics::counter!(crate::http::throttle::THROTTLED_METRIC).increment(1);
        Self::TooManyAttempts(throttled)
    }
}

impl From<crate::auth::HashingBusy> for ApiError {
    fn from(busy: crate::auth::HashingBusy) -> Self {
        Self::Unavailable(busy.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("record"),
            StoreError::Conflict => Self::Conflict("it exists already".into()),
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                Self::Unavailable("storage is unavailable; try again shortly".into())
            }
        }
    }
}

impl From<crate::hub::HubGone> for ApiError {
    fn from(_: crate::hub::HubGone) -> Self {
        Self::Unavailable("the hub is shutting down".into())
    }
}

/// The most a JSON request body may hold: axum's default body limit (2 MiB), which every
/// JSON extractor applies.
pub const MAX_JSON_BODY: usize = 2 * 1024 * 1024;

/// Turns axum's JSON body rejections into our error shape: a body over the limit is 413
/// `body_too_large`; anything else that is not the expected JSON is 400 `bad_json`.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::Refused {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "body_too_large",
                message: format!("the request body is larger than {} MiB", MAX_JSON_BODY / (1024 * 1024)),
            };
        }
        Self::invalid("bad_json", e.body_text())
    }
}
