//! Running a Bulk request's operations (RFC 7644 §3.7), each through the one write
//! pipeline (dialect, plugins, validation, storage with its event) and audited on its
//! own, in the order `bulk::Schedule` gives, with `bulkId` references resolved to the ids
//! this request created (in the principal's tenant only: the map is this request's).
//!
//! Creates are queued to the writer one after another without waiting for each commit,
//! so that a thousand of them share a few commits instead of paying one each; the writer
//! runs them in the order queued, so the outcome is the sequential one. Anything else, and
//! a create that refers to one still queued, first waits for what is queued. With
//! `failOnErrors`, no more operations are in the works than errors are still accepted:
//! the request stops exactly where running them one by one would have.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use scimgate_model::bulk::{self, Deferred, Method, Next, Operation, Schedule, Target};
use scimgate_model::{ResourceType, ScimError};
use scimgate_store::{PendingWrite, StoredResource};
use serde_json::Value;

use crate::audit::{Row, append};
use crate::context::{Principal, RequestId};
use crate::error::ApiError;
use crate::etag::Precondition;
use crate::hooks::Hook;
use crate::report::WriteReport;
use crate::state::AppState;

/// Creates queued at once by one request: enough to fill commits, few enough that other
/// tenants' writes are not queued behind a long line of one tenant's.
const MAX_QUEUED: usize = 64;

/// Who sent the Bulk request.
pub struct Sender {
    pub request_id: RequestId,
    pub principal: Principal,
    pub client: Option<IpAddr>,
}

/// What became of one operation.
#[derive(Debug)]
pub struct Outcome {
    pub method: Option<Method>,
    pub bulk_id: Option<String>,
    /// The resource it wrote (or tried to), for `location`.
    pub resource: Option<(ResourceType, String)>,
    pub version: Option<i64>,
    pub status: u16,
    pub error: Option<ScimError>,
}

struct Queued {
    op: usize,
    report: WriteReport,
    pending: PendingWrite<StoredResource>,
}

/// Runs `request`; the outcome of each operation in request order, `None` for those not
/// run because `failOnErrors` stopped the request first.
pub fn run(state: &AppState, sender: &Sender, request: bulk::Request) -> Vec<Option<Outcome>> {
    let mut ops = request.operations;
    let schedule = Schedule::new(&mut ops);
    let mut runner = Runner {
        state,
        sender,
        outcomes: (0..ops.len()).map(|_| None).collect(),
        ops,
        schedule,
        ids: HashMap::new(),
        errors: 0,
        budget: request.fail_on_errors,
        queued: VecDeque::new(),
        fixups: Vec::new(),
        breaking: HashMap::new(),
    };
    runner.run_all();
    runner.outcomes
}

struct Runner<'a> {
    state: &'a AppState,
    sender: &'a Sender,
    ops: Vec<Operation>,
    schedule: Schedule,
    /// The id created for each bulkId so far.
    ids: HashMap<String, String>,
    outcomes: Vec<Option<Outcome>>,
    errors: usize,
    budget: Option<usize>,
    queued: VecDeque<Queued>,
    /// Creates that broke a circular reference, and what they still have to add.
    fixups: Vec<Fixup>,
    /// Creates breaking a circle that have not run yet, with the bulkIds they set aside.
    breaking: HashMap<usize, Vec<String>>,
}

/// A create that broke a circle: what it set aside, and the bulkIds that must have run
/// before that can be added.
struct Fixup {
    op: usize,
    deferred: Deferred,
    waits_on: Vec<String>,
}

impl Runner<'_> {
    fn run_all(&mut self) {
        loop {
            // A circle is closed as soon as it can be, before anything else runs: later
            // operations see the create whole.
            self.complete_cycles(false);
            if self.budget.is_some_and(|b| self.errors >= b) {
                break;
            }
            // Another operation may start only if, should everything in the works fail,
            // the errors would still be under the limit.
            let full = self.queued.len() >= MAX_QUEUED
                || self
                    .budget
                    .is_some_and(|b| self.errors + self.queued.len() >= b);
            if full {
                self.settle_first();
                continue;
            }
            match self.schedule.next_step() {
                // Operations held for an open circle go on once it is closed (or undone).
                Next::Done if !self.fixups.is_empty() => self.complete_cycles(true),
                Next::Done => break,
                Next::Wait if self.queued.is_empty() => {
                    if self.fixups.is_empty() {
                        break; // nothing to wait for: cannot happen, never loops
                    }
                    self.complete_cycles(true);
                }
                Next::Wait => self.settle_first(),
                Next::Run(i) => self.start(i, false),
                Next::BreakCycle(i) => self.start(i, true),
            }
        }
        self.settle_all();
        self.complete_cycles(true);
    }

    fn start(&mut self, i: usize, break_cycle: bool) {
        let op = &mut self.ops[i];
        if let Some(problem) = op.problem.take() {
            return self.finish(i, None, Err(problem.into()));
        }
        let (Some(method), Some(target)) = (op.method, op.target.clone()) else {
            return self.finish(
                i,
                None,
                Err(ApiError::Internal(
                    "an operation without method or path".into(),
                )),
            );
        };
        let mut data = op.data.take();
        let mut deferred = Deferred::default();
        if break_cycle && let Some(d) = data.as_mut() {
            // What refers to operations not yet run, and to itself.
            let (schedule, own) = (&self.schedule, op.bulk_id.as_deref());
            deferred = bulk::defer_pending(d, |id| schedule.pending(id) || own == Some(id));
        }
        let rt = target.resource_type();
        let id = match &target {
            Target::Endpoint(_) => None,
            Target::Resource(_, id) => Some(id.clone()),
            Target::Created(_, bulk_id) => match self.ids.get(bulk_id) {
                Some(id) => Some(id.clone()),
                None => return self.finish(i, None, Err(bulk::unresolved(bulk_id).into())),
            },
        };
        if let Some(d) = data.as_mut()
            && let Err(e) = bulk::resolve(d, &self.ids)
        {
            return self.finish(i, None, Err(e.into()));
        }
        let data = data.unwrap_or(Value::Null);
        let kind = match method {
            Method::Post => Hook::Create,
            Method::Put => Hook::Replace,
            Method::Patch => Hook::Patch,
            Method::Delete => Hook::Delete,
        };
        let mut report = WriteReport::new(
            self.sender.request_id.clone(),
            self.sender.principal.clone(),
            self.sender.client,
            kind,
            rt,
            id.as_deref(),
        );
        let writes = &self.state.writes;
        if method == Method::Post {
            let new = match writes.prepare_create(&report, data) {
                Ok(new) => new,
                Err(e) => return self.finish(i, Some(report), Err(e)),
            };
            let pending = writes.queue_create(&report, new);
            self.queued.push_back(Queued {
                op: i,
                report,
                pending,
            });
            if !deferred.is_empty() {
                let waits_on = bulk::references(&deferred.patch_body());
                let own = self.ops[i].bulk_id.clone();
                self.breaking.insert(
                    i,
                    waits_on
                        .iter()
                        .filter(|b| Some(*b) != own.as_ref())
                        .cloned()
                        .collect(),
                );
                self.fixups.push(Fixup {
                    op: i,
                    deferred,
                    waits_on,
                });
            }
            // While a circle is open, one operation at a time: whether its create stays
            // decides what those after it find.
            if !self.fixups.is_empty() {
                self.settle_all();
            }
            return;
        }
        // A replace, patch or delete reads what earlier operations wrote: they go first.
        self.settle_all();
        let precondition = self.ops[i]
            .version
            .as_deref()
            .map(Precondition::from_version);
        let result = match method {
            Method::Put => writes
                .replace(&mut report, precondition.as_ref(), data)
                .map(|()| 200),
            Method::Patch => writes
                .patch(&mut report, precondition.as_ref(), data)
                .map(|()| 200),
            Method::Delete | Method::Post => writes
                .delete(&mut report, precondition.as_ref())
                .map(|()| 204),
        };
        self.finish(i, Some(report), result);
    }

    /// Waits for the first queued create.
    fn settle_first(&mut self) {
        if let Some(Queued {
            op,
            mut report,
            pending,
        }) = self.queued.pop_front()
        {
            let result = pending.wait().map_err(ApiError::from).map(|created| {
                report.created(created);
                201
            });
            self.finish(op, Some(report), result);
        }
    }

    fn settle_all(&mut self) {
        while !self.queued.is_empty() {
            self.settle_first();
        }
    }

    /// Records operation `i`'s outcome and its audit row, and lets those waiting on it go.
    fn finish(&mut self, i: usize, report: Option<WriteReport>, result: Result<u16, ApiError>) {
        let op = &self.ops[i];
        let mut report = report;
        if let Some(r) = report.as_mut() {
            // The answer gives the location and version, never the resource: not kept.
            r.stored = None;
        }
        // The resource written, or the one the path names (RFC 7644 §3.7.3: every answer
        // but a failed POST's has a location).
        let resource = report
            .as_ref()
            .and_then(|r| r.id.clone().map(|id| (r.resource_type, id)))
            .or_else(|| match &op.target {
                Some(Target::Resource(rt, id)) => Some((*rt, id.clone())),
                Some(Target::Created(rt, b)) => self.ids.get(b).map(|id| (*rt, id.clone())),
                _ => None,
            });
        let version = report.as_ref().and_then(|r| r.version_after);
        let (status, error) = match result {
            Ok(status) => (status, None),
            Err(e) => {
                let scim = e.answer(self.sender.request_id.as_str());
                (scim.status, Some(scim))
            }
        };
        if error.is_some() {
            self.errors += 1;
        } else if op.method == Some(Method::Post)
            && let (Some(bulk_id), Some((_, id))) = (&op.bulk_id, &resource)
        {
            self.ids.insert(bulk_id.clone(), id.clone());
        }
        self.audit(op.method, &op.target, status, error.as_ref(), report);
        self.outcomes[i] = Some(Outcome {
            method: op.method,
            bulk_id: op.bulk_id.clone(),
            resource,
            version: version.filter(|_| error.is_none()),
            status,
            error,
        });
        match self.breaking.remove(&i) {
            // Its partners may go; those that refer to it wait until it is complete.
            Some(partners) if self.outcomes_ok(i) => self.schedule.settle_breaker(i, &partners),
            _ => self.schedule.settle(i),
        }
    }

    fn outcomes_ok(&self, i: usize) -> bool {
        self.outcomes[i].as_ref().is_some_and(|o| o.error.is_none())
    }

    fn audit(
        &self,
        method: Option<Method>,
        target: &Option<Target>,
        status: u16,
        error: Option<&ScimError>,
        report: Option<WriteReport>,
    ) {
        let (resource_type, resource_id) = match target {
            Some(Target::Endpoint(rt)) => (Some(rt.name().to_owned()), None),
            Some(Target::Resource(rt, id)) => (Some(rt.name().to_owned()), Some(id.clone())),
            Some(Target::Created(rt, b)) => {
                (Some(rt.name().to_owned()), Some(format!("bulkId:{b}")))
            }
            None => (Some("Bulk".to_owned()), None),
        };
        append(
            self.state,
            Row {
                principal: &self.sender.principal,
                client: self.sender.client,
                method: method.map_or("BULK", Method::as_str),
                status,
                detail: error.map(|e| e.detail.clone()),
                resource_type,
                resource_id,
            },
            report,
        );
    }

    /// Adds to each create that broke a circular reference what it set aside, once the
    /// operations it refers to have run (`at_end`: whatever they became). When they did
    /// not create what was referred to (their operation failed, or did not run) or the
    /// addition fails, the create is undone and reported as failed: an operation that
    /// fails changes nothing of its own.
    fn complete_cycles(&mut self, at_end: bool) {
        let schedule = &self.schedule;
        let due = |f: &Fixup| at_end || f.waits_on.iter().all(|b| schedule.settled(b));
        if !self.fixups.iter().any(due) {
            return;
        }
        self.settle_all();
        let (now, later): (Vec<Fixup>, Vec<Fixup>) = std::mem::take(&mut self.fixups)
            .into_iter()
            .partition(|f| at_end || f.waits_on.iter().all(|b| self.schedule.settled(b)));
        self.fixups = later;
        for Fixup {
            op: i, deferred, ..
        } in now
        {
            let Some((rt, id)) = self.outcomes[i]
                .as_ref()
                .filter(|o| o.error.is_none())
                .and_then(|o| o.resource.clone())
            else {
                continue;
            };
            let mut body = deferred.patch_body();
            let added = bulk::resolve(&mut body, &self.ids)
                .map_err(ApiError::from)
                .and_then(|()| {
                    let mut report = self.report(Hook::Patch, rt, &id);
                    let result = self.state.writes.patch(&mut report, None, body);
                    let version = report.version_after;
                    self.audit_follow_up(Method::Patch, 200, &result, report);
                    result.map(|()| version)
                });
            match added {
                Ok(version) => {
                    if let Some(o) = self.outcomes[i].as_mut() {
                        o.version = version;
                    }
                }
                Err(e) => self.undo(i, rt, &id, &e),
            }
            self.schedule.complete(i);
        }
    }

    /// Deletes what create `i` made, and reports it failed for `why`.
    fn undo(&mut self, i: usize, rt: ResourceType, id: &str, why: &ApiError) {
        let mut report = self.report(Hook::Delete, rt, id);
        let deleted = self.state.writes.delete(&mut report, None);
        self.audit_follow_up(Method::Delete, 204, &deleted, report);
        let why = why.answer(self.sender.request_id.as_str());
        let undone = if deleted.is_ok() {
            "it was deleted again"
        } else {
            "deleting it again failed too"
        };
        let error = ScimError::new(
            409,
            why.scim_type,
            format!(
                "a circular reference could not be completed: {}; {undone}",
                why.detail
            ),
        );
        self.errors += 1;
        // Operations after this one find no resource for its bulkId.
        if let Some(bulk_id) = &self.ops[i].bulk_id {
            self.ids.remove(bulk_id);
        }
        if let Some(o) = self.outcomes[i].as_mut() {
            o.status = 409;
            o.version = None;
            o.error = Some(error);
            if deleted.is_ok() {
                o.resource = None;
            }
        }
    }

    /// Audits a write the request made beyond its operations (completing or undoing a
    /// create that broke a circle), on the resource `report` names.
    fn audit_follow_up(
        &self,
        method: Method,
        success: u16,
        result: &Result<(), ApiError>,
        mut report: WriteReport,
    ) {
        report.stored = None;
        let error = result
            .as_ref()
            .err()
            .map(|e| e.answer(self.sender.request_id.as_str()));
        let status = error.as_ref().map_or(success, |e| e.status);
        let target = report
            .id
            .clone()
            .map(|id| Target::Resource(report.resource_type, id));
        self.audit(Some(method), &target, status, error.as_ref(), Some(report));
    }

    fn report(&self, kind: Hook, rt: ResourceType, id: &str) -> WriteReport {
        WriteReport::new(
            self.sender.request_id.clone(),
            self.sender.principal.clone(),
            self.sender.client,
            kind,
            rt,
            Some(id),
        )
    }
}
