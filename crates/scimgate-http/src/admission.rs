//! Admission: how many requests each tenant may have in the works at once (body read,
//! storage, plugins, rendering), so that one tenant's flood queues behind itself and never
//! takes the blocking threads, memory or connections another tenant needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use scimgate_limits::Busy;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Request slots: `total` in all, at most `per_tenant` for one tenant; a request waits up
/// to `wait` for its slot (asynchronously: a waiting request holds no thread).
pub struct Admission {
    total: Arc<Semaphore>,
    per_tenant: usize,
    wait: Duration,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A request's place; given back when the response is ready.
pub struct Admitted {
    _tenant: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(total: usize, per_tenant: usize, wait: Duration) -> Self {
        let total = total.max(1);
        Admission {
            total: Arc::new(Semaphore::new(total)),
            per_tenant: per_tenant.clamp(1, total),
            wait,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a slot of `tenant`'s share, then for one of the whole; 503 past the wait.
    pub async fn enter(&self, tenant: &str) -> Result<Admitted, Busy> {
        let started = Instant::now();
        let mine = {
            let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                tenants
                    .entry(tenant.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))),
            )
        };
        let busy = |for_tenant| Busy {
            what: "request",
            for_tenant,
            waited_ms: started.elapsed().as_millis(),
        };
        let tenant_permit = tokio::time::timeout(self.wait, mine.acquire_owned())
            .await
            .map_err(|_| busy(" for this tenant"))?
            .map_err(|_| busy(" for this tenant"))?;
        let left = self.wait.saturating_sub(started.elapsed());
        let total_permit = tokio::time::timeout(left, Arc::clone(&self.total).acquire_owned())
            .await
            .map_err(|_| busy(""))?
            .map_err(|_| busy(""))?;
        Ok(Admitted {
            _tenant: tenant_permit,
            _total: total_permit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_tenant_past_its_share_waits_then_gets_503_while_others_enter() {
        let admission = Admission::new(4, 2, Duration::from_millis(30));
        let _a1 = admission.enter("a").await.expect("first");
        let _a2 = admission.enter("a").await.expect("second");
        match admission.enter("a").await {
            Err(busy) => assert_eq!(busy.for_tenant, " for this tenant"),
            Ok(_) => panic!("expected the tenant's share to be used up"),
        }
        let _b = admission.enter("b").await.expect("other tenant enters");
    }

    #[actix_web::test]
    async fn a_freed_slot_lets_the_waiting_request_in() {
        let admission = Arc::new(Admission::new(1, 1, Duration::from_secs(5)));
        let first = admission.enter("a").await.expect("first");
        let second = {
            let admission = Arc::clone(&admission);
            actix_web::rt::spawn(async move { admission.enter("b").await.map(|_| ()) })
        };
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert!(second.await.expect("task").is_ok());
    }
}
