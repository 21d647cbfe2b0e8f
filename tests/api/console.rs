//! The admin page's HTTP side: sessions from an admin token or a single-use sign-in link,
//! the cookie's flags, the tenants a session sees, CSRF and origin checks on every change,
//! sign-out, and the headers of every answer under `/admin/`.

use scimgate_http::{SigningKey, TokenRequest};
use scimgate_store::TokenRecord;
use serde_json::{Value, json};

use crate::common::*;

/// Signs in with `token`; the session cookie (`name=value`) and the answer.
async fn sign_in(h: &Harness, token: &str) -> (Option<String>, Resp) {
    let resp = h
        .req(actix_web::http::Method::POST, "/admin/session")
        .no_token()
        .header("content-type", "application/json")
        .raw(None, json!({ "token": token }).to_string())
        .send()
        .await;
    let cookie = resp
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    (cookie, resp)
}

fn with_session<'a>(r: Req<'a>, cookie: &str) -> Req<'a> {
    r.no_token().header("cookie", cookie)
}

/// A sign-in link's token, recorded as `scimgate admin login-url` records it.
fn link_token(h: &Harness, tenants: &[&str]) -> String {
    let key = SigningKey::load_or_create(h.data_dir()).expect("key");
    let (token, claims) = key
        .mint(
            &TokenRequest {
                subject: "admin:alice".into(),
                tenants: tenants.iter().map(|t| t.to_string()).collect(),
                scope: "admin:sign-in".into(),
                ttl_secs: 300,
            },
            now(),
        )
        .expect("mint");
    h.admin()
        .record_token(&TokenRecord {
            jti: claims.jti.clone().expect("jti"),
            subject: Some(claims.sub.clone()),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            scope: Some(claims.scope.clone()),
            issued_at: claims.iat,
            expires_at: Some(claims.exp),
            revoked_at: None,
        })
        .expect("record");
    token
}

#[actix_web::test]
async fn a_session_sees_only_the_tenants_its_token_named() {
    let h = Harness::new();
    let other = h.token_for("globex", "scim:read scim:write");
    let theirs = h
        .post("/scim/v2/Users", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "hidden@globex.example"}))
        .token(&other)
        .send()
        .await;
    assert_eq!(theirs.status, 201);
    let writer = h.token_for("acme", "scim:read scim:write");
    h.post("/scim/v2/Users", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "seen@acme.example"}))
        .token(&writer)
        .send()
        .await;
    let admin = h.token_for("acme", "scim:admin");
    let (cookie, resp) = sign_in(&h, &admin).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let set = resp.header("set-cookie").expect("cookie").to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain HTTP: no Secure flag ({set})"
    );
    let cookie = cookie.expect("session");
    let mine = with_session(h.get("/admin/api/resources/Users"), &cookie)
        .send()
        .await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body["rows"][0]["name"], "seen@acme.example");
    assert_eq!(mine.body["total"], 1);
    for path in [
        "/admin/api/resources/Users?tenant=globex",
        "/admin/api/activity?tenant=globex",
    ] {
        let refused = with_session(h.get(path), &cookie).send().await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
    }
    let id = theirs.body["id"].as_str().expect("id");
    let refused = with_session(h.get(&format!("/admin/api/resources/Users/{id}")), &cookie)
        .send()
        .await;
    assert_eq!(
        refused.status, 404,
        "another tenant's user is not found: {}",
        refused.body
    );
    // No session: refused, not redirected.
    assert_eq!(h.get("/admin/api/me").no_token().send().await.status, 401);
}

#[actix_web::test]
async fn only_an_admin_token_or_an_unused_sign_in_link_opens_a_session() {
    let h = Harness::new();
    let reader = h.token_for("acme", "scim:read scim:write");
    let (_, refused) = sign_in(&h, &reader).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let (_, forged) = sign_in(&h, "eyJhbGciOiJIUzI1NiJ9.e30.x").await;
    assert_eq!(forged.status, 401);
    let link = link_token(&h, &["acme"]);
    // The link's token is for signing in, nothing else.
    let scim = h.get("/scim/v2/Users").token(&link).send().await;
    assert_eq!(scim.status, 403, "{}", scim.body);
    let (cookie, first) = sign_in(&h, &link).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["tenants"], json!(["acme"]));
    assert!(cookie.is_some());
    let (_, again) = sign_in(&h, &link).await;
    assert_eq!(again.status, 401, "{}", again.body);
    assert!(
        again.body["detail"]
            .as_str()
            .expect("detail")
            .contains("used"),
        "{}",
        again.body
    );
}

#[actix_web::test]
async fn every_change_needs_the_csrf_token_and_the_page_s_origin() {
    let h = Harness::new();
    let admin = h.token_for("acme", "scim:admin");
    let (cookie, resp) = sign_in(&h, &admin).await;
    let cookie = cookie.expect("session");
    let csrf = resp.body["csrf"].as_str().expect("csrf").to_owned();
    let post = |path: &str| {
        with_session(h.req(actix_web::http::Method::POST, path), &cookie)
            .header("content-type", "application/json")
            .raw(None, "{}")
    };
    let missing = post("/admin/logout").send().await;
    assert_eq!(missing.status, 403, "{}", missing.body);
    let forged = post("/admin/logout")
        .header("x-csrf-token", "x")
        .send()
        .await;
    assert_eq!(forged.status, 403);
    let elsewhere = post("/admin/logout")
        .header("x-csrf-token", &csrf)
        .header("origin", "https://evil.example")
        .send()
        .await;
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.body);
    // Still signed in after the refusals; then out.
    assert_eq!(
        with_session(h.get("/admin/api/me"), &cookie)
            .send()
            .await
            .status,
        200
    );
    let out = post("/admin/logout")
        .header("x-csrf-token", &csrf)
        .send()
        .await;
    assert_eq!(out.status, 204, "{}", out.body);
    assert!(
        out.header("set-cookie")
            .expect("removal")
            .contains("Max-Age=0")
    );
    assert_eq!(
        with_session(h.get("/admin/api/me"), &cookie)
            .send()
            .await
            .status,
        401
    );
    // Signing in and out is in the trail, as the token's subject.
    let rows = audit_rows(&h, &h.token_for("acme", "scim:admin"), 2).await;
    let actions: Vec<&Value> = rows.iter().map(|r| &r["resourceType"]).collect();
    assert!(
        actions.contains(&&json!("sign in")) && actions.contains(&&json!("sign out")),
        "{rows:?}"
    );
}

#[actix_web::test]
async fn every_admin_answer_forbids_framing_inline_script_and_caching() {
    let h = Harness::new();
    let page = h.get("/admin/").no_token().send().await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("csp");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let script = h.get("/admin/app.js").no_token().send().await;
    assert!(
        script
            .header("content-type")
            .expect("type")
            .starts_with("text/javascript")
    );
    let api = h.get("/admin/api/me").no_token().send().await;
    assert_eq!(api.header("cache-control"), Some("no-store"));
    assert_eq!(api.header("x-frame-options"), Some("DENY"));
    let bare = h.get("/admin").no_token().send().await;
    assert_eq!(
        (bare.status, bare.header("location")),
        (301, Some("/admin/"))
    );
    // The JSON audit endpoint for scripts stays where it was.
    let audit = h
        .get("/admin/audit")
        .token(&h.token_for("acme", "scim:admin"))
        .send()
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
}
