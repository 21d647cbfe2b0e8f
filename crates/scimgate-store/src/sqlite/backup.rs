//! `scimgate backup`, `restore` and `doctor` on the SQLite file: a consistent copy of a
//! database a server is writing to, and the checks that a file is whole (SQLite's
//! `integrity_check`, the schema version, the rows of each table).
//!
//! The copy is SQLite's online backup API run in one step inside a read transaction that
//! first counts every table's rows: the copy is of exactly that snapshot, so its counts
//! must match. A reader in WAL mode blocks no writer; the server's checkpoints copy what
//! they can around it (`writer::checkpoint`).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;
use crate::sqlite::migrations::LATEST;

/// What the checks found in one database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseCheck {
    /// `PRAGMA user_version`: the migrations applied.
    pub schema_version: i64,
    /// The newest version this binary knows; a file above it was written by a newer one.
    pub supported_version: i64,
    /// What `PRAGMA integrity_check` reported; empty when it said `ok`.
    pub problems: Vec<String>,
    /// Every table with its rows, by name.
    pub rows: Vec<(String, u64)>,
    /// Bytes of the file (pages in use and free).
    pub bytes: u64,
    /// When the newest audit row or event was written (RFC 3339): a clock now earlier
    /// than this went back.
    pub newest_write: Option<String>,
}

impl DatabaseCheck {
    pub fn is_whole(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn rows_of(&self, table: &str) -> Option<u64> {
        self.rows.iter().find(|(t, _)| t == table).map(|(_, n)| *n)
    }
}

/// Copies the database at `from` (a server may be writing to it) into a new file `to`
/// (missing, or empty: the caller may create it with the mode it wants), as one snapshot, as a single file (rollback journal, no
/// write-ahead log beside it); then checks the copy. Returns the copy's check; fails when
/// the copy is not whole or its rows differ from the snapshot's.
pub fn backup_sqlite(from: &Path, to: &Path) -> Result<DatabaseCheck, StoreError> {
    if std::fs::metadata(to).is_ok_and(|m| m.len() > 0) {
        return Err(StoreError::Transfer(format!(
            "{} exists; a backup is written to a new file",
            to.display()
        )));
    }
    // Read-write (a read-only connection to a live WAL file may not see the log's index),
    // but nothing is written: no migration, no pragma that changes the file.
    let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    source.busy_timeout(std::time::Duration::from_secs(10))?;
    source.execute_batch("BEGIN DEFERRED")?;
    let counted = table_rows(&source)?;
    let mut target = Connection::open(to)?;
    {
        // The backup step runs in the read transaction opened by the counts above, so it
        // copies that snapshot; -1 copies every page in one step.
        let backup = rusqlite::backup::Backup::new(&source, &mut target)?;
        backup.step(-1)?;
    }
    source.execute_batch("COMMIT")?;
    drop(source);
    // A backup is one file to carry: no -wal beside it; synced before it is reported.
    target.pragma_update(None, "journal_mode", "DELETE")?;
    target.pragma_update(None, "synchronous", "FULL")?;
    target.execute_batch("BEGIN IMMEDIATE; COMMIT")?;
    drop(target);
    let check = check_sqlite(to)?;
    if !check.is_whole() {
        return Err(StoreError::Transfer(format!(
            "the copy {} is not whole: {}",
            to.display(),
            check.problems.join("; ")
        )));
    }
    if check.rows != counted {
        return Err(StoreError::Transfer(format!(
            "the copy {} holds other rows than the snapshot it was taken from",
            to.display()
        )));
    }
    Ok(check)
}

/// Checks the database file at `path` without changing it: integrity, schema version,
/// rows per table.
pub fn check_sqlite(path: &Path) -> Result<DatabaseCheck, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Transfer(format!(
            "{} is not a database file",
            path.display()
        )));
    }
    // Read-write open for a live WAL file (see above); `query_only` keeps it from writing.
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "query_only", true)?;
    conn.execute_batch("BEGIN DEFERRED")?;
    let schema_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let mut problems = Vec::new();
    {
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let line: String = row.get(0)?;
            if line != "ok" {
                problems.push(line);
            }
        }
    }
    let rows = table_rows(&conn)?;
    let bytes: i64 = conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )?;
    let newest_write = if schema_version >= NEWEST_WRITE_TABLES {
        conn.query_row(NEWEST_WRITE, [], |r| r.get(0))?
    } else {
        None
    };
    conn.execute_batch("COMMIT")?;
    Ok(DatabaseCheck {
        schema_version,
        supported_version: LATEST,
        problems,
        rows,
        bytes: u64::try_from(bytes).unwrap_or(0),
        newest_write,
    })
}

/// The newest time in the audit trail and the change feed (both keep RFC 3339 UTC text,
/// which sorts as time does).
const NEWEST_WRITE: &str =
    "SELECT max(at) FROM (SELECT max(at) AS at FROM audit UNION ALL SELECT max(at) FROM events)";

/// The schema version from which both tables exist.
const NEWEST_WRITE_TABLES: i64 = 6;

/// Every table's rows, by name (SQLite's own tables left out).
fn table_rows(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    names
        .into_iter()
        .map(|name| {
            // A name read from the schema, quoted as an identifier (not a parameter:
            // SQLite takes no parameters for table names).
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            let n: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {quoted}"), [], |r| r.get(0))?;
            Ok((name, u64::try_from(n).unwrap_or(0)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::connection::open_read_write;
    use crate::sqlite::migrations::migrate;

    fn live_database(dir: &Path) -> Connection {
        let mut conn =
            open_read_write(&dir.join("live.db"), std::time::Duration::from_secs(5)).expect("open");
        migrate(&mut conn).expect("migrate");
        conn.execute(
            "INSERT INTO tenants (name, created) VALUES ('acme', '2026-01-01T00:00:00Z')",
            [],
        )
        .expect("tenant");
        conn
    }

    #[test]
    fn a_backup_is_the_snapshot_and_a_single_whole_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = live_database(dir.path());
        let copy = dir.path().join("copy.db");
        let check = backup_sqlite(&dir.path().join("live.db"), &copy).expect("backup");
        assert!(check.is_whole(), "{:?}", check.problems);
        assert_eq!(check.schema_version, LATEST);
        let tenants: i64 = live
            .query_row("SELECT count(*) FROM tenants", [], |r| r.get(0))
            .expect("count");
        assert_eq!(check.rows_of("tenants"), Some(tenants as u64));
        assert!(tenants >= 1);
        assert!(!dir.path().join("copy.db-wal").exists());
        let mode: String = Connection::open(&copy)
            .expect("open copy")
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "delete");
        // A second backup to the same file is refused, the first left as it was.
        let again = backup_sqlite(&dir.path().join("live.db"), &copy).expect_err("exists");
        assert!(again.to_string().contains("exists"), "{again}");
        drop(live);
    }

    #[test]
    fn a_damaged_file_is_reported_not_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(live_database(dir.path()));
        let path = dir.path().join("live.db");
        // Checkpointed and closed: the file alone holds the data. Overwrite every page
        // after the first (the schema) past its header with garbage.
        let mut bytes = std::fs::read(&path).expect("read");
        let page = 4096;
        assert!(bytes.len() > 3 * page, "{} bytes", bytes.len());
        for (i, b) in bytes.iter_mut().enumerate().skip(page) {
            if i % page >= 12 {
                *b = 0x5a;
            }
        }
        std::fs::write(&path, bytes).expect("write");
        let found = check_sqlite(&path).map(|c| c.problems);
        match found {
            Ok(problems) => assert!(!problems.is_empty(), "damage not seen"),
            // SQLite may refuse the damaged file before the check runs: also a finding.
            Err(e) => assert!(e.to_string().contains("malformed"), "{e}"),
        }
    }
}
