//! Storage for scimgate. The HTTP layer sees only the [`Store`] trait. What every backend
//! shares is at this level (the trait, `records`, `filter_plan`, `error`); each backend
//! lives in its own module and imports from here, never the other way: [`SqliteStore`]
//! (`sqlite`) keeps everything in one SQLite file with a group-committing writer and a
//! pool of readers.

mod admin;
mod commits;
mod error;
mod filter_plan;
mod filter_sql;
mod index_rows;
mod page;
mod pending;
pub mod postgres;
mod records;
mod settings;
mod sort_plan;
mod sqlite;
mod stored_rows;
mod transfer;

use scimgate_model::ResourceType;
use scimgate_model::filter::Filter;
use scimgate_model::path::AttrPath;
use serde_json::Value;

pub use crate::postgres::{
    PgAdmin, PgFacts, PgOptions, PgStore, TlsFiles, inspect as inspect_postgres,
};
pub use admin::Admin;
pub use error::StoreError;
pub use pending::PendingWrite;
pub use records::{
    AccessSnapshot, AuditQuery, AuditRecord, ChangeKind, ChangeNote, ClientAssertion, ClientSecret,
    EventHold, EventPosition, EventRecord, GroupRef, MemberRef, NewResource, OAuthClient,
    POLL_CURSOR, PatchOutcome, PatchWrite, RemoveOutcome, Revocation, STREAM_CURSOR, StoreStats,
    StoredDocument, StoredResource, TenantInfo, TokenRecord, is_cursor, skipped_members_detail,
};
pub use settings::StoreConfig;
pub use sqlite::{
    AdminDb, CheckpointPolicy, DatabaseCheck, SqliteOptions, SqliteStore, backup_sqlite,
    check_sqlite,
};
pub use transfer::{TableReport, TransferReport, postgres_to_sqlite, sqlite_to_postgres};

/// The most members or groups [`Store::get_at_once`] reads on the caller's thread: a
/// user's groups or a small group's members, a fraction of a millisecond.
pub const AT_ONCE_RELATIONS: usize = 64;

/// What a list request asks of storage.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// `None`: creation order.
    pub sort: Option<SortBy>,
    pub page: Page,
    /// Read the related side: members of groups, groups of users.
    pub with_relations: bool,
}

/// `sortBy` and `sortOrder`: a singular attribute; ties are broken by `id`, and resources
/// without a value sort last in either direction.
#[derive(Debug, Clone)]
pub struct SortBy {
    pub path: AttrPath,
    pub descending: bool,
}

#[derive(Debug, Clone)]
pub enum Page {
    /// RFC 7644 §3.4.2.4: 1-based `startIndex`.
    Index { start_index: u64, count: u64 },
    /// RFC 9865: after the given position (`None`: from the start).
    Cursor { after: Option<Position>, count: u64 },
}

/// Where a cursor page ends: the last resource's sort key and id.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub key: Value,
    pub id: String,
}

/// A page of a list; `R` is how its resources come (parsed, or as read for an answer:
/// [`StoredDocument`]).
#[derive(Debug, Clone)]
pub struct ListPage<R = StoredResource> {
    /// Always for index paging; for cursor paging only on the first page, as counting a
    /// large result costs a full scan.
    pub total_results: Option<u64>,
    pub resources: Vec<R>,
    /// The position after the last resource, when more follow (cursor paging).
    pub next: Option<Position>,
}

/// The storage contract. Every call names its tenant; nothing crosses tenants.
/// `expected_version` is an optimistic-concurrency check: the write fails with
/// [`StoreError::VersionMismatch`] when the stored version differs.
pub trait Store: Send + Sync {
    fn create(&self, tenant: &str, new: NewResource) -> Result<StoredResource, StoreError>;
    /// Queues a create behind the caller's earlier queued writes and returns without
    /// waiting for its commit: a caller's queued creates run in the order queued, each
    /// alone (a failure rolls back only itself), and share commits. The default writes at
    /// once.
    fn create_queued(&self, tenant: &str, new: NewResource) -> PendingWrite<StoredResource> {
        PendingWrite::ready(self.create(tenant, new))
    }
    fn replace(
        &self,
        tenant: &str,
        id: &str,
        expected_version: Option<i64>,
        new: NewResource,
    ) -> Result<StoredResource, StoreError>;
    /// Deletes a resource; `change` is what its event records besides.
    fn delete(
        &self,
        tenant: &str,
        rt: ResourceType,
        id: &str,
        expected_version: Option<i64>,
        change: ChangeNote,
    ) -> Result<(), StoreError>;
    /// One resource, with its relations (members or groups) when `with_relations`.
    fn get(
        &self,
        tenant: &str,
        rt: ResourceType,
        id: &str,
        with_relations: bool,
    ) -> Result<Option<StoredResource>, StoreError> {
        self.get_document(tenant, rt, id, with_relations)?
            .map(StoredDocument::parse)
            .transpose()
    }
    /// [`Store::get`] with the attributes left as their stored JSON text: what an answer
    /// needs, without the cost of parsing them.
    fn get_document(
        &self,
        tenant: &str,
        rt: ResourceType,
        id: &str,
        with_relations: bool,
    ) -> Result<Option<StoredDocument>, StoreError>;
    /// [`Store::get`] answered on the caller's thread, when that costs no more than a few
    /// index lookups in a local file: a read connection and the tenant's share free at
    /// once, and at most [`AT_ONCE_RELATIONS`] members or groups. `None` otherwise (and on
    /// a networked database): run `get` off the async workers instead. Saves a GET the
    /// hand-off to a blocking thread and back, which cost more than the lookup itself.
    fn get_at_once(
        &self,
        _tenant: &str,
        _rt: ResourceType,
        _id: &str,
        _with_relations: bool,
    ) -> Option<Result<Option<StoredDocument>, StoreError>> {
        None
    }
    fn list(
        &self,
        tenant: &str,
        rt: ResourceType,
        query: &ListQuery,
    ) -> Result<ListPage, StoreError> {
        let page = self.list_documents(tenant, rt, query)?;
        Ok(ListPage {
            total_results: page.total_results,
            resources: page
                .resources
                .into_iter()
                .map(StoredDocument::parse)
                .collect::<Result<_, _>>()?,
            next: page.next,
        })
    }
    /// [`Store::list`] with the attributes left as their stored JSON text, as
    /// [`Store::get_document`].
    fn list_documents(
        &self,
        tenant: &str,
        rt: ResourceType,
        query: &ListQuery,
    ) -> Result<ListPage<StoredDocument>, StoreError>;
    /// [`Store::list`] answered on the caller's thread, as [`Store::get_at_once`] answers
    /// a read, for a filter that matches at most one resource whatever is stored
    /// (`filter_plan::matches_at_most_one`: `userName eq`, what a provisioning client
    /// asks before each create) and index paging. `None` otherwise: run `list` off the
    /// async workers instead.
    fn list_at_once(
        &self,
        _tenant: &str,
        _rt: ResourceType,
        _query: &ListQuery,
    ) -> Option<Result<ListPage<StoredDocument>, StoreError>> {
        None
    }
    /// A schema set about to be put in force (`scimgate_model::registry`): the attribute
    /// paths it brings are registered first, so that every write under it finds its
    /// values' index paths (filters, sorting).
    fn register_schemas(
        &self,
        next: &'static scimgate_model::registry::Registry,
    ) -> Result<(), StoreError>;
    /// The operator's schema set last put in force (as `save_schema_set` kept it).
    fn schema_set(&self) -> Result<Option<String>, StoreError>;
    /// Keeps the operator's schema set now in force, for the next start to check against.
    fn save_schema_set(&self, json: &str) -> Result<(), StoreError>;
    /// How many resources, in all tenants, hold a value at attribute `path` (canonical and
    /// URN-qualified: `urn:…:User:costCenter`).
    fn attribute_in_use(&self, path: &str) -> Result<u64, StoreError>;
    /// Removes every stored value of extension attribute `urn`:`attribute` from the
    /// resources of type `rt`, each resource's version moving on; returns how many
    /// changed. Run while the schema that defines it is still in force.
    fn purge_attribute(
        &self,
        rt: ResourceType,
        urn: &str,
        attribute: &str,
    ) -> Result<u64, StoreError>;
    /// Applies a PATCH: new attributes when any changed, and membership changes row by
    /// row, in one transaction. Returns the resource as stored (a User with its groups) and
    /// the member ids skipped as unknown.
    fn patch(&self, tenant: &str, id: &str, patch: PatchWrite) -> Result<PatchOutcome, StoreError>;
    /// Up to `limit` events of `tenant`'s change feed after sequence number `after`, in
    /// order. Every committed write has its event, written in the write's transaction.
    fn events(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// The last sequence number of `tenant`'s feed (0 before its first event).
    fn event_head(&self, tenant: &str) -> Result<i64, StoreError>;
    /// The database's size on disk, in bytes (the admin page's health view).
    fn size_bytes(&self) -> Result<u64, StoreError>;
    /// Every tenant's last sequence number, in one read (a receiver of every tenant looks
    /// at them all often).
    fn event_heads(&self) -> Result<std::collections::HashMap<String, i64>, StoreError>;
    /// Deletes events written before `before` (RFC 3339) that every hold (a configured
    /// receiver, in the tenants it follows) and every poll or stream cursor is past;
    /// returns how many.
    fn prune_events(&self, before: &str, holds: &[EventHold]) -> Result<usize, StoreError>;
    /// Events written so far, every tenant together (for `/metrics`).
    fn events_written(&self) -> Result<u64, StoreError>;
    /// Where each consumer of the feed stands in each tenant.
    fn event_positions(&self) -> Result<Vec<EventPosition>, StoreError>;
    /// Where `consumer` stands in `tenant` (`None`: it has no stored position).
    fn event_position(&self, consumer: &str, tenant: &str) -> Result<Option<i64>, StoreError>;
    /// Queues a consumer's position; committed with the next batch. A position only moves
    /// forward this way.
    fn save_event_position(&self, position: EventPosition);
    /// Saves a consumer's position (forward only) and returns once it is committed: a poll
    /// consumer's next request must find what it acknowledged.
    fn commit_event_position(&self, position: EventPosition) -> Result<(), StoreError>;
    /// Queues a consumer's position as given, backwards too (a replay taken).
    fn reset_event_position(&self, position: EventPosition);
    /// The replays asked for `consumer` (`scimgate events replay`): each tenant and the
    /// sequence number to deliver from again. Taken: each is returned once.
    fn take_event_replays(&self, consumer: &str) -> Result<Vec<(String, i64)>, StoreError>;
    /// Blocks until a write commits after the one counted as `seen` (or `timeout` passes);
    /// returns the count of commits so far. Consumers of the feed wait here for new events.
    fn wait_for_commit(&self, seen: u64, timeout: std::time::Duration) -> u64;
    /// How many batches have committed since the store opened (what `wait_for_commit`
    /// counts), without waiting.
    fn commit_count(&self) -> u64;
    /// Returns once everything queued so far (audit rows, positions) is committed: the
    /// last step of a clean stop.
    fn flush(&self) -> Result<(), StoreError>;
    /// A cheap round trip to the database, for readiness probes.
    fn ping(&self) -> Result<(), StoreError>;
    /// Counters for `/metrics`.
    fn stats(&self) -> StoreStats;
    /// The registered tenants and the revoked token ids, as stored now.
    fn access(&self) -> Result<AccessSnapshot, StoreError>;
    /// Queues an audit record (of a refused write: a write's own rides in its
    /// `ChangeNote`); it is committed with the next batch of writes.
    fn append_audit(&self, record: AuditRecord);
    /// Reads audit records, oldest first.
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// Deletes audit records older than `before` (RFC 3339); returns how many.
    fn prune_audit(&self, before: &str) -> Result<usize, StoreError>;
    /// How long a caller waits for an answer before it gives up (503): for a database
    /// that may hold its connections open and never answer. None: the store answers.
    fn answer_deadline(&self) -> Option<std::time::Duration> {
        None
    }
    /// Takes or renews the lease `name` for this instance for `ttl`: whether it holds it
    /// now. Work that one instance of several does at a time (a push receiver's delivery)
    /// runs only while its lease is held, and another instance takes it over once the
    /// holder stops renewing. The default holds every lease: one server per SQLite file,
    /// which the data folder's lock ensures.
    fn hold_lease(&self, name: &str, ttl: std::time::Duration) -> Result<bool, StoreError> {
        let _ = (name, ttl);
        Ok(true)
    }
    /// Publishes what this instance runs (a fingerprint of its plugins and schemas), for
    /// the other instances on the same database to compare. The default keeps nothing:
    /// one server per SQLite file.
    fn publish_fingerprint(&self, fingerprint: &str) -> Result<(), StoreError> {
        let _ = fingerprint;
        Ok(())
    }
    /// The other instances that published in the last 30 seconds, each with its
    /// fingerprint.
    fn other_fingerprints(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(Vec::new())
    }
}
