//! Write statements, each run by the writer as one write of its batch: in a savepoint of
//! its own, or without one where every refusal comes before the first change (a create, a
//! replace, a user's PATCH: `writer::Guard`).

use std::collections::HashSet;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use scimgate_model::{MemberInput, PasswordChange, ResourceType};

use super::audit;
use super::index::{
    self, META_LAST_MODIFIED, PathIds, insert_keys, row_keys, rows_for, write_keys,
};
use super::outbox::{self, Appended};
use super::read::{ONE_RESOURCE, load_relations, members_of, row_to_resource};
use super::{parse_type, type_name};
use crate::error::StoreError;
use crate::records::{
    ChangeKind, ChangeNote, MemberRef, NewResource, PatchOutcome, PatchWrite, StoredResource,
};
use crate::stored_rows::{created_resource, new_resource_id};
use scimgate_model::patch::MemberChanges;

/// A create makes every check that can refuse it before its first change (the writer runs
/// it without a savepoint, `Guard::ChecksFirst`): its tenant, its members, its index keys,
/// and, in its first statement, its userName's uniqueness.
pub fn create(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    new: NewResource,
    now: &str,
) -> Result<StoredResource, StoreError> {
    // The server checked the tenant when the request came in; `tenant remove` may have run
    // since. Checked again in this transaction, which `tenant remove` serialises with.
    conn.prepare_cached("SELECT 1 FROM tenants WHERE name = ?1")?
        .query_row(params![tenant], |_| Ok(()))
        .optional()?
        .ok_or_else(|| StoreError::TenantNotRegistered(tenant.to_owned()))?;
    let id = new_resource_id();
    let members = check_members(conn, tenant, None, &new.members)?;
    let attributes = attributes_json(&new)?;
    let index_keys = row_keys(
        paths,
        &rows_for(new.resource_type, &new.attributes, now, now),
    )?;
    conn.prepare_cached(
        "INSERT INTO resources (tenant, resource_type, id, name, name_key, display, external_id, \
         attributes, password_hash, version, created, last_modified) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?10)",
    )?
    .execute(params![
        tenant,
        type_name(new.resource_type),
        id,
        new.name,
        new.name_key,
        new.display,
        new.external_id,
        attributes,
        set_hash(&new.password_hash),
        now
    ])
    .map_err(|e| uniqueness(e, &new.name))?;
    let seq = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO resource_counts (tenant, resource_type, n) VALUES (?1, ?2, 1) \
         ON CONFLICT (tenant, resource_type) DO UPDATE SET n = n + 1",
    )?
    .execute(params![tenant, type_name(new.resource_type)])?;
    insert_keys(conn, tenant, seq, index_keys)?;
    if !members.is_empty() {
        change_memberships(
            conn,
            &Touch::new(paths, tenant, now),
            ADD_MEMBERSHIP,
            &id,
            members.iter().map(|m| m.value.as_str()),
        )?;
    }
    let event_seq = outbox::append(
        conn,
        tenant,
        now,
        Appended::written(
            ChangeKind::Create,
            &new,
            &id,
            (1, now),
            &attributes,
            &members,
        ),
    )?;
    if let Some(mut row) = new.change.audit_row(now, &id, Some(1), &[]) {
        row.event_seq = Some(event_seq);
        audit::append_audit(conn, &row)?;
    }
    Ok(created_resource(
        new.resource_type,
        new.attributes,
        id,
        now,
        members,
    ))
}

/// A replace, like a create, makes every check that can refuse it before its first change
/// (its version, its members, its index keys) or in it (its userName's uniqueness).
pub fn replace(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    id: &str,
    expected_version: Option<i64>,
    new: NewResource,
    now: &str,
) -> Result<StoredResource, StoreError> {
    let rt = new.resource_type;
    let before = current(conn, tenant, rt, id, expected_version)?;
    let members = check_members(conn, tenant, Some(id), &new.members)?;
    let attributes = attributes_json(&new)?;
    update_row(conn, paths, tenant, id, &before, &new, &attributes, now)?;
    if rt == ResourceType::Group {
        replace_memberships(conn, &Touch::new(paths, tenant, now), id, &members)?;
    }
    let event_seq = outbox::append(
        conn,
        tenant,
        now,
        Appended::written(
            ChangeKind::Replace,
            &new,
            id,
            (before.version + 1, &before.created),
            &attributes,
            &members,
        ),
    )?;
    if let Some(mut row) = new.change.audit_row(now, id, Some(before.version + 1), &[]) {
        row.event_seq = Some(event_seq);
        audit::append_audit(conn, &row)?;
    }
    let Current {
        version, created, ..
    } = before;
    let mut stored = StoredResource {
        id: id.to_owned(),
        resource_type: rt,
        attributes: new.attributes,
        version: version + 1,
        created,
        last_modified: now.to_owned(),
        members: None,
        groups: None,
    };
    load_relations(conn, tenant, &mut stored)?;
    Ok(stored)
}

#[allow(clippy::too_many_arguments)] // the write's place (paths, tenant, now) and what it is
pub fn delete(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    expected_version: Option<i64>,
    change: &ChangeNote,
    now: &str,
) -> Result<(), StoreError> {
    let before = current(conn, tenant, rt, id, expected_version)?;
    // Groups that lose a member change, and so do users that lose a group.
    let touch = Touch::new(paths, tenant, now);
    match rt {
        ResourceType::User => touch.groups_of(conn, id)?,
        ResourceType::Group => {
            touch.groups_of(conn, id)?;
            touch.members_of(conn, id)?;
        }
    }
    conn.prepare_cached(
        "UPDATE resource_counts SET n = n - 1 WHERE tenant = ?1 AND resource_type = ?2",
    )?
    .execute(params![tenant, type_name(rt)])?;
    // Memberships on both sides and the index rows go with the row (ON DELETE CASCADE).
    index::uncount_flags_of(conn, tenant, before.seq)?;
    conn.prepare_cached("DELETE FROM resources WHERE tenant = ?1 AND id = ?2")?
        .execute(params![tenant, id])?;
    let event_seq = outbox::append(
        conn,
        tenant,
        now,
        Appended::deleted(rt, id, before.external_id.as_deref(), change),
    )?;
    if let Some(mut row) = change.audit_row(now, id, None, &[]) {
        row.event_seq = Some(event_seq);
        audit::append_audit(conn, &row)?;
    }
    Ok(())
}

/// The hash column's new value: the hash when one is set, else NULL (cleared, or nothing
/// yet on a create).
fn set_hash(change: &PasswordChange) -> Option<&str> {
    match change {
        PasswordChange::Set(hash) => Some(hash),
        PasswordChange::Keep | PasswordChange::Clear => None,
    }
}

/// Rewrites a resource's row and its index rows, moving its version and lastModified.
#[allow(clippy::too_many_arguments)]
fn update_row(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    id: &str,
    before: &Current,
    new: &NewResource,
    attributes: &str,
    now: &str,
) -> Result<(), StoreError> {
    let (seq, created) = (before.seq, before.created.as_str());
    let index_keys = row_keys(
        paths,
        &rows_for(new.resource_type, &new.attributes, created, now),
    )?;
    conn.prepare_cached(
        "UPDATE resources SET name = ?3, name_key = ?4, display = ?5, external_id = ?6, attributes = ?7, \
         password_hash = CASE WHEN ?10 THEN password_hash ELSE ?8 END, \
         version = version + 1, last_modified = ?9 \
         WHERE tenant = ?1 AND id = ?2",
    )?
    .execute(params![
        tenant,
        id,
        new.name,
        new.name_key,
        new.display,
        new.external_id,
        attributes,
        set_hash(&new.password_hash),
        now,
        new.password_hash.is_keep(),
    ])
    .map_err(|e| uniqueness(e, &new.name))?;
    if new.display != before.display {
        // A renamed user shows in its groups' `members.display`, a renamed group in its
        // users' `groups.display`.
        let touch = Touch::new(paths, tenant, now);
        match new.resource_type {
            ResourceType::User => touch.groups_of(conn, id)?,
            ResourceType::Group => {
                touch.members_of(conn, id)?;
                touch.groups_of(conn, id)?;
            }
        }
    }
    write_keys(conn, tenant, seq, index_keys)
}

/// The stored version and creation time, after the existence and version checks.
struct Current {
    seq: i64,
    version: i64,
    created: String,
    display: String,
    external_id: Option<String>,
}

/// Moves the version and lastModified (row and index) of resources whose representation
/// changed through another one: a user's `groups` when it joins or leaves a group or the
/// group is renamed, a group's `members.display` when a member is renamed or deleted. An
/// ETag then never stands for two representations.
struct Touch<'a> {
    tenant: &'a str,
    now: &'a str,
    meta_path: Option<i64>,
    nanos: Option<i64>,
}

impl<'a> Touch<'a> {
    fn new(paths: &PathIds, tenant: &'a str, now: &'a str) -> Self {
        Touch {
            tenant,
            now,
            meta_path: paths.get(META_LAST_MODIFIED),
            nanos: index::modified_nanos(now),
        }
    }

    /// The resource `id` itself (a group whose members changed and nothing else).
    fn resource(&self, conn: &Connection, id: &str) -> Result<(), StoreError> {
        self.run(
            conn,
            "UPDATE resources SET version = version + 1, last_modified = ?3 \
             WHERE tenant = ?1 AND id = ?2 RETURNING seq",
            id,
        )
    }

    /// The user `id` (a group member that is a group has no `groups` to change).
    fn user(&self, conn: &Connection, id: &str) -> Result<(), StoreError> {
        self.run(
            conn,
            "UPDATE resources SET version = version + 1, last_modified = ?3 \
             WHERE tenant = ?1 AND id = ?2 AND resource_type = 'User' RETURNING seq",
            id,
        )
    }

    /// Every group `member_id` is a member of.
    fn groups_of(&self, conn: &Connection, member_id: &str) -> Result<(), StoreError> {
        self.run(
            conn,
            "UPDATE resources SET version = version + 1, last_modified = ?3 WHERE tenant = ?1 AND id IN \
             (SELECT group_id FROM memberships WHERE tenant = ?1 AND member_id = ?2) RETURNING seq",
            member_id,
        )
    }

    /// Every user that is a member of `group_id`.
    fn members_of(&self, conn: &Connection, group_id: &str) -> Result<(), StoreError> {
        self.run(
            conn,
            "UPDATE resources SET version = version + 1, last_modified = ?3 WHERE tenant = ?1 \
             AND resource_type = 'User' AND id IN \
             (SELECT member_id FROM memberships WHERE tenant = ?1 AND group_id = ?2) RETURNING seq",
            group_id,
        )
    }

    fn run(&self, conn: &Connection, sql: &str, id: &str) -> Result<(), StoreError> {
        let seqs = conn
            .prepare_cached(sql)?
            .query_map(params![self.tenant, id, self.now], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        if let (Some(path_id), Some(nanos)) = (self.meta_path, self.nanos) {
            for seq in seqs {
                index::set_modified(conn, seq, path_id, nanos)?;
            }
        }
        Ok(())
    }
}

fn current(
    conn: &Connection,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    expected_version: Option<i64>,
) -> Result<Current, StoreError> {
    let found = conn
        .prepare_cached(
            "SELECT seq, version, created, display, external_id FROM resources WHERE tenant = ?1 AND id = ?2 AND resource_type = ?3",
        )?
        .query_row(params![tenant, id, type_name(rt)], |r| {
            Ok(Current {
                seq: r.get(0)?,
                version: r.get(1)?,
                created: r.get(2)?,
                display: r.get(3)?,
                external_id: r.get(4)?,
            })
        })
        .optional()?
        .ok_or_else(|| StoreError::NotFound(rt, id.to_owned()))?;
    match expected_version {
        Some(expected) if expected != found.version => Err(StoreError::VersionMismatch {
            current: found.version,
        }),
        _ => Ok(found),
    }
}

/// Resolves each member in the tenant: it must exist, and be of the type the client named.
fn check_members(
    conn: &Connection,
    tenant: &str,
    group_id: Option<&str>,
    members: &[MemberInput],
) -> Result<Vec<MemberRef>, StoreError> {
    let (found, _) = resolve_members(conn, tenant, group_id, members, false)?;
    Ok(found)
}

/// Resolves members in the tenant; with `skip_unknown`, ids that do not exist are returned
/// apart instead of failing the write.
fn resolve_members(
    conn: &Connection,
    tenant: &str,
    group_id: Option<&str>,
    members: &[MemberInput],
    skip_unknown: bool,
) -> Result<(Vec<MemberRef>, Vec<String>), StoreError> {
    let mut skipped = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT resource_type, display FROM resources WHERE tenant = ?1 AND id = ?2",
    )?;
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        if group_id == Some(m.value.as_str()) {
            return Err(StoreError::SelfMembership(m.value.clone()));
        }
        let found: Option<(String, String)> = stmt
            .query_row(params![tenant, m.value], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (rt, display) = match found {
            Some(row) => row,
            None if skip_unknown => {
                skipped.push(m.value.clone());
                continue;
            }
            None => return Err(StoreError::MemberNotFound(m.value.clone())),
        };
        let actual = parse_type(&rt)?;
        if let Some(claimed) = m.member_type.filter(|c| *c != actual) {
            return Err(StoreError::MemberTypeMismatch {
                id: m.value.clone(),
                claimed,
                actual,
            });
        }
        out.push(MemberRef {
            value: m.value.clone(),
            member_type: actual,
            display,
        });
    }
    Ok((out, skipped))
}

const ADD_MEMBERSHIP: &str =
    "INSERT OR IGNORE INTO memberships (tenant, group_id, member_id) VALUES (?1, ?2, ?3)";
const REMOVE_MEMBERSHIP: &str =
    "DELETE FROM memberships WHERE tenant = ?1 AND group_id = ?2 AND member_id = ?3";

/// Adds or removes (`sql`: [`ADD_MEMBERSHIP`], [`REMOVE_MEMBERSHIP`]) memberships of
/// `group_id`; each user that joins or leaves changes (its `groups`). Returns how many
/// memberships changed.
fn change_memberships<'a>(
    conn: &Connection,
    touch: &Touch<'_>,
    sql: &str,
    group_id: &str,
    member_ids: impl Iterator<Item = &'a str>,
) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut changed = 0;
    for member in member_ids {
        if stmt.execute(params![touch.tenant, group_id, member])? > 0 {
            touch.user(conn, member)?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Changes only the memberships that differ, so a large group costs what changed.
fn replace_memberships(
    conn: &Connection,
    touch: &Touch<'_>,
    group_id: &str,
    members: &[MemberRef],
) -> Result<usize, StoreError> {
    let existing: HashSet<String> = members_of(conn, touch.tenant, group_id)?
        .into_iter()
        .map(|m| m.value)
        .collect();
    let wanted: HashSet<&str> = members.iter().map(|m| m.value.as_str()).collect();
    let removed = change_memberships(
        conn,
        touch,
        REMOVE_MEMBERSHIP,
        group_id,
        existing
            .iter()
            .map(String::as_str)
            .filter(|id| !wanted.contains(id)),
    )?;
    let added = change_memberships(
        conn,
        touch,
        ADD_MEMBERSHIP,
        group_id,
        wanted.into_iter().filter(|id| !existing.contains(*id)),
    )?;
    Ok(removed + added)
}

fn attributes_json(new: &NewResource) -> Result<String, StoreError> {
    serde_json::to_string(&new.attributes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn uniqueness(e: rusqlite::Error, name: &str) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::UserNameTaken(name.to_owned()),
        _ => StoreError::Sqlite(e),
    }
}

/// Applies a PATCH: the row (when attributes changed) and only the membership rows named,
/// never the whole member list. A user's PATCH is refused only before its first change (its
/// version) or by it (a userName taken); a group's may find an unknown member after
/// removing others, so it runs in a savepoint.
pub fn patch(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    id: &str,
    p: PatchWrite,
    now: &str,
) -> Result<PatchOutcome, StoreError> {
    let before = current(conn, tenant, p.rt, id, p.expected_version)?;
    let (mut skipped, mut changed) = (Vec::new(), 0);
    if p.rt == ResourceType::Group && !p.members.is_empty() {
        let touch = Touch::new(paths, tenant, now);
        (skipped, changed) = change_members(conn, &touch, id, &p.members, p.skip_unknown_members)?;
    }
    match &p.new {
        Some(new) => {
            let attributes = attributes_json(new)?;
            update_row(conn, paths, tenant, id, &before, new, &attributes, now)?;
        }
        // Nothing changed (a member added twice, one removed that was not there): the
        // representation is the same, so is the version.
        None if changed == 0 => {}
        None => Touch::new(paths, tenant, now).resource(conn, id)?,
    }
    let mut resource = read_row(conn, tenant, p.rt, id)?;
    let event_seq = if p.new.is_some() || changed > 0 {
        // A PATCH that changed nothing (a member added twice) moved no version: no event.
        Some(outbox::append(
            conn,
            tenant,
            now,
            Appended::patched(&resource, &p.change),
        )?)
    } else {
        None
    };
    if let Some(mut row) = p
        .change
        .audit_row(now, id, Some(resource.version), &skipped)
    {
        row.event_seq = event_seq;
        audit::append_audit(conn, &row)?;
    }
    if p.rt == ResourceType::User {
        load_relations(conn, tenant, &mut resource)?;
    }
    Ok(PatchOutcome {
        resource,
        skipped_members: skipped,
    })
}

/// Membership changes, row by row; returns the ids skipped as unknown and how many
/// memberships changed.
fn change_members(
    conn: &Connection,
    touch: &Touch<'_>,
    group_id: &str,
    changes: &MemberChanges,
    skip_unknown: bool,
) -> Result<(Vec<String>, usize), StoreError> {
    let tenant = touch.tenant;
    if let Some(all) = &changes.replace_with {
        let (found, skipped) = resolve_members(conn, tenant, Some(group_id), all, skip_unknown)?;
        let changed = replace_memberships(conn, touch, group_id, &found)?;
        return Ok((skipped, changed));
    }
    let removed = change_memberships(
        conn,
        touch,
        REMOVE_MEMBERSHIP,
        group_id,
        changes.remove.iter().map(String::as_str),
    )?;
    let (found, skipped) =
        resolve_members(conn, tenant, Some(group_id), &changes.add, skip_unknown)?;
    let added = change_memberships(
        conn,
        touch,
        ADD_MEMBERSHIP,
        group_id,
        found.iter().map(|m| m.value.as_str()),
    )?;
    Ok((skipped, removed + added))
}

fn read_row(
    conn: &Connection,
    tenant: &str,
    rt: ResourceType,
    id: &str,
) -> Result<StoredResource, StoreError> {
    conn.prepare_cached(ONE_RESOURCE)?
        .query_row(params![tenant, id, type_name(rt)], row_to_resource)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(rt, id.to_owned()))?
}
