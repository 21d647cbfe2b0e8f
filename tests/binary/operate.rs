//! The operator's commands on the real binary: `backup` while a server writes, `restore`
//! refused beside a running server and then put back, `doctor` naming what to fix.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;

use super::*;

fn run(args: &[&str], data: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run scimgate")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Overwrites every page of a database file after the first (the schema) past its header.
fn damage(file: &Path) {
    let mut bytes = std::fs::read(file).expect("read");
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        if i % 4096 >= 12 {
            *b = 0x5a;
        }
    }
    std::fs::write(file, bytes).expect("write");
}

fn total_users(server: &Server, token: &str) -> u64 {
    let (status, list) = send(
        "GET",
        &format!("{}/scim/v2/Users?count=0", server.base),
        token,
        None,
    );
    assert_eq!(status, 200, "{list}");
    list["totalResults"].as_u64().expect("total")
}

#[test]
fn a_backup_under_writes_is_one_snapshot_and_restore_waits_for_the_server_to_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let t = token(&data, &["--sub", "loader", "--ttl", "600"]);
    let url = format!("{}/scim/v2/Users", server.base);
    // Writers keep creating users while the backup runs; each acknowledged id is noted
    // with whether it was acknowledged before the backup started.
    let backup_started = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (url, t) = (url.clone(), t.clone());
            let (started, stop, acked) = (
                Arc::clone(&backup_started),
                Arc::clone(&stop),
                Arc::clone(&acked),
            );
            thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let (status, body) = send(
                        "POST",
                        &url,
                        &t,
                        Some(user(&format!("w{w}-{i}@example.com"))),
                    );
                    assert_eq!(status, 201, "{body}");
                    // Read after the answer: acknowledged before the backup was begun.
                    let before = !started.load(Ordering::SeqCst);
                    let id = body["id"].as_str().expect("id").to_owned();
                    acked.lock().expect("lock").push((id, before));
                    i += 1;
                }
            })
        })
        .collect();
    while acked.lock().expect("lock").len() < 60 {
        thread::sleep(Duration::from_millis(20));
    }
    backup_started.store(true, Ordering::SeqCst);
    let backup = dir.path().join("backup-1");
    let out = run(&["backup", backup.to_str().expect("utf8")], &data);
    assert!(out.status.success(), "{}", text(&out));
    // Writes went on during the backup and after it.
    let during = acked.lock().expect("lock").len();
    while acked.lock().expect("lock").len() < during + 30 {
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer");
    }
    let acked = acked.lock().expect("lock").clone();
    let report = text(&out);
    assert!(report.contains("integrity ok"), "{report}");
    for name in [
        "scimgate.db",
        "jwt-hs256.key",
        "events-ed25519.pk8",
        "manifest.json",
    ] {
        let mode = std::fs::metadata(backup.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    assert_eq!(
        std::fs::metadata(&backup)
            .expect("folder")
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).expect("manifest"))
            .expect("json");
    let in_backup = manifest["rows"]["resources"].as_u64().expect("resources");
    // One snapshot: every resource has its event and its audit row, no more, no fewer.
    assert_eq!(manifest["rows"]["events"].as_u64(), Some(in_backup));
    assert_eq!(manifest["rows"]["audit"].as_u64(), Some(in_backup));
    let before = acked.iter().filter(|(_, before)| *before).count() as u64;
    assert!(
        in_backup >= before,
        "{in_backup} < {before} acknowledged before"
    );
    assert!(
        (in_backup as usize) < acked.len(),
        "writes went on after it"
    );

    // A second backup to the same folder is refused.
    let again = run(&["backup", backup.to_str().expect("utf8")], &data);
    assert!(!again.status.success());
    assert!(text(&again).contains("not empty"), "{}", text(&again));

    // Restore beside the running server: refused, nothing changed.
    let refused = run(&["restore", backup.to_str().expect("utf8")], &data);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("server is running"),
        "{}",
        text(&refused)
    );
    assert_eq!(total_users(&server, &t), acked.len() as u64);
    server.kill();

    let restored = run(&["restore", backup.to_str().expect("utf8")], &data);
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(
        text(&restored).contains("kept the earlier"),
        "{}",
        text(&restored)
    );
    let server = Server::start(&data);
    let url = format!("{}/scim/v2/Users", server.base);
    assert_eq!(total_users(&server, &t), in_backup);
    // Every user acknowledged before the backup began is back, whole.
    for (id, _) in acked.iter().filter(|(_, before)| *before) {
        let (status, body) = send("GET", &format!("{url}/{id}"), &t, None);
        assert_eq!(status, 200, "{id}: {body}");
    }
    // The install goes on from the restored state: new writes, the audit trail.
    let (status, body) = send("POST", &url, &t, Some(user("after-restore@example.com")));
    assert_eq!(status, 201, "{body}");
}

#[test]
fn restore_refuses_a_damaged_backup_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let t = token(&data, &["--sub", "a", "--ttl", "600"]);
    let (status, _) = send(
        "POST",
        &format!("{}/scim/v2/Users", server.base),
        &t,
        Some(user("kept@example.com")),
    );
    assert_eq!(status, 201);
    let backup = dir.path().join("b");
    let out = run(&["backup", backup.to_str().expect("utf8")], &data);
    assert!(out.status.success(), "{}", text(&out));
    drop(server);
    damage(&backup.join("scimgate.db"));
    let refused = run(&["restore", backup.to_str().expect("utf8")], &data);
    assert!(!refused.status.success());
    let said = text(&refused);
    assert!(
        said.contains("damaged") || said.contains("malformed"),
        "{said}"
    );
    // Any healthy SQLite file that is not a scimgate database is refused too.
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .and_then(|c| c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);"))
        .expect("foreign");
    let refused = run(&["restore", foreign.to_str().expect("utf8")], &data);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("not a scimgate database"),
        "{}",
        text(&refused)
    );
    let server = Server::start(&data);
    assert_eq!(total_users(&server, &t), 1);
}

#[test]
fn doctor_passes_a_sound_install_and_names_each_problem_with_its_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    drop(Server::start(&data));
    let sound = run(&["doctor"], &data);
    assert!(sound.status.success(), "{}", text(&sound));
    assert!(
        text(&sound).contains("integrity_check ok"),
        "{}",
        text(&sound)
    );

    // Shared permissions and a damaged database: each named, with the command to run.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let key = data.join("jwt-hs256.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    damage(&data.join("scimgate.db"));
    let sick = run(&["doctor"], &data);
    assert!(!sick.status.success());
    let said = text(&sick);
    assert!(
        said.contains(&format!("chmod 700 {}", data.display())),
        "{said}"
    );
    assert!(
        said.contains(&format!("chmod 600 {}", key.display())),
        "{said}"
    );
    assert!(said.contains("FAIL  database"), "{said}");
    assert!(said.contains("restore"), "{said}");

    // A configuration with an unknown key fails first, named.
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:1\"\nno_such_key = 1\n").expect("config");
    let bad = Command::new(BIN)
        .args(["doctor", "--config"])
        .arg(&config)
        .output()
        .expect("doctor");
    assert!(!bad.status.success());
    assert!(text(&bad).contains("no_such_key"), "{}", text(&bad));
}
