//! Open client connections, counted as they open and close, so that while the server is
//! near its connection cap no answer keeps its connection alive: an idle keep-alive
//! connection must not hold the place a new client needs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct Connections {
    open: AtomicUsize,
    /// The connection cap in force (all workers); 0 until the server sets it.
    cap: AtomicUsize,
}

/// Held for as long as one connection is open.
#[derive(Debug)]
pub struct OpenConnection(Arc<Connections>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
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
        OpenConnection(Arc::clone(self))
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
}
