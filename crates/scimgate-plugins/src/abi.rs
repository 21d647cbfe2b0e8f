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
#[serde(tag = "decision", rename_all = "lowercase", deny_unknown_fields)]
pub enum Decision {
    Accept,
    Modify {
        resource: Value,
    },
    Reject {
        status: u16,
        #[serde(rename = "scimType", default)]
        scim_type: Option<String>,
        detail: String,
    },
}
