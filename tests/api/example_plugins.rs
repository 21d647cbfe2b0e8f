//! The Rust example plugins (plugins/examples, built by plugins/build.sh) on the real app.

use std::path::PathBuf;

use scimgate_plugins::{FailMode, Limits, PluginSpec};
use serde_json::{Value, json};

use crate::common::*;

pub fn example(name: &str, config: Value) -> PluginSpec {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("plugins/dist/{name}.wasm"));
    assert!(
        file.exists(),
        "{} is missing: run plugins/build.sh (scripts/test does)",
        file.display()
    );
    PluginSpec {
        name: name.into(),
        file,
        hooks: vec![],
        resource_types: vec![],
        tenants: None,
        config,
        limits: Limits::default(),
        on_failure: FailMode::Closed,
        sees_password: false,
        receivers: None,
    }
}

#[actix_web::test]
async fn username_from_email_maps_the_user_name() {
    let h =
        Harness::with_config(|c| c.plugins.specs = vec![example("username-from-email", json!({}))]);
    let u = h
        .create_user_with(json!({"schemas": [USER_SCHEMA], "userName": "E12345",
            "emails": [{"value": "Jane.Doe@Example.com", "type": "work", "primary": true}]}))
        .await;
    assert_eq!(u["userName"], "jane.doe@example.com");
}

#[actix_web::test]
async fn require_department_explains_its_refusal() {
    let h = Harness::with_config(|c| {
        c.plugins.specs = vec![example("require-department", json!({"allowed": ["Sales"]}))]
    });
    let r = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "nodept"}),
        )
        .send()
        .await;
    r.assert_error(
        422,
        Some("invalidValue"),
        "plugin 'require-department' rejected the change",
    );
    let r = h
        .post("/scim/v2/Users", json!({"schemas": [USER_SCHEMA, ENTERPRISE], "userName": "legal", ENTERPRISE: {"department": "Legal"}}))
        .send()
        .await;
    r.assert_error(
        422,
        Some("invalidValue"),
        "department 'Legal' is not one of: Sales",
    );
    h.create_user_with(json!({"schemas": [USER_SCHEMA, ENTERPRISE], "userName": "ok", ENTERPRISE: {"department": "sales"}})).await;
}

#[actix_web::test]
async fn attribute_map_accepts_a_vendor_extension_and_the_chain_runs_in_order() {
    let custom = "urn:acme:custom:1.0:User";
    let body = json!({"schemas": [USER_SCHEMA, custom], "userName": "E7", "firstName": "Ada",
        "emails": [{"value": "Ada@Example.com", "type": "work"}], custom: {"dept": "Sales", "costCenter": "4130"}});
    let plain = Harness::new();
    plain
        .post("/scim/v2/Users", body.clone())
        .send()
        .await
        .assert_error(400, Some("invalidSyntax"), "firstName");

    let map = json!({"map": {"firstName": "name.givenName", format!("{custom}:costCenter"): format!("{ENTERPRISE}:costCenter"),
        format!("{custom}:dept"): format!("{ENTERPRISE}:department")}});
    let h = Harness::with_config(|c| {
        c.plugins.specs = vec![
            example("attribute-map", map),
            example("username-from-email", json!({})),
            example("require-department", json!({"allowed": ["Sales"]})),
        ]
    });
    let u = h.create_user_with(body).await;
    assert_eq!(u["userName"], "ada@example.com");
    assert_eq!(u["name"], json!({"givenName": "Ada"}));
    assert_eq!(
        u[ENTERPRISE],
        json!({"costCenter": "4130", "department": "Sales"})
    );
    assert_eq!(u["schemas"], json!([USER_SCHEMA, ENTERPRISE]));
}

#[actix_web::test]
async fn write_freeze_written_in_wat_refuses_only_its_tenant() {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins/dist/write-freeze.wat");
    let mut freeze = example("username-from-email", json!({}));
    freeze.name = "write-freeze".into();
    freeze.file = file;
    freeze.tenants = Some(vec!["archived".into()]);
    let h = Harness::with_config(|c| c.plugins.specs = vec![freeze]);
    let archived = h.token_for("archived", "scim:read scim:write");
    let r = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "late"}),
        )
        .token(&archived)
        .send()
        .await;
    r.assert_error(
        403,
        None,
        "plugin 'write-freeze' rejected the change: writes are frozen for maintenance",
    );
    h.create_user("other-tenants-write").await;
}
