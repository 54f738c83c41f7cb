//! A store call someone waits on, answered within a time. A MongoDB server that stops
//! answering (frozen, a stalled disk) holds a call on an open connection without end: the
//! driver has no socket timeout. A customer continuing a conversation or an agent setting
//! its status gets `Unavailable` after the limit (`ARCHIVE_WRITE_TIMEOUT_MS`, the time
//! after which a store counts as hung) and may try again, instead of waiting forever.

use std::future::Future;
use std::time::Duration;

use super::StoreError;

/// `call`'s answer, or `Unavailable` once `limit` passed.
pub async fn within<T>(limit: Duration, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable(format!("no answer within {limit:?}"))))
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
}
