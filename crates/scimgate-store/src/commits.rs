//! How many commits storage has seen, for those who wait for the next (the change feed's
//! receivers and its watch, woken by a commit instead of polling the database).

use std::time::Duration;

/// The count, and a condition to wait on it.
#[derive(Default)]
pub struct Commits {
    count: std::sync::Mutex<u64>,
    committed: std::sync::Condvar,
}

impl std::fmt::Debug for Commits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Commits({})", self.count())
    }
}

impl Commits {
    /// One more commit: wakes those waiting.
    pub fn bump(&self) {
        let mut count = self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *count += 1;
        self.committed.notify_all();
    }

    pub fn count(&self) -> u64 {
        *self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until more than `seen` batches have committed, or `timeout`; returns the count.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let count = self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (count, _) = self
            .committed
            .wait_timeout_while(count, timeout, |count| *count <= seen)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *count
    }
}
