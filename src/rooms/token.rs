//! Room tokens: short-lived JWTs (HS256, `jsonwebtoken`) that let their holder open one
//! room's websocket as one person. Signed with `ROOM_TOKEN_SECRET` (random per start
//! when unset: every node of a cluster must share it), expiring after
//! `ROOM_TOKEN_TTL_SECS` (10 minutes at most), with no leeway.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::config::rooms::RoomSettings;

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

/// Who a room token lets in, and where: what [`RoomTokens::issue`] signs (with its
/// times). Named fields, because three of them are strings a caller could swap.
#[derive(Debug, Clone)]
pub struct Entrant<'a> {
    pub room: &'a str,
    /// As [`RoomClaims::sub`].
    pub person: &'a str,
    pub name: &'a str,
    pub kind: PersonKind,
    pub guest_id: Option<String>,
}

impl RoomClaims {
    /// Whom these claims were signed for: a token renewed for them names the same.
    pub fn entrant(&self) -> Entrant<'_> {
        Entrant {
            room: &self.room,
            person: &self.sub,
            name: &self.name,
            kind: self.kind,
            guest_id: self.guest_id.clone(),
        }
    }
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
    pub fn new(settings: &RoomSettings) -> Self {
        let secret = &settings.token_secret.0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_secs: settings.token_ttl.as_secs(),
        }
    }

    /// A token for `entrant`, valid from `now_secs` for the configured time.
    pub fn issue(&self, entrant: Entrant<'_>, now_secs: u64) -> (String, RoomClaims) {
        let claims = RoomClaims {
            room: entrant.room.to_string(),
            sub: entrant.person.to_string(),
            name: entrant.name.to_string(),
            kind: entrant.kind,
            guest_id: entrant.guest_id,
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
    use crate::config::Settings;

    fn carla() -> Entrant<'static> {
        Entrant {
            room: "r1",
            person: "customer",
            name: "Carla",
            kind: PersonKind::Customer,
            guest_id: None,
        }
    }

    #[test]
    fn a_token_names_its_room_and_person_and_expires() {
        let settings = Settings::for_tests();
        let tokens = RoomTokens::new(&settings.rooms);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (token, claims) = tokens.issue(carla(), now);
        assert_eq!(tokens.verify(&token), Ok(claims.clone()));
        assert!(claims.exp - now <= 600);
        let (old, _) = tokens.issue(carla(), now - 601);
        assert_eq!(tokens.verify(&old), Err(TokenRefusal::Expired));
        let other = RoomTokens::new(&Settings::for_tests().rooms);
        assert_eq!(other.verify(&token), Err(TokenRefusal::Invalid), "another secret");
        assert_eq!(tokens.verify("garbage"), Err(TokenRefusal::Invalid));
    }
}
