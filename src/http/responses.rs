//! The refusals many operations share, declared once for the OpenAPI document.
//!
//! Each variant is one status an operation can answer, with the `ApiError`
//! codes behind it (see `error.rs`); handlers never build these types, they only
//! name them in their `responses(...)`, so every operation lists the same words
//! for the same refusal.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response;

use super::ErrorBody;

/// Refusals of an operation for any signed-in agent or admin (or an API token: `read`
/// for a GET, `admin` otherwise).
#[derive(IntoResponses)]
pub enum SignedIn {
    /// `unauthorized`: no session, or one that expired or was revoked (signed out, password changed);
    /// `invalid_token`: an API token that is malformed, unknown, expired or revoked (the message says
    /// which); `token_in_query`: an API token in the URL's query (refused whatever the header says).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `not_whitelisted`: the caller's address is outside `AGENT_WHITELIST` (checked first, with or
    /// without a session); `forbidden`: the account is disabled; `missing_scope`: the API token lacks
    /// the scope named in the message.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// `rate_limited`: too many requests with this API token; try again after `Retry-After` seconds.
    #[response(status = 429, headers(("Retry-After" = u64, description = "seconds until the token may be used again")))]
    TooMany(ErrorBody),
}

/// Refusals of an operation for admins only (or an API token with the `admin` scope): those
/// of [`SignedIn`], with a 403 that gives more reasons.
pub struct AdminsOnly;

impl IntoResponses for AdminsOnly {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = SignedIn::responses();
        responses.extend(AdminForbidden::responses());
        responses
    }
}

/// The 403 of [`AdminsOnly`].
#[derive(IntoResponses)]
pub enum AdminForbidden {
    /// `not_whitelisted`: the caller's address is outside `AGENT_WHITELIST` (checked first, with or
    /// without a session); `forbidden`: the account is an agent's, or disabled; `missing_scope`: the
    /// API token lacks the scope named in the message (`admin`; `read` for the reports);
    /// `session_required`: a bearer token (an API token whatever its scopes, or a session
    /// presented as one) asked for what only an admin signed in with the session cookie may
    /// do (the operation says which).
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// The store is down or the hub is stopping; nothing was changed.
#[derive(IntoResponses)]
pub enum Unavailable {
    /// `unavailable`: the store is unreachable, or did not answer within `STORE_READ_TIMEOUT_MS`, or
    /// the hub is shutting down; try again shortly.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The store is down or did not answer a change in time: the change may still be made.
#[derive(IntoResponses)]
pub enum ChangeUnavailable {
    /// `unavailable`: the store is unreachable, or did not answer a read within
    /// `STORE_READ_TIMEOUT_MS` or the change within `ARCHIVE_WRITE_TIMEOUT_MS`, or the hub is
    /// shutting down. A change given up on may still be made once the store answers;
    /// sending the same request again is safe (it changes nothing twice).
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// A query without the token of an appointment's link.
#[derive(IntoResponses)]
pub enum NoToken {
    /// `bad_query`: no token
    #[response(status = 400)]
    BadQuery(ErrorBody),
}

/// A token that names no appointment (a link mistyped, or of an appointment erased).
#[derive(IntoResponses)]
pub enum UnknownToken {
    /// `unknown_token`: no appointment has this token
    #[response(status = 404)]
    Unknown(ErrorBody),
}

/// A listing's query that does not parse, or asks for a page out of range.
#[derive(IntoResponses)]
pub enum BadQuery {
    /// `bad_query`: a parameter is malformed or out of range
    #[response(status = 400)]
    BadQuery(ErrorBody),
}

/// A JSON body that is not the operation's (malformed, or with a field it does not know).
#[derive(IntoResponses)]
pub enum BadJson {
    /// `bad_json`
    #[response(status = 400)]
    BadJson(ErrorBody),
}

/// A JSON body over `MAX_JSON_BODY`.
#[derive(IntoResponses)]
pub enum BodyTooLarge {
    /// `body_too_large`: the body is over the JSON limit
    #[response(status = 413)]
    TooLarge(ErrorBody),
}

// ---- what a staff member may see ----

/// A conversation that is not in the archive, or (for an agent) not one they served: the
/// two answer alike, so an agent learns nothing of others' conversations.
#[derive(IntoResponses)]
pub enum NotServed {
    /// `not_found`: no such conversation, or (for an agent) not one they served
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// A conversation that is not in the desk's list, or (for an agent) not in theirs: the two
/// answer alike.
#[derive(IntoResponses)]
pub enum NotInList {
    /// `not_found`: no such conversation, or (for an agent) not in their list
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// A conversation that does not exist, or (for an agent) is of no category they serve: the
/// two answer alike.
#[derive(IntoResponses)]
pub enum NotOfTheirCategories {
    /// `not_found`: no such conversation, or (for an agent) not of a category they serve
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// An appointment that is not the calling agent's (or does not exist).
#[derive(IntoResponses)]
pub enum NotYourAppointment {
    /// `not_found`: no such appointment of this agent
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// An account id that names no account.
#[derive(IntoResponses)]
pub enum NoAccount {
    /// `not_found`: no such account
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// A category id that names no category.
#[derive(IntoResponses)]
pub enum NoCategory {
    /// `not_found`: no such category
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// A label id that names none of the desk's.
#[derive(IntoResponses)]
pub enum NoLabel {
    /// `not_found`: no such label
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// A webhook endpoint id that names none.
#[derive(IntoResponses)]
pub enum NoEndpoint {
    /// `not_found`: no such endpoint
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// A canned reply id that names none of the desk's.
#[derive(IntoResponses)]
pub enum NoDeskReply {
    /// `not_found`: no such reply of the desk
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// A canned reply's body that breaks a rule (the desk's and each agent's alike).
#[derive(IntoResponses)]
pub enum ReplyRules {
    /// `bad_json`, `invalid_shortcut`, `invalid_title`, `invalid_text`, `unknown_category`: which rule the body breaks
    #[response(status = 400)]
    Invalid(ErrorBody),
}

/// An offline message the caller may not see is as unknown as one that does not exist.
#[derive(IntoResponses)]
pub enum UnknownMessage {
    /// `unknown_offline_message`: no such message (or not of the caller's categories)
    #[response(status = 404)]
    Unknown(ErrorBody),
}

// ---- rooms and 1-to-1 video ----

/// A room that is not the caller's is as missing as one that does not exist.
#[derive(IntoResponses)]
pub enum NoRoomOfYours {
    /// `not_found`: no such room of yours
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// A room that was ended: it takes nobody any more.
#[derive(IntoResponses)]
pub enum RoomEnded {
    /// `room_ended`: the meeting has ended
    #[response(status = 410)]
    Ended(ErrorBody),
}

/// An agent has one open room at a time.
#[derive(IntoResponses)]
pub enum RoomOpen {
    /// `room_open`: you already have an open room
    #[response(status = 409)]
    Open(ErrorBody),
}
