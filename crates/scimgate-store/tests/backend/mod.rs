//! The backend the storage contract tests run on. The contract tests (`contract.rs`, the
//! SQL-vs-evaluator differential, the PATCH model, the version property) speak only the `Store` trait; this
//! is the one place that knows which implementation they get, and how a tenant is
//! registered on it (the trait leaves tenant administration to the command line).
//!
//! `STORE_TEST_BACKEND` picks it: `sqlite` (the default) or `postgres`, which works in a
//! schema of its own per store, created on the server `POSTGRES_TEST_URL` names
//! (`scripts/with-postgres` starts a throwaway one) and named in the test's folder, so
//! that `reopen` and the tenant commands find it.

// Each test binary includes this module and uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use scimgate_model::SystemClock;
use scimgate_store::{
    Admin, AdminDb, PgAdmin, PgOptions, PgStore, RemoveOutcome, SqliteOptions, SqliteStore, Store,
};

/// The SQLite backend's file in the test's folder.
const DATABASE: &str = "contract.db";

/// A fresh store in `dir` with `tenants` registered.
pub fn open(dir: &Path, tenants: &[&str]) -> Arc<dyn Store> {
    match std::env::var("STORE_TEST_BACKEND").as_deref() {
        Ok("sqlite") | Err(_) => {
            let path = dir.join(DATABASE);
            let store = SqliteStore::open(&SqliteOptions::new(&path), Arc::new(SystemClock))
                .expect("open the SQLite store");
            let admin = AdminDb::open(&path).expect("admin connection");
            for tenant in tenants {
                admin
                    .add_tenant(tenant, "2026-01-01T00:00:00Z")
                    .expect("register the tenant");
            }
            Arc::new(store)
        }
        Ok("postgres") => {
            let url = new_database(dir);
            let store = PgStore::open(&PgOptions::new(&url), Arc::new(SystemClock))
                .expect("open the PostgreSQL store");
            let admin = PgAdmin::open(&PgOptions::new(&url)).expect("admin connection");
            for tenant in tenants {
                admin
                    .add_tenant(tenant, "2026-01-01T00:00:00Z")
                    .expect("register the tenant");
            }
            Arc::new(store)
        }
        Ok(other) => panic!("STORE_TEST_BACKEND={other}: no such backend"),
    }
}

/// Where the PostgreSQL backend's database is named in the test's folder.
const DATABASE_URL: &str = "postgres-url";

/// Creates a schema for one store on the test server (cheaper than a database: a few
/// hundred stores per run); its address, which puts it first on the search path, is kept
/// in `dir`.
fn new_database(dir: &Path) -> String {
    let server = std::env::var("POSTGRES_TEST_URL").expect(
        "POSTGRES_TEST_URL names the PostgreSQL server the tests use; scripts/with-postgres starts one",
    );
    let schema = format!("store_{}", uuid::Uuid::new_v4().simple());
    let mut client = postgres::Client::connect(&server, postgres::NoTls).expect("connect");
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create schema");
    let url = format!("{server} options=-csearch_path={schema}");
    std::fs::write(dir.join(DATABASE_URL), &url).expect("keep the database's address");
    url
}

fn database_url(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(DATABASE_URL)).expect("the store's database")
}

/// The store on `dir` opened again, as a restarted server opens it.
pub fn reopen(dir: &Path) -> Arc<dyn Store> {
    match std::env::var("STORE_TEST_BACKEND").as_deref() {
        Ok("sqlite") | Err(_) => Arc::new(
            SqliteStore::open(
                &SqliteOptions::new(dir.join(DATABASE)),
                Arc::new(SystemClock),
            )
            .expect("reopen the SQLite store"),
        ),
        Ok("postgres") => Arc::new(
            PgStore::open(&PgOptions::new(database_url(dir)), Arc::new(SystemClock))
                .expect("reopen the PostgreSQL store"),
        ),
        Ok(other) => panic!("STORE_TEST_BACKEND={other}: no such backend"),
    }
}

/// Removes `tenant` as `scimgate tenant remove` does, beside the running store.
pub fn remove_tenant(dir: &Path, tenant: &str) {
    match std::env::var("STORE_TEST_BACKEND").as_deref() {
        Ok("sqlite") | Err(_) => {
            let mut admin = AdminDb::open(&dir.join(DATABASE)).expect("admin connection");
            let outcome = admin
                .remove_tenant(tenant, false)
                .expect("remove the tenant");
            assert!(
                matches!(outcome, RemoveOutcome::Removed { .. }),
                "{outcome:?}"
            );
        }
        Ok("postgres") => {
            let mut admin =
                PgAdmin::open(&PgOptions::new(database_url(dir))).expect("admin connection");
            let outcome = admin
                .remove_tenant(tenant, false)
                .expect("remove the tenant");
            assert!(
                matches!(outcome, RemoveOutcome::Removed { .. }),
                "{outcome:?}"
            );
        }
        Ok(other) => panic!("STORE_TEST_BACKEND={other}: no such backend"),
    }
}

/// Removes `tenant` with its data, as `scimgate tenant remove --purge` does.
pub fn purge_tenant(dir: &Path, tenant: &str) {
    match std::env::var("STORE_TEST_BACKEND").as_deref() {
        Ok("sqlite") | Err(_) => {
            let mut admin = AdminDb::open(&dir.join(DATABASE)).expect("admin connection");
            let outcome = admin.remove_tenant(tenant, true).expect("purge the tenant");
            assert!(
                matches!(outcome, RemoveOutcome::Removed { .. }),
                "{outcome:?}"
            );
        }
        Ok("postgres") => {
            let mut admin =
                PgAdmin::open(&PgOptions::new(database_url(dir))).expect("admin connection");
            let outcome = admin.remove_tenant(tenant, true).expect("purge the tenant");
            assert!(
                matches!(outcome, RemoveOutcome::Removed { .. }),
                "{outcome:?}"
            );
        }
        Ok(other) => panic!("STORE_TEST_BACKEND={other}: no such backend"),
    }
}

/// Registers `tenant`, as `scimgate tenant add` does.
pub fn add_tenant(dir: &Path, tenant: &str) {
    match std::env::var("STORE_TEST_BACKEND").as_deref() {
        Ok("sqlite") | Err(_) => {
            let admin = AdminDb::open(&dir.join(DATABASE)).expect("admin connection");
            admin
                .add_tenant(tenant, "2026-01-01T00:00:00Z")
                .expect("register the tenant");
        }
        Ok("postgres") => {
            let admin =
                PgAdmin::open(&PgOptions::new(database_url(dir))).expect("admin connection");
            admin
                .add_tenant(tenant, "2026-01-01T00:00:00Z")
                .expect("register the tenant");
        }
        Ok(other) => panic!("STORE_TEST_BACKEND={other}: no such backend"),
    }
}
