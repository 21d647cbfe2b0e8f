//! `scimgate import` and `export` on the real binary: every record through the write
//! pipeline (dialect, a real plugin, validation, audit, events), each rejection with its
//! SCIM error, groups naming users of the same file, an import killed half-way that goes
//! on, and an export taken while the server writes that imports back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::*;

fn scimgate(args: &[&str], data: &Path, config: Option<&Path>) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).arg("--data").arg(data);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command.output().expect("run scimgate")
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The one group of a tenant, read by its id (with its members).
fn only_group(server: &Server, token: &str) -> Value {
    let groups = list(server, token, "Groups");
    assert_eq!(groups["totalResults"], 1, "{groups}");
    let id = groups["Resources"][0]["id"].as_str().expect("id");
    list(server, token, &format!("Groups/{id}"))
}

fn list(server: &Server, token: &str, path: &str) -> Value {
    let (status, body) = send(
        "GET",
        &format!("{}/scim/v2/{path}", server.base),
        token,
        None,
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// Runs `scimgate import FILE` and kills it (-9) as soon as its journal satisfies `ready`.
fn import_killed_when(file: &Path, data: &Path, journal: &Path, ready: impl Fn(&str) -> bool) {
    let mut child = Command::new(BIN)
        .args(["import", file.to_str().expect("utf8"), "--data"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("import");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready(&std::fs::read_to_string(journal).unwrap_or_default()) {
        assert!(Instant::now() < deadline, "the import never got there");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "finished before it was killed"
        );
        thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
}

fn user_doc(id: &str, name: &str, department: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": id,
        "userName": name,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": department},
    })
}

fn group_doc(id: &str, name: &str, members: &[&str]) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": id,
        "displayName": name,
        "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>(),
    })
}

fn plugin_config(dir: &Path) -> PathBuf {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/dist/require-department.wasm");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugins]]\nname = \"require-department\"\nfile = \"{}\"\nresource_types = [\"User\"]\nconfig = {{ allowed = [\"Sales\", \"Engineering\"] }}\n",
            wasm.display()
        ),
    )
    .expect("config");
    config
}

#[test]
fn import_runs_each_record_through_the_pipeline_and_explains_each_rejection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = plugin_config(dir.path());
    drop(Server::start_with(&data, Some(&config), Stdio::inherit()));
    let added = scimgate(&["tenant", "add", "acme"], &data, Some(&config));
    assert!(added.status.success(), "{}", said(&added));
    // A ListResponse as another SCIM server exports it: ids and meta of its own, groups
    // before the users they name, a nested group, and records each step refuses.
    let file = dir.path().join("directory.json");
    let resources = vec![
        group_doc("g-all", "Everyone", &["g-sales", "u-2"]),
        group_doc("g-sales", "Sales", &["u-1"]),
        user_doc("u-1", "ada@example.com", "Sales"),
        user_doc("u-2", "bob@example.com", "Engineering"),
        user_doc("u-3", "cy@example.com", "Legal"),
        user_doc("u-4", "ADA@example.com", "Sales"),
        {
            let mut dee = user_doc("u-5", "dee@example.com", "Sales");
            dee["active"] = json!("maybe");
            dee
        },
        group_doc("g-legal", "Legal", &["u-3"]),
        json!({"schemas": ["urn:example:Thing"], "id": "x"}),
    ];
    let list_response = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": resources.len(), "Resources": resources,
    });
    std::fs::write(&file, list_response.to_string()).expect("file");
    let file_arg = file.to_str().expect("utf8");

    // A dry run stores nothing and says what would be refused.
    let dry = scimgate(
        &["import", file_arg, "--tenant", "acme", "--dry-run"],
        &data,
        Some(&config),
    );
    assert!(!dry.status.success());
    assert!(said(&dry).contains("would be created"), "{}", said(&dry));
    let rejects = dir.path().join("directory.json.rejects.ndjson");
    let dry_rejects = lines(&rejects);

    let run = scimgate(
        &[
            "import",
            file_arg,
            "--tenant",
            "acme",
            "--subject",
            "import:tester",
        ],
        &data,
        Some(&config),
    );
    assert!(!run.status.success(), "rejections make a non-zero exit");
    let report = said(&run);
    assert!(report.contains("9 records"), "{report}");
    assert!(report.contains("4 created, 5 rejected"), "{report}");
    assert!(!dir.path().join("directory.json.import-state").exists());
    let rejected = lines(&rejects);
    let by_record = |n: u64| {
        rejected
            .iter()
            .find(|r| r["record"] == n)
            .unwrap_or_else(|| panic!("record {n} not in {rejected:?}"))
            .clone()
    };
    // The plugin's refusal, uniqueness (case-insensitive), validation, a group naming a
    // refused user, a record of no known type: each with its status, scimType and detail.
    let plugin = by_record(5);
    assert_eq!(
        (plugin["status"].as_u64(), plugin["scimType"].as_str()),
        (Some(422), Some("invalidValue"))
    );
    assert!(
        plugin["detail"].as_str().expect("detail").contains("Legal"),
        "{plugin}"
    );
    assert_eq!(by_record(6)["scimType"], "uniqueness");
    assert_eq!(by_record(7)["status"], 400);
    assert!(
        by_record(7)["detail"]
            .as_str()
            .expect("d")
            .contains("active")
    );
    assert_eq!(by_record(8)["resourceType"], "Group");
    assert!(
        by_record(8)["detail"].as_str().expect("d").contains("u-3"),
        "{}",
        by_record(8)
    );
    assert_eq!(by_record(9)["scimType"], "invalidSyntax");
    // The dry run found the same refusals, groups' included, without storing anything.
    let statuses = |rs: &[Value]| {
        let mut s: Vec<(u64, u64)> = rs
            .iter()
            .map(|r| {
                (
                    r["record"].as_u64().expect("n"),
                    r["status"].as_u64().expect("s"),
                )
            })
            .collect();
        s.sort();
        s
    };
    assert_eq!(statuses(&dry_rejects), statuses(&rejected));

    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    let t = token(
        &data,
        &[
            "--tenant",
            "acme",
            "--scope",
            "scim:read scim:admin",
            "--ttl",
            "600",
        ],
    );
    assert_eq!(list(&server, &t, "Users?count=0")["totalResults"], 2);
    let groups = list(&server, &t, "Groups");
    assert_eq!(groups["totalResults"], 2);
    let find = |name: &str| {
        groups["Resources"]
            .as_array()
            .expect("groups")
            .iter()
            .find(|g| g["displayName"] == name)
            .and_then(|g| g["id"].as_str())
            .map(|id| list(&server, &t, &format!("Groups/{id}")))
            .expect("group")
    };
    let ada = &list(
        &server,
        &t,
        "Users?filter=userName%20eq%20%22ada@example.com%22",
    )["Resources"][0];
    let bob = &list(
        &server,
        &t,
        "Users?filter=userName%20eq%20%22bob@example.com%22",
    )["Resources"][0];
    let sales = find("Sales");
    assert_eq!(sales["members"][0]["value"], ada["id"]);
    let mut everyone: Vec<String> = find("Everyone")["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["value"].as_str().expect("v").to_owned())
        .collect();
    everyone.sort();
    let mut want = vec![
        sales["id"].as_str().expect("id").to_owned(),
        bob["id"].as_str().expect("id").to_owned(),
    ];
    want.sort();
    assert_eq!(everyone, want);
    // Audited as the operator, refusals included; each created resource has its event.
    let (status, audit) = send(
        "GET",
        &format!("{}/admin/audit?domain=acme", server.base),
        &t,
        None,
    );
    assert_eq!(status, 200, "{audit}");
    let rows = audit["entries"].as_array().expect("rows");
    assert!(
        rows.iter().all(|r| r["subject"] == "import:tester"),
        "{audit}"
    );
    let mut codes: Vec<u64> = rows
        .iter()
        .map(|r| r["status"].as_u64().expect("s"))
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![201, 201, 201, 201, 400, 400, 409, 422],
        "{audit}"
    );
    let events = scimgate(
        &["events", "tail", "--tenant", "acme", "--json"],
        &data,
        Some(&config),
    );
    assert_eq!(
        String::from_utf8_lossy(&events.stdout).lines().count(),
        4,
        "{}",
        said(&events)
    );

    // The rejects, corrected, import as they are.
    let fixed: Vec<String> = rejected
        .iter()
        .filter(|r| r["record"] == 5)
        .map(|r| {
            let mut r = r.clone();
            r["data"]["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"] =
                json!("Sales");
            r.to_string()
        })
        .collect();
    let again = dir.path().join("fixed.ndjson");
    std::fs::write(&again, fixed.join("\n")).expect("fixed");
    drop(server);
    let out = scimgate(
        &["import", again.to_str().expect("utf8"), "--tenant", "acme"],
        &data,
        Some(&config),
    );
    assert!(out.status.success(), "{}", said(&out));
}

#[test]
fn an_import_killed_half_way_goes_on_and_creates_each_record_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    drop(Server::start(&data));
    let file = dir.path().join("users.ndjson");
    let users = 4000;
    let mut text = String::new();
    for i in 0..users {
        text.push_str(
            &user(&format!("user{i}@example.com"))
                .to_string()
                .replace('{', &format!("{{\"id\":\"f{i}\",")),
        );
        text.push('\n');
    }
    let members: Vec<String> = (0..users).step_by(40).map(|i| format!("f{i}")).collect();
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    text.push_str(&group_doc("g", "Every fortieth", &refs).to_string());
    text.push('\n');
    std::fs::write(&file, text).expect("file");
    let state = dir.path().join("users.ndjson.import-state");
    // Killed once a part is done.
    import_killed_when(&file, &data, &state, |journal| {
        journal.matches("\"n\"").count() >= 1000
    });
    assert!(state.exists());
    let out = scimgate(&["import", file.to_str().expect("utf8")], &data, None);
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("done by the earlier run"),
        "{}",
        said(&out)
    );
    let server = Server::start(&data);
    let t = token(&data, &["--ttl", "600"]);
    assert_eq!(list(&server, &t, "Users?count=0")["totalResults"], users);
    let group = only_group(&server, &t);
    assert_eq!(
        group["members"].as_array().expect("members").len(),
        members.len()
    );
}

#[test]
fn an_export_taken_while_the_server_writes_is_one_snapshot_that_imports_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let t = token(&data, &["--ttl", "600"]);
    let url = format!("{}/scim/v2", server.base);
    let mut ids = Vec::new();
    for i in 0..150 {
        let (status, body) = send(
            "POST",
            &format!("{url}/Users"),
            &t,
            Some(user(&format!("e{i}@example.com"))),
        );
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let members: Vec<Value> = ids.iter().take(30).map(|id| json!({"value": id})).collect();
    let (status, body) = send(
        "POST",
        &format!("{url}/Groups"),
        &t,
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Team", "members": members}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, t, stop) = (url.clone(), t.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let (status, _) = send(
                    "POST",
                    &format!("{url}/Users"),
                    &t,
                    Some(user(&format!("late{i}@example.com"))),
                );
                assert_eq!(status, 201);
                i += 1;
            }
        })
    };
    let json_file = dir.path().join("out.json");
    let csv_file = dir.path().join("out.csv");
    for (format, out) in [("scim-json", &json_file), ("csv", &csv_file)] {
        let run = scimgate(
            &[
                "export",
                "--format",
                format,
                "--output",
                out.to_str().expect("utf8"),
            ],
            &data,
            None,
        );
        assert!(run.status.success(), "{}", said(&run));
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    let exported: Value =
        serde_json::from_slice(&std::fs::read(&json_file).expect("read")).expect("json");
    let resources = exported["Resources"].as_array().expect("resources");
    // One snapshot: the count it states is what it holds, whatever was written meanwhile.
    assert_eq!(
        exported["totalResults"].as_u64(),
        Some(resources.len() as u64)
    );
    assert!(resources.len() >= 151);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&json_file)
            .expect("m")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // No snapshot left behind in the data folder.
    assert!(std::fs::read_dir(&data).expect("dir").flatten().all(|e| {
        !e.file_name()
            .to_string_lossy()
            .starts_with("export-snapshot")
    }));

    // Into two new tenants: the JSON as it is, the CSV with its groups column.
    for tenant in ["copy", "sheet"] {
        let out = scimgate(&["tenant", "add", tenant], &data, None);
        assert!(out.status.success(), "{}", said(&out));
    }
    drop(server);
    let back = scimgate(
        &[
            "import",
            json_file.to_str().expect("utf8"),
            "--tenant",
            "copy",
        ],
        &data,
        None,
    );
    assert!(back.status.success(), "{}", said(&back));
    let sheet = scimgate(
        &[
            "import",
            csv_file.to_str().expect("utf8"),
            "--tenant",
            "sheet",
            "--map",
            "id=",
            "--map",
            "externalId=",
        ],
        &data,
        None,
    );
    assert!(sheet.status.success(), "{}", said(&sheet));
    let server = Server::start(&data);
    let csv_rows = std::fs::read_to_string(&csv_file)
        .expect("csv")
        .lines()
        .count() as u64
        - 1;
    let users_in = resources
        .iter()
        .filter(|r| r["schemas"][0] == "urn:ietf:params:scim:schemas:core:2.0:User")
        .count() as u64;
    for (tenant, users) in [("copy", users_in), ("sheet", csv_rows)] {
        let t = token(&data, &["--tenant", tenant, "--ttl", "600"]);
        assert_eq!(
            list(&server, &t, "Users?count=0")["totalResults"].as_u64(),
            Some(users),
            "{tenant}"
        );
        let group = only_group(&server, &t);
        assert_eq!(group["displayName"], "Team", "{tenant}");
        assert_eq!(
            group["members"].as_array().expect("members").len(),
            30,
            "{tenant}"
        );
    }
}

#[test]
fn an_import_killed_while_it_fills_a_big_group_fills_it_when_run_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    drop(Server::start(&data));
    let file = dir.path().join("big.ndjson");
    let users = 6000;
    let mut text = String::new();
    for i in 0..users {
        let mut u = user(&format!("m{i}@example.com"));
        u["id"] = json!(format!("f{i}"));
        text.push_str(&u.to_string());
        text.push('\n');
    }
    let all: Vec<String> = (0..users).map(|i| format!("f{i}")).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    text.push_str(&group_doc("g", "Everyone", &refs).to_string());
    text.push('\n');
    std::fs::write(&file, text).expect("file");
    let state = dir.path().join("big.ndjson.import-state");
    // Killed once the group exists, while its members are added a thousand at a time.
    import_killed_when(&file, &data, &state, |journal| {
        journal.contains("\"created\"")
    });
    let out = scimgate(&["import", file.to_str().expect("utf8")], &data, None);
    assert!(out.status.success(), "{}", said(&out));
    let server = Server::start(&data);
    let t = token(&data, &["--ttl", "600"]);
    let group = only_group(&server, &t);
    assert_eq!(group["members"].as_array().expect("members").len(), users);
}
