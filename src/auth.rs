//! Accounts' passwords and sessions.
//!
//! Passwords are hashed with argon2 (the PHC string format, salted per
//! password) on threads of their own, one per core, since a hash deliberately
//! costs tens of milliseconds and 19 MiB. A session is an opaque random token;
//! browsers carry it in an HttpOnly cookie, other clients as a bearer token. The
//! store keeps each session under the SHA-256 of its token (never the token), so
//! sessions survive a restart and every node of a cluster knows them.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock, Mutex, mpsc};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;

use crate::store::{Millis, SharedStore, StoreError, StoreResult, StoredSession};

/// Counts every argon2 computation (hash or check) the hashing threads run, so a sign-in's
/// cost can be observed without timing it: an unknown user must cost what a wrong password does.
pub const PASSWORD_HASHES_METRIC: &str = "switchboard_password_hashes_total";

/// The cookie that carries a browser's session.
pub const SESSION_COOKIE: &str = "sb_session";

/// Hashes and checks waiting for a hashing thread at most. At tens of milliseconds a
/// hash on each core, the last of them waits a few seconds; more are refused with
/// "busy" (HTTP 503) rather than queued without end by a flood of sign-ins.
const HASH_QUEUE: usize = 256;

/// The threads that hash and check passwords, one per core, started on first use.
/// Each hash holds argon2's 19 MiB of working memory and a core for tens of
/// milliseconds, so more at once would be no faster. On tokio's blocking pool each
/// hash took whichever thread was free or a new one, each thread with its own
/// allocator arena, which kept the 19 MiB blocks it had used.
static HASHERS: LazyLock<mpsc::SyncSender<Job>> = LazyLock::new(|| {
    let (jobs, queue) = mpsc::sync_channel::<Job>(HASH_QUEUE);
    let queue = Arc::new(Mutex::new(queue));
    for n in 0..hashing_threads() {
        let queue = queue.clone();
        std::thread::Builder::new()
            .name(format!("password-hasher-{n}"))
            .spawn(move || {
                loop {
                    // The lock is held to take the next job, not while running it.
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(job) = next else { return };
                    // A job that panics drops its answer, which its caller sees; the thread goes on.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            })
            .expect("a password-hashing thread starts");
    }
    jobs
});

type Job = Box<dyn FnOnce() + Send>;

/// One per core this process may use.
fn hashing_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A password could not be hashed or checked now: too many are waiting (or the job failed).
#[derive(Debug, thiserror::Error)]
#[error("too many sign-ins at once; try again shortly")]
pub struct HashingBusy;

/// Runs a password hash or check on a hashing thread and waits for its answer. A job
/// whose caller has gone (a client that hung up) is skipped, not run.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashingBusy> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        if !answer.is_closed() {
            let _ = answer.send(work());
        }
    });
    HASHERS.try_send(job).map_err(|_| HashingBusy)?;
    answered.await.map_err(|_| HashingBusy)
}

pub use crate::config::HashCost;

/// The argon2 computation for a hash made at `cost`.
fn hasher(cost: HashCost) -> Argon2<'static> {
    match cost {
        HashCost::Standard => Argon2::default(),
        HashCost::LightForTests => Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(64, 1, 1, None).expect("64 KiB, 1 pass and 1 lane are valid argon2 parameters"),
        ),
    }
}

/// A PHC string of `password` at `cost`, with a fresh salt (on the calling thread).
fn hash_now(password: &[u8], cost: HashCost) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    hasher(cost)
        .hash_password(password, &salt)
        .expect("argon2 with valid parameters hashes any input")
        .to_string()
}

/// Hashes a password into a PHC string.
pub async fn hash_password(password: String, cost: HashCost) -> Result<String, HashingBusy> {
    hashing(move || {
        metrics::counter!(PASSWORD_HASHES_METRIC).increment(1);
        hash_now(password.as_bytes(), cost)
    })
    .await
}

/// Checks a password against a stored PHC string; a malformed hash never matches.
pub async fn verify_password(password: String, hash: String) -> Result<bool, HashingBusy> {
    hashing(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            metrics::counter!(PASSWORD_HASHES_METRIC).increment(1);
            Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
        })
    })
    .await
}

/// A hash of a random password at each cost, made once, for sign-ins that name no
/// account: checking against it costs what checking a real account's password costs, so
/// the answer's timing does not tell whether the username exists. Made on first use, not
/// at start-up, so a hub nobody signs in to never pays for it.
static UNKNOWN_ACCOUNT_HASH: LazyLock<String> =
    LazyLock::new(|| hash_now(random_token().as_bytes(), HashCost::Standard));
static UNKNOWN_ACCOUNT_LIGHT_HASH: LazyLock<String> =
    LazyLock::new(|| hash_now(random_token().as_bytes(), HashCost::LightForTests));

/// Checks a sign-in's password against the account's hash, or, when no account has that
/// username (`None`), against [`UNKNOWN_ACCOUNT_HASH`] at the hub's cost, never matching.
pub async fn verify_sign_in(
    password: String,
    account_hash: Option<String>,
    cost: HashCost,
) -> Result<bool, HashingBusy> {
    let known = account_hash.is_some();
    let hash = account_hash.unwrap_or_else(|| match cost {
        HashCost::Standard => UNKNOWN_ACCOUNT_HASH.clone(),
        HashCost::LightForTests => UNKNOWN_ACCOUNT_LIGHT_HASH.clone(),
    });
    Ok(verify_password(password, hash).await? && known)
}

/// 256 random bits from the OS generator, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The name a session is stored and revoked under: the SHA-256 of its token, URL-safe
/// base64. The store (shared by every node) and the admin bus never see a token, so a
/// leaked database or a snooped channel signs nobody in.
pub fn session_id(token: &str) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Sessions, kept in the shared store so a restart or another node knows them. Cheap to clone.
///
/// Every look-up of a token asks the store, so a revocation anywhere counts at once
/// everywhere. What this node has seen live is also remembered (session id → account,
/// expiry) for the hub's synchronous check when a staff socket registers; a revocation
/// removes it here before the hub is told, and one made on another node is removed by
/// [`Sessions::forget`] when the admin bus brings it.
#[derive(Clone)]
pub struct Sessions {
    store: SharedStore,
    seen: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    ttl: Duration,
}

impl Sessions {
    pub fn new(store: SharedStore, ttl: Duration) -> Self {
        Self {
            store,
            seen: Arc::default(),
            ttl,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (String, Instant)>) -> T) -> T {
        f(&mut self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn remember(&self, id: String, account_id: String, expires: Instant) {
        self.with(|s| {
            // Sweep expired sessions now and then, so abandoned ones do not pile up.
            if s.len() % 64 == 0 {
                let now = Instant::now();
                s.retain(|_, (_, exp)| *exp > now);
            }
            s.insert(id, (account_id, expires));
        });
    }

    /// Opens a session for an account and returns its token.
    pub async fn open(&self, account_id: &str) -> StoreResult<String> {
        let token = random_token();
        let id = session_id(&token);
        let expires_at = now_ms().saturating_add(i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX));
        self.store
            .create_session(StoredSession {
                id: id.clone(),
                account_id: account_id.to_string(),
                expires_at,
            })
            .await?;
        self.remember(id, account_id.to_string(), Instant::now() + self.ttl);
        Ok(token)
    }

    /// The account id of a live session, asked of the store (a revocation on any node counts).
    pub async fn account_of(&self, token: &str) -> StoreResult<Option<String>> {
        let id = session_id(token);
        let session = match self.store.session(&id).await {
            Ok(session) => session,
            Err(StoreError::NotFound) => {
                self.with(|s| s.remove(&id));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let left = session.expires_at - now_ms();
        if left <= 0 {
            self.with(|s| s.remove(&id));
            return Ok(None);
        }
        let expires = Instant::now() + Duration::from_millis(left.unsigned_abs());
        self.remember(id, session.account_id.clone(), expires);
        Ok(Some(session.account_id))
    }

    /// When a session this node has seen live (by [`Sessions::account_of`] or
    /// [`Sessions::open`]) expires, by its id; `None` once revoked or expired.
    pub fn expires_at(&self, id: &str) -> Option<Instant> {
        self.with(|s| s.get(id).map(|(_, exp)| *exp).filter(|exp| *exp > Instant::now()))
    }

    /// Ends a session; its id when it was live. Its sockets are closed by the hub
    /// (`Hub::sessions_ended`), which the caller tells (and, on several nodes, the bus).
    pub async fn close(&self, token: &str) -> StoreResult<Option<String>> {
        let id = session_id(token);
        self.with(|s| s.remove(&id));
        Ok(self.store.delete_session(&id).await?.then_some(id))
    }

    /// Ends every session of an account (disabled, or password changed) and returns their
    /// ids, for the hub to close the sockets opened with them.
    #[must_use = "the hub must be told, to close the sessions' sockets"]
    pub async fn close_all_of(&self, account_id: &str) -> StoreResult<Vec<String>> {
        let ended = self.store.delete_sessions_of(account_id).await?;
        self.forget(&ended);
        // Those this node saw but the store no longer had (swept) are over too.
        self.with(|s| s.retain(|_, (account, _)| account != account_id));
        Ok(ended)
    }

    /// Sessions revoked elsewhere (another node, through the admin bus) are no longer live here.
    pub fn forget(&self, ids: &[String]) {
        self.with(|s| {
            for id in ids {
                s.remove(id);
            }
        });
    }

    /// Deletes the sessions expired by now from the store; how many.
    pub async fn sweep(&self) -> StoreResult<u64> {
        self.store.sweep_sessions(now_ms()).await
    }
}

/// How often the store is swept of expired sessions (MongoDB's TTL index does it too).
pub const SESSION_SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Sweeps expired sessions from the store every [`SESSION_SWEEP_EVERY`] until `shutdown`.
pub async fn sweep_sessions(sessions: Sessions, shutdown: tokio_util::sync::CancellationToken) {
    let mut ticks = crate::ticks::Ticks::new(SESSION_SWEEP_EVERY, &shutdown);
    while ticks.next().await {
        if let Err(e) = sessions.sweep().await {
            tracing::warn!(error = %e, "could not sweep expired sessions; trying again later");
        }
    }
}

fn now_ms() -> Millis {
    crate::clock::now_ms()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// One hash per core at once: on every core, never on more, never on tokio's threads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hashes_run_on_the_hashing_threads_one_per_core() {
        let cores = hashing_threads();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let burst: Vec<_> = (0..cores * 4 + 3)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(hashing(move || {
                    let thread = std::thread::current();
                    assert!(thread.name().is_some_and(|n| n.starts_with("password-hasher-")));
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Stay until another job runs beside this one (other tests' hashes may hold a
                    // thread for a while), or long enough to show that none can.
                    let until = Instant::now() + Duration::from_secs(2);
                    while most.load(Ordering::SeqCst) < cores.min(2) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for task in burst {
            task.await.expect("the task ran").expect("the work ran");
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            (cores.min(2)..=cores).contains(&most),
            "{most} hashes ran at once on {cores} cores"
        );
    }

    #[tokio::test]
    async fn a_job_that_panics_fails_alone_and_the_hashers_go_on() {
        let cores = hashing_threads();
        for _ in 0..cores {
            assert!(hashing(|| panic!("a broken hash")).await.is_err());
        }
        assert_eq!(hashing(|| 7).await.expect("the hashers still answer"), 7);
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse".into(), HashCost::Standard)
            .await
            .expect("a hashing thread is free");
        assert!(hash.starts_with("$argon2"));
        let check = |password: &str, hash: &str| verify_password(password.into(), hash.into());
        assert!(check("correct horse", &hash).await.expect("checked"));
        assert!(!check("wrong", &hash).await.expect("checked"));
        assert!(!check("x", "not a hash").await.expect("checked"));
    }

    /// A test hub's light hashes check as any other; a hub from the environment never makes them.
    #[tokio::test]
    async fn light_hashes_verify_and_only_tests_make_them() {
        let light = hash_password("correct horse".into(), HashCost::LightForTests)
            .await
            .expect("hashed");
        assert!(light.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{light}");
        assert!(
            verify_sign_in("correct horse".into(), Some(light.clone()), HashCost::LightForTests)
                .await
                .expect("checked")
        );
        assert!(!verify_password("wrong".into(), light).await.expect("checked"));
        assert!(
            !verify_sign_in("correct horse".into(), None, HashCost::LightForTests)
                .await
                .expect("checked")
        );
        let standard = hash_password("x".into(), HashCost::Standard).await.expect("hashed");
        assert!(standard.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{standard}");
        let from_environment = crate::config::Settings::from_lookup(|_| None).expect("defaults are valid");
        assert_eq!(from_environment.password_hash_cost, HashCost::Standard);
    }

    #[tokio::test]
    async fn a_sign_in_without_an_account_never_matches() {
        let hash = hash_password("correct horse".into(), HashCost::Standard)
            .await
            .expect("hashed");
        assert!(
            verify_sign_in("correct horse".into(), Some(hash), HashCost::Standard)
                .await
                .expect("checked")
        );
        assert!(
            !verify_sign_in("correct horse".into(), None, HashCost::Standard)
                .await
                .expect("checked")
        );
        assert!(
            !verify_sign_in(String::new(), None, HashCost::Standard)
                .await
                .expect("checked")
        );
        assert!(
            UNKNOWN_ACCOUNT_HASH.starts_with("$argon2id$"),
            "the same algorithm as real hashes"
        );
    }

    #[tokio::test]
    async fn sessions_open_resolve_and_close() {
        let store: SharedStore = Arc::new(crate::store::MemoryStore::new());
        let sessions = Sessions::new(store.clone(), Duration::from_secs(60));
        let token = sessions.open("a1").await.unwrap();
        let other = sessions.open("a2").await.unwrap();
        let id = session_id(&token);
        assert_ne!(id, token);
        assert_eq!(
            store.session(&id).await.unwrap().account_id,
            "a1",
            "stored under the hash"
        );
        assert!(store.session(&token).await.is_err(), "never under the token");
        // Another node (a second adapter over the same store) resolves it.
        let elsewhere = Sessions::new(store.clone(), Duration::from_secs(60));
        assert_eq!(elsewhere.account_of(&token).await.unwrap().as_deref(), Some("a1"));
        assert!(elsewhere.expires_at(&id).is_some());
        assert_eq!(sessions.close_all_of("a1").await.unwrap(), vec![id.clone()]);
        assert_eq!(sessions.account_of(&token).await.unwrap(), None);
        assert_eq!(sessions.expires_at(&id), None);
        assert_eq!(
            elsewhere.account_of(&token).await.unwrap(),
            None,
            "revoked for every node"
        );
        assert_eq!(sessions.close(&other).await.unwrap(), Some(session_id(&other)));
        assert_eq!(sessions.close(&other).await.unwrap(), None, "closed once");
    }
}
