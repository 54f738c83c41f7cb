//! Rating tokens: what a customer's `chat_ended` frame carries so they can rate the chat
//! afterwards, by `POST /api/ratings`, on any node. A JWT (HS256, `jsonwebtoken`) naming
//! the conversation, its agent and the desk's scale (`RATING_SCALE`), signed with
//! `ROOM_TOKEN_SECRET` as room tokens are (every node of a cluster shares it), valid for
//! [`RATING_TOKEN_TTL`]. Its claims carry `purpose: "rating"`, so a room token is never
//! taken for one (nor the other way round: a room token's claims have no `conversation`).
//! The payload is signed, not secret: the customer can read it (the agent's account id
//! included, which gives nothing without a session).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::rooms::token::TokenRefusal;
use crate::store::RatingScale;

/// How long after the chat a customer may rate it.
pub const RATING_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

const PURPOSE: &str = "rating";

/// What a rating token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingClaims {
    /// Always `rating`.
    pub purpose: String,
    /// The conversation's id (the chat's wire id).
    pub conversation: String,
    /// The agent's account id, for the `chat_rated` frame.
    pub agent: String,
    /// The desk's scale when the chat ended.
    pub scale: RatingScale,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    pub iat: u64,
}

/// A token for rating `conversation`, served by `agent`, from `now_secs`.
pub fn issue(settings: &Settings, conversation: &str, agent: &str, now_secs: u64) -> String {
    let claims = RatingClaims {
        purpose: PURPOSE.to_string(),
        conversation: conversation.to_string(),
        agent: agent.to_string(),
        scale: settings.rating_scale,
        exp: now_secs + RATING_TOKEN_TTL.as_secs(),
        iat: now_secs,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&settings.rooms.token_secret.0),
    )
    .expect("HS256 with a byte key cannot fail to sign")
}

/// The claims of a valid, unexpired rating token.
pub fn verify(settings: &Settings, token: &str) -> Result<RatingClaims, TokenRefusal> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp"]);
    let claims = jsonwebtoken::decode::<RatingClaims>(
        token,
        &DecodingKey::from_secret(&settings.rooms.token_secret.0),
        &validation,
    )
    .map(|data| data.claims)
    .map_err(|e| match e.kind() {
        ErrorKind::ExpiredSignature => TokenRefusal::Expired,
        _ => TokenRefusal::Invalid,
    })?;
    if claims.purpose != PURPOSE {
        return Err(TokenRefusal::Invalid);
    }
    Ok(claims)
}

/// Seconds since the epoch now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_conversation_and_expires_after_a_week() {
        let settings = Settings::for_tests();
        let now = now_secs();
        let token = issue(&settings, "c1", "a1", now);
        let claims = verify(&settings, &token).unwrap();
        assert_eq!((claims.conversation.as_str(), claims.agent.as_str()), ("c1", "a1"));
        assert_eq!(claims.scale, RatingScale::Stars);
        let old = issue(&settings, "c1", "a1", now - RATING_TOKEN_TTL.as_secs() - 1);
        assert_eq!(verify(&settings, &old), Err(TokenRefusal::Expired));
        assert_eq!(
            verify(&Settings::for_tests(), &token),
            Err(TokenRefusal::Invalid),
            "another secret"
        );
        assert_eq!(verify(&settings, "not.a.token"), Err(TokenRefusal::Invalid));
        // A room token is no rating token.
        let rooms = crate::rooms::token::RoomTokens::new(&settings.rooms);
        let ann = crate::rooms::token::Entrant {
            room: "r1",
            person: "agent:a1",
            name: "Ann",
            kind: crate::rooms::token::PersonKind::Agent,
            guest_id: None,
        };
        let (room_token, _) = rooms.issue(ann, now);
        assert_eq!(verify(&settings, &room_token), Err(TokenRefusal::Invalid));
    }
}
