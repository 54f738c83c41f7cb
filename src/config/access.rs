//! Who may reach the hub's staff side, whose forwarded addresses it believes, and which
//! web origins may open its websockets.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{ConfigError, Reader};

/// `AGENT_WHITELIST`, `TRUSTED_PROXIES` and `ALLOWED_ORIGINS`.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// Addresses allowed to reach agent and admin login, their API and the agent websocket.
    pub agent_whitelist: Vec<IpNet>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins allowed to open websockets besides the hub's own; `*` allows any.
    pub allowed_origins: Vec<String>,
}

impl AccessSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            agent_whitelist: r.nets("AGENT_WHITELIST", "127.0.0.0/8,::1/128")?,
            trusted_proxies: r.nets("TRUSTED_PROXIES", "")?,
            allowed_origins: r.origins("ALLOWED_ORIGINS")?,
        })
    }

    /// Is this peer address allowed to act as an agent or admin?
    pub fn is_whitelisted(&self, ip: IpAddr) -> bool {
        self.agent_whitelist.iter().any(|net| net.contains(&ip))
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}
