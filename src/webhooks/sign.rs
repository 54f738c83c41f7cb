//! Signing a delivery: `Switchboard-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`
//! under the endpoint's secret, with the timestamp (Unix seconds) in
//! `Switchboard-Timestamp`. Signing the timestamp with the body lets a receiver refuse a
//! replayed delivery (one whose timestamp is old) without keeping every id.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "switchboard-timestamp";
pub const SIGNATURE_HEADER: &str = "switchboard-signature";
pub const EVENT_ID_HEADER: &str = "switchboard-event-id";
pub const EVENT_TYPE_HEADER: &str = "switchboard-event-type";

/// The signature header's value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A new endpoint secret: 32 random bytes, hex, after `whsec_`.
pub fn new_secret() -> String {
    format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // python3 -c "import hmac,hashlib;print(hmac.new(b'k',b'1.{}',hashlib.sha256).hexdigest())"
        assert_eq!(
            signature("k", 1, "{}"),
            "v1=3dd49b2593d0f9a349e9e71c4bde3e2b862c2be4003fe9b4ba81332029310158"
        );
    }
}
