//! `hr-event-map`: an `event` hook plugin, the outbound twin of `attribute-map`. It maps
//! scimgate's events to what a downstream HR system expects, for the receivers it is
//! configured for: `config.map` renames attributes (`{"userName": "login",
//! "name.givenName": "first_name"}`) in a `full` event's resource, in a `full` patch
//! event's operation paths and in a `notice` event's attribute names; `config.drop` lists
//! resource types whose events the receiver does not want (`["Group"]`): those are
//! dropped for it (rejected).

use scimgate_plugin_sdk::{Decision, Input, Map, Value, json};

pub fn handle(input: Input) -> Decision {
    if input.hook != "event" {
        return Decision::Accept;
    }
    let dropped = input
        .config
        .get("drop")
        .and_then(Value::as_array)
        .is_some_and(|types| {
            types
                .iter()
                .any(|t| t.as_str() == Some(&input.resource_type))
        });
    if dropped {
        return Decision::Reject {
            status: 422,
            scim_type: None,
            detail: "not wanted downstream".into(),
        };
    }
    let Some(table) = input.config.get("map").and_then(Value::as_object) else {
        return Decision::Accept;
    };
    let mut claims = input.resource;
    let mut changed = false;
    if let Some(events) = claims.get_mut("events").and_then(Value::as_object_mut) {
        for payload in events.values_mut() {
            changed |= map_payload(payload, table);
        }
    }
    if changed {
        Decision::Modify(claims)
    } else {
        Decision::Accept
    }
}

/// Renames in one event's payload; whether anything changed.
fn map_payload(payload: &mut Value, table: &Map<String, Value>) -> bool {
    let mut changed = false;
    let renames = table
        .iter()
        .filter_map(|(from, to)| Some((from.as_str(), to.as_str()?)));
    for (from, to) in renames {
        // A full create or put: the resource.
        if let Some(data) = payload.get_mut("data").and_then(Value::as_object_mut) {
            if let Some(value) = take(data, from) {
                put(data, to, value);
                changed = true;
            }
            // A full patch: the operations' paths.
            if let Some(ops) = data.get_mut("Operations").and_then(Value::as_array_mut) {
                for op in ops {
                    if let Some(path) = op.get_mut("path") {
                        if path.as_str() == Some(from) {
                            *path = json!(to);
                            changed = true;
                        }
                    } else if let Some(value) = op.get_mut("value").and_then(Value::as_object_mut)
                        && let Some(v) = take(value, from)
                    {
                        put(value, to, v);
                        changed = true;
                    }
                }
            }
        }
        // A notice: the attribute names.
        if let Some(names) = payload.get_mut("attributes").and_then(Value::as_array_mut) {
            let top = from.split('.').next().unwrap_or(from);
            for name in names.iter_mut() {
                if name.as_str() == Some(from) || name.as_str() == Some(top) {
                    *name = json!(to);
                    changed = true;
                }
            }
        }
    }
    changed
}

fn take(obj: &mut Map<String, Value>, path: &str) -> Option<Value> {
    match path.split_once('.') {
        None => obj.remove(path),
        Some((a, sub)) => {
            let holder = obj.get_mut(a)?.as_object_mut()?;
            let value = holder.remove(sub)?;
            if holder.is_empty() {
                obj.remove(a);
            }
            Some(value)
        }
    }
}

fn put(obj: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            obj.insert(path.to_owned(), value);
        }
        Some((a, sub)) => {
            let entry = obj.entry(a.to_owned()).or_insert_with(|| json!({}));
            if let Some(holder) = entry.as_object_mut() {
                holder.insert(sub.to_owned(), value);
            }
        }
    }
}

scimgate_plugin_sdk::plugin!(handle);

#[cfg(test)]
mod tests {
    use super::*;

    fn input(resource_type: &str, claims: Value) -> Input {
        Input {
            abi: 1,
            hook: "event".into(),
            resource_type: resource_type.into(),
            tenant: "t".into(),
            resource: claims,
            before: None,
            operations: None,
            request_id: None,
            receiver: Some("hr".into()),
            config: json!({"map": {"userName": "login", "name.givenName": "first_name"}, "drop": ["Group"]}),
        }
    }

    const CREATE: &str = "urn:ietf:params:scim:event:prov:create:full";

    #[test]
    fn renames_a_full_event_and_drops_what_is_not_wanted() {
        let claims = json!({"events": {CREATE: {"data": {"userName": "ada", "name": {"givenName": "Ada"}}}}});
        let Decision::Modify(out) = handle(input("User", claims)) else {
            panic!("modify")
        };
        assert_eq!(
            out["events"][CREATE]["data"],
            json!({"login": "ada", "first_name": "Ada"})
        );
        let group = json!({"events": {CREATE: {"data": {"displayName": "g"}}}});
        assert!(matches!(
            handle(input("Group", group)),
            Decision::Reject { .. }
        ));
    }

    #[test]
    fn renames_patch_paths_and_notice_names() {
        let patch = "urn:ietf:params:scim:event:prov:patch:full";
        let claims = json!({"events": {patch: {"data": {"Operations": [{"op": "replace", "path": "userName", "value": "b"}]}}}});
        let Decision::Modify(out) = handle(input("User", claims)) else {
            panic!("modify")
        };
        assert_eq!(
            out["events"][patch]["data"]["Operations"][0]["path"],
            "login"
        );
        let notice = "urn:ietf:params:scim:event:prov:put:notice";
        let claims = json!({"events": {notice: {"attributes": ["userName", "name", "title"]}}});
        let Decision::Modify(out) = handle(input("User", claims)) else {
            panic!("modify")
        };
        assert_eq!(
            out["events"][notice]["attributes"],
            json!(["login", "first_name", "title"])
        );
    }
}
