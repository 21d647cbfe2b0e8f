//! What a write changed, as the change feed tells it: the attributes it set, changed or
//! removed (for `notice` events), whether it activated or deactivated the resource, and a
//! PATCH's operations as applied (for `full` patch events). Passwords never appear, only
//! the name `password` when one was set or cleared.

use serde_json::{Map, Value};

use crate::dialect::Dialect;
use crate::patch::{OpKind, Operation};
use crate::path::PathTarget;
use crate::schema::{AttributeDef, Returned, find_attribute};
use crate::{PasswordChange, ResourceType};

/// The top-level attributes whose values differ between `before` (none for a create) and
/// `after`, in `after`'s order, then those removed; `password` when the write sets or
/// clears it. `schemas` is not an attribute.
pub fn changed_attributes(
    before: Option<&Map<String, Value>>,
    after: &Map<String, Value>,
    password: &PasswordChange,
) -> Vec<String> {
    let empty = Map::new();
    let before = before.unwrap_or(&empty);
    let mut names: Vec<String> = after
        .iter()
        .filter(|(name, value)| *name != "schemas" && before.get(*name) != Some(*value))
        .map(|(name, _)| name.clone())
        .collect();
    names.extend(
        before
            .keys()
            .filter(|name| *name != "schemas" && !after.contains_key(*name))
            .cloned(),
    );
    if !password.is_keep() {
        names.push("password".into());
    }
    names
}

/// `Some(true)` when `active` went from false to true, `Some(false)` from true to false;
/// `None` otherwise. An absent `active` is no state at all: setting it for the first
/// time, or removing it, is neither.
pub fn activation(before: Option<&Map<String, Value>>, after: &Map<String, Value>) -> Option<bool> {
    let was = before?.get("active")?.as_bool()?;
    let is = after.get("active")?.as_bool()?;
    (was != is).then_some(is)
}

/// Whether an attribute name or PATCH path names the password: `password` in any case and
/// with spaces around, or URN-qualified (`urn:…:User:password`, `urn:…:User:Password`).
pub fn names_password(name: &str) -> bool {
    let name = name.trim();
    let last = name.rsplit_once(':').map_or(name, |(_, last)| last);
    last.trim().eq_ignore_ascii_case("password")
}

/// A PATCH's operations as applied: the operation's name and value after the dialect
/// rules, the path as the client wrote it; no password anywhere: an operation whose path
/// or attribute is the password is left out, and a member naming the password is taken
/// out of a value, at any depth.
pub fn applied_operations(rt: ResourceType, ops: &[Operation], dialect: &Dialect) -> Value {
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let path = match (&op.target, op.extension) {
            (Some(target), _) => Some(target.text.clone()),
            (None, Some(schema)) => Some(schema.id.to_owned()),
            (None, None) => None,
        };
        let on_password = op
            .target
            .as_ref()
            .is_some_and(|t| t.attr.attr.name.eq_ignore_ascii_case("password"))
            || path.as_deref().is_some_and(names_password);
        // Nor anything else never returned (an operator's writeOnly attributes).
        let on_never = op.target.as_ref().is_some_and(|t| {
            t.attr.attr.returned == Returned::Never || t.attr.leaf().returned == Returned::Never
        });
        if on_password || on_never {
            continue;
        }
        let mut entry = Map::new();
        let name = match op.kind {
            OpKind::Add => "add",
            OpKind::Remove => "remove",
            OpKind::Replace => "replace",
        };
        entry.insert("op".into(), Value::String(name.into()));
        if let Some(path) = path {
            entry.insert("path".into(), Value::String(path));
        }
        if let Some(mut value) = op.normalized_value(rt, dialect) {
            without_passwords(&mut value);
            match (&op.target, op.extension, &mut value) {
                // A whole complex attribute: its never-returned sub-attributes go.
                (Some(t), _, v) if t.attr.sub.is_none() => strip_never_in(t.attr.attr, v),
                (Some(_), _, _) => {}
                // A whole extension: its attributes, named in any case.
                (None, Some(ext), Value::Object(attrs)) => strip_defs(&ext.attributes, attrs),
                // No path: attribute names, dotted or URN-qualified paths, extensions.
                (None, None, Value::Object(attrs)) => without_never_returned(rt, attrs),
                (None, _, _) => {}
            }
            entry.insert("value".into(), value);
        }
        out.push(Value::Object(entry));
    }
    Value::Array(out)
}

/// Takes out of a resource's attributes every value that is never returned (RFC 7643 §7
/// `returned: never`: an operator's writeOnly attributes, and their sub-attributes), so
/// that the change feed tells no more than a GET.
pub fn without_never_returned(rt: ResourceType, attrs: &mut Map<String, Value>) {
    // Each key as a path (`title`, `name.givenName`, `urn:…:User:secret`, `urn:…:User`),
    // resolved as PATCH and the validator resolve them: case-insensitively.
    attrs.retain(|key, value| match crate::path::resolve(rt, key) {
        Ok(PathTarget::Attribute(p)) => {
            if p.attr.returned == Returned::Never || p.leaf().returned == Returned::Never {
                return false;
            }
            if p.sub.is_none() {
                strip_never_in(p.attr, value);
            }
            true
        }
        Ok(PathTarget::Extension(ext)) => {
            if let Value::Object(inner) = value {
                strip_defs(&ext.attributes, inner);
            }
            true
        }
        Err(_) => true,
    });
}

fn strip_defs(defs: &[AttributeDef], attrs: &mut Map<String, Value>) {
    attrs.retain(|k, _| find_attribute(defs, k).is_none_or(|d| d.returned != Returned::Never));
    for (k, v) in attrs.iter_mut() {
        if let Some(def) = find_attribute(defs, k) {
            strip_never_in(def, v);
        }
    }
}

/// The never-returned sub-attributes of complex attribute `def`'s value(s) taken out.
fn strip_never_in(def: &AttributeDef, value: &mut Value) {
    if def.sub_attributes.is_empty() {
        return;
    }
    match value {
        Value::Object(obj) => obj.retain(|k, _| {
            def.sub_attribute(k)
                .is_none_or(|s| s.returned != Returned::Never)
        }),
        Value::Array(items) => items.iter_mut().for_each(|v| strip_never_in(def, v)),
        _ => {}
    }
}

/// Takes every member naming the password out of `value`, at any depth.
pub fn without_passwords(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.retain(|k, _| !names_password(k));
            fields.values_mut().for_each(without_passwords);
        }
        Value::Array(items) => items.iter_mut().for_each(without_passwords),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::{PatchLimits, parse};
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn changed_attributes_name_what_differs() {
        let keep = PasswordChange::Keep;
        let set = PasswordChange::Set("hash".into());
        // (before, after, password, names)
        let rows: Vec<(Option<Value>, Value, &PasswordChange, Vec<&str>)> = vec![
            (
                None,
                json!({"schemas": [], "userName": "a", "active": true}),
                &set,
                vec!["userName", "active", "password"],
            ),
            (
                Some(json!({"userName": "a", "title": "x"})),
                json!({"userName": "a", "title": "y"}),
                &keep,
                vec!["title"],
            ),
            (
                Some(json!({"userName": "a", "title": "x"})),
                json!({"userName": "a", "nickName": "n"}),
                &keep,
                vec!["nickName", "title"],
            ),
            (
                Some(json!({"userName": "a"})),
                json!({"userName": "a"}),
                &PasswordChange::Clear,
                vec!["password"],
            ),
            (
                Some(json!({"userName": "a"})),
                json!({"userName": "a"}),
                &keep,
                vec![],
            ),
        ];
        for (before, after, password, names) in rows {
            let before = before.map(map);
            let got = changed_attributes(before.as_ref(), &map(after.clone()), password);
            assert_eq!(got, names, "{before:?} → {after}");
        }
    }

    #[test]
    fn activation_is_a_flip_of_active() {
        // (before, after, activation)
        let rows: Vec<(Option<Value>, Value, Option<bool>)> = vec![
            (
                Some(json!({"active": true})),
                json!({"active": false}),
                Some(false),
            ),
            (
                Some(json!({"active": false})),
                json!({"active": true}),
                Some(true),
            ),
            (Some(json!({"active": true})), json!({"active": true}), None),
            (Some(json!({})), json!({"active": false}), None),
            (Some(json!({"active": true})), json!({}), None),
            (None, json!({"active": true}), None),
        ];
        for (before, after, expected) in rows {
            let before = before.map(map);
            assert_eq!(
                activation(before.as_ref(), &map(after.clone())),
                expected,
                "{before:?} → {after}"
            );
        }
    }

    #[test]
    fn applied_operations_are_normalised_and_keep_no_password() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "replace", "path": "password", "value": "Secret-1"},
                {"op": "add", "value": {"nickName": "n", "PASSWORD": "Secret-2"}},
                {"op": "remove", "path": "title"},
                {"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:password", "value": "Secret-3"},
                {"op": "replace", "path": " password", "value": "Secret-4"},
                {"op": "replace", "value": {"urn:ietf:params:scim:schemas:core:2.0:User:Password": "Secret-5", "title": "t"}}
            ]
        });
        let ops = parse(
            ResourceType::User,
            body,
            &Dialect::default(),
            PatchLimits::default(),
            &mut Vec::new(),
        )
        .expect("parses");
        let applied = applied_operations(ResourceType::User, &ops, &Dialect::default());
        assert_eq!(
            applied,
            json!([
                {"op": "replace", "path": "active", "value": false},
                {"op": "add", "value": {"nickName": "n"}},
                {"op": "remove", "path": "title"},
                {"op": "replace", "value": {"title": "t"}}
            ])
        );
        assert!(!applied.to_string().contains("Secret"));
    }
}
