use serde_json::{Map, Value, json};

use super::*;
use crate::dialect::Dialect;
use crate::error::ScimType;
use crate::schemas::ENTERPRISE_USER_URN as ENT;

fn run_with(
    rt: ResourceType,
    current: Value,
    ops: Value,
    dialect: &Dialect,
) -> Result<Outcome, ScimError> {
    let body = json!({"schemas": [PATCH_OP_URN], "Operations": ops});
    let mut rewrites = Vec::new();
    let parsed = parse(
        rt,
        body.clone(),
        dialect,
        PatchLimits::default(),
        &mut rewrites,
    )?;
    let current: Map<String, Value> = current.as_object().cloned().unwrap_or_default();
    apply(rt, "self-id", &current, &parsed, dialect, &mut rewrites)
}

fn user(current: Value, ops: Value) -> Result<Value, ScimError> {
    run_with(ResourceType::User, current, ops, &Dialect::default())
        .map(|o| Value::Object(o.attributes))
}

fn strict(current: Value, ops: Value) -> Result<Value, ScimError> {
    run_with(ResourceType::User, current, ops, &Dialect::strict())
        .map(|o| Value::Object(o.attributes))
}

fn base() -> Value {
    json!({
        "userName": "bjensen",
        "title": "Guide",
        "active": true,
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [
            {"value": "b@work.example", "type": "work", "primary": true},
            {"value": "b@home.example", "type": "home"},
        ],
    })
}

#[test]
fn rfc_and_idp_cases() {
    let rows: Vec<(&str, Value, Value)> = vec![
        (
            "Entra: replace through a value filter with a sub-attribute",
            json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@work.example"}]),
            json!({"emails": [{"value": "new@work.example", "type": "work", "primary": true}, {"value": "b@home.example", "type": "home"}]}),
        ),
        (
            "Entra: replace a sub-attribute",
            json!([{"op": "Replace", "path": "name.familyName", "value": "J"}]),
            json!({"name": {"givenName": "Barbara", "familyName": "J"}}),
        ),
        (
            "Entra: boolean as a string",
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
            json!({"active": false}),
        ),
        (
            "Okta: no-path replace of active",
            json!([{"op": "replace", "value": {"active": false}}]),
            json!({"active": false}),
        ),
        (
            "Entra: manager by bare id on the URN path",
            json!([{"op": "Add", "path": format!("{ENT}:manager"), "value": "m-1"}]),
            json!({ENT: {"manager": {"value": "m-1"}}}),
        ),
        (
            "Entra: unqualified manager path, one-element list",
            json!([{"op": "Add", "path": "manager", "value": [{"value": "m-2"}]}]),
            json!({ENT: {"manager": {"value": "m-2"}}}),
        ),
        (
            "no-path value with dotted and URN keys",
            json!([{"op": "replace", "value": {"name.givenName": "Babs", format!("{ENT}:department"): "Tours"}}]),
            json!({"name": {"givenName": "Babs", "familyName": "Jensen"}, ENT: {"department": "Tours"}}),
        ),
        (
            "no-path value under the extension URN",
            json!([{"op": "add", "value": {ENT: {"costCenter": "4130"}, "Title": "Boss"}}]),
            json!({ENT: {"costCenter": "4130"}, "title": "Boss"}),
        ),
        (
            "Entra: null means absent",
            json!([{"op": "replace", "value": {"title": null}}]),
            json!({"title": null}),
        ),
        (
            "add to a list appends and ignores exact duplicates",
            json!([{"op": "add", "path": "emails", "value": [{"value": "b@home.example", "type": "home"}, {"value": "c@x"}]}]),
            json!({"emails": [{"value": "b@work.example", "type": "work", "primary": true}, {"value": "b@home.example", "type": "home"}, {"value": "c@x"}]}),
        ),
        (
            "replace of a list replaces it",
            json!([{"op": "replace", "path": "emails", "value": [{"value": "only@x"}]}]),
            json!({"emails": [{"value": "only@x"}]}),
        ),
        (
            "a new primary clears the old one",
            json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
            json!({"emails": [{"value": "b@work.example", "type": "work"}, {"value": "b@home.example", "type": "home", "primary": true}]}),
        ),
        (
            "remove through a filter removes only the matching value",
            json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
            json!({"emails": [{"value": "b@work.example", "type": "work", "primary": true}]}),
        ),
        (
            "remove a sub-attribute",
            json!([{"op": "remove", "path": "name.givenName"}]),
            json!({"name": {"familyName": "Jensen"}}),
        ),
        (
            "an upsert through a filter that matches nothing fills one new element",
            json!([
                {"op": "add", "path": "addresses[type eq \"work\"].locality", "value": "Hollywood"},
                {"op": "add", "path": "addresses[type eq \"work\"].region", "value": "CA"},
            ]),
            json!({"addresses": [{"type": "work", "locality": "Hollywood", "region": "CA"}]}),
        ),
        (
            "attribute names in any case",
            json!([{"op": "replace", "value": {"NickName": "Babs", "Active": "true"}}]),
            json!({"nickName": "Babs", "active": true}),
        ),
        (
            "OneLogin: one object for a list",
            json!([{"op": "replace", "path": "phoneNumbers", "value": {"value": "555"}}]),
            json!({"phoneNumbers": [{"value": "555"}]}),
        ),
        (
            "delete as remove",
            json!([{"op": "delete", "path": "title"}]),
            json!({"title": null}),
        ),
    ];
    for (case, ops, want) in rows {
        let got = user(base(), ops).unwrap_or_else(|e| panic!("{case}: {}", e.detail));
        for (k, v) in want.as_object().expect("object") {
            let path: Vec<&str> = vec![k];
            assert_eq!(got.get(path[0]).unwrap_or(&Value::Null), v, "{case}");
        }
    }
}

#[test]
fn errors_name_the_operation_and_say_why() {
    let rows: Vec<(&str, Value, ScimType, &str)> = vec![
        (
            "remove without a path",
            json!([{"op": "remove"}]),
            ScimType::NoTarget,
            "remove needs a 'path'",
        ),
        (
            "unknown op",
            json!([{"op": "merge", "path": "title", "value": "x"}]),
            ScimType::InvalidSyntax,
            "unknown op 'merge'",
        ),
        (
            "readOnly path",
            json!([{"op": "replace", "path": "meta.created", "value": "2026-01-01T00:00:00Z"}]),
            ScimType::Mutability,
            "readOnly",
        ),
        (
            "readOnly groups",
            json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
            ScimType::Mutability,
            "readOnly",
        ),
        (
            "another id",
            json!([{"op": "replace", "value": {"id": "someone-else"}}]),
            ScimType::Mutability,
            "'id' is readOnly",
        ),
        (
            "unknown path",
            json!([{"op": "replace", "path": "shoeSize", "value": 4}]),
            ScimType::InvalidPath,
            "shoeSize",
        ),
        (
            "filter matching nothing, strict",
            json!([{"op": "replace", "path": "emails[type eq \"other\"].value", "value": "x"}]),
            ScimType::NoTarget,
            "emails[type eq \"other\"].value",
        ),
        (
            "remove through a filter matching nothing",
            json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]),
            ScimType::NoTarget,
            "no value matches",
        ),
        (
            "second op fails",
            json!([{"op": "replace", "path": "title", "value": "ok"}, {"op": "replace", "path": "bogus", "value": 1}]),
            ScimType::InvalidPath,
            "operation 2",
        ),
        (
            "value missing",
            json!([{"op": "add", "path": "title"}]),
            ScimType::InvalidSyntax,
            "needs a 'value'",
        ),
        (
            "bad filter",
            json!([{"op": "replace", "path": "emails[type eq].value", "value": "x"}]),
            ScimType::InvalidFilter,
            "expected a value",
        ),
    ];
    for (case, ops, scim_type, needle) in rows {
        let e = strict(base(), ops).expect_err(case);
        assert_eq!(e.scim_type, Some(scim_type), "{case}: {}", e.detail);
        assert!(
            e.detail.contains(needle),
            "{case}: '{}' lacks '{needle}'",
            e.detail
        );
    }
    // Strict mode refuses what the dialect accepts.
    assert!(
        strict(
            base(),
            json!([{"op": "Add", "path": "title", "value": "x"}])
        )
        .is_err()
    );
    assert!(
        strict(
            base(),
            json!([{"op": "add", "path": "addresses[type eq \"work\"].locality", "value": "x"}])
        )
        .is_err()
    );
}

#[test]
fn the_message_itself_is_checked() {
    let mut r = Vec::new();
    let d = Dialect::default();
    let e = parse(
        ResourceType::User,
        json!({"Operations": []}),
        &d,
        ten(),
        &mut r,
    )
    .expect_err("schemas");
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
    let e = parse(
        ResourceType::User,
        json!({"schemas": [PATCH_OP_URN], "Operations": {}}),
        &d,
        ten(),
        &mut r,
    )
    .expect_err("list");
    assert!(e.detail.contains("'Operations' must be a list"));
    let many = json!({"schemas": [PATCH_OP_URN], "Operations": vec![json!({"op": "add", "path": "title", "value": "x"}); 11]});
    assert_eq!(
        parse(ResourceType::User, many, &d, ten(), &mut r)
            .expect_err("too many")
            .scim_type,
        Some(ScimType::TooMany)
    );
}

#[test]
fn okta_rename_repeating_its_own_id_ignores_the_id() {
    let o = run_with(
        ResourceType::Group,
        json!({"displayName": "old"}),
        json!([{"op": "replace", "value": {"id": "self-id", "displayName": "new"}}]),
        &Dialect::default(),
    )
    .expect("applies");
    assert_eq!(o.attributes["displayName"], "new");
}

#[test]
fn member_operations_become_membership_changes() {
    let g = |ops: Value| {
        run_with(
            ResourceType::Group,
            json!({"displayName": "g"}),
            ops,
            &Dialect::default(),
        )
        .expect("ok")
    };
    let o = g(
        json!([{"op": "Add", "path": "members", "value": [{"value": "a", "$ref": null}, {"value": "b", "display": "B"}]}]),
    );
    assert_eq!(
        o.members
            .add
            .iter()
            .map(|m| m.value.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(
        !o.attributes_changed,
        "members never pass through the attributes"
    );

    let o = g(json!([{"op": "Remove", "path": "members", "value": [{"value": "a"}]}]));
    assert_eq!(
        (o.members.remove.clone(), o.members.replace_with.clone()),
        (vec!["a".to_owned()], None),
        "Entra: only those members"
    );

    let o = g(json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\"]"}]));
    assert_eq!(o.members.remove, ["a", "b"]);

    let o = g(json!([{"op": "replace", "path": "members", "value": []}]));
    assert_eq!(o.members.replace_with, Some(vec![]));

    let o = g(json!([
        {"op": "replace", "path": "members", "value": [{"value": "a"}]},
        {"op": "add", "path": "members", "value": [{"value": "b"}]},
        {"op": "remove", "path": "members[value eq \"a\"]"},
    ]));
    assert_eq!(
        o.members
            .replace_with
            .map(|l| l.into_iter().map(|m| m.value).collect::<Vec<_>>()),
        Some(vec!["b".to_owned()])
    );

    let strict_remove = run_with(
        ResourceType::Group,
        json!({"displayName": "g"}),
        json!([{"op": "remove", "path": "members", "value": [{"value": "a"}]}]),
        &Dialect::strict(),
    )
    .expect("ok");
    assert_eq!(
        strict_remove.members.replace_with,
        Some(vec![]),
        "RFC: remove of 'members' empties the group"
    );
    let e = run_with(
        ResourceType::Group,
        json!({}),
        json!([{"op": "remove", "path": "members[display co \"x\"]"}]),
        &Dialect::default(),
    )
    .expect_err("display filter");
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
}

#[test]
fn a_path_may_name_the_whole_extension() {
    let current = json!({"userName": "x", ENT: {"department": "A", "costCenter": "1"}});
    let add = run_with(
        ResourceType::User,
        current.clone(),
        json!([{"op": "add", "path": ENT, "value": {"division": "D"}}]),
        &Dialect::default(),
    )
    .expect("add");
    assert_eq!(
        add.attributes[ENT],
        json!({"department": "A", "costCenter": "1", "division": "D"})
    );
    let replace = run_with(
        ResourceType::User,
        current.clone(),
        json!([{"op": "replace", "path": ENT, "value": {"division": "D"}}]),
        &Dialect::default(),
    )
    .expect("replace");
    assert_eq!(replace.attributes[ENT], json!({"division": "D"}));
    let remove = run_with(
        ResourceType::User,
        current,
        json!([{"op": "remove", "path": ENT}]),
        &Dialect::default(),
    )
    .expect("remove");
    assert!(remove.attributes.get(ENT).is_none());
}

fn ten() -> PatchLimits {
    PatchLimits {
        max_operations: 10,
        ..PatchLimits::default()
    }
}
