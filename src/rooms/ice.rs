//! The ICE servers a room's browsers get: `STUN_URLS` as they are, `TURN_URLS` with
//! time-limited credentials when `TURN_SECRET` is set (the TURN REST scheme coturn
//! implements with `use-auth-secret`: username `<expiry>:<person>`, password
//! base64(HMAC-SHA1(secret, username))). Without any, browsers use host candidates
//! only, which works on one network.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha1::Sha1;

use crate::config::rooms::IceSettings;

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The TURN REST credentials for `person` valid until `expiry_secs` (seconds since the epoch).
pub fn turn_credentials(secret: &[u8], person: &str, expiry_secs: u64) -> (String, String) {
    // coturn splits the username at its first ':' (the expiry); keep the person free of them.
    let username = format!("{expiry_secs}:{}", person.replace(':', "-"));
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// The ICE servers for `person`, at `now_secs`.
pub fn ice_servers(settings: &IceSettings, person: &str, now_secs: u64) -> Vec<IceServer> {
    let mut servers = Vec::new();
    if !settings.stun_urls.is_empty() {
        servers.push(IceServer {
            urls: settings.stun_urls.clone(),
            username: None,
            credential: None,
        });
    }
    if !settings.turn_urls.is_empty() {
        let (username, credential) = match &settings.turn_secret {
            Some(secret) => {
                let (u, c) = turn_credentials(&secret.0, person, now_secs + settings.turn_credential_ttl.as_secs());
                (Some(u), Some(c))
            }
            None => (None, None),
        };
        servers.push(IceServer {
            urls: settings.turn_urls.clone(),
            username,
            credential,
        });
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against a value computed independently with
    /// `printf '1700000000:agent-a1' | openssl dgst -sha1 -hmac 'north-wind-secret' -binary | base64`.
    #[test]
    fn turn_credentials_follow_the_rest_scheme() {
        let (user, password) = turn_credentials(b"north-wind-secret", "agent:a1", 1_700_000_000);
        assert_eq!(user, "1700000000:agent-a1");
        assert_eq!(password, "2rTaNcDuUaanF9M8N7JhIeumOEM=");
    }
}
