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
    Postgres(postgres::Error),
    /// The database did not answer (PostgreSQL, at start or since): temporary.
    #[error("the database is unreachable: {0}")]
    Unreachable(String),
    /// The database's settings cannot be used as given (a TLS file, say).
    #[error("{0}")]
    Setup(String),
    /// `scimgate migrate`, `backup` or `restore` could not copy or verify.
    #[error("{0}")]
    Transfer(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// A PostgreSQL failure is the database being away (the connection lost or refused, the
/// server shutting down or full: temporary, 503) or anything else (500).
impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        if unreachable(&e) {
            StoreError::Unreachable(e.to_string())
        } else {
            StoreError::Postgres(e)
        }
    }
}

fn unreachable(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(state) = e.code() {
        // Class 08: connection exception; 57P01-03: the server shutting down, crashed or
        // starting; 53300: too many connections.
        let code = state.code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
    }
    // No SQL state: the connection itself failed (an I/O error under the protocol).
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}
