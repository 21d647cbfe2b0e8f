//! Snapshots of what clients see and rely on: the discovery documents and one error body of
//! each kind. A change to any of them fails here until the snapshot under
//! `tests/api/snapshots/` is updated (`cargo insta review`, or `INSTA_UPDATE=always`), so that
//! it is seen in review. Request ids and resource ids are replaced by placeholders.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::common::*;

/// The value with every UUID (request ids, resource ids) replaced, so snapshots are stable.
fn stable(v: &Value) -> Value {
    let text = v.to_string();
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        if i + 36 <= text.len() && is_uuid(&text[i..i + 36]) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
        let _ = bytes;
    }
    serde_json::from_str(&out).unwrap_or(Value::Null)
}

fn is_uuid(s: &str) -> bool {
    s.char_indices().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => c == '-',
        _ => c.is_ascii_hexdigit(),
    })
}

#[actix_web::test]
async fn discovery_documents() {
    let h = Harness::new();
    for (name, path) in [
        ("service_provider_config", "/scim/v2/ServiceProviderConfig"),
        ("resource_types", "/scim/v2/ResourceTypes"),
        ("schemas", "/scim/v2/Schemas"),
    ] {
        let r = h.get(path).send().await;
        assert_eq!(r.status, 200, "{path}");
        insta::assert_json_snapshot!(name, stable(&r.body));
    }
}

#[actix_web::test]
async fn error_bodies() {
    let h = Harness::with_config(|c| {
        c.http.max_body_bytes = 4096;
        c.http.max_patch_operations = 2;
    });
    let uid = id_of(&h.create_user("taken").await);
    let user = |name: &str| json!({"schemas": [USER_SCHEMA], "userName": name});
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let reader = h.token_for("default", "scim:read");
    let path = format!("/scim/v2/Users/{uid}");
    let cases = vec![
        (
            "invalid_filter",
            h.get("/scim/v2/Users?filter=userName%20zz%20%22x%22"),
        ),
        (
            "invalid_value",
            h.post(
                "/scim/v2/Users",
                json!({"schemas": [USER_SCHEMA], "userName": 7}),
            ),
        ),
        (
            "invalid_syntax",
            h.post(
                "/scim/v2/Users",
                json!({"schemas": [USER_SCHEMA], "userName": "u", "nope": 1}),
            ),
        ),
        (
            "invalid_path",
            h.req(Method::PATCH, &path).json(&patch(
                json!([{"op": "replace", "path": "nope", "value": 1}]),
            )),
        ),
        (
            "no_target",
            h.req(Method::PATCH, &path)
                .json(&patch(json!([{"op": "remove"}]))),
        ),
        (
            "mutability",
            h.req(Method::PATCH, &path).json(&patch(
                json!([{"op": "replace", "path": "id", "value": "x"}]),
            )),
        ),
        (
            "too_many",
            h.req(Method::PATCH, &path).json(&patch(json!([
            {"op": "replace", "path": "title", "value": "a"},
            {"op": "replace", "path": "title", "value": "b"},
            {"op": "replace", "path": "title", "value": "c"}]))),
        ),
        ("invalid_cursor", h.get("/scim/v2/Users?cursor=forged")),
        ("uniqueness", h.post("/scim/v2/Users", user("TAKEN"))),
        ("unauthorized", h.get("/scim/v2/Users").no_token()),
        (
            "forbidden",
            h.post("/scim/v2/Users", user("x")).token(&reader),
        ),
        ("not_found", h.get("/scim/v2/Users/missing")),
        ("method_not_allowed", h.req(Method::POST, &path)),
        (
            "precondition_failed",
            h.req(Method::DELETE, &path).header("if-match", "W/\"99\""),
        ),
        (
            "payload_too_large",
            h.post(
                "/scim/v2/Users",
                json!({"schemas": [USER_SCHEMA], "userName": "x".repeat(5000)}),
            ),
        ),
        (
            "unsupported_media_type",
            h.post("/scim/v2/Users", user("x"))
                .header("content-type", "text/plain"),
        ),
    ];
    for (name, req) in cases {
        let r = req.send().await;
        assert!(r.status >= 400, "{name}: {}", r.body);
        let seen = json!({
            "status": r.status,
            "content-type": r.header("content-type"),
            "body": stable(&r.body),
        });
        insta::assert_json_snapshot!(format!("error_{name}"), seen);
    }
}

#[actix_web::test]
async fn rate_limit_and_plugin_failure_bodies() {
    let h = Harness::with_config(|c| {
        c.http.rate_limit.per_token = scimgate_http::Limit {
            requests_per_second: 1,
            burst: 1,
        };
        c.plugins.specs = vec![wat_plugin("trap")];
    });
    let failed = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "p"}),
        )
        .send()
        .await;
    let limited = h.get("/scim/v2/Users").send().await;
    for (name, r) in [("plugin_failed", failed), ("rate_limited", limited)] {
        let seen = json!({
            "status": r.status,
            "content-type": r.header("content-type"),
            "retry-after": r.header("retry-after"),
            "body": stable(&r.body),
        });
        insta::assert_json_snapshot!(format!("error_{name}"), seen);
    }
}
