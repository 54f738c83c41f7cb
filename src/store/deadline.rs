//! A store call someone waits on, answered within a time. A MongoDB server that stops
//! answering (frozen, a stalled disk) holds a call on an open connection without end: the
//! driver has no socket timeout. A customer continuing a conversation or an agent setting
//! its status gets `Unavailable` after the limit (`ARCHIVE_WRITE_TIMEOUT_MS`, the time
//! after which a store counts as hung) and may try again, instead of waiting forever.
//!
//! A write given up on may still be carried out once the store answers. [`within`] drops
//! the call, which suits one compare-and-set (dropped before it is sent, nothing happens;
//! after, it lands or loses to the next version). A write of several store calls goes
//! through [`write_within`] instead: it runs to its end on a task of its own while its
//! caller is answered, so it is never left half done, and the caller's same request sent
//! again finds it done (each such write is safe to repeat).

use std::future::Future;
use std::time::Duration;

use super::StoreError;

/// `call`'s answer, or `Unavailable` once `limit` passed.
pub async fn within<T>(limit: Duration, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable(format!("no answer within {limit:?}"))))
}

/// `write`'s answer, or `Unavailable` once `limit` passed while `write` goes on to its end
/// on a task of its own (see the module comment).
pub async fn write_within<T: Send + 'static>(
    limit: Duration,
    write: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, tokio::spawn(write)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(failed)) => Err(StoreError::Unavailable(format!("the write failed: {failed}"))),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within {limit:?}; the write goes on"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_that_hangs_is_unavailable_and_one_that_answers_is_its_answer() {
        let hung = within(
            Duration::from_millis(20),
            std::future::pending::<Result<(), StoreError>>(),
        )
        .await;
        assert!(matches!(hung, Err(StoreError::Unavailable(_))));
        assert_eq!(within(Duration::from_secs(1), async { Ok(7) }).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_write_given_up_on_goes_on_to_its_end() {
        let (done, landed) = tokio::sync::oneshot::channel();
        let slow = async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = done.send(());
            Ok(())
        };
        let answer = write_within(Duration::from_millis(10), slow).await;
        assert!(matches!(answer, Err(StoreError::Unavailable(_))));
        landed
            .await
            .expect("the write was carried out after its caller was answered");
        assert_eq!(write_within(Duration::from_secs(1), async { Ok(7) }).await.unwrap(), 7);
    }
}
