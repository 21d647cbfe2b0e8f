//! The registered tenants and revoked tokens, as the request path sees them: a snapshot
//! swapped in by a background thread every [`REFRESH`], so that `scimgate tenant` and
//! `scimgate token revoke`, run beside the server, take effect within a second without a
//! database read on every request.

use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use scimgate_limits::Periodic;
use scimgate_store::{AccessSnapshot, Store, StoreError};

/// How often the snapshot is read again; a revocation takes effect within this.
pub const REFRESH: Duration = Duration::from_millis(250);

pub struct AccessCache {
    current: ArcSwap<AccessSnapshot>,
    /// The refresh, which ends when the cache is dropped.
    refresh: std::sync::OnceLock<Periodic>,
}

impl AccessCache {
    /// Reads the snapshot now and keeps it fresh until the cache or the store is dropped.
    pub fn start(store: &Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let cache = Arc::new(AccessCache {
            current: ArcSwap::from_pointee(store.access()?),
            refresh: std::sync::OnceLock::new(),
        });
        let (weak_cache, weak_store): (Weak<Self>, Weak<dyn Store>) =
            (Arc::downgrade(&cache), Arc::downgrade(store));
        let refresh = Periodic::start("scimgate-access", REFRESH, move || {
            let (Some(cache), Some(store)) = (weak_cache.upgrade(), weak_store.upgrade()) else {
                return;
            };
            match store.access() {
                Ok(snapshot) => cache.current.store(Arc::new(snapshot)),
                // The last good snapshot keeps serving; the next tick tries again.
                Err(e) => tracing::warn!(error = %e, "cannot refresh tenants and revocations"),
            }
        })?;
        let _ = cache.refresh.set(refresh);
        Ok(cache)
    }

    pub fn current(&self) -> Arc<AccessSnapshot> {
        self.current.load_full()
    }
}
