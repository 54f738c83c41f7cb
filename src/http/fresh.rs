//! Read your writes: an HTTP read or write that names a conversation sees what the hub has
//! already told its participants. The hub tells a chat's start and end before the archive
//! writer has stored them (it commits in groups), and in a cluster another node may archive
//! the chat; so a conversation the store does not know yet may be on its way.
//!
//! [`until_found`] runs the operation once; only when it finds nothing does it wait for this
//! node's archive writer to store what it was handed, then (in a cluster) look again with a
//! short backoff for a few seconds. A read of a conversation that exists costs nothing more;
//! one of a conversation that never existed costs at most [`CATCH_UP`] before its 404.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::AppState;

/// How long a miss may wait for the archive: a group commit on this node, a cross-node hop
/// and the archiving node's own commit, with room for a slow disk.
pub const CATCH_UP: Duration = Duration::from_secs(3);
/// The first and the longest pause between two looks, in a cluster.
const PAUSE_START: Duration = Duration::from_millis(20);
const PAUSE_MAX: Duration = Duration::from_millis(400);

/// Runs `op` until it finds what it names (`missing` says when it did not) or the archive
/// has had [`CATCH_UP`] to store it; returns the last outcome.
pub async fn until_found<T, F, Fut>(state: &AppState, missing: impl Fn(&T) -> bool, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let outcome = op().await;
    if !missing(&outcome) {
        return outcome;
    }
    let deadline = Instant::now() + CATCH_UP;
    state.archive.written_through_now(deadline).await;
    let mut outcome = op().await;
    let mut pause = PAUSE_START;
    // On one node the writer was the only way in; in a cluster another node archives too.
    while state.cluster.is_some() && missing(&outcome) && Instant::now() + pause < deadline {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(PAUSE_MAX);
        outcome = op().await;
    }
    outcome
}

/// Whether a store call found nothing.
pub fn not_found<T>(outcome: &Result<T, crate::store::StoreError>) -> bool {
    matches!(outcome, Err(crate::store::StoreError::NotFound))
}
