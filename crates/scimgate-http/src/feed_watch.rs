//! What the change feed's long polls and streams wait on, and how many there may be.
//!
//! Waiting: one thread of its own waits for the store's commits and, after each, reads
//! every tenant's last event number in one query, then tells the tenants that have
//! waiters and whose number moved. A waiting poll or stream holds no thread and is woken
//! only by its own tenant's events: a commit costs one small read whatever the number of
//! waiters, and a busy tenant never wakes another tenant's waiters.
//!
//! Places: each tenant may hold only its share of the open streams and waiting polls, so
//! that no tenant can hold them all; and a subject's new named cursors are counted and
//! stored one at a time, so that concurrent first uses cannot pass the cap together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use scimgate_limits::{FairSlots, Periodic, Slot};
use scimgate_store::Store;
use tokio::sync::watch;

use crate::error::ApiError;

/// Open streams and waiting polls, all tenants together.
const TOTAL: usize = 256;
/// Of which one tenant may hold.
const PER_TENANT: usize = 32;
/// Longest the watching thread waits for a commit before it looks at its stop.
const IDLE: Duration = Duration::from_millis(500);

/// Each watched tenant's last event number, told to its waiters.
type Heads = Arc<Mutex<HashMap<String, watch::Sender<i64>>>>;

pub struct FeedWatch {
    heads: Heads,
    slots: Arc<FairSlots>,
    /// Held while a new named cursor is counted and stored.
    pub new_cursors: tokio::sync::Mutex<()>,
    _watching: Option<Periodic>,
}

/// One waiter's view of its tenant's last event number.
pub struct TenantWatch(watch::Receiver<i64>);

impl FeedWatch {
    pub fn new(store: &Arc<dyn Store>) -> FeedWatch {
        let heads: Heads = Arc::default();
        let watching = {
            let (store, heads) = (Arc::clone(store), Arc::clone(&heads));
            Periodic::spawn("feed-watch", move |stop| {
                let mut seen = store.commit_count();
                while !stop.stopped() {
                    let now = store.wait_for_commit(seen, IDLE);
                    if now == seen {
                        continue;
                    }
                    // Any commit after this point makes the next wait return at once.
                    seen = now;
                    tell(store.as_ref(), &heads);
                }
            })
        };
        let watching = match watching {
            Ok(thread) => Some(thread),
            Err(e) => {
                // Waiters still end at their timeout; nothing is lost, only later.
                tracing::error!(error = %e, "could not start the change feed's watch");
                None
            }
        };
        let slots = FairSlots::new("event streams", TOTAL, PER_TENANT, Duration::ZERO);
        FeedWatch {
            heads,
            slots,
            new_cursors: tokio::sync::Mutex::new(()),
            _watching: watching,
        }
    }

    /// Watches `tenant`'s last event number. Subscribe before reading the events: a commit
    /// after the subscription always wakes the waiter.
    pub fn subscribe(&self, tenant: &str) -> TenantWatch {
        let mut heads = self.heads.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = heads
            .entry(tenant.to_owned())
            .or_insert_with(|| watch::channel(0).0);
        TenantWatch(sender.subscribe())
    }

    /// A place for one open stream or waiting poll of `tenant`, or 503 when its share is
    /// taken.
    pub fn admit(&self, tenant: &str) -> Result<Slot, ApiError> {
        self.slots.acquire(tenant).map_err(ApiError::Overloaded)
    }
}

/// After a commit: the watched tenants' numbers, from one read; tenants nobody watches
/// any more are forgotten.
fn tell(store: &dyn Store, heads: &Heads) {
    if heads
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_empty()
    {
        return;
    }
    let now = match store.event_heads() {
        Ok(now) => now,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the change feed's heads");
            return;
        }
    };
    let mut heads = heads.lock().unwrap_or_else(PoisonError::into_inner);
    heads.retain(|_, sender| sender.receiver_count() > 0);
    for (tenant, sender) in heads.iter() {
        let head = now.get(tenant).copied().unwrap_or(0);
        sender.send_if_modified(|known| {
            let moved = *known != head;
            *known = head;
            moved
        });
    }
}

impl TenantWatch {
    /// Waits until the tenant has an event after `after`, or `timeout`.
    pub async fn wait_past(&mut self, after: i64, timeout: Duration) {
        let waited = actix_web::rt::time::timeout(timeout, async {
            if self.0.wait_for(|head| *head > after).await.is_err() {
                std::future::pending::<()>().await;
            }
        });
        let _ = waited.await;
    }
}
