//! The operator's schema extensions on the real binary (`[[schemas]]`): one process has one
//! schema set, so these run the server, not the in-process app. Validation, `/Schemas`,
//! `/ResourceTypes`, projection, PATCH paths, filters and sorting on a custom extension;
//! a bad file refused at start and on reload with the file, attribute and rule named;
//! removal of an attribute with stored values refused, then purged when asked; tenants and
//! required extensions; the attribute-map example plugin filling an extension.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::uri;
use super::{BIN, Server, send, token};

const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn schema(attributes: Value) -> String {
    json!({"id": CUSTOM, "name": "CustomExtensionName", "description": "Entra custom extension attributes",
           "attributes": attributes})
    .to_string()
}

fn full_schema() -> String {
    schema(json!([
        {"name": "costCenter", "type": "string"},
        {"name": "level", "type": "integer"},
        {"name": "badges", "type": "complex", "multiValued": true,
         "subAttributes": [{"name": "value", "type": "string"}, {"name": "issued", "type": "dateTime"}]}
    ]))
}

/// A configuration naming `schema.json` beside it for User, with `extra` TOML appended.
fn write_config(dir: &Path, schema_text: &str, extra: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("schema.json"), schema_text).expect("schema");
    let config = dir.join("scimgate.toml");
    std::fs::write(
        &config,
        format!("plugin_watch_interval_ms = 0\n{extra}\n[[schemas]]\nfile = \"schema.json\"\nresource_type = \"User\"\n"),
    )
    .expect("config");
    config
}

/// `scimgate serve` on `data` and `config`, expected to stop at once: its output.
fn refused_start(data: &Path, config: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["serve", "--data"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .output()
        .expect("serve")
}

/// A server on a configuration of `schema_text` alone, its data folder, a token and the
/// SCIM base URL.
fn started(dir: &Path, schema_text: &str) -> (Server, std::path::PathBuf, String, String) {
    let config = write_config(dir, schema_text, "");
    let data = dir.join("data");
    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    let t = token(&data, &[]);
    let base = format!("{}/scim/v2", server.base);
    (server, data, t, base)
}

fn custom_user(name: &str, ext: Value) -> Value {
    json!({"schemas": [USER, CUSTOM], "userName": name, CUSTOM: ext})
}

/// `/ResourceTypes/User` lists the custom extension, `required` or not.
fn assert_user_extension(base: &str, token: &str, required: bool) {
    let (_, rt) = send("GET", &format!("{base}/ResourceTypes/User"), token, None);
    let listed = rt["schemaExtensions"].as_array().expect("extensions");
    assert!(
        listed.contains(&json!({"schema": CUSTOM, "required": required})),
        "{rt}"
    );
}

/// `GET {base}/Users?filter=…`: the list's body.
fn filtered(base: &str, token: &str, filter: &str) -> Value {
    let url = format!("{base}/Users?filter={}", uri::encode(filter));
    send("GET", &url, token, None).1
}

/// POSTs `body` to `{base}/Users`.
fn post_user(base: &str, token: &str, body: Value) -> (u16, Value) {
    send("POST", &format!("{base}/Users"), token, Some(body))
}

fn hup(server: &Server) {
    let ok = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

/// Waits until the server's log contains `needle`; returns the log.
fn logged(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "'{needle}' never logged: {text}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_custom_extension_works_everywhere_a_built_in_one_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_server, _data, t, base) = started(dir.path(), &full_schema());

    // Discovery.
    let (_, schemas) = send("GET", &format!("{base}/Schemas"), &t, None);
    let ids: Vec<&str> = schemas["Resources"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(ids.contains(&CUSTOM), "{ids:?}");
    let (status, one) = send("GET", &format!("{base}/Schemas/{CUSTOM}"), &t, None);
    assert_eq!(status, 200);
    assert_eq!(one["attributes"][2]["subAttributes"][1]["type"], "dateTime");
    assert_user_extension(&base, &t, false);

    // Validation: values stored and echoed, wrong types and unknown names refused, named.
    let body = custom_user(
        "ada",
        json!({"costCenter": "CC-7", "level": 3,
        "badges": [{"value": "b1", "issued": "2026-01-02T03:04:05Z"}]}),
    );
    let (status, created) = post_user(&base, &t, body);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created[CUSTOM]["costCenter"], "CC-7");
    assert!(
        created["schemas"]
            .as_array()
            .expect("schemas")
            .contains(&json!(CUSTOM))
    );
    let id = created["id"].as_str().expect("id").to_owned();
    for (label, ext, says) in [
        ("wrong type", json!({"level": "three"}), "level"),
        ("unknown attribute", json!({"nickname": "x"}), "nickname"),
    ] {
        let (status, e) = post_user(&base, &t, custom_user(&format!("bad-{label}"), ext));
        assert_eq!(status, 400, "{label}: {e}");
        assert!(
            e["detail"].as_str().unwrap_or("").contains(says),
            "{label}: {e}"
        );
    }
    for (name, level) in [("bob", 1), ("cy", 2)] {
        let (status, _) = post_user(
            &base,
            &t,
            custom_user(name, json!({"costCenter": "CC-9", "level": level})),
        );
        assert_eq!(status, 201);
    }

    // Filters (on the index) and sorting by a custom attribute.
    let filter = uri::encode(&format!("{CUSTOM}:costCenter eq \"cc-9\""));
    let (_, found) = send(
        "GET",
        &format!(
            "{base}/Users?filter={filter}&sortBy={}&sortOrder=descending",
            uri::encode(&format!("{CUSTOM}:level"))
        ),
        &t,
        None,
    );
    let names: Vec<&str> = found["Resources"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|u| u["userName"].as_str())
        .collect();
    assert_eq!(names, ["cy", "bob"], "{found}");
    let found = filtered(&base, &t, &format!("{CUSTOM}:badges[value eq \"b1\"]"));
    assert_eq!(found["totalResults"], 1, "{found}");
    let found = filtered(&base, &t, &format!("{CUSTOM}:level gt 1"));
    assert_eq!(found["totalResults"], 2, "{found}");

    // Projection.
    let (_, projected) = send(
        "GET",
        &format!(
            "{base}/Users/{id}?attributes={}",
            uri::encode(&format!("{CUSTOM}:costCenter"))
        ),
        &t,
        None,
    );
    assert_eq!(
        projected[CUSTOM],
        json!({"costCenter": "CC-7"}),
        "{projected}"
    );
    assert!(projected.get("userName").is_none());

    // PATCH by a URN-qualified path.
    let patch = json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": format!("{CUSTOM}:costCenter"), "value": "CC-8"},
        {"op": "add", "path": format!("{CUSTOM}:badges"), "value": [{"value": "b2"}]}]});
    let (status, patched) = send("PATCH", &format!("{base}/Users/{id}"), &t, Some(patch));
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched[CUSTOM]["costCenter"], "CC-8");
    assert_eq!(patched[CUSTOM]["badges"].as_array().map(Vec::len), Some(2));
    let found = filtered(&base, &t, &format!("{CUSTOM}:costCenter eq \"CC-8\""));
    assert_eq!(
        found["totalResults"], 1,
        "the index follows the PATCH: {found}"
    );
}

#[test]
fn a_bad_schema_file_is_refused_at_start_and_on_reload_naming_file_attribute_and_rule() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = schema(json!([{"name": "costCenter", "type": "string", "mutablity": "readOnly"}]));
    let config = write_config(dir.path(), &bad, "");
    let data = dir.path().join("data");
    let out = refused_start(&data, &config);
    assert!(!out.status.success(), "a bad schema must stop the start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema.json")
            && err.contains("attribute 'costCenter'")
            && err.contains("unknown key 'mutablity'"),
        "{err}"
    );

    // A good set starts; a bad one on reload is refused and the running set keeps serving.
    let config = write_config(dir.path(), &full_schema(), "");
    let log = dir.path().join("server.log");
    let server = Server::start_with(
        &data,
        Some(&config),
        Stdio::from(std::fs::File::create(&log).expect("log")),
    );
    let t = token(&data, &[]);
    std::fs::write(
        dir.path().join("schema.json"),
        schema(json!([{"name": "level", "type": "integer", "multiValued": "yes"}])),
    )
    .expect("write");
    hup(&server);
    let text = logged(&log, "schema reload refused");
    assert!(
        text.contains("attribute 'level'") && text.contains("'multiValued' must be true or false"),
        "{text}"
    );
    let (status, body) = post_user(
        &format!("{}/scim/v2", server.base),
        &t,
        custom_user("still", json!({"costCenter": "CC-1"})),
    );
    assert_eq!(status, 201, "the running set still serves: {body}");
}

#[test]
fn removing_an_attribute_with_stored_values_is_refused_unless_purge_is_set() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = write_config(dir.path(), &full_schema(), "");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let server = Server::start_with(
        &data,
        Some(&config),
        Stdio::from(std::fs::File::create(&log).expect("log")),
    );
    let t = token(&data, &[]);
    let base = format!("{}/scim/v2", server.base);
    let (_, created) = post_user(
        &base,
        &t,
        custom_user("kept", json!({"costCenter": "CC-1", "level": 4})),
    );
    let id = created["id"].as_str().expect("id").to_owned();
    let without_cost = schema(json!([{"name": "level", "type": "integer"}]));
    write_config(dir.path(), &without_cost, "");
    hup(&server);
    let text = logged(&log, "schema reload refused");
    assert!(
        text.contains(&format!("removing attribute '{CUSTOM}:costCenter'"))
            && text.contains("1 resources"),
        "{text}"
    );
    let (_, still) = send("GET", &format!("{base}/Users/{id}"), &t, None);
    assert_eq!(
        still[CUSTOM]["costCenter"], "CC-1",
        "nothing dropped: {still}"
    );

    write_config(dir.path(), &without_cost, "schema_removal = \"purge\"");
    hup(&server);
    logged(&log, "purged");
    let (_, after) = send("GET", &format!("{base}/Users/{id}"), &t, None);
    assert!(after[CUSTOM].get("costCenter").is_none(), "{after}");
    assert_eq!(after[CUSTOM]["level"], 4);
    assert_ne!(
        after["meta"]["version"], still["meta"]["version"],
        "the version moves on"
    );
    let (status, e) = post_user(&base, &t, custom_user("late", json!({"costCenter": "x"})));
    assert_eq!(status, 400, "{e}");
}

/// Two attributes removed in one reload with `purge` are both dropped from every resource
/// that held them. Purging the first used to index each resource again under the new
/// set, which dropped the second's index rows, so the second's purge found no resource:
/// its values stayed stored and served, unsearchable once the attribute came back.
#[test]
fn attributes_removed_together_are_purged_together() {
    purge_two_attributes_together("");
}

/// The test above with `backend` in the configuration (PostgreSQL's `database = …` in
/// `postgres.rs`).
pub(super) fn purge_two_attributes_together(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let purge = format!("schema_removal = \"purge\"\n{backend}");
    let purge = purge.as_str();
    let config = write_config(dir.path(), &full_schema(), purge);
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let server = Server::start_with(
        &data,
        Some(&config),
        Stdio::from(std::fs::File::create(&log).expect("log")),
    );
    let t = token(&data, &["--config", config.to_str().expect("utf8")]);
    let base = format!("{}/scim/v2", server.base);
    let mut ids = Vec::new();
    for i in 0..3 {
        let ext = json!({"costCenter": "CC", "level": 4,
                         "badges": [{"value": "b1", "issued": "2026-01-01T00:00:00Z"}]});
        let (status, created) = post_user(&base, &t, custom_user(&format!("p{i}"), ext));
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    write_config(
        dir.path(),
        &schema(json!([{"name": "level", "type": "integer"}])),
        purge,
    );
    hup(&server);
    let text = logged(&log, "purged");
    for attribute in ["costCenter", "badges"] {
        assert!(
            text.contains(&format!("{CUSTOM}:{attribute} (3 resources)")),
            "{attribute}: {text}"
        );
    }
    for id in &ids {
        let (_, after) = send("GET", &format!("{base}/Users/{id}"), &t, None);
        assert_eq!(after[CUSTOM], json!({"level": 4}), "{after}");
    }
    let total = |filter: &str| {
        let (status, list) = send(
            "GET",
            &format!("{base}/Users?count=0&filter={}", uri::encode(filter)),
            &t,
            None,
        );
        assert_eq!(status, 200, "{list}");
        list["totalResults"].clone()
    };
    assert_eq!(
        total(&format!("{CUSTOM}:level eq 4")),
        3,
        "level's rows stay"
    );

    // Back in the schema, the purged attributes hold nothing, stored or indexed.
    write_config(dir.path(), &full_schema(), purge);
    hup(&server);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !send("GET", &format!("{base}/Schemas"), &t, None)
        .1
        .to_string()
        .contains("badges")
    {
        assert!(Instant::now() < deadline, "the schema never came back");
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(total(&format!("{CUSTOM}:badges.value eq \"b1\"")), 0);
    assert_eq!(total(&format!("{CUSTOM}:costCenter pr")), 0);
    for id in &ids {
        let (_, after) = send("GET", &format!("{base}/Users/{id}"), &t, None);
        assert_eq!(after[CUSTOM], json!({"level": 4}), "{after}");
    }
}

#[test]
fn an_extension_for_some_tenants_and_a_required_one() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("schema.json"), full_schema()).expect("schema");
    let config = dir.path().join("scimgate.toml");
    std::fs::write(
        &config,
        "[[schemas]]\nfile = \"schema.json\"\nresource_type = \"User\"\nrequired = true\ntenants = [\"acme\"]\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let server = Server::start_with(
        &data,
        Some(&config),
        Stdio::from(std::fs::File::create(&log).expect("log")),
    );
    super::cli(&data, &["tenant", "add", "acme"]);
    let acme = token(&data, &["--tenant", "acme"]);
    super::wait_for_tenant(&server, &acme);
    let other = token(&data, &[]);
    let base = format!("{}/scim/v2", server.base);
    let (_, schemas) = send("GET", &format!("{base}/Schemas"), &other, None);
    assert!(
        !schemas.to_string().contains(CUSTOM),
        "another tenant does not see it"
    );
    let (status, e) = post_user(&base, &other, custom_user("o", json!({"costCenter": "x"})));
    assert_eq!(status, 400, "{e}");
    assert!(
        e["detail"]
            .as_str()
            .unwrap_or("")
            .contains("is not supported"),
        "{e}"
    );
    // Filtering or sorting on it answers as for a schema no one declared: the same words
    // as for a made-up one.
    let unknown = |urn: &str| {
        let filter = uri::encode(&format!("{urn}:costCenter pr"));
        let (status, e) = send(
            "GET",
            &format!("{base}/Users?filter={filter}"),
            &other,
            None,
        );
        assert_eq!(status, 400, "{e}");
        e["detail"].as_str().unwrap_or("").replace(urn, "URN")
    };
    assert_eq!(unknown(CUSTOM), unknown("urn:made:up:2.0:User"));
    // sortBy too, echoed as written (here in upper case).
    let sorted = |urn: &str| {
        let sort = uri::encode(&format!("{}:costCenter", urn.to_uppercase()));
        let (status, e) = send("GET", &format!("{base}/Users?sortBy={sort}"), &other, None);
        assert_eq!(status, 400, "{e}");
        e["detail"]
            .as_str()
            .unwrap_or("")
            .replace(&urn.to_uppercase(), "URN")
    };
    assert_eq!(sorted(CUSTOM), sorted("urn:made:up:2.0:User"));
    // A PATCH path into it, likewise.
    let (_, mine) = post_user(
        &base,
        &other,
        json!({"schemas": [USER], "userName": "mine"}),
    );
    let mine = mine["id"].as_str().expect("id").to_owned();
    let patched = |urn: &str| {
        let body = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "add", "path": format!("{urn}:costCenter"), "value": "x"}]});
        let (status, e) = send("PATCH", &format!("{base}/Users/{mine}"), &other, Some(body));
        assert_eq!(status, 400, "{e}");
        e["detail"].as_str().unwrap_or("").replace(urn, "URN")
    };
    assert_eq!(patched(CUSTOM), patched("urn:made:up:2.0:User"));
    assert_user_extension(&base, &acme, true);
    let (status, e) = post_user(
        &base,
        &acme,
        json!({"schemas": [USER], "userName": "plain"}),
    );
    assert_eq!(status, 400, "{e}");
    assert!(
        e["detail"].as_str().unwrap_or("").contains("required"),
        "{e}"
    );
    let (status, created) = post_user(&base, &acme, custom_user("a", json!({"costCenter": "x"})));
    assert_eq!(status, 201);
    let id = created["id"].as_str().expect("id").to_owned();

    // The extension narrowed to another tenant: acme's users that carry it stay writable
    // (deprovisioning first), and acme cannot take it up anew.
    std::fs::write(
        &config,
        "[[schemas]]\nfile = \"schema.json\"\nresource_type = \"User\"\ntenants = [\"globex\"]\n",
    )
    .expect("config");
    hup(&server);
    logged(&log, "schemas reloaded");
    let patch = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let (status, e) = send("PATCH", &format!("{base}/Users/{id}"), &acme, Some(patch));
    assert_eq!(status, 200, "{e}");
    let (status, _) = post_user(&base, &acme, custom_user("b", json!({"costCenter": "y"})));
    assert_eq!(status, 400);
}

/// The worked example of plugins/examples/attribute-map: a vendor's attribute mapped into
/// an extension declared by a schema file, stored, and found by a filter on it.
#[test]
fn the_attribute_map_example_fills_a_declared_extension() {
    let dir = tempfile::tempdir().expect("tmp");
    let wasm = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("plugins/dist/attribute-map.wasm");
    let plugin = format!(
        "[[plugins]]\nname = \"attribute-map\"\nfile = \"{}\"\nconfig = {{ map = {{ \"urn:acme:vendor:1.0:User:costCenter\" = \"{CUSTOM}:costCenter\" }} }}\n",
        wasm.display()
    );
    let config = write_config(dir.path(), &full_schema(), "");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, format!("{text}{plugin}")).expect("config");
    let data = dir.path().join("data");
    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    let t = token(&data, &[]);
    let base = format!("{}/scim/v2", server.base);
    let vendor = json!({"schemas": [USER, "urn:acme:vendor:1.0:User"], "userName": "mapped",
                        "urn:acme:vendor:1.0:User": {"costCenter": "4711"}});
    let (status, created) = post_user(&base, &t, vendor);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created[CUSTOM]["costCenter"], "4711", "{created}");
    let found = filtered(&base, &t, &format!("{CUSTOM}:costCenter eq \"4711\""));
    assert_eq!(found["totalResults"], 1, "{found}");
}

/// A start with changed schema files is checked against the set the stored values were
/// written under, as a reload is: refused while values would be left without a
/// definition, purged when asked. Adding a sub-attribute takes nothing away; renaming by
/// case is a change of name.
#[test]
fn a_restart_with_changed_files_is_checked_like_a_reload() {
    let dir = tempfile::tempdir().expect("tmp");
    let (server, data, t, base) = started(dir.path(), &full_schema());
    let (_, created) = post_user(
        &base,
        &t,
        custom_user(
            "kept",
            json!({"costCenter": "CC-1", "badges": [{"value": "b"}]}),
        ),
    );
    let id = created["id"].as_str().expect("id").to_owned();
    drop(server);

    // Without costCenter: the start is refused, naming the attribute.
    let without_cost = schema(json!([
        {"name": "level", "type": "integer"},
        {"name": "badges", "type": "complex", "multiValued": true,
         "subAttributes": [{"name": "value", "type": "string"}, {"name": "issued", "type": "dateTime"},
                           {"name": "expires", "type": "dateTime"}]}
    ]));
    let config = write_config(dir.path(), &without_cost, "");
    let out = refused_start(&data, &config);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("removing attribute '{CUSTOM}:costCenter'"))
            && err.contains("1 resources"),
        "{err}"
    );

    // With purge: it starts, the value is gone, the added sub-attribute took nothing.
    let config = write_config(dir.path(), &without_cost, "schema_removal = \"purge\"");
    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    let (_, after) = send(
        "GET",
        &format!("{}/scim/v2/Users/{id}", server.base),
        &t,
        None,
    );
    assert!(after[CUSTOM].get("costCenter").is_none(), "{after}");
    assert_eq!(after[CUSTOM]["badges"], json!([{"value": "b"}]), "{after}");
    drop(server);

    // `badges` renamed by case only: a change of name, refused while values are stored.
    let renamed = schema(json!([
        {"name": "level", "type": "integer"},
        {"name": "Badges", "type": "complex", "multiValued": true,
         "subAttributes": [{"name": "value", "type": "string"}]}
    ]));
    let config = write_config(dir.path(), &renamed, "");
    let out = refused_start(&data, &config);
    assert!(!out.status.success(), "a rename by case is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{CUSTOM}:badges")));
}

/// writeOnly attributes are never returned, filtered, sorted on or sent in events;
/// immutable ones survive a write without their extension.
#[test]
fn write_only_and_immutable_extension_attributes() {
    let dir = tempfile::tempdir().expect("tmp");
    let text = schema(json!([
        {"name": "secret", "type": "string", "mutability": "writeOnly", "returned": "never"},
        {"name": "badge", "type": "string", "mutability": "immutable"},
        {"name": "costCenter", "type": "string"},
        {"name": "ref", "type": "string", "returned": "always"}
    ]));
    let config = write_config(dir.path(), &text, "");
    let data = dir.path().join("data");
    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    let t = token(&data, &["--scope", "scim:read scim:write scim:events"]);
    let base = format!("{}/scim/v2", server.base);
    let (status, created) = post_user(
        &base,
        &t,
        custom_user(
            "w",
            json!({"secret": "s3cr3t", "badge": "B-1", "costCenter": "C", "ref": "R"}),
        ),
    );
    assert_eq!(status, 201, "{created}");
    assert!(created[CUSTOM].get("secret").is_none(), "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    // returned: always, whatever `attributes` or `excludedAttributes` say.
    for query in [
        "attributes=userName".to_owned(),
        format!("excludedAttributes={}", uri::encode(CUSTOM)),
        format!(
            "excludedAttributes={}",
            uri::encode(&format!("{CUSTOM}:ref"))
        ),
    ] {
        let (_, got) = send("GET", &format!("{base}/Users/{id}?{query}"), &t, None);
        assert_eq!(got[CUSTOM]["ref"], "R", "{query}: {got}");
    }
    let whole = format!("excludedAttributes={}", uri::encode(CUSTOM));
    let (_, got) = send("GET", &format!("{base}/Users/{id}?{whole}"), &t, None);
    assert_eq!(
        got[CUSTOM],
        json!({"ref": "R"}),
        "the rest of the extension goes: {got}"
    );
    for query in [
        format!(
            "filter={}",
            uri::encode(&format!("{CUSTOM}:secret eq \"s3cr3t\""))
        ),
        format!("filter={}", uri::encode(&format!("{CUSTOM}:secret pr"))),
        format!("sortBy={}", uri::encode(&format!("{CUSTOM}:secret"))),
    ] {
        let (status, e) = send("GET", &format!("{base}/Users?{query}"), &t, None);
        assert_eq!(status, 400, "{query}: {e}");
        assert!(
            e["detail"]
                .as_str()
                .unwrap_or("")
                .contains("never returned"),
            "{e}"
        );
    }
    // PATCHes naming it every way a PATCH can: their events must not tell it either.
    for value in [
        json!({"op": "replace", "value": {format!("{CUSTOM}:secret"): "s3cr3t"}}),
        json!({"op": "replace", "value": {format!("{CUSTOM}:SECRET").to_uppercase(): "s3cr3t"}}),
        json!({"op": "replace", "path": CUSTOM, "value": {"Secret": "s3cr3t"}}),
        json!({"op": "replace", "value": {CUSTOM: {"secret": "s3cr3t"}}}),
    ] {
        let body = json!({"schemas": [PATCH_OP], "Operations": [value]});
        let (status, e) = send("PATCH", &format!("{base}/Users/{id}"), &t, Some(body));
        assert_eq!(status, 200, "{e}");
    }
    let (status, polled) = send(
        "POST",
        &format!("{}/events/poll", server.base),
        &t,
        Some(json!({"returnImmediately": true})),
    );
    assert_eq!(status, 200, "{polled}");
    let sets = polled["sets"].as_object().expect("sets");
    assert!(!sets.is_empty());
    for jwt in sets.values() {
        let payload = jwt
            .as_str()
            .expect("jws")
            .split('.')
            .nth(1)
            .expect("payload");
        let text = String::from_utf8(base64_url(payload)).expect("utf8");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
    // Removing an immutable value that is set is refused, named.
    let remove = json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": format!("{CUSTOM}:badge")}]});
    let (status, e) = send("PATCH", &format!("{base}/Users/{id}"), &t, Some(remove));
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["scimType"], "mutability", "{e}");
    // A PUT without the extension keeps the immutable value.
    let put = json!({"schemas": [USER], "userName": "w"});
    let a = super::agent();
    let mut resp = a
        .put(&format!("{base}/Users/{id}"))
        .header("authorization", &format!("Bearer {t}"))
        .header("content-type", "application/scim+json")
        .send(put.to_string())
        .expect("put");
    let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap_or_default())
        .unwrap_or(Value::Null);
    assert_eq!(body[CUSTOM]["badge"], "B-1", "{body}");
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}
