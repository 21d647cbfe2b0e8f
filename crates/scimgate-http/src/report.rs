//! What one write did, as the write pipeline knows it: who asked (request, principal,
//! tenant), the operation, the resource, its versions before and after, each plugin's
//! decision, the members a PATCH skipped and the resource as stored. The handler renders
//! its answer from it and then puts it on the request, whether the write succeeded or not;
//! the audit trail is written from it (not from the response's headers), and the change
//! feed will be too.

use std::cell::RefCell;

use scimgate_model::ResourceType;
use scimgate_plugins::Hook;
use scimgate_store::StoredResource;
use serde::Serialize;

use crate::context::{Principal, RequestId};

/// What one plugin decided about one write.
#[derive(Debug, Clone, Serialize)]
pub struct PluginNote {
    pub plugin: String,
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug)]
pub struct WriteReport {
    pub request_id: RequestId,
    /// Who asked, and the tenant the write is in (`principal.tenant`).
    pub principal: Principal,
    /// Which write: create, replace, patch or delete.
    pub operation: Hook,
    pub resource_type: ResourceType,
    /// The resource's id: the client's for replace, patch and delete, the new one for create.
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
    /// The resource as the write stored it (create, replace, patch; a PATCH's group with
    /// its members when the answer shows them): what the answer is rendered from.
    pub stored: Option<StoredResource>,
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

    /// The report of a write about to start: who asks for what; the pipeline fills the rest.
    pub fn new(
        request_id: RequestId,
        principal: Principal,
        operation: Hook,
        resource_type: ResourceType,
        id: Option<&str>,
    ) -> Self {
        WriteReport {
            request_id,
            principal,
            operation,
            resource_type,
            id: id.map(str::to_owned),
            version_before: None,
            version_after: None,
            plugins: RefCell::default(),
            skipped_members: Vec::new(),
            stored: None,
        }
    }

    /// What a create stored: its id, its version, the resource.
    pub fn created(&mut self, created: StoredResource) {
        self.id = Some(created.id.clone());
        self.version_after = Some(created.version);
        self.stored = Some(created);
    }

    pub fn tenant(&self) -> &str {
        &self.principal.tenant
    }
}
