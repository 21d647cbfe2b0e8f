//! Writes that come from a file instead of a request (`scimgate import`), and resources
//! read out for a file (`scimgate export`). Each record goes through the one write
//! pipeline an HTTP create takes (dialect, the operator's plugins, validation, password
//! hashing, storage with its event and its audit row), under the operator's name; a
//! refused record gets its audit row and the SCIM error a client would have got.

use std::sync::Arc;

use scimgate_model::{ResourceType, ScimError};
use scimgate_store::{ListQuery, NewResource, Page, PendingWrite, Position, Store, StoredResource};
use serde_json::{Map, Value};

use crate::audit;
use crate::context::{Principal, RequestId};
use crate::error::ApiError;
use crate::hooks::Hook;
use crate::report::WriteReport;
use crate::state::AppState;

/// One operator's writes into one tenant.
pub struct FileWriter {
    state: Arc<AppState>,
    principal: Principal,
    request_id: RequestId,
}

/// A record that passed every step before storage.
pub struct Prepared {
    report: WriteReport,
    new: NewResource,
}

/// A prepared record handed to storage, committed with the writes queued beside it.
pub struct Queued {
    report: WriteReport,
    pending: PendingWrite<StoredResource>,
}

impl FileWriter {
    /// Writes as `subject` into `tenant`; `run` names the import in each audit row's
    /// request id.
    pub fn new(state: Arc<AppState>, tenant: &str, subject: &str, run: &str) -> Self {
        FileWriter {
            state,
            principal: Principal {
                tenant: tenant.to_owned(),
                subject: subject.to_owned(),
                jti: None,
            },
            request_id: RequestId::new(run),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.state.store
    }

    /// Dialect, plugins, validation and password for a create of `doc`. A refusal is
    /// audited as the HTTP request would have been, unless `dry_run`.
    pub fn prepare(
        &self,
        rt: ResourceType,
        doc: Value,
        dry_run: bool,
    ) -> Result<Prepared, ScimError> {
        let report = WriteReport::new(
            self.request_id.clone(),
            self.principal.clone(),
            None,
            Hook::Create,
            rt,
            None,
        );
        match self.state.writes.prepare_create(&report, doc) {
            Ok(new) => Ok(Prepared { report, new }),
            Err(e) => Err(self.refused(report, &e, dry_run)),
        }
    }

    /// Queues a prepared create behind the earlier ones (they share commits).
    pub fn queue(&self, prepared: Prepared) -> Queued {
        let pending = self
            .state
            .writes
            .queue_create(&prepared.report, prepared.new);
        Queued {
            report: prepared.report,
            pending,
        }
    }

    /// Waits for a queued create: the stored resource, or the refusal (audited).
    pub fn settle(&self, queued: Queued) -> Result<StoredResource, ScimError> {
        let Queued {
            mut report,
            pending,
        } = queued;
        match pending.wait() {
            Ok(stored) => {
                report.created(stored.clone());
                Ok(stored)
            }
            Err(e) => Err(self.refused(report, &ApiError::from(e), false)),
        }
    }

    fn refused(&self, report: WriteReport, e: &ApiError, dry_run: bool) -> ScimError {
        let scim = e.to_scim();
        if !dry_run {
            let row = audit::Row {
                principal: &self.principal,
                client: None,
                method: report.method(),
                status: scim.status,
                detail: Some(scim.detail.clone()),
                resource_type: Some(report.resource_type.name().to_owned()),
                resource_id: report.id.clone(),
            };
            audit::append(&self.state, row, Some(report));
        }
        scim
    }

    /// Adds `members` (each `{"value": id}`) to group `id` with a PATCH through the
    /// pipeline, as an IdP adds them.
    pub fn add_members(&self, id: &str, members: Vec<Value>) -> Result<(), ScimError> {
        let mut report = WriteReport::new(
            self.request_id.clone(),
            self.principal.clone(),
            None,
            Hook::Patch,
            ResourceType::Group,
            Some(id),
        );
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": members}],
        });
        match self.state.writes.patch(&mut report, None, body) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.refused(report, &e, false)),
        }
    }

    /// The id of the one resource of type `rt` that `filter` matches in the tenant; `None`
    /// when none or several do.
    pub fn find_one(&self, rt: ResourceType, filter: &str) -> Result<Option<String>, ScimError> {
        let filter = scimgate_model::filter::parse(rt, filter)?;
        let query = ListQuery {
            filter: Some(filter),
            sort: None,
            page: Page::Index {
                start_index: 1,
                count: 2,
            },
            with_relations: false,
        };
        let page = self
            .state
            .store
            .list(&self.principal.tenant, rt, &query)
            .map_err(|e| ApiError::from(e).to_scim())?;
        Ok(match page.resources.as_slice() {
            [one] => Some(one.id.clone()),
            _ => None,
        })
    }

    /// Whether the tenant holds a user or group of this id.
    pub fn exists(&self, id: &str) -> Result<bool, ScimError> {
        for rt in [ResourceType::User, ResourceType::Group] {
            let found = self
                .state
                .store
                .get(&self.principal.tenant, rt, id, false)
                .map_err(|e| ApiError::from(e).to_scim())?;
            if found.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Waits until what storage queued beside the writes (refusals' audit rows) is
    /// committed.
    pub fn flush(&self) -> Result<(), ScimError> {
        self.state
            .store
            .flush()
            .map_err(|e| ApiError::from(e).to_scim())
    }
}

/// Every resource of type `rt` in `tenant`, in creation order, a page at a time, each as
/// a SCIM client reads it (`meta.location` under `base`), handed to `each`.
pub fn read_all(
    store: &dyn Store,
    tenant: &str,
    rt: ResourceType,
    base: &str,
    mut each: impl FnMut(Map<String, Value>) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut after: Option<Position> = None;
    loop {
        let query = ListQuery {
            filter: None,
            sort: None,
            page: Page::Cursor {
                after: after.clone(),
                count: 500,
            },
            with_relations: true,
        };
        let page = store
            .list(tenant, rt, &query)
            .map_err(|e| ApiError::from(e).to_scim())?;
        for r in &page.resources {
            each(crate::render::resource_json(r, base))?;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// How many resources of type `rt` the tenant holds.
pub fn count(store: &dyn Store, tenant: &str, rt: ResourceType) -> Result<u64, ScimError> {
    let query = ListQuery {
        filter: None,
        sort: None,
        page: Page::Index {
            start_index: 1,
            count: 0,
        },
        with_relations: false,
    };
    let page = store
        .list(tenant, rt, &query)
        .map_err(|e| ApiError::from(e).to_scim())?;
    Ok(page.total_results.unwrap_or(0))
}
