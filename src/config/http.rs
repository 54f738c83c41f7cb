//! The HTTP edge's settings: how long a connection and a request may take, how many
//! connections one address may hold, the listen backlog, the `/metrics` token and the
//! session cookie.

use std::time::Duration;

use super::{ConfigError, Reader};

/// `HTTP_*`, `MAX_CONNECTIONS_PER_ADDRESS`, `LISTEN_BACKLOG`, `METRICS_TOKEN` and
/// `COOKIE_SECURE`.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// How long a connection has to send a whole request head, from when it opens or
    /// its previous response ended (so also how long a kept-alive connection may idle).
    pub header_timeout: Duration,
    /// How long one HTTP request may take, body included (a websocket, once upgraded, is not bounded).
    pub request_timeout: Duration,
    /// Open TCP connections (HTTP and websocket) per client address; trusted proxies are exempt.
    pub max_connections_per_address: usize,
    /// `LISTEN_BACKLOG`: connections the kernel queues for the hub before it accepts them;
    /// the system's limit (`net.core.somaxconn` on Linux) caps it (`http::listening`).
    pub listen_backlog: u32,
    /// A bearer token that lets a caller outside `AGENT_WHITELIST` read `/metrics`.
    pub metrics_token: Option<String>,
    /// Always mark the session cookie `Secure`, even on requests not known to be https.
    pub cookie_secure: bool,
}

impl HttpSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        let http = Self {
            header_timeout: r.positive_seconds("HTTP_HEADER_TIMEOUT_SECS", 10.0)?,
            request_timeout: r.positive_seconds("HTTP_REQUEST_TIMEOUT_SECS", 30.0)?,
            max_connections_per_address: r.ranged("MAX_CONNECTIONS_PER_ADDRESS", 256, 1..=1_000_000)?,
            // 65,535: the largest backlog every Linux grants (older kernels keep it in 16 bits).
            listen_backlog: r.ranged("LISTEN_BACKLOG", 4_096, 1..=65_535)?,
            metrics_token: r.optional("METRICS_TOKEN"),
            cookie_secure: r.flag("COOKIE_SECURE", false)?,
        };
        if let Some(token) = &http.metrics_token
            && (token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ConfigError {
                var: "METRICS_TOKEN",
                value: "(hidden)".into(),
                reason: "must be at least 16 visible ASCII characters".into(),
            });
        }
        Ok(http)
    }
}
