//! Storage failures, each of which the HTTP layer maps to one SCIM status.

use scimgate_model::ResourceType;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no {0} with id '{1}'")]
    NotFound(ResourceType, String),
    #[error("stored version is {current}")]
    VersionMismatch { current: i64 },
    /// The write was checked against a schema set older than the one storage now serves
    /// (a reload came in between): it is checked again and retried.
    #[error("the schemas changed while the write was on its way")]
    SchemasChanged,
    #[error("userName '{0}' is already taken")]
    UserNameTaken(String),
    #[error("member '{0}' does not exist")]
    MemberNotFound(String),
    #[error("member '{id}' is a {actual}, not a {claimed}")]
    MemberTypeMismatch {
        id: String,
        claimed: ResourceType,
        actual: ResourceType,
    },
    #[error("a group cannot be a member of itself ('{0}')")]
    SelfMembership(String),
    /// The tenant was removed while the write was on its way (checked in the write's own
    /// transaction, so that no row outlives its tenant).
    #[error("the tenant '{0}' is not registered")]
    TenantNotRegistered(String),
    #[error("{0}")]
    UnsupportedFilter(String),
    #[error("{0}")]
    UnsupportedSort(String),
    #[error("{0}")]
    InvalidCursor(String),
    #[error("database busy: no connection free within {0:?}")]
    PoolTimeout(std::time::Duration),
    /// The tenant already holds its share of the read connections, and none came free.
    #[error("database busy: {0}")]
    Busy(#[from] scimgate_limits::Busy),
    /// A read query used more than its deadline of CPU time and was stopped.
    #[error("the query used more than {} ms of CPU time", .0.as_millis())]
    QueryTimeout(std::time::Duration),
    #[error("the writer is not running")]
    WriterGone,
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("database schema version {found} is newer than this binary ({supported})")]
    DatabaseTooNew { found: i64, supported: i64 },
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] postgres::Error),
    /// The database did not answer (PostgreSQL, at start or since): temporary.
    #[error("the database is unreachable: {0}")]
    Unreachable(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
