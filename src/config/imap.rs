//! The inbound mail settings: the mailbox the desk's customers write back to, read over
//! IMAP (`IMAP_*`). Off while `IMAP_URL` is unset.

use std::time::Duration;

use super::{ConfigError, Reader, Secret};

/// Where and how the hub reads mail customers send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapSettings {
    /// `IMAP_URL`: `imap://host:port` (plain, default port 143) or `imaps://host:port`
    /// (TLS, default port 993).
    pub server: ImapServer,
    /// `IMAP_USER` and `IMAP_PASSWORD` (the password is never printed).
    pub user: String,
    pub password: Secret,
    /// `IMAP_MAILBOX`: the folder polled (default `INBOX`).
    pub mailbox: String,
    /// `IMAP_POLL_SECS`: the pause between two looks at the mailbox (default 30); where the
    /// server offers `IDLE`, the longest wait in it before looking anyway.
    pub poll: Duration,
    /// `IMAP_CATEGORY`: the category of a conversation started by a mail that answers none
    /// (default `general`).
    pub default_category: String,
    /// `IMAP_ROUTES`: `address=category` pairs, comma-separated: a new conversation from a
    /// mail to that address goes to that category.
    pub routes: Vec<(String, String)>,
    /// `IMAP_MAX_MB`: larger mails are recorded and dropped, never downloaded (default 10).
    pub max_bytes: usize,
    /// `IMAP_SENDER_MAX_PER_HOUR`: the mails one address may turn into lines or new
    /// conversations an hour (default 20, 1 to 10,000); past it they stay in the mailbox.
    pub sender_max_per_hour: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapServer {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl ImapSettings {
    /// `None` while `IMAP_URL` is unset; every other `IMAP_*` is then ignored.
    pub(super) fn read(r: &Reader<'_>) -> Result<Option<Self>, ConfigError> {
        let Some(url) = r.optional("IMAP_URL") else {
            return Ok(None);
        };
        let server = server(&url).map_err(|why| Reader::error("IMAP_URL", &url, why))?;
        let user = r
            .optional("IMAP_USER")
            .ok_or_else(|| Reader::error("IMAP_USER", "", "IMAP_URL needs the mailbox's user name"))?;
        let password = r
            .optional("IMAP_PASSWORD")
            .map(|p| Secret(p.into_bytes()))
            .ok_or_else(|| Reader::error("IMAP_PASSWORD", "", "IMAP_URL needs the mailbox's password"))?;
        let mailbox = r.text("IMAP_MAILBOX", "INBOX");
        if mailbox.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
            return Err(Reader::error(
                "IMAP_MAILBOX",
                &mailbox,
                "must be a folder name without quotes, backslashes or control characters",
            ));
        }
        let poll = r.positive_seconds("IMAP_POLL_SECS", 30.0)?;
        let default_category = r.text("IMAP_CATEGORY", "general");
        let routes = r.list("IMAP_ROUTES", "", route)?;
        let max_bytes = r.ranged::<usize>("IMAP_MAX_MB", 10, 1..=100)? << 20;
        let sender_max_per_hour = r.ranged("IMAP_SENDER_MAX_PER_HOUR", 20, 1..=10_000)?;
        Ok(Some(Self {
            server,
            user,
            password,
            mailbox,
            poll,
            default_category,
            routes,
            max_bytes,
            sender_max_per_hour,
        }))
    }
}

/// `imap://host[:port]` or `imaps://host[:port]`, nothing after.
fn server(url: &str) -> Result<ImapServer, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("imaps://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("imap://") {
        (false, rest)
    } else {
        return Err("must be imap://host:port or imaps://host:port".into());
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '@', '?', '#', ' ']) {
        return Err(
            "must be imap://host:port or imaps://host:port (credentials go in IMAP_USER and IMAP_PASSWORD)".into(),
        );
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or("the port must be 1 to 65535")?;
            (host, port)
        }
        _ => (rest, if tls { 993 } else { 143 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("names no host".into());
    }
    Ok(ImapServer {
        tls,
        host: host.to_string(),
        port,
    })
}

/// One `address=category` of `IMAP_ROUTES` (a comma-separated list of them).
fn route(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((address, category)) if address.trim().contains('@') && !category.trim().is_empty() => {
            Ok((address.trim().to_string(), category.trim().to_string()))
        }
        _ => Err(format!("{pair:?} is not address=category")),
    }
}
