//! `username-from-email`: when a User's `userName` is not its primary work email (some
//! IdPs send an employee number or a GUID), derive the `userName` from that email, in
//! lower case. Mapping, not validation: users without a work email pass unchanged.

use scimgate_plugin_sdk::{Decision, Input, Value, json};

pub fn handle(input: Input) -> Decision {
    if input.resource_type != "User" {
        return Decision::Accept;
    }
    let Some(email) = work_email(&input.resource) else {
        return Decision::Accept;
    };
    let wanted = email.to_lowercase();
    if input.resource.get("userName").and_then(Value::as_str) == Some(wanted.as_str()) {
        return Decision::Accept;
    }
    let mut resource = input.resource;
    resource["userName"] = json!(wanted);
    Decision::Modify(resource)
}

/// The primary work email, else the first work email.
fn work_email(resource: &Value) -> Option<&str> {
    let emails = resource.get("emails")?.as_array()?;
    let work = |e: &&Value| {
        e.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("work"))
    };
    emails
        .iter()
        .filter(work)
        .find(|e| e.get("primary") == Some(&json!(true)))
        .or_else(|| emails.iter().find(work))
        .and_then(|e| e.get("value")?.as_str())
}

scimgate_plugin_sdk::plugin!(handle);

#[cfg(test)]
mod tests {
    use super::*;

    fn input(resource: Value) -> Input {
        Input {
            abi: 1,
            hook: "create".into(),
            resource_type: "User".into(),
            tenant: "t".into(),
            resource,
            before: None,
            operations: None,
            request_id: None,
            receiver: None,
            config: json!({}),
        }
    }

    #[test]
    fn derives_the_user_name_from_the_primary_work_email() {
        let d = handle(input(
            json!({"userName": "E12345", "emails": [{"value": "x@home", "type": "home"}, {"value": "Jane.Doe@Example.com", "type": "work", "primary": true}]}),
        ));
        assert_eq!(
            d,
            Decision::Modify(
                json!({"userName": "jane.doe@example.com", "emails": [{"value": "x@home", "type": "home"}, {"value": "Jane.Doe@Example.com", "type": "work", "primary": true}]})
            )
        );
        assert_eq!(
            handle(input(
                json!({"userName": "jane.doe@example.com", "emails": [{"value": "Jane.Doe@Example.com", "type": "work"}]})
            )),
            Decision::Accept
        );
        assert_eq!(
            handle(input(json!({"userName": "no-mail"}))),
            Decision::Accept
        );
    }
}
