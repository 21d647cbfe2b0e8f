//! Storage for scimgate. The HTTP layer sees only the [`Store`] trait; [`SqliteStore`] keeps
//! everything in one SQLite file with a group-committing writer and a pool of readers.

mod error;
mod migrations;
mod records;
mod sqlite;
mod writer;

use scimgate_model::ResourceType;
use scimgate_model::filter::Filter;

pub use error::StoreError;
pub use records::{GroupRef, MemberRef, NewResource, StoredResource};
pub use sqlite::{SqliteOptions, SqliteStore, WriteStats};

/// What a list request asks of storage. Paging is 1-based, as SCIM's `startIndex`.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub start_index: u64,
    pub count: u64,
    /// Read the related side: members of groups, groups of users.
    pub with_relations: bool,
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub total_results: u64,
    pub resources: Vec<StoredResource>,
}

/// The storage contract. Every call names its tenant; nothing crosses tenants.
/// `expected_version` is an optimistic-concurrency check: the write fails with
/// [`StoreError::VersionMismatch`] when the stored version differs.
pub trait Store: Send + Sync {
    fn create(&self, tenant: &str, new: NewResource) -> Result<StoredResource, StoreError>;
    fn replace(
        &self,
        tenant: &str,
        id: &str,
        expected_version: Option<i64>,
        new: NewResource,
    ) -> Result<StoredResource, StoreError>;
    fn delete(
        &self,
        tenant: &str,
        rt: ResourceType,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError>;
    /// One resource, with its relations (members or groups) when `with_relations`.
    fn get(
        &self,
        tenant: &str,
        rt: ResourceType,
        id: &str,
        with_relations: bool,
    ) -> Result<Option<StoredResource>, StoreError>;
    fn list(
        &self,
        tenant: &str,
        rt: ResourceType,
        query: &ListQuery,
    ) -> Result<ListPage, StoreError>;
    /// A cheap round trip to the database, for readiness probes.
    fn ping(&self) -> Result<(), StoreError>;
}
