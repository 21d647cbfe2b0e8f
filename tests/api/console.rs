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

/// A session of `token`: its cookie and CSRF token.
async fn session(h: &Harness, token: &str) -> (String, String) {
    let (cookie, resp) = sign_in(h, token).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let csrf = resp.body["csrf"].as_str().expect("csrf").to_owned();
    (cookie.expect("session cookie"), csrf)
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
    let (cookie, csrf) = session(&h, &admin).await;
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

/// The `jti` of a token (its payload read without checking: the test minted it).
fn jti_of(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    claims["jti"].as_str().expect("jti").to_owned()
}

async fn post_with(h: &Harness, cookie: &str, csrf: &str, path: &str, body: Value) -> Resp {
    with_session(h.req(actix_web::http::Method::POST, path), cookie)
        .header("content-type", "application/json")
        .header("x-csrf-token", csrf)
        .raw(None, body.to_string())
        .send()
        .await
}

#[actix_web::test]
async fn a_session_ends_with_the_pasted_token_s_revocation() {
    let h = Harness::new();
    let admin = h.token_for("acme", "scim:admin");
    let (cookie, _) = sign_in(&h, &admin).await;
    let cookie = cookie.expect("session");
    assert_eq!(
        with_session(h.get("/admin/api/me"), &cookie)
            .send()
            .await
            .status,
        200
    );
    let jti = jti_of(&admin);
    h.admin().revoke_token(&jti, now(), true).expect("revoke");
    h.wait_for_access(|a| a.revoked.contains(&jti));
    let after = with_session(h.get("/admin/api/me"), &cookie).send().await;
    assert_eq!(after.status, 401, "{}", after.body);
}

#[actix_web::test]
async fn revoked_tokens_and_sign_in_links_are_not_rotated_back_to_life() {
    let h = Harness::new();
    let admin = h.token_for("acme", "scim:admin");
    let (cookie, csrf) = session(&h, &admin).await;
    // A token recorded as `scimgate token` records it, then revoked.
    let idp = link_token(&h, &["acme"]);
    let jti = jti_of(&idp);
    h.admin().revoke_token(&jti, now(), false).expect("revoke");
    let rotated = post_with(
        &h,
        &cookie,
        &csrf,
        &format!("/admin/api/tokens/{jti}/rotate"),
        json!({}),
    )
    .await;
    assert_eq!(rotated.status, 400, "{}", rotated.body);
    assert!(
        rotated.body["detail"]
            .as_str()
            .expect("detail")
            .contains("revoked")
    );
    // An unused sign-in link is not rotated either: it would make a fresh link.
    let link = link_token(&h, &["acme"]);
    let rotated = post_with(
        &h,
        &cookie,
        &csrf,
        &format!("/admin/api/tokens/{}/rotate", jti_of(&link)),
        json!({}),
    )
    .await;
    assert_eq!(rotated.status, 400, "{}", rotated.body);
    assert!(
        rotated.body["detail"]
            .as_str()
            .expect("detail")
            .contains("sign-in link")
    );
}

#[actix_web::test]
async fn a_receiver_dead_in_another_tenant_is_not_re_enabled_from_this_one() {
    let h = Harness::new();
    h.add_tenant("globex");
    let admin = h.token_for("acme", "scim:admin");
    let store = h.state().store.clone();
    let dead = |tenant: &str| scimgate_store::EventPosition {
        consumer: "receiver:hr".into(),
        tenant: tenant.into(),
        seq: 0,
        updated: "2026-01-01T00:00:00.000Z".into(),
        state: "dead".into(),
        failing_since: Some("2026-01-01T00:00:00.000Z".into()),
        last_error: Some("refused".into()),
    };
    off_runtime(|| {
        store.commit_event_position(dead("acme")).expect("acme");
        store.commit_event_position(dead("globex")).expect("globex");
    });
    let (cookie, csrf) = session(&h, &admin).await;
    let listed = with_session(h.get("/admin/api/receivers"), &cookie)
        .send()
        .await;
    assert_eq!(
        listed.body["receivers"].as_array().expect("rows").len(),
        1,
        "{}",
        listed.body
    );
    let refused = post_with(
        &h,
        &cookie,
        &csrf,
        "/admin/api/receivers/receiver:hr/enable",
        json!({}),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let states: Vec<String> = off_runtime(|| store.event_positions().expect("positions"))
        .into_iter()
        .map(|p| p.state)
        .collect();
    assert_eq!(states, vec!["dead", "dead"]);
    // Dead only in the session's tenants: re-enabled.
    off_runtime(|| {
        let mut alive = dead("globex");
        alive.state = "active".into();
        store.commit_event_position(alive).expect("globex");
    });
    let enabled = post_with(
        &h,
        &cookie,
        &csrf,
        "/admin/api/receivers/receiver:hr/enable",
        json!({}),
    )
    .await;
    assert_eq!(
        (enabled.status, &enabled.body["enabledInTenants"]),
        (200, &json!(1)),
        "{}",
        enabled.body
    );
}

#[actix_web::test]
async fn one_subject_s_sign_ins_do_not_end_another_s_session() {
    let h = Harness::new();
    h.add_tenant("globex");
    let (victim, _) = sign_in(&h, &h.token_for("acme", "scim:admin")).await;
    let victim = victim.expect("victim");
    let key = SigningKey::load_or_create(h.data_dir()).expect("key");
    let flood = key
        .mint(
            &TokenRequest {
                subject: "flooder".into(),
                tenants: vec!["globex".into()],
                scope: "scim:admin".into(),
                ttl_secs: 600,
            },
            now(),
        )
        .expect("mint")
        .0;
    let mut first = None;
    for _ in 0..40 {
        let (cookie, resp) = sign_in(&h, &flood).await;
        assert_eq!(resp.status, 200);
        first.get_or_insert(cookie.expect("cookie"));
    }
    assert_eq!(
        with_session(h.get("/admin/api/me"), &victim)
            .send()
            .await
            .status,
        200
    );
    // The flooder's own oldest session made room.
    let oldest = first.expect("first");
    assert_eq!(
        with_session(h.get("/admin/api/me"), &oldest)
            .send()
            .await
            .status,
        401
    );
}
