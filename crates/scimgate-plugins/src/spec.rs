//! What the configuration says about each plugin.

use std::path::PathBuf;

use scimgate_model::ResourceType;
use serde::{Deserialize, Serialize};

/// What a plugin can run on: the writes, and the change feed's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Create,
    Replace,
    Patch,
    /// The resource being deleted; the plugin may refuse (a modification is ignored).
    Delete,
    /// An event about to go to one receiver (its SET claims): the plugin may rewrite it
    /// (modify) or drop it for that receiver (reject).
    Event,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Create => "create",
            Hook::Replace => "replace",
            Hook::Patch => "patch",
            Hook::Delete => "delete",
            Hook::Event => "event",
        }
    }

    /// The hook named `name` (as the configuration and the ABI spell it).
    pub fn from_name(name: &str) -> Option<Hook> {
        [
            Hook::Create,
            Hook::Replace,
            Hook::Patch,
            Hook::Delete,
            Hook::Event,
        ]
        .into_iter()
        .find(|h| h.name() == name)
    }
}

/// What happens to the write when the plugin itself fails (trap, deadline, memory, bad
/// output): refuse it (closed, the default) or let it through unchanged (open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    #[default]
    Closed,
    Open,
}

/// Per-plugin resource limits, on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock deadline for one call, in milliseconds.
    pub deadline_ms: u64,
    /// Largest linear memory of one instance, in bytes.
    pub memory_bytes: usize,
    /// Largest output document, in bytes.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline_ms: 50,
            memory_bytes: 16 << 20,
            output_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    pub name: String,
    /// The `.wasm` (or `.wat`) file.
    pub file: PathBuf,
    /// What it runs on; create, replace and patch when empty (delete and event only when
    /// named, so that a plugin written for content checks never sees a delete it would
    /// refuse, nor an event).
    #[serde(default)]
    pub hooks: Vec<Hook>,
    /// `User`, `Group`; both when empty.
    #[serde(default)]
    pub resource_types: Vec<String>,
    /// Tenants it runs for; all when absent.
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    /// For the `event` hook: the receivers whose events it sees; all when absent.
    #[serde(default)]
    pub receivers: Option<Vec<String>>,
    /// The plugin's own configuration, passed to every call.
    #[serde(default)]
    pub config: serde_json::Value,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub on_failure: FailMode,
    /// Whether the plugin is handed the cleartext `password` a write carries. Off by
    /// default: a plugin that does not need it never sees it (nor can log it); the
    /// password passes it by unchanged.
    #[serde(default)]
    pub sees_password: bool,
}

impl PluginSpec {
    pub fn applies_to(&self, hook: Hook, rt: ResourceType, tenant: &str) -> bool {
        (if self.hooks.is_empty() {
            matches!(hook, Hook::Create | Hook::Replace | Hook::Patch)
        } else {
            self.hooks.contains(&hook)
        }) && (self.resource_types.is_empty()
            || self
                .resource_types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(rt.name())))
            && self
                .tenants
                .as_ref()
                .is_none_or(|ts| ts.iter().any(|t| t == tenant))
    }

    /// Whether it runs on the events going to `receiver` of a `rt` in `tenant`.
    pub fn applies_to_event(&self, receiver: &str, rt: ResourceType, tenant: &str) -> bool {
        self.applies_to(Hook::Event, rt, tenant)
            && self
                .receivers
                .as_ref()
                .is_none_or(|rs| rs.iter().any(|r| r == receiver))
    }
}

/// The plugin keys of the configuration: the plugins in the order they run (`[[plugins]]`),
/// each tenant's share of the instances, and how often their files are looked at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginConfig {
    /// Operator plugins, `[[plugins]]` in TOML, in the order they run (docs/plugins.md).
    #[serde(rename = "plugins")]
    pub specs: Vec<PluginSpec>,
    /// Plugin instances one tenant may run at once (of 128); unset: one per core.
    pub plugin_instances_per_tenant: Option<usize>,
    /// How often to look for changes to the configuration file and plugin files, in
    /// milliseconds, to reload the plugins; 0 reloads on SIGHUP only.
    pub plugin_watch_interval_ms: u64,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            specs: Vec::new(),
            plugin_instances_per_tenant: None,
            plugin_watch_interval_ms: 2000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hooks: &[Hook], receivers: Option<&[&str]>) -> PluginSpec {
        PluginSpec {
            name: "p".into(),
            file: PathBuf::from("p.wasm"),
            hooks: hooks.to_vec(),
            resource_types: vec![],
            tenants: None,
            receivers: receivers.map(|rs| rs.iter().map(|r| (*r).to_owned()).collect()),
            config: serde_json::Value::Null,
            limits: Limits::default(),
            on_failure: FailMode::Closed,
            sees_password: false,
        }
    }

    /// (hooks, receivers, hook asked, receiver, applies)
    type Row = (
        Vec<Hook>,
        Option<&'static [&'static str]>,
        Hook,
        &'static str,
        bool,
    );

    #[test]
    fn deletes_and_events_run_only_the_plugins_that_name_them() {
        let rows: Vec<Row> = vec![
            (vec![], None, Hook::Create, "", true),
            (vec![], None, Hook::Delete, "", false),
            (vec![], None, Hook::Event, "hr", false),
            (vec![Hook::Event], None, Hook::Event, "hr", true),
            (vec![Hook::Event], Some(&["hr"]), Hook::Event, "hr", true),
            (vec![Hook::Event], Some(&["hr"]), Hook::Event, "crm", false),
            (vec![Hook::Event], None, Hook::Create, "", false),
        ];
        for (hooks, receivers, hook, receiver, applies) in rows {
            let s = spec(&hooks, receivers);
            let got = match hook {
                Hook::Event => s.applies_to_event(receiver, ResourceType::User, "t"),
                other => s.applies_to(other, ResourceType::User, "t"),
            };
            assert_eq!(got, applies, "{hooks:?} {receivers:?} {hook:?} {receiver}");
        }
    }
}
