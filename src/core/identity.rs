//! A returning customer's verified identity: the embedding site, which knows its signed-in
//! user, passes their `identifier` with `identifier_hash`, the hex HMAC-SHA256 of the
//! identifier under the desk's identity secret (which only the site's server and the hub
//! know). A valid hash makes the identifier an owner of that customer's conversations on
//! any browser; anything else (no secret set, no hash, a forged or stale one, an identifier
//! of the wrong shape) is no identity at all, and the caller goes on without it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The longest identifier, in characters.
pub const MAX_IDENTIFIER: usize = 200;

/// An identifier as sites send them (a user id, an email, a UUID): 1 to
/// [`MAX_IDENTIFIER`] characters, none of them a control character. Kept exactly as given
/// (the site signs exactly what it sends, so nothing is trimmed or folded).
pub fn valid_identifier(raw: &str) -> bool {
    let count = raw.chars().count();
    (1..=MAX_IDENTIFIER).contains(&count) && !raw.chars().any(char::is_control)
}

fn mac(secret: &str, identifier: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(identifier.as_bytes());
    mac
}

/// The hash a site sends with `identifier`: hex (lower case) HMAC-SHA256 under `secret`
/// (the secret's text, as the admin page shows it, is the key).
pub fn sign(secret: &str, identifier: &str) -> String {
    hex::encode(mac(secret, identifier).finalize().into_bytes())
}

/// The identifier, when `hash` is its valid hash under `secret` (compared in constant
/// time; hex in either case). `None` for everything else, alike.
pub fn verified(secret: Option<&str>, identifier: Option<&str>, hash: Option<&str>) -> Option<String> {
    let (secret, identifier, hash) = (secret?, identifier?, hash?);
    if !valid_identifier(identifier) {
        return None;
    }
    let given = hex::decode(hash.trim()).ok()?;
    mac(secret, identifier)
        .verify_slice(&given)
        .ok()
        .map(|()| identifier.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

    #[test]
    fn a_known_answer() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_the_right_hash_under_the_right_secret_verifies() {
        let hash = sign(SECRET, "user-42");
        assert_eq!(
            verified(Some(SECRET), Some("user-42"), Some(&hash)).as_deref(),
            Some("user-42")
        );
        assert_eq!(
            verified(Some(SECRET), Some("user-42"), Some(&hash.to_uppercase())).as_deref(),
            Some("user-42")
        );
        // Another identifier, another secret (a rotated one), a forged hash, none at all.
        assert_eq!(verified(Some(SECRET), Some("user-43"), Some(&hash)), None);
        assert_eq!(verified(Some("another secret"), Some("user-42"), Some(&hash)), None);
        assert_eq!(verified(Some(SECRET), Some("user-42"), Some(&"0".repeat(64))), None);
        assert_eq!(verified(Some(SECRET), Some("user-42"), Some(&hash[..62])), None);
        assert_eq!(verified(Some(SECRET), Some("user-42"), Some("not hex")), None);
        assert_eq!(verified(Some(SECRET), Some("user-42"), None), None);
        assert_eq!(verified(None, Some("user-42"), Some(&hash)), None);
        assert_eq!(verified(Some(SECRET), None, Some(&hash)), None);
    }

    #[test]
    fn identifiers_have_a_shape() {
        assert!(valid_identifier("carla@example.com"));
        assert!(valid_identifier("Zoë 7"));
        assert!(valid_identifier(&"é".repeat(MAX_IDENTIFIER)));
        assert!(!valid_identifier(""));
        assert!(!valid_identifier(&"a".repeat(MAX_IDENTIFIER + 1)));
        assert!(!valid_identifier("user\n42"));
        assert!(!valid_identifier("user\u{0}42"));
        // A well-signed identifier of the wrong shape is still no identity.
        let bad = "user\t42";
        assert_eq!(verified(Some(SECRET), Some(bad), Some(&sign(SECRET, bad))), None);
    }

    proptest! {
        #[test]
        fn a_signed_identifier_verifies_and_a_changed_hash_does_not(id in "[^\\p{Cc}]{1,200}", flip in 0usize..64) {
            let hash = sign(SECRET, &id);
            prop_assert_eq!(verified(Some(SECRET), Some(&id), Some(&hash)), Some(id.clone()));
            let mut forged: Vec<char> = hash.chars().collect();
            forged[flip] = if forged[flip] == '0' { '1' } else { '0' };
            let forged: String = forged.into_iter().collect();
            prop_assert_eq!(verified(Some(SECRET), Some(&id), Some(&forged)), None);
        }
    }
}
