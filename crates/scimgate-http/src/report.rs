//! What one write did, as the write pipeline knows it: who asked (request, principal,
//! tenant), the operation, the resource, its versions before and after, each plugin's
//! decision, the members a PATCH skipped and the resource as stored. The handler renders
//! its answer from it and then puts it on the request, whether the write succeeded or not.
//! The audit trail is written from it (not from the response's headers): a write's row
//! goes to storage with the write and is committed with it (`audit_row`), a refused
//! write's once its answer is known.

use std::cell::RefCell;
use std::net::IpAddr;

use scimgate_model::ResourceType;
use scimgate_plugins::Hook;
use scimgate_store::{AuditRecord, StoredResource};
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
    /// The client's address, as the network settings read it.
    pub client: Option<IpAddr>,
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
    /// Whether the write's audit row was committed with it (so none is queued after).
    pub audited: bool,
    /// The status a success is answered with, which its audit row records: 201 for a
    /// create, 204 for a delete and for a group PATCH answered without the group, else 200.
    pub answered: u16,
}

impl WriteReport {
    /// The members a PATCH skipped, for the audit row and the log.
    pub fn skipped_detail(&self) -> Option<String> {
        scimgate_store::skipped_members_detail(&self.skipped_members)
    }

    /// The audit row of this write answered `status`: who, from where, what, the versions
    /// and each plugin's decision so far. A write that stores it with itself has its time,
    /// id and version after filled in by storage (`ChangeNote::audit_row`).
    pub fn audit_row(&self, status: u16) -> AuditRecord {
        let success = (200..300).contains(&status);
        let plugins = self.plugins.borrow();
        AuditRecord {
            seq: 0,
            at: String::new(),
            tenant: self.principal.tenant.clone(),
            subject: Some(self.principal.subject.clone()),
            jti: self.principal.jti.clone(),
            client: self.client.map(|ip| ip.to_string()),
            method: self.method().to_owned(),
            resource_type: Some(self.resource_type.name().to_owned()),
            // The client's text: a 64 KB id must not become a 64 KB audit row.
            resource_id: self
                .id
                .as_deref()
                .map(|id| scimgate_model::excerpt(id, 128).into_owned()),
            version_before: self.version_before,
            version_after: self.version_after.filter(|_| success),
            plugins: (!plugins.is_empty())
                .then(|| serde_json::to_string(&*plugins).ok())
                .flatten(),
            status,
            detail: self.skipped_detail(),
            event_seq: None,
        }
    }

    /// The HTTP method of this write, as an audit row names it.
    pub(crate) fn method(&self) -> &'static str {
        match self.operation {
            Hook::Create => "POST",
            Hook::Replace => "PUT",
            Hook::Patch => "PATCH",
            Hook::Delete => "DELETE",
            Hook::Event => "EVENT",
        }
    }

    /// The report of a write about to start: who asks for what; the pipeline fills the rest.
    pub fn new(
        request_id: RequestId,
        principal: Principal,
        client: Option<IpAddr>,
        operation: Hook,
        resource_type: ResourceType,
        id: Option<&str>,
    ) -> Self {
        WriteReport {
            request_id,
            principal,
            client,
            operation,
            resource_type,
            id: id.map(str::to_owned),
            version_before: None,
            version_after: None,
            plugins: RefCell::default(),
            skipped_members: Vec::new(),
            stored: None,
            audited: false,
            answered: match operation {
                Hook::Create => 201,
                Hook::Delete => 204,
                Hook::Replace | Hook::Patch | Hook::Event => 200,
            },
        }
    }

    /// What a create stored: its id, its version, the resource (and its audit row, which
    /// `WritePipeline::prepare_create` gave it).
    pub fn created(&mut self, created: StoredResource) {
        self.audited = true;
        self.id = Some(created.id.clone());
        self.version_after = Some(created.version);
        self.stored = Some(created);
    }

    pub fn tenant(&self) -> &str {
        &self.principal.tenant
    }
}
