//! Open client connections, counted as they open and close, so that while the server is
//! near its connection cap no answer keeps its connection alive: an idle keep-alive
//! connection must not hold the place a new client needs. Each is also counted for the
//! tenant of its first authenticated request, which says how many connections one tenant
//! keeps busy (`OpenConnection::tenant_connections`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

#[derive(Debug, Default)]
pub struct Connections {
    open: AtomicUsize,
    /// The connection cap in force (all workers); 0 until the server sets it.
    cap: AtomicUsize,
    /// Open connections per tenant (of their first authenticated request).
    by_tenant: Mutex<HashMap<String, Arc<AtomicUsize>>>,
}

/// Held for as long as one connection is open.
#[derive(Debug)]
pub struct OpenConnection {
    all: Arc<Connections>,
    tenant: OnceLock<TenantConnection>,
}

/// A connection counted for its tenant until it closes.
#[derive(Debug)]
struct TenantConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.all.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for TenantConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl OpenConnection {
    /// How many connections are open for the tenant this connection was first used for
    /// (`tenant`, on its first call), this one included.
    pub fn tenant_connections(&self, tenant: &str) -> usize {
        let counted = self.tenant.get_or_init(|| {
            let mut by_tenant = self
                .all
                .by_tenant
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let count = by_tenant.entry(tenant.to_owned()).or_default();
            count.fetch_add(1, Ordering::Relaxed);
            TenantConnection(Arc::clone(count))
        });
        counted.0.load(Ordering::Relaxed)
    }
}

impl Connections {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn set_cap(&self, cap: usize) {
        self.cap.store(cap, Ordering::Relaxed);
    }

    pub fn cap(&self) -> usize {
        self.cap.load(Ordering::Relaxed)
    }

    /// Counts a new connection until the returned value is dropped.
    pub fn opened(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            all: Arc::clone(self),
            tenant: OnceLock::new(),
        }
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// At 90 % of the cap or more: answers close their connections.
    pub fn near_cap(&self) -> bool {
        let cap = self.cap();
        cap > 0 && self.open() * 10 >= cap * 9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_while_held_and_near_cap_at_ninety_percent() {
        let c = Connections::new();
        assert!(!c.near_cap(), "no cap set yet");
        c.set_cap(10);
        let held: Vec<OpenConnection> = (0..8).map(|_| c.opened()).collect();
        assert_eq!(c.open(), 8);
        assert!(!c.near_cap());
        let ninth = c.opened();
        assert!(c.near_cap());
        drop(ninth);
        drop(held);
        assert_eq!(c.open(), 0);
        assert!(!c.near_cap());
    }

    #[test]
    fn a_connection_counts_for_the_tenant_it_was_first_used_for_until_it_closes() {
        let c = Connections::new();
        let a1 = c.opened();
        let a2 = c.opened();
        let b = c.opened();
        assert_eq!(a1.tenant_connections("a"), 1);
        assert_eq!(a2.tenant_connections("a"), 2);
        assert_eq!(a1.tenant_connections("a"), 2, "counted once per connection");
        assert_eq!(b.tenant_connections("b"), 1);
        assert_eq!(
            b.tenant_connections("a"),
            1,
            "its first tenant is the one it counts for"
        );
        drop(a2);
        assert_eq!(a1.tenant_connections("a"), 1);
        let unused = c.opened();
        drop(unused);
        assert_eq!(
            a1.tenant_connections("a"),
            1,
            "a connection never used counts for none"
        );
    }
}
