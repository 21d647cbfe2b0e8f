//! Issue 11, authentication, scopes and tenants (points 1-6, 16), and the scope × tenant
//! matrix: every endpoint, every scope, own and other tenant, status and no change.

use actix_web::http::Method;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use scimgate_http::KeySpec;
use serde_json::{Value, json};

use crate::common::*;

/// 1. A configured issuer and audience must be present, not merely equal when present.
#[actix_web::test]
async fn p01_a_configured_issuer_and_audience_are_required() {
    let secret = [9u8; 32];
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("op.key");
    std::fs::write(&file, STANDARD.encode(secret)).expect("key");
    let h = Harness::with_config(|c| {
        c.http.auth.keys = vec![KeySpec {
            kid: Some("op".into()),
            algorithm: "HS256".into(),
            file: file.clone(),
            issuer: Some("https://idp.example".into()),
            audience: Some("scimgate".into()),
        }]
    });
    let mint = |claims: Value| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("op".into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret).expect("key"),
        )
        .expect("encode")
    };
    let base = json!({"sub": "idp", "tenant": "default", "scope": "scim:read", "exp": now() + 600});
    let with = |extra: Value| {
        let mut c = base.clone();
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        mint(c)
    };
    let cases = [
        (
            with(json!({"iss": "https://idp.example", "aud": "scimgate"})),
            200,
        ),
        (with(json!({"aud": "scimgate"})), 401),
        (with(json!({"iss": "https://idp.example"})), 401),
        (with(json!({})), 401),
        (
            with(json!({"iss": "https://other", "aud": "scimgate"})),
            401,
        ),
    ];
    for (token, want) in cases {
        let r = h.get("/scim/v2/Users").token(&token).send().await;
        assert_eq!(r.status, want, "{}", r.body);
    }
}

/// 2. `.search` is a query: the read scope, never the write scope.
#[actix_web::test]
async fn p02_search_needs_the_read_scope() {
    let h = Harness::new();
    h.create_user("searched").await;
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]});
    let read = h.token_for("default", "scim:read");
    let write = h.token_for("default", "scim:write");
    // Also as routing decodes it: `%2E` is a dot.
    for path in [
        "/scim/v2/Users/.search",
        "/scim/v2/.search",
        "/scim/v2/Users/%2Esearch",
    ] {
        let r = h.post(path, body.clone()).token(&read).send().await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        h.post(path, body.clone())
            .token(&write)
            .send()
            .await
            .assert_error(403, None, "'scim:read'");
    }
}

/// 3. `domain` is matched like every other parameter; two different values are refused.
#[actix_web::test]
async fn p03_domain_is_case_insensitive_and_unambiguous() {
    let h = Harness::new();
    let token = h.token_for_tenants(&["red", "blue"], "scim:read scim:write");
    let r = h
        .post(
            "/scim/v2/Users?Domain=blue",
            json!({"schemas": [USER_SCHEMA], "userName": "landed"}),
        )
        .token(&token)
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let count = |tenant: &'static str| {
        let path = format!("/scim/v2/Users?domain={tenant}&filter=userName%20eq%20%22landed%22");
        let (h, token) = (&h, token.clone());
        async move {
            h.get(&path).token(&token).send().await.body["totalResults"]
                .as_u64()
                .expect("count")
        }
    };
    assert_eq!(count("blue").await, 1, "created where it asked");
    assert_eq!(count("red").await, 0, "not in the token's default tenant");
    h.get("/scim/v2/Users?domain=red&DOMAIN=blue")
        .token(&token)
        .send()
        .await
        .assert_error(400, Some("invalidValue"), "given twice");
    let same = h
        .get("/scim/v2/Users?domain=blue&Domain=blue")
        .token(&token)
        .send()
        .await;
    assert_eq!(same.status, 200, "the same tenant twice is no ambiguity");
}

/// 4. A write refused for scope or tenant by an authenticated client is audited, in the
/// tenant it acted for (or its own default, never the tenant it tried to reach).
#[actix_web::test]
async fn p04_refused_writes_are_audited() {
    let h = Harness::new();
    let reader = h.token_for("default", "scim:read");
    h.post(
        "/scim/v2/Users",
        json!({"schemas": [USER_SCHEMA], "userName": "nope"}),
    )
    .token(&reader)
    .send()
    .await
    .assert_error(403, None, "scim:write");
    h.add_tenant("elsewhere");
    h.post(
        "/scim/v2/Users?domain=elsewhere",
        json!({"schemas": [USER_SCHEMA], "userName": "nope2"}),
    )
    .send()
    .await
    .assert_error(403, None, "may not act for");
    let admin = h.token_for("default", "scim:admin");
    let rows = audit_rows(&h, &admin, 2).await;
    let refused: Vec<&Value> = rows.iter().filter(|r| r["status"] == 403).collect();
    assert_eq!(refused.len(), 2, "{rows:?}");
    assert!(refused.iter().all(|r| r["method"] == "POST"));
    assert!(
        refused
            .iter()
            .any(|r| r["detail"].as_str().unwrap_or("").contains("scim:write"))
    );
    let elsewhere_admin = h.token_for("elsewhere", "scim:admin");
    let theirs = h.get("/admin/audit").token(&elsewhere_admin).send().await;
    assert_eq!(
        theirs.body["entries"].as_array().map(Vec::len),
        Some(0),
        "nothing written into the tenant it tried to reach"
    );
}

/// 5. Two `Authorization` headers are ambiguous credentials.
#[actix_web::test]
async fn p05_two_authorization_headers_are_refused() {
    let h = Harness::new();
    let good = h.token_for("default", "scim:read");
    let r = h
        .get("/scim/v2/Users")
        .no_token()
        .append_header("authorization", &format!("Bearer {good}"))
        .append_header("authorization", "Bearer garbage")
        .send()
        .await;
    r.assert_error(401, None, "more than one Authorization header");
    let r = h
        .get("/admin/audit")
        .no_token()
        .append_header("authorization", &format!("Bearer {good}"))
        .append_header("authorization", &format!("Bearer {good}"))
        .send()
        .await;
    assert_eq!(r.status, 401);
}

/// 6. Cursors are sealed: not readable, not forgeable, not portable between tenants or
/// queries; the audit trail's cursor likewise, and its rows carry no global sequence.
#[actix_web::test]
async fn p06_cursors_are_opaque_and_bound() {
    let h = Harness::new();
    for i in 0..3 {
        h.create_user(&format!("c{i}")).await;
    }
    let first = h.get("/scim/v2/Users?cursor=&count=1").send().await;
    let cursor = first.body["nextCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let decoded = URL_SAFE_NO_PAD.decode(&cursor).unwrap_or_default();
    assert!(
        serde_json::from_slice::<Value>(&decoded).is_err(),
        "not readable JSON"
    );
    let ok = h
        .get(&format!("/scim/v2/Users?cursor={cursor}&count=1"))
        .send()
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let forged = URL_SAFE_NO_PAD.encode(json!({"k": 1, "i": "x", "f": "0"}).to_string());
    for bad in [
        forged.as_str(),
        "abc",
        &format!("{}A", &cursor[..cursor.len() - 1]),
    ] {
        h.get(&format!("/scim/v2/Users?cursor={bad}&count=1"))
            .send()
            .await
            .assert_error(400, Some("invalidCursor"), "not one this server issued");
    }
    h.get(&format!("/scim/v2/Groups?cursor={cursor}&count=1"))
        .send()
        .await
        .assert_error(400, Some("invalidCursor"), "resource type");
    let other = h.token_for("other", "scim:read");
    h.get(&format!("/scim/v2/Users?cursor={cursor}&count=1"))
        .token(&other)
        .send()
        .await
        .assert_error(400, Some("invalidCursor"), "this tenant");

    let admin = h.token_for("default", "scim:admin");
    let rows = audit_rows(&h, &admin, 3).await;
    assert!(rows.iter().all(|r| r.get("seq").is_none()));
    let page = h.get("/admin/audit?count=1").token(&admin).send().await;
    let next = page.body["nextCursor"].as_str().expect("audit cursor");
    assert!(next.parse::<i64>().is_err(), "not a sequence number");
    let more = h
        .get(&format!("/admin/audit?count=1&cursor={next}"))
        .token(&admin)
        .send()
        .await;
    assert_eq!(more.status, 200);
    let other_admin = h.token_for("other", "scim:admin");
    h.get(&format!("/admin/audit?count=1&cursor={next}"))
        .token(&other_admin)
        .send()
        .await
        .assert_error(400, Some("invalidCursor"), "this tenant");
}

/// 16. Every error under `/scim/v2` and `/admin` is a SCIM error, also for a query string
/// that does not fit.
#[actix_web::test]
async fn p16_bad_query_strings_get_scim_errors() {
    let h = Harness::new();
    let admin = h.token_for("default", "scim:admin");
    h.get("/admin/audit?count=-1")
        .token(&admin)
        .send()
        .await
        .assert_error(400, Some("invalidValue"), "count");
    h.get("/admin/audit?cursor=abc")
        .token(&admin)
        .send()
        .await
        .assert_error(400, Some("invalidCursor"), "abc");
    h.get("/scim/v2/Users?count=x")
        .send()
        .await
        .assert_error(400, Some("invalidValue"), "count");
}

/// One endpoint of the matrix: method, path, body, the scopes that may call it, and the
/// status when allowed.
type Row<'a> = (Method, String, Option<Value>, &'a [&'a str], u16);

/// Every endpoint × every scope × own and other tenant: the status, and that the tenant's
/// data did not change unless the request was an allowed write in it.
#[actix_web::test]
async fn scope_and_tenant_matrix() {
    let h = Harness::new();
    h.add_tenant("other");
    let uid = id_of(&h.create_user("matrix-user").await);
    let gid = id_of(&h.create_group("matrix-group", &[&uid]).await);
    let patch_op = |path: &str, value: &str| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": path, "value": value}]})
    };
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]});
    let read: &[&str] = &["scim:read"];
    let write: &[&str] = &["scim:write"];
    // (method, path, body, scopes that may, status when allowed); the delete comes last.
    let rows: Vec<Row> = vec![
        (Method::GET, "/scim/v2/Users".into(), None, read, 200),
        (
            Method::GET,
            format!("/scim/v2/Users/{uid}"),
            None,
            read,
            200,
        ),
        (
            Method::HEAD,
            format!("/scim/v2/Users/{uid}"),
            None,
            read,
            200,
        ),
        (Method::GET, "/scim/v2/Groups".into(), None, read, 200),
        (
            Method::GET,
            format!("/scim/v2/Groups/{gid}"),
            None,
            read,
            200,
        ),
        (
            Method::POST,
            "/scim/v2/Users/.search".into(),
            Some(search.clone()),
            read,
            200,
        ),
        (
            Method::POST,
            "/scim/v2/.search".into(),
            Some(search),
            read,
            200,
        ),
        (
            Method::GET,
            "/scim/v2/ServiceProviderConfig".into(),
            None,
            read,
            200,
        ),
        (Method::GET, "/scim/v2/Schemas".into(), None, read, 200),
        (
            Method::GET,
            "/scim/v2/ResourceTypes".into(),
            None,
            read,
            200,
        ),
        (
            Method::POST,
            "/scim/v2/Users".into(),
            Some(json!({"schemas": [USER_SCHEMA], "userName": "matrix-new"})),
            write,
            201,
        ),
        (
            Method::PUT,
            format!("/scim/v2/Users/{uid}"),
            Some(json!({"schemas": [USER_SCHEMA], "userName": "matrix-user", "title": "put"})),
            write,
            200,
        ),
        (
            Method::PATCH,
            format!("/scim/v2/Users/{uid}"),
            Some(patch_op("title", "patched")),
            write,
            200,
        ),
        (
            Method::PATCH,
            format!("/scim/v2/Groups/{gid}"),
            Some(patch_op("displayName", "renamed")),
            write,
            204,
        ),
        (
            Method::GET,
            "/admin/audit".into(),
            None,
            &["scim:admin"],
            200,
        ),
        (
            Method::GET,
            "/metrics".into(),
            None,
            &["scim:metrics", "scim:admin"],
            200,
        ),
        (
            Method::DELETE,
            format!("/scim/v2/Groups/{gid}"),
            None,
            write,
            204,
        ),
    ];
    for (method, path, body, may, allowed) in &rows {
        for scope in ["scim:read", "scim:write", "scim:admin", "scim:metrics", ""] {
            for tenant in ["default", "other"] {
                let token = h.token_for(tenant, scope);
                let before = snapshot(&h, &uid, &gid).await;
                let mut req = h.req(method.clone(), path).token(&token);
                if let Some(b) = body {
                    req = req.json(b);
                }
                let r = req.send().await;
                let names_a_resource = path.contains(&uid) || path.contains(&gid);
                let want = if !may.contains(&scope) {
                    403
                } else if tenant == "other" && names_a_resource {
                    404 // another tenant's resource does not exist for it
                } else {
                    *allowed
                };
                let what = format!("{method} {path} with '{scope}' for {tenant}");
                assert_eq!(r.status, want, "{what}: {}", r.body);
                let writes_here = tenant == "default"
                    && r.status == *allowed
                    && !matches!(*method, Method::GET | Method::HEAD)
                    && !path.ends_with("/.search");
                if !writes_here {
                    assert_eq!(
                        snapshot(&h, &uid, &gid).await,
                        before,
                        "{what} changed the tenant's data"
                    );
                }
            }
        }
    }
}

/// What the default tenant holds, as its own reader sees it.
async fn snapshot(h: &Harness, uid: &str, gid: &str) -> Value {
    let u = h.get(&format!("/scim/v2/Users/{uid}")).send().await;
    let g = h.get(&format!("/scim/v2/Groups/{gid}")).send().await;
    let n = h.get("/scim/v2/Users?count=0").send().await;
    json!([
        u.status,
        u.body["meta"]["version"],
        g.status,
        g.body["meta"]["version"],
        n.body["totalResults"]
    ])
}

/// Adversarial review of issue 11: the routes at the root answer other methods with a SCIM
/// 405; a method the client makes up is one metric label ("other"), not one each; writes
/// refused by the rate limit are counted, not audited row by row.
#[actix_web::test]
async fn root_routes_methods_labels_and_rate_limited_writes() {
    let h = Harness::with_config(|c| {
        c.http.rate_limit.per_token = scimgate_http::Limit {
            requests_per_second: 1,
            burst: 2,
        }
    });
    let admin = h.token_for("default", "scim:admin");
    for (method, path) in [
        (Method::POST, "/admin/audit"),
        (Method::DELETE, "/metrics"),
        (Method::POST, "/healthz"),
        (Method::PUT, "/readyz"),
    ] {
        h.req(method.clone(), path)
            .token(&admin)
            .send()
            .await
            .assert_error(405, None, "not allowed");
    }
    for i in 0..5 {
        let made_up = Method::from_bytes(format!("X{i}ZZY").as_bytes()).expect("method");
        h.req(made_up, "/nothing").no_token().send().await;
    }
    let scraped = h.get("/metrics").token(&admin).send().await;
    let text = scraped.body.as_str().expect("text").to_owned();
    assert!(!text.contains("ZZY"), "client methods became labels");
    assert!(text.contains("method=\"other\""), "{text}");

    let writer = h.token_for("default", "scim:write");
    let mut refused = 0;
    for i in 0..10 {
        let r = h
            .post(
                "/scim/v2/Users",
                json!({"schemas": [USER_SCHEMA], "userName": format!("flood{i}")}),
            )
            .token(&writer)
            .send()
            .await;
        refused += usize::from(r.status == 429);
    }
    assert!(refused > 0, "the limit refused some");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let rows = h.get("/admin/audit?count=1000").token(&admin).send().await;
    let rows = rows.body["entries"].as_array().cloned().unwrap_or_default();
    assert!(rows.iter().all(|r| r["status"] != 429), "429s audited");

    // A client refused for its scope is limited like any other: past its rate, 429 (not
    // audited) instead of one more 403 and one more audit row each.
    let reader = h.token_for("default", "scim:read");
    let mut statuses = Vec::new();
    for i in 0..6 {
        let r = h
            .post(
                "/scim/v2/Users",
                json!({"schemas": [USER_SCHEMA], "userName": format!("denied{i}")}),
            )
            .token(&reader)
            .send()
            .await;
        statuses.push(r.status);
    }
    assert!(
        statuses.iter().all(|s| *s == 403 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "refused writes escape the rate limit: {statuses:?}"
    );
}
