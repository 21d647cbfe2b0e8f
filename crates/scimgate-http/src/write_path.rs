//! The write path, one named step after another: decode → write hooks → validate →
//! protect the password → store. Write hooks are where operator plugins run.

use std::sync::Arc;

use scimgate_model::dialect::{Rewrites, normalize_resource};
use scimgate_model::patch;
use scimgate_model::validate::{carry_immutable, check_list_lengths, schema_urns, validate};
use scimgate_model::{ResourceType, ScimError};
use scimgate_store::{NewResource, PatchOutcome, PatchWrite, StoreError, StoredResource};
use serde_json::Value;

use crate::error::ApiError;
use crate::etag::Precondition;
use crate::state::AppState;

/// Which write a hook is looking at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Create,
    Replace,
    Patch,
}

/// What a hook learns about the write besides the resource itself.
#[derive(Debug, Clone)]
pub struct WriteContext<'a> {
    pub kind: WriteKind,
    pub resource_type: ResourceType,
    pub tenant: &'a str,
    /// The stored resource before the change (replace, patch).
    pub before: Option<&'a StoredResource>,
    /// The PATCH operations as the client sent them (patch only).
    pub operations: Option<&'a Value>,
}

/// A step that may rewrite or refuse a resource before it is validated and stored. The
/// plugin host implements this; each hook sees the previous hook's output.
pub trait WriteHook: Send + Sync {
    fn name(&self) -> &str;
    /// Whether the hook would do anything now (a plugin hook with no plugins loaded does not).
    fn is_active(&self) -> bool {
        true
    }
    fn apply(&self, ctx: &WriteContext<'_>, resource: Value) -> Result<Value, ScimError>;
}

/// Runs every configured hook in order. This is the seam where plugins run: after the
/// request is decoded, before schema validation, so a hook can never store what the
/// schema forbids.
fn run_write_hooks(
    hooks: &[Arc<dyn WriteHook>],
    ctx: &WriteContext<'_>,
    mut doc: Value,
) -> Result<Value, ScimError> {
    for hook in hooks {
        doc = hook.apply(ctx, doc)?;
    }
    Ok(doc)
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
) -> Result<StoredResource, ApiError> {
    bounded(state, &doc)?;
    let doc = normalize(state, tenant, rt, doc);
    let ctx = WriteContext {
        kind: WriteKind::Create,
        resource_type: rt,
        tenant,
        before: None,
        operations: None,
    };
    let doc = run_write_hooks(&state.write_hooks, &ctx, doc)?;
    let validated = checked(state, rt, &doc)?;
    let hash = state
        .passwords
        .protect(tenant, validated.password.clone())?;
    Ok(state
        .store
        .create(tenant, NewResource::from_validated(validated, hash))?)
}

/// How often a replace without `If-Match` retries when another write got there first.
const REPLACE_ATTEMPTS: usize = 3;

/// Replace: the same steps against the current version, which the store re-checks, so a
/// concurrent write is never silently overwritten with stale immutable values.
pub fn replace(
    state: &AppState,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    if_match: Option<&Precondition>,
    doc: Value,
) -> Result<StoredResource, ApiError> {
    bounded(state, &doc)?;
    let doc = normalize(state, tenant, rt, doc);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = current_version(state, tenant, rt, id, if_match)?;
        let ctx = WriteContext {
            kind: WriteKind::Replace,
            resource_type: rt,
            tenant,
            before: Some(&current),
            operations: None,
        };
        let hooked = run_write_hooks(&state.write_hooks, &ctx, doc.clone())?;
        let mut validated = checked(state, rt, &hooked)?;
        carry_immutable(rt, &current.attributes, &mut validated.attributes)?;
        let hash = state
            .passwords
            .protect(tenant, validated.password.clone())?;
        let new = NewResource::from_validated(validated, hash);
        match state.store.replace(tenant, id, Some(current.version), new) {
            Err(StoreError::VersionMismatch { current })
                if if_match.is_some() || attempt >= REPLACE_ATTEMPTS =>
            {
                return Err(stale(current));
            }
            Err(StoreError::VersionMismatch { .. }) => continue,
            other => return Ok(other?),
        }
    }
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
) -> Result<PatchOutcome, ApiError> {
    let dialect = state.settings.dialect_for(tenant);
    let mut rewrites = Vec::new();
    // What plugins see of the request: the operations as the client sent them. Copied only
    // when a plugin will look: a member list of a megabyte is not held twice for nothing.
    let hooks_active = state.write_hooks.iter().any(|h| h.is_active());
    let operations = body
        .as_object()
        .filter(|_| hooks_active)
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("Operations")))
        .map(|(_, v)| v.clone());
    let ops = patch::parse(
        rt,
        body,
        dialect,
        state.settings.max_patch_operations,
        &mut rewrites,
    )?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = current_version(state, tenant, rt, id, if_match)?;
        let mut step_rewrites = rewrites.clone();
        let outcome = patch::apply(
            rt,
            id,
            &current.attributes,
            &ops,
            dialect,
            &mut step_rewrites,
        )?;
        // Plugins see every PATCH, member-only ones included (with the operations); a
        // member-only PATCH whose plugins change nothing writes no attributes.
        let changed = outcome.attributes_changed || outcome.password.is_some();
        let new = if changed || hooks_active {
            let mut doc = outcome.attributes;
            let urns = schema_urns(rt, &doc);
            doc.insert("schemas".into(), serde_json::json!(urns));
            let doc = Value::Object(doc);
            let ctx = WriteContext {
                kind: WriteKind::Patch,
                resource_type: rt,
                tenant,
                before: Some(&current),
                operations: operations.as_ref(),
            };
            let hooked = run_write_hooks(&state.write_hooks, &ctx, doc.clone())?;
            if changed || hooked != doc {
                let mut validated = checked(state, rt, &hooked)?;
                carry_immutable(rt, &current.attributes, &mut validated.attributes)?;
                let hash = state.passwords.protect(tenant, outcome.password)?;
                Some(NewResource::from_validated(validated, hash))
            } else {
                None
            }
        } else {
            None
        };
        // Member-only changes need no version check: they are row changes that commute.
        let expected = (new.is_some() || if_match.is_some()).then_some(current.version);
        let write = PatchWrite {
            rt,
            expected_version: expected,
            new,
            members: outcome.members,
            skip_unknown_members: dialect.skip_unknown_members,
        };
        match state.store.patch(tenant, id, write) {
            Err(StoreError::VersionMismatch { current })
                if if_match.is_some() || attempt >= REPLACE_ATTEMPTS =>
            {
                return Err(stale(current));
            }
            Err(StoreError::VersionMismatch { .. }) => continue,
            other => {
                let done = other?;
                log_rewrites(&step_rewrites);
                if !done.skipped_members.is_empty() {
                    // The ids are the client's: the audit row and the log line name the
                    // first few and count the rest, whatever the client sent.
                    let skipped = skipped_list(&done.skipped_members);
                    crate::audit::note(|n| {
                        n.detail = Some(format!(
                            "members that do not exist in the tenant were skipped: {skipped}"
                        ))
                    });
                    tracing::warn!(
                        group = id,
                        skipped = %skipped,
                        "PATCH named members that do not exist in the tenant; the others were applied"
                    );
                }
                return Ok(done);
            }
        }
    }
}

/// Ids named in a message: the first few in full, then how many more.
fn skipped_list(ids: &[String]) -> String {
    const SHOWN: usize = 10;
    let shown: Vec<String> = ids
        .iter()
        .take(SHOWN)
        .map(|id| scimgate_model::excerpt(id, 64).into_owned())
        .collect();
    match ids.len().saturating_sub(SHOWN) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
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

/// Delete, honouring `If-Match`.
pub fn delete(
    state: &AppState,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    if_match: Option<&Precondition>,
) -> Result<(), ApiError> {
    // Read first even without If-Match, so that the audit trail has the version deleted.
    let current = current_version(state, tenant, rt, id, if_match)?;
    let expected = if_match.map(|_| current.version);
    match state.store.delete(tenant, rt, id, expected) {
        Err(StoreError::VersionMismatch { current }) => Err(stale(current)),
        other => Ok(other?),
    }
}

/// The stored resource a write starts from, after the `If-Match` check.
fn current_version(
    state: &AppState,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    if_match: Option<&Precondition>,
) -> Result<StoredResource, ApiError> {
    let current = state
        .store
        .get(tenant, rt, id, false)?
        .ok_or_else(|| StoreError::NotFound(rt, id.to_owned()))?;
    crate::audit::note(|n| n.version_before = Some(current.version));
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
