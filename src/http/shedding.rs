//! Shedding silent connections when file descriptors run short.
//!
//! A connection that has not sent a request head yet costs a descriptor and gives nothing;
//! the header deadline closes it in the end, but until then a few hundred of them (each
//! address under its cap) can hold every descriptor, and a newcomer waits for the deadline.
//! So the listener keeps the silent ones in arrival order ([`Silent`]) and, once the open
//! connections come near the open-file limit, or `accept` fails for want of descriptors,
//! closes the oldest silent ones first. A connection leaves the list with its first
//! request; connections that have spoken (websockets, keep-alive clients) are never shed
//! here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How many descriptors are kept out of the connections' reach, for the store, Redis,
/// MongoDB, log files and the listener itself: an eighth of the limit, within these bounds.
const RESERVE_MIN: u64 = 32;
const RESERVE_MAX: u64 = 1024;
/// How many silent connections one `accept` failing for want of descriptors sheds.
const SHED_ON_EMFILE: usize = 16;
/// A silent connection younger than this is never shed: a real client needs a round trip
/// before its first request, and an attacker churning connections must not get newcomers
/// shed ahead of their own. Newcomers are still served within about this long.
const SHED_MIN_AGE: Duration = Duration::from_millis(500);

/// When to shed: the number of open connections past which each new one sheds the oldest
/// silent connection, from the process's open-file limit (`None`: no limit to speak of).
pub fn connection_ceiling(open_file_limit: u64) -> Option<usize> {
    if open_file_limit == u64::MAX || open_file_limit > usize::MAX as u64 {
        return None;
    }
    // At most half the limit, so a tiny limit still leaves room for connections.
    let reserve = (open_file_limit / 8)
        .clamp(RESERVE_MIN, RESERVE_MAX)
        .min(open_file_limit / 2);
    Some(open_file_limit.saturating_sub(reserve) as usize)
}

/// The process's soft open-file limit, as the listener sees it when it starts.
pub fn open_file_limit() -> u64 {
    rlimit::Resource::NOFILE.get().map(|(soft, _)| soft).unwrap_or(u64::MAX)
}

/// The connections that have sent no request head yet, oldest first.
#[derive(Clone, Default)]
pub struct Silent {
    /// Locked for a map insert or removal, never across an `.await`.
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    /// Arrival number → when it was accepted, and how to shed it.
    waiting: BTreeMap<u64, (Instant, CancellationToken)>,
}

/// One accepted connection's place in the list: cancelled when it is shed.
pub struct Ticket {
    silent: Silent,
    id: u64,
    /// Cancelled to shed the connection (its task drops it, closing the descriptor).
    pub shed: CancellationToken,
    spoken: AtomicBool,
}

impl Silent {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain map updates: a panic while holding the lock leaves it consistent.
        crate::poison::lock(&self.inner)
    }

    /// Puts a newly accepted connection at the end of the list.
    pub fn enter(&self) -> Arc<Ticket> {
        let shed = CancellationToken::new();
        let mut inner = self.inner();
        let id = inner.next;
        inner.next += 1;
        inner.waiting.insert(id, (Instant::now(), shed.clone()));
        Arc::new(Ticket {
            silent: self.clone(),
            id,
            shed,
            spoken: AtomicBool::new(false),
        })
    }

    /// Closes the `n` oldest silent connections accepted at least `min_age` ago; returns
    /// how many it closed.
    pub fn shed_oldest(&self, n: usize, min_age: Duration) -> usize {
        let mut inner = self.inner();
        let mut shed = 0;
        while shed < n {
            // In arrival order: once the oldest is too young, all are.
            let Some(entry) = inner.waiting.first_entry() else {
                break;
            };
            if entry.get().0.elapsed() < min_age {
                break;
            }
            entry.remove().1.cancel();
            shed += 1;
        }
        shed
    }
}

impl Ticket {
    /// Whether the connection sent a request head (a shed that crossed it is then ignored).
    pub fn has_spoken(&self) -> bool {
        self.spoken.load(Ordering::Relaxed)
    }

    /// The connection sent a request head: it leaves the list for good (a lock only the first time).
    pub fn spoke(&self) {
        if !self.spoken.swap(true, Ordering::Relaxed) {
            self.silent.inner().waiting.remove(&self.id);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.spoken.load(Ordering::Relaxed) {
            self.silent.inner().waiting.remove(&self.id);
        }
    }
}

/// What the listener does about descriptors before serving a connection it accepted.
pub struct Shedder {
    pub silent: Silent,
    /// Connections open now, websockets included: each [`OpenConnection`] counts while it lives.
    open: Arc<AtomicUsize>,
    ceiling: Option<usize>,
    /// Shedding near the limit now: logged once as it starts, once as it stops.
    shedding: AtomicBool,
}

impl Shedder {
    pub fn new(open_file_limit: u64) -> Self {
        Self {
            silent: Silent::default(),
            ceiling: connection_ceiling(open_file_limit),
            open: Arc::default(),
            shedding: AtomicBool::new(false),
        }
    }

    /// Counts a newly accepted connection for as long as the returned guard lives (the
    /// listener keeps it in the stream, which lives through a websocket upgrade).
    pub fn opened(&self) -> OpenConnection {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.open.clone())
    }

    /// Before serving a new connection: near the limit, the oldest silent one goes.
    pub fn before_serving(&self) {
        let Some(ceiling) = self.ceiling else { return };
        let open = self.open.load(Ordering::Relaxed);
        if open < ceiling {
            if self.shedding.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    open,
                    "below the open-file limit again: no longer shedding silent connections"
                );
            }
            return;
        }
        if self.silent.shed_oldest(1, SHED_MIN_AGE) == 1 {
            shed_counter().increment(1);
            if !self.shedding.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    open,
                    ceiling,
                    "near the open-file limit: connections that sent no request are shed, oldest first"
                );
            }
        }
    }

    /// `accept` failed for want of descriptors: sheds a batch of silent connections;
    /// returns whether any went (then accepting again at once is worth it).
    pub fn out_of_descriptors(&self) -> bool {
        let shed = self.silent.shed_oldest(SHED_ON_EMFILE, SHED_MIN_AGE);
        if shed > 0 {
            tracing::warn!(
                shed,
                "out of file descriptors: shed {shed} connections that had sent no request"
            );
            shed_counter().increment(shed as u64);
        }
        shed > 0
    }
}

/// One open connection, counted until dropped.
pub struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn shed_counter() -> metrics::Counter {
    metrics::counter!(crate::metrics::CONNECTIONS_SHED)
}

/// Whether an accept error means the process (or system) is out of descriptors.
pub fn is_out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_silent_connections_go_first_and_spoken_ones_never() {
        let silent = Silent::default();
        let a = silent.enter();
        let b = silent.enter();
        let c = silent.enter();
        b.spoke();
        assert_eq!(silent.inner().waiting.len(), 2);
        assert_eq!(silent.shed_oldest(1, Duration::ZERO), 1);
        assert!(a.shed.is_cancelled() && !b.shed.is_cancelled() && !c.shed.is_cancelled());
        assert_eq!(silent.shed_oldest(5, Duration::ZERO), 1);
        assert!(c.shed.is_cancelled() && !b.shed.is_cancelled());
        assert_eq!(silent.shed_oldest(5, Duration::ZERO), 0);
    }

    #[test]
    fn a_newcomer_is_not_shed_before_it_could_speak() {
        let silent = Silent::default();
        let young = silent.enter();
        assert_eq!(silent.shed_oldest(5, Duration::from_secs(60)), 0);
        assert!(!young.shed.is_cancelled());
    }

    #[test]
    fn a_closed_connection_leaves_the_list() {
        let silent = Silent::default();
        let a = silent.enter();
        drop(a);
        assert!(silent.inner().waiting.is_empty());
    }

    #[test]
    fn the_ceiling_keeps_a_reserve_for_everything_else() {
        assert_eq!(connection_ceiling(512), Some(448));
        assert_eq!(connection_ceiling(100), Some(68));
        assert_eq!(connection_ceiling(1 << 20), Some((1 << 20) - 1024));
        assert_eq!(connection_ceiling(u64::MAX), None);
        assert_eq!(
            connection_ceiling(32),
            Some(16),
            "a tiny limit keeps half for connections"
        );
    }
}
