//! Who is calling: the client address (believing `X-Forwarded-For` only from
//! trusted proxies) and the agent whitelist built on it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::config::Settings;

/// The client's address as far as it can be believed.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Walks `X-Forwarded-For` from the nearest hop back while the hops are trusted
/// proxies; the first untrusted address is the client. From an untrusted peer
/// the header is ignored, so nobody can claim a whitelisted address.
pub fn client_ip(settings: &Settings, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if !settings.is_trusted_proxy(peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !settings.is_trusted_proxy(hop) {
            break;
        }
    }
    client
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::Internal("no peer address on the request".into()))?;
        Ok(ClientIp(client_ip(&state.settings, peer, &parts.headers)))
    }
}

/// Middleware for agent and admin routes: refuses callers outside `AGENT_WHITELIST`.
pub async fn require_whitelist(State(state): State<AppState>, ip: ClientIp, request: Request, next: Next) -> Response {
    if state.settings.is_whitelisted(ip.0) {
        next.run(request).await
    } else {
        tracing::info!(client = %ip.0, path = %request.uri().path(), "refused: not in AGENT_WHITELIST");
        ApiError::NotWhitelisted.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(trusted: &str) -> Settings {
        let trusted = trusted.to_string();
        Settings::from_lookup(move |k| (k == "TRUSTED_PROXIES").then(|| trusted.clone())).unwrap()
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let s = settings("");
        assert_eq!(
            client_ip(&s, "10.0.0.9".parse().unwrap(), &xff("127.0.0.1")),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarded_for_is_believed_through_trusted_proxies() {
        let s = settings("10.0.0.0/8");
        let ip = client_ip(&s, "10.0.0.9".parse().unwrap(), &xff("203.0.113.5, 10.0.0.2"));
        assert_eq!(ip, "203.0.113.5".parse::<IpAddr>().unwrap());
        // A client cannot hide behind a forged first entry: the nearest untrusted hop wins.
        let ip = client_ip(&s, "10.0.0.9".parse().unwrap(), &xff("127.0.0.1, 198.51.100.7"));
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        // Garbage in the header: fall back to the peer.
        let ip = client_ip(&s, "10.0.0.9".parse().unwrap(), &xff("nonsense"));
        assert_eq!(ip, "10.0.0.9".parse::<IpAddr>().unwrap());
    }
}
