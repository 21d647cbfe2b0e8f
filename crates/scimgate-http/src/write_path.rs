//! The write path, one named step after another: dialect → write hooks → validate → keep
//! the immutables → protect the password → store. Write hooks are where operator plugins
//! run. Every write fills its `WriteReport` as it goes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scimgate_model::change::{activation, applied_operations, changed_attributes};
use scimgate_model::dialect::{Rewrites, normalize_resource};
use scimgate_model::patch;
use scimgate_model::patch::MemberChanges;
use scimgate_model::validate::{carry_immutable, check_list_lengths, schema_urns, validate};
use scimgate_model::{PasswordChange, ResourceType, ScimError};
use scimgate_store::{
    ChangeNote, MemberRef, NewResource, PatchWrite, PendingWrite, Store, StoreError, StoredResource,
};
use serde_json::Value;

use crate::error::ApiError;
use crate::etag::Precondition;
use crate::hooks::{Hook, WriteContext, WriteHook, run_write_hooks};
use crate::password::Passwords;
use crate::report::WriteReport;
use crate::settings::HttpSettings;

/// What the writes need, and nothing else of the app: the store, the hooks, password
/// hashing and the settings (dialects and limits).
pub struct WritePipeline {
    store: Arc<dyn Store>,
    hooks: Vec<Arc<dyn WriteHook>>,
    passwords: Passwords,
    settings: Arc<HttpSettings>,
}

impl WritePipeline {
    pub fn new(
        store: Arc<dyn Store>,
        hooks: Vec<Arc<dyn WriteHook>>,
        passwords: Passwords,
        settings: Arc<HttpSettings>,
    ) -> Self {
        WritePipeline {
            store,
            hooks,
            passwords,
            settings,
        }
    }

    /// Whether any write hook (a plugin) looks at this write: the work done only for hooks
    /// is skipped otherwise.
    fn hooks_apply(&self, report: &WriteReport) -> bool {
        self.hooks
            .iter()
            .any(|h| h.applies(report.operation, report.resource_type, report.tenant()))
    }

    /// The dialect step: what the IdP sent, rewritten into what it means (see `dialect`).
    fn normalize(&self, report: &WriteReport, mut doc: Value) -> Value {
        let mut rewrites = Vec::new();
        normalize_resource(
            report.resource_type,
            &mut doc,
            self.settings.dialect_for(report.tenant()),
            &mut rewrites,
        );
        log_rewrites(&rewrites);
        doc
    }

    /// Create: dialect, hooks, validation, password, store.
    /// A create a schema reload overtook is answered 503 (`SchemasChanged`), to be sent
    /// again: the body is not kept for a second try.
    pub fn create(&self, report: &mut WriteReport, doc: Value) -> Result<(), ApiError> {
        let new = self.prepare_create(report, doc)?;
        let created = self.store.create(report.tenant(), new)?;
        report.created(created);
        Ok(())
    }

    /// A create's steps before storage (dialect, hooks, validation, password): what a Bulk
    /// request then queues (`queue_create`), so that its creates share commits. It carries
    /// its audit row, committed with it (`WriteReport::created` notes that).
    pub fn prepare_create(
        &self,
        report: &WriteReport,
        doc: Value,
    ) -> Result<NewResource, ApiError> {
        self.bounded(&doc)?;
        let doc = self.normalize(report, doc);
        let ctx = context(report, None, None);
        let doc = run_write_hooks(&self.hooks, &ctx, doc)?;
        let mut new = self.stored_form(&ctx, &doc, &mut HashedOnce::default())?;
        new.change.audit = Some(report.audit_row(report.answered));
        Ok(new)
    }

    /// Queues a prepared create behind the caller's earlier ones (see `Store::create_queued`);
    /// `WriteReport::created` takes its outcome.
    pub fn queue_create(
        &self,
        report: &WriteReport,
        new: NewResource,
    ) -> PendingWrite<StoredResource> {
        self.store.create_queued(report.tenant(), new)
    }

    /// Replace: the same steps against the current version, which the store re-checks, so
    /// a concurrent write is never silently overwritten with stale immutable values.
    pub fn replace(
        &self,
        report: &mut WriteReport,
        if_match: Option<&Precondition>,
        doc: Value,
    ) -> Result<(), ApiError> {
        self.bounded(&doc)?;
        let doc = self.normalize(report, doc);
        let mut hashed = HashedOnce::default();
        let replaced = until_applied(if_match, || {
            let current = self.current_version(report, if_match, false)?;
            let ctx = context(report, Some(&current), None);
            let hooked = run_write_hooks(&self.hooks, &ctx, doc.clone())?;
            let mut new = self.stored_form(&ctx, &hooked, &mut hashed)?;
            new.change.audit = Some(report.audit_row(report.answered));
            Ok(self
                .store
                .replace(ctx.tenant, &current.id, Some(current.version), new)?)
        })?;
        report.audited = true;
        report.version_after = Some(replaced.version);
        report.stored = Some(replaced);
        Ok(())
    }

    /// Patch: parse the operations (dialect applied), apply them to a copy of the stored
    /// attributes, then the same hooks, validation and immutability rule as a replace, on
    /// the whole result. Member changes go to storage as row changes. All or nothing.
    pub fn patch(
        &self,
        report: &mut WriteReport,
        if_match: Option<&Precondition>,
        body: Value,
    ) -> Result<(), ApiError> {
        let rt = report.resource_type;
        let dialect = self.settings.dialect_for(report.tenant());
        let mut rewrites = Vec::new();
        // What plugins see of the request: the operations as the client sent them. Copied
        // only when a plugin will look: a member list of a megabyte is not held twice for
        // nothing.
        let hooks_active = self.hooks_apply(report);
        let operations = body
            .as_object()
            .filter(|_| hooks_active)
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("Operations")))
            .map(|(_, v)| v.clone());
        refuse_hidden_paths(rt, report.tenant(), &body)?;
        let ops = patch::parse(
            rt,
            body,
            dialect,
            patch::PatchLimits {
                max_operations: self.settings.max_patch_operations,
                max_filter_depth: self.settings.filter_max_depth,
            },
            &mut rewrites,
        )?;
        // A Group's plugins see its members as they would be stored, so the current ones
        // are read with it; otherwise member changes stay row changes and the list is not
        // read.
        let members_shown = rt == ResourceType::Group && hooks_active;
        let mut hashed = HashedOnce::default();
        let mut step_rewrites = Vec::new();
        let mut done = until_applied(if_match, || {
            let current = self.current_version(report, if_match, members_shown)?;
            step_rewrites = rewrites.clone();
            let outcome = patch::apply(
                rt,
                &current.id,
                &current.attributes,
                &ops,
                dialect,
                &mut step_rewrites,
            )?;
            let mut members = outcome.members;
            // What the plugins changed beyond the operations, for the event.
            let mut plugin_ops = Vec::new();
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
                let ctx = context(report, Some(&current), operations.as_ref());
                let hooked = run_write_hooks(&self.hooks, &ctx, doc.clone())?;
                plugin_ops = plugin_changes(&doc, &hooked);
                if changed || hooked != doc {
                    let mut new = self.stored_form(&ctx, &hooked, &mut hashed)?;
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
            // unless plugins ran: what they accepted (a group's whole member list) is what
            // is written, or the PATCH starts over on the newer version.
            let expected =
                (new.is_some() || if_match.is_some() || hooks_active).then_some(current.version);
            // The event tells of the operations as applied, and of what they changed.
            let mut change = match &new {
                Some(new) => new.change.clone(),
                None => ChangeNote::default(),
            };
            if !members.is_empty() && !change.attributes.iter().any(|a| a == "members") {
                change.attributes.push("members".into());
            }
            let mut applied = applied_operations(rt, &ops, dialect);
            if let Value::Array(list) = &mut applied {
                list.extend(plugin_ops);
            }
            change.operations = Some(applied);
            change.audit = Some(report.audit_row(report.answered));
            let write = PatchWrite {
                rt,
                expected_version: expected,
                new,
                members,
                skip_unknown_members: dialect.skip_unknown_members,
                change,
            };
            Ok(self.store.patch(report.tenant(), &current.id, write)?)
        })?;
        log_rewrites(&step_rewrites);
        report.audited = true;
        report.version_after = Some(done.resource.version);
        report.skipped_members = std::mem::take(&mut done.skipped_members);
        if let Some(skipped) = report.skipped_detail() {
            tracing::warn!(
                group = done.resource.id,
                skipped = %skipped,
                "PATCH named members that do not exist in the tenant; the others were applied"
            );
        }
        report.stored = Some(done.resource);
        Ok(())
    }

    /// Delete, honouring `If-Match`. Plugins on the delete hook see the resource being
    /// deleted and may refuse; what they decided on is what is deleted (the version is
    /// checked), so a change in between makes the delete start over.
    pub fn delete(
        &self,
        report: &mut WriteReport,
        if_match: Option<&Precondition>,
    ) -> Result<(), ApiError> {
        let rt = report.resource_type;
        let hooks_active = self.hooks_apply(report);
        until_applied(if_match, || {
            // Read first even without If-Match, so that the report has the version deleted.
            let current = self.current_version(report, if_match, false)?;
            if hooks_active {
                let mut doc = current.attributes.clone();
                doc.insert(
                    "schemas".into(),
                    serde_json::json!(schema_urns(rt, &current.attributes)),
                );
                doc.insert("id".into(), Value::String(current.id.clone()));
                let ctx = context(report, Some(&current), None);
                run_write_hooks(&self.hooks, &ctx, Value::Object(doc))?;
            }
            let expected = (if_match.is_some() || hooks_active).then_some(current.version);
            let change = ChangeNote {
                audit: Some(report.audit_row(report.answered)),
                ..ChangeNote::default()
            };
            Ok(self
                .store
                .delete(report.tenant(), rt, &current.id, expected, change)?)
        })?;
        report.audited = true;
        Ok(())
    }

    /// The steps after the hooks, alike for every write: validation (and the bound on list
    /// lengths), the immutable values of the stored resource kept, the password protected.
    /// What comes out is what storage takes.
    fn stored_form(
        &self,
        ctx: &WriteContext<'_>,
        hooked: &Value,
        hashed: &mut HashedOnce,
    ) -> Result<NewResource, ApiError> {
        let mut validated = self.checked(ctx.resource_type, hooked)?;
        extensions_allowed(
            ctx.resource_type,
            ctx.tenant,
            &validated.attributes,
            ctx.before.map(|b| &b.attributes),
        )?;
        if let Some(before) = ctx.before {
            carry_immutable(
                ctx.resource_type,
                &before.attributes,
                &mut validated.attributes,
            )?;
        }
        let hash = hashed.protect(&self.passwords, ctx.tenant, validated.password.clone())?;
        let mut new = NewResource::from_validated(validated, hash);
        new.change = change_of(ctx.kind, ctx.before, &new);
        Ok(new)
    }

    /// Each attempt of a write starts here: the stored resource it works on (with its
    /// relations when asked), after the `If-Match` check, reported as the version before.
    /// The plugin decisions of an earlier attempt are dropped: the report tells of the
    /// last one.
    fn current_version(
        &self,
        report: &mut WriteReport,
        if_match: Option<&Precondition>,
        with_relations: bool,
    ) -> Result<StoredResource, ApiError> {
        report.plugins.get_mut().clear();
        let (rt, id) = (
            report.resource_type,
            report.id.as_deref().unwrap_or_default(),
        );
        let current = self
            .store
            .get(report.tenant(), rt, id, with_relations)?
            .ok_or_else(|| StoreError::NotFound(rt, id.to_owned()))?;
        report.version_before = Some(current.version);
        if if_match.is_some_and(|p| !p.matches(current.version)) {
            return Err(stale(current.version));
        }
        Ok(current)
    }

    /// The bound on list lengths, first on the body as sent, before any work is done on
    /// it: a list longer than twice the limit cannot be within it even after duplicates
    /// are dropped. The exact check follows validation, on what storage will keep.
    fn bounded(&self, doc: &Value) -> Result<(), ScimError> {
        let max = self.settings.max_values_per_attribute;
        match doc.as_object() {
            Some(obj) => check_list_lengths(obj, max.saturating_mul(2)),
            None => Ok(()),
        }
    }

    /// Validation, then the bound on list lengths: the resource as storage will keep it.
    fn checked(
        &self,
        rt: ResourceType,
        doc: &Value,
    ) -> Result<scimgate_model::ValidatedResource, ScimError> {
        let validated = validate(rt, doc)?;
        check_list_lengths(
            &validated.attributes,
            self.settings.max_values_per_attribute,
        )?;
        Ok(validated)
    }
}

/// The operator's extensions are each for some tenants, and some are required: a resource
/// takes up only extensions its tenant may use, and carries every one its tenant must
/// (checked on what storage will keep, after the plugins, so that a mapping plugin may
/// fill them). One it carried already stays writable when the tenant lost it (`tenants`
/// narrowed on reload): its other attributes must stay writable, deprovisioning first.
fn extensions_allowed(
    rt: ResourceType,
    tenant: &str,
    attributes: &serde_json::Map<String, Value>,
    before: Option<&serde_json::Map<String, Value>>,
) -> Result<(), ScimError> {
    let registry = scimgate_model::registry::current();
    if registry.operator().is_empty() {
        return Ok(());
    }
    if let Some(urn) = attributes.keys().find(|k| {
        k.starts_with("urn:")
            && !registry.available(k, tenant)
            && before.is_none_or(|b| !b.contains_key(*k))
    }) {
        // As validation says of a schema no one declared: the tenant does not see it.
        return Err(ScimError::invalid_syntax(format!(
            "schema '{urn}' is not supported for resource type {}, so its attributes cannot be stored",
            rt.name()
        )));
    }
    for (schema, required) in registry.for_tenant(rt, tenant) {
        if required && !attributes.contains_key(schema.id) {
            return Err(ScimError::invalid_value(format!(
                "the extension '{}' is required for a {} in this tenant, and missing",
                schema.id,
                rt.name()
            )));
        }
    }
    Ok(())
}

/// A PATCH path into an extension the tenant may not use is refused as one into a schema
/// no one declared, in the PATCH parser's words (the operation, the attribute part and
/// the path as written), before anything else is checked.
fn refuse_hidden_paths(rt: ResourceType, tenant: &str, body: &Value) -> Result<(), ScimError> {
    let registry = scimgate_model::registry::current();
    if registry.hidden_from(rt, tenant).is_empty() {
        return Ok(());
    }
    let ops = body
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("Operations")))
        .and_then(|(_, v)| v.as_array());
    for (index, op) in ops.into_iter().flatten().enumerate() {
        let path = op
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("path")))
            .and_then(|(_, v)| v.as_str());
        let Some(text) = path else {
            continue;
        };
        let attr = text.split('[').next().unwrap_or_default().trim();
        if registry.hides(rt, tenant, attr) {
            return Err(ScimError::bad_request(
                scimgate_model::ScimType::InvalidPath,
                format!(
                    "operation {}: unknown schema in '{attr}' for resource type {} in path '{text}'",
                    index + 1,
                    rt.name()
                ),
            ));
        }
    }
    Ok(())
}

/// What the write hooks changed in a PATCH's result, as operations after the client's (so
/// that a consumer applying the event's operations gets what was stored): a `replace` of
/// each attribute a plugin set or changed, a `remove` of each it took out; never the
/// password, nor `schemas`.
fn plugin_changes(before: &Value, after: &Value) -> Vec<Value> {
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
        return Vec::new();
    };
    let skip = |k: &str| k == "schemas" || scimgate_model::change::names_password(k);
    let mut ops: Vec<Value> = after
        .iter()
        .filter(|(k, v)| !skip(k) && before.get(*k) != Some(*v))
        .map(|(k, v)| {
            let mut value = v.clone();
            scimgate_model::change::without_passwords(&mut value);
            serde_json::json!({"op": "replace", "path": k, "value": value})
        })
        .collect();
    ops.extend(
        before
            .keys()
            .filter(|k| !skip(k) && !after.contains_key(*k))
            .map(|k| serde_json::json!({"op": "remove", "path": k})),
    );
    ops
}

/// What the change feed records of a write's attributes: those it set, changed or removed,
/// and whether `active` flipped. A group's `members` count as set by a create that names
/// some and by every replace (its list replaces the stored one); a PATCH's member changes
/// are added where they are known.
fn change_of(kind: Hook, before: Option<&StoredResource>, new: &NewResource) -> ChangeNote {
    let before = before.map(|b| &b.attributes);
    let mut attributes = changed_attributes(before, &new.attributes, &new.password_hash);
    let members_set = match kind {
        Hook::Create => !new.members.is_empty(),
        Hook::Replace => true,
        Hook::Patch | Hook::Delete | Hook::Event => false,
    };
    if new.resource_type == ResourceType::Group && members_set {
        attributes.push("members".into());
    }
    ChangeNote {
        attributes,
        operations: None,
        activation: activation(before, &new.attributes),
        audit: None,
    }
}

/// What the hooks are told about the write `report` is of.
fn context<'a>(
    report: &'a WriteReport,
    before: Option<&'a StoredResource>,
    operations: Option<&'a Value>,
) -> WriteContext<'a> {
    WriteContext {
        kind: report.operation,
        resource_type: report.resource_type,
        tenant: report.tenant(),
        request_id: report.request_id.as_str(),
        before,
        operations,
        decisions: &report.plugins,
    }
}

fn log_rewrites(rewrites: &Rewrites) {
    for rule in rewrites {
        tracing::debug!(rule, "dialect rewrite");
    }
}

/// How often a write is checked again when schema reloads keep overtaking it.
const SCHEMA_RETRIES: u64 = 3;

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
            // A schema reload came between the checks and storage: checked again under
            // the new set (a reload is rare; a client's precondition is not at stake).
            Err(ApiError::Store(StoreError::SchemasChanged)) if round < SCHEMA_RETRIES => {
                round += 1;
            }
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
        passwords: &Passwords,
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
        let hash = passwords.protect(tenant, PasswordChange::Set(clear.clone()))?;
        self.0 = Some((clear, hash.clone()));
        Ok(hash)
    }
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

fn stale(current: i64) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "If-Match does not match the current version {}",
        crate::etag::etag(current)
    ))
}
