//! Versioned, forward-only migrations of the PostgreSQL schema, as SQLite's: each a SQL
//! file applied once, in order, recorded in `scimgate_migrations`. All of them run in one
//! transaction that first takes an advisory lock, so that instances starting together
//! apply each migration once (the others wait, then find it done), and a half-applied
//! migration is never seen (PostgreSQL's DDL is transactional). A database migrated by a
//! newer scimgate is refused.

use crate::error::StoreError;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_leases.sql"),
    include_str!("migrations/0003_instances.sql"),
    include_str!("migrations/0004_count_shards.sql"),
    include_str!("migrations/0005_admin_lookups.sql"),
];

/// The schema version this binary writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// The advisory lock key migrations are applied under ("scimgate" in ASCII, as a number).
const LOCK_KEY: i64 = 0x7363_696d_6761_7465;

/// Brings the database to [`LATEST`]; returns the version found before.
pub fn migrate(client: &mut postgres::Client) -> Result<i64, StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS scimgate_migrations (
             version  BIGINT PRIMARY KEY,
             applied  TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let found: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM scimgate_migrations",
            &[],
        )?
        .get(0);
    if found > LATEST {
        return Err(StoreError::DatabaseTooNew {
            found,
            supported: LATEST,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i64 + 1;
        tx.batch_execute(sql)
            .map_err(|e| StoreError::Migration(format!("migration {version}: {e}")))?;
        tx.execute(
            "INSERT INTO scimgate_migrations (version) VALUES ($1)",
            &[&version],
        )?;
    }
    tx.commit()?;
    Ok(found)
}
