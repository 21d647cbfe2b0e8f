//! Operator plugins as the write path's hook: each plugin that applies runs in order on
//! the previous one's output; a rejection or a failure becomes a SCIM error naming it.
//! The plugin set can be swapped while serving: each write runs wholly on the set it
//! started with.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use scimgate_model::{ResourceType, ScimError, ScimType};
use scimgate_plugins::{ABI_VERSION, CallFailure, CallInput, Decision, FailMode, Hook, PluginHost};
use serde_json::Value;

use crate::hooks::{HookError, WriteContext, WriteHook};
use crate::metrics::{Metrics, PluginOutcome};
use crate::report::PluginNote;

pub struct PluginHook {
    host: ArcSwap<PluginHost>,
    metrics: Arc<Metrics>,
}

impl PluginHook {
    pub fn new(host: Arc<PluginHost>, metrics: Arc<Metrics>) -> Self {
        PluginHook {
            host: ArcSwap::new(host),
            metrics,
        }
    }

    /// The set new writes run on.
    pub fn current(&self) -> Arc<PluginHost> {
        self.host.load_full()
    }

    /// Puts `host` in place for the writes that start from now on; writes already running
    /// finish on the set they hold, which is dropped when the last of them ends.
    pub fn swap(&self, host: Arc<PluginHost>) -> Arc<PluginHost> {
        self.host.swap(host)
    }
}

impl WriteHook for PluginHook {
    fn name(&self) -> &str {
        "plugins"
    }

    fn applies(&self, hook: Hook, rt: ResourceType, tenant: &str) -> bool {
        self.host
            .load()
            .specs()
            .any(|spec| spec.applies_to(hook, rt, tenant))
    }

    fn apply(&self, ctx: &WriteContext<'_>, mut resource: Value) -> Result<Value, HookError> {
        // One load per write: a reload in the middle does not mix two sets in one write.
        let host = self.host.load_full();
        let hook = ctx.kind;
        let before = ctx.before.map(|b| {
            let mut v = Value::Object(b.attributes.clone());
            v["id"] = Value::String(b.id.clone());
            v
        });
        // The PATCH operations as sent may carry a password too: plugins that may not see
        // it get them without (made once, when the first such plugin runs).
        let mut scrubbed: Option<Value> = None;
        for (index, spec) in host.specs().enumerate() {
            if !spec.applies_to(hook, ctx.resource_type, ctx.tenant) {
                continue;
            }
            // The cleartext password goes only to a plugin configured to see it; past any
            // other it goes by unchanged (unless that plugin sets one itself).
            let hidden = if spec.sees_password {
                None
            } else {
                take_password(&mut resource)
            };
            let operations = match ctx.operations {
                Some(ops) if !spec.sees_password => {
                    Some(&*scrubbed.get_or_insert_with(|| without_passwords(ops)))
                }
                other => other,
            };
            let input = CallInput {
                abi: ABI_VERSION,
                hook: hook.name(),
                resource_type: ctx.resource_type.name(),
                tenant: ctx.tenant,
                resource: &resource,
                before: before.as_ref(),
                operations,
                request_id: Some(ctx.request_id).filter(|id| !id.is_empty()),
                receiver: None,
                config: &spec.config,
            };
            let (result, outcome) = self.call(&host, index, &spec.name, &input);
            let detail = match &result {
                Ok(Decision::Reject { detail, .. }) => Some(detail.clone()),
                Err(failure) => Some(failure.class()),
                _ => None,
            };
            ctx.decisions.borrow_mut().push(PluginNote {
                plugin: spec.name.clone(),
                decision: outcome.label(),
                detail,
            });
            match result {
                Ok(Decision::Accept) => {}
                // A delete has nothing to modify: the decision counts as acceptance.
                Ok(Decision::Modify { .. }) if hook == Hook::Delete => {}
                Ok(Decision::Modify { resource: changed }) => resource = changed,
                Ok(Decision::Reject {
                    status,
                    scim_type,
                    detail,
                }) => {
                    // The host let only statuses plugins may use through (`Decision::checked`).
                    tracing::info!(plugin = %spec.name, status, "plugin rejected a write");
                    return Err(HookError::Refused(ScimError::new(
                        status,
                        scim_type.as_deref().and_then(ScimType::from_name),
                        format!("plugin '{}' rejected the change: {detail}", spec.name),
                    )));
                }
                Err(failure) if failure.is_overload() => {
                    // The host had no room: the plugin did not fail, it did not run. The
                    // write is refused as overload, whatever `on_failure` says, so that no
                    // validation is ever skipped because another tenant was busy.
                    return Err(HookError::Busy {
                        plugin: spec.name.clone(),
                        reason: failure.to_string(),
                    });
                }
                Err(failure) => self.failed(&spec.name, spec.on_failure, &failure)?,
            }
            if let Some(password) = hidden {
                restore_password(&mut resource, password);
            }
        }
        Ok(resource)
    }
}

/// The operator's plugins on the `event` hook: each that applies to the receiver, the
/// resource type and the tenant runs in order on the previous one's output (the SET's
/// claims); a reject drops the event for this receiver; a failure (closed) leaves the
/// event to be tried again, (open) lets it go on unchanged.
impl scimgate_events::EventHook for PluginHook {
    fn apply(
        &self,
        receiver: &str,
        event: &scimgate_store::EventRecord,
        mut claims: Value,
    ) -> Result<Option<Value>, String> {
        let host = self.host.load_full();
        for (index, spec) in host.specs().enumerate() {
            if !spec.applies_to_event(receiver, event.resource_type, &event.tenant) {
                continue;
            }
            let input = CallInput {
                abi: ABI_VERSION,
                hook: Hook::Event.name(),
                resource_type: event.resource_type.name(),
                tenant: &event.tenant,
                resource: &claims,
                before: None,
                operations: None,
                request_id: None,
                receiver: Some(receiver),
                config: &spec.config,
            };
            let (result, _) = self.call(&host, index, &spec.name, &input);
            match result {
                Ok(Decision::Accept) => {}
                Ok(Decision::Modify { resource }) if resource.is_object() => claims = resource,
                Ok(Decision::Modify { .. }) => {
                    return Err(format!(
                        "plugin '{}' returned an event that is not a JSON object",
                        spec.name
                    ));
                }
                Ok(Decision::Reject { .. }) => return Ok(None),
                Err(failure) if spec.on_failure == FailMode::Open && !failure.is_overload() => {
                    tracing::warn!(plugin = %spec.name, reason = %failure, "event plugin failed; on_failure = open sends the event unchanged");
                }
                Err(failure) => {
                    return Err(format!(
                        "plugin '{}' failed: {}",
                        spec.name,
                        failure.class()
                    ));
                }
            }
        }
        Ok(Some(claims))
    }
}

/// Whether an attribute name or PATCH path names the password: `password` in any case, or
/// URN-qualified (`urn:…:User:password`).
fn names_password(name: &str) -> bool {
    let name = name.trim();
    name.eq_ignore_ascii_case("password")
        || name
            .rsplit_once(':')
            .is_some_and(|(_, last)| last.eq_ignore_ascii_case("password"))
}

/// The PATCH operations with every password taken out: the `value` of an operation whose
/// path is the password, and any `password` member of a value, at any depth.
fn without_passwords(ops: &Value) -> Value {
    fn scrub(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|k, _| !names_password(k));
                map.values_mut().for_each(scrub);
            }
            Value::Array(items) => items.iter_mut().for_each(scrub),
            _ => {}
        }
    }
    let mut ops = ops.clone();
    for op in ops.as_array_mut().into_iter().flatten() {
        if let Some(map) = op.as_object_mut() {
            let aims_at_password = map.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("path") && v.as_str().is_some_and(names_password)
            });
            if aims_at_password {
                map.retain(|k, _| !k.eq_ignore_ascii_case("value"));
            }
        }
    }
    scrub(&mut ops);
    ops
}

/// Removes `password` (any spelling) from a resource, returning its value.
fn take_password(resource: &mut Value) -> Option<Value> {
    let obj = resource.as_object_mut()?;
    let key = obj
        .keys()
        .find(|k| k.eq_ignore_ascii_case("password"))?
        .clone();
    obj.remove(&key)
}

/// Puts back a password a plugin did not see, unless the plugin set one itself.
fn restore_password(resource: &mut Value, password: Value) {
    if let Some(obj) = resource.as_object_mut()
        && !obj.keys().any(|k| k.eq_ignore_ascii_case("password"))
    {
        obj.insert("password".into(), password);
    }
}

impl PluginHook {
    /// One call, counted in the metrics by its outcome and duration.
    fn call(
        &self,
        host: &PluginHost,
        index: usize,
        name: &str,
        input: &CallInput<'_>,
    ) -> (Result<Decision, CallFailure>, PluginOutcome) {
        let started = Instant::now();
        let result = host.call(index, input);
        let outcome = match &result {
            Ok(Decision::Accept) => PluginOutcome::Accept,
            Ok(Decision::Modify { .. }) => PluginOutcome::Modify,
            Ok(Decision::Reject { .. }) => PluginOutcome::Reject,
            Err(_) => PluginOutcome::Failed,
        };
        self.metrics
            .observe_plugin(name, outcome, started.elapsed());
        (result, outcome)
    }

    /// A plugin that failed: the write fails (closed: logged once, where the error is
    /// answered) or goes on unchanged (open: logged here).
    fn failed(&self, name: &str, mode: FailMode, failure: &CallFailure) -> Result<(), HookError> {
        match mode {
            FailMode::Closed => Err(HookError::Failed {
                plugin: name.to_owned(),
                class: failure.class(),
                cause: failure.to_string(),
            }),
            FailMode::Open => {
                tracing::warn!(plugin = name, reason = %failure, "plugin failed; on_failure = open lets the write through");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_lose_every_password() {
        let ops = json!([
            {"op": "replace", "path": "password", "value": "s1"},
            {"op": "replace", "Path": "urn:ietf:params:scim:schemas:core:2.0:User:PASSWORD", "value": "s2"},
            {"op": "replace", "value": {"Password": "s3", "title": "kept"}},
            {"op": "add", "value": {"urn:ietf:params:scim:schemas:core:2.0:User": {"password": "s4"}}},
            {"op": "add", "path": "emails", "value": [{"value": "a@b"}]},
        ]);
        let out = without_passwords(&ops).to_string();
        for secret in ["s1", "s2", "s3", "s4"] {
            assert!(!out.contains(&format!("\"{secret}\"")), "{secret} in {out}");
        }
        assert!(out.contains("kept") && out.contains("a@b"), "{out}");
    }
}
