//! Two scimgate processes on one PostgreSQL database (issue 15), each with its own data
//! folder holding the same signing key, as docs/scale-out.md sets them up. The server is
//! the one `POSTGRES_TEST_URL` names (`scripts/with-postgres` starts a throwaway one);
//! each test works in a database of its own.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

use serde_json::json;

use super::{BIN, Server, send, user};

/// A fresh database on the test server; its address.
fn new_database() -> String {
    let server = std::env::var("POSTGRES_TEST_URL").expect(
        "POSTGRES_TEST_URL names the PostgreSQL server the tests use; scripts/with-postgres starts one",
    );
    let name = format!("scimgate_bin_{}", uuid::Uuid::new_v4().simple());
    let mut client = postgres::Client::connect(&server, postgres::NoTls).expect("connect");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    format!("{server} dbname={name}")
}

/// A server on `data` using the database at `url`.
fn start(data: &Path, url: &str) -> Server {
    private_folder(data);
    let config = data.join("scimgate.toml");
    std::fs::write(&config, format!("database = {}\n", toml_string(url))).expect("config");
    Server::start_with(data, Some(&config), Stdio::inherit())
}

fn private_folder(path: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .expect("data folder");
}

fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Two instances on one fresh database, sharing A's signing key; a token for both.
fn two_instances(dir: &Path) -> (Server, Server, String) {
    let url = new_database();
    let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
    let a = start(&a_dir, &url);
    private_folder(&b_dir);
    std::fs::copy(a_dir.join("jwt-hs256.key"), b_dir.join("jwt-hs256.key")).expect("key");
    let b = start(&b_dir, &url);
    let t = cli(&a_dir, &["token"]);
    (a, b, t)
}

/// Runs a command-line tool on the instance whose folder is `data` (its configuration
/// names the database); its output, which must be a success.
fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data")
        .arg(data)
        .arg("--config")
        .arg(data.join("scimgate.toml"))
        .output()
        .expect("run scimgate");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

/// The `jti` claim of token `t`.
fn jti(t: &str) -> String {
    use base64::Engine;
    let payload = t.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64"),
    )
    .expect("claims");
    claims["jti"].as_str().expect("jti").to_owned()
}

/// The status of `GET /Users` with token `t` on `base`, once it is `want`, or after 1 s.
fn status_within_a_second(base: &str, t: &str, want: u16) -> u16 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1000);
    loop {
        let (status, _) = send("GET", &format!("{base}/scim/v2/Users"), t, None);
        if status == want || std::time::Instant::now() > deadline {
            return status;
        }
        thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The command-line tools work on the shared database: a tenant added and a token
/// revoked through them (beside instance A) hold on instance B within a second.
#[test]
fn tenants_and_revocations_made_anywhere_hold_on_every_instance_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, admin) = two_instances(dir.path());
    let a_dir = dir.path().join("a");
    cli(&a_dir, &["tenant", "add", "acme"]);
    assert!(cli(&a_dir, &["tenant", "list"]).contains("acme"));
    let acme = cli(&a_dir, &["token", "--tenant", "acme"]);
    assert_eq!(status_within_a_second(&b.base, &acme, 200), 200);
    let (status, created) = send(
        "POST",
        &format!("{}/scim/v2/Users", a.base),
        &acme,
        Some(user("acme-user")),
    );
    assert_eq!(status, 201, "{created}");
    cli(&a_dir, &["token", "revoke", &jti(&acme)]);
    assert!(cli(&a_dir, &["token", "list"]).contains(&jti(&acme)));
    assert_eq!(status_within_a_second(&b.base, &acme, 401), 401);
    assert_eq!(status_within_a_second(&a.base, &acme, 401), 401);
    // The other token is untouched; the audit trail and the feed are read from the
    // shared database too.
    assert_eq!(status_within_a_second(&b.base, &admin, 200), 200);
    let audit = cli(&a_dir, &["audit", "tail", "--tenant", "acme"]);
    assert!(audit.contains("POST"), "{audit}");
    let events = cli(&a_dir, &["events", "tail", "--tenant", "acme"]);
    assert!(events.contains("create"), "{events}");
}

#[test]
fn racing_creates_of_one_user_name_through_two_instances_make_exactly_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, t) = two_instances(dir.path());
    for round in 0..5 {
        let name = format!("Race{round}");
        let statuses: Vec<u16> = thread::scope(|s| {
            let racers: Vec<_> = (0..8)
                .map(|i| {
                    let base = if i % 2 == 0 { &a.base } else { &b.base };
                    // The same name in other cases: one folded key.
                    let name = if i % 3 == 0 {
                        name.to_uppercase()
                    } else {
                        name.clone()
                    };
                    let t = &t;
                    s.spawn(move || {
                        send(
                            "POST",
                            &format!("{base}/scim/v2/Users"),
                            t,
                            Some(user(&name)),
                        )
                        .0
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|r| r.join().expect("racer"))
                .collect()
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 409),
            "{statuses:?}"
        );
    }
    // Each instance reads what the other wrote.
    let (status, list) = send(
        "GET",
        &format!("{}/scim/v2/Users?filter=userName%20sw%20%22race%22", b.base),
        &t,
        None,
    );
    assert_eq!(
        (status, list["totalResults"].as_u64()),
        (200, Some(5)),
        "{list}"
    );
}

#[test]
fn member_patches_through_two_instances_lose_no_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, t) = two_instances(dir.path());
    let (status, group) = send(
        "POST",
        &format!("{}/scim/v2/Groups", a.base),
        &t,
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "crew"}),
        ),
    );
    assert_eq!(status, 201, "{group}");
    let group_id = group["id"].as_str().expect("id").to_owned();
    let users: Vec<String> = (0..24)
        .map(|i| {
            let (status, u) = send(
                "POST",
                &format!("{}/scim/v2/Users", b.base),
                &t,
                Some(user(&format!("member{i}"))),
            );
            assert_eq!(status, 201, "{u}");
            u["id"].as_str().expect("id").to_owned()
        })
        .collect();
    thread::scope(|s| {
        for (i, id) in users.iter().enumerate() {
            let base = if i % 2 == 0 { &a.base } else { &b.base };
            let (t, group_id) = (&t, &group_id);
            s.spawn(move || {
                let patch = json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]
                });
                let (status, body) = send(
                    "PATCH",
                    &format!("{base}/scim/v2/Groups/{group_id}"),
                    t,
                    Some(patch),
                );
                assert!(status == 200 || status == 204, "{status} {body}");
            });
        }
    });
    let (status, group) = send(
        "GET",
        &format!("{}/scim/v2/Groups/{group_id}", a.base),
        &t,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        group["members"].as_array().map(Vec::len),
        Some(users.len()),
        "{group}"
    );
    // One instance gone: the other keeps answering, with everything acknowledged.
    a.kill();
    let (status, group) = send(
        "GET",
        &format!("{}/scim/v2/Groups/{group_id}", b.base),
        &t,
        None,
    );
    assert_eq!(
        (status, group["members"].as_array().map(Vec::len)),
        (200, Some(users.len()))
    );
}
