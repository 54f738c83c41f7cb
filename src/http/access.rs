//! Who is calling: the client address (believing `X-Forwarded-For` only from
//! trusted proxies) and the agent whitelist built on it.
//!
//! The rule, in [`believed_client`], is pure and property-tested: walking the
//! forwarded chain from the nearest hop back, the client is the first address
//! that is not a trusted proxy. Entries left of that were written by the client
//! and are never read. An entry that cannot be parsed is where trust stops: the
//! client is then [`ClientIp::UNPARSABLE`], an address nobody can whitelist — never
//! the proxy that forwarded it. Only `X-Forwarded-For` is read; the RFC 7239
//! `Forwarded` header is ignored, so a client cannot pick whichever of two headers
//! the proxy forgot to overwrite.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::config::Settings;

/// The client's address as far as it can be believed; `None` when the forwarded
/// chain held an unparsable entry before any untrusted address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// A client hidden behind an unparsable forwarded entry.
    pub const UNPARSABLE: ClientIp = ClientIp(None);

    /// Is the client in `AGENT_WHITELIST`? An unparsable client never is.
    pub fn is_whitelisted(&self, settings: &Settings) -> bool {
        self.0.is_some_and(|ip| settings.access.is_whitelisted(ip))
    }

    /// The address to count the client under (rate limits, throttles): unknown
    /// clients share one key, the unspecified address `::`, which no peer can have.
    /// Never for whitelisting: use [`ClientIp::is_whitelisted`].
    pub fn key(&self) -> IpAddr {
        self.0.unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("(unparsable X-Forwarded-For entry)"),
        }
    }
}

/// The key a client address is counted under, by the sign-in throttle and the
/// per-address connection cap alike: an IPv4 address as it is (an IPv4-mapped IPv6
/// one as IPv4); an IPv6 address by its /64, since one host or home usually holds a
/// whole /64 and could otherwise rotate through it to escape any per-address limit.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// One `X-Forwarded-For` entry: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
pub fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|v6| v6.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// The rule: `chain` is the forwarded entries in header order (the client's claim
/// first, the nearest proxy's view last), `peer` the TCP peer. Walking back from the
/// peer while the addresses are trusted proxies, the first untrusted address is the
/// client; if every hop is trusted, the farthest one is. An unparsable entry met on
/// the way is an unknown, untrusted client (`None`).
pub fn believed_client(peer: IpAddr, chain: &[&str], is_trusted: impl Fn(IpAddr) -> bool) -> Option<IpAddr> {
    let mut client = peer;
    for entry in chain.iter().rev() {
        if !is_trusted(client) {
            break;
        }
        client = parse_forwarded_entry(entry)?;
    }
    Some(client)
}

/// The client of a request arriving from `peer` with `headers`.
pub fn client_ip(settings: &Settings, peer: IpAddr, headers: &HeaderMap) -> ClientIp {
    if !settings.access.is_trusted_proxy(peer) {
        // Nobody else's header is read, so nobody can claim a whitelisted address.
        return ClientIp(Some(peer));
    }
    // A header value that is not visible ASCII is one unparsable entry.
    let chain: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().map_or_else(|_| vec!["\u{fffd}"], |v| v.split(',').collect()))
        .collect();
    ClientIp(believed_client(peer, &chain, |ip| settings.access.is_trusted_proxy(ip)))
}

/// The TCP peer's address, which the listener attaches to every request.
fn peer_ip(parts: &Parts) -> Result<IpAddr, ApiError> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .ok_or_else(|| ApiError::Internal("no peer address on the request".into()))
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = peer_ip(parts)?;
        Ok(client_ip(&state.settings, peer, &parts.headers))
    }
}

/// Did the request reach the hub's edge over https? Only a trusted proxy can say so,
/// with `X-Forwarded-Proto` (its last value: the one the nearest proxy wrote); the
/// hub itself speaks plain HTTP. `Forwarded: proto=` is ignored, as `Forwarded` is.
pub fn request_is_https(settings: &Settings, peer: IpAddr, headers: &HeaderMap) -> bool {
    settings.access.is_trusted_proxy(peer)
        && headers
            .get_all("x-forwarded-proto")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// Whether the request came over https (see [`request_is_https`]).
#[derive(Debug, Clone, Copy)]
pub struct OverHttps(pub bool);

impl FromRequestParts<AppState> for OverHttps {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = peer_ip(parts)?;
        Ok(OverHttps(request_is_https(&state.settings, peer, &parts.headers)))
    }
}

/// Middleware for agent and admin routes: refuses callers outside `AGENT_WHITELIST`.
pub async fn require_whitelist(State(state): State<AppState>, ip: ClientIp, request: Request, next: Next) -> Response {
    if ip.is_whitelisted(&state.settings) {
        next.run(request).await
    } else {
        tracing::info!(client = %ip, path = %request.uri().path(), "refused: not in AGENT_WHITELIST");
        ApiError::NotWhitelisted.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings(trusted: &str) -> Settings {
        let trusted = trusted.to_string();
        Settings::from_lookup(move |k| (k == "TRUSTED_PROXIES").then(|| trusted.clone())).unwrap()
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    fn ip(s: &str) -> ClientIp {
        ClientIp(Some(s.parse().unwrap()))
    }

    #[test]
    fn addresses_are_keyed_by_host_or_v6_slash_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(address_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("2001:db8:1:2:bbbb::9")), ip("2001:db8:1:2::"));
        assert_ne!(address_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("::1")), ip("::"), "loopback shares the /64 of ::");
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let s = settings("");
        assert_eq!(
            client_ip(&s, "10.0.0.9".parse().unwrap(), &xff("127.0.0.1")),
            ip("10.0.0.9")
        );
    }

    #[test]
    fn forwarded_for_is_believed_through_trusted_proxies() {
        let s = settings("10.0.0.0/8");
        let peer = "10.0.0.9".parse().unwrap();
        assert_eq!(client_ip(&s, peer, &xff("203.0.113.5, 10.0.0.2")), ip("203.0.113.5"));
        // A client cannot hide behind a forged first entry: the nearest untrusted hop wins.
        assert_eq!(client_ip(&s, peer, &xff("127.0.0.1, 198.51.100.7")), ip("198.51.100.7"));
        // No header: the proxy itself is the client.
        assert_eq!(client_ip(&s, peer, &HeaderMap::new()), ip("10.0.0.9"));
    }

    /// The bypass this guards against: garbage left of the real client used to make the whole
    /// chain fall back to the (whitelisted) proxy.
    #[test]
    fn garbage_left_of_the_client_is_never_read() {
        let s = settings("127.0.0.3/32");
        let peer = "127.0.0.3".parse().unwrap();
        for header in [
            "x, 203.0.113.5",
            "203.0.113.5:4711",
            ", 203.0.113.5",
            "127.0.0.1, 203.0.113.5",
        ] {
            assert_eq!(client_ip(&s, peer, &xff(header)), ip("203.0.113.5"), "{header}");
        }
        assert_eq!(client_ip(&s, peer, &xff("[2001:db8::7]:443")), ip("2001:db8::7"));
        assert_eq!(client_ip(&s, peer, &xff("[2001:db8::7]")), ip("2001:db8::7"));
    }

    #[test]
    fn an_unparsable_nearest_entry_is_an_unknown_client_not_the_proxy() {
        let s = settings("127.0.0.3/32");
        let peer = "127.0.0.3".parse().unwrap();
        for header in ["nonsense", "127.0.0.1, unknown", "127.0.0.1,", "127.0.0.1:99999"] {
            let client = client_ip(&s, peer, &xff(header));
            assert_eq!(client, ClientIp::UNPARSABLE, "{header}");
            assert!(!client.is_whitelisted(&s), "{header}");
            assert_eq!(
                client.key(),
                "::".parse::<IpAddr>().unwrap(),
                "unknown clients share one key"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"127.0.0.1\xff").unwrap(),
        );
        assert_eq!(client_ip(&s, peer, &h), ClientIp::UNPARSABLE);
    }

    #[test]
    fn https_is_believed_from_trusted_proxies_only() {
        let s = settings("10.0.0.0/8");
        let proto = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-proto", v.parse().unwrap());
            h
        };
        let proxy = "10.0.0.9".parse().unwrap();
        assert!(request_is_https(&s, proxy, &proto("https")));
        assert!(request_is_https(&s, proxy, &proto("http, HTTPS")));
        assert!(!request_is_https(&s, proxy, &proto("https, http")));
        assert!(!request_is_https(&s, proxy, &HeaderMap::new()));
        assert!(!request_is_https(&s, "203.0.113.5".parse().unwrap(), &proto("https")));
    }

    #[test]
    fn several_header_lines_are_one_chain() {
        let s = settings("10.0.0.0/8");
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "198.51.100.1".parse().unwrap());
        h.append("x-forwarded-for", "203.0.113.5, 10.0.0.2".parse().unwrap());
        assert_eq!(client_ip(&s, "10.0.0.9".parse().unwrap(), &h), ip("203.0.113.5"));
    }

    /// Addresses drawn from a small space so trusted and untrusted ones mix.
    fn address() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            (0u8..4).prop_map(|d| IpAddr::from([10, 0, 0, d])),
            (0u8..4).prop_map(|d| IpAddr::from([203, 0, 113, d])),
            (0u16..4).prop_map(|d| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, d])),
        ]
    }

    /// An entry as a client or proxy might write it, with what it means.
    fn entry() -> impl Strategy<Value = (String, Option<IpAddr>)> {
        prop_oneof![
            4 => (address(), any::<u16>(), 0u8..3).prop_map(|(ip, port, form)| {
                let text = match (form, ip) {
                    (0, _) => ip.to_string(),
                    (_, IpAddr::V4(v4)) => format!("{v4}:{port}"),
                    (1, IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
                    (_, IpAddr::V6(v6)) => format!("[{v6}]"),
                };
                (format!(" {text} "), Some(ip))
            }),
            1 => prop_oneof![
                Just(String::new()),
                Just("unknown".to_string()),
                Just("_hidden".to_string()),
                Just("10.0.0.1:notaport".to_string()),
                "[a-z:.\\[\\]]{1,12}".prop_filter("not an address", |s| parse_forwarded_entry(s).is_none()),
            ]
            .prop_map(|s| (s, None)),
        ]
    }

    fn is_trusted(ip: IpAddr) -> bool {
        matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        /// Entries parse to what they were written from, in every accepted form.
        #[test]
        fn entries_parse_in_every_form((text, meant) in entry()) {
            prop_assert_eq!(parse_forwarded_entry(&text), meant);
        }

        /// The client is the rightmost untrusted address; an unparsable entry reached
        /// before it makes the client unknown; nothing left of the client matters.
        #[test]
        fn the_client_is_the_rightmost_untrusted_hop(
            peer in address(),
            chain in proptest::collection::vec(entry(), 0..6),
            forged in proptest::collection::vec(entry(), 0..4),
        ) {
            let texts: Vec<&str> = chain.iter().map(|(t, _)| t.as_str()).collect();
            let got = believed_client(peer, &texts, is_trusted);
            // The model: the peer, then the chain from the right, until an untrusted or unparsable one.
            let mut expected = Some(peer);
            for (_, meant) in chain.iter().rev() {
                match expected {
                    Some(ip) if is_trusted(ip) => expected = *meant,
                    _ => break,
                }
            }
            prop_assert_eq!(got, expected);
            // Never a trusted proxy while an untrusted or unparsable entry was within reach.
            if let Some(client) = got && is_trusted(client) {
                prop_assert!(chain.iter().all(|(_, m)| m.is_some_and(is_trusted)));
            }
            // Whatever the client prepends changes nothing once an untrusted client was found.
            if got.is_some_and(|c| !is_trusted(c)) {
                let mut longer: Vec<&str> = forged.iter().map(|(t, _)| t.as_str()).collect();
                longer.extend(&texts);
                prop_assert_eq!(believed_client(peer, &longer, is_trusted), got);
            }
        }
    }
}
