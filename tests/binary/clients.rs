//! `scimgate client` beside a running server: a client added on the command line gets
//! tokens at `/oauth/token` that act on the SCIM API; a rotation overlaps the secrets; a
//! removal stops its tokens within a second or so.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use super::{Server, agent, cli, send};

/// `client_id` and `client_secret` as `client add` or `client rotate` printed them.
fn printed(out: &str, what: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{what}: ")))
        .unwrap_or_else(|| panic!("no {what} in {out}"))
        .to_owned()
}

/// A token for the client, or the status and body of the refusal.
fn token(server: &Server, id: &str, secret: &str) -> Result<Value, (u16, String)> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let mut r = agent()
        .post(&format!("{}/oauth/token", server.base))
        .header("authorization", &format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send("grant_type=client_credentials")
        .expect("token endpoint");
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap_or_default();
    if status == 200 {
        Ok(serde_json::from_str(&body).expect("JSON"))
    } else {
        Err((status, body))
    }
}

#[test]
fn clients_are_added_rotated_and_removed_beside_a_running_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let (ok, _, err) = cli(&data, &["client", "add", "entra", "--tenant", "nowhere"]);
    assert!(!ok && err.contains("scimgate tenant add nowhere"), "{err}");
    let (ok, out, err) = cli(
        &data,
        &[
            "client",
            "add",
            "entra",
            "--tenant",
            "default",
            "--token-ttl",
            "900",
        ],
    );
    assert!(ok, "{err}");
    assert!(err.contains("only this once"), "{err}");
    let (id, first) = (printed(&out, "client_id"), printed(&out, "client_secret"));
    let (ok, _, err) = cli(&data, &["client", "add", "entra", "--tenant", "default"]);
    assert!(!ok && err.contains("exists already"), "{err}");

    // The server sees the new client within a second or so.
    let deadline = Instant::now() + Duration::from_secs(5);
    let granted = loop {
        match token(&server, &id, &first) {
            Ok(granted) => break granted,
            Err(refused) => assert!(Instant::now() < deadline, "{refused:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(granted["expires_in"], 900);
    let access = granted["access_token"].as_str().expect("token").to_owned();
    let users = format!("{}/scim/v2/Users", server.base);
    assert_eq!(send("GET", &users, &access, None).0, 200);

    let (_, listed, _) = cli(&data, &["client", "list"]);
    assert!(
        listed.contains("entra") && listed.contains(&id) && listed.contains("one current"),
        "{listed}"
    );
    assert!(!listed.contains(&first), "the secret is never listed");

    let (ok, out, err) = cli(&data, &["client", "rotate", "entra", "--overlap", "600"]);
    assert!(ok, "{err}");
    let second = printed(&out, "client_secret");
    let (_, listed, _) = cli(&data, &["client", "list"]);
    assert!(listed.contains("one ending in"), "{listed}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while token(&server, &id, &second).is_err() {
        assert!(Instant::now() < deadline, "the new secret never held");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        token(&server, &id, &first).is_ok(),
        "the old secret overlaps"
    );

    let (ok, out, _) = cli(&data, &["client", "remove", "entra"]);
    assert!(ok && out.contains("removed client entra"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while send("GET", &users, &access, None).0 != 401 {
        assert!(
            Instant::now() < deadline,
            "a removed client's token still works"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        token(&server, &id, &second).map_err(|e| e.0).err(),
        Some(401)
    );

    // A client of workload identity federation: no secret, its identity provider's keys.
    let wif = [
        "client",
        "add",
        "entra-wif",
        "--tenant",
        "default",
        "--assertion-issuer",
        "https://login.microsoftonline.com/contoso/v2.0",
        "--assertion-subject",
        "provisioning",
        "--assertion-audience",
        "api://scimgate",
    ];
    let (ok, _, err) = cli(
        &data,
        &[&wif[..], &["--jwks-url", "http://idp.example.com/keys"]].concat(),
    );
    assert!(!ok && err.contains("must be https"), "{err}");
    let (ok, _, err) = cli(&data, &wif);
    assert!(!ok && err.contains("--jwks-url or --jwks-file"), "{err}");
    let (ok, out, err) = cli(
        &data,
        &[
            &wif[..],
            &[
                "--jwks-url",
                "https://login.microsoftonline.com/contoso/discovery/v2.0/keys",
            ],
        ]
        .concat(),
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("client_id: ") && !out.contains("client_secret"),
        "{out}"
    );
    let (_, listed, _) = cli(&data, &["client", "list"]);
    assert!(
        listed.contains("assertions from iss=https://login.microsoftonline.com/contoso/v2.0"),
        "{listed}"
    );
    let (ok, _, err) = cli(&data, &["client", "rotate", "entra-wif"]);
    assert!(!ok && err.contains("no secret to rotate"), "{err}");
}
