//! Write statements on PostgreSQL, each write in its own transaction (which `PgStore`
//! retries whole when PostgreSQL aborts it for a deadlock or a serialisation failure).
//! Rows a write depends on are locked as it reads them: the resource it changes
//! (`FOR UPDATE`, and its ETag is checked again in the statement that writes), the
//! members it links (`FOR KEY SHARE`, so that none is deleted before the link commits),
//! and the tenant it writes in (`FOR SHARE`, so that `tenant remove` waits for it).

use std::collections::{HashMap, HashSet};

use postgres::Transaction;
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use scimgate_model::patch::MemberChanges;
use scimgate_model::{MemberInput, PasswordChange, ResourceType};

use super::audit;
use super::index::{insert_rows, write_rows};
use super::outbox;
use super::read::{load_relations, members_of, read_row};
use crate::error::StoreError;
use crate::index_rows::{META_LAST_MODIFIED, PathIds, SqlNum, modified_nanos, rows_for};
use crate::records::{
    ChangeKind, ChangeNote, MemberRef, NewResource, PatchOutcome, PatchWrite, StoredResource,
};
use crate::stored_rows::{Appended, created_resource, new_resource_id, parse_type};

pub fn create(
    tx: &mut Transaction<'_>,
    paths: &PathIds,
    tenant: &str,
    new: &NewResource,
    now: &str,
) -> Result<StoredResource, StoreError> {
    tx.query_typed_opt(
        "SELECT 1 FROM tenants WHERE name = $1 FOR SHARE",
        &[(&tenant, Type::TEXT)],
    )?
    .ok_or_else(|| StoreError::TenantNotRegistered(tenant.to_owned()))?;
    let id = new_resource_id();
    let (members, _) = resolve_members(tx, tenant, None, &new.members, false)?;
    let attributes = attributes_json(new)?;
    let seq: i64 = tx
        .query_typed_one(
            "INSERT INTO resources (tenant, resource_type, id, name, name_key, display, external_id, \
             attributes, password_hash, version, created, last_modified) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10) RETURNING seq",
            &[
                (&tenant, Type::TEXT),
                (&new.resource_type.name(), Type::TEXT),
                (&id, Type::TEXT),
                (&new.name, Type::TEXT),
                (&new.name_key, Type::TEXT),
                (&new.display, Type::TEXT),
                (&new.external_id, Type::TEXT),
                (&attributes, Type::TEXT),
                (&set_hash(&new.password_hash), Type::TEXT),
                (&now, Type::TEXT),
            ],
        )
        .map_err(|e| uniqueness(e, &new.name))?
        .get(0);
    insert_rows(
        tx,
        paths,
        tenant,
        seq,
        &rows_for(new.resource_type, &new.attributes, now, now),
    )?;
    if !members.is_empty() {
        let ids: Vec<&str> = members.iter().map(|m| m.value.as_str()).collect();
        add_members(tx, &Touch::new(paths, tenant, now), &id, &ids)?;
    }
    // What every write in the tenant contends for comes last, so that its locks are held
    // for the shortest time: the count, the event's number, then the audit row (its turn
    // in the tenant), which names the event.
    count(tx, tenant, new.resource_type, 1)?;
    let event_seq = outbox::append(
        tx,
        tenant,
        now,
        Appended::written(
            ChangeKind::Create,
            new,
            &id,
            (1, now),
            &attributes,
            &members,
        ),
    )?;
    if let Some(mut row) = new.change.audit_row(now, &id, Some(1), &[]) {
        row.event_seq = Some(event_seq);
        audit::append(tx, &row)?;
    }
    Ok(created_resource(
        new.resource_type,
        new.attributes.clone(),
        id,
        now,
        members,
    ))
}

pub fn replace(
    tx: &mut Transaction<'_>,
    paths: &PathIds,
    tenant: &str,
    id: &str,
    expected_version: Option<i64>,
    new: &NewResource,
    now: &str,
) -> Result<StoredResource, StoreError> {
    let rt = new.resource_type;
    let before = current(tx, tenant, rt, id, expected_version)?;
    let (members, _) = resolve_members(tx, tenant, Some(id), &new.members, false)?;
    let attributes = attributes_json(new)?;
    update_row(tx, paths, tenant, id, &before, new, &attributes, now)?;
    if rt == ResourceType::Group {
        replace_members(tx, &Touch::new(paths, tenant, now), id, &members)?;
    }
    let event_seq = outbox::append(
        tx,
        tenant,
        now,
        Appended::written(
            ChangeKind::Replace,
            new,
            id,
            (before.version + 1, &before.created),
            &attributes,
            &members,
        ),
    )?;
    if let Some(mut row) = new.change.audit_row(now, id, Some(before.version + 1), &[]) {
        row.event_seq = Some(event_seq);
        audit::append(tx, &row)?;
    }
    let mut stored = StoredResource {
        id: id.to_owned(),
        resource_type: rt,
        attributes: new.attributes.clone(),
        version: before.version + 1,
        created: before.created,
        last_modified: now.to_owned(),
        members: None,
        groups: None,
    };
    load_relations(tx, tenant, &mut stored)?;
    Ok(stored)
}

#[allow(clippy::too_many_arguments)] // the write's place (paths, tenant, now) and what it is
pub fn delete(
    tx: &mut Transaction<'_>,
    paths: &PathIds,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    expected_version: Option<i64>,
    change: &ChangeNote,
    now: &str,
) -> Result<(), StoreError> {
    let before = current(tx, tenant, rt, id, expected_version)?;
    // Groups that lose a member change, and so do users that lose a group.
    let touch = Touch::new(paths, tenant, now);
    touch.groups_of(tx, id)?;
    if rt == ResourceType::Group {
        touch.members_of(tx, id)?;
    }
    // Memberships on both sides go with the row (ON DELETE CASCADE).
    tx.execute_typed(
        "DELETE FROM resources WHERE tenant = $1 AND id = $2 AND version = $3",
        &[
            (&tenant, Type::TEXT),
            (&id, Type::TEXT),
            (&before.version, Type::INT8),
        ],
    )?;
    count(tx, tenant, rt, -1)?;
    let event_seq = outbox::append(
        tx,
        tenant,
        now,
        Appended::deleted(rt, id, before.external_id.as_deref(), change),
    )?;
    if let Some(mut row) = change.audit_row(now, id, None, &[]) {
        row.event_seq = Some(event_seq);
        audit::append(tx, &row)?;
    }
    Ok(())
}

/// Applies a PATCH: the row (when attributes changed) and only the membership rows
/// named, never the whole member list.
pub fn patch(
    tx: &mut Transaction<'_>,
    paths: &PathIds,
    tenant: &str,
    id: &str,
    p: &PatchWrite,
    now: &str,
) -> Result<PatchOutcome, StoreError> {
    let before = current(tx, tenant, p.rt, id, p.expected_version)?;
    let (mut skipped, mut changed) = (Vec::new(), 0);
    if p.rt == ResourceType::Group && !p.members.is_empty() {
        let touch = Touch::new(paths, tenant, now);
        (skipped, changed) = change_members(tx, &touch, id, &p.members, p.skip_unknown_members)?;
    }
    match &p.new {
        Some(new) => {
            let attributes = attributes_json(new)?;
            update_row(tx, paths, tenant, id, &before, new, &attributes, now)?;
        }
        // Nothing changed (a member added twice, one removed that was not there): the
        // representation is the same, so is the version.
        None if changed == 0 => {}
        None => Touch::new(paths, tenant, now).run(tx, "id = $2", (&id, Type::TEXT))?,
    }
    let mut resource =
        read_row(tx, tenant, p.rt, id)?.ok_or_else(|| StoreError::NotFound(p.rt, id.to_owned()))?;
    let event_seq = if p.new.is_some() || changed > 0 {
        // A PATCH that changed nothing moved no version: no event.
        Some(outbox::append(
            tx,
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
        audit::append(tx, &row)?;
    }
    if p.rt == ResourceType::User {
        load_relations(tx, tenant, &mut resource)?;
    }
    Ok(PatchOutcome {
        resource,
        skipped_members: skipped,
    })
}

/// Counts a resource in (`delta` 1) or out (-1) of its tenant's total, on one of the
/// count's rows chosen at random (migration 4).
fn count(
    tx: &mut Transaction<'_>,
    tenant: &str,
    rt: ResourceType,
    delta: i64,
) -> Result<(), StoreError> {
    let shard = i16::from(uuid::Uuid::new_v4().as_bytes()[0] % 16);
    tx.execute_typed(
        "INSERT INTO resource_counts (tenant, resource_type, shard, n) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant, resource_type, shard) DO UPDATE SET n = resource_counts.n + excluded.n",
        &[
            (&tenant, Type::TEXT),
            (&rt.name(), Type::TEXT),
            (&shard, Type::INT2),
            (&delta, Type::INT8),
        ],
    )?;
    Ok(())
}

/// The hash column's new value: the hash when one is set, else NULL.
fn set_hash(change: &PasswordChange) -> Option<&str> {
    match change {
        PasswordChange::Set(hash) => Some(hash),
        PasswordChange::Keep | PasswordChange::Clear => None,
    }
}

fn attributes_json(new: &NewResource) -> Result<String, StoreError> {
    serde_json::to_string(&new.attributes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The database's unique index on the folded userName refused the row.
fn uniqueness(e: postgres::Error, name: &str) -> StoreError {
    match e.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => {
            StoreError::UserNameTaken(name.to_owned())
        }
        _ => e.into(),
    }
}

/// The stored row a write changes, locked, after the existence and version checks.
struct Current {
    seq: i64,
    version: i64,
    created: String,
    display: String,
    external_id: Option<String>,
}

fn current(
    tx: &mut Transaction<'_>,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    expected_version: Option<i64>,
) -> Result<Current, StoreError> {
    let row = tx
        .query_typed_opt(
            "SELECT seq, version, created, display, external_id FROM resources \
             WHERE tenant = $1 AND id = $2 AND resource_type = $3 FOR UPDATE",
            &[
                (&tenant, Type::TEXT),
                (&id, Type::TEXT),
                (&rt.name(), Type::TEXT),
            ],
        )?
        .ok_or_else(|| StoreError::NotFound(rt, id.to_owned()))?;
    let found = Current {
        seq: row.get(0),
        version: row.get(1),
        created: row.get(2),
        display: row.get(3),
        external_id: row.get(4),
    };
    match expected_version {
        Some(expected) if expected != found.version => Err(StoreError::VersionMismatch {
            current: found.version,
        }),
        _ => Ok(found),
    }
}

/// Rewrites a resource's row (only at the version read) and its index rows, moving its
/// version and lastModified.
#[allow(clippy::too_many_arguments)]
fn update_row(
    tx: &mut Transaction<'_>,
    paths: &PathIds,
    tenant: &str,
    id: &str,
    before: &Current,
    new: &NewResource,
    attributes: &str,
    now: &str,
) -> Result<(), StoreError> {
    let updated = tx
        .execute_typed(
            "UPDATE resources SET name = $4, name_key = $5, display = $6, external_id = $7, attributes = $8, \
             password_hash = CASE WHEN $11 THEN password_hash ELSE $9 END, \
             version = version + 1, last_modified = $10 \
             WHERE tenant = $1 AND id = $2 AND version = $3",
            &[
                (&tenant, Type::TEXT),
                (&id, Type::TEXT),
                (&before.version, Type::INT8),
                (&new.name, Type::TEXT),
                (&new.name_key, Type::TEXT),
                (&new.display, Type::TEXT),
                (&new.external_id, Type::TEXT),
                (&attributes, Type::TEXT),
                (&set_hash(&new.password_hash), Type::TEXT),
                (&now, Type::TEXT),
                (&new.password_hash.is_keep(), Type::BOOL),
            ],
        )
        .map_err(|e| uniqueness(e, &new.name))?;
    if updated != 1 {
        return Err(StoreError::VersionMismatch {
            current: before.version,
        });
    }
    if new.display != before.display {
        // A renamed user shows in its groups' `members.display`, a renamed group in its
        // users' `groups.display`.
        let touch = Touch::new(paths, tenant, now);
        touch.groups_of(tx, id)?;
        if new.resource_type == ResourceType::Group {
            touch.members_of(tx, id)?;
        }
    }
    write_rows(
        tx,
        paths,
        tenant,
        before.seq,
        &rows_for(new.resource_type, &new.attributes, &before.created, now),
    )
}

/// Moves the version and lastModified (row and index) of resources whose representation
/// changed through another one: a user's `groups` when it joins or leaves a group or the
/// group is renamed, a group's `members.display` when a member is renamed or deleted.
struct Touch<'a> {
    tenant: &'a str,
    now: &'a str,
    meta_path: Option<i64>,
    modified: Option<String>,
}

impl<'a> Touch<'a> {
    fn new(paths: &PathIds, tenant: &'a str, now: &'a str) -> Self {
        Touch {
            tenant,
            now,
            meta_path: paths.get(META_LAST_MODIFIED),
            modified: modified_nanos(now).map(|n| SqlNum::Int(n).text()),
        }
    }

    /// Every group `member_id` is a member of.
    fn groups_of(&self, tx: &mut Transaction<'_>, member_id: &str) -> Result<(), StoreError> {
        self.run(
            tx,
            "id IN (SELECT group_id FROM memberships WHERE tenant = $1 AND member_id = $2)",
            (&member_id, Type::TEXT),
        )
    }

    /// Every user that is a member of `group_id`.
    fn members_of(&self, tx: &mut Transaction<'_>, group_id: &str) -> Result<(), StoreError> {
        self.run(
            tx,
            "resource_type = 'User' AND id IN \
             (SELECT member_id FROM memberships WHERE tenant = $1 AND group_id = $2)",
            (&group_id, Type::TEXT),
        )
    }

    /// The users among `ids` (a member that is a group has no `groups` to change).
    fn users(&self, tx: &mut Transaction<'_>, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.run(
            tx,
            "resource_type = 'User' AND id = ANY($2)",
            (&ids, Type::TEXT_ARRAY),
        )
    }

    /// Touches the tenant's resources matching `which` (`$2` is `arg`, of its type), row
    /// and index in one statement.
    fn run(
        &self,
        tx: &mut Transaction<'_>,
        which: &str,
        arg: (&(dyn ToSql + Sync), Type),
    ) -> Result<(), StoreError> {
        let update = format!(
            "UPDATE resources SET version = version + 1, last_modified = $3 \
             WHERE tenant = $1 AND {which} RETURNING seq"
        );
        match (self.meta_path, &self.modified) {
            (Some(path_id), Some(modified)) => tx.execute_typed(
                &format!(
                    "WITH touched AS ({update}) UPDATE attr_index SET num = $5::text::numeric \
                     FROM touched WHERE attr_index.seq = touched.seq AND attr_index.path_id = $4"
                ),
                &[
                    (&self.tenant, Type::TEXT),
                    arg,
                    (&self.now, Type::TEXT),
                    (&path_id, Type::INT8),
                    (modified, Type::TEXT),
                ],
            )?,
            _ => tx.execute_typed(
                &update,
                &[(&self.tenant, Type::TEXT), arg, (&self.now, Type::TEXT)],
            )?,
        };
        Ok(())
    }
}

/// Resolves members in the tenant, locking each found row against deletion: each must
/// exist (with `skip_unknown`, ids that do not are returned apart) and be of the type the
/// client named.
fn resolve_members(
    tx: &mut Transaction<'_>,
    tenant: &str,
    group_id: Option<&str>,
    members: &[MemberInput],
    skip_unknown: bool,
) -> Result<(Vec<MemberRef>, Vec<String>), StoreError> {
    if members.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let ids: Vec<&str> = members.iter().map(|m| m.value.as_str()).collect();
    let mut found: HashMap<String, (String, String)> = HashMap::with_capacity(ids.len());
    for row in tx.query_typed(
        "SELECT id, resource_type, display FROM resources \
         WHERE tenant = $1 AND id = ANY($2) ORDER BY id FOR KEY SHARE",
        &[(&tenant, Type::TEXT), (&ids, Type::TEXT_ARRAY)],
    )? {
        found.insert(row.get(0), (row.get(1), row.get(2)));
    }
    let (mut out, mut skipped) = (Vec::with_capacity(members.len()), Vec::new());
    for m in members {
        if group_id == Some(m.value.as_str()) {
            return Err(StoreError::SelfMembership(m.value.clone()));
        }
        let Some((rt, display)) = found.get(&m.value) else {
            if skip_unknown {
                skipped.push(m.value.clone());
                continue;
            }
            return Err(StoreError::MemberNotFound(m.value.clone()));
        };
        let actual = parse_type(rt)?;
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
            display: display.clone(),
        });
    }
    Ok((out, skipped))
}

/// Links `member_ids` to `group_id` (those not linked yet); each user that joins changes
/// (its `groups`). Returns how many links were made.
fn add_members(
    tx: &mut Transaction<'_>,
    touch: &Touch<'_>,
    group_id: &str,
    member_ids: &[&str],
) -> Result<usize, StoreError> {
    change_links(
        tx,
        touch,
        "INSERT INTO memberships (tenant, group_id, member_id) \
         SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING RETURNING member_id",
        group_id,
        member_ids,
    )
}

/// Unlinks `member_ids` from `group_id`; each user that leaves changes. Returns how many
/// links went.
fn remove_members(
    tx: &mut Transaction<'_>,
    touch: &Touch<'_>,
    group_id: &str,
    member_ids: &[&str],
) -> Result<usize, StoreError> {
    change_links(
        tx,
        touch,
        "DELETE FROM memberships WHERE tenant = $1 AND group_id = $2 AND member_id = ANY($3) \
         RETURNING member_id",
        group_id,
        member_ids,
    )
}

/// Runs `sql` (tenant, group, member ids; returning the members it changed) and touches
/// the users among them.
fn change_links(
    tx: &mut Transaction<'_>,
    touch: &Touch<'_>,
    sql: &str,
    group_id: &str,
    member_ids: &[&str],
) -> Result<usize, StoreError> {
    if member_ids.is_empty() {
        return Ok(0);
    }
    let changed: Vec<String> = tx
        .query_typed(
            sql,
            &[
                (&touch.tenant, Type::TEXT),
                (&group_id, Type::TEXT),
                (&member_ids, Type::TEXT_ARRAY),
            ],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    touch.users(tx, &changed)?;
    Ok(changed.len())
}

/// Changes only the memberships that differ, so a large group costs what changed.
fn replace_members(
    tx: &mut Transaction<'_>,
    touch: &Touch<'_>,
    group_id: &str,
    members: &[MemberRef],
) -> Result<usize, StoreError> {
    let existing: HashSet<String> = members_of(tx, touch.tenant, group_id)?
        .into_iter()
        .map(|m| m.value)
        .collect();
    let wanted: HashSet<&str> = members.iter().map(|m| m.value.as_str()).collect();
    let gone: Vec<&str> = existing
        .iter()
        .map(String::as_str)
        .filter(|id| !wanted.contains(id))
        .collect();
    let fresh: Vec<&str> = wanted
        .into_iter()
        .filter(|id| !existing.contains(*id))
        .collect();
    Ok(remove_members(tx, touch, group_id, &gone)? + add_members(tx, touch, group_id, &fresh)?)
}

/// Membership changes of a PATCH; returns the ids skipped as unknown and how many
/// memberships changed.
fn change_members(
    tx: &mut Transaction<'_>,
    touch: &Touch<'_>,
    group_id: &str,
    changes: &MemberChanges,
    skip_unknown: bool,
) -> Result<(Vec<String>, usize), StoreError> {
    let tenant = touch.tenant;
    if let Some(all) = &changes.replace_with {
        let (found, skipped) = resolve_members(tx, tenant, Some(group_id), all, skip_unknown)?;
        let changed = replace_members(tx, touch, group_id, &found)?;
        return Ok((skipped, changed));
    }
    let gone: Vec<&str> = changes.remove.iter().map(String::as_str).collect();
    let removed = remove_members(tx, touch, group_id, &gone)?;
    let (found, skipped) = resolve_members(tx, tenant, Some(group_id), &changes.add, skip_unknown)?;
    let fresh: Vec<&str> = found.iter().map(|m| m.value.as_str()).collect();
    let added = add_members(tx, touch, group_id, &fresh)?;
    Ok((skipped, removed + added))
}
