//! The one error type of the HTTP API: every failure is JSON with a stable
//! code and a human message, and never carries internal details (those go to
//! the log).

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts};
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
    /// Too many of something from this address or for this account (failed sign-ins,
    /// bookings, offline messages): 429 with `Retry-After`; `what` names them in the message.
    TooMany {
        code: &'static str,
        what: &'static str,
        retry_after: std::time::Duration,
    },
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

    /// A refusal with its own status and code.
    pub fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused {
            status,
            code,
            message: message.into(),
        }
    }

    /// 413 `body_too_large`: a JSON body over [`MAX_JSON_BODY`], arrived or declared.
    pub fn json_body_too_large() -> Self {
        Self::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {} MiB", MAX_JSON_BODY / (1024 * 1024)),
        )
    }

    /// 429 `code`: too many `what` ("bookings from this address"); try again after `retry_after`.
    pub fn too_many(code: &'static str, what: &'static str, retry_after: std::time::Duration) -> Self {
        Self::TooMany {
            code,
            what,
            retry_after,
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
            Self::TooMany {
                code,
                what,
                retry_after,
            } => return too_many(code, what, retry_after),
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

/// 429 with `Retry-After` in whole seconds (at least one), rounded up so a client that
/// waits that long gets through.
fn too_many(code: &'static str, what: &'static str, retry_after: std::time::Duration) -> Response {
    let wait = (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1);
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_string(),
            message: format!("too many {what}; try again in {wait} s"),
        },
    };
    let retry_after = [(axum::http::header::RETRY_AFTER, wait.to_string())];
    (StatusCode::TOO_MANY_REQUESTS, retry_after, Json(body)).into_response()
}

impl From<crate::http::throttle::TooManyAttempts> for ApiError {
    fn from(throttled: crate::http::throttle::TooManyAttempts) -> Self {
        metrics::counter!(crate::http::throttle::THROTTLED_METRIC).increment(1);
        Self::too_many("too_many_attempts", "failed sign-ins", throttled.retry_after)
    }
}

impl From<crate::auth::HashingBusy> for ApiError {
    fn from(busy: crate::auth::HashingBusy) -> Self {
        Self::Unavailable(busy.to_string())
    }
}

/// A name that breaks the rule for names (`core::names`): 400 `invalid_name`, saying why.
impl From<crate::core::names::NameError> for ApiError {
    fn from(e: crate::core::names::NameError) -> Self {
        Self::invalid(e.code(), e.to_string())
    }
}

/// A detail a customer gave that is not well formed (`core::customer_details`): 400 with the
/// code naming the field.
impl From<crate::core::customer_details::Invalid> for ApiError {
    fn from(e: crate::core::customer_details::Invalid) -> Self {
        Self::invalid(e.code, e.message)
    }
}

/// What a change's 503 says: the store did not answer in time.
pub const WRITE_UNANSWERED: &str = "storage did not answer in time; the change may still be made once it does, and sending the same request again is safe";

impl ApiError {
    /// A change the store did not answer in time (or could not make) as 503 `unavailable`
    /// saying it may still be made and may be sent again; other failures as
    /// [`From<StoreError>`] maps them. Only for changes that are safe to repeat.
    pub fn unanswered_change(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable for a change");
                Self::Unavailable(WRITE_UNANSWERED.into())
            }
            other => other.into(),
        }
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

/// A store answer read for a request, where a missing record has its own refusal.
pub trait StoreAnswer<T> {
    /// A missing record as `missing`; other failures as [`From<StoreError>`] maps them.
    fn missing_as(self, missing: ApiError) -> Result<T, ApiError>;
    /// As [`Self::missing_as`], and a record the caller may not have (`mine` says no) is
    /// as missing as an absent one, so the answer does not tell the two apart.
    fn found_if(self, mine: impl FnOnce(&T) -> bool, missing: ApiError) -> Result<T, ApiError>;
    /// A key someone holds already (`Conflict`) as `taken`; other failures as
    /// [`From<StoreError>`] maps them.
    fn taken_as(self, taken: ApiError) -> Result<T, ApiError>;
    /// A missing record as `None`, where its absence is an answer and no refusal; other
    /// failures as [`From<StoreError>`] maps them.
    fn if_found(self) -> Result<Option<T>, ApiError>;
}

impl<T> StoreAnswer<T> for Result<T, StoreError> {
    fn missing_as(self, missing: ApiError) -> Result<T, ApiError> {
        self.found_if(|_| true, missing)
    }

    fn found_if(self, mine: impl FnOnce(&T) -> bool, missing: ApiError) -> Result<T, ApiError> {
        match self {
            Ok(found) if mine(&found) => Ok(found),
            Ok(_) | Err(StoreError::NotFound) => Err(missing),
            Err(e) => Err(e.into()),
        }
    }

    fn taken_as(self, taken: ApiError) -> Result<T, ApiError> {
        match self {
            Err(StoreError::Conflict) => Err(taken),
            other => other.map_err(ApiError::from),
        }
    }

    fn if_found(self) -> Result<Option<T>, ApiError> {
        match self {
            Ok(found) => Ok(Some(found)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
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
            return Self::json_body_too_large();
        }
        Self::invalid("bad_json", e.body_text())
    }
}

/// A raw body (an optional JSON one, read as bytes) that could not be read: over the limit
/// is 413 `body_too_large` in JSON, as on the JSON routes, not axum's plain-text answer.
impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::json_body_too_large();
        }
        Self::invalid("bad_body", e.body_text())
    }
}

/// Every malformed query string is 400 `bad_query`, with axum's account of what is wrong.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Self::invalid("bad_query", e.body_text())
    }
}

/// A JSON request body, refused as [`ApiError`] (`bad_json`, `body_too_large`) when it is not
/// the expected JSON; a handler takes it as `ApiJson(body): ApiJson<T>`, its last argument,
/// so the refusal comes after the session's.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// A query string, refused as [`ApiError`] (`bad_query`) when it does not parse; a handler
/// takes it after its session and path, so those refusals come first.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// What most handlers answer: a JSON body, or the refusal.
pub type JsonResult<T> = Result<Json<T>, ApiError>;

/// What a handler answers when the status says more than 200 (201 created, 202 queued): the
/// status and a JSON body, or the refusal.
pub type StatusJson<T> = Result<(StatusCode, Json<T>), ApiError>;

/// The names `asked` for, each once (in the order first asked), each one of `known`, and
/// at least one; else 400 `code`, naming the first unknown one (`"x" is no {what}; they
/// are …`) or asking for one.
pub fn names_from(asked: Vec<String>, known: &[&str], code: &'static str, what: &str) -> Result<Vec<String>, ApiError> {
    let mut names: Vec<String> = Vec::new();
    for name in asked {
        if !known.contains(&name.as_str()) {
            return Err(ApiError::invalid(
                code,
                format!("{name:?} is no {what}; they are {}", known.join(", ")),
            ));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(ApiError::invalid(code, format!("name at least one {what}")));
    }
    Ok(names)
}
