//! Accounts' passwords and sessions.
//!
//! Passwords are hashed with argon2 (the PHC string format, salted per
//! password) on a blocking thread, since a hash deliberately costs tens of
//! milliseconds. A session is an opaque random token mapped to an account id
//! in memory; browsers carry it in an HttpOnly cookie, other clients as a
//! bearer token. Sessions do not survive a restart: agents sign in again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;

/// The cookie that carries a browser's session.
pub const SESSION_COOKIE: &str = "sb_session";

/// Hashes a password into a PHC string.
pub async fn hash_password(password: String) -> String {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .expect("argon2 with default parameters hashes any input")
            .to_string()
    })
    .await
    .expect("hashing does not panic")
}

/// Checks a password against a stored PHC string; a malformed hash never matches.
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// 256 random bits from the OS generator, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Live sessions: token → (account id, expiry). Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    ttl: Duration,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Self {
            inner: Arc::default(),
            ttl,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (String, Instant)>) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Opens a session for an account and returns its token.
    pub fn open(&self, account_id: &str) -> String {
        let token = random_token();
        let expires = Instant::now() + self.ttl;
        self.with(|s| {
            // Sweep expired sessions now and then, so abandoned ones do not pile up.
            if s.len() % 64 == 0 {
                let now = Instant::now();
                s.retain(|_, (_, exp)| *exp > now);
            }
            s.insert(token.clone(), (account_id.to_string(), expires));
        });
        token
    }

    /// The account id of a live session.
    pub fn account_of(&self, token: &str) -> Option<String> {
        self.with(|s| match s.get(token) {
            Some((id, exp)) if *exp > Instant::now() => Some(id.clone()),
            Some(_) => {
                s.remove(token);
                None
            }
            None => None,
        })
    }

    pub fn close(&self, token: &str) {
        self.with(|s| s.remove(token));
    }

    /// Ends every session of an account (disabled, or password changed).
    pub fn close_all_of(&self, account_id: &str) {
        self.with(|s| s.retain(|_, (id, _)| id != account_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse".into()).await;
        assert!(hash.starts_with("$argon2"));
        assert!(verify_password("correct horse".into(), hash.clone()).await);
        assert!(!verify_password("wrong".into(), hash).await);
        assert!(!verify_password("x".into(), "not a hash".into()).await);
    }

    #[test]
    fn sessions_open_resolve_and_close() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let token = sessions.open("a1");
        assert_eq!(sessions.account_of(&token).as_deref(), Some("a1"));
        sessions.close_all_of("a1");
        assert_eq!(sessions.account_of(&token), None);
    }
}
