//! A random valid PATCH, applied through the PATCH engine and the store and read back,
//! equals the same operations applied to a plain in-memory model of the user.

mod backend;

use proptest::prelude::*;
use scimgate_model::ResourceType;
use scimgate_model::dialect::Dialect;
use scimgate_model::patch::{self, PATCH_OP_URN};
use scimgate_model::validate::{schema_urns, validate};
use scimgate_store::{NewResource, PatchWrite};
use serde_json::{Map, Value, json};

/// The operations the model understands, each with its meaning spelled out plainly.
#[derive(Debug, Clone)]
enum Op {
    SetTitle(Option<String>),
    RemoveTitle,
    SetActive(bool),
    SetGiven(String),
    AddEmail(String, String),
    SetEmailValueByType(String, String),
    RemoveEmailsByType(String),
}

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(&["a", "b", "c", "É"][..]).prop_map(str::to_owned)
}

fn kind() -> impl Strategy<Value = String> {
    prop::sample::select(&["work", "home"][..]).prop_map(str::to_owned)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        prop::option::of(word()).prop_map(Op::SetTitle),
        Just(Op::RemoveTitle),
        any::<bool>().prop_map(Op::SetActive),
        word().prop_map(Op::SetGiven),
        (word(), kind()).prop_map(|(v, t)| Op::AddEmail(v, t)),
        (word(), kind()).prop_map(|(v, t)| Op::SetEmailValueByType(v, t)),
        kind().prop_map(Op::RemoveEmailsByType),
    ]
}

fn wire(op: &Op) -> Value {
    match op {
        Op::SetTitle(v) => json!({"op": "replace", "path": "title", "value": v}),
        Op::RemoveTitle => json!({"op": "remove", "path": "title"}),
        Op::SetActive(b) => json!({"op": "replace", "value": {"active": b}}),
        Op::SetGiven(g) => json!({"op": "add", "path": "name.givenName", "value": g}),
        Op::AddEmail(v, t) => {
            json!({"op": "add", "path": "emails", "value": [{"value": v, "type": t}]})
        }
        Op::SetEmailValueByType(v, t) => {
            json!({"op": "replace", "path": format!("emails[type eq \"{t}\"].value"), "value": v})
        }
        Op::RemoveEmailsByType(t) => {
            json!({"op": "remove", "path": format!("emails[type eq \"{t}\"]")})
        }
    }
}

/// The model: the same meaning, written the obvious way. `Err` where the RFC says noTarget.
fn model(user: &mut Map<String, Value>, op: &Op) -> Result<(), ()> {
    let emails = |u: &mut Map<String, Value>| -> Vec<Value> {
        u.get("emails")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    // Exact duplicates carry no meaning (RFC 7643 §2.4): a list keeps one of each.
    let put_emails = |u: &mut Map<String, Value>, all: Vec<Value>| {
        let mut list: Vec<Value> = Vec::new();
        for e in all {
            if !list.contains(&e) {
                list.push(e);
            }
        }
        if list.is_empty() {
            u.remove("emails");
        } else {
            u.insert("emails".into(), Value::Array(list));
        }
    };
    match op {
        Op::SetTitle(Some(t)) => {
            user.insert("title".into(), json!(t));
        }
        Op::SetTitle(None) | Op::RemoveTitle => {
            user.remove("title");
        }
        Op::SetActive(b) => {
            user.insert("active".into(), json!(b));
        }
        Op::SetGiven(g) => {
            user.insert("name".into(), json!({"givenName": g}));
        }
        Op::AddEmail(v, t) => {
            let mut list = emails(user);
            let e = json!({"value": v, "type": t});
            if !list.contains(&e) {
                list.push(e);
            }
            put_emails(user, list);
        }
        Op::SetEmailValueByType(v, t) => {
            let mut list = emails(user);
            let mut hit = false;
            for e in list.iter_mut().filter(|e| e["type"] == json!(t)) {
                e["value"] = json!(v);
                hit = true;
            }
            if !hit {
                list.push(json!({"type": t, "value": v}));
            }
            put_emails(user, list);
        }
        Op::RemoveEmailsByType(t) => {
            let list = emails(user);
            if !list.iter().any(|e| e["type"] == json!(t)) {
                return Err(());
            }
            put_emails(
                user,
                list.into_iter().filter(|e| e["type"] != json!(t)).collect(),
            );
        }
    }
    Ok(())
}

/// JSON objects compare with their keys in any order.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&o[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn patch_then_read_back_equals_the_model(requests in prop::collection::vec(prop::collection::vec(op(), 1..4), 1..6)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = backend::open(dir.path(), &["t"]);
        let start = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "model"});
        let created = store.create("t", NewResource::from_validated(validate(ResourceType::User, &start).expect("valid"), Default::default())).expect("create");
        let mut expected = created.attributes.clone();
        for ops in &requests {
            // One request is atomic: the model applies all its operations or none.
            let mut candidate = expected.clone();
            let model_ok = ops.iter().all(|op| model(&mut candidate, op).is_ok());
            let body = json!({"schemas": [PATCH_OP_URN], "Operations": ops.iter().map(wire).collect::<Vec<_>>()});
            let dialect = Dialect::default();
            let mut rewrites = Vec::new();
            let parsed = patch::parse(ResourceType::User, body.clone(), &dialect, patch::PatchLimits { max_operations: 100, ..Default::default() }, &mut rewrites).expect("valid PATCH");
            let current = store.get("t", ResourceType::User, &created.id, false).expect("get").expect("exists");
            let applied = patch::apply(ResourceType::User, &created.id, &current.attributes, &parsed, &dialect, &mut rewrites);
            prop_assert_eq!(applied.is_ok(), model_ok, "{:?}", ops);
            let Ok(outcome) = applied else { continue };
            let mut doc = outcome.attributes;
            let urns = schema_urns(ResourceType::User, &doc);
            doc.insert("schemas".into(), json!(urns));
            let validated = validate(ResourceType::User, &Value::Object(doc)).expect("valid result");
            let write = PatchWrite {
                rt: ResourceType::User,
                expected_version: Some(current.version),
                new: Some(NewResource::from_validated(validated, Default::default())),
                members: Default::default(),
                skip_unknown_members: false,
        change: Default::default(),
            };
            store.patch("t", &created.id, write).expect("stored");
            expected = candidate;
            let read_back = store.get("t", ResourceType::User, &created.id, false).expect("get").expect("exists");
            prop_assert_eq!(canonical(&Value::Object(read_back.attributes)), canonical(&Value::Object(expected.clone())), "{:?}", ops);
        }
    }
}
