//! One question in flight at a time, its answer shared by everyone who asked before it
//! was sent.
//!
//! Public endpoints (the category list, the widget's settings) ask the hub task and Redis
//! on every request. A flood of them must cost one question at a time, not one each, yet
//! nobody may get an answer older than their own request: an answer is shared only with
//! callers who arrived before its question was sent (they wait for it on the lock).

use std::future::Future;
use std::time::Instant;

/// The last answer to a question about `K` (its key: an answer for one key is never
/// given for another), and when its question was sent.
pub struct SingleFlight<K, T> {
    answer: tokio::sync::Mutex<Option<(Instant, K, T)>>,
}

impl<K, T> Default for SingleFlight<K, T> {
    fn default() -> Self {
        Self {
            answer: tokio::sync::Mutex::new(None),
        }
    }
}

impl<K: PartialEq, T: Clone> SingleFlight<K, T> {
    /// The answer about `key`: the last one if its question was sent after this call
    /// began, else `ask`'s (and kept for the callers waiting behind this one). A failed
    /// question keeps nothing.
    pub async fn get<E, F: Future<Output = Result<T, E>>>(&self, key: K, ask: impl FnOnce() -> F) -> Result<T, E> {
        let asked = Instant::now();
        let mut answer = self.answer.lock().await;
        if let Some((sent, for_key, value)) = answer.as_ref()
            && *sent >= asked
            && *for_key == key
        {
            return Ok(value.clone());
        }
        let sent = Instant::now();
        let value = ask().await?;
        *answer = Some((sent, key, value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Counts its questions; each takes a moment, so callers pile up behind one.
    async fn ask(count: &AtomicU32) -> Result<u32, ()> {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Ok(n)
    }

    #[tokio::test]
    async fn callers_waiting_behind_a_question_share_the_next_answer() {
        let flight = Arc::new(SingleFlight::<(), u32>::default());
        let count = Arc::new(AtomicU32::new(0));
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let (flight, count) = (flight.clone(), count.clone());
                tokio::spawn(async move { flight.get((), || ask(&count)).await })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap().unwrap();
        }
        // The first asks alone; everyone who queued behind it shares at most one more.
        assert!(
            count.load(Ordering::SeqCst) <= 2,
            "{} questions",
            count.load(Ordering::SeqCst)
        );
    }

    #[tokio::test]
    async fn a_caller_never_gets_an_answer_older_than_their_request() {
        let flight = SingleFlight::<(), u32>::default();
        let count = AtomicU32::new(0);
        assert_eq!(flight.get((), || ask(&count)).await, Ok(1));
        assert_eq!(
            flight.get((), || ask(&count)).await,
            Ok(2),
            "asked after the first answer: asked again"
        );
    }

    #[tokio::test]
    async fn an_answer_is_for_its_key_only_and_a_failure_keeps_nothing() {
        let flight = Arc::new(SingleFlight::<&str, u32>::default());
        let count = Arc::new(AtomicU32::new(0));
        let (f, c) = (flight.clone(), count.clone());
        let first = tokio::spawn(async move { f.get("a", || ask(&c)).await });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // Queued behind "a"'s question, but about "b": asked anew.
        assert_eq!(flight.get("b", || ask(&count)).await, Ok(2));
        assert_eq!(first.await.unwrap(), Ok(1));
        assert_eq!(flight.get("b", || async { Err::<u32, _>("down") }).await, Err("down"));
        assert_eq!(flight.get("b", || ask(&count)).await, Ok(3));
    }
}
