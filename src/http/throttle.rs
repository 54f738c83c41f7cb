//! Throttling password guessing at sign-in, per client address and per account.
//!
//! The rules (a leaky bucket of failures per key) are in [`crate::core::guesses`];
//! this module decides what the keys are and when the limits apply. The reasoning:
//!
//! - **Per address** (an IPv6 address counts by its /64, which one host usually
//!   holds whole): 10 failed sign-ins at once, then one per 6 s — 10 guesses a minute,
//!   whichever accounts they name. This is the attacker's main limit; it blocks only
//!   their own address, and it is checked first, so a blocked address spends nothing
//!   of the accounts it names.
//! - **Per account** (the username as typed, lowercased: unknown names are throttled
//!   like real ones, so the throttle does not tell which exist): 10 failures at once,
//!   then one per 6 s, summed over every address. This stops guessing spread over
//!   many addresses.
//! - **Lock-out**: a per-account limit alone would let anyone keep a real admin out
//!   by failing on their username once every 6 s. So the account's limit does not
//!   apply to an address that has signed in to that account before (within 30 days):
//!   the admin at their usual desk still gets in while the account is attacked from
//!   elsewhere. Only the right password makes an address known, so an attacker cannot
//!   earn the exemption. From a new address the admin shares the account's budget with
//!   the attacker, which refills every 6 s; the lock-out lasts only while the attack does.
//! - **Only failures count**: a guess is counted when it is made (guesses sent side by
//!   side must not all pass before any has failed) and handed back when the password was
//!   right, or never checked (hashing busy). A success resets nothing else: an attacker
//!   who owns one account cannot sign in to it to wipe out the failures of their address.
//!   An office of agents behind one address is never held back by its own sign-ins.
//! - **Refused means unchecked**: a throttled attempt gets 429 `too_many_attempts` with
//!   `Retry-After` before any hash is run, so it neither costs argon2 work nor can succeed.
//!
//! Memory is bounded: recovered keys are swept every minute, each table holds at most
//! `TABLE_CAPACITY` keys, and known addresses expire after 30 days (at most
//! `TABLE_CAPACITY` too). Everything is in memory: a restart forgets it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::core::guesses::{FailedGuesses, GuessLimit};
use crate::http::access::address_key;

/// Counts sign-ins refused by the throttle (429): a rising count means someone is guessing.
pub const THROTTLED_METRIC: &str = "switchboard_sign_ins_throttled_total";

/// Failed sign-ins an address may make at once, then one per `refill`: 10 a minute.
const PER_ADDRESS: GuessLimit = GuessLimit {
    burst: 10,
    refill: Duration::from_secs(6),
};
/// Failed sign-ins an account may receive at once from addresses it has not signed in from.
const PER_ACCOUNT: GuessLimit = GuessLimit {
    burst: 10,
    refill: Duration::from_secs(6),
};
/// How long a successful sign-in exempts its address from its account's limit.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Keys each table holds at most (a key is ~100 bytes: a few MB at worst).
const TABLE_CAPACITY: usize = 50_000;
/// How often recovered keys and expired known addresses are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Usernames are at most 64 characters; longer input is keyed by its first 64.
const USERNAME_KEY_CHARS: usize = 64;

/// Sign-in attempts are being refused for this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyAttempts {
    pub retry_after: Duration,
}

/// One attempt counted against its keys; hand it back with [`SignInThrottle::succeeded`]
/// or [`SignInThrottle::unchecked`], or keep it as a failure by dropping it.
#[derive(Debug)]
#[must_use = "a right password must be handed back"]
pub struct Attempt {
    address: IpAddr,
    account: String,
    /// Whether the account's limit was charged (not for an address known to the account).
    charged_account: bool,
}

pub struct SignInThrottle {
    state: Mutex<State>,
}

struct State {
    by_address: FailedGuesses<IpAddr>,
    by_account: FailedGuesses<String>,
    /// (account key, address key) → when that address last signed in to that account.
    known: HashMap<(String, IpAddr), Instant>,
    swept_at: Instant,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                by_address: FailedGuesses::new(PER_ADDRESS, TABLE_CAPACITY),
                by_account: FailedGuesses::new(PER_ACCOUNT, TABLE_CAPACITY),
                known: HashMap::new(),
                swept_at: Instant::now(),
            }),
        }
    }
}

impl SignInThrottle {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // Nothing panics while holding the lock, but a poisoned table is still a valid table.
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Before a password is checked: may `ip` try to sign in as `username` now?
    pub fn attempt(&self, ip: IpAddr, username: &str) -> Result<Attempt, TooManyAttempts> {
        let address = address_key(ip);
        let account = account_key(username);
        let now = Instant::now();
        self.with(|s| {
            s.sweep(now);
            let refused = |wait: Duration| TooManyAttempts { retry_after: wait };
            let known = s
                .known
                .get(&(account.clone(), address))
                .is_some_and(|at| now.duration_since(*at) < KNOWN_FOR);
            if !known {
                // Checked before the address is charged, so a refusal charges nothing.
                s.by_account.check(&account, now).map_err(refused)?;
            }
            s.by_address.take(address, now).map_err(refused)?;
            if !known {
                s.by_account.failed(account.clone(), now);
            }
            Ok(Attempt {
                address,
                account,
                charged_account: !known,
            })
        })
    }

    /// The password was right: the attempt is handed back and the address is known to the account.
    pub fn succeeded(&self, attempt: Attempt) {
        let now = Instant::now();
        self.with(|s| {
            s.give_back(&attempt);
            if s.known.len() >= TABLE_CAPACITY {
                s.known.retain(|_, at| now.duration_since(*at) < KNOWN_FOR);
                if s.known.len() >= TABLE_CAPACITY
                    && let Some(oldest) = s.known.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone())
                {
                    s.known.remove(&oldest);
                }
            }
            s.known.insert((attempt.account, attempt.address), now);
        });
    }

    /// The password could not be checked (the hashing threads were busy): nothing was guessed.
    pub fn unchecked(&self, attempt: Attempt) {
        self.with(|s| s.give_back(&attempt));
    }
}

impl State {
    fn give_back(&mut self, attempt: &Attempt) {
        self.by_address.give_back(&attempt.address);
        if attempt.charged_account {
            self.by_account.give_back(&attempt.account);
        }
    }

    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.swept_at) < SWEEP_EVERY {
            return;
        }
        self.swept_at = now;
        self.by_address.forget_recovered(now);
        self.by_account.forget_recovered(now);
        self.known.retain(|_, at| now.duration_since(*at) < KNOWN_FOR);
        self.known.shrink_to_fit();
    }
}

/// The account a sign-in names, as the store would look it up (trimmed), lowercased so
/// case variants share one budget, and cut to the longest possible username.
fn account_key(username: &str) -> String {
    username
        .trim()
        .to_lowercase()
        .chars()
        .take(USERNAME_KEY_CHARS)
        .collect()
}

// ---- offline messages ----

/// Offline messages one address may leave back to back, then one per `refill`.
const OFFLINE_MESSAGES: GuessLimit = GuessLimit {
    burst: 5,
    refill: Duration::from_secs(120),
};
/// Addresses the offline-message throttle remembers at most.
const OFFLINE_CAPACITY: usize = 10_000;

/// Offline messages left per client address (an IPv6 address by its /64), as a leaky
/// bucket: 5 at once, then one per 2 minutes, so a script cannot fill the desk's inbox
/// (and its mailbox through `OFFLINE_MAIL_TO`). Only messages stored count; addresses in
/// `AGENT_WHITELIST` are not limited. In memory, per node.
pub struct OfflineMessageThrottle {
    left: Mutex<FailedGuesses<IpAddr>>,
}

impl Default for OfflineMessageThrottle {
    fn default() -> Self {
        Self {
            left: Mutex::new(FailedGuesses::new(OFFLINE_MESSAGES, OFFLINE_CAPACITY)),
        }
    }
}

impl OfflineMessageThrottle {
    /// Counts a message from `ip` before it is checked; `Err` is how long to wait.
    pub fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        let key = address_key(ip);
        self.left
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(key, Instant::now())
    }

    /// Hands back what [`Self::take`] counted, for a message that was not stored.
    pub fn give_back(&self, ip: IpAddr) {
        let key = address_key(ip);
        self.left.lock().unwrap_or_else(|e| e.into_inner()).give_back(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn accounts_are_keyed_trimmed_and_lowercased() {
        assert_eq!(account_key("  Admin "), "admin");
    }

    #[test]
    fn failures_are_throttled_and_right_passwords_are_not() {
        let t = SignInThrottle::default();
        for _ in 0..50 {
            let ok = t.attempt(ip("10.0.0.1"), "ann").expect("right passwords never count");
            t.succeeded(ok);
        }
        for _ in 0..PER_ADDRESS.burst {
            drop(t.attempt(ip("10.0.0.2"), "bob").expect("within the burst"));
        }
        let refused = t.attempt(ip("10.0.0.2"), "bob").expect_err("over the burst");
        assert!(refused.retry_after > Duration::ZERO && refused.retry_after <= PER_ACCOUNT.refill);
        // Bob's account is spent for other addresses too, but not for one he signed in from.
        assert!(t.attempt(ip("10.0.0.3"), "BOB").is_err());
        assert!(t.attempt(ip("10.0.0.1"), "bob").is_err(), "not known to bob yet");
        let t2 = SignInThrottle::default();
        let ok = t2.attempt(ip("10.0.0.1"), "bob").unwrap();
        t2.succeeded(ok);
        for n in 0..PER_ACCOUNT.burst {
            drop(t2.attempt(ip(&format!("10.0.1.{n}")), "bob").unwrap());
        }
        assert!(t2.attempt(ip("10.0.2.1"), "bob").is_err(), "the account is throttled");
        let ok = t2.attempt(ip("10.0.0.1"), "bob").expect("its known address gets in");
        t2.succeeded(ok);
    }

    #[test]
    fn an_unchecked_attempt_costs_nothing() {
        let t = SignInThrottle::default();
        for _ in 0..100 {
            let attempt = t.attempt(ip("10.0.0.9"), "carol").unwrap();
            t.unchecked(attempt);
        }
    }
}
