//! The rules of API tokens, apart from storage and HTTP: what a token looks like (a
//! recognisable prefix and 256 random bits), which scopes exist and what each allows,
//! whether a stored token is still good at a given time, why one was refused and how
//! often such a refusal is logged.

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
    /// Act as the named bot: connect to `/ws/bot` as it, or answer over the API when it is
    /// a webhook bot (docs/protocol.md, "Bots").
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

/// Does a piece of a URL (a path, or a query's key or value) carry an API token?
/// Anything holding the prefix does, wherever it stands (`?sbt_…`, `?x=Bearer%20sbt_…`,
/// `/api/me;access_token=sbt_…`), however its letters are cased (`SBT_…`: the random part
/// after it is the secret all the same) and however often it was percent-encoded
/// (`%73bt_…`, `%2573bt_…`): a URL lands in logs, proxies and browser histories, so the
/// rare text that merely contains the prefix is refused with the rest. A piece still
/// percent-encoded after [`DECODINGS`] rounds counts as carrying one: no client encodes a
/// URL so, and looking further would cost a round per `%25`.
pub fn carried_in_url(piece: &str) -> bool {
    let mut piece = std::borrow::Cow::Borrowed(piece);
    for _ in 0..=DECODINGS {
        if holds_prefix(&piece) {
            return true;
        }
        let decoded = percent_encoding::percent_decode_str(&piece)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == piece {
            return false;
        }
        piece = std::borrow::Cow::Owned(decoded);
    }
    true
}

/// Rounds of percent-decoding [`carried_in_url`] looks through.
pub const DECODINGS: usize = 4;

fn holds_prefix(text: &str) -> bool {
    text.as_bytes()
        .windows(PREFIX.len())
        .any(|w| w.eq_ignore_ascii_case(PREFIX.as_bytes()))
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

/// Why a token was refused, as the hub's log names it (and the answer's message says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refused {
    /// A bot route called with no API token at all.
    Missing,
    /// Not shaped like a token ([`well_formed`]).
    Malformed,
    /// Shaped like one, but no token of this desk.
    Unknown,
    Revoked,
    Expired,
    /// A live token without the scope the route needs.
    MissingScope,
    /// A `bot` token that names no bot.
    NoBot,
    /// A token in the URL's query.
    InQuery,
    /// Over the token's rate.
    RateLimited,
}

impl Refused {
    pub fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::MissingScope => "missing_scope",
            Self::NoBot => "no_bot",
            Self::InQuery => "in_query",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// Refusals of one reason logged at most this many times a [`LOG_WINDOW_MS`]: a flood of
/// bad tokens cannot fill the log, and each window still shows what is going on.
pub const LOG_LINES_PER_WINDOW: u32 = 10;
pub const LOG_WINDOW_MS: i64 = 60_000;

/// The log's budget for one reason of refusal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogBudget {
    window_start: i64,
    logged: u32,
    /// Refusals not logged since the last line.
    unlogged: u64,
}

impl LogBudget {
    /// May a refusal at `now` be logged? `Some(n)`: yes, and `n` refusals of this reason
    /// went unlogged before it (the line says so); `None`: not this one (it is counted).
    pub fn admit(&mut self, now: i64) -> Option<u64> {
        if now - self.window_start >= LOG_WINDOW_MS || now < self.window_start {
            self.window_start = now;
            self.logged = 0;
        }
        if self.logged >= LOG_LINES_PER_WINDOW {
            self.unlogged += 1;
            return None;
        }
        self.logged += 1;
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// A token anywhere in a URL piece, whatever stands around it, is found.
        #[test]
        fn a_token_anywhere_in_a_url_piece_is_found(
            before in ".{0,12}",
            after in ".{0,12}",
            capitals in proptest::array::uniform3(any::<bool>()),
        ) {
            let prefix: String = PREFIX
                .chars()
                .zip(capitals.iter().chain(&[false]))
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                .collect();
            let token = format!("{prefix}{}", "A".repeat(SECRET_CHARS));
            let piece = format!("{before}{token}{after}");
            prop_assert!(carried_in_url(&piece));
        }
    }

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
    fn a_url_piece_without_the_prefix_carries_none() {
        assert!(!carried_in_url("/api/conversations/sbt"));
        assert!(!carried_in_url("s b t _"));
        assert!(!carried_in_url("/api/reports?from=2026-01-01%2000%3A00"));
        assert!(!carried_in_url("100%25 sure, %%"));
        assert!(!carried_in_url(""));
    }

    proptest! {
        /// However often a token's prefix was percent-encoded (up to the rounds looked
        /// through), it is found; deeper than that, the piece is refused all the same.
        #[test]
        fn a_token_percent_encoded_again_and_again_is_found(rounds in 1usize..8, before in "[a-z/]{0,8}") {
            let mut prefix = "%73".to_string();
            for _ in 1..rounds {
                prefix = prefix.replace('%', "%25");
            }
            let piece = format!("{before}{prefix}bt_{}", "A".repeat(SECRET_CHARS));
            prop_assert!(carried_in_url(&piece));
        }
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

    #[test]
    fn a_flood_of_refusals_logs_ten_lines_a_minute_and_the_next_line_counts_the_rest() {
        let mut budget = LogBudget::default();
        let start = 1_000_000;
        let admitted: Vec<_> = (0..25).map(|i| budget.admit(start + i)).collect();
        assert_eq!(admitted.iter().filter(|a| a.is_some()).count(), 10);
        assert!(admitted[..10].iter().all(|a| *a == Some(0)));
        assert_eq!(
            budget.admit(start + LOG_WINDOW_MS),
            Some(15),
            "the first line of the next minute"
        );
        assert_eq!(budget.admit(start + LOG_WINDOW_MS + 1), Some(0));
    }

    proptest! {
        /// However refusals come, no minute holds more than twenty lines (ten in each of
        /// the two windows it may straddle), and every refusal is either logged or counted
        /// in a later line (or still waiting for one).
        #[test]
        fn refusal_lines_are_bounded_and_none_goes_uncounted(gaps in proptest::collection::vec(0i64..20_000, 1..300)) {
            let mut budget = LogBudget::default();
            let (mut now, mut lines, mut told) = (0i64, Vec::new(), 0u64);
            for gap in &gaps {
                now += gap;
                if let Some(unlogged) = budget.admit(now) {
                    lines.push(now);
                    told += 1 + unlogged;
                }
            }
            prop_assert_eq!(told + budget.unlogged, gaps.len() as u64);
            for (i, at) in lines.iter().enumerate() {
                let in_window = lines[i..].iter().take_while(|t| **t < at + LOG_WINDOW_MS).count();
                prop_assert!(in_window <= 2 * LOG_LINES_PER_WINDOW as usize);
            }
        }
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
