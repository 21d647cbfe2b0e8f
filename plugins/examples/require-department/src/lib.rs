//! `require-department`: refuses Users whose enterprise `department` is missing or not in
//! the configured list (`config.allowed`), with a detail the IdP shows its admin.

use scimgate_plugin_sdk::{Decision, Input, Value};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

pub fn handle(input: Input) -> Decision {
    if input.resource_type != "User" {
        return Decision::Accept;
    }
    let allowed: Vec<&str> = input
        .config
        .get("allowed")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let department = input
        .resource
        .get(ENTERPRISE)
        .and_then(|e| e.get("department"))
        .and_then(Value::as_str);
    match department {
        None | Some("") => Decision::invalid(format!("{ENTERPRISE}:department is required")),
        Some(d) if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(d)) => {
            Decision::invalid(format!(
                "department '{d}' is not one of: {}",
                allowed.join(", ")
            ))
        }
        Some(_) => Decision::Accept,
    }
}

scimgate_plugin_sdk::plugin!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use scimgate_plugin_sdk::json;

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
            config: json!({"allowed": ["Sales", "Engineering"]}),
        }
    }

    #[test]
    fn requires_an_allowed_department() {
        assert_eq!(
            handle(input(json!({ENTERPRISE: {"department": "sales"}}))),
            Decision::Accept
        );
        assert!(matches!(
            handle(input(json!({"userName": "x"}))),
            Decision::Reject { status: 422, .. }
        ));
        let Decision::Reject { detail, .. } =
            handle(input(json!({ENTERPRISE: {"department": "Legal"}})))
        else {
            panic!("reject")
        };
        assert_eq!(
            detail,
            "department 'Legal' is not one of: Sales, Engineering"
        );
    }
}
