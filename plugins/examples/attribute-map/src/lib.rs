//! `attribute-map`: moves IdP-specific attributes to where the schema wants them, by a
//! table in the plugin's configuration, so that a vendor's custom attributes are accepted
//! without code: `config.map` is `{"from": "to"}`, where each side is a top-level
//! attribute (`firstName`), a dotted sub-attribute (`name.givenName`) or a URN-qualified
//! attribute (`urn:acme:custom:1.0:User:costCenter`). A custom URN left empty is removed,
//! and from `schemas` too.

use scimgate_plugin_sdk::{Decision, Input, Map, Value, json};

pub fn handle(input: Input) -> Decision {
    let Some(table) = input.config.get("map").and_then(Value::as_object) else {
        return Decision::Accept;
    };
    let mut resource = input.resource;
    let mut changed = false;
    for (from, to) in table {
        let Some(to) = to.as_str() else { continue };
        if let Some(value) = take(&mut resource, from) {
            put(&mut resource, to, value);
            changed = true;
        }
    }
    if changed {
        Decision::Modify(resource)
    } else {
        Decision::Accept
    }
}

/// Splits `urn:…:Name:attr.sub` into (`urn:…:Name`, `attr.sub`); a plain path has no URN.
fn split(path: &str) -> (Option<&str>, &str) {
    match path.rfind(':') {
        Some(i) if path.starts_with("urn:") => (Some(&path[..i]), &path[i + 1..]),
        _ => (None, path),
    }
}

fn container<'a>(
    resource: &'a mut Value,
    urn: Option<&str>,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    let obj = resource.as_object_mut()?;
    match urn {
        None => Some(obj),
        Some(u) => {
            if create && !obj.contains_key(u) {
                obj.insert(u.to_owned(), json!({}));
            }
            obj.get_mut(u)?.as_object_mut()
        }
    }
}

fn take(resource: &mut Value, path: &str) -> Option<Value> {
    let (urn, attr) = split(path);
    let holder = container(resource, urn, false)?;
    let value = match attr.split_once('.') {
        None => holder.remove(attr)?,
        Some((a, sub)) => holder.get_mut(a)?.as_object_mut()?.remove(sub)?,
    };
    if let Some(u) = urn
        && holder.is_empty()
    {
        resource.as_object_mut()?.remove(u);
        if let Some(Value::Array(schemas)) = resource.get_mut("schemas") {
            schemas.retain(|s| s.as_str() != Some(u));
        }
    }
    Some(value)
}

fn put(resource: &mut Value, path: &str, value: Value) {
    let (urn, attr) = split(path);
    if let Some(u) = urn
        && let Some(Value::Array(schemas)) = resource.get_mut("schemas")
        && !schemas.iter().any(|s| s.as_str() == Some(u))
    {
        schemas.push(json!(u));
    }
    let Some(holder) = container(resource, urn, true) else {
        return;
    };
    match attr.split_once('.') {
        None => {
            holder.insert(attr.to_owned(), value);
        }
        Some((a, sub)) => {
            let entry = holder.entry(a.to_owned()).or_insert_with(|| json!({}));
            if let Some(obj) = entry.as_object_mut() {
                obj.insert(sub.to_owned(), value);
            }
        }
    }
}

scimgate_plugin_sdk::plugin!(handle);

#[cfg(test)]
mod tests {
    use super::*;

    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    #[test]
    fn moves_custom_and_flat_attributes_into_the_schema() {
        let input = Input {
            abi: 1,
            hook: "create".into(),
            resource_type: "User".into(),
            tenant: "t".into(),
            resource: json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:acme:custom:1.0:User"],
                "userName": "u",
                "firstName": "Ada",
                "urn:acme:custom:1.0:User": {"costCenter": "4130"},
            }),
            before: None,
            operations: None,
            request_id: None,
            receiver: None,
            config: json!({"map": {"firstName": "name.givenName", "urn:acme:custom:1.0:User:costCenter": format!("{ENT}:costCenter")}}),
        };
        let Decision::Modify(r) = handle(input) else {
            panic!("modify")
        };
        assert_eq!(
            r,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
                "userName": "u",
                "name": {"givenName": "Ada"},
                ENT: {"costCenter": "4130"},
            })
        );
    }
}
