//! Where a webhook may go: an http(s) URL whose host resolves only to public addresses
//! (`core::webhooks::is_public`) unless the others are allowed (`private_addresses`). The
//! addresses are checked after resolving, at registration and again at each delivery,
//! and the request goes to the very address checked (a name that resolves differently
//! the second time cannot slip a private address in); redirects are not followed.

use std::net::{IpAddr, SocketAddr};

use url::Url;

use crate::core::webhooks::is_public;

/// Why a URL is refused; the text says it to the admin (and in the delivery log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not an absolute http or https URL with a host.
    NotHttp(String),
    /// Its host does not resolve.
    Unresolved(String),
    /// Its host resolves to a loopback, link-local or private address.
    Private(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotHttp(why) => write!(f, "the URL must be http or https with a host: {why}"),
            Refused::Unresolved(why) => write!(f, "the URL's host does not resolve: {why}"),
            Refused::Private(addr) => write!(
                f,
                "the URL's host resolves to {addr}, a loopback, link-local or private address, which webhooks may not reach (an admin may allow them on the admin page's Webhooks, unless the server's WEBHOOK_ALLOW_PRIVATE decides)"
            ),
        }
    }
}

/// `raw` parsed, when it is an http(s) URL with a host and no credentials.
pub fn parse(raw: &str) -> Result<Url, Refused> {
    let url = Url::parse(raw.trim()).map_err(|e| Refused::NotHttp(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::NotHttp(format!("scheme {}", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Refused::NotHttp("no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::NotHttp("credentials in the URL".into()));
    }
    Ok(url)
}

/// The address a request to `url` goes to, after checking every address its host
/// resolves to.
pub async fn resolve(url: &Url, allow_private: bool) -> Result<SocketAddr, Refused> {
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| Refused::Unresolved(e.to_string()))?
            .collect(),
        None => return Err(Refused::NotHttp("no host".into())),
    };
    if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(Refused::Private(bad.ip().to_string()));
    }
    addrs
        .first()
        .copied()
        .ok_or_else(|| Refused::Unresolved("no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host() {
        assert!(parse("https://example.com/hook").is_ok());
        assert!(parse("http://10.0.0.1:8080/x").is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "not a url",
            "https://u:p@example.com/",
        ] {
            assert!(matches!(parse(bad), Err(Refused::NotHttp(_))), "{bad}");
        }
    }

    #[tokio::test]
    async fn loopback_and_private_addresses_are_refused_unless_allowed() {
        for raw in [
            "http://127.0.0.1:9/",
            "http://[::1]/",
            "http://169.254.169.254/",
            "http://localhost/",
        ] {
            let url = parse(raw).unwrap();
            assert!(matches!(resolve(&url, false).await, Err(Refused::Private(_))), "{raw}");
            assert!(resolve(&url, true).await.is_ok(), "{raw}");
        }
    }
}
