//! Tokens in depth (every key type, algorithm binding, kid, iss/aud, revocation), the
//! `domain` parameter, and the tenant matrix: every endpoint tried across the boundary.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use scimgate_http::{AuthSettings, KeySpec};
use serde_json::{Value, json};

use crate::common::*;

fn key_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(key_file(name)).expect("key file")
}

fn claims(tenant: &str, extra: Value) -> Value {
    let mut c = json!({"sub": "idp", "tenant": tenant, "scope": "scim:read scim:write",
                       "exp": now() + 600, "iat": now(), "jti": uuid()});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    c
}

fn uuid() -> String {
    format!("{:x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

const HS384_SECRET: [u8; 48] = [5u8; 48];

/// A server with one key of every kind, and a JWKS holding an RSA key.
fn keyed_harness(dir: &Path) -> Harness {
    let secret_file = dir.join("hs384.secret");
    std::fs::write(&secret_file, STANDARD.encode(HS384_SECRET)).expect("secret");
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa-private.pem")).expect("rsa");
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&rsa, Algorithm::RS512).expect("jwk");
    jwk.common.key_id = Some("jwks-rsa".into());
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [jwk]}).to_string()).expect("jwks");
    let spec = |kid: Option<&str>, algorithm: &str, file: PathBuf| KeySpec {
        kid: kid.map(str::to_owned),
        algorithm: algorithm.into(),
        file,
        issuer: None,
        audience: None,
    };
    let mut okta = spec(Some("okta"), "RS256", key_file("rsa-public.pem"));
    okta.issuer = Some("https://okta.example.com".into());
    okta.audience = Some("scimgate".into());
    let auth = AuthSettings {
        keys: vec![
            okta,
            spec(Some("ps"), "PS256", key_file("rsa-public.pem")),
            spec(Some("ec256"), "ES256", key_file("ec256-public.pem")),
            spec(None, "ES384", key_file("ec384-public.pem")),
            spec(Some("ed"), "EdDSA", key_file("ed25519-public.pem")),
            spec(Some("hs384"), "HS384", secret_file),
        ],
        jwks_file: Some(jwks),
        jwks_issuer: None,
        jwks_audience: None,
    };
    Harness::with_config(|c| c.http.auth = auth)
}

async fn status_with(h: &Harness, token: &str) -> (u16, Value) {
    let r = h.get("/scim/v2/Users").token(token).send().await;
    (r.status, r.body)
}

#[actix_web::test]
async fn every_configured_key_kind_verifies_its_own_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let h = keyed_harness(dir.path());
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa-private.pem")).expect("rsa");
    let okta = claims(
        "default",
        json!({"iss": "https://okta.example.com", "aud": "scimgate"}),
    );
    let cases = [
        (
            "RS256 by kid",
            sign(Algorithm::RS256, Some("okta"), &rsa, &okta),
        ),
        (
            "PS256",
            sign(
                Algorithm::PS256,
                Some("ps"),
                &rsa,
                &claims("default", json!({})),
            ),
        ),
        (
            "RS512 from JWKS",
            sign(
                Algorithm::RS512,
                Some("jwks-rsa"),
                &rsa,
                &claims("default", json!({})),
            ),
        ),
        (
            "ES256",
            sign(
                Algorithm::ES256,
                Some("ec256"),
                &EncodingKey::from_ec_pem(&pem("ec256-private.pem")).expect("ec"),
                &claims("default", json!({})),
            ),
        ),
        (
            "ES384 without kid",
            sign(
                Algorithm::ES384,
                None,
                &EncodingKey::from_ec_pem(&pem("ec384-private.pem")).expect("ec"),
                &claims("default", json!({})),
            ),
        ),
        (
            "EdDSA",
            sign(
                Algorithm::EdDSA,
                Some("ed"),
                &EncodingKey::from_ed_pem(&pem("ed25519-private.pem")).expect("ed"),
                &claims("default", json!({})),
            ),
        ),
        (
            "HS384",
            sign(
                Algorithm::HS384,
                Some("hs384"),
                &EncodingKey::from_secret(&HS384_SECRET).expect("secret"),
                &claims("default", json!({})),
            ),
        ),
        ("the data folder's own", h.token_for("default", "scim:read")),
    ];
    for (label, token) in cases {
        let (status, body) = status_with(&h, &token).await;
        assert_eq!(status, 200, "{label}: {body}");
    }
}

#[actix_web::test]
async fn token_attacks_get_401() {
    let dir = tempfile::tempdir().expect("tmp");
    let h = keyed_harness(dir.path());
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa-private.pem")).expect("rsa");
    let okta = claims(
        "default",
        json!({"iss": "https://okta.example.com", "aud": "scimgate"}),
    );
    // Algorithm confusion: HS256 "signed" with the RSA public key as the HMAC secret.
    let public_as_secret = EncodingKey::from_secret(&pem("rsa-public.pem")).expect("secret");
    let confused_kid = sign(Algorithm::HS256, Some("okta"), &public_as_secret, &okta);
    let confused_no_kid = sign(Algorithm::HS256, None, &public_as_secret, &okta);
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"okta"}"#),
        URL_SAFE_NO_PAD.encode(okta.to_string())
    );
    let unknown_kid = sign(Algorithm::RS256, Some("nobody"), &rsa, &okta);
    let valid = sign(Algorithm::RS256, Some("okta"), &rsa, &okta);
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(
        claims("default", json!({"iss": "https://okta.example.com", "aud": "scimgate", "scope": "scim:admin scim:read"}))
            .to_string(),
    );
    let tampered = parts.join(".");
    let wrong_iss = sign(
        Algorithm::RS256,
        Some("okta"),
        &rsa,
        &claims(
            "default",
            json!({"iss": "https://evil.example.com", "aud": "scimgate"}),
        ),
    );
    let wrong_aud = sign(
        Algorithm::RS256,
        Some("okta"),
        &rsa,
        &claims(
            "default",
            json!({"iss": "https://okta.example.com", "aud": "other"}),
        ),
    );
    let expired = sign(
        Algorithm::RS256,
        Some("okta"),
        &rsa,
        &claims(
            "default",
            json!({"iss": "https://okta.example.com", "aud": "scimgate", "exp": now() - 3600}),
        ),
    );
    let es_as_ed = sign(
        Algorithm::ES256,
        Some("ed"),
        &EncodingKey::from_ec_pem(&pem("ec256-private.pem")).expect("ec"),
        &claims("default", json!({})),
    );
    for (label, token, needle) in [
        ("HS256 with the RSA key's kid", confused_kid, "is for RS256"),
        (
            "HS256 with the RSA public key, no kid",
            confused_no_kid,
            "InvalidSignature",
        ),
        ("alg none", none, "invalid bearer token"),
        ("unknown kid", unknown_kid, "no key with kid 'nobody'"),
        ("tampered payload", tampered, "InvalidSignature"),
        ("wrong iss", wrong_iss, "InvalidIssuer"),
        ("wrong aud", wrong_aud, "InvalidAudience"),
        ("expired", expired, "ExpiredSignature"),
        ("ES256 under the EdDSA key's kid", es_as_ed, "is for EdDSA"),
    ] {
        let (status, body) = status_with(&h, &token).await;
        assert_eq!(status, 401, "{label}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(needle), "{label}: {detail}");
    }
    assert_eq!(status_with(&h, &valid).await.0, 200);
}

#[actix_web::test]
async fn a_revoked_token_is_refused_without_restart() {
    let h = Harness::new();
    let token = h.token_for("default", "scim:read");
    assert_eq!(status_with(&h, &token).await.0, 200);
    let jti: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).expect("payload"))
            .expect("b64"),
    )
    .expect("claims");
    let jti = jti["jti"].as_str().expect("jti").to_owned();
    let db = h.admin();
    let revoked_at = std::time::Instant::now();
    assert_eq!(
        // The harness signs its tokens itself, so this folder has no record of them.
        db.revoke_token(&jti, now(), true).expect("revoke"),
        scimgate_store::Revocation::Revoked
    );
    h.wait_for_access(|a| a.revoked.contains(&jti));
    assert!(revoked_at.elapsed() < std::time::Duration::from_secs(1));
    let (status, body) = status_with(&h, &token).await;
    assert_eq!(status, 401);
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked")
    );
    let other = h.token_for("default", "scim:read");
    assert_eq!(
        status_with(&h, &other).await.0,
        200,
        "other tokens still work"
    );
}

#[actix_web::test]
async fn metrics_and_admin_scope_are_separate_from_reads() {
    let h = Harness::new();
    let admin_only = h.token_for("default", "scim:admin");
    h.get("/scim/v2/Users")
        .token(&admin_only)
        .send()
        .await
        .assert_error(403, None, "scim:read");
}

#[actix_web::test]
async fn domain_picks_among_the_tokens_tenants() {
    let h = Harness::new();
    let both = h.token_for_tenants(&["acme", "beta"], "scim:read scim:write");
    let only_acme = h.token_for("acme", "scim:read scim:write");
    h.add_tenant("gamma");
    let body = |n: &str| json!({"schemas": [USER_SCHEMA], "userName": n});
    assert_eq!(
        h.post("/scim/v2/Users", body("in-acme"))
            .token(&both)
            .send()
            .await
            .status,
        201
    );
    assert_eq!(
        h.post("/scim/v2/Users?domain=beta", body("in-beta"))
            .token(&both)
            .send()
            .await
            .status,
        201
    );
    let names = |r: &Resp| -> Vec<String> {
        r.body["Resources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|u| u["userName"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let acme = h.get("/scim/v2/Users").token(&both).send().await;
    assert_eq!(
        names(&acme),
        vec!["in-acme"],
        "absent domain: the default tenant"
    );
    let beta = h
        .get("/scim/v2/Users?domain=beta")
        .token(&both)
        .send()
        .await;
    assert_eq!(names(&beta), vec!["in-beta"]);
    h.get("/scim/v2/Users?domain=gamma")
        .token(&both)
        .send()
        .await
        .assert_error(403, None, "may not act for the tenant 'gamma'");
    h.get("/scim/v2/Users?domain=beta")
        .token(&only_acme)
        .send()
        .await
        .assert_error(403, None, "'beta'");
    h.get("/scim/v2/Users?domain=bad%20name")
        .token(&both)
        .send()
        .await
        .assert_error(400, Some("invalidValue"), "domain");
    // A tenant the token names but the server does not know.
    let key = scimgate_http::SigningKey::load_or_create(h.data_dir()).expect("key");
    let (unknown, _) = key
        .mint(
            &scimgate_http::TokenRequest {
                subject: "x".into(),
                tenants: vec!["unregistered".into()],
                scope: "scim:read".into(),
                ttl_secs: 60,
            },
            now(),
        )
        .expect("mint");
    h.get("/scim/v2/Users")
        .token(&unknown)
        .send()
        .await
        .assert_error(403, None, "not registered");
}

/// Two tenants with the same userNames, displayNames and externalIds; one token that may
/// act for both, switching with `domain`. Every endpoint is tried with the other tenant's
/// ids, filters, sorts and member references.
#[actix_web::test]
async fn tenant_matrix_every_endpoint_across_the_boundary() {
    let h = Harness::new();
    let t = h.token_for_tenants(&["red", "blue"], "scim:read scim:write");
    let mut ids = std::collections::HashMap::new();
    for tenant in ["red", "blue"] {
        let q = format!("?domain={tenant}");
        let u = h
            .post(
                &format!("/scim/v2/Users{q}"),
                json!({"schemas": [USER_SCHEMA], "userName": "same", "externalId": "ext-1",
                       "emails": [{"value": "same@example.com", "type": "work"}]}),
            )
            .token(&t)
            .send()
            .await;
        assert_eq!(
            u.status, 201,
            "{tenant}: uniqueness is per tenant: {}",
            u.body
        );
        let g = h
            .post(
                &format!("/scim/v2/Groups{q}"),
                json!({"schemas": [GROUP_SCHEMA], "displayName": "same-group",
                       "members": [{"value": id_of(&u.body)}]}),
            )
            .token(&t)
            .send()
            .await;
        assert_eq!(g.status, 201, "{}", g.body);
        ids.insert(tenant, (id_of(&u.body), id_of(&g.body)));
    }
    let (red_user, red_group) = ids["red"].clone();
    let (blue_user, _) = ids["blue"].clone();
    let blue = "?domain=blue";
    // Direct access to red's resources from blue: 404, and the detail names only the id asked.
    for (method, path) in [
        ("GET", format!("/scim/v2/Users/{red_user}{blue}")),
        ("GET", format!("/scim/v2/Groups/{red_group}{blue}")),
        ("DELETE", format!("/scim/v2/Users/{red_user}{blue}")),
        ("DELETE", format!("/scim/v2/Groups/{red_group}{blue}")),
    ] {
        let m = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
        let r = h.req(m, &path).token(&t).send().await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert!(!r.body.to_string().contains("red"), "{}", r.body);
    }
    let put = h
        .put(
            &format!("/scim/v2/Users/{red_user}{blue}"),
            json!({"schemas": [USER_SCHEMA], "userName": "hijack"}),
        )
        .token(&t)
        .send()
        .await;
    assert_eq!(put.status, 404);
    let patch = h
        .req(actix_web::http::Method::PATCH, &format!("/scim/v2/Groups/{red_group}{blue}"))
        .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "add", "path": "members", "value": [{"value": blue_user}]}]}))
        .token(&t)
        .send()
        .await;
    assert_eq!(patch.status, 404);
    // Blue's group cannot take red's user as a member.
    let (_, blue_group) = ids["blue"].clone();
    let cross_member = h
        .req(actix_web::http::Method::PATCH, &format!("/scim/v2/Groups/{blue_group}{blue}"))
        .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "add", "path": "members", "value": [{"value": red_user}]}]}))
        .token(&t)
        .send()
        .await;
    let blue_members = h
        .get(&format!(
            "/scim/v2/Groups/{blue_group}{blue}&attributes=members"
        ))
        .token(&t)
        .send()
        .await;
    let members = blue_members.body["members"].to_string();
    assert!(
        !members.contains(&red_user),
        "{} / {members}",
        cross_member.body
    );
    // Filters, sorts and searches in blue find only blue's.
    for path in [
        format!("/scim/v2/Users?filter=id%20eq%20%22{red_user}%22&domain=blue"),
        format!("/scim/v2/Groups?filter=members.value%20eq%20%22{red_user}%22&domain=blue"),
        format!("/scim/v2/Groups?filter=id%20eq%20%22{red_group}%22&domain=blue"),
    ] {
        let r = h.get(&path).token(&t).send().await;
        assert_eq!(
            (r.status, r.body["totalResults"].clone()),
            (200, json!(0)),
            "{path}"
        );
    }
    for path in [
        "/scim/v2/Users?filter=userName%20eq%20%22same%22&domain=blue",
        "/scim/v2/Users?sortBy=userName&domain=blue",
        "/scim/v2/Users?filter=externalId%20eq%20%22ext-1%22&domain=blue",
        "/scim/v2/Groups?filter=displayName%20eq%20%22same-group%22&domain=blue",
    ] {
        let r = h.get(path).token(&t).send().await;
        assert_eq!(r.body["totalResults"], 1, "{path}: {}", r.body);
        assert!(!r.body.to_string().contains(&red_user), "{path}");
    }
    for path in [
        "/scim/v2/Users/.search?domain=blue",
        "/scim/v2/.search?domain=blue",
    ] {
        let r = h
            .post(
                path,
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                       "filter": "userName eq \"same\" or displayName eq \"same-group\""}),
            )
            .token(&t)
            .send()
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let text = r.body.to_string();
        assert!(
            !text.contains(&red_user) && !text.contains(&red_group),
            "{path}: {text}"
        );
    }
    // Red's data is untouched by all of the above.
    let red_group_now = h
        .get(&format!("/scim/v2/Groups/{red_group}?domain=red"))
        .token(&t)
        .send()
        .await;
    assert_eq!(red_group_now.status, 200);
    assert_eq!(
        red_group_now.body["members"].as_array().map(Vec::len),
        Some(1)
    );
    let red_user_now = h
        .get(&format!("/scim/v2/Users/{red_user}?domain=red"))
        .token(&t)
        .send()
        .await;
    assert_eq!(red_user_now.body["userName"], "same");
}

/// Rotating the data folder's key: the old key, kept as an extra key with the same `kid`,
/// still verifies the tokens it signed until it is removed from the configuration.
#[actix_web::test]
async fn a_rotated_out_local_key_keeps_its_tokens_valid_while_configured() {
    let dir = tempfile::tempdir().expect("tmp");
    let old_secret = [42u8; 32];
    let old_file = dir.path().join("old-jwt-hs256.key");
    std::fs::write(&old_file, STANDARD.encode(old_secret)).expect("old key");
    let h = Harness::with_config(|c| {
        c.http.auth.keys = vec![KeySpec {
            kid: Some("scimgate".into()),
            algorithm: "HS256".into(),
            file: old_file.clone(),
            issuer: Some("scimgate".into()),
            audience: None,
        }]
    });
    let request = scimgate_http::TokenRequest {
        subject: "entra".into(),
        tenants: vec!["default".into()],
        scope: "scim:read".into(),
        ttl_secs: 600,
    };
    let old = scimgate_http::SigningKey::from_secret(&old_secret).expect("key");
    let (old_token, _) = old.mint(&request, now()).expect("mint");
    assert_eq!(
        status_with(&h, &old_token).await.0,
        200,
        "the old key's token"
    );
    assert_eq!(
        status_with(&h, &h.token_for("default", "scim:read"))
            .await
            .0,
        200,
        "the new key's"
    );
    let stranger = scimgate_http::SigningKey::from_secret(&[43u8; 32]).expect("key");
    let (forged, _) = stranger.mint(&request, now()).expect("mint");
    assert_eq!(status_with(&h, &forged).await.0, 401);
}
