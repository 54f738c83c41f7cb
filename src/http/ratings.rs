//! A customer rating a chat that ended: `POST /api/ratings` with the token their
//! `chat_ended` frame carried (`crate::ratings`), a score on the desk's scale and an
//! optional comment. Stored with the conversation once: a second rating is 409
//! `already_rated`. Public (customers have no session); the token is the authority.
//! The agent hears of it by a `chat_rated` frame on whichever node their connection is
//! (through the admin bus on several nodes), and sees it in their history in any case.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, StatusJson};
use super::responses::Unavailable;
use super::{ApiError, AppState, ErrorBody};
use crate::rooms::token::TokenRefusal;
use crate::store::{Rating, RatingScale, StoreError};

/// The longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 1_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(rate))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingInput {
    /// The `rating.token` of the customer's `chat_ended` frame (valid 7 days).
    pub token: String,
    /// `stars`: 1 to 5; `thumbs`: 0 (down) or 1 (up) — the scale the token names.
    pub score: u8,
    /// Up to 1,000 characters; blank is none.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The claims of a chat's rating token (a rating, a transcript asked for): an expired
/// token is 401 `expired` (its code and message), a malformed or forged one 400
/// `invalid_token`, "not a `kind` token of this desk".
pub(super) fn verified(
    state: &AppState,
    token: &str,
    expired: (&'static str, &str),
    kind: &str,
) -> Result<crate::ratings::RatingClaims, ApiError> {
    crate::ratings::verify(&state.settings, token).map_err(|refusal| match refusal {
        TokenRefusal::Expired => ApiError::refused(StatusCode::UNAUTHORIZED, expired.0, expired.1),
        TokenRefusal::Invalid => ApiError::invalid("invalid_token", format!("this is not a {kind} token of this desk")),
    })
}

#[utoipa::path(post, path = "/api/ratings", tag = "public",
    request_body(content = RatingInput, example = json!({"token": "eyJ…", "score": 5, "comment": "Quick and kind"})),
    responses((status = 201, description = "stored with the conversation", body = Rating),
        (status = 400, description = "`bad_json`; `invalid_token`: the token is malformed or forged; `invalid_score`: \
            not a score of the token's scale; `invalid_comment`: over 1,000 characters", body = ErrorBody),
        (status = 401, description = "`rating_expired`: the token is older than 7 days", body = ErrorBody),
        (status = 409, description = "`already_rated`: this conversation was rated already (nothing changed)", body = ErrorBody),
        Unavailable))]
async fn rate(State(state): State<AppState>, ApiJson(input): ApiJson<RatingInput>) -> StatusJson<Rating> {
    let claims = verified(
        &state,
        &input.token,
        ("rating_expired", "this chat can no longer be rated"),
        "rating",
    )?;
    if !claims.scale.accepts(input.score) {
        let range = match claims.scale {
            RatingScale::Stars => "1 to 5",
            RatingScale::Thumbs => "0 (down) or 1 (up)",
        };
        return Err(ApiError::invalid(
            "invalid_score",
            format!("a score is {range}, not {}", input.score),
        ));
    }
    let comment = input.comment.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
    if comment.as_ref().is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
        return Err(ApiError::invalid(
            "invalid_comment",
            format!("a comment has at most {MAX_COMMENT_CHARS} characters"),
        ));
    }
    let rating = Rating {
        score: input.score,
        scale: claims.scale,
        comment,
        at: crate::clock::now_ms(),
    };
    // A rating is kept even before its conversation's opening is stored: `NotFound` here
    // means the conversation was erased, which no wait undoes.
    match state
        .store
        .rate_conversation(&claims.conversation, rating.clone())
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ApiError::refused(
                StatusCode::CONFLICT,
                "already_rated",
                "this chat was rated already",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(hooks) = state.archive.webhooks() {
        hooks
            .emit_durably(crate::webhooks::event::Event::rating_given(
                &claims.conversation,
                &rating,
            ))
            .await;
    }
    // Best effort: the agent's console, on this node or (through the admin bus) another.
    let _ = state
        .hub
        .chat_rated(&claims.agent, &claims.conversation, rating.clone())
        .await;
    if let Some(cluster) = &state.cluster {
        let change = crate::cluster::bus::AdminChange::Rated {
            agent: claims.agent.clone(),
            conversation: claims.conversation.clone(),
            rating: rating.clone(),
        };
        if let Err(e) = cluster.publish(change).await {
            tracing::warn!(error = %e, "the other nodes were not told of a rating; its agent sees it in their history");
        }
    }
    Ok((StatusCode::CREATED, Json(rating)))
}
