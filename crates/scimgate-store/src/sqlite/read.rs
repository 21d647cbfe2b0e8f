//! Read queries: one resource, a filtered page, and the membership on either side.

use std::cell::Cell;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use scimgate_model::ResourceType;
use scimgate_model::filter::Filter;
use serde_json::Value;

use super::query::{Sqlite, values};
use super::{parse_type, type_name};
use crate::error::StoreError;
use crate::filter_sql::{FilterSql, Param};
use crate::index_rows::PathIds;
pub use crate::page::PageBudget;
use crate::page::fill_page;
use crate::records::{GroupRef, MemberRef, StoredDocument, StoredResource};
use crate::sort_plan::{SortKey, sort_key};
use crate::stored_rows::ResourceColumns;
use crate::{ListPage, ListQuery, Page, Position, SortBy};

macro_rules! columns {
    () => {
        "r.id, r.resource_type, r.attributes, r.version, r.created, r.last_modified"
    };
}

pub const COLUMNS: &str = columns!();

/// One resource by its id: a constant, so that it is not formatted again for every read.
pub const ONE_RESOURCE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM resources r WHERE r.tenant = ?1 AND r.id = ?2 AND r.resource_type = ?3"
);

/// One resource looked up with at most a given number of members or groups.
pub enum Fetched {
    Found(StoredDocument),
    Missing,
    /// It has more members or groups than the caller would read.
    OverLimit,
}

pub fn get(
    conn: &Connection,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    with_relations: bool,
) -> Result<Option<StoredDocument>, StoreError> {
    Ok(
        match get_within(conn, tenant, rt, id, with_relations, None)? {
            Fetched::Found(resource) => Some(resource),
            Fetched::Missing | Fetched::OverLimit => None,
        },
    )
}

/// Like [`get`], reading at most `max_relations` members or groups (`None`: all).
pub fn get_within(
    conn: &Connection,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    with_relations: bool,
    max_relations: Option<usize>,
) -> Result<Fetched, StoreError> {
    // One read transaction, so the resource and its relations are one snapshot.
    let _snapshot = Snapshot::begin(conn)?;
    let found = conn
        .prepare_cached(ONE_RESOURCE)?
        .query_row(params![tenant, id, type_name(rt)], row_to_document)
        .optional()?;
    let Some(resource) = found else {
        return Ok(Fetched::Missing);
    };
    let mut resource = resource?;
    if with_relations && !load_relations_within(conn, tenant, &mut resource, max_relations)? {
        return Ok(Fetched::OverLimit);
    }
    Ok(Fetched::Found(resource))
}

/// A read transaction on a pooled connection, ended when dropped whatever happened: its
/// statements are prepared once per connection, not parsed again for every read.
struct Snapshot<'c>(&'c Connection);

impl<'c> Snapshot<'c> {
    fn begin(conn: &'c Connection) -> Result<Self, StoreError> {
        conn.prepare_cached("BEGIN")?.execute([])?;
        Ok(Snapshot(conn))
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        // A read transaction left open would pin its snapshot (and the log) on a pooled
        // connection: a failed COMMIT falls back to ROLLBACK.
        let ended = self
            .0
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]));
        if ended.is_err() && !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

pub fn list(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    rt: ResourceType,
    q: &ListQuery,
    budget: PageBudget,
) -> Result<ListPage<StoredDocument>, StoreError> {
    list_loading(conn, paths, tenant, rt, q, budget, |r| {
        load_relations(conn, tenant, r)
    })
}

/// Like [`list`], reading at most `max_relations` members or groups of each resource;
/// `None` when a resource of the page has more.
pub fn list_within(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    rt: ResourceType,
    q: &ListQuery,
    budget: PageBudget,
    max_relations: usize,
) -> Result<Option<ListPage<StoredDocument>>, StoreError> {
    let over_limit = Cell::new(false);
    let page = list_loading(conn, paths, tenant, rt, q, budget, |r| {
        if !load_relations_within(conn, tenant, r, Some(max_relations))? {
            over_limit.set(true);
        }
        Ok(())
    })?;
    Ok((!over_limit.get()).then_some(page))
}

/// A list whose resources' relations, when asked for, are read by `load`.
fn list_loading(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    rt: ResourceType,
    q: &ListQuery,
    budget: PageBudget,
    load: impl FnMut(&mut StoredDocument) -> Result<(), StoreError>,
) -> Result<ListPage<StoredDocument>, StoreError> {
    // One read transaction, so totalResults and the page agree with each other.
    let _snapshot = Snapshot::begin(conn)?;
    let mut args = Vec::new();
    let mut sql_where = where_clause(conn, paths, tenant, rt, q.filter.as_ref(), &mut args)?;
    let (count, cursor_after, offset) = match &q.page {
        Page::Index { start_index, count } => (*count, None, Some(start_index.saturating_sub(1))),
        Page::Cursor { after, count } => (*count, Some(after.as_ref()), None),
    };
    let total_results = match cursor_after {
        Some(Some(_)) => None,
        _ if q.filter.is_none() => Some(kept_count(
            conn,
            "SELECT n FROM resource_counts WHERE tenant = ?1 AND resource_type = ?2",
            params![tenant, type_name(rt)],
        )?),
        _ => Some(count_matching(
            conn, paths, tenant, rt, q, &sql_where, &args,
        )?),
    };
    let (mut resources, mut next) = (Vec::new(), None);
    if count > 0 {
        let order = SortOrder::new(rt, q.sort.as_ref(), paths)?;
        let mut join = String::new();
        if let SortKey::Index(path_id) = order.key {
            args.push(SqlValue::Integer(path_id));
            join = format!(
                " LEFT JOIN attr_index s ON s.seq = r.seq AND s.path_id = ?{}",
                args.len()
            );
        }
        if let Some(Some(after)) = cursor_after {
            sql_where.push_str(&format!(" AND {}", order.after(after, &mut args)?));
        }
        // Cursor pages read one more row to learn whether another page follows.
        let fetch = if offset.is_none() {
            count.saturating_add(1)
        } else {
            count
        };
        args.push(SqlValue::Integer(to_i64(fetch)));
        let mut sql = format!(
            "SELECT {COLUMNS}, {key} FROM resources r{join} WHERE {sql_where} ORDER BY {order_by} LIMIT ?{n}",
            key = order.key_expr(),
            order_by = order.order_by(),
            n = args.len()
        );
        if let Some(offset) = offset {
            args.push(SqlValue::Integer(to_i64(offset)));
            sql.push_str(&format!(" OFFSET ?{}", args.len()));
        }
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args.iter()), |row| {
            let bytes = row.get_ref(2)?.as_str().map_or(0, str::len);
            Ok((row_to_document(row)?, row.get::<_, SqlValue>(6)?, bytes))
        })?;
        let rows = rows.map(|row| {
            let (resource, key, size) = row?;
            Ok((resource?, sql_to_json(key), size))
        });
        (resources, next) = fill_page(
            rows,
            budget,
            q.with_relations,
            count,
            offset.is_none(),
            load,
        )?;
    }
    Ok(ListPage {
        total_results,
        resources,
        next,
    })
}

/// How many of the tenant's resources of type `rt` match the list's filter (`sql_where`
/// with `args`): read from the kept count of a boolean's value (`flag_counts`,
/// `FilterSql::count_by_flag`), else counted off the attribute index alone when one index
/// row stands for one resource (`FilterSql::count_by_index`), else resource by resource.
fn count_matching(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    rt: ResourceType,
    q: &ListQuery,
    sql_where: &str,
    args: &[SqlValue],
) -> Result<u64, StoreError> {
    let mut index_params = Vec::new();
    let by_index = match q.filter.as_ref() {
        Some(filter) => {
            let mut dialect = Sqlite { conn };
            let mut sql = FilterSql::new(&mut dialect, paths, tenant, rt, &mut index_params);
            if let Some((path_id, value)) = sql.count_by_flag(filter)? {
                return kept_count(
                    conn,
                    "SELECT n FROM flag_counts WHERE tenant = ?1 AND path_id = ?2 AND num = ?3",
                    params![tenant, path_id, value],
                );
            }
            sql.count_by_index(filter)?
        }
        None => None,
    };
    let n: i64 = match by_index {
        Some(sql) => conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(values(&index_params)), |r| r.get(0))?,
        None => conn
            .prepare_cached(&format!(
                "SELECT count(*) FROM resources r WHERE {sql_where}"
            ))?
            .query_row(params_from_iter(args.iter()), |r| r.get(0))?,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A count the writer keeps (`resource_counts`, `flag_counts`): the one row `sql` selects
/// with `args`, 0 when there is none.
fn kept_count(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<u64, StoreError> {
    let n: Option<i64> = conn
        .prepare_cached(sql)?
        .query_row(args, |r| r.get(0))
        .optional()?;
    Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
}

/// The condition on `resources r` that selects the tenant's resources of type `rt` matching
/// `filter`; parameters are appended to `args`, which must start empty.
pub fn where_clause(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    rt: ResourceType,
    filter: Option<&Filter>,
    args: &mut Vec<SqlValue>,
) -> Result<String, StoreError> {
    let mut params = vec![
        Param::Text(tenant.to_owned()),
        Param::Text(type_name(rt).to_owned()),
    ];
    let Some(filter) = filter else {
        args.extend(values(&params));
        return Ok("r.tenant = ?1 AND r.resource_type = ?2".into());
    };
    let set =
        FilterSql::new(&mut Sqlite { conn }, paths, tenant, rt, &mut params).resources(filter)?;
    args.extend(values(&params));
    // The unary `+` keeps SQLite from walking the tenant's whole index and probing the
    // set: the filter's own index lookups drive the query, and rows are fetched by rowid.
    Ok(format!(
        "+r.tenant = ?1 AND +r.resource_type = ?2 AND r.seq IN ({set})"
    ))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn sql_to_json(v: SqlValue) -> Value {
    match v {
        SqlValue::Null | SqlValue::Blob(_) => Value::Null,
        SqlValue::Integer(i) => Value::from(i),
        SqlValue::Real(f) => Value::from(f),
        SqlValue::Text(t) => Value::String(t),
    }
}

fn json_to_sql(v: &Value) -> Result<SqlValue, StoreError> {
    Ok(match v {
        Value::Null => SqlValue::Null,
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        _ => {
            return Err(StoreError::InvalidCursor(
                "the cursor's position is malformed".into(),
            ));
        }
    })
}

struct SortOrder {
    key: SortKey,
    descending: bool,
}

impl SortOrder {
    fn new(rt: ResourceType, sort: Option<&SortBy>, paths: &PathIds) -> Result<Self, StoreError> {
        Ok(SortOrder {
            key: sort_key(rt, sort, paths)?,
            descending: sort.is_some_and(|s| s.descending),
        })
    }

    fn key_expr(&self) -> &'static str {
        match self.key {
            SortKey::Seq => "r.seq",
            SortKey::Name => "r.name_key",
            SortKey::Id => "r.id",
            SortKey::Created => "r.created",
            SortKey::Modified => "r.last_modified",
            SortKey::Version => "r.version",
            SortKey::Index(_) => "COALESCE(s.text, s.num)",
        }
    }

    fn dir(&self) -> (&'static str, &'static str) {
        if self.descending {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        }
    }

    fn order_by(&self) -> String {
        let (k, (dir, _)) = (self.key_expr(), self.dir());
        match self.key {
            SortKey::Seq => format!("r.seq {dir}"),
            SortKey::Index(_) => format!("({k} IS NULL), {k} {dir}, r.id {dir}"),
            _ => format!("{k} {dir}, r.id {dir}"),
        }
    }

    /// The condition for rows after `p` in this order.
    fn after(&self, p: &Position, args: &mut Vec<SqlValue>) -> Result<String, StoreError> {
        let (k, (_, cmp)) = (self.key_expr(), self.dir());
        let mut bind = |v: SqlValue| {
            args.push(v);
            format!("?{}", args.len())
        };
        let misfit = || StoreError::InvalidCursor("the cursor does not fit this list".into());
        Ok(match (self.key, json_to_sql(&p.key)?) {
            (SortKey::Seq, SqlValue::Integer(seq)) => {
                format!("r.seq {cmp} {}", bind(SqlValue::Integer(seq)))
            }
            (SortKey::Seq, _) => return Err(misfit()),
            (SortKey::Index(_), SqlValue::Null) => {
                format!(
                    "({k} IS NULL AND r.id {cmp} {})",
                    bind(SqlValue::Text(p.id.clone()))
                )
            }
            (SortKey::Index(_), key) => {
                let (kv, id) = (bind(key), bind(SqlValue::Text(p.id.clone())));
                format!("({k} IS NULL OR {k} {cmp} {kv} OR ({k} = {kv} AND r.id {cmp} {id}))")
            }
            (_, SqlValue::Null) => return Err(misfit()),
            (_, key) => {
                let (kv, id) = (bind(key), bind(SqlValue::Text(p.id.clone())));
                format!("({k}, r.id) {cmp} ({kv}, {id})")
            }
        })
    }
}

pub fn row_to_resource(row: &Row<'_>) -> rusqlite::Result<Result<StoredResource, StoreError>> {
    Ok(row_to_document(row)?.and_then(StoredDocument::parse))
}

/// A resource's row with its attributes left as their stored text.
pub fn row_to_document(row: &Row<'_>) -> rusqlite::Result<Result<StoredDocument, StoreError>> {
    Ok(ResourceColumns {
        id: row.get(0)?,
        resource_type: row.get(1)?,
        attributes: row.get(2)?,
        version: row.get(3)?,
        created: row.get(4)?,
        last_modified: row.get(5)?,
    }
    .into_document())
}

pub fn load_relations<A>(
    conn: &Connection,
    tenant: &str,
    r: &mut StoredResource<A>,
) -> Result<(), StoreError> {
    load_relations_within(conn, tenant, r, None).map(|_| ())
}

/// Loads at most `max` members or groups (`None`: all); false, loading none, when there
/// are more.
fn load_relations_within<A>(
    conn: &Connection,
    tenant: &str,
    r: &mut StoredResource<A>,
    max: Option<usize>,
) -> Result<bool, StoreError> {
    // One more than allowed tells that there are more.
    let limit = max.map_or(usize::MAX, |m| m.saturating_add(1));
    let within = |n: usize| max.is_none_or(|m| n <= m);
    match r.resource_type {
        ResourceType::Group => {
            let members = members_upto(conn, tenant, &r.id, limit)?;
            if !within(members.len()) {
                return Ok(false);
            }
            r.members = Some(members);
        }
        ResourceType::User => {
            let groups = groups_of(conn, tenant, &r.id, limit)?;
            if !within(groups.len()) {
                return Ok(false);
            }
            r.groups = Some(groups);
        }
    }
    Ok(true)
}

pub fn members_of(
    conn: &Connection,
    tenant: &str,
    group_id: &str,
) -> Result<Vec<MemberRef>, StoreError> {
    members_upto(conn, tenant, group_id, usize::MAX)
}

fn members_upto(
    conn: &Connection,
    tenant: &str,
    group_id: &str,
    limit: usize,
) -> Result<Vec<MemberRef>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.member_id, r.resource_type, r.display FROM memberships m \
         JOIN resources r ON r.tenant = m.tenant AND r.id = m.member_id \
         WHERE m.tenant = ?1 AND m.group_id = ?2",
    )?;
    // Rows are read as they are taken: `limit` bounds the work. (A bound LIMIT would have
    // SQLite plan the statement again for every value.)
    let rows = stmt.query_map(params![tenant, group_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows.take(limit) {
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
    limit: usize,
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
    Ok(rows.take(limit).collect::<Result<_, _>>()?)
}
