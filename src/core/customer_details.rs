//! The rules for what a customer may tell about themselves (an email address, the
//! browser's returning-visitor key, the page they came from, their time zone): each is
//! optional, blank means not given, and anything else must be well formed or it is
//! refused with a code naming the field. Shared by the websocket join, the offline form,
//! bookings and the transcript request, so an address accepted in one is accepted in all.

/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;
/// A returning-visitor key: 16 to 64 of `A-Z a-z 0-9 _ -` (a UUID or a random token).
pub const VISITOR_MIN: usize = 16;
pub const VISITOR_MAX: usize = 64;
/// Longest page address kept.
pub const MAX_PAGE: usize = 2000;

/// Why a detail was refused: the error code, and a sentence for the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

fn given(raw: Option<&str>) -> Option<&str> {
    raw.map(str::trim).filter(|s| !s.is_empty())
}

/// An email address as people type them (trimmed; a dot in the domain), or `invalid_email`.
pub fn email(raw: &str) -> Result<String, Invalid> {
    let email = raw.trim();
    (email.len() <= MAX_EMAIL)
        .then(|| email.parse::<lettre::Address>().ok())
        .flatten()
        .filter(|a| a.domain().contains('.'))
        .map(|a| a.to_string())
        .ok_or_else(|| Invalid {
            code: "invalid_email",
            message: "an email address like name@example.com is needed".into(),
        })
}

/// [`email`], where blank or absent means none given.
pub fn optional_email(raw: Option<&str>) -> Result<Option<String>, Invalid> {
    given(raw).map(email).transpose()
}

/// A returning-visitor key, or `invalid_visitor`.
pub fn visitor(raw: Option<&str>) -> Result<Option<String>, Invalid> {
    let Some(key) = given(raw) else { return Ok(None) };
    let ok = (VISITOR_MIN..=VISITOR_MAX).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| Some(key.to_string())).ok_or_else(|| Invalid {
        code: "invalid_visitor",
        message: format!("a visitor key is {VISITOR_MIN} to {VISITOR_MAX} letters, digits, '_' or '-'"),
    })
}

/// The page a customer came from: an absolute http(s) URL of at most [`MAX_PAGE`]
/// characters (normalised by the URL parser), or `invalid_page`.
pub fn page(raw: Option<&str>) -> Result<Option<String>, Invalid> {
    let Some(raw) = given(raw) else { return Ok(None) };
    let invalid = || Invalid {
        code: "invalid_page",
        message: format!("a page is an http or https address of at most {MAX_PAGE} characters"),
    };
    let url = url::Url::parse(raw).map_err(|_| invalid())?;
    let web = matches!(url.scheme(), "http" | "https") && url.host().is_some();
    let kept = url.to_string();
    (web && kept.len() <= MAX_PAGE)
        .then_some(Some(kept))
        .ok_or_else(invalid)
}

/// An IANA time zone name of the bundled database (`Europe/Berlin`), or `unknown_zone`.
pub fn zone(raw: Option<&str>) -> Result<Option<String>, Invalid> {
    let Some(raw) = given(raw) else { return Ok(None) };
    jiff::tz::TimeZone::get(raw)
        .ok()
        .and_then(|z| z.iana_name().map(str::to_string))
        .map(Some)
        .ok_or_else(|| Invalid {
            code: "unknown_zone",
            message: format!("{raw:?} is not an IANA time zone such as Europe/Berlin"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of the checks: a field as given, what is kept of it.
    type Check = fn(Option<&str>) -> Result<Option<String>, Invalid>;

    #[test]
    fn blank_is_not_given_and_bad_is_refused_by_name() {
        assert_eq!(optional_email(Some("  ")), Ok(None));
        assert_eq!(optional_email(None), Ok(None));
        let shop = "https://shop.example/cart?x=1";
        for (check, good, kept) in [
            (optional_email as Check, " Ann@Example.com ", "Ann@Example.com"),
            (visitor, "0123456789abcdef", "0123456789abcdef"),
            (page, shop, shop),
            (zone, "Europe/Berlin", "Europe/Berlin"),
        ] {
            assert_eq!(check(Some(good)).unwrap().as_deref(), Some(kept), "{good}");
        }
        let long_email = format!("{}@x.io", "a".repeat(260));
        let long_page = format!("https://x.io/{}", "a".repeat(2000));
        for (check, bad, code) in [
            (optional_email as Check, "ann@localhost", "invalid_email"),
            (optional_email, &long_email, "invalid_email"),
            (visitor, "short", "invalid_visitor"),
            (visitor, "0123456789abcdef<script>", "invalid_visitor"),
            (page, "javascript:alert(1)", "invalid_page"),
            (page, "/relative", "invalid_page"),
            (page, &long_page, "invalid_page"),
            (zone, "Mars/Olympus", "unknown_zone"),
        ] {
            assert_eq!(check(Some(bad)).unwrap_err().code, code, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn whatever_is_accepted_is_accepted_again_unchanged(raw in ".{0,80}") {
            for check in [visitor as Check, page, zone, optional_email] {
                if let Ok(Some(kept)) = check(Some(&raw)) {
                    proptest::prop_assert_eq!(check(Some(&kept)), Ok(Some(kept.clone())));
                }
            }
        }
    }
}
