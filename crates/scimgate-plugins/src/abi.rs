//! The plugin ABI, version 1: what the host sends and what a plugin may answer.
//!
//! A plugin is a core WebAssembly module that exports `memory`, `scim_alloc(len) -> ptr`,
//! `scim_handle(ptr, len) -> i64` (output pointer in the high 32 bits, length in the low
//! 32) and a marker `scim_abi_v1`. It may import only `scimgate.log(ptr, len)`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const ABI_VERSION: u32 = 1;
pub const MARKER: &str = "scim_abi_v1";
pub const ALLOC: &str = "scim_alloc";
pub const HANDLE: &str = "scim_handle";
pub const HOST_MODULE: &str = "scimgate";
pub const LOG: &str = "log";

/// The input document of one call.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallInput<'a> {
    pub abi: u32,
    pub hook: &'a str,
    pub resource_type: &'a str,
    pub tenant: &'a str,
    /// The resource as it would be stored (the previous plugin's output).
    pub resource: &'a Value,
    /// The stored resource before the change (replace, patch).
    pub before: Option<&'a Value>,
    /// The PATCH operations (patch).
    pub operations: Option<&'a Value>,
    pub request_id: Option<&'a str>,
    /// The receiver an `event` call's event is going to (absent on writes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<&'a str>,
    pub config: &'a Value,
}

impl Decision {
    /// The decision as the ABI writes it.
    pub fn to_json(&self) -> Value {
        match self {
            Decision::Accept => serde_json::json!({"decision": "accept"}),
            Decision::Modify { resource } => {
                serde_json::json!({"decision": "modify", "resource": resource})
            }
            Decision::Reject {
                status,
                scim_type,
                detail,
            } => {
                let mut v =
                    serde_json::json!({"decision": "reject", "status": status, "detail": detail});
                if let Some(t) = scim_type {
                    v["scimType"] = Value::String(t.clone());
                }
                v
            }
        }
    }
}

/// The statuses a plugin may reject a write with: the client's faults a policy can name.
pub const REJECT_STATUSES: [u16; 4] = [400, 403, 409, 422];

impl Decision {
    /// Checks a decision against the rules every caller applies (the server and `scimgate
    /// plugin run` alike): a rejection uses one of [`REJECT_STATUSES`] and a known
    /// `scimType`; a modification returns a resource the schema accepts, unless what the
    /// plugin was given was itself invalid (then the fault is the client's, found later).
    pub fn checked(self, input: &CallInput<'_>) -> Result<Decision, String> {
        match &self {
            Decision::Reject {
                status, scim_type, ..
            } => {
                if !REJECT_STATUSES.contains(status) {
                    return Err(format!(
                        "a rejection with status {status} (a plugin may reject with 400, 403, 409 or 422)"
                    ));
                }
                if let Some(t) = scim_type
                    && scimgate_model::ScimType::from_name(t).is_none()
                {
                    return Err(format!("a rejection with the unknown scimType '{t}'"));
                }
            }
            Decision::Modify { resource } => {
                let rt = scimgate_model::ResourceType::from_name(input.resource_type);
                if let Some(rt) = rt
                    && let Err(e) = scimgate_model::validate::validate(rt, resource)
                    && scimgate_model::validate::validate(rt, input.resource).is_ok()
                {
                    return Err(format!("a {} the schema refuses: {}", rt.name(), e.detail));
                }
            }
            Decision::Accept => {}
        }
        Ok(self)
    }
}

/// What a plugin decided.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "DecisionFields")]
pub enum Decision {
    Accept,
    Modify {
        resource: Value,
    },
    Reject {
        status: u16,
        scim_type: Option<String>,
        detail: String,
    },
}

/// A decision as its JSON object, read in one pass. serde's tagged enums buffer the whole
/// object before they look at the tag: for a 1 KB resource that was a sixth of a call.
/// An unknown field is refused; a field that is `null` counts as absent (docs/plugins.md).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionFields {
    decision: String,
    resource: Option<Value>,
    status: Option<u16>,
    #[serde(rename = "scimType")]
    scim_type: Option<String>,
    detail: Option<String>,
}

impl TryFrom<DecisionFields> for Decision {
    type Error = String;

    /// Each decision takes its own fields and no other.
    fn try_from(fields: DecisionFields) -> Result<Self, String> {
        let DecisionFields {
            decision,
            resource,
            status,
            scim_type,
            detail,
        } = fields;
        let stray = |names: &[(&str, bool)]| match names.iter().find(|(_, present)| *present) {
            Some((name, _)) => Err(format!("a decision '{decision}' with the field '{name}'")),
            None => Ok(()),
        };
        match decision.as_str() {
            "accept" => {
                stray(&[
                    ("resource", resource.is_some()),
                    ("status", status.is_some()),
                    ("scimType", scim_type.is_some()),
                    ("detail", detail.is_some()),
                ])?;
                Ok(Decision::Accept)
            }
            "modify" => {
                stray(&[
                    ("status", status.is_some()),
                    ("scimType", scim_type.is_some()),
                    ("detail", detail.is_some()),
                ])?;
                let resource = resource.ok_or("a decision 'modify' without 'resource'")?;
                Ok(Decision::Modify { resource })
            }
            "reject" => {
                stray(&[("resource", resource.is_some())])?;
                match (status, detail) {
                    (Some(status), Some(detail)) => Ok(Decision::Reject {
                        status,
                        scim_type,
                        detail,
                    }),
                    _ => Err("a decision 'reject' without 'status' and 'detail'".into()),
                }
            }
            other => Err(format!(
                "the decision '{other}' (a plugin may accept, modify or reject)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_decision_reads_its_own_fields_and_refuses_any_other() {
        let user = json!({"userName": "bjensen"});
        let cases: [(Value, Result<Decision, &str>); 12] = [
            (json!({"decision": "accept"}), Ok(Decision::Accept)),
            (
                json!({"decision": "modify", "resource": user}),
                Ok(Decision::Modify {
                    resource: user.clone(),
                }),
            ),
            (
                json!({"decision": "reject", "status": 409, "scimType": "uniqueness", "detail": "taken"}),
                Ok(Decision::Reject {
                    status: 409,
                    scim_type: Some("uniqueness".into()),
                    detail: "taken".into(),
                }),
            ),
            (
                json!({"decision": "reject", "status": 403, "detail": "no"}),
                Ok(Decision::Reject {
                    status: 403,
                    scim_type: None,
                    detail: "no".into(),
                }),
            ),
            (
                json!({"decision": "accept", "resource": user}),
                Err("with the field 'resource'"),
            ),
            (
                json!({"decision": "modify", "resource": user, "detail": "x"}),
                Err("with the field 'detail'"),
            ),
            (json!({"decision": "modify"}), Err("without 'resource'")),
            (
                json!({"decision": "reject", "status": 400}),
                Err("without 'status' and 'detail'"),
            ),
            (json!({"decision": "allow"}), Err("the decision 'allow'")),
            (
                json!({"decision": "accept", "resource": null}),
                Ok(Decision::Accept),
            ),
            (
                json!({"decision": "reject", "status": 400, "detail": "no", "resource": null}),
                Ok(Decision::Reject {
                    status: 400,
                    scim_type: None,
                    detail: "no".into(),
                }),
            ),
            (
                json!({"decision": "accept", "reason": "fine"}),
                Err("unknown field `reason`"),
            ),
        ];
        for (output, expected) in cases {
            let got = serde_json::from_value::<Decision>(output.clone()).map_err(|e| e.to_string());
            match (&got, &expected) {
                (Ok(decision), Ok(wanted)) => assert_eq!(decision, wanted, "{output}"),
                (Err(error), Err(part)) => assert!(error.contains(part), "{output}: {error}"),
                _ => panic!("{output}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
