//! The write path, one named step after another: decode → write hooks → validate →
//! protect the password → store. Write hooks are where operator plugins run.

use std::time::{Duration, Instant};

use scimgate_model::dialect::{Rewrites, normalize_resource};
use scimgate_model::patch;
use scimgate_model::patch::MemberChanges;
use scimgate_model::validate::{carry_immutable, check_list_lengths, schema_urns, validate};
use scimgate_model::{PasswordChange, ResourceType, ScimError};
use scimgate_store::{
    MemberRef, NewResource, PatchOutcome, PatchWrite, StoreError, StoredResource,
};
use serde_json::Value;

use crate::error::ApiError;
use crate::etag::Precondition;
use crate::hooks::{Hook, WriteContext, run_write_hooks};
use crate::report::WriteReport;
use crate::state::AppState;

/// Whether any write hook (a plugin) looks at this kind of write of this type in this
/// tenant: the work done only for hooks is skipped otherwise.
fn hooks_apply(state: &AppState, hook: Hook, rt: ResourceType, tenant: &str) -> bool {
    state
        .write_hooks
        .iter()
        .any(|h| h.applies(hook, rt, tenant))
}

/// The dialect step: what the IdP sent, rewritten into what it means (see `dialect`).
fn normalize(state: &AppState, tenant: &str, rt: ResourceType, mut doc: Value) -> Value {
    let mut rewrites = Vec::new();
    normalize_resource(
        rt,
        &mut doc,
        state.settings.dialect_for(tenant),
        &mut rewrites,
    );
    log_rewrites(&rewrites);
    doc
}

fn log_rewrites(rewrites: &Rewrites) {
    for rule in rewrites {
        tracing::debug!(rule, "dialect rewrite");
    }
}

/// Create: dialect, hooks, validation, password, store.
pub fn create(
    state: &AppState,
    tenant: &str,
    rt: ResourceType,
    doc: Value,
    report: &mut WriteReport,
) -> Result<StoredResource, ApiError> {
    bounded(state, &doc)?;
    let doc = normalize(state, tenant, rt, doc);
    let ctx = WriteContext {
        kind: Hook::Create,
        resource_type: rt,
        tenant,
        before: None,
        operations: None,
        decisions: &report.plugins,
    };
    let doc = run_write_hooks(&state.write_hooks, &ctx, doc)?;
    let new = stored_form(state, &ctx, &doc, &mut HashedOnce::default())?;
    let created = state.store.create(tenant, new)?;
    report.id = Some(created.id.clone());
    report.version_after = Some(created.version);
    Ok(created)
}

/// The steps after the hooks, alike for every write: validation (and the bound on list
/// lengths), the immutable values of the stored resource kept, the password protected.
/// What comes out is what storage takes.
fn stored_form(
    state: &AppState,
    ctx: &WriteContext<'_>,
    hooked: &Value,
    hashed: &mut HashedOnce,
) -> Result<NewResource, ApiError> {
    let mut validated = checked(state, ctx.resource_type, hooked)?;
    if let Some(before) = ctx.before {
        carry_immutable(
            ctx.resource_type,
            &before.attributes,
            &mut validated.attributes,
        )?;
    }
    let hash = hashed.protect(state, ctx.tenant, validated.password.clone())?;
    Ok(NewResource::from_validated(validated, hash))
}

/// How long a write without `If-Match` is redone on the newest version before it gives
/// up with 503: only a resource that others write to without pause gets there.
const UNCONDITIONAL_RETRY_FOR: Duration = Duration::from_secs(10);

/// Runs `attempt` until it is not refused for a stale version. With `If-Match` the client
/// asked for exactly that version, so a stale one is its 412. Without, a client must
/// never see 412 (it sent no precondition): the write is redone on the newest version,
/// after a short random pause so that writers racing on one resource spread over commits.
fn until_applied<T>(
    if_match: Option<&Precondition>,
    mut attempt: impl FnMut() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let started = Instant::now();
    let mut round: u64 = 0;
    loop {
        match attempt() {
            Err(ApiError::Store(StoreError::VersionMismatch { current })) => {
                if if_match.is_some() {
                    return Err(stale(current));
                }
                if started.elapsed() >= UNCONDITIONAL_RETRY_FOR {
                    return Err(ApiError::Contended);
                }
                round += 1;
                std::thread::sleep(Duration::from_millis(rand::random_range(0..=round.min(20))));
            }
            other => return other,
        }
    }
}

/// Hashes a password once per write, however often the write is redone: Argon2 costs a
/// core for tens of milliseconds, and a retry usually carries the same password.
#[derive(Default)]
struct HashedOnce(Option<(String, PasswordChange)>);

impl HashedOnce {
    fn protect(
        &mut self,
        state: &AppState,
        tenant: &str,
        change: PasswordChange,
    ) -> Result<PasswordChange, ApiError> {
        let PasswordChange::Set(clear) = change else {
            return Ok(change);
        };
        if let Some((done, hash)) = &self.0
            && *done == clear
        {
            return Ok(hash.clone());
        }
        let hash = state
            .passwords
            .protect(tenant, PasswordChange::Set(clear.clone()))?;
        self.0 = Some((clear, hash.clone()));
        Ok(hash)
    }
}

/// Replace: the same steps against the current version, which the store re-checks, so a
/// concurrent write is never silently overwritten with stale immutable values.
pub fn replace(
    state: &AppState,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    if_match: Option<&Precondition>,
    doc: Value,
    report: &mut WriteReport,
) -> Result<StoredResource, ApiError> {
    bounded(state, &doc)?;
    let doc = normalize(state, tenant, rt, doc);
    let mut hashed = HashedOnce::default();
    let replaced = until_applied(if_match, || {
        let current = current_version(state, tenant, rt, id, if_match, false, report)?;
        let ctx = WriteContext {
            kind: Hook::Replace,
            resource_type: rt,
            tenant,
            before: Some(&current),
            operations: None,
            decisions: &report.plugins,
        };
        let hooked = run_write_hooks(&state.write_hooks, &ctx, doc.clone())?;
        let new = stored_form(state, &ctx, &hooked, &mut hashed)?;
        Ok(state
            .store
            .replace(tenant, id, Some(current.version), new)?)
    })?;
    report.version_after = Some(replaced.version);
    Ok(replaced)
}

/// Patch: parse the operations (dialect applied), apply them to a copy of the stored
/// attributes, then the same hooks, validation and immutability rule as a replace, on the
/// whole result. Member changes go to storage as row changes. All or nothing.
pub fn patch(
    state: &AppState,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    if_match: Option<&Precondition>,
    body: Value,
    report: &mut WriteReport,
) -> Result<PatchOutcome, ApiError> {
    let dialect = state.settings.dialect_for(tenant);
    let mut rewrites = Vec::new();
    // What plugins see of the request: the operations as the client sent them. Copied only
    // when a plugin will look: a member list of a megabyte is not held twice for nothing.
    let hooks_active = hooks_apply(state, Hook::Patch, rt, tenant);
    let operations = body
        .as_object()
        .filter(|_| hooks_active)
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("Operations")))
        .map(|(_, v)| v.clone());
    let ops = patch::parse(
        rt,
        body,
        dialect,
        patch::PatchLimits {
            max_operations: state.settings.max_patch_operations,
            max_filter_depth: state.settings.filter_max_depth,
        },
        &mut rewrites,
    )?;
    // A Group's plugins see its members as they would be stored, so the current ones are
    // read with it; otherwise member changes stay row changes and the list is not read.
    let members_shown = rt == ResourceType::Group && hooks_active;
    let mut hashed = HashedOnce::default();
    let mut step_rewrites = Vec::new();
    let mut done = until_applied(if_match, || {
        let current = current_version(state, tenant, rt, id, if_match, members_shown, report)?;
        step_rewrites = rewrites.clone();
        let outcome = patch::apply(
            rt,
            id,
            &current.attributes,
            &ops,
            dialect,
            &mut step_rewrites,
        )?;
        let mut members = outcome.members;
        // Plugins see every PATCH, member-only ones included (with the operations); a
        // member-only PATCH whose plugins change nothing writes no attributes.
        let changed = outcome.attributes_changed || !outcome.password.is_keep();
        let new = if changed || hooks_active {
            let mut doc = outcome.attributes;
            let urns = schema_urns(rt, &doc);
            doc.insert("schemas".into(), serde_json::json!(urns));
            if members_shown {
                let now = current.members.as_deref().unwrap_or_default();
                doc.insert("members".into(), members_after(now, &members));
            }
            match &outcome.password {
                PasswordChange::Keep => {}
                PasswordChange::Set(p) => {
                    doc.insert("password".into(), Value::String(p.clone()));
                }
                PasswordChange::Clear => {
                    doc.insert("password".into(), Value::Null);
                }
            }
            let doc = Value::Object(doc);
            let ctx = WriteContext {
                kind: Hook::Patch,
                resource_type: rt,
                tenant,
                before: Some(&current),
                operations: operations.as_ref(),
                decisions: &report.plugins,
            };
            let hooked = run_write_hooks(&state.write_hooks, &ctx, doc.clone())?;
            if changed || hooked != doc {
                let mut new = stored_form(state, &ctx, &hooked, &mut hashed)?;
                if members_shown && hooked.get("members") != doc.get("members") {
                    // A plugin changed the members: its list is the group's new one.
                    members = MemberChanges {
                        replace_with: Some(std::mem::take(&mut new.members)),
                        ..MemberChanges::default()
                    };
                }
                Some(new)
            } else {
                None
            }
        } else {
            None
        };
        // Member-only changes need no version check, they are row changes that commute;
        // unless plugins ran: what they accepted (a group's whole member list) is what is
        // written, or the PATCH starts over on the newer version.
        let expected =
            (new.is_some() || if_match.is_some() || hooks_active).then_some(current.version);
        let write = PatchWrite {
            rt,
            expected_version: expected,
            new,
            members,
            skip_unknown_members: dialect.skip_unknown_members,
        };
        Ok(state.store.patch(tenant, id, write)?)
    })?;
    log_rewrites(&step_rewrites);
    report.version_after = Some(done.resource.version);
    report.skipped_members = std::mem::take(&mut done.skipped_members);
    if let Some(skipped) = report.skipped_detail() {
        tracing::warn!(
            group = id,
            skipped = %skipped,
            "PATCH named members that do not exist in the tenant; the others were applied"
        );
    }
    Ok(done)
}

/// A group's member list after `changes`, as plugins see it (`value`, `type`, and the
/// `display` of members already in the group).
fn members_after(current: &[MemberRef], changes: &MemberChanges) -> Value {
    let entry = |value: &str, member_type: Option<ResourceType>, display: Option<&str>| {
        let mut m = serde_json::Map::new();
        m.insert("value".into(), Value::String(value.to_owned()));
        if let Some(t) = member_type {
            m.insert("type".into(), Value::String(t.name().to_owned()));
        }
        if let Some(d) = display.filter(|d| !d.is_empty()) {
            m.insert("display".into(), Value::String(d.to_owned()));
        }
        Value::Object(m)
    };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    match &changes.replace_with {
        Some(all) => {
            for m in all {
                if seen.insert(m.value.as_str()) {
                    out.push(entry(&m.value, m.member_type, None));
                }
            }
        }
        None => {
            let removed: std::collections::HashSet<&str> =
                changes.remove.iter().map(String::as_str).collect();
            for m in current {
                if !removed.contains(m.value.as_str()) && seen.insert(m.value.as_str()) {
                    out.push(entry(&m.value, Some(m.member_type), Some(&m.display)));
                }
            }
        }
    }
    for m in &changes.add {
        if seen.insert(m.value.as_str()) {
            out.push(entry(&m.value, m.member_type, None));
        }
    }
    Value::Array(out)
}

/// The bound on list lengths, first on the body as sent, before any work is done on it: a
/// list longer than twice the limit cannot be within it even after duplicates are dropped.
/// The exact check follows validation, on what storage will keep.
fn bounded(state: &AppState, doc: &Value) -> Result<(), ScimError> {
    let max = state.settings.max_values_per_attribute;
    match doc.as_object() {
        Some(obj) => check_list_lengths(obj, max.saturating_mul(2)),
        None => Ok(()),
    }
}

/// Validation, then the bound on list lengths: the resource as storage will keep it.
fn checked(
    state: &AppState,
    rt: ResourceType,
    doc: &Value,
) -> Result<scimgate_model::ValidatedResource, ScimError> {
    let validated = validate(rt, doc)?;
    check_list_lengths(
        &validated.attributes,
        state.settings.max_values_per_attribute,
    )?;
    Ok(validated)
}

/// Delete, honouring `If-Match`. Plugins on the delete hook see the resource being
/// deleted and may refuse; what they decided on is what is deleted (the version is
/// checked), so a change in between makes the delete start over.
pub fn delete(
    state: &AppState,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    if_match: Option<&Precondition>,
    report: &mut WriteReport,
) -> Result<(), ApiError> {
    let hooks_active = hooks_apply(state, Hook::Delete, rt, tenant);
    until_applied(if_match, || {
        // Read first even without If-Match, so that the audit trail has the version deleted.
        let current = current_version(state, tenant, rt, id, if_match, false, report)?;
        if hooks_active {
            let mut doc = current.attributes.clone();
            doc.insert(
                "schemas".into(),
                serde_json::json!(schema_urns(rt, &current.attributes)),
            );
            doc.insert("id".into(), Value::String(current.id.clone()));
            let ctx = WriteContext {
                kind: Hook::Delete,
                resource_type: rt,
                tenant,
                before: Some(&current),
                operations: None,
                decisions: &report.plugins,
            };
            run_write_hooks(&state.write_hooks, &ctx, Value::Object(doc))?;
        }
        let expected = (if_match.is_some() || hooks_active).then_some(current.version);
        Ok(state.store.delete(tenant, rt, id, expected)?)
    })
}

/// Each attempt of a write starts here: the stored resource it works on (with its
/// relations when asked), after the `If-Match` check, reported as the version before. The
/// plugin decisions of an earlier attempt are dropped: the report tells of the last one.
fn current_version(
    state: &AppState,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    if_match: Option<&Precondition>,
    with_relations: bool,
    report: &mut WriteReport,
) -> Result<StoredResource, ApiError> {
    report.plugins.get_mut().clear();
    let current = state
        .store
        .get(tenant, rt, id, with_relations)?
        .ok_or_else(|| StoreError::NotFound(rt, id.to_owned()))?;
    report.version_before = Some(current.version);
    if if_match.is_some_and(|p| !p.matches(current.version)) {
        return Err(stale(current.version));
    }
    Ok(current)
}

fn stale(current: i64) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "If-Match does not match the current version {}",
        crate::etag::etag(current)
    ))
}
