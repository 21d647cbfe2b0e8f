use actix_web::http::Method;
use serde_json::json;

use crate::common::*;

#[actix_web::test]
async fn unknown_attributes_are_named() {
    let h = Harness::new();
    let r = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "x", "shoeSize": 44}),
        )
        .send()
        .await;
    r.assert_error(400, Some("invalidSyntax"), "'shoeSize'");
    let r = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "x", "name": {"nick": "x"}}),
        )
        .send()
        .await;
    r.assert_error(400, Some("invalidSyntax"), "'name.nick'");
}

#[actix_web::test]
async fn type_and_required_errors_are_invalid_value() {
    let h = Harness::new();
    let rows = [
        (
            json!({"schemas": [USER_SCHEMA], "userName": "x", "active": "yes"}),
            "'active' must be a boolean",
        ),
        (json!({"schemas": [USER_SCHEMA]}), "'userName' is required"),
        (
            json!({"schemas": [USER_SCHEMA], "userName": 5}),
            "'userName' must be a string",
        ),
        (
            json!({"schemas": [USER_SCHEMA], "userName": "x", "emails": "a@b"}),
            "'emails' is multi-valued",
        ),
    ];
    for (body, needle) in rows {
        h.post("/scim/v2/Users", body)
            .send()
            .await
            .assert_error(400, Some("invalidValue"), needle);
    }
    h.post("/scim/v2/Groups", json!({"schemas": [GROUP_SCHEMA]}))
        .send()
        .await
        .assert_error(400, Some("invalidValue"), "displayName");
    h.post("/scim/v2/Users", json!({"userName": "x"}))
        .send()
        .await
        .assert_error(400, Some("invalidSyntax"), "schemas");
}

#[actix_web::test]
async fn malformed_json_is_invalid_syntax_with_position() {
    let h = Harness::new();
    let r = h
        .req(Method::POST, "/scim/v2/Users")
        .raw(Some("application/scim+json"), "{\"userName\": ")
        .send()
        .await;
    r.assert_error(400, Some("invalidSyntax"), "line 1 column");
    let r = h
        .req(Method::POST, "/scim/v2/Users")
        .raw(Some("application/json"), "")
        .send()
        .await;
    r.assert_error(400, Some("invalidSyntax"), "empty");
    let r = h
        .req(Method::POST, "/scim/v2/Users")
        .raw(Some("application/json"), "[1,2]")
        .send()
        .await;
    r.assert_error(400, Some("invalidSyntax"), "JSON object");
}

#[actix_web::test]
async fn content_types_other_than_json_are_415() {
    let h = Harness::new();
    let body = json!({"schemas": [USER_SCHEMA], "userName": "x"}).to_string();
    let r = h
        .req(Method::POST, "/scim/v2/Users")
        .raw(Some("text/plain"), body.clone())
        .send()
        .await;
    r.assert_error(415, None, "text/plain");
    let r = h
        .req(Method::POST, "/scim/v2/Users")
        .raw(None, body.clone())
        .send()
        .await;
    r.assert_error(415, None, "Content-Type is missing");
    let ok = h
        .req(Method::POST, "/scim/v2/Users")
        .raw(Some("application/json; charset=utf-8"), body)
        .send()
        .await;
    assert_eq!(ok.status, 201);
}

#[actix_web::test]
async fn bodies_over_the_limit_are_413() {
    let h = Harness::with_config(|c| c.http.max_body_bytes = 200);
    let big = json!({"schemas": [USER_SCHEMA], "userName": "x", "title": "t".repeat(300)});
    h.post("/scim/v2/Users", big)
        .send()
        .await
        .assert_error(413, None, "200 bytes");
    let small = json!({"schemas": [USER_SCHEMA], "userName": "x"});
    assert_eq!(h.post("/scim/v2/Users", small).send().await.status, 201);
}

#[actix_web::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let h = Harness::new();
    h.get("/scim/v2/Widgets")
        .send()
        .await
        .assert_error(404, None, "/scim/v2/Widgets");
    h.get("/nowhere")
        .no_token()
        .send()
        .await
        .assert_error(404, None, "/nowhere");
    let r = h.req(Method::DELETE, "/scim/v2/Users").send().await;
    r.assert_error(405, None, "DELETE");
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    let r = h
        .req(Method::POST, "/scim/v2/ServiceProviderConfig")
        .json(&json!({}))
        .send()
        .await;
    r.assert_error(405, None, "POST");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[actix_web::test]
async fn a_rejected_replace_changes_nothing() {
    let h = Harness::new();
    let u = h
        .create_user_with(json!({"schemas": [USER_SCHEMA], "userName": "keep", "title": "Boss"}))
        .await;
    let path = format!("/scim/v2/Users/{}", id_of(&u));
    let r = h
        .put(
            &path,
            json!({"schemas": [USER_SCHEMA], "userName": "keep", "title": 5}),
        )
        .send()
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(h.get(&path).send().await.body, u);
}

#[actix_web::test]
async fn hostile_bodies_never_get_a_5xx() {
    let h = Harness::new();
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let bodies = [
        deep,
        "\u{0}".to_owned(),
        "{\"schemas\": [\"urn:ietf:params:scim:schemas:core:2.0:User\"], \"userName\": \"\\ud800\"}".to_owned(),
        "{\"schemas\": 7, \"userName\": \"x\"}".to_owned(),
        "{\"schemas\": [null], \"userName\": \"x\"}".to_owned(),
        json!({"schemas": [USER_SCHEMA], "userName": "x", "emails": [{"value": {"deep": [1]}}]}).to_string(),
        json!({"schemas": [USER_SCHEMA], "userName": "x", ENTERPRISE: "flat"}).to_string(),
        json!({"schemas": [USER_SCHEMA], "userName": "x", "x509Certificates": [{"value": "!!"}]}).to_string(),
    ];
    for body in bodies {
        for path in ["/scim/v2/Users", "/scim/v2/Groups"] {
            let r = h
                .req(Method::POST, path)
                .raw(Some("application/scim+json"), body.clone())
                .send()
                .await;
            assert!(
                (400..500).contains(&r.status),
                "{path} {body:.60}: {} {}",
                r.status,
                r.body
            );
        }
    }
    let r = h.get("/scim/v2/Users?filter=%22%22%22%22").send().await;
    assert!((400..500).contains(&r.status));
}
