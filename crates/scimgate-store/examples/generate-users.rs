//! Loads synthetic users into a scimgate data folder through the storage crate, for the
//! query benchmarks: `cargo run --release -p scimgate-store --example generate-users -- DB N`.
//! User `i` has userName `user{i}@example.com`, a work email of the same value, a name,
//! a department, and `active` true for nine users in ten.

use std::sync::Arc;
use std::time::Instant;

use scimgate_model::validate::validate;
use scimgate_model::{ResourceType, SystemClock};
use scimgate_store::{NewResource, SqliteOptions, SqliteStore};
use serde_json::json;

const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Engineering",
    "Support",
    "Finance",
    "Legal",
    "Marketing",
    "Operations",
    "HR",
];
const BATCH: usize = 5_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args
        .next()
        .ok_or("usage: generate-users DB_FILE COUNT [TENANT]")?;
    let count: usize = args
        .next()
        .ok_or("usage: generate-users DB_FILE COUNT [TENANT]")?
        .parse()?;
    let tenant = args.next().unwrap_or_else(|| "default".into());
    let store = SqliteStore::open(&SqliteOptions::new(&db), Arc::new(SystemClock))?;
    let started = Instant::now();
    let mut i = 0;
    while i < count {
        let end = (i + BATCH).min(count);
        let mut batch = Vec::with_capacity(end - i);
        for n in i..end {
            let body = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "userName": format!("user{n}@example.com"),
                "externalId": format!("ext-{n}"),
                "name": {"givenName": format!("Given{}", n % 1000), "familyName": format!("Family{}", n / 1000)},
                "displayName": format!("User {n}"),
                "active": n % 10 != 0,
                "emails": [{"value": format!("user{n}@example.com"), "type": "work", "primary": true}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "department": DEPARTMENTS[n % DEPARTMENTS.len()],
                    "employeeNumber": n.to_string(),
                },
            });
            let v = validate(ResourceType::User, &body).map_err(|e| e.detail)?;
            batch.push(NewResource::from_validated(v, Default::default()));
        }
        store.import(&tenant, batch)?;
        i = end;
        if i % 100_000 == 0 || i == count {
            eprintln!("{i} users in {:.1} s", started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}
