//! The backend the storage contract tests run on. The contract tests (the SQL-vs-evaluator
//! differential, the PATCH model, the version property) speak only the `Store` trait; this
//! is the one place that knows which implementation they get, and how a tenant is
//! registered on it (the trait leaves tenant administration to the command line).
//!
//! `SCIMGATE_TEST_BACKEND` picks it: `sqlite` (the default, and today the only one); a
//! second backend adds its branch here and runs the very same suite.

use std::path::Path;
use std::sync::Arc;

use scimgate_model::SystemClock;
use scimgate_store::{AdminDb, SqliteOptions, SqliteStore, Store};

/// A fresh store in `dir` with `tenants` registered.
pub fn open(dir: &Path, tenants: &[&str]) -> Arc<dyn Store> {
    match std::env::var("SCIMGATE_TEST_BACKEND").as_deref() {
        Ok("sqlite") | Err(_) => {
            let path = dir.join("contract.db");
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
        Ok(other) => panic!("SCIMGATE_TEST_BACKEND={other}: no such backend"),
    }
}
