use serde_json::json;

use super::*;
use crate::error::ScimType;
use crate::schema::AttributeDef as A;
use crate::schemas::{ENTERPRISE_USER_URN, GROUP_URN, USER_URN};

fn user(extra: Value) -> Value {
    let mut base = json!({"schemas": [USER_URN], "userName": "bjensen"});
    for (k, v) in extra.as_object().into_iter().flatten() {
        base[k] = v.clone();
    }
    base
}

fn err(v: Value) -> ScimError {
    validate(ResourceType::User, &v).expect_err("should be rejected")
}

#[test]
fn canonicalises_names_and_drops_read_only_input() {
    // Entra and Okta echo meta, id and groups back: ignored, not errors (RFC 7643 §2.2).
    let v = validate(
        ResourceType::User,
        &json!({
            "Schemas": [USER_URN],
            "USERNAME": "bjensen",
            "id": "abc",
            "meta": {"resourceType": "User"},
            "groups": [],
            "NAME": {"GivenName": "Barbara"},
            "emails": [{"Value": "b@example.com", "TYPE": "work", "primary": true}],
        }),
    )
    .expect("valid");
    assert_eq!(
        Value::Object(v.attributes),
        json!({
            "userName": "bjensen",
            "name": {"givenName": "Barbara"},
            "emails": [{"value": "b@example.com", "type": "work", "primary": true}],
        })
    );
}

#[test]
fn rejection_table() {
    let rows: &[(&str, Value, ScimType, &str)] = &[
        (
            "unknown top-level attribute",
            user(json!({"shoeSize": 42})),
            ScimType::InvalidSyntax,
            "'shoeSize'",
        ),
        (
            "unknown sub-attribute",
            user(json!({"name": {"nick": "x"}})),
            ScimType::InvalidSyntax,
            "'name.nick'",
        ),
        (
            "boolean as number",
            user(json!({"active": 1})),
            ScimType::InvalidValue,
            "'active' must be a boolean",
        ),
        (
            "string as object",
            user(json!({"title": {"a": 1}})),
            ScimType::InvalidValue,
            "'title' must be a string",
        ),
        (
            "multi-valued as object",
            user(json!({"emails": {"value": "x"}})),
            ScimType::InvalidValue,
            "'emails' is multi-valued",
        ),
        (
            "singular as list",
            user(json!({"displayName": ["x"]})),
            ScimType::InvalidValue,
            "'displayName' is single-valued",
        ),
        (
            "two primaries",
            user(
                json!({"emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
            ),
            ScimType::InvalidValue,
            "more than one value with primary",
        ),
        (
            "sub-attribute type",
            user(json!({"emails": [{"value": "a", "primary": "yes"}]})),
            ScimType::InvalidValue,
            "'emails.primary' must be a boolean",
        ),
        (
            "binary not base64",
            user(json!({"x509Certificates": [{"value": "***"}]})),
            ScimType::InvalidValue,
            "'x509Certificates.value' must be base64",
        ),
        (
            "missing userName",
            json!({"schemas": [USER_URN]}),
            ScimType::InvalidValue,
            "'userName' is required",
        ),
        (
            "blank userName",
            json!({"schemas": [USER_URN], "userName": "  "}),
            ScimType::InvalidValue,
            "'userName' must not be empty",
        ),
        (
            "missing schemas",
            json!({"userName": "x"}),
            ScimType::InvalidSyntax,
            "'schemas' is required",
        ),
        (
            "schemas without core",
            json!({"schemas": [GROUP_URN], "userName": "x"}),
            ScimType::InvalidSyntax,
            "must include",
        ),
        (
            "unknown extension data",
            json!({"schemas": [USER_URN, "urn:acme:ext"], "userName": "x", "urn:acme:ext": {"a": 1}}),
            ScimType::InvalidSyntax,
            "'urn:acme:ext' is not supported",
        ),
        (
            "unknown enterprise attribute",
            user(json!({ENTERPRISE_USER_URN: {"floor": 3}})),
            ScimType::InvalidSyntax,
            "'floor'",
        ),
        (
            "body not an object",
            json!([1]),
            ScimType::InvalidSyntax,
            "JSON object",
        ),
    ];
    for (case, body, scim_type, needle) in rows {
        let e = err(body.clone());
        assert_eq!(e.status, 400, "{case}");
        assert_eq!(e.scim_type, Some(*scim_type), "{case}: {}", e.detail);
        assert!(
            e.detail.contains(needle),
            "{case}: '{}' lacks {needle}",
            e.detail
        );
    }
}

#[test]
fn extra_schema_urn_without_attributes_is_accepted() {
    // Entra: "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group".
    let body = json!({
        "schemas": [GROUP_URN, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "displayName": "Sales",
    });
    let v = validate(ResourceType::Group, &body).expect("valid");
    assert_eq!(v.name(), "Sales");
    assert!(v.members.is_empty());
}

#[test]
fn nulls_and_empty_lists_mean_unassigned() {
    let v = validate(
        ResourceType::User,
        &user(json!({"title": null, "roles": [], "name": {"givenName": null}})),
    )
    .expect("valid");
    assert!(!v.attributes.contains_key("title"));
    assert!(!v.attributes.contains_key("roles"));
    assert!(
        !v.attributes.contains_key("name"),
        "an object of nulls is unassigned"
    );
}

#[test]
fn password_is_split_off_and_extension_kept_under_its_urn() {
    let v = validate(
        ResourceType::User,
        &user(json!({"password": "s3cret", ENTERPRISE_USER_URN.to_uppercase(): {"Department": "R&D", "manager": {"value": "m1", "displayName": "ignored"}}})),
    )
    .expect("valid");
    assert_eq!(v.password, crate::PasswordChange::Set("s3cret".into()));
    assert!(!v.attributes.contains_key("password"));
    assert_eq!(
        v.attributes[ENTERPRISE_USER_URN],
        json!({"department": "R&D", "manager": {"value": "m1"}})
    );
    assert_eq!(v.schema_urns(), vec![USER_URN, ENTERPRISE_USER_URN]);
}

#[test]
fn group_members_are_collected_deduplicated_and_typed() {
    let v = validate(
        ResourceType::Group,
        &json!({"schemas": [GROUP_URN], "displayName": "g", "members": [
            {"value": "u1", "$ref": null},
            {"value": "u1", "display": "dup"},
            {"value": "g2", "type": "group"},
        ]}),
    )
    .expect("valid");
    assert_eq!(
        v.members,
        vec![
            MemberInput {
                value: "u1".into(),
                member_type: None
            },
            MemberInput {
                value: "g2".into(),
                member_type: Some(ResourceType::Group)
            },
        ]
    );
    assert!(!v.attributes.contains_key("members"));
    let e = validate(
        ResourceType::Group,
        &json!({"schemas": [GROUP_URN], "displayName": "g", "members": [{"display": "x"}]}),
    )
    .expect_err("member without value");
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    let e = validate(ResourceType::Group, &json!({"schemas": [GROUP_URN], "displayName": "g", "members": [{"value": "x", "type": "Robot"}]}))
        .expect_err("bad member type");
    assert!(e.detail.contains("'Robot'"));
}

#[test]
fn date_times_must_be_rfc3339() {
    let def = A::new("when", AttrType::DateTime, "");
    assert!(validate_attribute(&def, &json!("2026-11-28T10:00:00Z"), "when").is_ok());
    assert!(validate_attribute(&def, &json!("2026-11-28T10:00:00.5+02:00"), "when").is_ok());
    let e = validate_attribute(&def, &json!("28/11/2026"), "when").expect_err("not a dateTime");
    assert!(e.detail.contains("'when' must be an RFC 3339 dateTime"));
}

#[test]
fn integers_and_decimals() {
    let int = A::new("n", AttrType::Integer, "");
    let dec = A::new("d", AttrType::Decimal, "");
    assert!(validate_attribute(&int, &json!(3), "n").is_ok());
    assert!(validate_attribute(&int, &json!(3.5), "n").is_err());
    assert!(validate_attribute(&dec, &json!(3.5), "d").is_ok());
    assert!(validate_attribute(&dec, &json!("3.5"), "d").is_err());
}

#[test]
fn immutable_values_cannot_change_but_carry_over_when_omitted() {
    let defs = vec![
        A::string("badge", "").mutability(Mutability::Immutable),
        A::complex(
            "card",
            "",
            vec![
                A::string("serial", "").mutability(Mutability::Immutable),
                A::string("label", ""),
            ],
        ),
    ];
    let stored: Map<String, Value> =
        json!({"badge": "B1", "card": {"serial": "S1", "label": "old"}})
            .as_object()
            .cloned()
            .unwrap_or_default();

    let mut same = json!({"badge": "B1", "card": {"serial": "S1", "label": "new"}})
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(carry_immutable_in(&defs, &stored, &mut same, "").is_ok());

    let mut omitted = json!({"card": {"label": "new"}})
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(carry_immutable_in(&defs, &stored, &mut omitted, "").is_ok());
    assert_eq!(
        Value::Object(omitted),
        json!({"card": {"label": "new", "serial": "S1"}, "badge": "B1"})
    );

    let mut changed = json!({"badge": "B2"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let e = carry_immutable_in(&defs, &stored, &mut changed, "").expect_err("immutable");
    assert_eq!(e.scim_type, Some(ScimType::Mutability));
    assert!(e.detail.contains("'badge'"));

    let mut sub_changed = json!({"card": {"serial": "S2"}})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let e = carry_immutable_in(&defs, &stored, &mut sub_changed, "").expect_err("immutable sub");
    assert!(e.detail.contains("'card.serial'"));
}

#[test]
fn list_values_of_only_nulls_are_dropped() {
    let v = validate(
        ResourceType::User,
        &user(json!({"emails": [{"value": null}, {"value": "a@x"}], "roles": [{}]})),
    )
    .expect("valid");
    assert_eq!(v.attributes["emails"], json!([{"value": "a@x"}]));
    assert!(!v.attributes.contains_key("roles"));
}
