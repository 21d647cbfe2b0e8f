//! How scimgate opens a read-write connection to its database, in one place: the server's
//! writer and the command-line tools' `AdminDb` alike.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::config::DbConfig;

use crate::error::StoreError;

/// A read-write connection: WAL, so that readers run beside the writer; `synchronous=FULL`,
/// so that every commit survives power loss before it is acknowledged; foreign keys on;
/// and waiting up to `busy` for a lock another process holds.
pub fn open_read_write(path: &Path, busy: Duration) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    plan_once(&conn)?;
    Ok(conn)
}

/// Plans each cached statement once, whatever values are bound to it. Otherwise SQLite
/// plans a statement again whenever it runs with a parameter its plan looked at (a bound
/// `LIMIT`, or a value compared against an index's statistics): for a list or a lookup
/// with its relations, parsing and planning cost as much as running the query. Every
/// query names its indexes' order itself (the unary `+`s), not the bound values.
pub fn plan_once(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map(|_| ())
}
