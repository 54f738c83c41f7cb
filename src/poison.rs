//! Locking a `std::sync::Mutex` whatever a panicking holder left: every lock of the hub's
//! guards data that each holder leaves whole at every await-free step (a queue, a map, a
//! counter), so a panic elsewhere while it was held is no reason to stop serving the rest.

use std::sync::{Mutex, MutexGuard};

/// `mutex`'s guard, poisoned or not.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
