//! Fuzz targets beyond the filter parser (issue 10): PATCH documents and paths, whole
//! resource bodies through validation, projections and the dialect normaliser, each fed
//! JSON and text shaped like what IdPs send, mutated. None may panic; every error is a 4xx
//! SCIM error; applying a PATCH never changes the resource it was given.
//!
//! `scripts/fuzz N` runs N cases per target (release build); the test run does 256.

use proptest::prelude::*;
use scimgate_model::dialect::{Dialect, normalize_resource};
use scimgate_model::projection::Projection;
use scimgate_model::validate::validate;
use scimgate_model::{ResourceType, ScimError, patch};
use serde_json::{Map, Value, json};

const NAMES: &[&str] = &[
    "userName",
    "UserName",
    "name",
    "givenName",
    "familyName",
    "displayName",
    "emails",
    "value",
    "type",
    "primary",
    "display",
    "active",
    "phoneNumbers",
    "addresses",
    "members",
    "groups",
    "password",
    "externalId",
    "id",
    "meta",
    "schemas",
    "roles",
    "x509Certificates",
    "manager",
    "department",
    "employeeNumber",
    "title",
    "locale",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:core:2.0:Group",
    "op",
    "path",
    "Operations",
    "",
    "é",
    "a.b",
    "[",
    "]",
];

const PATH_PIECES: &[&str] = &[
    "emails",
    "members",
    "name",
    "addresses",
    "phoneNumbers",
    "roles",
    "userName",
    "active",
    "[",
    "]",
    ".",
    "value",
    "type",
    "primary",
    " eq ",
    " ne ",
    " co ",
    " pr",
    " and ",
    " or ",
    "not(",
    "(",
    ")",
    "\"work\"",
    "\"x\"",
    "\"",
    "true",
    "42",
    "givenName",
    "department",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    ":",
    "manager",
    "é",
    ",",
];

const OPS: &[&str] = &[
    "add", "remove", "replace", "Add", "REPLACE", "delete", "move", "",
];

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(NAMES).prop_map(str::to_owned),
        1 => "[a-zA-Z:.]{0,12}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(NAMES).prop_map(|s| json!(s)),
        "[ -~]{0,24}".prop_map(Value::String),
        Just(json!("2026-11-29T10:00:00Z")),
        Just(json!("True")),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn path_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(PATH_PIECES), 0..12).prop_map(|p| p.concat()),
        1 => any::<String>(),
    ]
}

fn operation() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(OPS),
        prop::option::of(path_text()),
        prop::option::of(json_value()),
    )
        .prop_map(|(op, path, value)| {
            let mut o = Map::new();
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

fn user_body() -> impl Strategy<Value = Value> {
    (
        json_value(),
        prop::collection::vec((key(), json_value()), 0..8),
    )
        .prop_map(|(extra, kv)| {
            let mut o: Map<String, Value> = kv.into_iter().collect();
            o.insert(
                "schemas".into(),
                json!(["urn:ietf:params:scim:schemas:core:2.0:User"]),
            );
            o.insert("userName".into(), json!("fuzz@example.com"));
            if let Value::Object(more) = extra {
                o.extend(more);
            }
            Value::Object(o)
        })
}

fn stored_user() -> Map<String, Value> {
    let v = validate(
        ResourceType::User,
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "bjensen", "name": {"givenName": "B"},
                "emails": [{"value": "a@x", "type": "work", "primary": true}, {"value": "b@x"}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D"}}),
    )
    .expect("valid");
    v.attributes
}

fn client_error(e: &ScimError) -> Result<(), TestCaseError> {
    prop_assert!(
        (400..500).contains(&e.status),
        "status {} for {}",
        e.status,
        e.detail
    );
    prop_assert!(e.detail.len() <= scimgate_model::error::MAX_DETAIL_BYTES + 64);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), .. ProptestConfig::default() })]

    #[test]
    fn patch_documents_never_panic_and_never_touch_the_input(
        ops in prop::collection::vec(operation(), 0..6),
        rt in prop::sample::select(vec![ResourceType::User, ResourceType::Group]),
        strict in any::<bool>(),
    ) {
        let dialect = if strict { Dialect::strict() } else { Dialect::default() };
        let body = json!({"schemas": [patch::PATCH_OP_URN], "Operations": ops});
        let current = stored_user();
        let before = current.clone();
        let mut rewrites = Vec::new();
        match patch::parse(rt, body, &dialect, patch::PatchLimits::default(), &mut rewrites) {
            Err(e) => client_error(&e)?,
            Ok(parsed) => match patch::apply(rt, "id1", &current, &parsed, &dialect, &mut rewrites) {
                Err(e) => client_error(&e)?,
                Ok(outcome) => {
                    if let Err(e) = validate(rt, &Value::Object(outcome.attributes)) {
                        client_error(&e)?;
                    }
                }
            },
        }
        prop_assert_eq!(current, before);
    }

    #[test]
    fn patch_paths_never_panic(text in path_text()) {
        for rt in [ResourceType::User, ResourceType::Group] {
            if let Err(e) = patch::target(rt, &text, &Dialect::default(), 16, &mut Vec::new()) {
                client_error(&e)?;
            }
        }
    }

    #[test]
    fn resource_bodies_through_dialect_and_validation_never_panic(
        body in user_body(),
        rt in prop::sample::select(vec![ResourceType::User, ResourceType::Group]),
    ) {
        let mut doc = body;
        normalize_resource(rt, &mut doc, &Dialect::default(), &mut Vec::new());
        if let Err(e) = validate(rt, &doc) {
            client_error(&e)?;
        }
    }

    #[test]
    fn arbitrary_json_through_the_normaliser_never_panics(mut doc in json_value()) {
        for rt in [ResourceType::User, ResourceType::Group] {
            normalize_resource(rt, &mut doc, &Dialect::default(), &mut Vec::new());
            if let Err(e) = validate(rt, &doc) {
                client_error(&e)?;
            }
        }
    }

    #[test]
    fn projections_never_panic(
        attributes in prop::option::of(path_text()),
        excluded in prop::option::of(path_text()),
    ) {
        let rt = ResourceType::User;
        match Projection::parse(rt, attributes.as_deref(), excluded.as_deref()) {
            Err(e) => client_error(&e)?,
            Ok(p) => {
                let mut resource = stored_user();
                p.apply(&mut resource);
            }
        }
    }
}
