//! Which reads may be answered on the async worker itself (`Store::get_at_once`,
//! `list_at_once`) rather than on a blocking thread. A worker serves its requests in turn,
//! so whatever it answers itself is served first come, first served, with no share per
//! tenant: a tenant sending thousands of reads a second (on many connections, pipelined,
//! or through a token acting for several tenants) would make every other tenant's answer
//! wait behind its own. So while another tenant has sent a request within the last second,
//! a tenant answers at most `PER_WINDOW` reads at once per `WINDOW`; its further reads go
//! to the blocking threads, where its share of read connections holds it back. A tenant
//! alone on the server keeps the fast path at any rate.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The span over which a tenant's reads answered at once are counted.
const WINDOW: Duration = Duration::from_millis(10);
/// Reads a tenant may have answered at once per window while others are active: 1,000 a
/// second, a few milliseconds of a worker's time.
const PER_WINDOW: u32 = 10;
/// How long a tenant counts as active after its last request.
const ACTIVE: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct AtOnce {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// The two tenants seen last, each with when: enough to know whether any tenant other
    /// than a given one was active, whatever the number of tenants.
    last: [Option<(String, Instant)>; 2],
    window_started: Option<Instant>,
    /// Reads answered at once in the current window, per tenant.
    reads: HashMap<String, u32>,
}

impl AtOnce {
    /// A request of `tenant` arrived (every authenticated request, reads or not).
    pub fn saw(&self, tenant: &str) {
        self.saw_at(tenant, Instant::now());
    }

    /// Whether a read of `tenant` may be answered on the async worker; counts it if so.
    pub fn allows(&self, tenant: &str) -> bool {
        self.allows_at(tenant, Instant::now())
    }

    fn saw_at(&self, tenant: &str, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut seen.last {
            [Some((first, at)), _] if first == tenant => *at = now,
            // The two alternating (the usual case with two tenants): no new name to keep.
            [_, Some((second, at))] if second == tenant => {
                *at = now;
                seen.last.swap(0, 1);
            }
            last => {
                last[1] = last[0].take();
                last[0] = Some((tenant.to_owned(), now));
            }
        }
    }

    fn allows_at(&self, tenant: &str, now: Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let others_active = seen
            .last
            .iter()
            .flatten()
            .any(|(t, at)| t != tenant && now.saturating_duration_since(*at) < ACTIVE);
        if !others_active {
            return true;
        }
        if seen
            .window_started
            .is_none_or(|started| now.saturating_duration_since(started) >= WINDOW)
        {
            seen.window_started = Some(now);
            seen.reads.clear();
        }
        let reads = match seen.reads.get_mut(tenant) {
            Some(n) => n,
            None => seen.reads.entry(tenant.to_owned()).or_default(),
        };
        *reads += 1;
        *reads <= PER_WINDOW
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_alone_answers_at_once_at_any_rate() {
        let gate = AtOnce::default();
        let t0 = Instant::now();
        gate.saw_at("a", t0);
        assert!((0..1000).all(|_| gate.allows_at("a", t0)));
    }

    #[test]
    fn with_another_tenant_active_a_tenant_gets_its_part_per_window() {
        let gate = AtOnce::default();
        let t0 = Instant::now();
        gate.saw_at("b", t0);
        gate.saw_at("a", t0);
        let allowed = (0..100).filter(|_| gate.allows_at("a", t0)).count();
        assert_eq!(allowed, PER_WINDOW as usize);
        assert!(
            gate.allows_at("b", t0),
            "the other tenant still answers at once"
        );
        let next = t0 + WINDOW;
        assert!(gate.allows_at("a", next), "a new window, a new part");
        // Once the other tenant has been quiet for a second, the limit is gone.
        let later = t0 + ACTIVE + WINDOW;
        gate.saw_at("a", later);
        assert_eq!((0..100).filter(|_| gate.allows_at("a", later)).count(), 100);
    }

    #[test]
    fn the_two_tenants_seen_last_are_kept_whatever_their_order() {
        let gate = AtOnce::default();
        let t0 = Instant::now();
        for t in ["a", "b", "a", "a", "c"] {
            gate.saw_at(t, t0);
        }
        // c then a are the last two: b counts for neither of them, but each for the other.
        let a_allowed = (0..100).filter(|_| gate.allows_at("a", t0)).count();
        assert_eq!(a_allowed, PER_WINDOW as usize);
        let c_allowed = (0..100).filter(|_| gate.allows_at("c", t0)).count();
        assert_eq!(c_allowed, PER_WINDOW as usize);
    }
}
