//! The real `scimgate` binary as an operator runs it: `serve`, `token`, a hard kill and a
//! restart on the same data folder, and concurrent writers.

mod clients;
mod events;
mod files;
mod operate;
mod pg_cluster;
mod postgres;
mod receiver;
mod schemas;
mod sealed;
#[path = "../support/uri.rs"]
mod uri;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_scimgate");

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &Path) -> Server {
        Self::start_with(data, None, Stdio::inherit())
    }

    /// Starts with a configuration file, sending the server's log to `stderr`.
    fn start_with(data: &Path, config: Option<&Path>, stderr: Stdio) -> Server {
        Self::start_logging(
            data,
            config,
            stderr,
            "warn,scimgate::reload=info,scimgate_store=info",
        )
    }

    /// As `start_with`, with the log filter `log` (`SCIMGATE_LOG`).
    fn start_logging(data: &Path, config: Option<&Path>, stderr: Stdio, log: &str) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .env("SCIMGATE_LOG", log)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn scimgate");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = agent().get(&format!("{}/readyz", server.base)).call()
                && r.status() == 200
            {
                return server;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("scimgate did not become ready");
    }

    /// SIGKILL: no graceful shutdown, so only what was committed before an answer survives.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn token(data: &Path, extra: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["token", "--data"])
        .arg(data)
        .args(extra)
        .output()
        .expect("token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

fn send(method: &str, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let a = agent();
    let auth = format!("Bearer {token}");
    let mut resp = match body {
        Some(b) if method == "PATCH" => a
            .patch(url)
            .header("authorization", &auth)
            .header("content-type", "application/scim+json")
            .send(b.to_string()),
        Some(b) => a
            .post(url)
            .header("authorization", &auth)
            .header("content-type", "application/scim+json")
            .send(b.to_string()),
        None if method == "GET" => a.get(url).header("authorization", &auth).call(),
        None => a.delete(url).header("authorization", &auth).call(),
    }
    .expect("request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Waits until a tenant added beside the running server is usable with `token` (the server
/// sees the registry change within a second).
fn wait_for_tenant(server: &Server, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while send(
        "GET",
        &format!("{}/scim/v2/Users", server.base),
        token,
        None,
    )
    .0 == 403
    {
        assert!(Instant::now() < deadline, "the tenant never became usable");
        thread::sleep(Duration::from_millis(50));
    }
}

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

#[test]
fn first_start_creates_data_key_and_database_and_data_survives_a_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("fresh").join("data");
    let server = Server::start(&data);
    assert!(data.join("scimgate.db").exists());
    let key = data.join("jwt-hs256.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
        0o600
    );

    let added = Command::new(BIN)
        .args(["tenant", "add", "acme", "--data"])
        .arg(&data)
        .output()
        .expect("tenant add");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let t = token(
        &data,
        &["--tenant", "acme", "--sub", "entra", "--ttl", "600"],
    );
    let (status, health) = send("GET", &format!("{}/healthz", server.base), "", None);
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    wait_for_tenant(&server, &t);
    let (status, created) = send(
        "POST",
        &format!("{}/scim/v2/Users", server.base),
        &t,
        Some(user("durable")),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let read_only = token(&data, &["--scope", "scim:read"]);
    let (status, _) = send(
        "POST",
        &format!("{}/scim/v2/Users", server.base),
        &read_only,
        Some(user("x")),
    );
    assert_eq!(status, 403);
    server.kill();

    let server = Server::start(&data);
    let (status, fetched) = send(
        "GET",
        &format!("{}/scim/v2/Users/{id}", server.base),
        &t,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(fetched["userName"], "durable");
    let other_tenant = token(&data, &[]);
    let (status, _) = send(
        "GET",
        &format!("{}/scim/v2/Users/{id}", server.base),
        &other_tenant,
        None,
    );
    assert_eq!(status, 404, "the default tenant cannot see acme's user");
}

#[test]
fn eight_concurrent_writers_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // As fast as the server goes, far above any IdP's rate: no rate limit.
    let config = dir.path().join("scimgate.toml");
    std::fs::write(&config, "[rate_limit]\nenabled = false\n").expect("config");
    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    let t = Arc::new(token(&data, &[]));
    let base = Arc::new(server.base.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (t, base, stop) = (Arc::clone(&t), Arc::clone(&base), Arc::clone(&stop));
            thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = send(
                        "POST",
                        &format!("{base}/scim/v2/Users"),
                        &t,
                        Some(user(&format!("w{w}-{i}"))),
                    );
                    assert!(status < 500, "5xx under concurrency: {status} {body}");
                    assert_eq!(status, 201, "{body}");
                    acknowledged.push(body["id"].as_str().expect("id").to_owned());
                    i += 1;
                }
                acknowledged
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let ids: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();
    assert!(ids.len() >= 8, "only {} writes in 3 s", ids.len());
    for id in &ids {
        let (status, _) = send(
            "GET",
            &format!("{}/scim/v2/Users/{id}", server.base),
            &t,
            None,
        );
        assert_eq!(status, 200, "acknowledged user {id} is missing");
    }
    let (_, list) = send(
        "GET",
        &format!("{}/scim/v2/Users?count=0", server.base),
        &t,
        None,
    );
    assert_eq!(list["totalResults"].as_u64(), Some(ids.len() as u64));
}

#[test]
fn token_refuses_a_bad_tenant_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["token", "--init", "--data"])
        .arg(dir.path())
        .args(["--tenant", "bad tenant"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid tenant name"));
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("crates/scimgate-plugins/tests/fixtures/{name}.wat"))
}

#[test]
fn plugin_check_and_run() {
    let ok = Command::new(BIN)
        .args(["plugin", "check"])
        .arg(fixture("accept"))
        .output()
        .expect("run");
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok, plugin ABI version 1"));
    let bad = Command::new(BIN)
        .args(["plugin", "check"])
        .arg(fixture("wasi"))
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("wasi_snapshot_preview1"));

    use std::io::Write as _;
    let mut child = Command::new(BIN)
        .args(["plugin", "run"])
        .arg(fixture("reject"))
        .args(["--hook", "create", "--config", "{\"allowed\": []}"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(br#"{"userName": "u"}"#)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decision: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(decision["decision"], "reject");
    assert_eq!(decision["status"], 422);
    assert!(String::from_utf8_lossy(&out.stderr).contains("took"));
}

/// A configuration with one plugin, the given fixture, and file watching as given.
fn plugin_config(path: &Path, fixture_name: &str, watch_ms: u64) {
    let text = format!(
        "plugin_watch_interval_ms = {watch_ms}\n[[plugins]]\nname = \"{fixture_name}\"\nfile = \"{}\"\n",
        fixture(fixture_name).display()
    );
    std::fs::write(path, text).expect("write config");
}

/// Creates users until the answer is `want` (the reload is asynchronous) or 15 s pass.
fn wait_for_create_status(server: &Server, token: &str, want: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    loop {
        n += 1;
        let (status, _) = send(
            "POST",
            &format!("{}/scim/v2/Users", server.base),
            token,
            Some(user(&format!("probe{n}-{want}"))),
        );
        if status == want || Instant::now() > deadline {
            return status;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn plugins_reload_on_sighup_and_a_bad_set_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("scimgate.toml");
    let log = dir.path().join("server.log");
    plugin_config(&config, "reject", 0);
    let server = Server::start_with(
        &dir.path().join("data"),
        Some(&config),
        Stdio::from(std::fs::File::create(&log).expect("log")),
    );
    let t = token(&dir.path().join("data"), &[]);
    let (status, body) = send(
        "POST",
        &format!("{}/scim/v2/Users", server.base),
        &t,
        Some(user("before")),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap_or("").contains("'reject'"));

    let hup = |child: &Child| {
        let ok = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    };
    plugin_config(&config, "accept", 0);
    hup(&server.child);
    assert_eq!(wait_for_create_status(&server, &t, 201), 201);

    // A set that does not load is refused; the running set (accept) keeps serving.
    plugin_config(&config, "wasi", 0);
    hup(&server.child);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("plugin reload refused")
    {
        assert!(Instant::now() < deadline, "no refusal logged");
        thread::sleep(Duration::from_millis(100));
    }
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.contains("wasi_snapshot_preview1"), "{logged}");
    let (status, _) = send(
        "POST",
        &format!("{}/scim/v2/Users", server.base),
        &t,
        Some(user("after-bad-reload")),
    );
    assert_eq!(status, 201, "the old set still serves");
}

#[test]
fn plugins_reload_when_the_configuration_file_changes() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("scimgate.toml");
    plugin_config(&config, "accept", 100);
    let server = Server::start_with(&dir.path().join("data"), Some(&config), Stdio::inherit());
    let t = token(&dir.path().join("data"), &[]);
    assert_eq!(wait_for_create_status(&server, &t, 201), 201);
    plugin_config(&config, "reject", 100);
    assert_eq!(wait_for_create_status(&server, &t, 422), 422);
}

fn cli(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run scimgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tenants_and_tokens_are_managed_beside_a_running_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let (ok, _, err) = cli(&data, &["token", "--tenant", "acme"]);
    assert!(!ok && err.contains("scimgate tenant add acme"), "{err}");
    assert!(cli(&data, &["tenant", "add", "acme"]).0);
    let (_, listed, _) = cli(&data, &["tenant", "list"]);
    assert!(
        listed.contains("acme") && listed.contains("default"),
        "{listed}"
    );

    let t = token(&data, &["--tenant", "acme", "--sub", "okta"]);
    let users = format!("{}/scim/v2/Users", server.base);
    wait_for_tenant(&server, &t);
    assert_eq!(send("POST", &users, &t, Some(user("kept"))).0, 201);
    let (_, tokens, _) = cli(&data, &["token", "list"]);
    let line = tokens
        .lines()
        .find(|l| l.contains("okta"))
        .unwrap_or_else(|| panic!("{tokens}"));
    let jti = line.split_whitespace().next().expect("jti").to_owned();

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (ok, tail, err) = cli(&data, &["audit", "tail", "--tenant", "acme", "--json"]);
        assert!(ok, "{err}");
        if let Some(line) = tail.lines().next() {
            let row: Value = serde_json::from_str(line).expect("json line");
            assert_eq!(
                (row["method"].as_str(), row["status"].as_u64()),
                (Some("POST"), Some(201))
            );
            assert_eq!(row["subject"], "okta");
            break;
        }
        assert!(Instant::now() < deadline, "no audit row");
        thread::sleep(Duration::from_millis(50));
    }
    let (ok, out, _) = cli(&data, &["token", "revoke", &jti]);
    assert!(ok && out.contains("revoked"), "{out}");
    let revoked_at = Instant::now();
    while send("GET", &users, &t, None).0 != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s"
        );
        thread::sleep(Duration::from_millis(20));
    }

    let (ok, _, err) = cli(&data, &["tenant", "remove", "acme"]);
    assert!(
        !ok && err.contains("1 users") && err.contains("--purge"),
        "{err}"
    );
    let (ok, out, _) = cli(&data, &["tenant", "remove", "acme", "--purge"]);
    assert!(ok && out.contains("1 users"), "{out}");
    let (_, listed, _) = cli(&data, &["tenant", "list"]);
    assert!(!listed.contains("acme"), "{listed}");
}

#[test]
fn serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let keys = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
    let config = dir.path().join("scimgate.toml");
    std::fs::write(
        &config,
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            keys.join("tls-cert.pem").display(),
            keys.join("tls-key.pem").display()
        ),
    )
    .expect("config");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let _child = ChildGuard(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--data")
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("SCIMGATE_LOG", "warn")
            .spawn()
            .expect("spawn"),
    );
    let cert =
        ureq::tls::Certificate::from_pem(&std::fs::read(keys.join("tls-cert.pem")).expect("cert"))
            .expect("pem");
    let https: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
                .build(),
        )
        .build()
        .into();
    let base = format!("https://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        match https.get(&format!("{base}/readyz")).call() {
            Ok(r) => break r.status().as_u16(),
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("no HTTPS answer: {e}"),
        }
    };
    assert_eq!(status, 200);
    let t = token(&data, &[]);
    let mut r = https
        .get(&format!("{base}/scim/v2/Users"))
        .header("authorization", &format!("Bearer {t}"))
        .call()
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    let body: Value =
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json");
    assert_eq!(body["totalResults"], 0);
    // Plain HTTP to the TLS port gets no SCIM answer.
    assert!(
        agent()
            .get(&format!("http://127.0.0.1:{port}/readyz"))
            .call()
            .map(|r| r.status().as_u16() != 200)
            .unwrap_or(true)
    );
    // Issue 11, point 22: the Docker healthcheck speaks TLS when asked, or when the
    // configuration it reads has a certificate; plain HTTP to this port is unhealthy.
    let addr = format!("127.0.0.1:{port}");
    let health = |args: &[&str]| {
        Command::new(BIN)
            .arg("healthcheck")
            .args(args)
            .env_remove("SCIMGATE_CONFIG")
            .output()
            .expect("healthcheck")
    };
    let out = health(&["--addr", &addr, "--tls"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config_text = config.to_str().expect("utf8");
    let out = health(&["--addr", &addr, "--config", config_text]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!health(&["--addr", &addr]).status.success());
}

/// Kills the child when the test ends, pass or fail.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends the head of a POST with a 2-part body: the first part now, the rest after `between`.
fn split_post(base: &str, token: &str, body: &str, split: usize) -> std::net::TcpStream {
    use std::io::Write as _;
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "POST /scim/v2/Users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..split]
    )
    .expect("write");
    s
}

fn read_status(s: &mut std::net::TcpStream) -> String {
    use std::io::Read as _;
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_slow_body_gets_408_and_sigterm_lets_in_flight_requests_finish() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let config = dir.path().join("scimgate.toml");
    std::fs::write(&config, "body_timeout_secs = 1\n").expect("config");
    let log = dir.path().join("server.log");
    let mut server = Server::start_with(
        &data,
        Some(&config),
        Stdio::from(std::fs::File::create(&log).expect("log")),
    );
    let t = token(&data, &[]);
    let body = user("in-flight").to_string();

    let mut slow = split_post(&server.base, &t, &body, 10);
    let started = Instant::now();
    let status = read_status(&mut slow);
    assert!(status.contains("408"), "{status}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A request half sent when SIGTERM arrives still completes; then the process exits 0.
    let mut in_flight = split_post(&server.base, &t, &body, 10);
    thread::sleep(Duration::from_millis(200));
    let term = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    thread::sleep(Duration::from_millis(300));
    in_flight
        .write_all(&body.as_bytes()[10..])
        .expect("rest of the body");
    let status = read_status(&mut in_flight);
    assert!(status.contains("201"), "{status}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().expect("wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.contains("store closed"), "{logged}");
    // Issue 11, point 19: a clean stop leaves the log empty, and `scimgate.db` alone (as
    // an operator copying the one file would take it) holds every acknowledged write.
    let wal = data.join("scimgate.db-wal");
    assert_eq!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()),
        0,
        "WAL left behind"
    );
    let copy = dir.path().join("copy.db");
    std::fs::copy(data.join("scimgate.db"), &copy).expect("copy");
    let n: i64 = rusqlite::Connection::open(&copy)
        .expect("open copy")
        .query_row(
            "SELECT count(*) FROM resources WHERE name = 'in-flight'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        n, 1,
        "the copy of scimgate.db alone lacks an acknowledged write"
    );
    // The write acknowledged during shutdown is there after a restart.
    let again = Server::start(&data);
    let (status, list) = send(
        "GET",
        &format!(
            "{}/scim/v2/Users?filter=userName%20eq%20%22in-flight%22",
            again.base
        ),
        &t,
        None,
    );
    assert_eq!((status, list["totalResults"].clone()), (200, json!(1)));
}

/// Sends one keep-alive GET on a fresh connection and reports whether the server closed
/// the connection after answering (read gives end of file within two seconds).
fn closed_after_one_request(base: &str, path: &str, token: Option<&str>) -> (String, bool) {
    use std::io::{Read as _, Write as _};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n").expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&seen);
    (text.lines().next().unwrap_or_default().to_owned(), closed)
}

/// Issue 10, defect 8: idle keep-alive connections from unauthenticated requests once
/// held file descriptors for 75 s each until the server ran out of them. A connection
/// whose request carried no valid token is now closed after the answer; an authenticated
/// one stays open for the next request.
#[test]
fn unauthenticated_connections_are_not_kept_alive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (status, closed) = closed_after_one_request(&server.base, "/healthz", None);
    assert!(status.contains("200"), "{status}");
    assert!(closed, "the health probe's connection was kept open");
    let (status, closed) = closed_after_one_request(&server.base, "/scim/v2/Users", Some("nope"));
    assert!(status.contains("401"), "{status}");
    assert!(closed, "a refused token's connection was kept open");
    let t = token(dir.path(), &[]);
    let (status, closed) = closed_after_one_request(&server.base, "/scim/v2/Users", Some(&t));
    assert!(status.contains("200"), "{status}");
    assert!(
        !closed,
        "an authenticated client lost its keep-alive connection"
    );
    // The routes that authenticate in their handler keep an authenticated client's
    // connection too (a Prometheus scraper reconnecting on every scrape otherwise).
    let admin = token(dir.path(), &["--scope", "scim:admin"]);
    for path in ["/metrics", "/admin/audit"] {
        let (status, closed) = closed_after_one_request(&server.base, path, Some(&admin));
        assert!(status.contains("200"), "{path}: {status}");
        assert!(!closed, "{path}: the connection was closed");
    }
}
