//! `POST /oauth/token`: the client credentials grant (RFC 6749 §4.4) for clients registered
//! as `scimgate client add` registers them; its tokens act on the SCIM API for the client's
//! tenants and scopes; its refusals are RFC 6749 §5.2 errors; a rotated secret overlaps,
//! a removed client's tokens stop.

use actix_web::http::Method;
use base64::Engine;
use scimgate_store::{AuditQuery, ClientAssertion, ClientSecret, OAuthClient};
use serde_json::{Value, json};

use crate::common::*;

const FORM: &str = "application/x-www-form-urlencoded";

/// Registers client `name` for `tenant` and waits until the server has it: its id and
/// secret.
fn add_client(h: &Harness, name: &str, tenant: &str, scope: &str) -> (String, String) {
    h.add_tenant(tenant);
    let (secret, digest) = scimgate_http::new_client_secret();
    let client = OAuthClient {
        client_id: scimgate_http::new_client_id(),
        name: name.into(),
        tenants: vec![tenant.into()],
        scope: scope.into(),
        token_ttl_secs: 600,
        created: "2026-01-01T00:00:00.000Z".into(),
        secrets: vec![ClientSecret {
            digest,
            created: 0,
            expires: None,
        }],
        assertion: None,
    };
    let db = h.admin();
    assert!(db.add_client(&client).expect("add"));
    let id = client.client_id.clone();
    h.wait_for_access(|a| a.clients.contains_key(&id));
    (client.client_id, secret)
}

fn basic(id: &str, secret: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Basic {encoded}")
}

/// The client credentials grant with `client_secret_basic`.
async fn ask_basic(h: &Harness, id: &str, secret: &str) -> Resp {
    ask(
        h,
        Some(&basic(id, secret)),
        FORM,
        "grant_type=client_credentials",
    )
    .await
}

async fn ask(h: &Harness, authorization: Option<&str>, content_type: &str, body: &str) -> Resp {
    let mut req = h
        .req(Method::POST, "/oauth/token")
        .no_token()
        .raw(Some(content_type), body.to_owned());
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await
}

#[actix_web::test]
async fn client_credentials_give_a_token_for_the_clients_tenants_and_scopes() {
    let h = Harness::new();
    let (id, secret) = add_client(&h, "entra-prod", "acme", "scim:read scim:write");

    // client_secret_basic
    let r = ask_basic(&h, &id, &secret).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.headers.get("cache-control").expect("no-store"),
        "no-store"
    );
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 600);
    assert_eq!(r.body["scope"], "scim:read scim:write");
    let token = r.body["access_token"].as_str().expect("a token").to_owned();
    let created = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "via-oauth"}),
        )
        .token(&token)
        .send()
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let other = h
        .get("/scim/v2/Users?domain=default")
        .token(&token)
        .send()
        .await;
    assert_eq!(
        other.status, 403,
        "only the client's tenants: {}",
        other.body
    );

    // client_secret_post, narrowed to reading
    let body = format!(
        "grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=scim%3Aread"
    );
    let r = ask(&h, None, FORM, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "scim:read");
    let reader = r.body["access_token"].as_str().expect("a token").to_owned();
    assert_eq!(
        h.get("/scim/v2/Users").token(&reader).send().await.status,
        200
    );
    h.post(
        "/scim/v2/Users",
        json!({"schemas": [USER_SCHEMA], "userName": "refused"}),
    )
    .token(&reader)
    .send()
    .await
    .assert_error(403, None, "scim:write");

    // Each issuance and refusal is audited, in the client's tenant.
    let r = ask_basic(&h, &id, "wrong").await;
    assert_eq!(r.status, 401);
    let db = h.admin();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let rows = loop {
        let rows: Vec<_> = db
            .audit(&AuditQuery {
                tenant: Some("acme".into()),
                limit: 100,
                ..Default::default()
            })
            .expect("audit")
            .into_iter()
            .filter(|r| r.resource_type.as_deref() == Some("oauth/token"))
            .collect();
        if rows.len() >= 3 {
            break rows;
        }
        assert!(std::time::Instant::now() < deadline, "{rows:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let statuses: Vec<u16> = rows.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 401]);
    assert_eq!(rows[0].subject.as_deref(), Some("entra-prod"));
    assert!(rows[0].jti.is_some());
    assert!(
        rows[2]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("invalid_client"),
        "{:?}",
        rows[2]
    );
}

/// (what is wrong, Authorization, content type, body, status, `error`).
type Refusal<'a> = (&'a str, Option<String>, &'a str, String, u16, &'a str);

/// Each refusal as RFC 6749 §5.2 names it.
#[actix_web::test]
async fn token_endpoint_refusals_are_rfc_6749_errors() {
    let h = Harness::new();
    let (id, secret) = add_client(&h, "okta", "acme", "scim:read scim:write");
    let good = basic(&id, &secret);
    let grant = "grant_type=client_credentials";
    let posted = format!("{grant}&client_id={id}&client_secret={secret}");
    let cases: Vec<Refusal> = vec![
        (
            "wrong secret",
            Some(basic(&id, "nope")),
            FORM,
            grant.into(),
            401,
            "invalid_client",
        ),
        (
            "unknown client",
            Some(basic("who", &secret)),
            FORM,
            grant.into(),
            401,
            "invalid_client",
        ),
        (
            "no credentials",
            None,
            FORM,
            grant.into(),
            401,
            "invalid_client",
        ),
        (
            "not Basic",
            Some("Bearer x".into()),
            FORM,
            grant.into(),
            401,
            "invalid_client",
        ),
        (
            "both ways",
            Some(good.clone()),
            FORM,
            posted.clone(),
            400,
            "invalid_request",
        ),
        (
            "secret without id",
            None,
            FORM,
            format!("{grant}&client_secret={secret}"),
            400,
            "invalid_request",
        ),
        (
            "no grant",
            Some(good.clone()),
            FORM,
            String::new(),
            400,
            "invalid_request",
        ),
        (
            "password grant",
            Some(good.clone()),
            FORM,
            "grant_type=password".into(),
            400,
            "unsupported_grant_type",
        ),
        (
            "a grant twice",
            Some(good.clone()),
            FORM,
            format!("{grant}&{grant}"),
            400,
            "invalid_request",
        ),
        (
            "'&' in Basic credentials",
            Some(basic(&format!("zzz&x={id}"), &format!("qqq&x={secret}"))),
            FORM,
            grant.into(),
            401,
            "invalid_client",
        ),
        (
            "another client_id in the form",
            Some(good.clone()),
            FORM,
            format!("{grant}&client_id=someone-else"),
            400,
            "invalid_request",
        ),
        (
            "a scope it lacks",
            Some(good.clone()),
            FORM,
            format!("{grant}&scope=scim%3Aadmin"),
            400,
            "invalid_scope",
        ),
        (
            "JSON body",
            Some(good.clone()),
            "application/json",
            r#"{"grant_type":"client_credentials"}"#.into(),
            400,
            "invalid_request",
        ),
    ];
    for (what, authorization, content_type, body, status, error) in cases {
        let r = ask(&h, authorization.as_deref(), content_type, &body).await;
        assert_eq!(
            (r.status, r.body["error"].clone()),
            (status, json!(error)),
            "{what}: {}",
            r.body
        );
        assert!(
            r.body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{what}"
        );
        if status == 401 {
            assert!(r.headers.contains_key("www-authenticate"), "{what}");
        }
        assert!(
            !r.body.to_string().contains(&secret),
            "{what}: the secret is never echoed"
        );
    }
    let r = h.get("/oauth/token").no_token().send().await;
    assert_eq!(r.status, 405);
    // A body past 16 KiB: an RFC 6749 error too, with its status.
    let r = ask(
        &h,
        Some(&good),
        FORM,
        &format!("{grant}&scope={}", "x".repeat(20_000)),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"].clone()),
        (413, json!("invalid_request")),
        "{}",
        r.body
    );
    assert_eq!(
        r.headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("no-store")
    );
}

#[actix_web::test]
async fn a_rotated_secret_overlaps_and_a_removed_clients_tokens_stop() {
    let h = Harness::new();
    let (id, old) = add_client(&h, "rotating", "acme", "scim:read");
    let token_with = |secret: String| {
        let (h, id) = (&h, id.clone());
        async move {
            let r = ask(
                h,
                Some(&basic(&id, &secret)),
                FORM,
                "grant_type=client_credentials",
            )
            .await;
            (r.status, r.body["access_token"].as_str().map(str::to_owned))
        }
    };
    let db = h.admin();
    let now = scimgate_model::Clock::now(&scimgate_model::SystemClock).unix_timestamp();
    let rotate = |overlap: i64| {
        let (secret, digest) = scimgate_http::new_client_secret();
        let new = ClientSecret {
            digest,
            created: now,
            expires: None,
        };
        assert!(
            db.rotate_client("rotating", &new, now + overlap)
                .expect("rotate")
        );
        secret
    };
    let count = |id: &str| {
        let id = id.to_owned();
        move |a: &scimgate_store::AccessSnapshot| a.clients.get(&id).map_or(0, |c| c.secrets.len())
    };
    // With an overlap, both secrets hold.
    let second = rotate(3600);
    h.wait_for_access(|a| count(&id)(a) == 2);
    assert_eq!(token_with(old.clone()).await.0, 200);
    let (status, token) = token_with(second.clone()).await;
    assert_eq!(status, 200);
    // Without one, the previous secret stops at once.
    let third = rotate(0);
    h.wait_for_access(|a| count(&id)(a) == 3);
    assert_eq!(token_with(second).await.0, 401);
    assert_eq!(token_with(third).await.0, 200);

    let token = token.expect("a token");
    assert_eq!(
        h.get("/scim/v2/Users").token(&token).send().await.status,
        200
    );
    assert!(db.remove_client("rotating").expect("remove"));
    h.wait_for_access(|a| a.clients.is_empty());
    h.get("/scim/v2/Users")
        .token(&token)
        .send()
        .await
        .assert_error(401, None, "has been removed");
}

/// A JWKS server on loopback whose keys the test swaps (a key rotation), and an assertion
/// signer: the identity provider's side of workload identity federation.
struct Signer {
    url: String,
    keys: std::sync::Arc<std::sync::Mutex<Value>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// An ECDSA P-256 key: its `kid`, the private key for jsonwebtoken, its public JWK.
fn ec_key(kid: &str) -> (String, jsonwebtoken::EncodingKey, Value) {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("pair");
    let public = pair.public_key().as_ref();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                     "x": b64(&public[1..33]), "y": b64(&public[33..65])});
    (
        kid.to_owned(),
        jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk,
    )
}

impl Signer {
    fn start(first: &Value) -> Signer {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/keys", listener.local_addr().expect("addr"));
        let keys = std::sync::Arc::new(std::sync::Mutex::new(json!({"keys": [first]})));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (served, counted) = (keys.clone(), fetches.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = served.lock().expect("lock").to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Signer { url, keys, fetches }
    }

    fn publish(&self, keys: &[&Value]) {
        *self.keys.lock().expect("lock") = json!({"keys": keys});
    }
}

const ISSUER: &str = "https://login.microsoftonline.com/contoso-tenant-id/v2.0";
const SUBJECT: &str = "entra-provisioning-workload";
const AUDIENCE: &str = "api://scimgate-contoso";

/// An assertion as Entra signs it, with `change` applied to its claims.
fn assertion(
    key: &(String, jsonwebtoken::EncodingKey, Value),
    change: impl FnOnce(&mut Value),
) -> String {
    let now = scimgate_model::Clock::now(&scimgate_model::SystemClock).unix_timestamp();
    let mut claims = json!({"iss": ISSUER, "sub": SUBJECT, "aud": AUDIENCE, "iat": now,
                            "nbf": now, "exp": now + 600, "jti": scimgate_http::new_client_id()});
    change(&mut claims);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(key.0.clone());
    jsonwebtoken::encode(&header, &claims, &key.1).expect("sign")
}

fn assertion_form(id: &str, assertion: &str) -> String {
    format!(
        "grant_type=client_credentials&client_id={id}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    )
}

#[actix_web::test]
async fn workload_identity_federation_takes_an_assertion_signed_by_the_idp() {
    let h = Harness::new();
    let first = ec_key("k1");
    let signer = Signer::start(&first.2);
    h.add_tenant("contoso");
    let client = OAuthClient {
        client_id: scimgate_http::new_client_id(),
        name: "entra-wif".into(),
        tenants: vec!["contoso".into()],
        scope: "scim:read scim:write".into(),
        token_ttl_secs: 900,
        created: "2026-01-01T00:00:00.000Z".into(),
        secrets: Vec::new(),
        assertion: Some(ClientAssertion {
            issuer: ISSUER.into(),
            subject: SUBJECT.into(),
            audience: AUDIENCE.into(),
            jwks_url: Some(signer.url.clone()),
            jwks_file: None,
        }),
    };
    let db = h.admin();
    assert!(db.add_client(&client).expect("add"));
    let id = client.client_id.clone();
    h.wait_for_access(|a| a.clients.contains_key(&id));

    let good = assertion(&first, |_| {});
    let r = ask(&h, None, FORM, &assertion_form(&id, &good)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["expires_in"], 900);
    let token = r.body["access_token"].as_str().expect("token").to_owned();
    let users = h.get("/scim/v2/Users").token(&token).send().await;
    assert_eq!(users.status, 200, "{}", users.body);

    // Each wrong claim, a replay, an expired or future assertion: invalid_client.
    let refused: Vec<(&str, String)> = vec![
        ("replayed", good.clone()),
        (
            "wrong iss",
            assertion(&first, |c| {
                c["iss"] = json!("https://login.microsoftonline.com/other/v2.0")
            }),
        ),
        (
            "wrong sub",
            assertion(&first, |c| c["sub"] = json!("someone-else")),
        ),
        (
            "wrong aud",
            assertion(&first, |c| c["aud"] = json!("api://elsewhere")),
        ),
        (
            "expired",
            assertion(&first, |c| {
                c["exp"] = json!(c["iat"].as_i64().unwrap_or(0) - 3600)
            }),
        ),
        (
            "not yet",
            assertion(&first, |c| {
                c["nbf"] = json!(c["iat"].as_i64().unwrap_or(0) + 3600)
            }),
        ),
        (
            "no jti",
            assertion(&first, |c| {
                c.as_object_mut().expect("claims").remove("jti");
            }),
        ),
        ("empty jti", assertion(&first, |c| c["jti"] = json!(""))),
        (
            "a jti too long",
            assertion(&first, |c| c["jti"] = json!("j".repeat(300))),
        ),
        (
            "valid for years",
            assertion(&first, |c| {
                c["exp"] = json!(c["iat"].as_i64().unwrap_or(0) + 100_000_000)
            }),
        ),
        (
            "signed by another key",
            assertion(&(first.0.clone(), ec_key("k1").1, first.2.clone()), |_| {}),
        ),
    ];
    for (what, bad) in refused {
        let r = ask(&h, None, FORM, &assertion_form(&id, &bad)).await;
        assert_eq!(
            (r.status, r.body["error"].clone()),
            (401, json!("invalid_client")),
            "{what}: {}",
            r.body
        );
    }
    // An assertion just past its `exp` is still taken within the leeway, once: its `jti`
    // is remembered for as long as it could be taken.
    let late = assertion(&first, |c| {
        c["exp"] = json!(c["iat"].as_i64().unwrap_or(0) - 5)
    });
    let r = ask(&h, None, FORM, &assertion_form(&id, &late)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = ask(&h, None, FORM, &assertion_form(&id, &late)).await;
    assert_eq!(r.status, 401, "replayed: {}", r.body);
    // A secret for a client of assertions, and an assertion with a secret: refused.
    let r = ask_basic(&h, &id, "whatever").await;
    assert_eq!(r.status, 401, "{}", r.body);
    let both = format!(
        "{}&client_secret=x",
        assertion_form(&id, &assertion(&first, |_| {}))
    );
    let r = ask(&h, None, FORM, &both).await;
    assert_eq!(
        (r.status, r.body["error"].clone()),
        (400, json!("invalid_request")),
        "{}",
        r.body
    );

    // The identity provider rotates its key: an assertion with the new `kid` makes the
    // server fetch the keys again.
    let second = ec_key("k2");
    signer.publish(&[&first.2, &second.2]);
    let before = signer.fetches.load(std::sync::atomic::Ordering::SeqCst);
    // (key signing the assertion, status, fetches of the keys since the rotation)
    let steps = [
        // The new `kid` makes the server fetch the keys again.
        (&second, 200),
        // A made-up `kid` right after does not.
        (&ec_key("k9"), 401),
        // Known keys are not fetched again for each assertion.
        (&first, 200),
    ];
    for (key, status) in steps {
        let r = ask(
            &h,
            None,
            FORM,
            &assertion_form(&id, &assertion(key, |_| {})),
        )
        .await;
        assert_eq!(r.status, status, "{}: {}", key.0, r.body);
        let fetched = signer.fetches.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert_eq!(fetched, 1, "{}", key.0);
    }
}

/// Wrong secrets do not use up a client's own rate: only a client that proved who it is
/// counts against it (its address's limit still holds).
#[actix_web::test]
async fn wrong_secrets_do_not_use_up_the_clients_rate() {
    let h = Harness::with_config(|c| {
        c.http.rate_limit.per_token = scimgate_http::Limit {
            requests_per_second: 1,
            burst: 2,
        };
    });
    let (id, secret) = add_client(&h, "victim", "acme", "scim:read");
    for _ in 0..6 {
        let r = ask_basic(&h, &id, "guess").await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = ask_basic(&h, &id, &secret).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
