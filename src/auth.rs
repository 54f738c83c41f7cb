//! Accounts' passwords and sessions.
//!
//! Passwords are hashed with argon2 (the PHC string format, salted per
//! password) on threads of their own, one per core, since a hash deliberately
//! costs tens of milliseconds and 19 MiB. A session is an opaque random token
//! mapped to an account id in memory; browsers carry it in an HttpOnly cookie,
//! other clients as a bearer token. Sessions do not survive a restart: agents
//! sign in again.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock, Mutex, mpsc};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;

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

/// Hashes a password into a PHC string.
pub async fn hash_password(password: String) -> Result<String, HashingBusy> {
    hashing(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
        metrics::counter!(PASSWORD_HASHES_METRIC).increment(1);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .expect("argon2 with default parameters hashes any input")
            .to_string()
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

/// A hash of a random password, made once with the parameters every account's hash has
/// (argon2's defaults), for sign-ins that name no account: checking against it costs
/// what checking a real account's password costs, so the answer's timing does not tell
/// whether the username exists. Made on first use, not at start-up, so a hub nobody
/// signs in to never pays for it.
static UNKNOWN_ACCOUNT_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(random_token().as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any input")
        .to_string()
});

/// Checks a sign-in's password against the account's hash, or, when no account has that
/// username (`None`), against [`UNKNOWN_ACCOUNT_HASH`] at the same cost, never matching.
pub async fn verify_sign_in(password: String, account_hash: Option<String>) -> Result<bool, HashingBusy> {
    let known = account_hash.is_some();
    let hash = account_hash.unwrap_or_else(|| UNKNOWN_ACCOUNT_HASH.clone());
    Ok(verify_password(password, hash).await? && known)
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

    /// When a live session expires.
    pub fn expires_at(&self, token: &str) -> Option<Instant> {
        self.with(|s| s.get(token).map(|(_, exp)| *exp).filter(|exp| *exp > Instant::now()))
    }

    /// Ends a session; true when it was live. Its sockets are closed by the hub
    /// (`Hub::sessions_ended`), which the caller tells.
    pub fn close(&self, token: &str) -> bool {
        self.with(|s| s.remove(token))
            .is_some_and(|(_, exp)| exp > Instant::now())
    }

    /// Ends every session of an account (disabled, or password changed) and returns their
    /// tokens, for the hub to close the sockets opened with them.
    #[must_use = "the hub must be told, to close the sessions' sockets"]
    pub fn close_all_of(&self, account_id: &str) -> Vec<String> {
        self.with(|s| {
            let ended: Vec<String> = s
                .iter()
                .filter(|(_, (id, _))| id == account_id)
                .map(|(token, _)| token.clone())
                .collect();
            for token in &ended {
                s.remove(token);
            }
            ended
        })
    }
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
        let hash = hash_password("correct horse".into())
            .await
            .expect("a hashing thread is free");
        assert!(hash.starts_with("$argon2"));
        let check = |password: &str, hash: &str| verify_password(password.into(), hash.into());
        assert!(check("correct horse", &hash).await.expect("checked"));
        assert!(!check("wrong", &hash).await.expect("checked"));
        assert!(!check("x", "not a hash").await.expect("checked"));
    }

    #[tokio::test]
    async fn a_sign_in_without_an_account_never_matches() {
        let hash = hash_password("correct horse".into()).await.expect("hashed");
        assert!(
            verify_sign_in("correct horse".into(), Some(hash))
                .await
                .expect("checked")
        );
        assert!(!verify_sign_in("correct horse".into(), None).await.expect("checked"));
        assert!(!verify_sign_in(String::new(), None).await.expect("checked"));
        assert!(
            UNKNOWN_ACCOUNT_HASH.starts_with("$argon2id$"),
            "the same algorithm as real hashes"
        );
    }

    #[test]
    fn sessions_open_resolve_and_close() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let token = sessions.open("a1");
        let other = sessions.open("a2");
        assert_eq!(sessions.account_of(&token).as_deref(), Some("a1"));
        assert!(sessions.expires_at(&token).is_some());
        assert_eq!(sessions.close_all_of("a1"), vec![token.clone()]);
        assert_eq!(sessions.account_of(&token), None);
        assert_eq!(sessions.expires_at(&token), None);
        assert!(sessions.close(&other));
        assert!(!sessions.close(&other), "closed once");
    }
}
