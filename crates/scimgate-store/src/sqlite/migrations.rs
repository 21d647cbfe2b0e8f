//! Forward-only schema migrations, embedded in the binary and tracked in `PRAGMA user_version`.

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use crate::error::StoreError;

fn steps() -> Vec<M<'static>> {
    vec![
        M::up(include_str!("migrations/0001_init.sql")),
        // The attribute index is computed in Rust (case folding), so a hook fills it.
        M::up_with_hook(
            include_str!("migrations/0002_attribute_index.sql"),
            super::index::backfill,
        ),
        M::up(include_str!("migrations/0003_resource_counts.sql")),
        M::up(include_str!("migrations/0004_access_and_audit.sql")),
        M::up_with_hook(
            include_str!("migrations/0005_unicode_keys.sql"),
            super::index::rekey,
        ),
        M::up(include_str!("migrations/0006_events.sql")),
        M::up(include_str!("migrations/0007_oauth_clients.sql")),
        M::up(include_str!("migrations/0008_schema_set.sql")),
        M::up(include_str!("migrations/0009_admin_lookups.sql")),
        M::up(include_str!("migrations/0010_flag_counts.sql")),
    ]
}

/// The schema version this binary writes.
pub const LATEST: i64 = 10;

/// Brings `conn` to [`LATEST`]; refuses a database written by a newer scimgate.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > LATEST {
        return Err(StoreError::DatabaseTooNew {
            found,
            supported: LATEST,
        });
    }
    Migrations::new(steps())
        .to_latest(conn)
        .map_err(|e| StoreError::Migration(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_applies_from_an_empty_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = Connection::open(dir.path().join("m.db")).expect("open");
        migrate(&mut conn).expect("migrate");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, LATEST);
        assert_eq!(steps().len() as i64, LATEST);
        assert!(Migrations::new(steps()).validate().is_ok());
        migrate(&mut conn).expect("second run is a no-op");
    }

    #[test]
    fn refuses_a_newer_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = Connection::open(dir.path().join("m.db")).expect("open");
        conn.execute_batch(&format!("PRAGMA user_version = {}", LATEST + 1))
            .expect("set");
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::DatabaseTooNew { .. })
        ));
    }
}
