//! Issue 11 on the real binary: HEAD on the wire (15), what plugins may log (18), one
//! server per data folder and private files (20), the admin CLI's refusals (23), plugin
//! files next to the configuration and plugin statuses (24).

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use super::{BIN, Server, cli, fixture, send, token, user};

/// A request written by hand, and everything the server sent back until it closed.
fn raw(base: &str, request: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn p15_head_answers_headers_without_a_body() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let t = token(&data, &[]);
    let (_, created) = send(
        "POST",
        &format!("{}/scim/v2/Users", server.base),
        &t,
        Some(user("head")),
    );
    let id = created["id"].as_str().expect("id");
    for (path, auth) in [
        ("/healthz".to_owned(), String::new()),
        (
            format!("/scim/v2/Users/{id}"),
            format!("Authorization: Bearer {t}\r\n"),
        ),
    ] {
        let answer = raw(
            &server.base,
            &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
        );
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(body.is_empty(), "{path}: a body after HEAD: {body}");
    }
}

#[test]
fn p18_plugins_see_the_password_only_when_configured() {
    for sees in [false, true] {
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().join("data");
        let config = dir.path().join("scimgate.toml");
        std::fs::write(
            &config,
            format!(
                "[[plugins]]\nname = \"log-input\"\nfile = \"{}\"\nsees_password = {sees}\n",
                fixture("log-input").display()
            ),
        )
        .expect("config");
        let log = dir.path().join("server.log");
        let server = Server::start_logging(
            &data,
            Some(&config),
            Stdio::from(std::fs::File::create(&log).expect("log")),
            "warn,scimgate_plugins=debug",
        );
        let t = token(&data, &[]);
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "pw", "password": "Cleartext-Secret-42"});
        let (status, created) = send(
            "POST",
            &format!("{}/scim/v2/Users", server.base),
            &t,
            Some(body),
        );
        assert_eq!(status, 201);
        // The PATCH operations, as plugins are given them, carry passwords too.
        let id = created["id"].as_str().expect("id");
        let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "replace", "path": "password", "value": "Cleartext-Secret-43"},
                {"op": "replace", "value": {"PASSWORD": "Cleartext-Secret-44"}}]});
        let (status, _) = send(
            "PATCH",
            &format!("{}/scim/v2/Users/{id}", server.base),
            &t,
            Some(patch),
        );
        assert_eq!(status, 200);
        server.kill();
        let logged = std::fs::read_to_string(&log).expect("log");
        assert!(logged.contains("plugin log"), "the plugin logged: {logged}");
        // Each call carries the id of the request that asked for the write (a UUID here).
        let after = logged
            .split_once("requestId")
            .map(|(_, rest)| rest.trim_start_matches(['\\', '"', ':']))
            .unwrap_or_default();
        assert!(
            after.chars().take(8).all(|c| c.is_ascii_hexdigit()) && after.len() > 8,
            "the plugin was given the request id: {logged}"
        );
        for secret in [
            "Cleartext-Secret-42",
            "Cleartext-Secret-43",
            "Cleartext-Secret-44",
        ] {
            assert_eq!(
                logged.contains(secret),
                sees,
                "{secret}, sees_password = {sees}: {logged}"
            );
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
}

#[test]
fn p20_one_server_per_data_folder_with_private_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let t = token(&data, &[]);
    let (status, _) = send(
        "POST",
        &format!("{}/scim/v2/Users", server.base),
        &t,
        Some(user("private")),
    );
    assert_eq!(status, 201);
    let second = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("SCIMGATE_LOG", "error")
        .output()
        .expect("second serve");
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("another scimgate server is running"),
        "{said}"
    );
    assert_eq!(mode(&data), 0o700);
    for file in ["scimgate.db", "jwt-hs256.key", "scimgate.lock"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    for file in ["scimgate.db-wal", "scimgate.db-shm"] {
        if data.join(file).exists() {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
    }
    // The admin commands still work beside the running server.
    let (ok, listed, err) = cli(&data, &["tenant", "list"]);
    assert!(ok, "{err}");
    assert!(listed.contains("default"));
}

#[test]
fn p23_admin_commands_refuse_a_folder_without_a_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let empty = dir.path().join("typo");
    for args in [&["token"][..], &["tenant", "list"], &["token", "list"]] {
        let (ok, _, err) = cli(&empty, args);
        assert!(!ok, "{args:?} on a folder without a database");
        assert!(err.contains("no scimgate database"), "{err}");
    }
    assert!(!empty.exists(), "nothing was created");
    let (ok, minted, err) = cli(&empty, &["token", "--init"]);
    assert!(ok, "{err}");
    assert_eq!(minted.trim().split('.').count(), 3, "a JWT");
    let (ok, _, err) = cli(&empty, &["token", "revoke", "not-a-jti"]);
    assert!(!ok, "an unknown jti is an error");
    assert!(err.contains("no token with jti 'not-a-jti'"), "{err}");
    let (ok, _, err) = cli(&empty, &["token", "revoke", "--external", ""]);
    assert!(!ok && err.contains("empty"), "{err}");
    let (ok, _, err) = cli(&empty, &["token", "--scope", "scim:read scim:bogus"]);
    assert!(!ok && err.contains("unknown scope 'scim:bogus'"), "{err}");
    let (ok, out, err) = cli(&empty, &["token", "revoke", "--external", "from-an-idp"]);
    assert!(ok, "{err}");
    assert!(out.contains("revoked"));
}

#[test]
fn p24_plugin_files_resolve_next_to_the_configuration() {
    let dir = tempfile::tempdir().expect("tmp");
    let conf_dir = dir.path().join("etc");
    std::fs::create_dir_all(conf_dir.join("plugins")).expect("dirs");
    std::fs::copy(fixture("reject"), conf_dir.join("plugins/reject.wat")).expect("copy");
    let config = conf_dir.join("scimgate.toml");
    std::fs::write(
        &config,
        "[[plugins]]\nname = \"reject\"\nfile = \"plugins/reject.wat\"\n",
    )
    .expect("config");
    // The server runs in the test's folder (the repository root), where no
    // `plugins/reject.wat` is: it is found next to the configuration file.
    assert!(!Path::new("plugins/reject.wat").exists());
    let data = dir.path().join("data");
    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    let t = token(&data, &[]);
    let (status, body) = send(
        "POST",
        &format!("{}/scim/v2/Users", server.base),
        &t,
        Some(user("x")),
    );
    assert_eq!(status, 422, "the plugin ran: {body}");

    // A reject status plugins may not use is refused by `plugin run` as by the server.
    let out = Command::new(BIN)
        .args(["plugin", "run"])
        .arg(fixture("teapot"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(br#"{"userName": "x"}"#)?;
            child.wait_with_output()
        })
        .expect("plugin run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("status 418"));
}
