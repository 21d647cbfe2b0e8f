//! The seam where operator plugins run: a write, decoded and normalised, goes through
//! each configured hook before it is validated and stored.

use std::sync::Arc;

use scimgate_model::{ResourceType, ScimError};
use scimgate_store::StoredResource;
use serde_json::Value;

use crate::report::PluginNote;

/// Which write a hook is looking at: the plugin host's own hook kinds.
pub use scimgate_plugins::Hook;

/// What a hook learns about the write besides the resource itself.
#[derive(Debug, Clone)]
pub struct WriteContext<'a> {
    pub kind: Hook,
    pub resource_type: ResourceType,
    pub tenant: &'a str,
    /// The id of the request that asked for the write, given to plugins for their logs.
    pub request_id: &'a str,
    /// The stored resource before the change (replace, patch, delete).
    pub before: Option<&'a StoredResource>,
    /// The PATCH operations as the client sent them (patch only).
    pub operations: Option<&'a Value>,
    /// Where each plugin's decision is written down, for the write's report.
    pub decisions: &'a std::cell::RefCell<Vec<PluginNote>>,
}

/// A step that may rewrite or refuse a resource before it is validated and stored. The
/// plugin host implements this; each hook sees the previous hook's output.
pub trait WriteHook: Send + Sync {
    fn name(&self) -> &str;
    /// Whether the hook would do anything on this write (a plugin hook whose plugins are
    /// all for other hooks, types or tenants does not): a write no hook looks at skips the
    /// work done only for hooks, whatever other tenants configured.
    fn applies(&self, _kind: Hook, _rt: ResourceType, _tenant: &str) -> bool {
        true
    }
    fn apply(&self, ctx: &WriteContext<'_>, resource: Value) -> Result<Value, HookError>;
}

/// Why a hook stopped a write. Each becomes its status in the one error mapping.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HookError {
    /// The hook refused the write (a plugin's rejection, with the status it chose): the
    /// client's to change.
    #[error("{}", .0.detail)]
    Refused(ScimError),
    /// The hook could not decide (a plugin trapped, ran past its deadline or memory,
    /// answered something that is not a decision): 500. The client is told the plugin and
    /// the failure's `class`; the whole `cause` goes to the log only.
    #[error("plugin '{plugin}' failed: {cause}")]
    Failed {
        plugin: String,
        class: String,
        cause: String,
    },
    /// There was no room to run it now (the plugin did not run): 503.
    #[error("plugin '{plugin}' {reason}")]
    Busy { plugin: String, reason: String },
}

/// Runs every configured hook in order. This is the seam where plugins run: after the
/// request is decoded, before schema validation, so a hook can never store what the
/// schema forbids.
pub fn run_write_hooks(
    hooks: &[Arc<dyn WriteHook>],
    ctx: &WriteContext<'_>,
    mut doc: Value,
) -> Result<Value, HookError> {
    for hook in hooks {
        doc = hook.apply(ctx, doc)?;
    }
    Ok(doc)
}
