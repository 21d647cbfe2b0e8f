//! The audit trail: rows for a create, a patch, a delete and a refused write, with the
//! plugins' decisions; `/admin/audit` paging, its scope and its tenant boundary.

use scimgate_plugins::{Hook, PluginSpec};
use serde_json::{Value, json};

use crate::common::*;

#[actix_web::test]
async fn writes_and_refused_writes_are_audited_with_versions_and_plugin_decisions() {
    // `accept` runs on every write; `reject` only on replace, so that a PUT is refused.
    let h = Harness::with_config(|c| {
        c.plugins.specs = vec![
            wat_plugin("accept"),
            PluginSpec {
                hooks: vec![Hook::Replace],
                ..wat_plugin("reject")
            },
        ]
    });
    let created = h.create_user("audited").await;
    let id = id_of(&created);
    let path = format!("/scim/v2/Users/{id}");
    let patched = h
        .req(actix_web::http::Method::PATCH, &path)
        .json(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "displayName", "value": "A"}]}),
        )
        .send()
        .await;
    assert_eq!(patched.status, 200);
    let refused = h
        .put(
            &path,
            json!({"schemas": [USER_SCHEMA], "userName": "audited"}),
        )
        .send()
        .await;
    assert_eq!(refused.status, 422);
    assert_eq!(h.delete(&path).send().await.status, 204);
    let duplicate = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "dup"}),
        )
        .send()
        .await;
    assert_eq!(duplicate.status, 201);
    let dup2 = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "DUP"}),
        )
        .send()
        .await;
    assert_eq!(dup2.status, 409);
    // Reads are not audited.
    h.get(&format!("/scim/v2/Users/{}", id_of(&duplicate.body)))
        .send()
        .await;

    let admin = h.token_for("default", "scim:admin");
    let rows = audit_rows(&h, &admin, 6).await;
    assert_eq!(rows.len(), 6, "{rows:#?}");
    let summary: Vec<(String, u64, Value, Value)> = rows
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_u64().unwrap_or_default(),
                r["versionBefore"].clone(),
                r["versionAfter"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("POST".into(), 201, Value::Null, json!(1)),
            ("PATCH".into(), 200, json!(1), json!(2)),
            ("PUT".into(), 422, json!(2), Value::Null),
            ("DELETE".into(), 204, json!(2), Value::Null),
            ("POST".into(), 201, Value::Null, json!(1)),
            ("POST".into(), 409, Value::Null, Value::Null),
        ]
    );
    for r in &rows[..4] {
        assert_eq!(r["resourceId"], json!(id));
        assert_eq!(r["resourceType"], "User");
        assert_eq!(r["tenant"], "default");
        assert_eq!(r["subject"], "test");
        assert!(r["jti"].as_str().is_some_and(|j| !j.is_empty()));
    }
    let plugins = |r: &Value| -> Value {
        serde_json::from_str(r["plugins"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
    };
    assert_eq!(
        plugins(&rows[0]),
        json!([{"plugin": "accept", "decision": "accept"}])
    );
    assert_eq!(
        plugins(&rows[2]),
        json!([{"plugin": "accept", "decision": "accept"},
               {"plugin": "reject", "decision": "reject", "detail": "department is required"}])
    );
    assert!(
        rows[2]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("plugin 'reject' rejected")
    );
    assert_eq!(plugins(&rows[3]), Value::Null, "a delete runs no plugins");
    assert!(
        rows[5]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("already taken")
    );
}

#[actix_web::test]
async fn the_audit_api_needs_admin_pages_and_keeps_tenants_apart() {
    let h = Harness::new();
    let acme = h.token_for("acme", "scim:read scim:write");
    for n in 0..5 {
        h.post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": format!("d{n}")}),
        )
        .send()
        .await;
    }
    h.post(
        "/scim/v2/Users",
        json!({"schemas": [USER_SCHEMA], "userName": "acme-only"}),
    )
    .token(&acme)
    .send()
    .await;
    let admin = h.token_for("default", "scim:admin");
    let all = audit_rows(&h, &admin, 5).await;
    assert_eq!(all.len(), 5, "the default tenant's rows only");
    assert!(!all.iter().any(|r| r["tenant"] != "default"));
    let page = h.get("/admin/audit?count=2").token(&admin).send().await;
    assert_eq!(page.body["entries"].as_array().map(Vec::len), Some(2));
    let cursor = page.body["nextCursor"].as_str().expect("cursor").to_owned();
    assert!(
        page.body["entries"][0].get("seq").is_none(),
        "the global sequence stays inside"
    );
    let rest = h
        .get(&format!("/admin/audit?count=10&cursor={cursor}"))
        .token(&admin)
        .send()
        .await;
    assert_eq!(rest.body["entries"].as_array().map(Vec::len), Some(3));
    assert_eq!(rest.body["nextCursor"], Value::Null);
    let acme_admin = h.token_for("acme", "scim:admin");
    let acme_rows = audit_rows(&h, &acme_admin, 1).await;
    assert_eq!(acme_rows.len(), 1);
    assert_eq!(acme_rows[0]["tenant"], "acme");
    h.get("/admin/audit?domain=default")
        .token(&acme_admin)
        .send()
        .await
        .assert_error(403, None, "may not act for the tenant 'default'");
    h.get("/admin/audit")
        .send()
        .await
        .assert_error(403, None, "scim:admin");
    h.get("/admin/audit")
        .no_token()
        .send()
        .await
        .assert_error(401, None, "Bearer");
    let later = h
        .get("/admin/audit?since=2999-01-01T00:00:00%2B01:00")
        .token(&admin)
        .send()
        .await;
    assert_eq!(later.body["entries"], json!([]));
    let earlier = h
        .get("/admin/audit?since=2000-01-01T00:00:00Z")
        .token(&admin)
        .send()
        .await;
    assert_eq!(earlier.body["entries"].as_array().map(Vec::len), Some(5));
    h.get("/admin/audit?since=yesterday")
        .token(&admin)
        .send()
        .await
        .assert_error(400, Some("invalidValue"), "RFC 3339");
}

/// A write's row records the status its client got: a group PATCH answered 204 (no body
/// asked for) is audited 204, the same PATCH asked to show the group 200.
#[actix_web::test]
async fn a_group_patch_is_audited_with_the_status_it_was_answered() {
    let h = Harness::new();
    let member = h.create_user("member").await;
    let group = h
        .post(
            "/scim/v2/Groups",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g"}),
        )
        .send()
        .await;
    assert_eq!(group.status, 201);
    let path = format!("/scim/v2/Groups/{}", id_of(&group.body));
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{"op": "add", "path": "members", "value": [{"value": id_of(&member)}]}]});
    let quiet = h
        .req(actix_web::http::Method::PATCH, &path)
        .json(&add)
        .send()
        .await;
    assert_eq!(quiet.status, 204);
    let shown = h
        .req(
            actix_web::http::Method::PATCH,
            &format!("{path}?attributes=displayName"),
        )
        .json(&add)
        .send()
        .await;
    assert_eq!(shown.status, 200);
    let admin = h.token_for("default", "scim:admin");
    let rows = audit_rows(&h, &admin, 4).await;
    let patches: Vec<u64> = rows
        .iter()
        .filter(|r| r["method"] == "PATCH")
        .map(|r| r["status"].as_u64().unwrap_or_default())
        .collect();
    assert_eq!(patches, [204, 200], "{rows:#?}");
}
