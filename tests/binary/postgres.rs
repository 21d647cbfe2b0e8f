//! Two scimgate processes on one PostgreSQL database (issue 15), each with its own data
//! folder holding the same signing key, as docs/scale-out.md sets them up. The server is
//! the one `POSTGRES_TEST_URL` names (`scripts/with-postgres` starts a throwaway one);
//! each test works in a database of its own.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use serde_json::json;

use super::events::try_send;
use super::pg_cluster::Cluster;
use super::receiver::{Receiver, claims_unverified};
use super::{BIN, Server, send, user};

fn test_server() -> String {
    std::env::var("POSTGRES_TEST_URL").expect(
        "POSTGRES_TEST_URL names the PostgreSQL server the tests use; scripts/with-postgres starts one",
    )
}

/// A fresh database on the test server; its address.
fn new_database() -> String {
    let server = test_server();
    let name = format!("scimgate_bin_{}", uuid::Uuid::new_v4().simple());
    let mut client = postgres::Client::connect(&server, postgres::NoTls).expect("connect");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    format!("{server} dbname={name}")
}

/// A server on `data` using the database at `url`, with `extra` configuration.
fn start_configured(data: &Path, url: &str, extra: &str) -> Server {
    private_folder(data);
    let config = data.join("scimgate.toml");
    std::fs::write(&config, format!("database = {}\n{extra}", toml_string(url))).expect("config");
    Server::start_with(data, Some(&config), Stdio::inherit())
}

/// The keys every instance shares: the token signing key and the change feed's.
const SHARED_KEYS: [&str; 2] = ["jwt-hs256.key", "events-ed25519.pk8"];

fn private_folder(path: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .expect("data folder");
}

/// The database the instance on folder `data` runs on, as its configuration names it.
fn database_of(data: &Path) -> String {
    std::fs::read_to_string(data.join("scimgate.toml"))
        .expect("config")
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("database = "))
        .map(|v| serde_json::from_str::<String>(v).expect("url"))
        .expect("database")
}

fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Two instances on one fresh database, sharing A's keys; a token for both.
fn two_instances(dir: &Path) -> (Server, Server, String) {
    two_instances_with(dir, "")
}

/// As `two_instances`, both with `extra` configuration.
fn two_instances_with(dir: &Path, extra: &str) -> (Server, Server, String) {
    let url = new_database();
    let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
    let a = start_configured(&a_dir, &url, extra);
    private_folder(&b_dir);
    for key in SHARED_KEYS {
        std::fs::copy(a_dir.join(key), b_dir.join(key)).expect("key");
    }
    let b = start_configured(&b_dir, &url, extra);
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
    claims_unverified(t)["jti"]
        .as_str()
        .expect("jti")
        .to_owned()
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
    assert_eq!(status_within_a_second(&a.base, &acme, 200), 200);
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

/// kill -9 of the instance delivering to a push receiver, during a write load spread over
/// both: the survivor keeps answering and takes the delivery over; every acknowledged
/// write is there, and every event reaches the receiver at least once, in order.
#[test]
fn killing_an_instance_under_load_loses_no_acknowledged_write_or_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start();
    let extra = format!(
        "[[events.receivers]]\nname = \"app\"\nurl = \"{}\"\ntenants = [\"default\"]\nmax_backoff_secs = 1\n",
        receiver.url
    );
    let (a, b, t) = two_instances_with(dir.path(), &extra);
    let bases = [a.base.clone(), b.base.clone()];
    let pids = [a.child.id(), b.child.id()];
    let url = database_of(&dir.path().join("a"));
    let mut servers = [Some(a), Some(b)];
    let acknowledged = std::sync::Mutex::new(Vec::new());
    thread::scope(|s| {
        for w in 0..4 {
            let (bases, t, acknowledged) = (&bases, &t, &acknowledged);
            s.spawn(move || {
                for i in 0..100 {
                    let body = user(&format!("load-{w}-{i}"));
                    // Each write to one instance, then the other when it does not answer.
                    for k in 0..2 {
                        let base = &bases[(w + i + k) % 2];
                        let url = format!("{base}/scim/v2/Users");
                        if let Some((201, created)) = try_send("POST", &url, t, Some(body.clone()))
                        {
                            let id = created["id"].as_str().expect("id").to_owned();
                            acknowledged.lock().expect("lock").push(id);
                            break;
                        }
                    }
                }
            });
        }
        // Mid-load, the instance holding the receiver's lease is killed.
        thread::sleep(std::time::Duration::from_millis(1500));
        let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let holder: String = db
            .query_one(
                "SELECT holder FROM leases WHERE name = 'receiver:receiver:app'",
                &[],
            )
            .expect("a lease is held")
            .get(0);
        let victim = pids
            .iter()
            .position(|pid| holder.contains(&format!(":{pid}:")))
            .expect("the holder is one of the two");
        servers[victim].take().expect("running").kill();
        // Up to the kill, one instance delivered: no event came twice.
        let before: Vec<i64> = receiver
            .received()
            .iter()
            .filter_map(|r| claims_unverified(&r.body)["seq"].as_i64())
            .collect();
        let distinct: std::collections::HashSet<_> = before.iter().collect();
        assert!(!before.is_empty(), "events flowed before the kill");
        assert_eq!(distinct.len(), before.len(), "one deliverer: {before:?}");
    });
    let survivor = servers.iter().flatten().next().expect("one left");
    let acknowledged = acknowledged.into_inner().expect("lock");
    assert!(
        acknowledged.len() >= 120,
        "{} writes acknowledged",
        acknowledged.len()
    );
    for id in &acknowledged {
        let (status, _) = send(
            "GET",
            &format!("{}/scim/v2/Users/{id}", survivor.base),
            &t,
            None,
        );
        assert_eq!(status, 200, "acknowledged {id} is there");
    }
    let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let head: i64 = db
        .query_one(
            "SELECT last_seq FROM event_sequences WHERE tenant = 'default'",
            &[],
        )
        .expect("head")
        .get(0);
    assert!(head >= acknowledged.len() as i64);
    // Every event at least once; taken in the order first received, none out of order.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<i64> = receiver
            .received()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .filter_map(|r| claims_unverified(&r.body)["seq"].as_i64())
            .filter(|seq| seen.insert(*seq))
            .collect();
        if firsts.len() as i64 == head {
            assert!(
                firsts.windows(2).all(|w| w[0] < w[1]),
                "in order: {firsts:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {head} events delivered",
            firsts.len()
        );
        thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `/readyz`'s status every 100 ms until `stop` (0: no answer).
fn readiness_until(base: &str, stop: &AtomicBool) -> Vec<u16> {
    let mut seen = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let status = super::agent()
            .get(&format!("{base}/readyz"))
            .call()
            .map_or(0, |r| r.status().as_u16());
        seen.push(status);
        thread::sleep(std::time::Duration::from_millis(100));
    }
    seen
}

/// A POST's status and `Retry-After`, or `None` when no answer came.
fn post_user(
    base: &str,
    token: &str,
    name: &str,
) -> Option<(u16, Option<String>, serde_json::Value)> {
    let mut resp = super::agent()
        .post(&format!("{base}/scim/v2/Users"))
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", "application/scim+json")
        .send(user(name).to_string())
        .ok()?;
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Some((
        resp.status().as_u16(),
        retry,
        serde_json::from_str(&body).unwrap_or_default(),
    ))
}

/// PostgreSQL stopped for a few seconds during a write load (`pg_ctl stop -m fast`, as for
/// maintenance, then started again): readiness fails, writes are answered 503 with
/// `Retry-After` (never 500), nothing half-written is kept, and the server recovers by
/// itself when the database is back.
#[test]
fn postgres_stopped_during_a_load_gives_503_then_service_resumes_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start();
    let url = cluster.url();
    let data = dir.path().join("a");
    // A request waits 1 s for a connection (5 s by default, which outlasts a short stop).
    let server = start_configured(&data, &url, "overload_wait_ms = 1000\n");
    let t = cli(&data, &["token"]);
    let stop = AtomicBool::new(false);
    let (outcomes, ready) = thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut outcomes = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let name = format!("fault-{i}");
                if let Some(outcome) = post_user(&server.base, &t, &name) {
                    outcomes.push((name, outcome));
                }
            }
            outcomes
        });
        let probe = s.spawn(|| readiness_until(&server.base, &stop));
        thread::sleep(std::time::Duration::from_millis(1500));
        cluster.stop();
        thread::sleep(std::time::Duration::from_secs(4));
        cluster.start_again();
        thread::sleep(std::time::Duration::from_secs(6));
        stop.store(true, Ordering::SeqCst);
        (writer.join().expect("writer"), probe.join().expect("probe"))
    });
    let statuses: Vec<u16> = outcomes.iter().map(|(_, (s, _, _))| *s).collect();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 503),
        "only 201 and 503: {statuses:?}"
    );
    assert!(statuses.contains(&503), "the outage was seen: {statuses:?}");
    for (_, (status, retry, body)) in &outcomes {
        if *status == 503 {
            assert_eq!(retry.as_deref(), Some("1"), "{body}");
            assert_eq!(body["status"], "503", "a SCIM error: {body}");
        }
    }
    assert_eq!(statuses.last(), Some(&201), "service resumed: {statuses:?}");
    assert!(
        ready.iter().any(|s| *s != 200),
        "readiness failed: {ready:?}"
    );
    assert_eq!(ready.last(), Some(&200), "and came back: {ready:?}");
    // Every acknowledged write is there; every stored user is whole (indexed, counted,
    // with its event), whatever the outage cut.
    for (name, (status, _, body)) in &outcomes {
        if *status == 201 {
            let id = body["id"].as_str().expect("id");
            let (got, user) = send(
                "GET",
                &format!("{}/scim/v2/Users/{id}", server.base),
                &t,
                None,
            );
            assert_eq!((got, user["userName"].as_str()), (200, Some(name.as_str())));
        }
    }
    let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let whole: (i64, i64, i64, i64) = {
        let r = db
            .query_one(
                "SELECT (SELECT count(*) FROM resources), \
                        (SELECT coalesce(sum(n), 0)::bigint FROM resource_counts), \
                        (SELECT count(*) FROM resources r WHERE NOT EXISTS \
                            (SELECT 1 FROM attr_index a WHERE a.seq = r.seq)), \
                        (SELECT count(*) FROM events WHERE operation = 'create')",
                &[],
            )
            .expect("counts");
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    let (stored, counted, unindexed, events) = whole;
    assert_eq!(
        (counted, unindexed, events),
        (stored, 0, stored),
        "{whole:?}"
    );
    let acknowledged = statuses.iter().filter(|s| **s == 201).count() as i64;
    assert!(
        stored >= acknowledged,
        "{stored} stored, {acknowledged} acknowledged"
    );
    // Restarted while the server idles: every pooled connection is stale, and the first
    // requests after it are answered all the same (a stale one is dropped, another taken).
    cluster.stop();
    cluster.start_again();
    for _ in 0..20 {
        let (status, _) = send(
            "GET",
            &format!("{}/scim/v2/Users?count=1", server.base),
            &t,
            None,
        );
        assert_eq!(status, 200);
    }
    assert_eq!(
        post_user(&server.base, &t, "after-restart").map(|o| o.0),
        Some(201)
    );
}

/// PostgreSQL frozen (every process stopped: connections open, nothing answered, as
/// with a stalled disk): requests get 503 with `Retry-After` once the store's deadline
/// passes (here 1 s for a connection and twice 1 s for a statement), not a wait without
/// end; readiness fails; service resumes by itself when it thaws; and SIGTERM while it is
/// frozen still stops the server.
#[test]
fn a_frozen_postgres_gets_503_within_the_deadline_and_does_not_hold_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start();
    let data = dir.path().join("a");
    let mut server = start_configured(
        &data,
        &cluster.url(),
        "query_timeout_ms = 1000\noverload_wait_ms = 1000\n",
    );
    let t = cli(&data, &["token"]);
    assert_eq!(
        post_user(&server.base, &t, "before").map(|o| o.0),
        Some(201)
    );
    cluster.freeze();
    let answers: Vec<_> = thread::scope(|s| {
        let calls: Vec<_> = (0..6)
            .map(|i| {
                let (base, t) = (&server.base, &t);
                s.spawn(move || {
                    let started = std::time::Instant::now();
                    let outcome = if i % 2 == 0 {
                        post_user(base, t, &format!("frozen-{i}")).map(|o| (o.0, o.1))
                    } else {
                        let resp = super::agent()
                            .get(&format!(
                                "{base}/scim/v2/Users?filter=userName%20eq%20%22before%22"
                            ))
                            .header("authorization", &format!("Bearer {t}"))
                            .call()
                            .ok();
                        resp.map(|r| {
                            let retry = r
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            (r.status().as_u16(), retry)
                        })
                    };
                    (outcome, started.elapsed())
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().expect("call")).collect()
    });
    for (outcome, took) in &answers {
        assert_eq!(outcome.as_ref().map(|o| o.0), Some(503), "{answers:?}");
        assert_eq!(outcome.as_ref().and_then(|o| o.1.as_deref()), Some("1"));
        assert!(took.as_secs() < 10, "answered in {took:?}");
    }
    let ready = super::agent()
        .get(&format!("{}/readyz", server.base))
        .call()
        .map_or(0, |r| r.status().as_u16());
    assert_eq!(ready, 503);
    cluster.thaw();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let status = post_user(&server.base, &t, "after").map(|o| o.0);
        if status == Some(201) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not resume: {status:?}"
        );
        thread::sleep(std::time::Duration::from_millis(200));
    }
    // Frozen again, with a request waiting on it: SIGTERM still ends the process.
    cluster.freeze();
    let (base, token) = (server.base.clone(), t.clone());
    let waiting = thread::spawn(move || post_user(&base, &token, "during-shutdown"));
    thread::sleep(std::time::Duration::from_millis(300));
    let term = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let stopping = std::time::Instant::now();
    loop {
        if server.child.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(
            stopping.elapsed().as_secs() < 30,
            "the server did not stop while the database was frozen"
        );
        thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = waiting.join();
    cluster.thaw();
}

/// Even at `debug`, the log holds no statement's parameters, stored password hash or
/// attribute value: the PostgreSQL client, which logs statements with their parameters
/// at debug, stays at info unless named.
#[test]
fn a_debug_log_on_postgres_shows_no_statement_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("a");
    private_folder(&data);
    let config = data.join("scimgate.toml");
    std::fs::write(
        &config,
        format!("database = {}\n", toml_string(&new_database())),
    )
    .expect("config");
    let log = dir.path().join("server.log");
    let server = Server::start_logging(
        &data,
        Some(&config),
        std::fs::File::create(&log).expect("log").into(),
        "debug",
    );
    let t = cli(&data, &["token"]);
    let mut body = user("Marker-Name-5");
    body["password"] = json!("Cleartext-Secret-9");
    body["title"] = json!("Marker-Title-7");
    let (status, _) = send(
        "POST",
        &format!("{}/scim/v2/Users", server.base),
        &t,
        Some(body),
    );
    assert_eq!(status, 201);
    let filter = "userName%20eq%20%22Marker-Name-5%22";
    let (status, found) = send(
        "GET",
        &format!("{}/scim/v2/Users?filter={filter}", server.base),
        &t,
        None,
    );
    assert_eq!((status, &found["totalResults"]), (200, &json!(1)));
    drop(server);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("DEBUG"), "the log is at debug");
    for secret in [
        "argon2",
        "Cleartext-Secret-9",
        "Marker-Title-7",
        "Marker-Name-5",
        "with parameters",
    ] {
        assert!(!text.contains(secret), "{secret} in the log");
    }
}

/// `scimgate migrate` with its output, and whether it succeeded.
fn migrate(from: &str, to: &str) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["migrate", "--from", from, "--to", to])
        .output()
        .expect("run scimgate migrate");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The number of rows `migrate` reported for `table`.
fn rows_of(report: &str, table: &str) -> u64 {
    report
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(table)).then(|| words.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {table} in {report}"))
}

fn total(base: &str, token: &str, filter: &str) -> u64 {
    let (status, list) = send(
        "GET",
        &format!(
            "{base}/scim/v2/Users?count=0&filter={}",
            super::uri::encode(filter)
        ),
        token,
        None,
    );
    assert_eq!(status, 200, "{list}");
    list["totalResults"].as_u64().expect("total")
}

/// A SQLite install moved into PostgreSQL and back: every table copied and verified,
/// a rerun changes nothing, a differing target is refused, and each server started on the
/// copy serves the same users, groups, filters, revocations and feed.
#[test]
fn an_install_moves_to_postgres_and_back_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite_dir = dir.path().join("sqlite");
    private_folder(&sqlite_dir);
    let server = Server::start(&sqlite_dir);
    let (ok, t, err) = super::cli(&sqlite_dir, &["token"]);
    assert!(ok, "{err}");
    let t = t.trim().to_owned();
    let (ok, revoked, err) = super::cli(&sqlite_dir, &["token"]);
    assert!(ok, "{err}");
    let revoked = revoked.trim().to_owned();
    let mut ids = Vec::new();
    for i in 0..30 {
        let mut body = user(&format!("mig-{i}"));
        body["emails"] = json!([{"value": format!("m{i}@example.com"), "type": "work"}]);
        body["active"] = json!(i % 3 != 0);
        let (status, u) = send(
            "POST",
            &format!("{}/scim/v2/Users", server.base),
            &t,
            Some(body),
        );
        assert_eq!(status, 201, "{u}");
        ids.push(u["id"].as_str().expect("id").to_owned());
    }
    let members: Vec<_> = ids[..10].iter().map(|id| json!({"value": id})).collect();
    let (status, group) = send(
        "POST",
        &format!("{}/scim/v2/Groups", server.base),
        &t,
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "movers", "members": members}),
        ),
    );
    assert_eq!(status, 201, "{group}");
    let group_id = group["id"].as_str().expect("id").to_owned();
    let (status, _) = send(
        "DELETE",
        &format!("{}/scim/v2/Users/{}", server.base, ids[29]),
        &t,
        None,
    );
    assert_eq!(status, 204);
    let (ok, _, err) = super::cli(&sqlite_dir, &["token", "revoke", &jti(&revoked)]);
    assert!(ok, "{err}");
    drop(server);

    let url = new_database();
    let folder = sqlite_dir.to_str().expect("utf8");
    let (ok, there) = migrate(folder, &url);
    assert!(ok, "{there}");
    assert!(there.contains("copied and verified"), "{there}");
    assert_eq!(rows_of(&there, "resources"), 30, "29 users and a group");
    assert_eq!(rows_of(&there, "memberships"), 10);
    assert!(rows_of(&there, "attr_index") > 100);
    assert!(rows_of(&there, "events") >= 32);
    let (ok, again) = migrate(folder, &url);
    assert!(ok, "{again}");
    assert!(again.contains("nothing written"), "{again}");

    // A server on the copy serves the same install.
    let pg_dir = dir.path().join("pg");
    private_folder(&pg_dir);
    for key in SHARED_KEYS {
        std::fs::copy(sqlite_dir.join(key), pg_dir.join(key)).expect("key");
    }
    let server = start_configured(&pg_dir, &url, "");
    assert_eq!(total(&server.base, &t, "userName sw \"mig-\""), 29);
    assert_eq!(
        total(
            &server.base,
            &t,
            "emails[type eq \"work\" and value eq \"m3@example.com\"]"
        ),
        1
    );
    let (status, group) = send(
        "GET",
        &format!("{}/scim/v2/Groups/{group_id}", server.base),
        &t,
        None,
    );
    assert_eq!(
        (status, group["members"].as_array().map(Vec::len)),
        (200, Some(10))
    );
    assert_eq!(status_within_a_second(&server.base, &revoked, 401), 401);
    let (status, u) = send(
        "POST",
        &format!("{}/scim/v2/Users", server.base),
        &t,
        Some(user("joined-on-pg")),
    );
    assert_eq!(status, 201, "new rows get numbers of their own: {u}");
    drop(server);
    // The source no longer matches the target: a rerun is refused, nothing changed.
    let (ok, refused) = migrate(folder, &url);
    assert!(!ok && refused.contains("differs"), "{refused}");

    // And back into a new data folder, for a user leaving the cluster.
    let back_dir = dir.path().join("back");
    let (ok, back) = migrate(&url, back_dir.to_str().expect("utf8"));
    assert!(ok, "{back}");
    assert_eq!(rows_of(&back, "resources"), 31);
    for key in SHARED_KEYS {
        std::fs::copy(sqlite_dir.join(key), back_dir.join(key)).expect("key");
    }
    let server = Server::start(&back_dir);
    assert_eq!(
        total(
            &server.base,
            &t,
            "userName sw \"mig-\" or userName eq \"joined-on-pg\""
        ),
        30
    );
    // Counted from the copied index rows (SQLite keeps a count per boolean value).
    assert_eq!(total(&server.base, &t, "active eq true"), 19);
    assert_eq!(total(&server.base, &t, "active eq false"), 10);
    assert_eq!(status_within_a_second(&server.base, &revoked, 401), 401);
    let (status, _) = send(
        "POST",
        &format!("{}/scim/v2/Users", server.base),
        &t,
        Some(user("after-return")),
    );
    assert_eq!(status, 201);
}

/// `GET /readyz` names the instances on the same database that run another set of
/// plugins or schemas (each publishes a fingerprint every few seconds), and stays ready.
#[test]
fn readiness_names_an_instance_running_other_schemas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, _b, _t) = two_instances(dir.path());
    let ready = |base: &str| -> serde_json::Value {
        let mut r = super::agent()
            .get(&format!("{base}/readyz"))
            .call()
            .expect("readyz");
        assert_eq!(r.status().as_u16(), 200);
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json")
    };
    let differing = |base: &str| ready(base)["plugins_and_schemas"]["differing_instances"].clone();
    // The two alike: none differs.
    assert_eq!(differing(&a.base), json!([]), "{}", ready(&a.base));
    // A third with a schema extension the others do not have.
    let c_dir = dir.path().join("c");
    private_folder(&c_dir);
    std::fs::write(
        c_dir.join("schema.json"),
        json!({"id": "urn:example:params:scim:schemas:extension:Badge:2.0:User", "name": "Badge",
               "attributes": [{"name": "badge", "type": "string"}]})
        .to_string(),
    )
    .expect("schema");
    let url = database_of(&dir.path().join("a"));
    let c = start_configured(
        &c_dir,
        &url,
        "[[schemas]]\nfile = \"schema.json\"\nresource_type = \"User\"\n",
    );
    let theirs = ready(&c.base)["plugins_and_schemas"]["fingerprint"].clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let named = differing(&a.base);
        if named
            .as_array()
            .is_some_and(|d| d.iter().any(|i| i["fingerprint"] == theirs))
        {
            assert_eq!(named.as_array().map(Vec::len), Some(1), "only C: {named}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "C never named: {named}"
        );
        thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Two attributes removed in one reload with `purge` are both dropped on PostgreSQL too.
#[test]
fn attributes_removed_together_are_purged_together_on_postgres() {
    let database = format!("database = {}", toml_string(&new_database()));
    super::schemas::purge_two_attributes_together(&database);
}
