//! Against a real PostgreSQL server: `POSTGRES_TEST_URL` names it (scripts/test
//! starts a throwaway cluster with `pg_virtualenv` and sets it); each test works in a
//! database of its own, dropped afterwards.

use std::time::Duration;

use super::*;
use crate::Store;

/// A fresh database on the test server, dropped when the guard goes.
struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    fn new() -> TestDb {
        let admin = std::env::var("POSTGRES_TEST_URL").expect(
            "POSTGRES_TEST_URL names the PostgreSQL server the tests use; scripts/test starts one",
        );
        let name = format!("scimgate_test_{}", uuid::Uuid::new_v4().simple());
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        let url = format!("{admin} dbname={name}");
        TestDb { admin, name, url }
    }
}

impl TestDb {
    /// A store on this database, with the default options.
    fn store(&self) -> Arc<PgStore> {
        Arc::new(
            PgStore::open(
                &PgOptions::new(&self.url),
                Arc::new(scimgate_model::SystemClock),
            )
            .expect("open"),
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn quick() -> Retry {
    Retry {
        attempts: 3,
        first_wait: Duration::from_millis(10),
        max_wait: Duration::from_millis(20),
    }
}

#[test]
fn migrations_apply_once_even_when_instances_start_together() {
    let db = TestDb::new();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                let mut client = connect(&url, quick()).expect("connect");
                migrate(&mut client).expect("migrate")
            })
        })
        .collect();
    let mut found: Vec<i64> = threads
        .into_iter()
        .map(|t| t.join().expect("join"))
        .collect();
    found.sort_unstable();
    // One instance found an empty database and migrated it; the others found it done.
    assert_eq!(found, [0, LATEST, LATEST, LATEST]);
    let mut client = connect(&db.url, quick()).expect("connect");
    let applied: i64 = client
        .query_one("SELECT count(*) FROM scimgate_migrations", &[])
        .expect("count")
        .get(0);
    assert_eq!(applied, LATEST);
    // The schema is there, with the default tenant.
    let tenant: String = client
        .query_one("SELECT name FROM tenants", &[])
        .expect("tenant")
        .get(0);
    assert_eq!(tenant, "default");
    assert_eq!(
        migrate(&mut client).expect("again"),
        LATEST,
        "a rerun changes nothing"
    );
}

#[test]
fn a_database_newer_than_the_binary_is_refused() {
    let db = TestDb::new();
    let mut client = connect(&db.url, quick()).expect("connect");
    migrate(&mut client).expect("migrate");
    client
        .execute(
            "INSERT INTO scimgate_migrations (version) VALUES ($1)",
            &[&(LATEST + 1)],
        )
        .expect("a newer version");
    match migrate(&mut client) {
        Err(StoreError::DatabaseTooNew { found, supported }) => {
            assert_eq!((found, supported), (LATEST + 1, LATEST));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_database_folds_user_names_into_one_unique_key() {
    let db = TestDb::new();
    let mut client = connect(&db.url, quick()).expect("connect");
    migrate(&mut client).expect("migrate");
    let insert = "INSERT INTO resources (tenant, resource_type, id, name, name_key, display, attributes, version, created, last_modified) \
                  VALUES ('default', 'User', $1, $2, $3, $2, '{}', 1, 'now', 'now')";
    client
        .execute(insert, &[&"a", &"Ada", &"ada"])
        .expect("first");
    let second = client.execute(insert, &[&"b", &"ADA", &"ada"]);
    let code = second.expect_err("same folded key").code().cloned();
    assert_eq!(code, Some(postgres::error::SqlState::UNIQUE_VIOLATION));
}

#[test]
fn an_unreachable_database_is_retried_then_named() {
    // A port nothing listens on: every try fails at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let started = std::time::Instant::now();
    let Err(e) = connect(
        &format!("host=127.0.0.1 port={port} user=x dbname=x connect_timeout=1"),
        quick(),
    ) else {
        panic!("nothing listens there")
    };
    assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
    assert!(e.to_string().contains("after 3 tries"), "{e}");
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "it waited between tries"
    );
    // A malformed address is named, not retried.
    let Err(e) = connect("postgres://[::1", quick()) else {
        panic!("malformed")
    };
    assert!(e.to_string().contains("does not parse"), "{e}");
}

/// The plan PostgreSQL picks for a filtered list, as text.
fn plan(store: &PgStore, rt: ResourceType, filter: &str) -> String {
    let filter = scimgate_model::filter::parse(rt, filter).expect("filter");
    let paths = store.paths.load_full();
    let mut conn = store.connection().expect("connection");
    let mut tx = conn.transaction().expect("transaction");
    let mut args = Vec::new();
    let cond =
        read::where_clause(&mut tx, &paths, "default", rt, Some(&filter), &mut args).expect("sql");
    let bound = dialect::values(&args);
    tx.query_typed(
        &format!("EXPLAIN SELECT r.id FROM resources r WHERE {cond}"),
        &dialect::typed(&args, &bound),
    )
    .expect("explain")
    .iter()
    .map(|r| r.get::<_, String>(0))
    .collect::<Vec<_>>()
    .join("\n")
}

/// Filters run on the attribute index on PostgreSQL too: `eq`, `sw` and a value filter
/// are index lookups, never a scan of the resources or the index table.
#[test]
fn filters_are_index_lookups_not_scans() {
    let db = TestDb::new();
    let store = db.store();
    // Enough users, written by two writers at once, that a scan would cost more than the
    // index in the planner's eyes.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..1500 {
                    let body = serde_json::json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": format!("user{w}-{i}"),
                        "emails": [{"value": format!("u{w}-{i}@example.com"), "type": "work"}],
                    });
                    let v = scimgate_model::validate::validate(ResourceType::User, &body)
                        .expect("valid");
                    store
                        .create(
                            "default",
                            NewResource::from_validated(v, Default::default()),
                        )
                        .expect("create");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    store
        .connection()
        .expect("connection")
        .batch_execute("ANALYZE")
        .expect("analyze");
    for filter in [
        r#"userName eq "user1-77""#,
        r#"userName sw "user1-7""#,
        r#"emails[type eq "work" and value eq "u0-5@example.com"]"#,
        r#"userName eq "user0-1" or emails.value eq "u1-99@example.com""#,
    ] {
        let plan = plan(&store, ResourceType::User, filter);
        assert!(plan.contains("Index"), "{filter}:\n{plan}");
        assert!(
            !plan.contains("Seq Scan on resources") && !plan.contains("Seq Scan on attr_index"),
            "{filter} scans:\n{plan}"
        );
    }
}

/// Whether the connection `client` is on is encrypted.
fn encrypted(client: &mut postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("pg_stat_ssl")
        .get(0)
}

/// TLS when asked for, and then verified: against the authority named (here the test
/// server's own self-signed certificate, as `SHOW ssl_cert_file` names it), refused
/// against another one; plain when not asked for.
#[test]
fn tls_is_used_when_asked_and_the_server_is_verified() {
    let db = TestDb::new();
    let mut plain = connect(&db.url, quick()).expect("plain");
    assert!(!encrypted(&mut plain), "no TLS unless asked for");
    let server_cert: String = plain
        .query_one("SHOW ssl_cert_file", &[])
        .expect("ssl_cert_file")
        .get(0);
    let with_ca = |ca: &str| PgOptions {
        tls: TlsFiles {
            ca_file: Some(ca.into()),
            ..TlsFiles::default()
        },
        retry: quick(),
        ..PgOptions::new(&db.url)
    };
    let mut verified = PgAdmin::open(&with_ca(&server_cert))
        .and_then(|_| open_for_transfer(&with_ca(&server_cert)))
        .expect("TLS to a server whose certificate the named authority signed");
    assert!(encrypted(&mut verified));
    let other = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/keys/tls-cert.pem"
    );
    let Err(e) = open_for_transfer(&with_ca(other)) else {
        panic!("a server certificate no named authority signed is refused")
    };
    assert!(e.to_string().contains("certificate"), "{e}");
    // `sslmode=require` alone verifies against the public roots: the test server's
    // self-signed certificate is refused, not taken on trust.
    let Err(e) = connect(&format!("{} sslmode=require", db.url), quick()) else {
        panic!("require without its authority is refused")
    };
    assert!(e.to_string().contains("certificate"), "{e}");
}

/// A tenant's audit rows are numbered in the order they commit: a reader following `seq`
/// (the `/admin/audit` cursor) never passes a row that commits later. Here a create is
/// held at the tenant's resource count (locked by another session) while a PATCH of
/// another user commits; the create's row still comes after the PATCH's.
#[test]
fn audit_rows_are_numbered_in_commit_order() {
    let db = TestDb::new();
    let store = db.store();
    let user = |name: &str, method: &str| {
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": name,
        });
        let v = scimgate_model::validate::validate(ResourceType::User, &body).expect("valid");
        let mut new = NewResource::from_validated(v, Default::default());
        new.change.audit = Some(AuditRecord {
            seq: 0,
            at: String::new(),
            tenant: "default".into(),
            subject: None,
            jti: None,
            client: None,
            method: method.into(),
            resource_type: Some("User".into()),
            resource_id: None,
            version_before: None,
            version_after: None,
            plugins: None,
            status: 200,
            detail: None,
            event_seq: None,
        });
        new
    };
    let first = store
        .create("default", user("first", "POST"))
        .expect("first");
    let rows = |after: i64| -> Vec<(i64, String)> {
        store
            .audit(&AuditQuery {
                tenant: Some("default".into()),
                after_seq: Some(after),
                limit: 100,
                ..AuditQuery::default()
            })
            .expect("audit")
            .into_iter()
            .map(|r| (r.seq, r.method))
            .collect()
    };
    let cursor = rows(0).last().expect("the first row").0;
    let mut other = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");
    let mut holding = other.transaction().expect("transaction");
    holding
        .batch_execute("LOCK TABLE resource_counts IN EXCLUSIVE MODE")
        .expect("lock the count");
    let held = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || store.create("default", user("second", "POST")))
    };
    std::thread::sleep(Duration::from_millis(300));
    store
        .replace("default", &first.id, None, user("first", "PUT"))
        .expect("replace");
    let seen = rows(cursor);
    assert_eq!(
        seen.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["PUT"]
    );
    holding.rollback().expect("release");
    held.join().expect("thread").expect("the held create");
    let next = rows(seen[0].0);
    assert_eq!(
        next.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["POST"],
        "the held create's row comes after the cursor"
    );
}

/// A clock an hour ahead of the system's.
struct HourAhead;

impl scimgate_model::Clock for HourAhead {
    fn now(&self) -> time::OffsetDateTime {
        scimgate_model::SystemClock.now() + time::Duration::hours(1)
    }
}

#[test]
fn inspect_reads_the_version_and_the_clock_offset_and_changes_nothing() {
    let db = TestDb::new();
    let options = PgOptions::new(&db.url);
    let empty = inspect(&options, &scimgate_model::SystemClock).expect("inspect");
    assert_eq!((empty.schema_version, empty.newest_write), (0, None));
    assert!(!empty.server_version.is_empty());
    // Nothing was created by looking.
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .expect("tables")
        .get(0);
    assert_eq!(tables, 0);
    drop(db.store());
    let migrated = inspect(&options, &HourAhead).expect("inspect");
    assert_eq!(migrated.schema_version, LATEST);
    assert_eq!(migrated.supported_version, LATEST);
    // This host's clock an hour ahead: the server's is an hour behind it.
    assert!(
        (migrated.clock_offset_secs + 3600.0).abs() < 60.0,
        "{}",
        migrated.clock_offset_secs
    );
}
