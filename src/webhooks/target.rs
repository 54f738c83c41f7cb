//! Where a webhook may go: an http(s) URL whose host resolves only to public addresses
//! (`core::webhooks::is_public`) unless the others are allowed (`private_addresses`). The
//! addresses are checked after resolving, at registration and again at each delivery,
//! and the request goes to the very address checked (a name that resolves differently
//! the second time cannot slip a private address in); redirects are not followed.

use std::net::{IpAddr, SocketAddr};

use url::Url;

use crate::core::webhooks::is_public;

/// Why a URL is refused; the text says it to the admin (and in the delivery log), in
/// their words: what to write instead, not the URL parser's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not an absolute http or https URL with a host: what is wrong with it.
    NotHttp(String),
    /// Its host does not resolve.
    Unresolved(String),
    /// Its host resolves to a loopback, link-local or private address.
    Private(String),
}

/// A whole address, as the refusals show one.
const EXAMPLE: &str = "https://crm.example.com/switchboard";

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotHttp(why) => f.write_str(why),
            Refused::Unresolved(why) => write!(f, "the address's host does not resolve: {why}"),
            Refused::Private(addr) => write!(
                f,
                "the address's host resolves to {addr}, a loopback, link-local or private address, which webhooks may reach only while private addresses are allowed"
            ),
        }
    }
}

/// `raw` parsed, when it is an http(s) URL with a host and no credentials.
pub fn parse(raw: &str) -> Result<Url, Refused> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(Refused::NotHttp(format!(
            "enter the address to send to, such as {EXAMPLE}"
        )));
    }
    let url = Url::parse(raw).map_err(|_| {
        Refused::NotHttp(format!(
            "this is not a whole web address: write it with http:// or https:// and a host, such as {EXAMPLE}"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::NotHttp(format!(
            "only http or https addresses can be sent to, not {}: write it such as {EXAMPLE}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Refused::NotHttp(format!(
            "the address names no host: write it such as {EXAMPLE}"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::NotHttp(
            "the address may not carry a user name or password (the receiver checks the signature instead)".into(),
        ));
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
        None => {
            return Err(Refused::NotHttp(format!(
                "the address names no host: write it such as {EXAMPLE}"
            )));
        }
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
            "",
            "  ",
        ] {
            assert!(matches!(parse(bad), Err(Refused::NotHttp(_))), "{bad}");
        }
    }

    /// What the admin reads says what to write, never the URL parser's own words.
    #[test]
    fn a_refused_address_is_told_in_the_admins_words() {
        let said = |raw: &str| parse(raw).unwrap_err().to_string();
        assert_eq!(
            said(""),
            "enter the address to send to, such as https://crm.example.com/switchboard"
        );
        for bad in ["not a url", "crm.example.com/hook", "http://"] {
            let text = said(bad);
            assert!(text.contains("https://crm.example.com/switchboard"), "{bad}: {text}");
            assert!(
                !text.contains("relative URL") && !text.contains("base"),
                "{bad}: {text}"
            );
        }
        assert_eq!(
            said("ftp://example.com/"),
            "only http or https addresses can be sent to, not ftp: write it such as https://crm.example.com/switchboard"
        );
        let private = Refused::Private("127.0.0.1".into()).to_string();
        assert!(
            !private.contains("admin page") && !private.contains("WEBHOOK_ALLOW_PRIVATE"),
            "{private}"
        );
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
