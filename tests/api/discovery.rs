use serde_json::{Value, json};

use crate::common::*;

#[actix_web::test]
async fn service_provider_config_tells_the_truth() {
    let h = Harness::with_config(|c| c.http.max_results = 250);
    let r = h.get("/scim/v2/ServiceProviderConfig").send().await;
    assert_eq!(r.status, 200);
    let b = &r.body;
    assert_eq!(
        b["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"])
    );
    assert_eq!(b["patch"]["supported"], true);
    assert_eq!(
        b["bulk"],
        json!({"supported": true, "maxOperations": 1000, "maxPayloadSize": 4_194_304})
    );
    assert_eq!(b["sort"]["supported"], true);
    assert_eq!(
        b["pagination"],
        json!({"cursor": true, "index": true, "defaultPaginationMethod": "index", "defaultPageSize": 250, "maxPageSize": 250})
    );
    assert_eq!(b["etag"]["supported"], true);
    assert_eq!(b["filter"], json!({"supported": true, "maxResults": 250}));
    assert_eq!(b["authenticationSchemes"][0]["type"], "oauthbearertoken");
    assert_eq!(
        b["meta"]["location"],
        "http://localhost:8080/scim/v2/ServiceProviderConfig"
    );
}

#[actix_web::test]
async fn resource_types_list_users_groups_and_the_enterprise_extension() {
    let h = Harness::new();
    let r = h.get("/scim/v2/ResourceTypes").send().await;
    assert_eq!(r.body["totalResults"], 2);
    let user = h.get("/scim/v2/ResourceTypes/User").send().await;
    assert_eq!(user.body["endpoint"], "/Users");
    assert_eq!(user.body["schema"], USER_SCHEMA);
    assert_eq!(
        user.body["schemaExtensions"],
        json!([{"schema": ENTERPRISE, "required": false}])
    );
    let group = h.get("/scim/v2/ResourceTypes/Group").send().await;
    assert_eq!(group.body["schemaExtensions"], json!([]));
    h.get("/scim/v2/ResourceTypes/Printer")
        .send()
        .await
        .assert_error(404, None, "Printer");
}

fn names(schema: &Value) -> Vec<String> {
    schema["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .filter_map(|a| a["name"].as_str().map(str::to_owned))
        .collect()
}

#[actix_web::test]
async fn schemas_carry_every_rfc_7643_attribute() {
    let h = Harness::new();
    let all = h.get("/scim/v2/Schemas").send().await;
    assert_eq!(all.body["totalResults"], 3);
    let user = h
        .get(&format!("/scim/v2/Schemas/{USER_SCHEMA}"))
        .send()
        .await
        .body;
    assert_eq!(
        names(&user),
        [
            "userName",
            "name",
            "displayName",
            "nickName",
            "profileUrl",
            "title",
            "userType",
            "preferredLanguage",
            "locale",
            "timezone",
            "active",
            "password",
            "emails",
            "phoneNumbers",
            "ims",
            "photos",
            "addresses",
            "groups",
            "entitlements",
            "roles",
            "x509Certificates"
        ]
    );
    let attr = |name: &str| {
        user["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name))
            .cloned()
            .expect(name)
    };
    let user_name = attr("userName");
    assert_eq!(
        (
            user_name["required"].clone(),
            user_name["uniqueness"].clone(),
            user_name["caseExact"].clone()
        ),
        (json!(true), json!("server"), json!(false))
    );
    let password = attr("password");
    assert_eq!(
        (password["mutability"].clone(), password["returned"].clone()),
        (json!("writeOnly"), json!("never"))
    );
    assert_eq!(attr("groups")["mutability"], "readOnly");
    assert_eq!(
        attr("x509Certificates")["subAttributes"][0]["type"],
        "binary"
    );
    let enterprise = h
        .get(&format!("/scim/v2/Schemas/{ENTERPRISE}"))
        .send()
        .await
        .body;
    assert_eq!(
        names(&enterprise),
        [
            "employeeNumber",
            "costCenter",
            "organization",
            "division",
            "department",
            "manager"
        ]
    );
    let group = h
        .get(&format!("/scim/v2/Schemas/{}", GROUP_SCHEMA.to_uppercase()))
        .send()
        .await
        .body;
    assert_eq!(names(&group), ["displayName", "members"]);
    assert_eq!(
        group["meta"]["location"],
        format!("http://localhost:8080/scim/v2/Schemas/{GROUP_SCHEMA}")
    );
    h.get("/scim/v2/Schemas/urn:nope")
        .send()
        .await
        .assert_error(404, None, "urn:nope");
}
