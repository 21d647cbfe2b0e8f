//! Read queries on PostgreSQL: one resource, a filtered page, and the membership on
//! either side. A request's reads run in one read-only, repeatable-read transaction
//! (`Snapshot`), so that a resource and its relations, or a page and its total, are one
//! snapshot. A resource, a page and a filtered count run as statements prepared once per
//! pooled connection (`prepared_query`, `pool`): one round trip and no planning; the rest
//! are sent with their parameters' types (`query_typed`), also one round trip.

use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{GenericClient, Row};
use scimgate_model::ResourceType;
use scimgate_model::filter::Filter;
use serde_json::Value;

use super::dialect::{Pg, num_json, typed, values};
use super::pool::Connection;
use crate::error::StoreError;
use crate::filter_sql::{FilterSql, Param};
use crate::index_rows::{PathIds, SqlNum};
use crate::page::{PageBudget, fill_page};
use crate::records::{GroupRef, MemberRef, StoredDocument, StoredResource};
use crate::sort_plan::{SortKey, sort_key};
use crate::stored_rows::{ResourceColumns, parse_type};
use crate::{ListPage, ListQuery, Page, Position, SortBy};

const COLUMNS: &str = "r.id, r.resource_type, r.attributes, r.version, r.created, r.last_modified";

/// Most groups a user's row carries (`groups_column`); a user in more has them read apart.
const INLINE_GROUPS: usize = 100;

/// A user's groups as a column of its row (JSON, in `groups_of`'s order; NULL for none),
/// up to one past `INLINE_GROUPS`: a page or a user is read in one statement, not one
/// more per user.
fn groups_column() -> String {
    format!(
        "(SELECT json_agg(json_build_object('value', x.group_id, 'display', x.display) \
         ORDER BY x.group_id)::text FROM (SELECT m.group_id, g.display FROM memberships m \
         JOIN resources g ON g.tenant = m.tenant AND g.id = m.group_id \
         WHERE m.tenant = r.tenant AND m.member_id = r.id ORDER BY m.group_id LIMIT {}) x)",
        INLINE_GROUPS + 1
    )
}

/// A read-only, repeatable-read transaction with its statement timeout, begun in one
/// round trip; rolled back when dropped uncommitted.
pub struct Snapshot<'c> {
    client: &'c mut Connection,
    open: bool,
}

impl<'c> Snapshot<'c> {
    /// Begins the snapshot on `client`.
    pub fn begin_on(client: &mut Connection, timeout: Duration) -> Result<(), postgres::Error> {
        client.batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = {}",
            timeout.as_millis().max(1)
        ))
    }

    /// The snapshot `begin_on` began on `client`.
    pub fn begun(client: &'c mut Connection) -> Self {
        Snapshot { client, open: true }
    }

    pub fn client(&mut self) -> &mut Connection {
        self.client
    }

    pub fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.client.batch_execute("COMMIT")?;
        Ok(())
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        if self.open {
            // A connection returned to the pool must not be inside a transaction; if
            // the rollback fails the connection is broken, and the pool drops it.
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

pub fn get(
    tx: &mut Connection,
    tenant: &str,
    rt: ResourceType,
    id: &str,
    with_relations: bool,
) -> Result<Option<StoredDocument>, StoreError> {
    let inline = with_relations && rt == ResourceType::User;
    let groups = if inline {
        groups_column()
    } else {
        "NULL".into()
    };
    let rows = prepared_query(
        tx,
        &format!(
            "SELECT {COLUMNS}, {groups} FROM resources r WHERE r.tenant = $1 AND r.id = $2 AND r.resource_type = $3"
        ),
        &[
            Param::Text(tenant.to_owned()),
            Param::Text(id.to_owned()),
            Param::Text(rt.name().to_owned()),
        ],
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let mut resource = row_to_document(row)?;
    if inline {
        resource.groups = inline_groups(row, 6)?;
    }
    if with_relations && resource.groups.is_none() {
        load_relations(&mut **tx, tenant, &mut resource)?;
    }
    Ok(Some(resource))
}

/// Runs `sql` with `args` as a statement prepared on this connection (see `pool`).
fn prepared_query(
    conn: &mut Connection,
    sql: &str,
    args: &[Param],
) -> Result<Vec<Row>, StoreError> {
    let bound = values(args);
    let (refs, types): (Vec<&(dyn ToSql + Sync)>, Vec<Type>) =
        typed(args, &bound).into_iter().unzip();
    let statement = conn.prepared(sql, &types)?;
    Ok(conn.query(&statement, &refs)?)
}

/// The groups column at `index`, unless it holds more than `INLINE_GROUPS` (then `None`:
/// they are read apart).
fn inline_groups(row: &Row, index: usize) -> Result<Option<Vec<GroupRef>>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Inline {
        value: String,
        display: String,
    }
    let Some(text) = row.try_get::<_, Option<&str>>(index)? else {
        return Ok(Some(Vec::new()));
    };
    let groups: Vec<Inline> =
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((groups.len() <= INLINE_GROUPS).then(|| {
        groups
            .into_iter()
            .map(|g| GroupRef {
                value: g.value,
                display: g.display,
            })
            .collect()
    }))
}

/// One resource's row, without relations.
pub fn read_row(
    client: &mut impl GenericClient,
    tenant: &str,
    rt: ResourceType,
    id: &str,
) -> Result<Option<StoredResource>, StoreError> {
    client
        .query_typed_opt(
            &format!(
                "SELECT {COLUMNS} FROM resources r WHERE r.tenant = $1 AND r.id = $2 AND r.resource_type = $3"
            ),
            &[(&tenant, Type::TEXT), (&id, Type::TEXT), (&rt.name(), Type::TEXT)],
        )?
        .map(|row| row_to_document(&row)?.parse())
        .transpose()
}

/// A resource's row with its attributes left as their stored text.
fn row_to_document(row: &Row) -> Result<StoredDocument, StoreError> {
    ResourceColumns {
        id: row.try_get(0)?,
        resource_type: row.try_get(1)?,
        attributes: row.try_get(2)?,
        version: row.try_get(3)?,
        created: row.try_get(4)?,
        last_modified: row.try_get(5)?,
    }
    .into_document()
}

pub fn list(
    tx: &mut Connection,
    paths: &PathIds,
    tenant: &str,
    rt: ResourceType,
    q: &ListQuery,
    budget: PageBudget,
) -> Result<ListPage<StoredDocument>, StoreError> {
    let mut args = Vec::new();
    let mut sql_where = where_clause(&mut **tx, paths, tenant, rt, q.filter.as_ref(), &mut args)?;
    let (count, cursor_after, offset) = match &q.page {
        Page::Index { start_index, count } => (*count, None, Some(start_index.saturating_sub(1))),
        Page::Cursor { after, count } => (*count, Some(after.as_ref()), None),
    };
    // A filtered first page that comes out short holds every match: its length is the
    // total, and the count (a second statement, as costly as the page or more) is not run.
    let counted_by_page = q.filter.is_some() && offset == Some(0) && count > 0;
    let count_sql = format!("SELECT count(*) FROM resources r WHERE {sql_where}");
    let count_args = args.clone();
    let mut total_results = match cursor_after {
        Some(Some(_)) => None,
        _ if counted_by_page => None,
        _ if q.filter.is_none() => {
            let n: Option<i64> = tx
                .query_typed_one(
                    "SELECT sum(n)::bigint FROM resource_counts WHERE tenant = $1 AND resource_type = $2",
                    &[(&tenant, Type::TEXT), (&rt.name(), Type::TEXT)],
                )?
                .get(0);
            Some(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
        }
        _ => Some(count_matches(tx, &count_sql, &count_args)?),
    };
    let (mut resources, mut next) = (Vec::new(), None);
    if count > 0 {
        let order = SortOrder {
            key: sort_key(rt, q.sort.as_ref(), paths)?,
            descending: q.sort.as_ref().is_some_and(|s: &SortBy| s.descending),
        };
        let mut join = String::new();
        if let SortKey::Index(path_id) = order.key {
            args.push(Param::Int(path_id));
            join = format!(
                " LEFT JOIN attr_index s ON s.seq = r.seq AND s.path_id = ${}",
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
        args.push(Param::Int(to_i64(fetch)));
        let inline = q.with_relations && rt == ResourceType::User;
        let mut sql = format!(
            "SELECT {COLUMNS}, {key}, {groups} FROM resources r{join} WHERE {sql_where} ORDER BY {order_by} LIMIT ${n}",
            key = order.key_columns(),
            groups = if inline {
                groups_column()
            } else {
                "NULL".into()
            },
            order_by = order.order_by(),
            n = args.len()
        );
        if let Some(offset) = offset {
            args.push(Param::Int(to_i64(offset)));
            sql.push_str(&format!(" OFFSET ${}", args.len()));
        }
        let rows = prepared_query(tx, &sql, &args)?;
        if counted_by_page {
            total_results = Some(match rows.len() as u64 {
                short if short < count => short,
                _ => count_matches(tx, &count_sql, &count_args)?,
            });
        }
        let rows = rows.iter().map(|row| {
            let bytes = row.try_get::<_, &str>(2).map_or(0, str::len);
            let mut resource = row_to_document(row)?;
            if inline {
                resource.groups = inline_groups(row, row.len() - 1)?;
            }
            Ok((resource, order.key_of(row)?, bytes))
        });
        let mut load = |r: &mut StoredDocument| match r.groups {
            Some(_) => Ok(()),
            None => load_relations(&mut **tx, tenant, r),
        };
        (resources, next) = fill_page(
            rows,
            budget,
            q.with_relations,
            count,
            offset.is_none(),
            &mut load,
        )?;
    }
    Ok(ListPage {
        total_results,
        resources,
        next,
    })
}

fn count_matches(tx: &mut Connection, sql: &str, args: &[Param]) -> Result<u64, StoreError> {
    let rows = prepared_query(tx, sql, args)?;
    let n: i64 = rows
        .first()
        .ok_or_else(|| StoreError::Corrupt("a count without a row".into()))?
        .try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The condition on `resources r` that selects the tenant's resources of type `rt` matching
/// `filter`; parameters are appended to `args`, which must start empty.
pub fn where_clause(
    tx: &mut impl GenericClient,
    paths: &PathIds,
    tenant: &str,
    rt: ResourceType,
    filter: Option<&Filter>,
    args: &mut Vec<Param>,
) -> Result<String, StoreError> {
    args.push(Param::Text(tenant.to_owned()));
    args.push(Param::Text(rt.name().to_owned()));
    let Some(filter) = filter else {
        return Ok("r.tenant = $1 AND r.resource_type = $2".into());
    };
    let set = FilterSql::new(&mut Pg { tx }, paths, tenant, rt, args).resources(filter)?;
    Ok(format!(
        "r.tenant = $1 AND r.resource_type = $2 AND r.seq IN ({set})"
    ))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

struct SortOrder {
    key: SortKey,
    descending: bool,
}

impl SortOrder {
    fn column(&self) -> &'static str {
        match self.key {
            SortKey::Seq => "r.seq",
            SortKey::Name => "r.name_key",
            SortKey::Id => "r.id",
            SortKey::Created => "r.created",
            SortKey::Modified => "r.last_modified",
            SortKey::Version => "r.version",
            SortKey::Index(_) => "s.text",
        }
    }

    /// The key's columns in the page's rows (from column 6 on).
    fn key_columns(&self) -> &'static str {
        match self.key {
            SortKey::Index(_) => "s.text, s.num::text",
            _ => self.column(),
        }
    }

    /// The key of one row, as the cursor holds it (SQLite's values: integers as numbers).
    fn key_of(&self, row: &Row) -> Result<Value, StoreError> {
        Ok(match self.key {
            SortKey::Seq | SortKey::Version => Value::from(row.try_get::<_, i64>(6)?),
            SortKey::Index(_) => match (
                row.try_get::<_, Option<String>>(6)?,
                row.try_get::<_, Option<String>>(7)?,
            ) {
                (Some(text), _) => Value::String(text),
                (None, Some(num)) => num_json(&num),
                (None, None) => Value::Null,
            },
            _ => Value::String(row.try_get(6)?),
        })
    }

    fn dir(&self) -> (&'static str, &'static str) {
        if self.descending {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        }
    }

    fn order_by(&self) -> String {
        let (k, (dir, _)) = (self.column(), self.dir());
        match self.key {
            SortKey::Seq => format!("r.seq {dir}"),
            // Resources without a value last in either direction.
            SortKey::Index(_) => {
                format!("(s.text IS NULL AND s.num IS NULL), s.text {dir}, s.num {dir}, r.id {dir}")
            }
            _ => format!("{k} {dir}, r.id {dir}"),
        }
    }

    /// The condition for rows after `p` in this order.
    fn after(&self, p: &Position, args: &mut Vec<Param>) -> Result<String, StoreError> {
        let (k, (_, cmp)) = (self.column(), self.dir());
        let mut bind = |v: Param| {
            let placeholder = match v {
                Param::Num(_) => format!("${}::text::numeric", args.len() + 1),
                _ => format!("${}", args.len() + 1),
            };
            args.push(v);
            placeholder
        };
        let misfit = || StoreError::InvalidCursor("the cursor does not fit this list".into());
        let id = || Param::Text(p.id.clone());
        Ok(match (self.key, &p.key) {
            (SortKey::Seq, Value::Number(n)) => {
                let seq = n.as_i64().ok_or_else(misfit)?;
                format!("r.seq {cmp} {}", bind(Param::Int(seq)))
            }
            (SortKey::Index(_), Value::Null) => format!(
                "(s.text IS NULL AND s.num IS NULL AND r.id {cmp} {})",
                bind(id())
            ),
            (SortKey::Index(_), key) => {
                let (col, value) = match key {
                    Value::String(s) => ("s.text", Param::Text(s.clone())),
                    Value::Number(n) => ("s.num", Param::Num(SqlNum::from_json(n))),
                    _ => return Err(misfit()),
                };
                let (kv, id) = (bind(value), bind(id()));
                format!(
                    "((s.text IS NULL AND s.num IS NULL) OR {col} {cmp} {kv} OR ({col} = {kv} AND r.id {cmp} {id}))"
                )
            }
            (SortKey::Version, Value::Number(n)) => {
                let version = n.as_i64().ok_or_else(misfit)?;
                let (kv, id) = (bind(Param::Int(version)), bind(id()));
                format!("({k}, r.id) {cmp} ({kv}, {id})")
            }
            (
                SortKey::Name | SortKey::Id | SortKey::Created | SortKey::Modified,
                Value::String(s),
            ) => {
                let (kv, id) = (bind(Param::Text(s.clone())), bind(id()));
                format!("({k}, r.id) {cmp} ({kv}, {id})")
            }
            _ => return Err(misfit()),
        })
    }
}

pub fn load_relations<A>(
    client: &mut impl GenericClient,
    tenant: &str,
    r: &mut StoredResource<A>,
) -> Result<(), StoreError> {
    match r.resource_type {
        ResourceType::Group => r.members = Some(members_of(client, tenant, &r.id)?),
        ResourceType::User => r.groups = Some(groups_of(client, tenant, &r.id)?),
    }
    Ok(())
}

pub fn members_of(
    client: &mut impl GenericClient,
    tenant: &str,
    group_id: &str,
) -> Result<Vec<MemberRef>, StoreError> {
    client
        .query_typed(
            "SELECT m.member_id, r.resource_type, r.display FROM memberships m \
             JOIN resources r ON r.tenant = m.tenant AND r.id = m.member_id \
             WHERE m.tenant = $1 AND m.group_id = $2 ORDER BY m.member_id",
            &[(&tenant, Type::TEXT), (&group_id, Type::TEXT)],
        )?
        .iter()
        .map(|row| {
            Ok(MemberRef {
                value: row.try_get(0)?,
                member_type: parse_type(row.try_get(1)?)?,
                display: row.try_get(2)?,
            })
        })
        .collect()
}

fn groups_of(
    client: &mut impl GenericClient,
    tenant: &str,
    member_id: &str,
) -> Result<Vec<GroupRef>, StoreError> {
    Ok(client
        .query_typed(
            "SELECT m.group_id, r.display FROM memberships m \
             JOIN resources r ON r.tenant = m.tenant AND r.id = m.group_id \
             WHERE m.tenant = $1 AND m.member_id = $2 ORDER BY m.group_id",
            &[(&tenant, Type::TEXT), (&member_id, Type::TEXT)],
        )?
        .iter()
        .map(|row| GroupRef {
            value: row.get(0),
            display: row.get(1),
        })
        .collect())
}
