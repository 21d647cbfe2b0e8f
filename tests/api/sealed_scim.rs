//! Issue 11, SCIM semantics and plugins (points 7-15, 17, 18, 21, 25): each test fails on
//! the main of before the issue and passes after.

use std::path::PathBuf;

use actix_web::http::Method;
use scimgate_plugins::{Hook, PluginSpec};
use serde_json::{Value, json};

use crate::common::*;
use crate::example_plugins::example;

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn ops(list: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": list})
}

fn password_hash(h: &Harness, id: &str) -> Option<String> {
    h.password_hash(id)
}

/// 7. A password can be cleared: PATCH `remove`, and `null` on PUT; a PUT without it
/// keeps it (it is write-only, so a client cannot send it back).
#[actix_web::test]
async fn p07_a_password_can_be_cleared() {
    let h = Harness::new();
    let body = |pw: Value| json!({"schemas": [USER_SCHEMA], "userName": "pw-user", "password": pw});
    let id = id_of(&h.create_user_with(body(json!("first-secret"))).await);
    assert!(password_hash(&h, &id).is_some());
    let r = h
        .put(
            &format!("/scim/v2/Users/{id}"),
            json!({"schemas": [USER_SCHEMA], "userName": "pw-user", "title": "t"}),
        )
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert!(password_hash(&h, &id).is_some(), "absent keeps it");
    let path = format!("/scim/v2/Users/{id}");
    let r = h
        .req(Method::PATCH, &path)
        .json(&ops(json!([{"op": "remove", "path": "password"}])))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(password_hash(&h, &id), None, "PATCH remove clears it");
    h.req(Method::PATCH, &path)
        .json(&ops(
            json!([{"op": "replace", "path": "password", "value": "again"}]),
        ))
        .send()
        .await;
    assert!(password_hash(&h, &id).is_some());
    let r = h.put(&path, body(Value::Null)).send().await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(password_hash(&h, &id), None, "null on PUT clears it");
}

/// 8. A filter upsert stores what the client sent, not the folded comparison key.
#[actix_web::test]
async fn p08_filter_upsert_stores_the_value_as_sent() {
    let h = Harness::new();
    let id = id_of(&h.create_user("upsert").await);
    let r = h
        .req(Method::PATCH, &format!("/scim/v2/Users/{id}"))
        .json(&ops(json!([{"op": "replace",
            "path": "emails[value eq \"Bob.Smith@Example.COM\"].primary", "value": true}])))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["emails"][0]["value"], "Bob.Smith@Example.COM");
}

/// 9. Without `If-Match`, concurrent PATCHes all land: never a 412, never a lost change.
#[actix_web::test]
async fn p09_no_412_without_if_match() {
    let h = Harness::new();
    let id = id_of(&h.create_user("contended").await);
    let path = format!("/scim/v2/Users/{id}");
    let sends = (0..16).map(|i| {
        h.req(Method::PATCH, &path)
            .json(&ops(json!([{"op": "add", "path": "emails",
                "value": [{"value": format!("m{i}@example.com")}]}])))
            .send()
    });
    let answers = futures_util::future::join_all(sends).await;
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let user = h.get(&path).send().await.body;
    assert_eq!(user["emails"].as_array().map(Vec::len), Some(16), "{user}");
}

/// 10. The version moves whenever the representation does: a user's `groups`, a group's
/// `members.display`.
#[actix_web::test]
async fn p10_etags_move_with_memberships_and_renames() {
    let h = Harness::new();
    let user = h.create_user("member").await;
    let uid = id_of(&user);
    let old = user["meta"]["version"].as_str().expect("etag").to_owned();
    let group = h.create_group("team", &[&uid]).await;
    let gid = id_of(&group);
    let r = h
        .get(&format!("/scim/v2/Users/{uid}"))
        .header("if-none-match", &old)
        .send()
        .await;
    assert_eq!(r.status, 200, "joining a group changed the user");
    assert_eq!(r.body["groups"][0]["value"], gid);
    assert_ne!(r.header("etag"), Some(old.as_str()));
    let group_etag = h.get(&format!("/scim/v2/Groups/{gid}")).send().await;
    let group_etag = group_etag.header("etag").expect("etag").to_owned();
    let r = h
        .put(
            &format!("/scim/v2/Users/{uid}"),
            json!({"schemas": [USER_SCHEMA], "userName": "member", "displayName": "Renamed"}),
        )
        .send()
        .await;
    assert_eq!(r.status, 200);
    let g = h
        .get(&format!("/scim/v2/Groups/{gid}"))
        .header("if-none-match", &group_etag)
        .send()
        .await;
    assert_eq!(g.status, 200, "a renamed member changed the group");
    assert_eq!(g.body["members"][0]["display"], "Renamed");
}

/// 11. NFC and NFD spellings are one name (uniqueness, filters); each is stored as sent.
#[actix_web::test]
async fn p11_unicode_normalisation() {
    let h = Harness::new();
    let nfc = "jos\u{e9}@example.com";
    let nfd = "jose\u{301}@example.com";
    h.create_user(nfc).await;
    let r = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": nfd}),
        )
        .send()
        .await;
    r.assert_error(409, Some("uniqueness"), "already taken");
    let found = h
        .get(&format!(
            "/scim/v2/Users?filter=userName%20eq%20%22{}%22",
            urlencode(nfd)
        ))
        .send()
        .await;
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);
    assert_eq!(
        found.body["Resources"][0]["userName"], nfc,
        "stored as sent"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// 12. Binary values compare exactly.
#[actix_web::test]
async fn p12_binary_is_case_exact() {
    let h = Harness::new();
    h.create_user_with(json!({"schemas": [USER_SCHEMA], "userName": "cert",
        "x509Certificates": [{"value": "qujd"}]}))
        .await;
    let r = h
        .get("/scim/v2/Users?filter=x509Certificates.value%20eq%20%22QUJD%22")
        .send()
        .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    let r = h
        .get("/scim/v2/Users?filter=x509Certificates.value%20eq%20%22qujd%22")
        .send()
        .await;
    assert_eq!(r.body["totalResults"], 1);
}

/// 13. `sortBy=meta.version` sorts by version; `meta.resourceType` is refused.
#[actix_web::test]
async fn p13_sort_by_meta_version_or_refuse() {
    let h = Harness::new();
    let mut ids = Vec::new();
    for (i, patches) in [3, 0, 1].into_iter().enumerate() {
        let id = id_of(&h.create_user(&format!("v{i}")).await);
        for n in 0..patches {
            h.req(Method::PATCH, &format!("/scim/v2/Users/{id}"))
                .json(&ops(
                    json!([{"op": "replace", "path": "title", "value": format!("t{n}")}]),
                ))
                .send()
                .await;
        }
        ids.push(id);
    }
    let r = h.get("/scim/v2/Users?sortBy=meta.version").send().await;
    let got: Vec<&str> = r.body["Resources"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert_eq!(got, [ids[1].as_str(), &ids[2], &ids[0]]);
    h.get("/scim/v2/Users?sortBy=meta.resourceType")
        .send()
        .await
        .assert_error(400, Some("invalidValue"), "meta.resourceType");
}

/// 14. Control characters are refused on input, named; a filter holding one likewise.
#[actix_web::test]
async fn p14_control_characters_are_refused() {
    let h = Harness::new();
    h.post(
        "/scim/v2/Users",
        json!({"schemas": [USER_SCHEMA], "userName": "ab\u{0}cd"}),
    )
    .send()
    .await
    .assert_error(
        400,
        Some("invalidValue"),
        "'userName' contains the control character U+0000",
    );
    h.get("/scim/v2/Users?filter=userName%20ew%20%22%5Cu0000cd%22")
        .send()
        .await
        .assert_error(400, Some("invalidFilter"), "control character U+0000");
}

/// 15. HEAD is answered wherever GET is (the body is left out by the HTTP layer; the
/// binary test checks that on the wire).
#[actix_web::test]
async fn p15_head_is_supported() {
    let h = Harness::new();
    let id = id_of(&h.create_user("head").await);
    let r = h
        .req(Method::HEAD, &format!("/scim/v2/Users/{id}"))
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("etag").is_some());
    let r = h.req(Method::HEAD, "/healthz").no_token().send().await;
    assert_eq!(r.status, 200);
    let r = h
        .req(Method::HEAD, "/scim/v2/Users")
        .no_token()
        .send()
        .await;
    assert_eq!(r.status, 401, "HEAD is authenticated like GET");
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("crates/scimgate-plugins/tests/fixtures/{name}.wat"))
}

/// 17. On PATCH, plugins see the password and members as they would be stored, and what
/// they decide about them is what is stored.
#[actix_web::test]
async fn p17_patch_honours_plugin_decisions_on_password_and_members() {
    // attribute-map moving `password` to `nickName`: a plugin that takes the password away
    // (and, seeing it, proves it was given).
    let mut mover = example("attribute-map", json!({"map": {"password": "nickName"}}));
    mover.sees_password = true;
    let h = Harness::with_config(|c| c.plugins.specs = vec![mover]);
    let id = id_of(&h.create_user("patched-pw").await);
    let r = h
        .req(Method::PATCH, &format!("/scim/v2/Users/{id}"))
        .json(&ops(
            json!([{"op": "replace", "path": "password", "value": "moved-away"}]),
        ))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["nickName"], "moved-away",
        "the plugin saw the new password"
    );
    assert_eq!(password_hash(&h, &id), None, "and its decision held");

    // A Group plugin replacing the members: its list is the group's.
    let h = Harness::with_config(|c| {
        c.plugins.specs = vec![PluginSpec {
            name: "empty-group".into(),
            file: fixture("empty-group"),
            hooks: vec![Hook::Patch],
            resource_types: vec!["Group".into()],
            ..wat_plugin("empty-group")
        }]
    });
    let uid = id_of(&h.create_user("someone").await);
    let gid = id_of(&h.create_group("before", &[]).await);
    let r = h
        .req(Method::PATCH, &format!("/scim/v2/Groups/{gid}"))
        .json(&ops(
            json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]),
        ))
        .send()
        .await;
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    let g = h.get(&format!("/scim/v2/Groups/{gid}")).send().await.body;
    assert_eq!(g["displayName"], "from-plugin");
    assert!(
        g.get("members")
            .is_none_or(|m| m.as_array().is_some_and(Vec::is_empty)),
        "the plugin's empty member list won: {g}"
    );
}

/// 18. A plugin that returns what the schema refuses is the plugin's fault: a 500 naming
/// it (with the request id), audited as a failure, not a client 400. A plugin's reject
/// status outside 400/403/409/422 is the same kind of fault.
#[actix_web::test]
async fn p18_plugin_faults_are_named_as_such() {
    let h = Harness::with_config(|c| {
        c.plugins.specs = vec![example(
            "attribute-map",
            json!({"map": {"userName": "fooBar"}}),
        )]
    });
    let r = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "x"}),
        )
        .send()
        .await;
    r.assert_error(500, None, "plugin 'attribute-map' failed: returned an invalid decision: a User the schema refuses: unknown attribute 'fooBar'");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("request id")
    );
    // The request id is put in the body where the answer is known; the headers of the
    // middleware inside (the rate-limit counts) stay on it.
    assert!(r.header("ratelimit").is_some(), "{:?}", r.headers);
    let admin = h.token_for("default", "scim:admin");
    let rows = audit_rows(&h, &admin, 1).await;
    assert!(
        rows[0]["plugins"].as_str().unwrap_or("").contains("failed"),
        "{}",
        rows[0]
    );

    let h = Harness::with_config(|c| {
        c.plugins.specs = vec![PluginSpec {
            file: fixture("teapot"),
            ..wat_plugin("teapot")
        }]
    });
    h.post(
        "/scim/v2/Users",
        json!({"schemas": [USER_SCHEMA], "userName": "y"}),
    )
    .send()
    .await
    .assert_error(500, None, "status 418");
}

/// 21. write-freeze, on the delete hook too, makes a tenant read-only: deletes included.
/// A plugin that does not name `delete` never runs on one.
#[actix_web::test]
async fn p21_write_freeze_freezes_deletes() {
    let mut h = Harness::new();
    let frozen = h.token_for("frozen", "scim:read scim:write");
    let make = |name: &str| json!({"schemas": [GROUP_SCHEMA], "displayName": name});
    let r = h
        .post("/scim/v2/Groups", make("kept"))
        .token(&frozen)
        .send()
        .await;
    let gid = id_of(&r.body);
    let uid = id_of(&h.create_user("deletable").await);
    h.config.plugins.specs = vec![
        PluginSpec {
            name: "write-freeze".into(),
            file: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins/dist/write-freeze.wat"),
            hooks: vec![Hook::Create, Hook::Replace, Hook::Patch, Hook::Delete],
            tenants: Some(vec!["frozen".into()]),
            ..wat_plugin("write-freeze")
        },
        // Refuses every write it runs on; it names no hook, so never a delete.
        wat_plugin("reject"),
    ];
    h.restart();
    h.delete(&format!("/scim/v2/Groups/{gid}"))
        .token(&frozen)
        .send()
        .await
        .assert_error(
            403,
            None,
            "plugin 'write-freeze' rejected the change: writes are frozen",
        );
    let still = h
        .get(&format!("/scim/v2/Groups/{gid}"))
        .token(&frozen)
        .send()
        .await;
    assert_eq!(still.status, 200, "the group is still there");
    // A large write (over the plugin's first 128 KiB of memory) is frozen too: its memory
    // grows to take any input.
    let emails: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"value": format!("user{i}@example.com"),
                "display": format!("{i:0>100}")})
        })
        .collect();
    h.post(
        "/scim/v2/Users",
        json!({"schemas": [USER_SCHEMA], "userName": "big", "emails": emails}),
    )
    .token(&frozen)
    .send()
    .await
    .assert_error(403, None, "writes are frozen");
    let r = h.delete(&format!("/scim/v2/Users/{uid}")).send().await;
    assert_eq!(
        r.status, 204,
        "plugins without `delete` do not run on deletes: {}",
        r.body
    );
}

/// 25. `filter_max_depth` is the depth allowed (not one less), in PATCH paths too.
#[actix_web::test]
async fn p25_filter_depth_is_exact_and_applies_to_patch_paths() {
    let h = Harness::with_config(|c| c.http.filter_max_depth = 1);
    let id = id_of(
        &h.create_user_with(json!({"schemas": [USER_SCHEMA], "userName": "deep",
            "emails": [{"value": "a@example.com"}, {"value": "b@example.com"}]}))
            .await,
    );
    let path = format!("/scim/v2/Users/{id}");
    let remove = |p: &str| ops(json!([{"op": "remove", "path": p}]));
    let r = h
        .req(Method::PATCH, &path)
        .json(&remove("emails[value pr]"))
        .send()
        .await;
    assert_eq!(r.status, 200, "the brackets are the one level: {}", r.body);
    h.req(Method::PATCH, &path)
        .json(&remove("emails[(value pr)]"))
        .send()
        .await
        .assert_error(400, Some("invalidFilter"), "deeper than 1");
    let r = h.get("/scim/v2/Users?filter=(userName%20pr)").send().await;
    assert_eq!(r.status, 200, "one level is allowed: {}", r.body);
    h.get("/scim/v2/Users?filter=((userName%20pr))")
        .send()
        .await
        .assert_error(400, Some("invalidFilter"), "deeper than 1");
    let r = h
        .req(Method::PATCH, &format!("/scim/v2/Users/{id}"))
        .json(&ops(
            json!([{"op": "remove", "path": "emails[((value pr))]"}]),
        ))
        .send()
        .await;
    r.assert_error(400, Some("invalidFilter"), "deeper than 1");
}
