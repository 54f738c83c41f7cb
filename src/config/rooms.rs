//! The rooms' settings: how long an invitation's code works, how many wrong guesses a
//! room takes, its tokens (`ROOM_*`), and the ICE servers handed to its browsers for
//! video (`STUN_URLS`, `TURN_*`).

use std::time::Duration;

use super::{ConfigError, Reader, Secret};

/// `ROOM_*` settings: how a room lets its members in.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// How long an access code works after its invitation (`ROOM_CODE_TTL_SECS`).
    pub code_ttl: Duration,
    /// Wrong codes or passwords from one address before a room refuses it (`ROOM_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// `ROOM_MAX_FAILED_JOINS`: wrong codes or passwords a room takes from all addresses
    /// together before it refuses everyone until the host's next invitation (a botnet
    /// cannot guess a 5-digit code from many addresses).
    pub max_failed_joins: u32,
    /// The HS256 key of room tokens, and of rating tokens (`ROOM_TOKEN_SECRET`); random
    /// per start when unset, which is right for one node only.
    pub token_secret: Secret,
    /// How long a room token lets its holder open the room's websocket (`ROOM_TOKEN_TTL_SECS`, at most 10 min).
    pub token_ttl: Duration,
}

impl RoomSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        let code_ttl = Duration::from_secs(r.ranged("ROOM_CODE_TTL_SECS", 86_400, 60..=30 * 86_400)?);
        let max_attempts = r.ranged("ROOM_MAX_ATTEMPTS", 5, 1..=1_000)?;
        let token_secret = r.secret("ROOM_TOKEN_SECRET")?.unwrap_or_else(|| {
            use rand::RngCore;
            let mut key = vec![0u8; 32];
            rand::rng().fill_bytes(&mut key);
            Secret(key)
        });
        let token_ttl = Duration::from_secs(r.ranged("ROOM_TOKEN_TTL_SECS", 600, 10..=600)?);
        let max_failed_joins = r.ranged("ROOM_MAX_FAILED_JOINS", 20, 1..=1_000)?;
        Ok(Self {
            code_ttl,
            max_attempts,
            max_failed_joins,
            token_secret,
            token_ttl,
        })
    }
}

/// The STUN and TURN servers a room's browsers are handed (`rooms::ice`).
#[derive(Debug, Clone)]
pub struct IceSettings {
    /// STUN servers handed to browsers (`STUN_URLS`).
    pub stun_urls: Vec<String>,
    /// TURN servers handed to browsers (`TURN_URLS`), with credentials when `TURN_SECRET` is set.
    pub turn_urls: Vec<String>,
    /// The shared secret of coturn's `use-auth-secret` (`TURN_SECRET`).
    pub turn_secret: Option<Secret>,
    /// How long handed-out TURN credentials work (`TURN_CREDENTIAL_TTL_SECS`).
    pub turn_credential_ttl: Duration,
}

impl IceSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            stun_urls: r.ice_urls("STUN_URLS", &["stun:", "stuns:"])?,
            turn_urls: r.ice_urls("TURN_URLS", &["turn:", "turns:"])?,
            turn_secret: r.secret("TURN_SECRET")?,
            turn_credential_ttl: Duration::from_secs(r.ranged("TURN_CREDENTIAL_TTL_SECS", 3_600, 60..=86_400)?),
        })
    }
}
