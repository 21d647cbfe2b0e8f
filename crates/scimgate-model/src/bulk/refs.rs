//! `bulkId` references (RFC 7644 §3.7.2): a string value `bulkId:<id>` anywhere in an
//! operation's data (a group's `members`, a user's `manager.value`, an extension's nested
//! values) or in its path stands for the id of the resource that the operation with that
//! `bulkId` creates. Finding them, replacing them, and setting aside the parts of a
//! resource that refer to resources not yet created (a circular reference, §3.7.1).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::ScimError;

pub const PREFIX: &str = "bulkId:";

/// Every `bulkId` referred to in `value`, in document order (repeats included).
pub fn references(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    visit(value, &mut |s| found.push(s.to_owned()));
    found
}

fn visit(value: &Value, seen: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix(PREFIX) {
                seen(id);
            }
        }
        Value::Array(list) => list.iter().for_each(|v| visit(v, seen)),
        Value::Object(obj) => obj.values().for_each(|v| visit(v, seen)),
        _ => {}
    }
}

fn refers_to(value: &Value, pending: &impl Fn(&str) -> bool) -> bool {
    let mut hit = false;
    visit(value, &mut |id| hit |= pending(id));
    hit
}

/// Replaces each reference in `value` by the id created for it; a reference to a `bulkId`
/// with no created resource is a 409 naming it.
pub fn resolve(value: &mut Value, ids: &HashMap<String, String>) -> Result<(), ScimError> {
    match value {
        Value::String(s) => {
            if let Some(bulk_id) = s.strip_prefix(PREFIX) {
                match ids.get(bulk_id) {
                    Some(id) => *s = id.clone(),
                    None => return Err(unresolved(bulk_id)),
                }
            }
            Ok(())
        }
        Value::Array(list) => list.iter_mut().try_for_each(|v| resolve(v, ids)),
        Value::Object(obj) => obj.values_mut().try_for_each(|v| resolve(v, ids)),
        _ => Ok(()),
    }
}

pub fn unresolved(bulk_id: &str) -> ScimError {
    ScimError::new(
        409,
        Some(crate::ScimType::InvalidValue),
        format!(
            "'bulkId:{}' refers to no resource created by this request (the operation with that bulkId failed, was not run, or does not exist)",
            crate::excerpt(bulk_id, 64)
        ),
    )
}

/// The parts of a resource set aside until the resources they refer to exist, as the
/// operations of the PATCH that adds them afterwards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deferred {
    pub operations: Vec<Value>,
}

impl Deferred {
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// The PATCH request that adds the deferred parts (references still unresolved).
    pub fn patch_body(&self) -> Value {
        json!({
            "schemas": [crate::patch::PATCH_OP_URN],
            "Operations": self.operations,
        })
    }
}

/// Takes out of a resource's `data` every attribute value that refers to a `pending`
/// bulkId: from a multi-valued attribute the values that do (the others stay), a singular
/// attribute whole; in an extension (`urn:…` object) the same, one level down. What was
/// taken out comes back as `add` operations to apply once the references can be resolved.
pub fn defer_pending(data: &mut Value, pending: impl Fn(&str) -> bool) -> Deferred {
    let mut deferred = Deferred::default();
    let Value::Object(obj) = data else {
        return deferred;
    };
    let extensions: Vec<String> = obj
        .iter()
        .filter(|(k, v)| k.starts_with("urn:") && v.is_object())
        .map(|(k, _)| k.clone())
        .collect();
    for urn in extensions {
        if let Some(Value::Object(ext)) = obj.get_mut(&urn) {
            take_pending(ext, &format!("{urn}:"), &pending, &mut deferred);
        }
    }
    take_pending(obj, "", &pending, &mut deferred);
    deferred
}

fn take_pending(
    obj: &mut Map<String, Value>,
    prefix: &str,
    pending: &impl Fn(&str) -> bool,
    deferred: &mut Deferred,
) {
    let keys: Vec<String> = obj
        .iter()
        .filter(|(k, v)| !(prefix.is_empty() && k.starts_with("urn:") && v.is_object()))
        .filter(|(_, v)| refers_to(v, pending))
        .map(|(k, _)| k.clone())
        .collect();
    for key in keys {
        let Some(value) = obj.remove(&key) else {
            continue;
        };
        let later = match value {
            Value::Array(list) => {
                let (later, now): (Vec<Value>, Vec<Value>) =
                    list.into_iter().partition(|v| refers_to(v, pending));
                if !now.is_empty() {
                    obj.insert(key.clone(), Value::Array(now));
                }
                Value::Array(later)
            }
            other => other,
        };
        deferred
            .operations
            .push(json!({"op": "add", "path": format!("{prefix}{key}"), "value": later}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_anywhere() {
        let data = json!({
            "members": [{"value": "bulkId:u1"}, {"value": "plain-id"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "bulkId:m"}},
            "urn:x:Custom": {"deep": [{"owner": {"ref": "bulkId:o"}}]},
            "displayName": "bulkId-less"
        });
        let mut found = references(&data);
        found.sort();
        assert_eq!(found, ["m", "o", "u1"]);
    }

    #[test]
    fn resolving_replaces_each_reference_or_names_the_missing_one() {
        let ids = HashMap::from([("u1".to_owned(), "id-1".to_owned())]);
        let mut data = json!({"members": [{"value": "bulkId:u1"}], "x": "bulkId:u1"});
        resolve(&mut data, &ids).expect("resolved");
        assert_eq!(data, json!({"members": [{"value": "id-1"}], "x": "id-1"}));
        let mut data = json!({"members": [{"value": "bulkId:gone"}]});
        let e = resolve(&mut data, &ids).expect_err("unknown");
        assert_eq!(e.status, 409);
        assert!(e.detail.contains("bulkId:gone"), "{}", e.detail);
    }

    #[test]
    fn pending_parts_are_set_aside_as_add_operations() {
        let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let rows: Vec<(&str, Value, Value, Vec<Value>)> = vec![
            (
                "members: only the pending ones move",
                json!({"displayName": "A", "members": [{"value": "bulkId:b"}, {"value": "bulkId:done"}]}),
                json!({"displayName": "A", "members": [{"value": "bulkId:done"}]}),
                vec![json!({"op": "add", "path": "members", "value": [{"value": "bulkId:b"}]})],
            ),
            (
                "members: all pending, the attribute goes",
                json!({"displayName": "A", "members": [{"value": "bulkId:b"}]}),
                json!({"displayName": "A"}),
                vec![json!({"op": "add", "path": "members", "value": [{"value": "bulkId:b"}]})],
            ),
            (
                "manager in the enterprise extension",
                json!({"userName": "u", enterprise: {"manager": {"value": "bulkId:b"}, "department": "D"}}),
                json!({"userName": "u", enterprise: {"department": "D"}}),
                vec![
                    json!({"op": "add", "path": format!("{enterprise}:manager"), "value": {"value": "bulkId:b"}}),
                ],
            ),
            (
                "nothing pending",
                json!({"displayName": "A", "members": [{"value": "bulkId:done"}]}),
                json!({"displayName": "A", "members": [{"value": "bulkId:done"}]}),
                vec![],
            ),
        ];
        for (label, mut data, kept, later) in rows {
            let deferred = defer_pending(&mut data, |id| id == "b");
            assert_eq!(data, kept, "{label}");
            assert_eq!(deferred.operations, later, "{label}");
        }
    }
}
