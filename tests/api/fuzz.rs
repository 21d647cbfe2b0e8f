//! PATCH documents fuzzed through the real app: whatever the operations, the answer is
//! never a 5xx, and a refused PATCH leaves the stored user exactly as it was.

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Value, json};

use crate::common::*;

const PATHS: &[&str] = &[
    "emails",
    "emails[type eq \"work\"]",
    "emails[type eq \"work\"].value",
    "emails[value co \"@\"].primary",
    "name.givenName",
    "name",
    "userName",
    "active",
    "displayName",
    "members",
    "groups",
    "id",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "emails[",
    "emails]",
    "emails[type eq]",
    "phoneNumbers[not(type pr)]",
    "x509Certificates.value",
    "",
    "é",
    "roles[primary eq true].display",
];

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[ -~]{0,16}".prop_map(Value::String),
        Just(json!([{"value": "x@example.com", "type": "work", "primary": true}])),
        Just(json!({"givenName": "G", "familyName": 3})),
        Just(json!({"userName": "", "active": "True"})),
        Just(json!([1, "two", null])),
    ]
}

fn operation() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["add", "remove", "replace", "Replace", "delete", "x"][..]),
        prop::option::of(prop::sample::select(PATHS)),
        prop::option::of(value()),
    )
        .prop_map(|(op, path, value)| {
            let mut o = serde_json::Map::new();
            o.insert("op".into(), json!(op));
            if let Some(p) = path {
                o.insert("path".into(), json!(p));
            }
            if let Some(v) = value {
                o.insert("value".into(), v);
            }
            Value::Object(o)
        })
}

#[test]
fn fuzzed_patches_never_answer_5xx_and_refused_ones_change_nothing() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(150);
    let system = actix_web::rt::System::new();
    let h = Harness::new();
    let id = system.block_on(async {
        id_of(
            &h.create_user_with(
                json!({"schemas": [USER_SCHEMA], "userName": "fuzz@example.com",
                "emails": [{"value": "f@example.com", "type": "work"}]}),
            )
            .await,
        )
    });
    let path = format!("/scim/v2/Users/{id}");
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let result = runner.run(&prop::collection::vec(operation(), 1..5), |ops| {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        let (before, after, answer) = system.block_on(async {
            let before = h.get(&path).send().await.body;
            let answer = h
                .req(actix_web::http::Method::PATCH, &path)
                .json(&body)
                .send()
                .await;
            let after = h.get(&path).send().await.body;
            (before, after, answer)
        });
        prop_assert!(answer.status < 500, "{} for {body}: {}", answer.status, answer.body);
        if answer.status >= 400 {
            prop_assert_eq!(&before, &after, "refused PATCH {} changed the user", body);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
