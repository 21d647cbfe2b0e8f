//! PATCH over HTTP: atomicity, preconditions, responses, membership changes.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::common::*;

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn ops(list: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": list})
}

#[actix_web::test]
async fn a_failing_operation_leaves_the_resource_and_its_version_untouched() {
    let h = Harness::new();
    let u = h
        .create_user_with(json!({"schemas": [USER_SCHEMA], "userName": "atom", "title": "Before"}))
        .await;
    let path = format!("/scim/v2/Users/{}", id_of(&u));
    let rows = [
        (
            json!([{"op": "replace", "path": "title", "value": "After"}, {"op": "replace", "path": "shoeSize", "value": 4}]),
            400,
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "After"}, {"op": "remove", "path": "userName"}]),
            400,
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "After"}, {"op": "replace", "path": "active", "value": "maybe"}]),
            400,
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "After"}, {"op": "replace", "path": "meta.created", "value": "x"}]),
            400,
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "After"}, {"op": "remove", "path": "emails[type eq \"x\"]"}]),
            400,
            "noTarget",
        ),
    ];
    for (list, status, scim_type) in rows {
        let r = h
            .req(Method::PATCH, &path)
            .json(&ops(list.clone()))
            .send()
            .await;
        assert_eq!(
            (r.status, r.body["scimType"].as_str()),
            (status, Some(scim_type)),
            "{list}: {}",
            r.body
        );
        assert_eq!(h.get(&path).send().await.body, u, "{list}: nothing changed");
    }
}

#[actix_web::test]
async fn patch_answers_the_user_and_honours_if_match() {
    let h = Harness::new();
    let u = h.create_user("pm").await;
    let path = format!("/scim/v2/Users/{}", id_of(&u));
    let body = ops(json!([{"op": "add", "path": "nickName", "value": "P"}]));
    h.req(Method::PATCH, &path)
        .json(&body)
        .header("if-match", "W/\"9\"")
        .send()
        .await
        .assert_error(412, None, "W/\"1\"");
    let r = h
        .req(Method::PATCH, &format!("{path}?attributes=nickName"))
        .json(&body)
        .header("if-match", "W/\"1\"")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["nickName"], "P");
    assert!(r.body.get("userName").is_none(), "projection applies");
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    h.req(Method::PATCH, "/scim/v2/Users/nope")
        .json(&body)
        .send()
        .await
        .assert_error(404, None, "nope");
    let bad = json!({"schemas": ["urn:wrong"], "Operations": []});
    h.req(Method::PATCH, &path)
        .json(&bad)
        .send()
        .await
        .assert_error(400, Some("invalidSyntax"), "PatchOp");
    let no_ops = json!({"schemas": [PATCH_OP]});
    h.req(Method::PATCH, &path)
        .json(&no_ops)
        .send()
        .await
        .assert_error(400, Some("invalidSyntax"), "Operations");
}

#[actix_web::test]
async fn group_patches_answer_204_unless_asked_and_touch_only_named_members() {
    let h = Harness::new();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(id_of(&h.create_user(&format!("m{i}")).await));
    }
    let g = h.create_group("team", &[&ids[0], &ids[1]]).await;
    let path = format!("/scim/v2/Groups/{}", id_of(&g));
    let add = ops(
        json!([{"op": "add", "path": "members", "value": [{"value": ids[2]}, {"value": ids[3]}]}]),
    );
    let r = h.req(Method::PATCH, &path).json(&add).send().await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    let remove =
        ops(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])}]));
    let r = h
        .req(Method::PATCH, &format!("{path}?excludedAttributes=meta"))
        .json(&remove)
        .send()
        .await;
    assert_eq!(r.status, 200, "asked for a representation");
    let mut members: Vec<String> = r.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str().map(str::to_owned))
        .collect();
    members.sort();
    let mut want = ids[1..].to_vec();
    want.sort();
    assert_eq!(members, want);
    let empty = ops(json!([{"op": "replace", "path": "members", "value": []}]));
    assert_eq!(
        h.req(Method::PATCH, &path).json(&empty).send().await.status,
        204
    );
    assert!(h.get(&path).send().await.body.get("members").is_none());
}

#[actix_web::test]
async fn unknown_members_are_skipped_by_default_and_refused_when_strict() {
    let h = Harness::new();
    let u = h.create_user("real").await;
    let g = h.create_group("g", &[]).await;
    let path = format!("/scim/v2/Groups/{}", id_of(&g));
    let add = ops(
        json!([{"op": "add", "path": "members", "value": [{"value": "ghost"}, {"value": id_of(&u)}]}]),
    );
    assert_eq!(
        h.req(Method::PATCH, &path).json(&add).send().await.status,
        204
    );
    let members = h.get(&path).send().await.body["members"].clone();
    assert_eq!(
        members.as_array().map(Vec::len),
        Some(1),
        "the real one was added: {members}"
    );
    // The skipped id is on record in the audit trail.
    let admin = h.token_for("default", "scim:admin");
    let rows = audit_rows(&h, &admin, 3).await;
    let detail = rows
        .iter()
        .find(|r| r["method"] == "PATCH")
        .and_then(|r| r["detail"].as_str())
        .unwrap_or_default();
    assert!(detail.contains("skipped: ghost"), "{detail}");

    let strict = Harness::with_config(|c| c.http.dialect.dialect_strict = true);
    let g = strict.create_group("g", &[]).await;
    let path = format!("/scim/v2/Groups/{}", id_of(&g));
    let r = strict
        .req(Method::PATCH, &path)
        .json(&ops(
            json!([{"op": "add", "path": "members", "value": [{"value": "ghost"}]}]),
        ))
        .send()
        .await;
    r.assert_error(400, Some("invalidValue"), "ghost");
    let r = strict
        .req(Method::PATCH, &path)
        .json(&ops(json!([{"op": "Add", "path": "members", "value": []}])))
        .send()
        .await;
    r.assert_error(400, Some("invalidSyntax"), "unknown op 'Add'");
}

#[actix_web::test]
async fn single_disabled_rules_take_effect() {
    let h = Harness::with_config(|c| {
        c.http.dialect.dialect_disabled_rules = vec!["string_booleans".into()]
    });
    let u = h.create_user("flags").await;
    let path = format!("/scim/v2/Users/{}", id_of(&u));
    let r = h
        .req(Method::PATCH, &path)
        .json(&ops(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        ))
        .send()
        .await;
    r.assert_error(400, Some("invalidValue"), "'active' must be a boolean");
    let r = h
        .req(Method::PATCH, &path)
        .json(&ops(
            json!([{"op": "Replace", "path": "active", "value": false}]),
        ))
        .send()
        .await;
    assert_eq!(r.status, 200, "op_names is still on");
}

#[actix_web::test]
async fn creates_and_replaces_go_through_the_dialect_too() {
    let h = Harness::new();
    let u = h
        .create_user_with(json!({
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "userName": "dialect",
            "active": "True",
            "emails": {"value": "one@x", "primary": "true"},
            ENTERPRISE: {"manager": "boss-id"},
        }))
        .await;
    assert_eq!(u["active"], true);
    assert_eq!(u["emails"], json!([{"value": "one@x", "primary": true}]));
    assert_eq!(u[ENTERPRISE]["manager"], json!({"value": "boss-id"}));
    let path = format!("/scim/v2/Users/{}", id_of(&u));
    let r = h
        .put(
            &path,
            json!({"schemas": [USER_SCHEMA], "userName": "dialect", "emails": null}),
        )
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("emails").is_none(), "JumpCloud: null clears");
    let _: Value = r.body;
}

#[actix_web::test]
async fn dialect_rules_can_differ_per_tenant() {
    let h = Harness::with_config(|c| {
        c.tenants.insert(
            "acme".into(),
            scimgate::config::TenantConfig {
                dialect_strict: Some(true),
                ..Default::default()
            },
        );
    });
    let acme = h.token_for("acme", "scim:read scim:write");
    let body = ops(json!([{"op": "Replace", "path": "title", "value": "T"}]));
    let u = h.create_user("lenient-tenant").await;
    let r = h
        .req(Method::PATCH, &format!("/scim/v2/Users/{}", id_of(&u)))
        .json(&body)
        .send()
        .await;
    assert_eq!(r.status, 200, "the default tenant keeps the dialect");
    let a = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "strict-tenant"}),
        )
        .token(&acme)
        .send()
        .await;
    let r = h
        .req(Method::PATCH, &format!("/scim/v2/Users/{}", id_of(&a.body)))
        .json(&body)
        .token(&acme)
        .send()
        .await;
    r.assert_error(400, Some("invalidSyntax"), "unknown op 'Replace'");
}
