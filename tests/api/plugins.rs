//! Plugins on the write path of the real app (WAT fixtures from the plugin host's tests).

use std::time::Instant;

use actix_web::http::Method;
use scimgate_plugins::{FailMode, PluginSpec};
use serde_json::json;

use crate::common::*;

fn plugin(name: &str) -> PluginSpec {
    wat_plugin(name)
}

fn with_plugins(specs: Vec<PluginSpec>) -> Harness {
    Harness::with_config(|c| c.plugins.specs = specs)
}

#[actix_web::test]
async fn a_rejection_names_the_plugin_and_stores_nothing() {
    let h = with_plugins(vec![plugin("reject")]);
    let r = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "u"}),
        )
        .send()
        .await;
    r.assert_error(
        422,
        Some("invalidValue"),
        "plugin 'reject' rejected the change: department is required",
    );
    assert_eq!(
        h.get("/scim/v2/Users?count=0").send().await.body["totalResults"],
        0
    );
}

#[actix_web::test]
async fn a_modification_is_validated_and_stored() {
    let h = with_plugins(vec![plugin("modify")]);
    let created = h.create_user("sent-by-idp").await;
    assert_eq!(
        (created["userName"].clone(), created["title"].clone()),
        (json!("from-plugin"), json!("stamped"))
    );
}

#[actix_web::test]
async fn plugins_apply_only_where_configured() {
    let mut groups_only = plugin("reject");
    groups_only.resource_types = vec!["Group".into()];
    let mut other_tenant = plugin("reject");
    other_tenant.tenants = Some(vec!["acme".into()]);
    let mut on_patch = plugin("reject");
    on_patch.hooks = vec![scimgate_plugins::Hook::Patch];
    let h = with_plugins(vec![groups_only, other_tenant, on_patch]);
    let u = h.create_user("passes").await;
    let r = h
        .post(
            "/scim/v2/Groups",
            json!({"schemas": [GROUP_SCHEMA], "displayName": "g"}),
        )
        .send()
        .await;
    assert_eq!(r.status, 422);
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "title", "value": "x"}]});
    let r = h
        .req(Method::PATCH, &format!("/scim/v2/Users/{}", id_of(&u)))
        .json(&patch)
        .send()
        .await;
    assert_eq!(r.status, 422, "runs on patch: {}", r.body);
}

#[actix_web::test]
async fn a_looping_plugin_fails_only_its_request_within_the_deadline() {
    let mut looping = plugin("loop");
    looping.limits.deadline_ms = 40;
    looping.resource_types = vec!["User".into()];
    let h = with_plugins(vec![looping]);
    let started = Instant::now();
    let r = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "u"}),
        )
        .send()
        .await;
    r.assert_error(
        500,
        None,
        "plugin 'loop' failed: ran past its 40 ms deadline",
    );
    assert!(started.elapsed().as_secs() < 5);
    // Other requests are served meanwhile and after.
    assert_eq!(
        h.post(
            "/scim/v2/Groups",
            json!({"schemas": [GROUP_SCHEMA], "displayName": "g"})
        )
        .send()
        .await
        .status,
        201
    );
}

#[actix_web::test]
async fn fail_open_lets_the_write_through() {
    let mut trapping = plugin("trap");
    trapping.on_failure = FailMode::Open;
    let h = with_plugins(vec![trapping, plugin("accept")]);
    assert_eq!(h.create_user("through").await["userName"], "through");
}

#[actix_web::test]
async fn a_bad_plugin_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = scimgate::Config {
        data: dir.path().join("d"),
        plugins: scimgate_plugins::PluginConfig {
            specs: vec![plugin("wasi")],
            ..Default::default()
        },
        ..Default::default()
    };
    let err = scimgate::build_state(&config)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("plugin 'wasi'") && err.contains("wasi_snapshot_preview1"),
        "{err}"
    );
}

#[actix_web::test]
async fn plugins_see_member_only_patches() {
    let mut groups = plugin("reject");
    groups.resource_types = vec!["Group".into()];
    groups.hooks = vec![scimgate_plugins::Hook::Patch];
    let h = with_plugins(vec![groups]);
    let u = h.create_user("m").await;
    let g = h.create_group("g", &[]).await;
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": id_of(&u)}]}]});
    let r = h
        .req(Method::PATCH, &format!("/scim/v2/Groups/{}", id_of(&g)))
        .json(&add)
        .send()
        .await;
    r.assert_error(422, Some("invalidValue"), "plugin 'reject'");
    assert!(
        h.get(&format!("/scim/v2/Groups/{}", id_of(&g)))
            .send()
            .await
            .body
            .get("members")
            .is_none(),
        "nothing stored"
    );
}
