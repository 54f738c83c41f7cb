//! A write that follows a change already made and told (an offline message's conversation
//! brought in line with it, an inbox move's hand-over in the archive): when the store
//! refuses it, its caller is not answered with a failure for a change that stands. It is
//! tried again on a task of its own, each write safe to repeat, with pauses growing from
//! 200 ms to 10 s.

use std::future::Future;
use std::time::Duration;

const FIRST_PAUSE: Duration = Duration::from_millis(200);
const LONGEST_PAUSE: Duration = Duration::from_secs(10);

/// Runs `attempt` again after a pause until it says the store took it (`true`), or, with
/// `give_up_after`, until that long passed (logged: `what` of `id` is not written yet).
pub fn in_background<F, A>(what: &'static str, id: String, give_up_after: Option<Duration>, mut attempt: A)
where
    A: FnMut() -> F + Send + 'static,
    F: Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut pause = FIRST_PAUSE;
        while give_up_after.is_none_or(|limit| started.elapsed() < limit) {
            tokio::time::sleep(pause).await;
            if attempt().await {
                return;
            }
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
        tracing::warn!(%id, "{what} is not written yet");
    });
}
