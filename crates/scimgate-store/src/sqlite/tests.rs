use std::sync::Arc;
use std::thread;

use scimgate_model::SystemClock;
use scimgate_model::filter;
use scimgate_model::validate::validate;
use serde_json::json;

use super::*;
use crate::admin::Admin;
use crate::{GroupRef, ListQuery, Page};

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    opened(&SqliteOptions::new(dir.path().join("s.db")))
}

/// A store whose test tenants are registered (creates check their tenant).
fn opened(options: &SqliteOptions) -> SqliteStore {
    let store = SqliteStore::open(options, Arc::new(SystemClock)).expect("open");
    let admin = crate::AdminDb::open(&options.path).expect("admin");
    for t in ["t", "t1", "t2", "a", "b", "other"] {
        admin
            .add_tenant(t, "2026-01-01T00:00:00Z")
            .expect("register");
    }
    store
}

fn user(name: &str) -> NewResource {
    let v = validate(
        ResourceType::User,
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}),
    )
    .expect("valid");
    NewResource::from_validated(v, Default::default())
}

fn filter(rt: ResourceType, f: &str) -> ListQuery {
    ListQuery {
        filter: Some(scimgate_model::filter::parse(rt, f).expect("filter")),
        sort: None,
        page: Page::Index {
            start_index: 1,
            count: 100,
        },
        with_relations: true,
    }
}

/// The query plan of a filtered list, one line per step.
fn plan(s: &SqliteStore, rt: ResourceType, f: &str) -> String {
    let filter = scimgate_model::filter::parse(rt, f).expect("filter");
    let mut args = Vec::new();
    let conn = s.reader().expect("conn");
    let cond =
        read::where_clause(&conn, &s.paths.load(), "t", rt, Some(&filter), &mut args).expect("sql");
    let mut stmt = conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN SELECT r.id FROM resources r WHERE {cond}"
        ))
        .expect("prepare");
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            r.get::<_, String>(3)
        })
        .expect("plan");
    rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("\n")
}

#[test]
fn identity_lookups_use_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let rows = [
        (ResourceType::User, r#"userName eq "bjensen""#),
        (ResourceType::User, r#"userName sw "bj""#),
        (ResourceType::User, r#"externalId eq "e1""#),
        (ResourceType::User, r#"emails.value eq "b@example.com""#),
        (
            ResourceType::User,
            r#"emails[type eq "work" and value eq "b@example.com"]"#,
        ),
        (ResourceType::Group, r#"displayName eq "Sales""#),
        (ResourceType::Group, r#"displayName sw "Sa""#),
    ];
    for (rt, f) in rows {
        let p = plan(&s, rt, f);
        assert!(
            p.contains("USING COVERING INDEX attr_index_lookup (tenant=? AND path_id=? AND text"),
            "{f}:\n{p}"
        );
        assert!(
            p.contains("USING INTEGER PRIMARY KEY (rowid=?)"),
            "{f}: resources found by seq\n{p}"
        );
        assert!(
            !p.contains("SCAN r") && !p.contains("SCAN attr_index"),
            "{f}: no full scan\n{p}"
        );
    }
    // The other side of an `and` is probed per row through the per-resource index.
    let p = plan(
        &s,
        ResourceType::User,
        r#"emails[type eq "work" and value eq "b@example.com"]"#,
    );
    assert!(
        p.contains("USING INDEX attr_index_by_resource (seq=? AND path_id=? AND elem=?)"),
        "{p}"
    );
    for f in [r#"members[value eq "u1"]"#, r#"members.value eq "u1""#] {
        let p = plan(&s, ResourceType::Group, f);
        assert!(
            p.contains("memberships_by_member")
                || p.contains("USING INDEX sqlite_autoindex_memberships"),
            "{f}:\n{p}"
        );
        assert!(
            !p.contains("SCAN m") && !p.contains("SCAN r"),
            "{f}: no full scan\n{p}"
        );
    }
}

/// An operator's extension put in force while the store runs: its attributes' values are
/// indexed like core ones, and filters on them use the same index, no scan.
#[test]
fn an_operator_extension_is_indexed_like_core_attributes() {
    use scimgate_model::registry::{self, Extension, Registry};
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let urn = "urn:test:store-plan:2.0:User";
    let text =
        serde_json::json!({"id": urn, "attributes": [{"name": "costCenter", "type": "string"}]});
    let schema =
        scimgate_model::schema_file::parse("plan.json", &text.to_string()).expect("schema");
    // Added to the set in force (the others' extensions stay): other tests are unaffected.
    let mut operator = registry::current().operator().to_vec();
    operator.push(Extension {
        schema,
        resource_type: ResourceType::User,
        required: false,
        tenants: None,
        file: "plan.json".into(),
    });
    let next: &'static Registry = Box::leak(Box::new(Registry::with(operator).expect("registry")));
    s.register_schemas(next).expect("paths registered");
    registry::install_static(next);
    let p = plan(
        &s,
        ResourceType::User,
        &format!(r#"{urn}:costCenter eq "CC-1""#),
    );
    assert!(
        p.contains("USING COVERING INDEX attr_index_lookup (tenant=? AND path_id=? AND text"),
        "{p}"
    );
    assert!(
        !p.contains("SCAN r") && !p.contains("SCAN attr_index"),
        "{p}"
    );
    assert_eq!(
        s.attribute_in_use(&format!("{urn}:costCenter"))
            .expect("count"),
        0
    );
}

#[test]
fn a_version_1_database_is_migrated_and_its_resources_indexed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    {
        // What a first-release scimgate left behind: schema 1 and one user.
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(include_str!("migrations/0001_init.sql"))
            .expect("v1");
        conn.execute_batch("PRAGMA user_version = 1")
            .expect("version");
        conn.execute(
            "INSERT INTO resources (tenant, resource_type, id, name, name_key, display, external_id, attributes, \
             version, created, last_modified) VALUES ('t', 'User', 'u1', 'Émile', 'émile', 'Émile', NULL, ?1, 1, \
             '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
            [json!({"userName": "Émile", "emails": [{"value": "E@X", "type": "work"}], "active": true}).to_string()],
        )
        .expect("row");
    }
    let s = opened(&SqliteOptions::new(&path));
    for f in [
        r#"userName eq "ÉMILE""#,
        r#"emails[type eq "work" and value eq "e@x"]"#,
        r#"meta.created lt "2026-06-01T00:00:00Z""#,
        "active eq true",
    ] {
        let page = s
            .list("t", ResourceType::User, &filter(ResourceType::User, f))
            .expect("list");
        assert_eq!(page.resources.len(), 1, "{f}");
        assert_eq!(page.total_results, Some(1), "{f}");
    }
}

/// The index rows of one resource, without their position in the table.
fn index_rows_of(s: &SqliteStore, id: &str) -> Vec<String> {
    let conn = s.reader().expect("conn");
    let mut stmt = conn
        .prepare(
            "SELECT p.path, a.elem, a.text, a.num FROM attr_index a JOIN attr_paths p ON p.id = a.path_id \
             JOIN resources r ON r.seq = a.seq WHERE r.id = ?1 AND p.path NOT LIKE 'meta.%'",
        )
        .expect("prepare");
    let mut rows: Vec<String> = stmt
        .query_map([id], |r| {
            Ok(format!(
                "{}#{} {:?} {:?}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<rusqlite::types::Value>>(3)?
            ))
        })
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    rows.sort();
    rows
}

#[test]
fn rewritten_index_rows_equal_those_of_a_fresh_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let body = |name: &str, title: &str, emails: serde_json::Value| {
        let v = validate(
            ResourceType::User,
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "title": title, "emails": emails, "active": true}),
        )
        .expect("valid");
        NewResource::from_validated(v, Default::default())
    };
    let u = s
        .create(
            "t",
            body(
                "x",
                "Old",
                json!([{"value": "a@x", "type": "work"}, {"value": "b@x"}]),
            ),
        )
        .expect("create");
    s.replace(
        "t",
        &u.id,
        None,
        body(
            "x",
            "New",
            json!([{"value": "b@x"}, {"value": "c@x", "type": "home"}]),
        ),
    )
    .expect("replace");
    let fresh = s
        .create(
            "t",
            body(
                "y",
                "New",
                json!([{"value": "b@x"}, {"value": "c@x", "type": "home"}]),
            ),
        )
        .expect("fresh");
    let strip = |rows: Vec<String>| -> Vec<String> {
        rows.into_iter()
            .filter(|r| !r.starts_with("userName"))
            .collect()
    };
    assert_eq!(
        strip(index_rows_of(&s, &u.id)),
        strip(index_rows_of(&s, &fresh.id))
    );
    let old = s
        .list(
            "t",
            ResourceType::User,
            &filter(ResourceType::User, r#"title eq "old""#),
        )
        .expect("list");
    assert_eq!(
        old.total_results,
        Some(0),
        "no stale row answers for the old title"
    );
}

/// Issue 10, defect 9: every `and` asked for its left side's estimate again, so a chain of
/// n terms cost O(n²) count queries. Each comparison is now counted once.
#[test]
fn planning_an_and_chain_counts_each_term_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    s.create("t", user("a")).expect("create");
    let terms: Vec<String> = (0..100).map(|i| format!("userName eq \"u{i}\"")).collect();
    let f = scimgate_model::filter::parse(ResourceType::User, &terms.join(" and ")).expect("parse");
    let conn = s.reader().expect("reader");
    let mut args = Vec::new();
    let paths = s.paths.load();
    let mut sqlite = query::Sqlite { conn: &conn };
    let mut sql =
        crate::filter_sql::FilterSql::new(&mut sqlite, &paths, "t", ResourceType::User, &mut args);
    sql.resources(&f).expect("compile");
    assert!(
        sql.estimate_queries <= 100,
        "{} count queries",
        sql.estimate_queries
    );
}

/// A read that runs past the query deadline is stopped by SQLite and named as such.
#[test]
fn a_read_past_its_deadline_is_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = SqliteOptions::new(dir.path().join("s.db"));
    options.query_timeout = std::time::Duration::ZERO;
    let s = opened(&options);
    s.import("t", (0..2000).map(|i| user(&format!("u{i}"))).collect())
        .expect("import");
    let got = s.list(
        "t",
        ResourceType::User,
        &filter(ResourceType::User, "userName co \"9\""),
    );
    assert!(matches!(got, Err(StoreError::QueryTimeout(_))), "{got:?}");
}

/// One tenant holding its whole share of the read connections leaves the others theirs.
#[test]
fn a_tenant_cannot_hold_every_read_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = SqliteOptions::new(dir.path().join("s.db"));
    options.read_connections = 2;
    options.tenant_read_share = 1;
    options.share_wait = std::time::Duration::from_millis(10);
    let s = Arc::new(opened(&options));
    let id = s.create("a", user("x")).expect("create").id;
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let s = Arc::clone(&s);
        thread::spawn(move || {
            s.read("a", |_| {
                held_tx.send(()).expect("send");
                release_rx.recv().expect("release");
                Ok(())
            })
        })
    };
    held_rx.recv().expect("held");
    assert!(matches!(
        s.get("a", ResourceType::User, &id, false),
        Err(StoreError::Busy(_))
    ));
    assert!(
        s.get("b", ResourceType::User, &id, false)
            .expect("b reads")
            .is_none()
    );
    release_tx.send(()).expect("release");
    holder.join().expect("thread").expect("read");
    assert!(
        s.get("a", ResourceType::User, &id, false)
            .expect("a reads")
            .is_some()
    );
}

fn group(name: &str, members: &[String]) -> NewResource {
    let members: Vec<_> = members.iter().map(|m| json!({"value": m})).collect();
    let v = validate(
        ResourceType::Group,
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": members}),
    )
    .expect("valid");
    NewResource::from_validated(v, Default::default())
}

/// A lookup answered on the caller's thread reads a bounded number of members or groups:
/// a larger group is left to `get`, which reads them all. Missing and other tenants'
/// resources are answered at once as missing; with no connection free, nothing is.
#[test]
fn a_lookup_at_once_reads_a_bounded_number_of_relations() {
    use crate::AT_ONCE_RELATIONS as MAX;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = SqliteOptions::new(dir.path().join("s.db"));
    options.read_connections = 1;
    let s = opened(&options);
    let ids: Vec<String> = (0..=MAX)
        .map(|i| s.create("t", user(&format!("u{i}"))).expect("create").id)
        .collect();
    let small = s
        .create("t", group("small", &ids[..MAX]))
        .expect("small")
        .id;
    let large = s.create("t", group("large", &ids)).expect("large").id;
    let at_once = |tenant: &str, rt, id: &str, relations| {
        s.get_at_once(tenant, rt, id, relations)
            .map(|r| r.expect("read"))
    };
    let found = at_once("t", ResourceType::Group, &small, true).expect("answered");
    assert_eq!(found.expect("found").members.map(|m| m.len()), Some(MAX));
    assert!(at_once("t", ResourceType::Group, &large, true).is_none());
    let bare = at_once("t", ResourceType::Group, &large, false).expect("answered");
    assert!(bare.expect("found").members.is_none());
    let all = s.get("t", ResourceType::Group, &large, true).expect("get");
    assert_eq!(all.expect("found").members.map(|m| m.len()), Some(MAX + 1));
    let member = at_once("t", ResourceType::User, &ids[0], true).expect("answered");
    assert_eq!(member.expect("found").groups.map(|g| g.len()), Some(2));
    let foreign = at_once("other", ResourceType::User, &ids[0], true).expect("answered");
    assert!(foreign.is_none(), "another tenant's user is missing");
    s.read("t", |_| {
        assert!(at_once("t2", ResourceType::User, &ids[0], false).is_none());
        Ok(())
    })
    .expect("read");
}

/// A filter matching at most one resource (`userName eq`, `id eq`) is answered at once,
/// with the same page `list` gives; a user with more groups than that reads, any other
/// filter, and cursor paging are left to `list`.
#[test]
fn a_list_at_once_answers_only_lookups_of_one_resource() {
    use crate::AT_ONCE_RELATIONS as MAX;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = opened(&SqliteOptions::new(dir.path().join("s.db")));
    let ids: Vec<String> = (0..2)
        .map(|i| s.create("t", user(&format!("u{i}"))).expect("create").id)
        .collect();
    for g in 0..=MAX {
        let members = if g < MAX { &ids[..] } else { &ids[1..] };
        s.create("t", group(&format!("g{g}"), members))
            .expect("group");
    }
    let query = |text: &str, page: Page| ListQuery {
        filter: Some(filter::parse(ResourceType::User, text).expect("filter")),
        sort: None,
        page,
        with_relations: true,
    };
    let index = Page::Index {
        start_index: 1,
        count: 10,
    };
    let at_once = |q: &ListQuery| s.list_at_once("t", ResourceType::User, q);
    let lookup = query("userName eq \"U0\"", index.clone());
    let page = at_once(&lookup).expect("answered").expect("list");
    let listed = s
        .list_documents("t", ResourceType::User, &lookup)
        .expect("list");
    let seen = |p: &ListPage<StoredDocument>| -> Vec<(String, String, Option<Vec<GroupRef>>)> {
        p.resources
            .iter()
            .map(|r| (r.id.clone(), r.attributes.clone(), r.groups.clone()))
            .collect()
    };
    assert_eq!(page.total_results, Some(1));
    assert_eq!(seen(&page), seen(&listed));
    assert_eq!(page.resources[0].groups.as_ref().map(Vec::len), Some(MAX));
    let by_id = query(&format!("id eq \"{}\"", ids[0]), index.clone());
    let page_by_id = at_once(&by_id).expect("answered").expect("list");
    assert_eq!(seen(&page_by_id), seen(&page));
    let missing = at_once(&query("userName eq \"nobody\"", index.clone())).expect("answered");
    assert_eq!(missing.expect("list").total_results, Some(0));
    // u1 is in MAX + 1 groups: more than is read at once.
    assert!(at_once(&query("userName eq \"u1\"", index.clone())).is_none());
    assert!(at_once(&query("userName sw \"u\"", index.clone())).is_none());
    assert!(at_once(&query("displayName eq \"u0\"", index)).is_none());
    let cursor = Page::Cursor {
        after: None,
        count: 10,
    };
    assert!(at_once(&query("userName eq \"u0\"", cursor)).is_none());
}

/// A count off the attribute index alone (one row per resource) agrees with the count
/// resource by resource: only the tenant's users, whatever the groups and other tenants hold.
#[test]
fn counts_off_the_index_count_only_the_type_and_the_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = opened(&SqliteOptions::new(dir.path().join("s.db")));
    for i in 0..5 {
        let active = i % 2 == 0;
        let v = validate(
            ResourceType::User,
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("u{i}"), "displayName": "same", "active": active}),
        )
        .expect("valid");
        s.create(
            "t",
            NewResource::from_validated(v.clone(), Default::default()),
        )
        .expect("create");
        s.create("other", NewResource::from_validated(v, Default::default()))
            .expect("create");
    }
    s.create("t", group("same", &[])).expect("group");
    let total = |rt, text: &str| {
        let q = ListQuery {
            filter: Some(filter::parse(rt, text).expect("filter")),
            sort: None,
            page: Page::Index {
                start_index: 1,
                count: 0,
            },
            with_relations: false,
        };
        s.list("t", rt, &q).expect("list").total_results
    };
    assert_eq!(total(ResourceType::User, "active eq true"), Some(3));
    assert_eq!(total(ResourceType::User, "active eq false"), Some(2));
    assert_eq!(total(ResourceType::User, "active pr"), Some(5));
    assert_eq!(total(ResourceType::User, "userName sw \"u\""), Some(5));
    // `displayName` is the groups' too: counted resource by resource.
    assert_eq!(
        total(ResourceType::User, "displayName eq \"same\""),
        Some(5)
    );
    assert_eq!(
        total(ResourceType::Group, "displayName eq \"same\""),
        Some(1)
    );
}

/// A page of large resources ends at the byte budget (at least one resource), and the next
/// page goes on from there.
#[test]
fn a_page_ends_at_its_byte_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = SqliteOptions::new(dir.path().join("s.db"));
    options.page_byte_budget = 5000;
    let s = opened(&options);
    let big = "x".repeat(2000);
    let users: Vec<NewResource> = (0..5)
        .map(|i| {
            let v = validate(
                ResourceType::User,
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": format!("u{i}"), "title": big}),
            )
            .expect("valid");
            NewResource::from_validated(v, Default::default())
        })
        .collect();
    s.import("t", users).expect("import");
    let page = |start_index| ListQuery {
        filter: None,
        sort: None,
        page: Page::Index {
            start_index,
            count: 100,
        },
        with_relations: false,
    };
    let first = s.list("t", ResourceType::User, &page(1)).expect("list");
    assert_eq!(first.total_results, Some(5));
    assert_eq!(
        first.resources.len(),
        2,
        "two of about 2 KB fit in 5000 bytes"
    );
    let rest = s.list("t", ResourceType::User, &page(3)).expect("list");
    assert_eq!(rest.resources.len(), 2);
}

/// A clean close leaves everything in the database file: a copy of it alone is current.
#[test]
fn closing_folds_the_log_into_the_database_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    for i in 0..50 {
        s.create("t", user(&format!("u{i}"))).expect("create");
    }
    drop(s);
    let wal = dir.path().join("s.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
        "the log is empty after close"
    );
    let copy = dir.path().join("copy.db");
    std::fs::copy(dir.path().join("s.db"), &copy).expect("copy");
    let conn = rusqlite::Connection::open(&copy).expect("open copy");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM resources", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 50);
}

/// Without a close, a pause in the writes is enough for the database file alone to be
/// current.
#[test]
fn an_idle_writer_folds_the_log_into_the_database_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = SqliteOptions::new(dir.path().join("s.db"));
    options.checkpoint.idle = std::time::Duration::from_millis(50);
    let s = opened(&options);
    for i in 0..20 {
        s.create("t", user(&format!("u{i}"))).expect("create");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let copy = dir.path().join("copy.db");
        std::fs::copy(dir.path().join("s.db"), &copy).expect("copy");
        let n: i64 = rusqlite::Connection::open(&copy)
            .and_then(|c| c.query_row("SELECT count(*) FROM resources", [], |r| r.get(0)))
            .unwrap_or(0);
        std::fs::remove_file(&copy).expect("rm");
        if n == 20 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never checkpointed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(s);
}

/// A write by an admin command beside an idle server reaches the database file when the
/// command is done, so a copy of the file alone has it.
#[test]
fn admin_writes_reach_the_database_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    s.create("t", user("first")).expect("create");
    {
        let admin = crate::AdminDb::open(&dir.path().join("s.db")).expect("admin");
        admin
            .add_tenant("late", "2026-01-01T00:00:00Z")
            .expect("tenant");
    }
    let copy = dir.path().join("copy.db");
    std::fs::copy(dir.path().join("s.db"), &copy).expect("copy");
    let n: i64 = rusqlite::Connection::open(&copy)
        .expect("open")
        .query_row(
            "SELECT count(*) FROM tenants WHERE name = 'late'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 1);
    drop(s);
}

/// A large write (a group of 10,000 members) shares a batch with a refused create and a
/// later one: the group is stored whole, the refused create leaves no row, the later one
/// lands; then a PATCH adds 10,000 members in its savepoint, whose journal goes far past
/// what SQLite keeps in memory. (SQLite writes a spilled journal to its file in pieces of
/// its in-memory limit and refuses pieces of 128 KiB or more as "disk full": with that
/// limit raised to 1 MiB, `SQLITE_STMTJRNL_SPILL`, such writes could not be stored.)
#[test]
fn a_large_write_and_a_refused_one_share_a_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let ids: Vec<String> = (0..10_000)
        .map(|i| s.create_queued("t", user(&format!("u{i}"))))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|p| p.wait().expect("user").id)
        .collect();
    let large = s.create_queued("t", group("large", &ids));
    let taken = s.create_queued("t", user("u0"));
    let after = s.create_queued("t", user("after"));
    let large = large.wait().expect("large group").id;
    assert!(matches!(taken.wait(), Err(StoreError::UserNameTaken(_))));
    after.wait().expect("a write after the failed one");
    let stored = s.get("t", ResourceType::Group, &large, true).expect("get");
    assert_eq!(
        stored.expect("found").members.map(|m| m.len()),
        Some(10_000)
    );
    let users = s
        .list(
            "t",
            ResourceType::User,
            &filter(ResourceType::User, "userName sw \"u\""),
        )
        .expect("list");
    assert_eq!(
        users.total_results,
        Some(10_000),
        "the refused duplicate left no row"
    );
    // A group's PATCH keeps its savepoint: adding 10,000 members journals every page
    // they touch, far past what SQLite keeps in memory.
    let patched = s
        .create("t", group("patched", &[]))
        .expect("empty group")
        .id;
    let add = ids
        .iter()
        .map(|id| scimgate_model::MemberInput {
            value: id.clone(),
            member_type: None,
        })
        .collect();
    let patch = crate::PatchWrite {
        rt: ResourceType::Group,
        expected_version: None,
        new: None,
        members: scimgate_model::patch::MemberChanges {
            add,
            ..Default::default()
        },
        skip_unknown_members: false,
        change: Default::default(),
    };
    s.patch("t", &patched, patch)
        .expect("a PATCH adding 10,000 members");
    let stored = s
        .get("t", ResourceType::Group, &patched, true)
        .expect("get");
    assert_eq!(
        stored.expect("found").members.map(|m| m.len()),
        Some(10_000)
    );
}

/// `flag_counts` holds, per tenant, path and value, exactly the index rows that hold the
/// number 0 or 1, however the rows came or went: creates, a replace that flips or drops
/// `active`, a delete (the index rows go by cascade) and a tenant's purge. The count a
/// list reads from it is the count of matching resources.
#[test]
fn kept_flag_counts_follow_the_index_through_every_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let body = |name: &str, active: Option<bool>| {
        let mut json =
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
        if let Some(active) = active {
            json["active"] = json!(active);
        }
        NewResource::from_validated(
            validate(ResourceType::User, &json).expect("valid"),
            Default::default(),
        )
    };
    let kept_and_counted = || {
        let conn = s.reader().expect("conn");
        let rows = |sql: &str| -> Vec<(String, i64, i64, i64)> {
            let mut stmt = conn.prepare(sql).expect("prepare");
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .expect("rows")
                .map(|r| r.expect("row"))
                .collect()
        };
        (
            rows("SELECT tenant, path_id, num, n FROM flag_counts WHERE n <> 0 ORDER BY 1, 2, 3"),
            rows(
                "SELECT tenant, path_id, num, count(*) FROM attr_index \
                 WHERE text IS NULL AND num IN (0, 1) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            ),
        )
    };
    let total = |tenant: &str, text: &str| {
        let q = ListQuery {
            filter: Some(filter::parse(ResourceType::User, text).expect("filter")),
            sort: None,
            page: Page::Index {
                start_index: 1,
                count: 0,
            },
            with_relations: false,
        };
        s.list(tenant, ResourceType::User, &q)
            .expect("list")
            .total_results
    };
    let mut ids = Vec::new();
    for i in 0..9 {
        let active = [Some(true), Some(false), None][i % 3];
        ids.push(
            s.create("t", body(&format!("u{i}"), active))
                .expect("create")
                .id,
        );
        s.create("other", body(&format!("u{i}"), Some(true)))
            .expect("create");
    }
    let (kept, counted) = kept_and_counted();
    assert!(!kept.is_empty());
    assert_eq!(kept, counted);
    assert_eq!(total("t", "active eq true"), Some(3));
    assert_eq!(total("t", "active eq false"), Some(3));
    assert_eq!(total("other", "active eq true"), Some(9));
    assert_eq!(total("other", "active eq false"), Some(0));

    // u0: true → false; u1: false → absent; u2: absent → true.
    for (i, active) in [(0, Some(false)), (1, None), (2, Some(true))] {
        s.replace("t", &ids[i], None, body(&format!("u{i}"), active))
            .expect("replace");
    }
    let (kept, counted) = kept_and_counted();
    assert_eq!(kept, counted);
    assert_eq!(total("t", "active eq true"), Some(3));
    assert_eq!(total("t", "active eq false"), Some(3));

    // A delete takes the user's index rows by cascade.
    s.delete(
        "t",
        ResourceType::User,
        &ids[3],
        None,
        ChangeNote::default(),
    )
    .expect("delete");
    let (kept, counted) = kept_and_counted();
    assert_eq!(kept, counted);
    assert_eq!(total("t", "active eq true"), Some(2));

    let mut admin = crate::AdminDb::open(&dir.path().join("s.db")).expect("admin");
    admin.remove_tenant("other", true).expect("purge");
    let (kept, counted) = kept_and_counted();
    assert_eq!(kept, counted);
    assert!(kept.iter().all(|(tenant, ..)| tenant == "t"));
    assert_eq!(total("t", "active eq false"), Some(3));
}
