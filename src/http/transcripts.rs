//! A customer asking for their chat's transcript by mail after the chat:
//! `POST /api/transcripts` with the chat's rating token (from `chat_ended`, or the
//! transcript mail's own rating link) and an optional address (else the one they gave
//! before). Public; the token is the authority and names the conversation, so nobody can
//! ask for another's chat. One mail per address, at most three addresses per chat
//! (`core::transcript_requests`); the mail goes out through the outbox once the chat is
//! archived closed (`transcripts`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, StatusJson};
use super::responses::Unavailable;
use super::{ApiError, AppState, ErrorBody};
use crate::transcripts::{Refused, Requested};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ask))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TranscriptAsk {
    /// The chat's rating token: `rating.token` of the customer's `chat_ended` frame, or the
    /// `token` of the transcript mail's rating link (valid 7 days).
    pub token: String,
    /// Where to send it (at most 254 characters); absent or blank: the address given when
    /// joining or asking before.
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptAsked {
    /// The chat (conversation) id.
    pub conversation_id: String,
    /// Where it goes.
    pub email: String,
    /// This address has its mail (waiting for the chat's end, or sent with nothing said
    /// since): no second one. Once the conversation went on (reopened), a new mail.
    pub already: bool,
}

#[utoipa::path(post, path = "/api/transcripts", tag = "public",
    request_body(content = TranscriptAsk, example = json!({"token": "eyJ…", "email": "carla@example.com"})),
    responses((status = 202, description = "the transcript will be mailed once the chat is archived closed (at once \
            when it is)", body = TranscriptAsked),
        (status = 400, description = "`bad_json`; `invalid_token`: not a rating token of this desk; `invalid_email`; \
            `email_required`: no address given now nor before", body = ErrorBody),
        (status = 401, description = "`token_expired`: the token is older than 7 days", body = ErrorBody),
        (status = 404, description = "`not_found`: the chat is not in the archive (erased)", body = ErrorBody),
        (status = 429, description = "`too_many_transcripts`: this chat's transcript was asked for three \
            addresses already", body = ErrorBody),
        Unavailable))]
async fn ask(State(state): State<AppState>, ApiJson(input): ApiJson<TranscriptAsk>) -> StatusJson<TranscriptAsked> {
    let claims = super::ratings::verified(
        &state,
        &input.token,
        ("token_expired", "this chat's link has expired"),
        "chat",
    )?;
    let email = crate::core::customer_details::optional_email(input.email.as_deref())?;
    let conversation = claims.conversation;
    let now = crate::clock::now_ms();
    let asked = super::fresh::until_found(
        &state,
        |r| matches!(r, Err(Refused::NotFound)),
        || crate::transcripts::request(state.store.as_ref(), &conversation, email.clone(), true, now),
    )
    .await;
    match asked {
        Ok((done, email)) => Ok((
            StatusCode::ACCEPTED,
            Json(TranscriptAsked {
                conversation_id: conversation,
                email,
                already: done == Requested::AlreadyAsked,
            }),
        )),
        Err(Refused::EmailRequired) => Err(ApiError::invalid("email_required", Refused::EmailRequired.to_string())),
        Err(Refused::TooMany) => Err(ApiError::refused(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_transcripts",
            Refused::TooMany.to_string(),
        )),
        Err(Refused::NotFound) => Err(ApiError::NotFound("chat")),
        Err(Refused::Store(e)) => Err(e.into()),
    }
}
