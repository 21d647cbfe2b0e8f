//! `POST /Bulk` (RFC 7644 §3.7) on the real app: bulkId references in members, in
//! `manager.value` and in paths, resolved in dependency order; circular references;
//! `failOnErrors`; `version`; the limits and their 413s; tenants, scopes, plugins, the
//! audit trail and the change feed per operation.

use scimgate_plugins::{Hook, PluginSpec};
use serde_json::{Value, json};

use crate::common::*;

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

fn request(ops: Value) -> Value {
    json!({"schemas": [BULK_REQUEST], "Operations": ops})
}

fn post_user(bulk_id: &str, name: &str) -> Value {
    json!({"method": "POST", "path": "/Users", "bulkId": bulk_id,
           "data": {"schemas": [USER_SCHEMA], "userName": name}})
}

fn post_group(bulk_id: &str, name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    json!({"method": "POST", "path": "/Groups", "bulkId": bulk_id,
           "data": {"schemas": [GROUP_SCHEMA], "displayName": name, "members": members}})
}

async fn bulk(h: &Harness, body: Value) -> Resp {
    h.post("/scim/v2/Bulk", body).send().await
}

/// The answers of a 200 Bulk response, checked to be one.
fn answers(r: &Resp) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert_eq!(r.body["schemas"], json!([BULK_RESPONSE]));
    r.body["Operations"].as_array().expect("Operations").clone()
}

/// The id at the end of an answer's `location`.
fn created_id(answer: &Value) -> String {
    let loc = answer["location"].as_str().expect("location");
    loc.rsplit('/').next().expect("id").to_owned()
}

async fn get(h: &Harness, path: &str) -> Resp {
    h.get(path).send().await
}

#[actix_web::test]
async fn bulk_ids_resolve_in_members_manager_and_paths_in_dependency_order() {
    let h = Harness::new();
    // The group comes first and names users created after it; a user's manager is a
    // user of the same request; a PATCH addresses a resource by its bulkId.
    let r = bulk(
        &h,
        request(json!([
            post_group("g", "Engineering", &["bulkId:alice", "bulkId:bob"]),
            {"method": "POST", "path": "/Users", "bulkId": "bob",
             "data": {"schemas": [USER_SCHEMA, ENTERPRISE], "userName": "bob",
                      ENTERPRISE: {"manager": {"value": "bulkId:alice"}}}},
            post_user("alice", "alice"),
            {"method": "PATCH", "path": "/Users/bulkId:alice",
             "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "title", "value": "Lead"}]}},
        ])),
    )
    .await;
    let a = answers(&r);
    assert_eq!(a.len(), 4, "{}", r.body);
    // Answers are in request order, each with its own status, location and version.
    for (answer, (method, bulk_id, status)) in a.iter().zip([
        ("POST", Some("g"), "201"),
        ("POST", Some("bob"), "201"),
        ("POST", Some("alice"), "201"),
        ("PATCH", None, "200"),
    ]) {
        assert_eq!(answer["method"], method, "{answer}");
        assert_eq!(answer["bulkId"].as_str(), bulk_id, "{answer}");
        assert_eq!(answer["status"], status, "{answer}");
        assert!(
            answer["version"]
                .as_str()
                .is_some_and(|v| v.starts_with("W/")),
            "{answer}"
        );
        assert!(
            answer["location"]
                .as_str()
                .is_some_and(|l| l.contains("/scim/v2/")),
            "{answer}"
        );
    }
    let (g, bob, alice) = (created_id(&a[0]), created_id(&a[1]), created_id(&a[2]));
    assert_eq!(created_id(&a[3]), alice);
    let group = get(&h, &format!("/scim/v2/Groups/{g}")).await;
    let mut members: Vec<&str> = group.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str())
        .collect();
    members.sort_unstable();
    let mut want = vec![alice.as_str(), bob.as_str()];
    want.sort_unstable();
    assert_eq!(members, want);
    let bob_now = get(&h, &format!("/scim/v2/Users/{bob}")).await;
    assert_eq!(bob_now.body[ENTERPRISE]["manager"]["value"], alice);
    let alice_now = get(&h, &format!("/scim/v2/Users/{alice}")).await;
    assert_eq!(alice_now.body["title"], "Lead");
    // The group comes before the PATCH in the request and waits only for the users: it
    // runs first (alice joins it: version 2), then the PATCH (version 3).
    assert_eq!(a[3]["version"], "W/\"3\"");
    assert_eq!(alice_now.body["meta"]["version"], "W/\"3\"");
}

#[actix_web::test]
async fn circular_references_are_resolved_and_answered_created() {
    let h = Harness::new();
    // RFC 7644 §3.7.1's example: two groups, each a member of the other.
    let r = bulk(
        &h,
        request(json!([
            post_group("qwerty", "Group A", &["bulkId:ytrewq"]),
            post_group("ytrewq", "Group B", &["bulkId:qwerty"]),
        ])),
    )
    .await;
    let a = answers(&r);
    assert_eq!(a[0]["status"], "201", "{}", r.body);
    assert_eq!(a[1]["status"], "201", "{}", r.body);
    let (ga, gb) = (created_id(&a[0]), created_id(&a[1]));
    let group_a = get(&h, &format!("/scim/v2/Groups/{ga}")).await;
    assert_eq!(group_a.body["members"][0]["value"], gb, "{}", group_a.body);
    let group_b = get(&h, &format!("/scim/v2/Groups/{gb}")).await;
    assert_eq!(group_b.body["members"][0]["value"], ga, "{}", group_b.body);
    // The answer's version is the one stored after the member was added.
    assert_eq!(a[0]["version"], group_a.body["meta"]["version"]);
}

#[actix_web::test]
async fn a_circle_that_cannot_close_leaves_nothing_of_its_operations() {
    let h = Harness::new();
    h.create_user("taken").await;
    // A names B; B names A but is itself refused (its user name is taken). A is created
    // first to break the circle; since B never exists, A is undone.
    let r = bulk(
        &h,
        request(json!([
            post_group("a", "Circle A", &["bulkId:b"]),
            {"method": "POST", "path": "/Users", "bulkId": "b",
             "data": {"schemas": [USER_SCHEMA, ENTERPRISE], "userName": "TAKEN",
                      ENTERPRISE: {"manager": {"value": "bulkId:a"}}}},
        ])),
    )
    .await;
    let a = answers(&r);
    assert_eq!(a[1]["status"], "409", "{}", r.body);
    assert_eq!(a[1]["response"]["scimType"], "uniqueness");
    assert_eq!(a[0]["status"], "409", "{}", r.body);
    let detail = a[0]["response"]["detail"].as_str().expect("detail");
    assert!(
        detail.contains("circular") && detail.contains("bulkId:b"),
        "{detail}"
    );
    assert!(a[0].get("location").is_none(), "{}", a[0]);
    let groups = get(
        &h,
        "/scim/v2/Groups?filter=displayName%20eq%20%22Circle%20A%22",
    )
    .await;
    assert_eq!(groups.body["totalResults"], 0, "{}", groups.body);
}

#[actix_web::test]
async fn fail_on_errors_stops_where_one_by_one_would_have() {
    let h = Harness::new();
    h.create_user("dup").await;
    let ops = json!([
        post_user("1", "dup"),
        post_user("2", "fresh-1"),
        {"method": "POST", "path": "/Users", "bulkId": "3", "data": {"schemas": [USER_SCHEMA]}},
        post_user("4", "fresh-2"),
        post_user("5", "fresh-3"),
    ]);
    let r = bulk(
        &h,
        json!({"schemas": [BULK_REQUEST], "failOnErrors": 2, "Operations": ops}),
    )
    .await;
    let a = answers(&r);
    let statuses: Vec<&str> = a.iter().filter_map(|o| o["status"].as_str()).collect();
    assert_eq!(statuses, ["409", "201", "400"], "{}", r.body);
    assert_eq!(a[2]["response"]["scimType"], "invalidValue");
    for name in ["fresh-2", "fresh-3"] {
        let found = get(
            &h,
            &format!("/scim/v2/Users?filter=userName%20eq%20%22{name}%22"),
        )
        .await;
        assert_eq!(
            found.body["totalResults"], 0,
            "{name} was not to be created"
        );
    }
    // Without failOnErrors every operation runs, failures and all.
    let ops = json!([
        post_user("1", "dup"),
        post_user("2", "fresh-2"),
        post_user("3", "dup")
    ]);
    let a = answers(&bulk(&h, request(ops)).await);
    let statuses: Vec<&str> = a.iter().filter_map(|o| o["status"].as_str()).collect();
    assert_eq!(statuses, ["409", "201", "409"]);
}

#[actix_web::test]
async fn each_operation_checks_its_version_and_fails_alone() {
    let h = Harness::new();
    let user = h.create_user("versioned").await;
    let id = id_of(&user);
    let v1 = user["meta"]["version"]
        .as_str()
        .expect("version")
        .to_owned();
    let put = |version: &str, title: &str| {
        json!({"method": "PUT", "path": format!("/Users/{id}"), "version": version,
               "data": {"schemas": [USER_SCHEMA], "userName": "versioned", "title": title}})
    };
    let patch_bad = json!({"method": "PATCH", "path": format!("/Users/{id}"),
        "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                 "Operations": [{"op": "replace", "path": "title", "value": "half"},
                                {"op": "replace", "path": "noSuchAttribute", "value": 1}]}});
    let r = bulk(
        &h,
        request(json!([put(&v1, "first"), put(&v1, "stale"), patch_bad,
                       {"method": "DELETE", "path": format!("/Users/{id}"), "version": "W/\"999\""}])),
    )
    .await;
    let a = answers(&r);
    let statuses: Vec<&str> = a.iter().filter_map(|o| o["status"].as_str()).collect();
    assert_eq!(statuses, ["200", "412", "400", "412"], "{}", r.body);
    let now = get(&h, &format!("/scim/v2/Users/{id}")).await;
    assert_eq!(
        now.body["title"], "first",
        "the failed PATCH changed nothing"
    );
    assert_eq!(a[0]["version"], now.body["meta"]["version"]);
    let v2 = now.body["meta"]["version"]
        .as_str()
        .expect("version")
        .to_owned();
    let r = bulk(
        &h,
        request(json!([{"method": "DELETE", "path": format!("/Users/{id}"), "version": v2}])),
    )
    .await;
    assert_eq!(answers(&r)[0]["status"], "204");
    assert_eq!(get(&h, &format!("/scim/v2/Users/{id}")).await.status, 404);
}

#[actix_web::test]
async fn limits_are_advertised_and_enforced_with_413() {
    let h = Harness::with_config(|c| {
        c.http.bulk.max_operations = 3;
        c.http.bulk.max_payload_bytes = 2000;
    });
    let spc = get(&h, "/scim/v2/ServiceProviderConfig").await;
    assert_eq!(
        spc.body["bulk"],
        json!({"supported": true, "maxOperations": 3, "maxPayloadSize": 2000})
    );
    let ops: Vec<Value> = (0..4)
        .map(|i| post_user(&i.to_string(), &format!("u{i}")))
        .collect();
    bulk(&h, request(json!(ops)))
        .await
        .assert_error(413, None, "maxOperations");
    let big = json!([{"method": "POST", "path": "/Users", "bulkId": "b",
                      "data": {"schemas": [USER_SCHEMA], "userName": "x".repeat(3000)}}]);
    bulk(&h, request(big))
        .await
        .assert_error(413, None, "maxPayloadSize (2000 bytes)");
    let found = get(&h, "/scim/v2/Users?count=0").await;
    assert_eq!(
        found.body["totalResults"], 0,
        "nothing of a refused request is stored"
    );
    // Turned off: advertised as such, and the endpoint says so.
    let off = Harness::with_config(|c| c.http.bulk.max_operations = 0);
    let spc = get(&off, "/scim/v2/ServiceProviderConfig").await;
    assert_eq!(spc.body["bulk"]["supported"], false);
    bulk(&off, request(json!([post_user("a", "a")])))
        .await
        .assert_error(501, None, "turned off");
}

#[actix_web::test]
async fn malformed_requests_and_operations_are_explained() {
    let h = Harness::new();
    bulk(&h, json!({"schemas": [BULK_REQUEST]}))
        .await
        .assert_error(400, Some("invalidSyntax"), "'Operations'");
    let r = bulk(
        &h,
        request(json!([
            {"method": "GET", "path": "/Users"},
            {"method": "POST", "path": "/Users", "data": {"userName": "no-bulk-id"}},
            {"method": "DELETE", "path": "/Users/x?domain=other"},
            post_group("g", "refers to nobody", &["bulkId:nobody"]),
            post_user("ok", "still-created"),
        ])),
    )
    .await;
    let a = answers(&r);
    let rows: Vec<(&str, &str)> = a
        .iter()
        .map(|o| {
            (
                o["status"].as_str().unwrap_or(""),
                o["response"]["detail"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(rows[0].0, "400");
    assert!(rows[0].1.contains("'GET'"), "{}", rows[0].1);
    assert!(rows[1].1.contains("'bulkId' is required"), "{}", rows[1].1);
    assert!(rows[2].1.contains("query"), "{}", rows[2].1);
    assert_eq!(rows[3].0, "409");
    assert!(rows[3].1.contains("bulkId:nobody"), "{}", rows[3].1);
    assert_eq!(rows[4].0, "201");
}

#[actix_web::test]
async fn tenants_stay_apart_and_writing_needs_the_write_scope() {
    let h = Harness::new();
    let theirs = h.create_user("theirs").await;
    let their_id = id_of(&theirs);
    let other = h.token_for("other", "scim:read scim:write");
    let r = h
        .post(
            "/scim/v2/Bulk",
            request(json!([
                {"method": "DELETE", "path": format!("/Users/{their_id}")},
                post_group("g", "reaching over", &[&their_id]),
                post_user("u", "theirs"),
            ])),
        )
        .token(&other)
        .send()
        .await;
    let a = answers(&r);
    assert_eq!(a[0]["status"], "404", "{}", r.body);
    assert_eq!(a[1]["status"], "400", "{}", r.body);
    assert!(
        a[1]["response"]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("does not exist in this tenant")
    );
    assert_eq!(a[2]["status"], "201", "a user name is unique per tenant");
    assert_eq!(
        get(&h, &format!("/scim/v2/Users/{their_id}")).await.status,
        200
    );
    let reader = h.token_for("default", "scim:read");
    h.post("/scim/v2/Bulk", request(json!([post_user("r", "reader")])))
        .token(&reader)
        .send()
        .await
        .assert_error(403, None, "scope");
}

#[actix_web::test]
async fn each_operation_runs_the_plugins_and_has_its_audit_row_and_event() {
    let h = Harness::with_config(|c| {
        c.plugins.specs = vec![PluginSpec {
            hooks: vec![Hook::Create],
            resource_types: vec!["Group".into()],
            ..wat_plugin("reject")
        }]
    });
    let r = bulk(
        &h,
        request(json!([
            post_user("u1", "plugged-1"),
            post_group("g", "refused", &["bulkId:u1"]),
            post_user("u2", "plugged-2")
        ])),
    )
    .await;
    let a = answers(&r);
    let statuses: Vec<&str> = a.iter().filter_map(|o| o["status"].as_str()).collect();
    assert_eq!(statuses, ["201", "422", "201"], "{}", r.body);
    let admin = h.token_for("default", "scim:admin");
    let rows = audit_rows(&h, &admin, 3).await;
    let summary: Vec<(String, String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or("").to_owned(),
                r["resourceType"].as_str().unwrap_or("").to_owned(),
                r["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let in_request_order = [
        ("POST".to_owned(), "User".to_owned(), 201),
        ("POST".to_owned(), "Group".to_owned(), 422),
        ("POST".to_owned(), "User".to_owned(), 201),
    ];
    if on_postgres() {
        // There a refused write's row is committed by the queue's own thread
        // (docs/architecture.md), so it may be numbered after a write that committed
        // meanwhile: every row is there, and the committed writes' rows keep their order.
        let mut sorted = summary.clone();
        sorted.sort();
        let mut expected = in_request_order.to_vec();
        expected.sort();
        assert_eq!(sorted, expected, "{rows:?}");
        let committed: Vec<_> = rows.iter().filter(|r| r["status"] == 201).collect();
        assert_eq!(committed[0]["resourceId"], created_id(&a[0]), "{rows:?}");
        assert_eq!(committed[1]["resourceId"], created_id(&a[2]), "{rows:?}");
    } else {
        assert_eq!(summary, in_request_order, "{rows:?}");
    }
    let refused = rows
        .iter()
        .find(|r| r["resourceType"] == "Group")
        .expect("the refused group's row");
    assert!(
        refused["plugins"].to_string().contains("reject"),
        "{refused}"
    );
    let store = h.state().store.clone();
    let events = off_runtime(|| store.events("default", 0, 100)).expect("events");
    let ids: Vec<&str> = events.iter().map(|e| e.resource_id.as_str()).collect();
    assert_eq!(ids, [created_id(&a[0]), created_id(&a[2])]);
}

#[actix_web::test]
async fn every_operation_counts_against_the_rate_limit() {
    let h = Harness::with_config(|c| {
        c.http.rate_limit.per_token = scimgate_http::Limit {
            requests_per_second: 1,
            burst: 5,
        };
    });
    // More operations than the burst could never pass: 413, not a 429 to retry forever.
    let ops: Vec<Value> = (0..8)
        .map(|i| post_user(&i.to_string(), &format!("rl{i}")))
        .collect();
    bulk(&h, request(json!(ops)))
        .await
        .assert_error(413, None, "burst");
    // Four of five: admitted; then four more find the bucket empty.
    let ops: Vec<Value> = (0..4)
        .map(|i| post_user(&i.to_string(), &format!("ok{i}")))
        .collect();
    assert_eq!(bulk(&h, request(json!(ops))).await.status, 200);
    let ops: Vec<Value> = (0..4)
        .map(|i| post_user(&i.to_string(), &format!("late{i}")))
        .collect();
    let r = bulk(&h, request(json!(ops))).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some());
}

#[actix_web::test]
async fn operations_keep_request_order_as_one_by_one_would() {
    let h = Harness::new();
    // Delete and create again under the same name; rename and reuse the old name.
    let r = bulk(
        &h,
        request(json!([
            post_user("d3", "recreate"),
            {"method": "DELETE", "path": "/Users/bulkId:d3"},
            post_user("d4", "recreate"),
            post_user("u1", "n1"),
            {"method": "PATCH", "path": "/Users/bulkId:u1",
             "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "userName", "value": "n2"}]}},
            post_user("u2", "n1"),
        ])),
    )
    .await;
    let statuses: Vec<String> = answers(&r)
        .iter()
        .map(|o| o["status"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        statuses,
        ["201", "204", "201", "201", "200", "201"],
        "{}",
        r.body
    );
    // A forward reference lets an operation wait; the one it waits for does not let a
    // later one overtake it: x (first) wins the name whatever failOnErrors says.
    for fail_on_errors in [Value::Null, json!(1), json!(2)] {
        let name = format!("dup-{fail_on_errors}");
        let ops = json!([
            {"method": "POST", "path": "/Users", "bulkId": "x",
             "data": {"schemas": [USER_SCHEMA, ENTERPRISE], "userName": name,
                      ENTERPRISE: {"manager": {"value": "bulkId:m"}}}},
            post_user("m", &format!("manager-{fail_on_errors}")),
            post_user("y", &name),
        ]);
        let r = bulk(
            &h,
            json!({"schemas": [BULK_REQUEST], "failOnErrors": fail_on_errors, "Operations": ops}),
        )
        .await;
        let a = answers(&r);
        assert_eq!(a[0]["status"], "201", "{fail_on_errors}: {}", r.body);
        assert_eq!(a[1]["status"], "201", "{fail_on_errors}: {}", r.body);
        assert_eq!(a[2]["status"], "409", "{fail_on_errors}: {}", r.body);
    }
}

#[actix_web::test]
async fn a_circle_is_closed_before_later_operations_run() {
    let h = Harness::new();
    // A later PUT of a group in the circle is what stays; a later DELETE finds it whole.
    let r = bulk(
        &h,
        request(json!([
            post_group("a", "Circle PUT A", &["bulkId:b"]),
            post_group("b", "Circle PUT B", &["bulkId:a"]),
            {"method": "PUT", "path": "/Groups/bulkId:a",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "Circle PUT A2", "members": []}},
            post_group("c", "Circle DEL A", &["bulkId:d"]),
            post_group("d", "Circle DEL B", &["bulkId:c"]),
            {"method": "DELETE", "path": "/Groups/bulkId:c"},
        ])),
    )
    .await;
    let a = answers(&r);
    let statuses: Vec<&str> = a.iter().filter_map(|o| o["status"].as_str()).collect();
    assert_eq!(
        statuses,
        ["201", "201", "200", "201", "201", "204"],
        "{}",
        r.body
    );
    let group_a = get(&h, &format!("/scim/v2/Groups/{}", created_id(&a[0]))).await;
    assert_eq!(group_a.body["displayName"], "Circle PUT A2");
    assert!(
        group_a.body.get("members").is_none(),
        "the PUT emptied it: {}",
        group_a.body
    );
    assert_eq!(a[2]["version"], group_a.body["meta"]["version"]);
    // The PUT comes before the circle's other half in the request: it still waits until
    // the circle is closed, and what it sets is what stays.
    let r = bulk(
        &h,
        request(json!([
            post_group("e", "Held E", &["bulkId:f"]),
            {"method": "PUT", "path": "/Groups/bulkId:e",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "Held E2", "members": []}},
            post_group("f", "Held F", &["bulkId:e"]),
        ])),
    )
    .await;
    let a = answers(&r);
    let statuses: Vec<&str> = a.iter().filter_map(|o| o["status"].as_str()).collect();
    assert_eq!(statuses, ["201", "200", "201"], "{}", r.body);
    let group_e = get(&h, &format!("/scim/v2/Groups/{}", created_id(&a[0]))).await;
    assert_eq!(group_e.body["displayName"], "Held E2");
    assert!(group_e.body.get("members").is_none(), "{}", group_e.body);
    assert_eq!(a[1]["version"], group_e.body["meta"]["version"]);
    // A group naming itself: created, then refused as its own member, and undone.
    let r = bulk(&h, request(json!([post_group("s", "Self", &["bulkId:s"])]))).await;
    let a = answers(&r);
    assert_eq!(a[0]["status"], "409", "{}", r.body);
    let detail = a[0]["response"]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("member of itself"), "{detail}");
    let found = get(&h, "/scim/v2/Groups?filter=displayName%20eq%20%22Self%22").await;
    assert_eq!(found.body["totalResults"], 0);
    // A create referring to one that is undone finds nothing to refer to.
    let r = bulk(
        &h,
        request(json!([
            post_group("p", "Undone P", &["bulkId:q"]),
            {"method": "POST", "path": "/Groups", "bulkId": "q",
             "data": {"schemas": [GROUP_SCHEMA], "members": [{"value": "bulkId:p"}]}},
            post_group("r", "Refers to P", &["bulkId:p"]),
        ])),
    )
    .await;
    let statuses: Vec<String> = answers(&r)
        .iter()
        .map(|o| o["status"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(statuses, ["409", "400", "409"], "{}", r.body);
}

#[actix_web::test]
async fn failed_operations_on_a_resource_still_give_its_location() {
    let h = Harness::new();
    let r = bulk(
        &h,
        request(json!([
            {"method": "DELETE", "path": "/Users/no such id"},
            {"method": "DELETE", "path": "/Users/bulkId:nobody"},
        ])),
    )
    .await;
    let a = answers(&r);
    assert_eq!(a[0]["status"], "404");
    assert!(
        a[0]["location"]
            .as_str()
            .is_some_and(|l| l.ends_with("/Users/no%20such%20id")),
        "{}",
        a[0]
    );
    assert_eq!(a[1]["status"], "409");
}
