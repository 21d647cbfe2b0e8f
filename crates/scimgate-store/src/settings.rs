//! The storage keys of the configuration, whatever the backend: the read pool and each
//! tenant's share of it, how long and how much one read may take, and how long the audit
//! trail is kept. The binary's configuration flattens them (the keys stay top-level).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// Read-only connections in the pool.
    pub read_connections: u32,
    /// Read connections one tenant may hold at once; unset: all but a quarter (at least
    /// one) of `read_connections`, which stay free for the other tenants.
    pub tenant_read_connections: Option<u32>,
    /// Longest a read query may run before it is stopped (400 `tooMany`), in ms.
    pub query_timeout_ms: u64,
    /// Most group members (or user groups) one list page carries; the page ends early.
    pub max_list_members: usize,
    /// Most bytes of stored resources (and member names) one list page carries; likewise.
    pub max_page_bytes: usize,
    /// Days the audit trail keeps its rows; 0 keeps them for ever.
    pub audit_retention_days: u32,
    /// Days the change feed keeps an event that every receiver and cursor has; 0 keeps
    /// them for ever.
    pub events_retention_days: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            read_connections: 8,
            tenant_read_connections: None,
            query_timeout_ms: 5000,
            max_list_members: 10_000,
            max_page_bytes: 4 << 20,
            audit_retention_days: 90,
            events_retention_days: 7,
        }
    }
}

impl StoreConfig {
    /// A tenant's share of the read connections.
    pub fn tenant_read_share(&self) -> u32 {
        let total = self.read_connections.max(1);
        self.tenant_read_connections
            .unwrap_or(total - (total / 4).max(1).min(total - 1))
            .clamp(1, total)
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.query_timeout_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_leaves_a_quarter_of_the_read_pool_to_the_others() {
        // (pool, tenant_read_connections, share)
        let rows = [
            (8, None, 6),
            (1, None, 1),
            (2, None, 1),
            (4, None, 3),
            (8, Some(2), 2),
            (8, Some(20), 8),
            (8, Some(0), 1),
        ];
        for (pool, set, share) in rows {
            let c = StoreConfig {
                read_connections: pool,
                tenant_read_connections: set,
                ..StoreConfig::default()
            };
            assert_eq!(c.tenant_read_share(), share, "{pool} {set:?}");
        }
    }
}
