//! Fair shares of a scarce resource among tenants: a fixed number of slots, of which no
//! one tenant may hold more than its share, and a bounded wait for a free one.
//!
//! The read connections, the password-hashing slots and the plugin instances are each one
//! [`FairSlots`]. A tenant that asks for more than its share waits behind itself, never in
//! front of another tenant; a caller that cannot get a slot in time gets [`Busy`], which
//! the HTTP layer answers with 503 and `Retry-After`. Deadlines of work that holds a slot
//! (a query, a plugin call) are measured in the thread's own CPU time
//! ([`thread_cpu_time`]), so that waiting for a core does not count against them. The
//! server's periodic background work runs as [`Periodic`] threads, which end with their
//! owner.

mod periodic;

pub use periodic::{Periodic, StopSignal};

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// CPU time used by the calling thread so far, where the platform tells.
pub fn thread_cpu_time() -> Option<Duration> {
    cpu_time::ThreadTime::try_now()
        .ok()
        .map(|t| t.as_duration())
}

/// No slot became free within the wait: the resource is overloaded for this tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("all {what} slots{for_tenant} are in use; waited {waited_ms} ms")]
pub struct Busy {
    /// What was asked for: "read connection", "password hashing", "plugin instance".
    pub what: &'static str,
    /// " for this tenant" when the tenant's share was the limit, empty otherwise.
    pub for_tenant: &'static str,
    pub waited_ms: u128,
}

/// A pool of `total` interchangeable slots; each tenant may hold at most `per_tenant`.
#[derive(Debug)]
pub struct FairSlots {
    what: &'static str,
    total: usize,
    per_tenant: usize,
    wait: Duration,
    state: Mutex<Held>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_tenant: HashMap<String, usize>,
    /// Callers waiting for a slot: a release with none skips waking anyone (a system call).
    waiting: usize,
}

impl Held {
    /// Takes a slot for `tenant` if one is free to it now.
    fn take(&mut self, limits: &FairSlots, tenant: &str) -> Result<(), usize> {
        let mine = self.by_tenant.get(tenant).copied().unwrap_or(0);
        if self.total < limits.total && mine < limits.per_tenant {
            self.total += 1;
            match self.by_tenant.get_mut(tenant) {
                Some(n) => *n += 1,
                None => {
                    self.by_tenant.insert(tenant.to_owned(), 1);
                }
            }
            return Ok(());
        }
        Err(mine)
    }
}

impl FairSlots {
    /// `total` slots (at least 1); a tenant's share is `per_tenant` (between 1 and `total`);
    /// a caller waits at most `wait` for one.
    pub fn new(what: &'static str, total: usize, per_tenant: usize, wait: Duration) -> Arc<Self> {
        let total = total.max(1);
        Arc::new(FairSlots {
            what,
            total,
            per_tenant: per_tenant.clamp(1, total),
            wait,
            state: Mutex::new(Held::default()),
            freed: Condvar::new(),
        })
    }

    /// The share that leaves `reserve` slots for the other tenants (at least one slot).
    pub fn share_leaving(total: usize, reserve: usize) -> usize {
        total.saturating_sub(reserve).max(1)
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn per_tenant(&self) -> usize {
        self.per_tenant
    }

    /// Takes a slot for `tenant`, waiting up to the configured time for one.
    pub fn acquire(self: &Arc<Self>, tenant: &str) -> Result<Slot, Busy> {
        let started = Instant::now();
        let deadline = started + self.wait;
        let mut held = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let mine = match held.take(self, tenant) {
                Ok(()) => return Ok(self.slot(tenant)),
                Err(mine) => mine,
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(Busy {
                    what: self.what,
                    for_tenant: if mine >= self.per_tenant {
                        " for this tenant"
                    } else {
                        ""
                    },
                    waited_ms: started.elapsed().as_millis(),
                });
            }
            held.waiting += 1;
            held = self
                .freed
                .wait_timeout(held, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            held.waiting -= 1;
        }
    }

    /// Takes a slot for `tenant` only if one is free to it now.
    pub fn try_acquire(self: &Arc<Self>, tenant: &str) -> Option<Slot> {
        let mut held = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        held.take(self, tenant).ok().map(|()| self.slot(tenant))
    }

    fn slot(self: &Arc<Self>, tenant: &str) -> Slot {
        Slot {
            slots: Arc::clone(self),
            tenant: tenant.to_owned(),
        }
    }

    /// Slots in use now: in all, and by `tenant`.
    pub fn in_use(&self, tenant: &str) -> (usize, usize) {
        let held = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (held.total, held.by_tenant.get(tenant).copied().unwrap_or(0))
    }

    fn release(&self, tenant: &str) {
        let mut held = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_tenant.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                held.by_tenant.remove(tenant);
            }
        }
        let waiting = held.waiting > 0;
        drop(held);
        // Every waiter re-checks: the freed slot may be usable only by another tenant.
        if waiting {
            self.freed.notify_all();
        }
    }
}

/// One slot held; given back when dropped (also on a panic that unwinds past it).
#[derive(Debug)]
pub struct Slot {
    slots: Arc<FairSlots>,
    tenant: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.release(&self.tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(total: usize, per_tenant: usize, wait_ms: u64) -> Arc<FairSlots> {
        FairSlots::new("test", total, per_tenant, Duration::from_millis(wait_ms))
    }

    #[test]
    fn a_tenant_cannot_take_more_than_its_share() {
        let s = slots(4, 3, 10);
        let held: Vec<Slot> = (0..3).map(|_| s.acquire("a").expect("slot")).collect();
        let busy = s.acquire("a").expect_err("share used up");
        assert_eq!(busy.for_tenant, " for this tenant");
        // Another tenant still gets the slot that was kept for it.
        let other = s.acquire("b").expect("slot for b");
        assert_eq!(s.in_use("a"), (4, 3));
        drop(other);
        drop(held);
        assert_eq!(s.in_use("a"), (0, 0));
    }

    #[test]
    fn all_slots_busy_is_reported_without_blame() {
        let s = slots(2, 2, 5);
        let _a = s.acquire("a").expect("slot");
        let _b = s.acquire("b").expect("slot");
        let busy = s.acquire("c").expect_err("full");
        assert_eq!(busy.for_tenant, "");
        assert!(busy.to_string().contains("all test slots are in use"));
    }

    #[test]
    fn a_waiter_gets_the_slot_freed_by_another_thread() {
        let s = slots(1, 1, 5_000);
        let first = s.acquire("a").expect("slot");
        let s2 = Arc::clone(&s);
        let waiter = std::thread::spawn(move || s2.acquire("b").map(|_| ()));
        std::thread::sleep(Duration::from_millis(20));
        drop(first);
        assert_eq!(waiter.join().expect("thread"), Ok(()));
    }

    #[test]
    fn try_acquire_keeps_the_shares_and_never_waits() {
        // A wait of a minute: a try that waited would hang the test.
        let s = slots(3, 2, 60_000);
        let a1 = s.try_acquire("a").expect("free slot");
        let _a2 = s.try_acquire("a").expect("free slot");
        assert!(s.try_acquire("a").is_none(), "share used up");
        let _b = s.try_acquire("b").expect("the slot kept for b");
        assert!(s.try_acquire("c").is_none(), "all slots in use");
        drop(a1);
        assert!(s.try_acquire("c").is_some());
        assert_eq!(s.in_use("c"), (2, 0));
    }

    #[test]
    fn a_slot_is_given_back_when_its_holder_panics() {
        let s = slots(1, 1, 10);
        let s2 = Arc::clone(&s);
        let _ = std::thread::spawn(move || {
            let _slot = s2.acquire("a").expect("slot");
            panic!("plugin host bug");
        })
        .join();
        assert!(s.acquire("a").is_ok());
    }

    #[test]
    fn share_leaving_keeps_at_least_one() {
        assert_eq!(FairSlots::share_leaving(8, 2), 6);
        assert_eq!(FairSlots::share_leaving(1, 2), 1);
    }
}
