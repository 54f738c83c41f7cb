//! The rules of API tokens, apart from storage and HTTP: what a token looks like (a
//! recognisable prefix and 256 random bits), which scopes exist and what each allows,
//! and whether a stored token is still good at a given time.

/// Every API token starts with this, so a leaked one is recognisable (secret scanners,
/// logs, a pasted snippet) and is never mistaken for a session token.
pub const PREFIX: &str = "sbt_";

/// The random part: 32 bytes, URL-safe base64 without padding.
const SECRET_CHARS: usize = 43;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read the archive, the conversations and the reports (safe requests only).
    Read,
    /// Act as a named bot (the bot itself is not built yet: only the name is kept).
    Bot,
    /// Administer: everything an admin's session may do.
    Admin,
}

/// Every scope, as the API names them.
pub const SCOPES: [&str; 3] = ["read", "bot", "admin"];

impl Scope {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "read" => Some(Self::Read),
            "bot" => Some(Self::Bot),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Bot => "bot",
            Self::Admin => "admin",
        }
    }
}

/// Does a token holding `held` (scope names as stored) satisfy `need`? `admin` holds `read`
/// too: an administering script reads what an admin reads.
pub fn allows(held: &[String], need: Scope) -> bool {
    held.iter()
        .filter_map(|s| Scope::parse(s))
        .any(|s| s == need || (s == Scope::Admin && need == Scope::Read))
}

/// Is `text` shaped like an API token (prefix and 43 URL-safe base64 characters)?
/// Checked before any look-up, so garbage costs no store read.
pub fn well_formed(text: &str) -> bool {
    text.strip_prefix(PREFIX).is_some_and(|secret| {
        secret.len() == SECRET_CHARS
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Why a stored token is refused at `now`, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    Revoked,
    Expired,
}

/// `None` when a token revoked at `revoked_at` and expiring at `expires_at` is good at `now`.
pub fn spent(revoked_at: Option<i64>, expires_at: Option<i64>, now: i64) -> Option<Spent> {
    if revoked_at.is_some() {
        Some(Spent::Revoked)
    } else if expires_at.is_some_and(|at| at <= now) {
        Some(Spent::Expired)
    } else {
        None
    }
}

/// How long a node waits at least between two writes of one token's last use: a busy
/// script does not write to the store on every request, and the list is exact to a minute.
pub const LAST_USE_EVERY_MS: i64 = 60_000;

/// Should a use at `now` be written, the last written being `written`?
pub fn last_use_due(written: Option<i64>, now: i64) -> bool {
    written.is_none_or(|w| now - w >= LAST_USE_EVERY_MS)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn held(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn admin_holds_read_but_not_bot() {
        assert!(allows(&held(&["admin"]), Scope::Read));
        assert!(allows(&held(&["admin"]), Scope::Admin));
        assert!(!allows(&held(&["admin"]), Scope::Bot));
        assert!(allows(&held(&["read"]), Scope::Read));
        assert!(!allows(&held(&["read"]), Scope::Admin));
        assert!(!allows(&held(&["bot", "nonsense"]), Scope::Read));
    }

    #[test]
    fn shapes() {
        let good = format!("{PREFIX}{}", "a".repeat(43));
        assert!(well_formed(&good));
        assert!(!well_formed(&good[1..]));
        assert!(!well_formed(&format!("{good}a")));
        assert!(!well_formed(&format!("{PREFIX}{}", "a+".repeat(21) + "a")));
        assert!(!well_formed(""));
    }

    #[test]
    fn spent_tokens() {
        assert_eq!(spent(None, None, 10), None);
        assert_eq!(spent(Some(5), None, 10), Some(Spent::Revoked));
        assert_eq!(spent(None, Some(10), 10), Some(Spent::Expired));
        assert_eq!(spent(None, Some(11), 10), None);
    }

    proptest! {
        /// Any token the hub makes (the prefix and 32 random bytes) is well formed.
        #[test]
        fn made_tokens_are_well_formed(bytes in proptest::array::uniform32(any::<u8>())) {
            use base64::Engine;
            let token = format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
            prop_assert!(well_formed(&token));
        }

        /// Last use is written at most once a minute, and always after a minute.
        #[test]
        fn last_use_at_most_once_a_minute(written in 0i64..1_000_000, later in 0i64..200_000) {
            prop_assert_eq!(last_use_due(Some(written), written + later), later >= LAST_USE_EVERY_MS);
        }
    }
}
