//! What the change feed's long polls and streams wait on, and how many there may be: the
//! store tells the count of commits after each one, so that a waiting poll or stream is
//! woken by a commit without polling anything or holding a thread; and each tenant may
//! hold only its share of the open streams and waiting polls, so that no tenant can hold
//! them all.

use std::sync::Arc;
use std::time::Duration;

use scimgate_limits::{FairSlots, Slot};
use scimgate_store::Store;
use tokio::sync::watch;

use crate::error::ApiError;

/// Open streams and waiting polls, all tenants together.
const TOTAL: usize = 256;
/// Of which one tenant may hold.
const PER_TENANT: usize = 32;

pub struct FeedWatch {
    commits: watch::Receiver<u64>,
    slots: Arc<FairSlots>,
}

impl FeedWatch {
    pub fn new(store: &dyn Store) -> FeedWatch {
        let (publish, commits) = watch::channel(store.commit_count());
        store.on_commit(Box::new(move |count| {
            publish.send_replace(count);
        }));
        let slots = FairSlots::new("event streams", TOTAL, PER_TENANT, Duration::ZERO);
        FeedWatch { commits, slots }
    }

    /// The commits counted so far.
    pub fn commits(&self) -> u64 {
        *self.commits.borrow()
    }

    /// Waits until the count of commits is past `seen`, or `timeout` (all of it when the
    /// store is gone: the server is stopping).
    pub async fn wait_past(&self, seen: u64, timeout: Duration) {
        let mut commits = self.commits.clone();
        let waited = actix_web::rt::time::timeout(timeout, async {
            if commits.wait_for(|count| *count != seen).await.is_err() {
                std::future::pending::<()>().await;
            }
        });
        let _ = waited.await;
    }

    /// A place for one open stream or waiting poll of `tenant`, or 503 when its share is
    /// taken.
    pub fn admit(&self, tenant: &str) -> Result<Slot, ApiError> {
        self.slots.acquire(tenant).map_err(ApiError::Overloaded)
    }
}
