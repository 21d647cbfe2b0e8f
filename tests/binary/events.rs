//! The change feed as an operator runs it: the real binary, a real HTTP receiver on
//! loopback, every write delivered once accepted, in order, signed with the key the server
//! publishes; a receiver that was down gets everything when it comes back; webhooks signed
//! with their secret; a restart resumes where delivery stood.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::receiver::{Received, Receiver, claims_unverified};
use super::{BIN, Server, agent, cli, send, token, user, wait_for_tenant};

const PROV: &str = "urn:ietf:params:scim:event:prov:";

fn config_with(dir: &Path, receivers: &str) -> std::path::PathBuf {
    let path = dir.join("scimgate.toml");
    std::fs::write(
        &path,
        format!("[events]\nissuer = \"https://scim.test\"\n{receivers}"),
    )
    .expect("config");
    path
}

fn receiver_toml(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[events.receivers]]\nname = \"{name}\"\nurl = \"{url}\"\ntenants = [\"default\"]\nmax_backoff_secs = 1\n{extra}\n"
    )
}

/// The claims of a SET, verified against the server's published JWKS.
fn verified(server: &Server, token: &str) -> Value {
    let mut r = agent()
        .get(&format!("{}/events/jwks.json", server.base))
        .call()
        .expect("jwks");
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("a JWKS");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("key by kid");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("signed by the server's key")
        .claims
}

fn event_names(set: &Value) -> Vec<String> {
    set["events"]
        .as_object()
        .expect("events")
        .keys()
        .map(|k| k.trim_start_matches(PROV).to_owned())
        .collect()
}

#[test]
fn push_delivers_every_write_in_order_signed_with_the_published_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let receiver = Receiver::start();
    let config = config_with(
        dir.path(),
        &receiver_toml("hr", &receiver.url, "authorization_file = \"hr.token\""),
    );
    std::fs::write(dir.path().join("hr.token"), "Bearer receiver-secret\n").expect("token file");
    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    let t = token(&data, &[]);
    let users = format!("{}/scim/v2/Users", server.base);
    let mut body = user("bjensen");
    body["password"] = json!("Cleartext-Secret-9");
    body["externalId"] = json!("bj-1");
    body["active"] = json!(true);
    let (status, created) = send("POST", &users, &t, Some(body));
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let one = format!("{users}/{id}");
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let (status, _) = send(
        "PATCH",
        &one,
        &t,
        Some(patch(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )),
    );
    assert_eq!(status, 200);
    let (status, _) = send(
        "PATCH",
        &one,
        &t,
        Some(patch(
            json!([{"op": "add", "path": "title", "value": "Boss"}]),
        )),
    );
    assert_eq!(status, 200);
    let (status, group) = send(
        "POST",
        &format!("{}/scim/v2/Groups", server.base),
        &t,
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Admins", "members": [{"value": id}]}),
        ),
    );
    assert_eq!(status, 201, "{group}");
    // A refused write has no event.
    let (status, _) = send("POST", &users, &t, Some(user("BJENSEN")));
    assert_eq!(status, 409);
    let (status, _) = send("DELETE", &one, &t, None);
    assert_eq!(status, 204);

    let got = receiver.wait_for_accepted(5, Duration::from_secs(20));
    assert_eq!(
        got.len(),
        5,
        "one event per committed write, none for the refused one"
    );
    let sets: Vec<Value> = got
        .iter()
        .map(|r| {
            assert_eq!(r.headers["content-type"], "application/secevent+jwt");
            assert_eq!(r.headers["authorization"], "Bearer receiver-secret");
            assert!(!r.body.contains("Cleartext"), "no password: {}", r.body);
            verified(&server, &r.body)
        })
        .collect();
    let names: Vec<Vec<String>> = sets.iter().map(event_names).collect();
    assert_eq!(
        names,
        [
            vec!["create:full"],
            vec!["patch:full", "deactivate"],
            vec!["patch:full"],
            vec!["create:full"],
            vec!["delete"],
        ]
    );
    let seqs: Vec<i64> = sets
        .iter()
        .map(|s| s["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    for set in &sets {
        assert_eq!(set["iss"], "https://scim.test");
        assert_eq!(set["aud"], receiver.url.as_str());
        assert_eq!(set["tenant"], "default");
        assert_eq!(set["sub_id"]["format"], "scim");
    }
    let created = &sets[0]["events"][format!("{PROV}create:full")];
    assert_eq!(created["data"]["userName"], "bjensen");
    assert_eq!(created["data"]["id"], id.as_str());
    assert_eq!(created["version"], "W/\"1\"");
    assert!(created["data"].get("password").is_none());
    assert_eq!(sets[0]["sub_id"]["uri"], format!("/Users/{id}"));
    assert_eq!(sets[0]["sub_id"]["externalId"], "bj-1");
    let deactivated = &sets[1]["events"][format!("{PROV}patch:full")];
    assert_eq!(
        deactivated["data"]["Operations"],
        json!([{"op": "replace", "path": "active", "value": false}]),
        "the operations as applied, after the dialect rules"
    );
    let group_created = &sets[3]["events"][format!("{PROV}create:full")];
    assert_eq!(group_created["data"]["members"][0]["value"], id.as_str());
    let jtis: std::collections::HashSet<&str> = sets
        .iter()
        .map(|s| s["jti"].as_str().expect("jti"))
        .collect();
    assert_eq!(jtis.len(), sets.len());

    // The operator's view: events written, delivered, no lag.
    let metrics_token = token(&data, &["--scope", "scim:metrics"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut r = agent()
            .get(&format!("{}/metrics", server.base))
            .header("authorization", &format!("Bearer {metrics_token}"))
            .call()
            .expect("metrics");
        let text = r.body_mut().read_to_string().expect("text");
        let settled = text.contains("scimgate_events_written_total 5")
            && text.contains("scimgate_events_delivered_total{receiver=\"hr\"} 5")
            && text.contains("scimgate_events_lag{receiver=\"hr\"} 0")
            && text.contains("scimgate_events_receiver_dead{receiver=\"hr\"} 0");
        if settled {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_receiver_that_was_down_gets_everything_in_order_when_it_comes_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let (port, url) = receiver_down();
    let config = config_with(
        dir.path(),
        &receiver_toml("ldap", &url, "mode = \"notice\""),
    );
    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    let t = token(&data, &[]);
    for i in 0..6 {
        create_user(&server, &t, &format!("down{i}"));
    }
    // It comes back refusing for a while (503 with Retry-After), then accepts.
    let receiver = Receiver::start_on(port);
    receiver.answer_with(503);
    std::thread::sleep(Duration::from_millis(1500));
    receiver.answer_with(202);
    let got = receiver.wait_for_accepted(6, Duration::from_secs(30));
    let seqs: Vec<i64> = seqs_of(&got);
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6], "each once, in order");
    let first = claims_unverified(&got[0].body);
    assert_eq!(event_names(&first), ["create:notice"]);
    let payload = &first["events"][format!("{PROV}create:notice")];
    assert!(payload.get("data").is_none());
    assert!(
        payload["attributes"]
            .as_array()
            .expect("attributes")
            .contains(&json!("userName"))
    );

    // After a hard kill and a restart, delivery goes on from where it stood: nothing
    // missed, in order; the last events may come again (at least once: the kill may have
    // come before their position was saved).
    drop(server);
    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    create_user(&server, &t, "after-restart");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let seqs = loop {
        let seqs: Vec<i64> = receiver
            .wait_for_accepted(7, Duration::from_secs(20))
            .iter()
            .map(|r| claims_unverified(&r.body)["seq"].as_i64().expect("seq"))
            .collect();
        if seqs.contains(&7) {
            break seqs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "7 never came: {seqs:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(&seqs[..6], [1, 2, 3, 4, 5, 6]);
    // After the restart: from the stored position on, in order, to the new event.
    let again = &seqs[6..];
    assert_eq!(again, (again[0]..=7).collect::<Vec<i64>>(), "{seqs:?}");
}

/// A receiver of every tenant: an event it keeps failing in one tenant (a 500 to that
/// event) holds that tenant only; the others' events go on; the held one follows when the
/// receiver takes it.
#[test]
fn one_tenants_failing_event_does_not_hold_another_tenants_events() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let receiver = Receiver::start();
    receiver.answer_tenant_with("acme", 500);
    let config = config_with(
        dir.path(),
        &format!(
            "[[events.receivers]]\nname = \"all\"\nurl = \"{}\"\ntenants = [\"*\"]\nmax_backoff_secs = 1\n",
            receiver.url
        ),
    );
    let server = Server::start_with(&data, Some(&config), Stdio::null());
    let default = token(&data, &[]);
    assert!(cli(&data, &["tenant", "add", "acme"]).0);
    let acme = token(&data, &["--tenant", "acme"]);
    wait_for_tenant(&server, &acme);
    let post = |t: &str, domain: &str, name: &str| {
        let (status, _) = send(
            "POST",
            &format!("{}/scim/v2/Users?domain={domain}", server.base),
            t,
            Some(user(name)),
        );
        assert_eq!(status, 201);
    };
    post(&acme, "acme", "held");
    // The receiver lists its tenants again every few seconds: acme's event is tried.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !receiver.received().iter().any(|r| r.status == 500) {
        assert!(
            std::time::Instant::now() < deadline,
            "acme's event never tried"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..3 {
        post(&default, "default", &format!("free{i}"));
    }
    let got = receiver.wait_for_accepted(3, Duration::from_secs(20));
    let tenants: Vec<Value> = got
        .iter()
        .map(|r| claims_unverified(&r.body)["tenant"].clone())
        .collect();
    assert_eq!(
        tenants,
        vec![json!("default"); 3],
        "the default tenant's events pass acme's"
    );
    assert_eq!(seqs_of(&got), [1, 2, 3]);
    // Meanwhile acme's event is tried again, backing off.
    while receiver
        .received()
        .iter()
        .filter(|r| r.status == 500)
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "acme's event never tried again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    receiver.answer_tenant_with("acme", 202);
    let got = receiver.wait_for_accepted(4, Duration::from_secs(20));
    let last = claims_unverified(&got[3].body);
    assert_eq!(
        (last["tenant"].clone(), last["seq"].clone()),
        (json!("acme"), json!(1))
    );
}

/// A receiver that takes the connection and never answers holds the server's stop only
/// for a short grace, not for its whole timeout; what was queued is committed.
#[test]
fn a_hanging_receiver_does_not_hold_the_stop() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/events", hanging.local_addr().expect("addr"));
    let config = config_with(
        dir.path(),
        &receiver_toml("stuck", &url, "timeout_ms = 60000"),
    );
    let mut server = Server::start_with(&data, Some(&config), Stdio::null());
    let t = token(&data, &[]);
    create_user(&server, &t, "waits");
    // The delivery is under way: the connection is taken, the request never answered.
    let _held = hanging.accept().expect("the receiver is tried");
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let exit = loop {
        if let Some(exit) = server.child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the stop waited for the receiver's 60 s timeout"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

/// Creates user `name` through the server, which must answer 201.
fn create_user(server: &Server, token: &str, name: &str) {
    let (status, body) = send(
        "POST",
        &format!("{}/scim/v2/Users", server.base),
        token,
        Some(user(name)),
    );
    assert_eq!(status, 201, "{body}");
}

/// A loopback port nobody listens on (a receiver that is down), and its URL.
fn receiver_down() -> (u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    (port, format!("http://127.0.0.1:{port}/events"))
}

/// The `seq` of each SET received, in the order received.
fn seqs_of(received: &[Received]) -> Vec<i64> {
    received
        .iter()
        .map(|r| claims_unverified(&r.body)["seq"].as_i64().expect("seq"))
        .collect()
}

#[test]
fn webhooks_are_signed_with_their_secret() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let receiver = Receiver::start();
    let secret = [7u8; 32];
    let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
    std::fs::write(dir.path().join("hook.secret"), format!("whsec_{encoded}")).expect("secret");
    let config = config_with(
        dir.path(),
        &receiver_toml(
            "tool",
            &receiver.url,
            "format = \"webhook\"\nsecret_file = \"hook.secret\"\nevents = [\"create\"]",
        ),
    );
    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    let t = token(&data, &[]);
    let users = format!("{}/scim/v2/Users", server.base);
    let (_, created) = send("POST", &users, &t, Some(user("hooked")));
    let id = created["id"].as_str().expect("id");
    // Not wanted by this receiver: passed over.
    send("DELETE", &format!("{users}/{id}"), &t, None);
    send("POST", &users, &t, Some(user("hooked2")));
    let got: Vec<Received> = receiver.wait_for_accepted(2, Duration::from_secs(20));
    for r in &got {
        let signed = format!(
            "{}.{}.{}",
            r.headers["webhook-id"], r.headers["webhook-timestamp"], r.body
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let expected = base64::engine::general_purpose::STANDARD
            .encode(ring::hmac::sign(&key, signed.as_bytes()).as_ref());
        assert_eq!(r.headers["webhook-signature"], format!("v1,{expected}"));
        let body: Value = serde_json::from_str(&r.body).expect("JSON");
        assert_eq!(body["type"], format!("{PROV}create:full"));
        assert_eq!(
            body["data"]["jti"].as_str(),
            Some(r.headers["webhook-id"].as_str())
        );
    }
    let seqs: Vec<i64> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).expect("JSON")["data"]["seq"]
                .as_i64()
                .expect("seq")
        })
        .collect();
    assert_eq!(seqs, [1, 3], "the delete (2) is not a create");
}

#[test]
fn a_receiver_at_the_server_itself_or_without_tenants_stops_the_start() {
    let dir = tempfile::tempdir().expect("tmp");
    for (receivers, named) in [
        (
            receiver_toml("self", "http://127.0.0.1:18999/hook", ""),
            "this server itself",
        ),
        (
            receiver_toml("self", "http://127.1:18999/hook", ""),
            "this server itself",
        ),
        (
            receiver_toml("self", "http://localhost.:18999/hook", ""),
            "this server itself",
        ),
        (
            "[[events.receivers]]\nname = \"x\"\nurl = \"http://example.test/\"\n".to_owned(),
            "tenants",
        ),
    ] {
        let config = config_with(dir.path(), &receivers);
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:18999", "--data"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .env("SCIMGATE_LOG", "error")
            .output()
            .expect("serve");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
}

/// Writers running, the server killed (SIGKILL) at a random moment, restarted, again and
/// again: in the end the receiver has an event for every acknowledged write, each resource's
/// events in the order of its writes, and none for a write that never committed.
/// `EVENTS_CRASH_ROUNDS` sets the rounds (5 by default; `bench/events-crash.sh` runs 50 or as many as asked).
#[test]
fn no_acknowledged_write_goes_without_its_event_across_hard_kills() {
    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex};

    let rounds: usize = std::env::var("EVENTS_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let receiver = Receiver::start();
    let config = config_with(dir.path(), &receiver_toml("sink", &receiver.url, ""));
    // Acknowledged writes: (user id, what) in the order each writer saw them acknowledged.
    let acknowledged: Arc<Mutex<Vec<(String, &'static str)>>> = Arc::default();
    let mut t = String::new();
    let began = std::time::Instant::now();
    for round in 0..rounds {
        let server = Server::start_with(&data, Some(&config), Stdio::inherit());
        if t.is_empty() {
            t = token(&data, &[]);
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (base, t, stop, acked) = (
                    server.base.clone(),
                    t.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&acknowledged),
                );
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        i += 1;
                        let body = user(&format!("crash-{round}-{w}-{i}"));
                        let Some((201, created)) = try_send("POST", &format!("{base}/scim/v2/Users"), &t, Some(body)) else {
                            continue;
                        };
                        let id = created["id"].as_str().unwrap_or_default().to_owned();
                        acked.lock().expect("lock").push((id.clone(), "create"));
                        let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "path": "title", "value": "t"}]});
                        if let Some((200, _)) = try_send("PATCH", &format!("{base}/scim/v2/Users/{id}"), &t, Some(patch)) {
                            acked.lock().expect("lock").push((id, "patch"));
                        }
                    }
                })
            })
            .collect();
        // A moment between 100 and 600 ms, different each round (the timing's own jitter).
        let nanos = began.elapsed().subsec_nanos();
        std::thread::sleep(Duration::from_millis(100 + u64::from(nanos % 500)));
        server.kill();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for w in writers {
            let _ = w.join();
        }
    }
    // A last start, to deliver what is left; then every event must be there.
    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(!acknowledged.is_empty(), "the writers got some writes in");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (events, seqs) = loop {
        let sets: Vec<Value> = receiver
            .received()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(|r| claims_unverified(&r.body))
            .collect();
        let seqs: Vec<i64> = sets
            .iter()
            .map(|s| s["seq"].as_i64().expect("seq"))
            .collect();
        let seen: HashSet<(String, String)> = sets
            .iter()
            .map(|s| {
                let id = s["sub_id"]["id"].as_str().unwrap_or_default().to_owned();
                let kind = event_names(s)[0]
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                (id, kind)
            })
            .collect();
        if acknowledged
            .iter()
            .all(|(id, what)| seen.contains(&(id.clone(), (*what).to_owned())))
        {
            break (sets, seqs);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "acknowledged writes without their event: {:?}",
            acknowledged
                .iter()
                .filter(|(id, what)| !seen.contains(&(id.clone(), (*what).to_owned())))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // No gap: every number up to the highest came (some more than once, after a kill).
    let distinct: HashSet<i64> = seqs.iter().copied().collect();
    let highest = *seqs.iter().max().expect("events");
    assert_eq!(distinct.len() as i64, highest, "no number missing");
    // Each resource's events in the order of its writes: its create before its patch.
    let mut first_seen: HashMap<(String, String), usize> = HashMap::new();
    for (i, s) in events.iter().enumerate() {
        let id = s["sub_id"]["id"].as_str().unwrap_or_default().to_owned();
        let kind = event_names(s)[0]
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        first_seen.entry((id, kind)).or_insert(i);
    }
    for ((id, kind), at) in &first_seen {
        if kind == "patch" {
            let created = first_seen[&(id.clone(), "create".to_owned())];
            assert!(created < *at, "{id}: its patch came before its create");
        }
    }
    // None for a write that never committed: every resource an event names exists.
    // (Read as pages of the list: one GET per resource would meet the rate limit.)
    let t = token(&data, &[]);
    let mut stored: HashSet<String> = HashSet::new();
    loop {
        let (status, page) = send(
            "GET",
            &format!(
                "{}/scim/v2/Users?attributes=id&count=100&startIndex={}",
                server.base,
                stored.len() + 1
            ),
            &t,
            None,
        );
        assert_eq!(status, 200, "{page}");
        let resources = page["Resources"].as_array().cloned().unwrap_or_default();
        if resources.is_empty() {
            break;
        }
        stored.extend(
            resources
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned)),
        );
    }
    for (id, _) in first_seen.keys() {
        assert!(
            stored.contains(id),
            "an event for {id}, which is not stored"
        );
    }
}

/// A write that may fail (the server is being killed): `None` when it did.
pub(crate) fn try_send(
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let a = agent();
    let auth = format!("Bearer {token}");
    let body = body.unwrap_or(Value::Null).to_string();
    let sent = match method {
        "PATCH" => a.patch(url),
        _ => a.post(url),
    }
    .header("authorization", &auth)
    .header("content-type", "application/scim+json")
    .send(body);
    let mut resp = sent.ok()?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// `scimgate events` beside the running server: `tail` shows the writes, `receivers` the
/// lag and the state; a receiver down for longer than it allows is dead-lettered and stays
/// so when it comes back, until `enable`; `replay` delivers again from a given event.
#[test]
fn operators_see_lag_and_dead_letters_enable_and_replay() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let (port, url) = receiver_down();
    let config = config_with(
        dir.path(),
        &receiver_toml("crm", &url, "dead_after_secs = 1"),
    );
    let server = Server::start_with(&data, Some(&config), Stdio::null());
    let t = token(&data, &[]);
    for i in 0..3 {
        create_user(&server, &t, &format!("op{i}"));
    }
    let events = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("events")
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--data")
            .arg(&data)
            .output()
            .expect("events");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The first row of `events receivers --json`: the receiver in its one tenant.
    let first_row = || -> Value {
        let listed = events(&["receivers", "--json"]);
        serde_json::from_str(listed.lines().next().expect("a row")).expect("JSON")
    };
    let tail = events(&["tail", "--json"]);
    let lines: Vec<Value> = tail
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{tail}");
    assert_eq!(lines[2]["operation"], "create");
    assert_eq!(lines[2]["seq"], 3);

    // Down for longer than it allows: dead.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let row = first_row();
        if row["state"] == "dead" {
            break row;
        }
        assert!(std::time::Instant::now() < deadline, "never dead: {row}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(dead["receiver"], "crm");
    assert_eq!(
        (dead["delivered"].clone(), dead["head"].clone()),
        (json!(0), json!(3))
    );
    assert_eq!(dead["lag_events"], 3);
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("onnection"),
        "{dead}"
    );

    // Back, but dead-lettered: nothing until enabled.
    let receiver = Receiver::start_on(port);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        receiver.received().is_empty(),
        "a dead receiver gets nothing"
    );
    let row = first_row();
    assert_eq!(row["state"], "dead", "it stays dead until enabled: {row}");
    assert!(events(&["enable", "crm"]).contains("resumes"));
    let got = receiver.wait_for_accepted(3, Duration::from_secs(20));
    let seqs: Vec<i64> = seqs_of(&got);
    assert_eq!(seqs, [1, 2, 3]);

    // A replay past the last event would skip what comes between: refused.
    let out = Command::new(BIN)
        .args([
            "events",
            "replay",
            "--receiver",
            "crm",
            "--from",
            "99",
            "--config",
        ])
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .output()
        .expect("replay");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no event 99"));
    // Replay from 2: 2 and 3 come again.
    assert!(events(&["replay", "--receiver", "crm", "--from", "2"]).contains("from event 2"));
    let got = receiver.wait_for_accepted(5, Duration::from_secs(20));
    let seqs: Vec<i64> = seqs_of(&got);
    assert_eq!(seqs, [1, 2, 3, 2, 3]);
    let row = first_row();
    assert_eq!(row["state"], "active");

    // An event the receiver keeps refusing can be skipped with a replay while it is
    // being retried: the replay is taken before the next try.
    receiver.answer_with(503);
    for name in ["poison", "after-poison"] {
        create_user(&server, &t, name);
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(events(&["replay", "--receiver", "crm", "--from", "5"]).contains("from event 5"));
    receiver.answer_with(202);
    let got = receiver.wait_for_accepted(6, Duration::from_secs(20));
    let last = claims_unverified(&got[5].body)["seq"]
        .as_i64()
        .expect("seq");
    assert_eq!(last, 5, "event 4 was skipped by the replay");

    // A poll consumer's cursor is listed, and forgotten on the operator's word.
    let reader = token(&data, &["--scope", "scim:events", "--sub", "hr-sync"]);
    let poll = |body: Value| {
        try_send(
            "POST",
            &format!("{}/events/poll", server.base),
            &reader,
            Some(body),
        )
        .expect("poll")
    };
    let (status, got) = poll(json!({"returnImmediately": true, "maxEvents": 1}));
    assert_eq!(status, 200, "{got}");
    let jti = got["sets"]
        .as_object()
        .expect("sets")
        .keys()
        .next()
        .expect("a SET")
        .clone();
    assert_eq!(
        poll(json!({"returnImmediately": true, "maxEvents": 0, "ack": [jti]})).0,
        200
    );
    let cursor = r#"cursor:["hr-sync",null]"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !events(&["receivers"]).contains(cursor) {
        assert!(
            std::time::Instant::now() < deadline,
            "the cursor never listed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(events(&["forget", cursor]).contains("in 1 tenant(s)"));
    assert!(!events(&["receivers"]).contains(cursor));
    for (name, says) in [
        ("receiver:crm", "not a poll or stream cursor"),
        (cursor, "no cursor"),
    ] {
        let out = Command::new(BIN)
            .args(["events", "forget", name, "--config"])
            .arg(&config)
            .arg("--data")
            .arg(&data)
            .output()
            .expect("forget");
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{name}"
        );
    }

    // Output into a pipe whose reader went (`| head`): a quiet end, not a panic.
    let (reader_end, writer_end) = std::io::pipe().expect("pipe");
    drop(reader_end);
    let out = Command::new(BIN)
        .args(["events", "tail", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .stdout(writer_end)
        .output()
        .expect("tail");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);
}

/// The `event` hook: a real compiled plugin (`hr-event-map`) rewrites the events going to
/// one receiver and drops the groups' events for it; another receiver gets them as they are.
#[test]
fn an_event_plugin_rewrites_and_drops_for_its_receiver_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let hr = Receiver::start();
    let audit = Receiver::start();
    let plugin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/dist/hr-event-map.wasm");
    let config = config_with(
        dir.path(),
        &format!(
            "{}{}[[plugins]]\nname = \"hr-map\"\nfile = \"{}\"\nhooks = [\"event\"]\nreceivers = [\"hr\"]\nconfig = {{ map = {{ \"userName\" = \"login\" }}, drop = [\"Group\"] }}\n",
            receiver_toml("hr", &hr.url, ""),
            receiver_toml("audit", &audit.url, ""),
            plugin.display()
        ),
    );
    let server = Server::start_with(&data, Some(&config), Stdio::inherit());
    let t = token(&data, &[]);
    create_user(&server, &t, "mapped");
    let (status, _) = send(
        "POST",
        &format!("{}/scim/v2/Groups", server.base),
        &t,
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G"}),
        ),
    );
    assert_eq!(status, 201);
    let original = audit.wait_for_accepted(2, Duration::from_secs(20));
    let first = verified(&server, &original[0].body);
    assert_eq!(
        first["events"][format!("{PROV}create:full")]["data"]["userName"],
        "mapped"
    );
    let mapped = hr.wait_for_accepted(1, Duration::from_secs(20));
    let claims = verified(&server, &mapped[0].body);
    let data = &claims["events"][format!("{PROV}create:full")]["data"];
    assert_eq!(data["login"], "mapped", "{claims}");
    assert!(data.get("userName").is_none());
    // The group's event was dropped for hr: after the audit receiver got both, hr still
    // has one, and its position moved past the group's event.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        hr.received().len(),
        1,
        "the group's event is not sent to hr"
    );
}
