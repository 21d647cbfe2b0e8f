//! What one write did, as the write pipeline knows it: the resource, its versions before
//! and after, each plugin's decision and the members a PATCH skipped. The handler puts it
//! on the request, whether the write succeeded or not, and the audit trail is written from
//! it (not from the response's headers); the change feed will be too.

use std::cell::RefCell;

use scimgate_model::ResourceType;
use serde::Serialize;

/// What one plugin decided about one write.
#[derive(Debug, Clone, Serialize)]
pub struct PluginNote {
    pub plugin: String,
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Default)]
pub struct WriteReport {
    pub resource_type: Option<ResourceType>,
    pub id: Option<String>,
    /// The stored version the write started from (replace, patch, delete).
    pub version_before: Option<i64>,
    /// The version it stored (create, replace, patch).
    pub version_after: Option<i64>,
    /// The decisions of the plugins that ran on the attempt that counted, in order. A cell,
    /// so that the hooks can add to it while the pipeline holds the rest of the report.
    pub plugins: RefCell<Vec<PluginNote>>,
    /// Members a PATCH named that do not exist in the tenant, skipped by the dialect rule.
    pub skipped_members: Vec<String>,
}

impl WriteReport {
    /// The members a PATCH skipped, for the audit row and the log: the ids are the client's,
    /// so the first few in full, then how many more, whatever the client sent.
    pub fn skipped_detail(&self) -> Option<String> {
        const SHOWN: usize = 10;
        if self.skipped_members.is_empty() {
            return None;
        }
        let shown: Vec<String> = self
            .skipped_members
            .iter()
            .take(SHOWN)
            .map(|id| scimgate_model::excerpt(id, 64).into_owned())
            .collect();
        let list = match self.skipped_members.len().saturating_sub(SHOWN) {
            0 => shown.join(", "),
            more => format!("{} and {more} more", shown.join(", ")),
        };
        Some(format!(
            "members that do not exist in the tenant were skipped: {list}"
        ))
    }

    pub fn new(resource_type: ResourceType, id: Option<&str>) -> Self {
        WriteReport {
            resource_type: Some(resource_type),
            id: id.map(str::to_owned),
            ..WriteReport::default()
        }
    }
}
