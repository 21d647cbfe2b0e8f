//! Filtering, sorting, paging (index and cursor), projection and `.search` over HTTP.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::common::*;
use crate::uri;

/// The resource types of a ListResponse's resources, in order.
fn kinds(body: &Value) -> Vec<&str> {
    body["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["meta"]["resourceType"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

fn names(body: &Value) -> Vec<String> {
    body["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["userName"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn people(h: &Harness) {
    let rows = [
        ("carol", "Engineering", Some("work"), true),
        ("Alice", "Sales", Some("work"), true),
        ("bob", "Engineering", Some("home"), false),
        ("Émile", "Sales", None, true),
        ("dave", "", Some("work"), false),
    ];
    for (name, dept, email_type, active) in rows {
        let mut emails = json!([{"value": format!("{}@example.com", name.to_lowercase())}]);
        if let Some(t) = email_type {
            emails[0]["type"] = json!(t);
        }
        h.create_user_with(json!({
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "userName": name,
            "active": active,
            "emails": emails,
            ENTERPRISE: {"department": dept},
        }))
        .await;
    }
}

#[actix_web::test]
async fn the_whole_filter_language_over_http() {
    let h = Harness::new();
    people(&h).await;
    let rows: &[(&str, &[&str])] = &[
        (r#"userName sw "A" or userName eq "BOB""#, &["Alice", "bob"]),
        (
            r#"emails[type eq "work" and value co "@EXAMPLE.com"] and not (active eq false)"#,
            &["carol", "Alice"],
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "sales""#,
            &["Alice", "Émile"],
        ),
        (r#"userName eq "émile""#, &["Émile"]),
        (r#"emails.type pr and active eq false"#, &["bob", "dave"]),
        (
            r#"emails[type eq "home"] or userName gt "d""#,
            &["bob", "Émile", "dave"],
        ),
        (
            r#"meta.created gt "2000-01-01T00:00:00Z" and userName ew "E""#,
            &["Alice", "Émile", "dave"],
        ),
        (r#"title pr"#, &[]),
    ];
    for (filter, want) in rows {
        let r = h
            .get(&format!("/scim/v2/Users?filter={}", uri::encode(filter)))
            .send()
            .await;
        assert_eq!(r.status, 200, "{filter}: {}", r.body);
        assert_eq!(names(&r.body), *want, "{filter}");
        assert_eq!(r.body["totalResults"], want.len(), "{filter}");
    }
}

#[actix_web::test]
async fn sorting_is_case_insensitive_with_ties_by_id_and_missing_values_last() {
    let h = Harness::new();
    people(&h).await;
    let r = h.get("/scim/v2/Users?sortBy=userName").send().await;
    assert_eq!(names(&r.body), ["Alice", "bob", "carol", "dave", "Émile"]);
    let r = h
        .get("/scim/v2/Users?sortBy=USERNAME&sortOrder=descending")
        .send()
        .await;
    assert_eq!(names(&r.body), ["Émile", "dave", "carol", "bob", "Alice"]);
    let r = h.get("/scim/v2/Users?sortBy=emails.type").send().await;
    h.get("/scim/v2/Users?sortBy=emails.type")
        .send()
        .await
        .assert_error(400, Some("invalidValue"), "singular");
    assert_eq!(r.status, 400);
    let r = h
        .get(&format!("/scim/v2/Users?sortBy={ENTERPRISE}:department"))
        .send()
        .await;
    let depts: Vec<&str> = r.body["Resources"]
        .as_array()
        .expect("list")
        .iter()
        .map(|u| u[ENTERPRISE]["department"].as_str().unwrap_or("-"))
        .collect();
    // The `""` department is unassigned (`empty_string_is_absent`): last, with missing values.
    assert_eq!(depts, ["Engineering", "Engineering", "Sales", "Sales", "-"]);
    let r = h
        .get("/scim/v2/Users?sortBy=nickName&sortOrder=descending")
        .send()
        .await;
    assert_eq!(
        r.body["itemsPerPage"], 5,
        "all lack nickName; order falls to id"
    );
    h.get("/scim/v2/Users?sortBy=shoeSize")
        .send()
        .await
        .assert_error(400, Some("invalidValue"), "shoeSize");
    h.get("/scim/v2/Users?sortBy=userName&sortOrder=sideways")
        .send()
        .await
        .assert_error(400, Some("invalidValue"), "sideways");
}

#[actix_web::test]
async fn cursor_paging_walks_everything_once() {
    let h = Harness::new();
    people(&h).await;
    let first = h
        .get("/scim/v2/Users?cursor=&count=2&sortBy=userName")
        .send()
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["totalResults"], 5);
    assert!(first.body.get("startIndex").is_none());
    let mut seen = names(&first.body);
    let mut cursor = first.body["nextCursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let r = h
            .get(&format!(
                "/scim/v2/Users?cursor={c}&count=2&sortBy=userName"
            ))
            .send()
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body.get("totalResults").is_none(),
            "later cursor pages skip the count"
        );
        seen.extend(names(&r.body));
        cursor = r.body["nextCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, ["Alice", "bob", "carol", "dave", "Émile"]);

    let c = first.body["nextCursor"].as_str().expect("cursor");
    let r = h
        .get(&format!(
            "/scim/v2/Users?cursor={c}&count=2&sortBy=displayName"
        ))
        .send()
        .await;
    r.assert_error(
        400,
        Some("invalidCursor"),
        "this tenant, resource type, filter, sortBy and sortOrder",
    );
    h.get("/scim/v2/Users?cursor=garbage!&count=2")
        .send()
        .await
        .assert_error(400, Some("invalidCursor"), "garbage");
}

#[actix_web::test]
async fn search_endpoints_take_a_search_request() {
    let h = Harness::new();
    people(&h).await;
    h.create_group("Sales team", &[]).await;
    h.create_user_with(json!({"schemas": [USER_SCHEMA], "userName": "sally", "displayName": "Sally", "active": false})).await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "attributes": ["userName"],
        "filter": "active eq true",
        "sortBy": "userName",
        "sortOrder": "descending",
        "startIndex": 1,
        "count": 2,
    });
    let r = h
        .req(Method::POST, "/scim/v2/Users/.search")
        .json(&body)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 3);
    assert_eq!(names(&r.body), ["Émile", "carol"]);
    assert_eq!(
        r.body["Resources"][0].as_object().map(|o| o.len()),
        Some(3),
        "schemas, id, userName"
    );

    let all = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "displayName sw \"SA\"", "startIndex": 1, "count": 10});
    let r = h
        .req(Method::POST, "/scim/v2/.search")
        .json(&all)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 2);
    assert_eq!(kinds(&r.body), ["User", "Group"]);
    let window = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "startIndex": 5, "count": 2});
    let r = h
        .req(Method::POST, "/scim/v2/.search")
        .json(&window)
        .send()
        .await;
    assert_eq!(
        (
            r.body["totalResults"].clone(),
            r.body["itemsPerPage"].clone()
        ),
        (json!(7), json!(2))
    );
    assert_eq!(kinds(&r.body), ["User", "User"]);
    let tail = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "startIndex": 6, "count": 5});
    let r = h
        .req(Method::POST, "/scim/v2/.search")
        .json(&tail)
        .send()
        .await;
    assert_eq!(kinds(&r.body), ["User", "Group"]);

    let bad =
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filtre": "x"});
    h.req(Method::POST, "/scim/v2/Users/.search")
        .json(&bad)
        .send()
        .await
        .assert_error(400, Some("invalidSyntax"), "filtre");
    let no_schema = json!({"filter": "userName pr"});
    h.req(Method::POST, "/scim/v2/Users/.search")
        .json(&no_schema)
        .send()
        .await
        .assert_error(400, Some("invalidSyntax"), "SearchRequest");
    h.get("/scim/v2/Users/.search")
        .send()
        .await
        .assert_error(405, None, "GET");
}

#[actix_web::test]
async fn projection_applies_to_writes_too() {
    let h = Harness::new();
    let r = h
        .post(
            "/scim/v2/Users?attributes=userName",
            json!({"schemas": [USER_SCHEMA], "userName": "p", "title": "T"}),
        )
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body.as_object().map(|o| o.len()), Some(3), "{}", r.body);
    let path = format!("/scim/v2/Users/{}?excludedAttributes=title", id_of(&r.body));
    let put = h
        .put(
            &path,
            json!({"schemas": [USER_SCHEMA], "userName": "p", "title": "U"}),
        )
        .send()
        .await;
    assert!(put.body.get("title").is_none());
    assert_eq!(put.body["userName"], "p");
}

#[actix_web::test]
async fn idp_filter_dialects() {
    let h = Harness::new();
    people(&h).await;
    // Entra: the sub-attribute after the brackets.
    let f = uri::encode(r#"emails[type eq "work"].value eq "alice@example.com""#);
    let r = h.get(&format!("/scim/v2/Users?filter={f}")).send().await;
    assert_eq!(names(&r.body), ["Alice"], "{}", r.body);
    // Booleans as strings.
    let f = uri::encode(r#"active eq "False""#);
    assert_eq!(
        names(
            &h.get(&format!("/scim/v2/Users?filter={f}"))
                .send()
                .await
                .body
        ),
        ["bob", "dave"]
    );
    // Unquoted values only when configured.
    let f = uri::encode("userName eq bob");
    h.get(&format!("/scim/v2/Users?filter={f}"))
        .send()
        .await
        .assert_error(400, Some("invalidFilter"), "bob");
    let lenient = Harness::with_config(|c| {
        c.http.dialect.dialect_enabled_rules = vec!["unquoted_filter_values".into()]
    });
    lenient.create_user("bob").await;
    assert_eq!(
        names(
            &lenient
                .get(&format!("/scim/v2/Users?filter={f}"))
                .send()
                .await
                .body
        ),
        ["bob"]
    );
    let strict = Harness::with_config(|c| c.http.dialect.dialect_strict = true);
    let f = uri::encode(r#"active eq "False""#);
    strict
        .get(&format!("/scim/v2/Users?filter={f}"))
        .send()
        .await
        .assert_error(400, Some("invalidFilter"), "boolean");
}
