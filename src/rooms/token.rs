//! Room tokens: short-lived JWTs (HS256, `jsonwebtoken`) that let their holder open one
//! room's websocket as one person. Signed with `ROOM_TOKEN_SECRET` (random per start
//! when unset: every node of a cluster must share it), expiring after
//! `ROOM_TOKEN_TTL_SECS` (10 minutes at most), with no leeway.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::config::Settings;

/// Which side of the room the holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonKind {
    Agent,
    Customer,
    Guest,
}

/// What a room token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomClaims {
    /// The room id.
    pub room: String,
    /// The person: `agent:<account id>`, or one admission's opaque random id,
    /// `customer:<hex>` / `guest:<hex>` (`rooms::new_admission`): never an address or
    /// a phone number, which would end up in TURN servers' logs.
    pub sub: String,
    /// Their display name.
    pub name: String,
    pub kind: PersonKind,
    /// The stored guest record, for guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_id: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    pub iat: u64,
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Expired,
    /// Malformed, forged, or signed with another secret.
    Invalid,
}

pub struct RoomTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: u64,
}

impl RoomTokens {
    pub fn new(settings: &Settings) -> Self {
        let secret = &settings.room_token_secret.0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_secs: settings.room_token_ttl.as_secs(),
        }
    }

    /// A token for `person` in `room`, valid from `now_secs` for the configured time.
    pub fn issue(
        &self,
        room: &str,
        person: &str,
        name: &str,
        kind: PersonKind,
        guest_id: Option<String>,
        now_secs: u64,
    ) -> (String, RoomClaims) {
        let claims = RoomClaims {
            room: room.to_string(),
            sub: person.to_string(),
            name: name.to_string(),
            kind,
            guest_id,
            exp: now_secs + self.ttl_secs,
            iat: now_secs,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 with a byte key cannot fail to sign");
        (token, claims)
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<RoomClaims, TokenRefusal> {
        let mut validation = Validation::new(Algorithm::HS256);
        // The expiry is short on purpose; a minute of leeway would add 10 % to it.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<RoomClaims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenRefusal::Expired,
                _ => TokenRefusal::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_room_and_person_and_expires() {
        let settings = Settings::for_tests();
        let tokens = RoomTokens::new(&settings);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (token, claims) = tokens.issue("r1", "customer", "Carla", PersonKind::Customer, None, now);
        assert_eq!(tokens.verify(&token), Ok(claims.clone()));
        assert!(claims.exp - now <= 600);
        let (old, _) = tokens.issue("r1", "customer", "Carla", PersonKind::Customer, None, now - 601);
        assert_eq!(tokens.verify(&old), Err(TokenRefusal::Expired));
        let other = RoomTokens::new(&Settings::for_tests());
        assert_eq!(other.verify(&token), Err(TokenRefusal::Invalid), "another secret");
        assert_eq!(tokens.verify("garbage"), Err(TokenRefusal::Invalid));
    }
}
