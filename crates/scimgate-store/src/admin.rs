//! What the command-line tools change beside running servers, whatever the backend:
//! tenants, tokens and their revocation, OAuth clients, and the change feed's consumers;
//! and what they read (the audit trail, events). [`AdminDb`](crate::AdminDb) does it on
//! the SQLite file, [`PgAdmin`](crate::PgAdmin) on a PostgreSQL database shared by every
//! instance, which each picks up within a second (its access snapshot).

use crate::error::StoreError;
use crate::records::{
    AccessSnapshot, AuditQuery, AuditRecord, ClientSecret, EventPosition, EventRecord, OAuthClient,
    RemoveOutcome, Revocation, TenantInfo, TokenRecord,
};

pub trait Admin {
    /// The registered tenants, revoked tokens and clients, as stored now.
    fn snapshot(&self) -> Result<AccessSnapshot, StoreError>;
    /// Adds a tenant; false when it was there already.
    fn add_tenant(&self, name: &str, now: &str) -> Result<bool, StoreError>;
    fn tenants(&self) -> Result<Vec<TenantInfo>, StoreError>;
    /// Removes a tenant; one that holds users or groups only with `purge`, which deletes
    /// them in the same transaction.
    fn remove_tenant(&mut self, name: &str, purge: bool) -> Result<RemoveOutcome, StoreError>;
    fn record_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    /// Revokes `jti`; one never minted here only when `external`.
    fn revoke_token(&self, jti: &str, now: i64, external: bool) -> Result<Revocation, StoreError>;
    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Registers a client with its first secret; false when one of that name exists.
    fn add_client(&self, client: &OAuthClient) -> Result<bool, StoreError>;
    fn clients(&self) -> Result<Vec<OAuthClient>, StoreError>;
    /// Gives client `name` a new secret; its others end at `old_until` unless sooner.
    fn rotate_client(
        &self,
        name: &str,
        secret: &ClientSecret,
        old_until: i64,
    ) -> Result<bool, StoreError>;
    fn remove_client(&self, name: &str) -> Result<bool, StoreError>;
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// The newest `count` events (of one tenant or all), oldest first.
    fn events_tail(
        &self,
        tenant: Option<&str>,
        count: usize,
    ) -> Result<Vec<EventRecord>, StoreError>;
    fn events_after(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError>;
    fn event_heads(&self) -> Result<Vec<(String, i64)>, StoreError>;
    fn event_positions(&self) -> Result<Vec<EventPosition>, StoreError>;
    /// Forgets a cursor's position (in one tenant or all); how many went.
    fn forget_position(&self, consumer: &str, tenant: Option<&str>) -> Result<usize, StoreError>;
    fn request_replay(&self, consumer: &str, tenant: &str, from: i64) -> Result<(), StoreError>;
    /// Sets a dead-lettered consumer active again; in how many tenants it was dead.
    fn enable_consumer(&self, consumer: &str) -> Result<usize, StoreError>;
}

/// The newest `count` events of `tenants` (each with its last number), oldest first, read
/// with `after` (tenant, from, limit): how `events tail` reads on either backend.
pub fn tail(
    heads: Vec<(String, i64)>,
    count: usize,
    mut after: impl FnMut(&str, i64, usize) -> Result<Vec<EventRecord>, StoreError>,
) -> Result<Vec<EventRecord>, StoreError> {
    let mut all = Vec::new();
    for (t, last) in heads {
        let from = (last - i64::try_from(count).unwrap_or(i64::MAX)).max(0);
        all.extend(after(&t, from, count)?);
    }
    all.sort_by(|a, b| (&a.at, &a.tenant, a.seq).cmp(&(&b.at, &b.tenant, b.seq)));
    let skip = all.len().saturating_sub(count);
    Ok(all.split_off(skip))
}
