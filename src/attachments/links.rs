//! Links to a file that work until they expire: `?exp=<unix seconds>&sig=<hex>`, the
//! signature an HMAC-SHA256 of the attachment id, the variant (file or thumbnail) and
//! `exp` under a key of the server's.
//!
//! Why links rather than a session check on each fetch: an `<img>` or a download sends
//! no `Authorization` header, and a customer has no cookie. Only the conversation's
//! customer and staff are given links (`http::attachments`); a link passed on works for
//! its few minutes only, and one for another file or a later time is refused.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Which of a file's bytes a link serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    File,
    Thumbnail,
}

impl Variant {
    fn tag(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Thumbnail => "thumbnail",
        }
    }
}

/// How long a link works.
pub const TTL_SECS: i64 = 15 * 60;

fn mac(key: &[u8], id: &str, variant: Variant, exp: i64) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(format!("{id}\n{}\n{exp}", variant.tag()).as_bytes());
    mac
}

/// The signature of a link to `id`'s `variant` that works until `exp` (Unix seconds).
pub fn sign(key: &[u8], id: &str, variant: Variant, exp: i64) -> String {
    hex::encode(mac(key, id, variant, exp).finalize().into_bytes())
}

/// Does `sig` sign this link, and is it still before `exp` at `now` (Unix seconds)?
/// Compared in constant time.
pub fn valid(key: &[u8], id: &str, variant: Variant, exp: i64, sig: &str, now: i64) -> bool {
    if now > exp {
        return false;
    }
    let Ok(given) = hex::decode(sig) else {
        return false;
    };
    mac(key, id, variant, exp).verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_works_for_its_file_until_it_expires() {
        let key = b"0123456789abcdef0123456789abcdef";
        let sig = sign(key, "a1", Variant::File, 1_000);
        assert!(valid(key, "a1", Variant::File, 1_000, &sig, 999));
        assert!(valid(key, "a1", Variant::File, 1_000, &sig, 1_000));
        assert!(!valid(key, "a1", Variant::File, 1_000, &sig, 1_001), "expired");
        assert!(!valid(key, "a2", Variant::File, 1_000, &sig, 999), "another file");
        assert!(
            !valid(key, "a1", Variant::Thumbnail, 1_000, &sig, 999),
            "another variant"
        );
        assert!(!valid(key, "a1", Variant::File, 2_000, &sig, 999), "a later expiry");
        assert!(
            !valid(b"another key", "a1", Variant::File, 1_000, &sig, 999),
            "another server"
        );
        assert!(!valid(key, "a1", Variant::File, 1_000, "zz", 999), "not hex");
    }
}
