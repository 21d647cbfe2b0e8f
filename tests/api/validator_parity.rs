//! What Microsoft's SCIM validator (Entra ID's gallery checks) and Okta's SCIM 2.0 spec
//! tests check, one test per check, on the real app.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::common::*;

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

async fn patch(h: &Harness, id: &str, operations: Value) -> Resp {
    h.req(Method::PATCH, &format!("/scim/v2/Users/{id}"))
        .json(&json!({"schemas": [PATCH_OP], "Operations": operations}))
        .send()
        .await
}

async fn user_with_title(h: &Harness, name: &str) -> String {
    let created = h
        .create_user_with(json!({"schemas": [USER_SCHEMA], "userName": name, "title": "Engineer",
                                 "nickName": "nick", "name": {"givenName": "G", "familyName": "F"}}))
        .await;
    created["id"].as_str().expect("id").to_owned()
}

#[actix_web::test]
async fn microsoft_validator_empty_string_and_null_clear_a_value_on_put_and_patch() {
    let h = Harness::new();
    // PATCH with a path: "" and null.
    for (case, value) in [("empty string", json!("")), ("null", Value::Null)] {
        let id = user_with_title(&h, &format!("clear-path-{}", case.len())).await;
        let r = patch(
            &h,
            &id,
            json!([{"op": "replace", "path": "title", "value": value}]),
        )
        .await;
        assert_eq!(r.status, 200, "{case}: {}", r.body);
        assert!(r.body.get("title").is_none(), "{case}: {}", r.body);
        let stored = h.get(&format!("/scim/v2/Users/{id}")).send().await;
        assert!(
            stored.body.get("title").is_none(),
            "{case}: stored {}",
            stored.body
        );
    }
    // PATCH without a path, a sub-attribute among them.
    let id = user_with_title(&h, "clear-nopath").await;
    let r = patch(
        &h,
        &id,
        json!([{"op": "replace", "value": {"title": "", "nickName": null, "name.givenName": ""}}]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for gone in ["title", "nickName"] {
        assert!(r.body.get(gone).is_none(), "{gone}: {}", r.body);
    }
    assert!(r.body["name"].get("givenName").is_none(), "{}", r.body);
    assert_eq!(r.body["name"]["familyName"], "F");
    // PUT: "" and null both leave the attribute unassigned.
    let id = user_with_title(&h, "clear-put").await;
    let r = h
        .put(
            &format!("/scim/v2/Users/{id}"),
            json!({"schemas": [USER_SCHEMA], "userName": "clear-put", "title": "", "nickName": null}),
        )
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.get("title").is_none() && r.body.get("nickName").is_none(),
        "{}",
        r.body
    );
    // A required attribute is not cleared: it is missing, and said so.
    let r = h
        .put(
            &format!("/scim/v2/Users/{id}"),
            json!({"schemas": [USER_SCHEMA], "userName": ""}),
        )
        .send()
        .await;
    r.assert_error(400, Some("invalidValue"), "'userName' is required");
}

#[actix_web::test]
async fn microsoft_validator_patch_with_no_operations_is_a_no_op() {
    let h = Harness::new();
    let id = user_with_title(&h, "no-op").await;
    let before = h.get(&format!("/scim/v2/Users/{id}")).send().await;
    let r = patch(&h, &id, json!([])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["meta"]["version"], before.body["meta"]["version"],
        "nothing changed"
    );
    assert_eq!(r.body["title"], "Engineer");
}

#[actix_web::test]
async fn microsoft_validator_manager_as_a_bare_string() {
    let h = Harness::new();
    let boss = h.create_user("boss").await;
    let boss_id = boss["id"].as_str().expect("id");
    let created = h
        .create_user_with(
            json!({"schemas": [USER_SCHEMA, ENTERPRISE], "userName": "report",
                                 ENTERPRISE: {"manager": boss_id}}),
        )
        .await;
    assert_eq!(created[ENTERPRISE]["manager"]["value"], boss_id);
    let id = created["id"].as_str().expect("id");
    let r = patch(
        &h,
        id,
        json!([{"op": "replace", "path": "manager", "value": boss_id}]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[ENTERPRISE]["manager"]["value"], boss_id);
}

#[actix_web::test]
async fn microsoft_validator_disable_then_filter_by_username_shows_active_false() {
    let h = Harness::new();
    let id = user_with_title(&h, "Disabled.User@contoso.com").await;
    let r = patch(
        &h,
        &id,
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let found = h
        .get("/scim/v2/Users?filter=userName%20eq%20%22disabled.user%40contoso.com%22&aadOptscim062020")
        .send()
        .await;
    assert_eq!(
        found.status, 200,
        "the aadOptscim062020 flag is tolerated: {}",
        found.body
    );
    assert_eq!(found.body["totalResults"], 1);
    assert_eq!(found.body["Resources"][0]["active"], false);
}

#[actix_web::test]
async fn microsoft_validator_pagination_echoes_start_index() {
    let h = Harness::new();
    for i in 0..3 {
        h.create_user(&format!("page{i}")).await;
    }
    let r = h.get("/scim/v2/Users?startIndex=2&count=1").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body["startIndex"].clone(), r.body["itemsPerPage"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(r.body["totalResults"], 3);
}

#[actix_web::test]
async fn every_response_is_scim_json_errors_included() {
    let h = Harness::new();
    for r in [
        h.get("/scim/v2/Users").send().await,
        h.get("/scim/v2/Users/nope").send().await,
        h.get("/scim/v2/Users").no_token().send().await,
        h.get("/scim/v2/Nowhere").send().await,
        h.get("/scim/v2/Users?filter=bad%20filter").send().await,
        h.req(Method::DELETE, "/scim/v2/ServiceProviderConfig")
            .send()
            .await,
    ] {
        assert_eq!(
            r.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap_or_default()),
            Some("application/scim+json"),
            "{} {}",
            r.status,
            r.body
        );
    }
}

#[actix_web::test]
async fn okta_count_one_start_index_one_shape() {
    let h = Harness::new();
    h.create_user("okta-shape").await;
    let r = h.get("/scim/v2/Users?count=1&startIndex=1").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(r.body["Resources"].as_array().map(Vec::len), Some(1));
    for key in ["totalResults", "itemsPerPage", "startIndex"] {
        assert!(r.body[key].is_u64(), "{key}: {}", r.body);
    }
}

#[actix_web::test]
async fn okta_filter_on_a_random_username_finds_none() {
    let h = Harness::new();
    let r = h
        .get("/scim/v2/Users?filter=userName%20eq%20%22nobody-3f9c1e@example.com%22")
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["totalResults"], 0);
}

#[actix_web::test]
async fn okta_bogus_id_is_404_with_the_error_schema_and_a_detail() {
    let h = Harness::new();
    let r = h.get("/scim/v2/Users/010101001010101").send().await;
    r.assert_error(404, None, "010101001010101");
    assert_eq!(
        r.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
}

#[actix_web::test]
async fn okta_post_echoes_values_a_second_post_is_409_and_upper_case_finds_it() {
    let h = Harness::new();
    let body = json!({"schemas": [USER_SCHEMA], "userName": "Okta.Test@example.com", "active": true,
                      "name": {"givenName": "Okta", "familyName": "Test"},
                      "emails": [{"value": "okta.test@example.com", "type": "work", "primary": true}]});
    let r = h.post("/scim/v2/Users", body.clone()).send().await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["userName"], "Okta.Test@example.com");
    assert_eq!(r.body["name"]["givenName"], "Okta");
    assert_eq!(r.body["emails"][0]["value"], "okta.test@example.com");
    h.post("/scim/v2/Users", body)
        .send()
        .await
        .assert_error(409, Some("uniqueness"), "userName");
    let found = h
        .get("/scim/v2/Users?filter=userName%20eq%20%22OKTA.TEST%40EXAMPLE.COM%22")
        .send()
        .await;
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);
}

/// Every attribute the Microsoft validator (and Entra's default mappings) map is
/// discoverable in `/Schemas`, with its sub-attributes.
#[actix_web::test]
async fn microsoft_validator_schema_discoverability() {
    let h = Harness::new();
    let r = h.get("/scim/v2/Schemas").send().await;
    assert_eq!(r.status, 200);
    let schemas = r.body["Resources"].as_array().expect("schemas").clone();
    let find = |urn: &str, path: &str| -> bool {
        let Some(schema) = schemas.iter().find(|s| s["id"] == urn) else {
            return false;
        };
        let mut attrs = schema["attributes"].as_array().cloned().unwrap_or_default();
        let mut found = None;
        for part in path.split('.') {
            found = attrs
                .iter()
                .find(|a| {
                    a["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(part))
                })
                .cloned();
            match &found {
                Some(a) => attrs = a["subAttributes"].as_array().cloned().unwrap_or_default(),
                None => return false,
            }
        }
        found.is_some()
    };
    let user = "urn:ietf:params:scim:schemas:core:2.0:User";
    for path in [
        "userName",
        "active",
        "displayName",
        "title",
        "preferredLanguage",
        "name.givenName",
        "name.familyName",
        "name.formatted",
        "nickName",
        "userType",
        "emails.value",
        "emails.type",
        "emails.primary",
        "phoneNumbers.value",
        "phoneNumbers.type",
        "addresses.streetAddress",
        "addresses.locality",
        "addresses.region",
        "addresses.postalCode",
        "addresses.country",
        "addresses.type",
        "roles.value",
        "roles.primary",
        "roles.display",
        "roles.type",
    ] {
        assert!(find(user, path), "{user}:{path} is not in /Schemas");
    }
    for path in [
        "employeeNumber",
        "department",
        "costCenter",
        "organization",
        "division",
        "manager.value",
    ] {
        assert!(
            find(ENTERPRISE, path),
            "{ENTERPRISE}:{path} is not in /Schemas"
        );
    }
    let group = "urn:ietf:params:scim:schemas:core:2.0:Group";
    for path in ["displayName", "members.value", "members.display"] {
        assert!(find(group, path), "{group}:{path} is not in /Schemas");
    }
}
