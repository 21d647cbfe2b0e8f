//! The guest side of scimgate's plugin ABI (version 1, `docs/plugins.md`): a plugin is a
//! function from [`Input`] to [`Decision`], and `scimgate_plugin_sdk::plugin!(handler);`
//! exports everything the host expects.
//!
//! ```ignore
//! use scimgate_plugin_sdk::{Decision, Input};
//!
//! fn handle(input: Input) -> Decision {
//!     Decision::Accept
//! }
//!
//! scimgate_plugin_sdk::plugin!(handle);
//! ```

// Unused (and only unit-tested) off wasm32, where the system allocator serves.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod arena;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: arena::BumpAllocator = arena::BumpAllocator;

use serde::Deserialize;
pub use serde_json::{self, Map, Value, json};

/// What the host sends on every call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub abi: u32,
    /// `create`, `replace`, `patch`, `delete` or `event`.
    pub hook: String,
    /// `User` or `Group`.
    pub resource_type: String,
    pub tenant: String,
    /// The resource as it would be stored; on the `event` hook, the event's SET claims.
    pub resource: Value,
    /// The stored resource before the change (replace, patch).
    pub before: Option<Value>,
    pub operations: Option<Value>,
    pub request_id: Option<String>,
    /// On the `event` hook: the receiver the event is going to.
    #[serde(default)]
    pub receiver: Option<String>,
    /// The plugin's own configuration.
    pub config: Value,
}

/// A plugin's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Store the resource as it is.
    Accept,
    /// Store this resource instead (it is still validated against the schema).
    Modify(Value),
    /// Refuse the write: status 400, 403, 409 or 422, an optional `scimType`, and a detail
    /// for the IdP's provisioning log.
    Reject {
        status: u16,
        scim_type: Option<&'static str>,
        detail: String,
    },
}

impl Decision {
    /// 422 `invalidValue` with `detail`.
    pub fn invalid(detail: impl Into<String>) -> Decision {
        Decision::Reject {
            status: 422,
            scim_type: Some("invalidValue"),
            detail: detail.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Decision::Accept => json!({"decision": "accept"}),
            Decision::Modify(resource) => json!({"decision": "modify", "resource": resource}),
            Decision::Reject {
                status,
                scim_type,
                detail,
            } => {
                let mut v = json!({"decision": "reject", "status": status, "detail": detail});
                if let Some(t) = scim_type {
                    v["scimType"] = json!(t);
                }
                v
            }
        }
    }
}

#[link(wasm_import_module = "scimgate")]
unsafe extern "C" {
    #[link_name = "log"]
    fn host_log(ptr: *const u8, len: usize);
}

/// Logs a line through the host (at debug, tagged with the plugin's name).
pub fn log(message: &str) {
    // SAFETY: the host reads `len` bytes at `ptr` from this module's memory and keeps none.
    unsafe { host_log(message.as_ptr(), message.len()) }
}

/// `scim_alloc`: memory for the input. Never freed: every call gets a fresh instance.
#[doc(hidden)]
pub fn alloc(len: i32) -> i32 {
    let buf: Vec<u8> = Vec::with_capacity(len.max(0) as usize);
    buf.leak().as_mut_ptr() as i32
}

/// `scim_handle`: parses the input, runs the handler, returns the packed output.
#[doc(hidden)]
pub fn handle(ptr: i32, len: i32, handler: fn(Input) -> Decision) -> i64 {
    // SAFETY: the host wrote `len` bytes at the pointer `alloc` returned for them.
    let bytes =
        unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len.max(0) as usize) };
    let decision = match serde_json::from_slice::<Input>(bytes) {
        Ok(input) => handler(input),
        Err(e) => Decision::Reject {
            status: 400,
            scim_type: None,
            detail: format!("plugin input unreadable: {e}"),
        },
    };
    let out = serde_json::to_vec(&decision.to_json())
        .unwrap_or_default()
        .leak();
    ((out.as_ptr() as usize as i64) << 32) | out.len() as i64
}

/// Exports the ABI for `handler: fn(Input) -> Decision`.
#[macro_export]
macro_rules! plugin {
    ($handler:path) => {
        /// The ABI marker the host looks for.
        #[unsafe(no_mangle)]
        pub static scim_abi_v1: i32 = 1;

        #[unsafe(no_mangle)]
        pub extern "C" fn scim_alloc(len: i32) -> i32 {
            $crate::alloc(len)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn scim_handle(ptr: i32, len: i32) -> i64 {
            $crate::handle(ptr, len, $handler)
        }
    };
}
