//! Read queries: one resource, a filtered page, and the membership on either side.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params};
use scimgate_model::ResourceType;
use scimgate_model::filter::{CompareOp, Filter};
use scimgate_model::fold_case;
use serde_json::{Map, Value};

use super::{parse_type, type_name};
use crate::error::StoreError;
use crate::records::{GroupRef, MemberRef, StoredResource};
use crate::{ListPage, ListQuery};

const COLUMNS: &str = "r.id, r.resource_type, r.attributes, r.version, r.created, r.last_modified";

pub fn get(
    conn: &Connection,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    with_relations: bool,
) -> Result<Option<StoredResource>, StoreError> {
    // One read transaction, so the resource and its relations are one snapshot.
    let snapshot = conn.unchecked_transaction()?;
    let sql = format!(
        "SELECT {COLUMNS} FROM resources r WHERE r.tenant = ?1 AND r.id = ?2 AND r.resource_type = ?3"
    );
    let found = conn
        .prepare_cached(&sql)?
        .query_row(params![tenant, id, type_name(rt)], row_to_resource)
        .optional()?;
    let Some(resource) = found else {
        return Ok(None);
    };
    let mut resource = resource?;
    if with_relations {
        load_relations(conn, tenant, &mut resource)?;
    }
    snapshot.commit()?;
    Ok(Some(resource))
}

pub fn list(
    conn: &Connection,
    tenant: &str,
    rt: ResourceType,
    q: &ListQuery,
) -> Result<ListPage, StoreError> {
    // One read transaction, so totalResults and the page agree with each other.
    let snapshot = conn.unchecked_transaction()?;
    let mut sql_where = String::from("r.tenant = ?1 AND r.resource_type = ?2");
    let mut args: Vec<SqlValue> = vec![
        SqlValue::Text(tenant.to_owned()),
        SqlValue::Text(type_name(rt).to_owned()),
    ];
    if let Some(filter) = &q.filter {
        sql_where.push_str(" AND ");
        sql_where.push_str(&compile(rt, filter, &mut args)?);
    }
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM resources r WHERE {sql_where}"
        ))?
        .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
    let mut resources = Vec::new();
    if q.count > 0 {
        let n = args.len();
        let sql = format!(
            "SELECT {COLUMNS} FROM resources r WHERE {sql_where} ORDER BY r.seq LIMIT ?{} OFFSET ?{}",
            n + 1,
            n + 2
        );
        args.push(to_i64(q.count).into());
        args.push(to_i64(q.start_index.saturating_sub(1)).into());
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), row_to_resource)?;
        for row in rows {
            resources.push(row??);
        }
    }
    if q.with_relations {
        for r in &mut resources {
            load_relations(conn, tenant, r)?;
        }
    }
    snapshot.commit()?;
    Ok(ListPage {
        total_results: u64::try_from(total).unwrap_or(0),
        resources,
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Compiles a filter into a SQL condition over `r`, pushing its values as parameters.
fn compile(
    rt: ResourceType,
    filter: &Filter,
    args: &mut Vec<SqlValue>,
) -> Result<String, StoreError> {
    let Filter::Compare { path, op, value } = filter;
    let CompareOp::Eq = op;
    let name = path.canonical();
    let text = value.as_str().ok_or_else(|| {
        StoreError::UnsupportedFilter(format!("'{name}' must be compared with a string"))
    })?;
    let placeholder = format!("?{}", args.len() + 1);
    let condition = match (rt, name.as_str()) {
        (_, "id") => {
            args.push(SqlValue::Text(text.to_owned()));
            format!("r.id = {placeholder}")
        }
        (_, "externalId") => {
            args.push(SqlValue::Text(text.to_owned()));
            format!("r.external_id = {placeholder}")
        }
        (ResourceType::User, "userName") | (ResourceType::Group, "displayName") => {
            args.push(SqlValue::Text(fold_case(text)));
            format!("r.name_key = {placeholder}")
        }
        (ResourceType::Group, "members.value" | "members") => {
            args.push(SqlValue::Text(text.to_owned()));
            format!(
                "EXISTS (SELECT 1 FROM memberships m WHERE m.tenant = r.tenant AND m.group_id = r.id AND m.member_id = {placeholder})"
            )
        }
        _ => {
            return Err(StoreError::UnsupportedFilter(format!(
                "filtering on '{name}' is not supported yet; use userName, externalId, id{}",
                if rt == ResourceType::Group {
                    ", displayName or members.value"
                } else {
                    ""
                }
            )));
        }
    };
    Ok(condition)
}

type RowResult = Result<StoredResource, StoreError>;

fn row_to_resource(row: &Row<'_>) -> rusqlite::Result<RowResult> {
    let id: String = row.get(0)?;
    let rt: String = row.get(1)?;
    let attributes: String = row.get(2)?;
    let build = || -> RowResult {
        let attributes: Map<String, Value> = serde_json::from_str(&attributes)
            .map_err(|e| StoreError::Corrupt(format!("attributes of '{id}': {e}")))?;
        Ok(StoredResource {
            resource_type: parse_type(&rt)?,
            attributes,
            version: row.get(3)?,
            created: row.get(4)?,
            last_modified: row.get(5)?,
            members: None,
            groups: None,
            id: id.clone(),
        })
    };
    Ok(build())
}

pub fn load_relations(
    conn: &Connection,
    tenant: &str,
    r: &mut StoredResource,
) -> Result<(), StoreError> {
    match r.resource_type {
        ResourceType::Group => r.members = Some(members_of(conn, tenant, &r.id)?),
        ResourceType::User => r.groups = Some(groups_of(conn, tenant, &r.id)?),
    }
    Ok(())
}

pub fn members_of(
    conn: &Connection,
    tenant: &str,
    group_id: &str,
) -> Result<Vec<MemberRef>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.member_id, r.resource_type, r.display FROM memberships m \
         JOIN resources r ON r.tenant = m.tenant AND r.id = m.member_id \
         WHERE m.tenant = ?1 AND m.group_id = ?2",
    )?;
    let rows = stmt.query_map(params![tenant, group_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (value, rt, display) = row?;
        out.push(MemberRef {
            value,
            member_type: parse_type(&rt)?,
            display,
        });
    }
    Ok(out)
}

fn groups_of(
    conn: &Connection,
    tenant: &str,
    member_id: &str,
) -> Result<Vec<GroupRef>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.group_id, r.display FROM memberships m \
         JOIN resources r ON r.tenant = m.tenant AND r.id = m.group_id \
         WHERE m.tenant = ?1 AND m.member_id = ?2",
    )?;
    let rows = stmt.query_map(params![tenant, member_id], |row| {
        Ok(GroupRef {
            value: row.get(0)?,
            display: row.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
