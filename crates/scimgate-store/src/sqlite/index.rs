//! The attribute index: every searchable single value of a resource as a typed row of
//! `attr_index`, computed in Rust from the schema (case folding included), so that filters
//! and sorting run on SQLite indexes.

use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params};
use scimgate_model::filter::{Comparand, instant};
use scimgate_model::registry::Registry;
use scimgate_model::schema::{AttrType, AttributeDef, find_attribute};
use scimgate_model::schemas::COMMON;
use scimgate_model::{ResourceType, fold_case};
use serde_json::{Map, Value};

use super::parse_type;
use crate::error::StoreError;

/// `meta` attributes kept in the index (the rest of `meta` is derived).
pub const META_CREATED: &str = "meta.created";
pub const META_LAST_MODIFIED: &str = "meta.lastModified";

/// Path → id of `attr_paths`, loaded once at open.
#[derive(Debug, Clone, Default)]
pub struct PathIds(HashMap<String, i64>);

impl PathIds {
    pub fn get(&self, path: &str) -> Option<i64> {
        self.0.get(path).copied()
    }
}

/// Registers every path the schemas in force can produce and loads their ids.
pub fn register_paths(conn: &Connection) -> Result<PathIds, StoreError> {
    register_paths_of(conn, scimgate_model::registry::current())
}

/// Registers every path the schema set `registry` can produce (before it is put in force,
/// so that no write under it finds a path without an id) and loads all ids.
pub fn register_paths_of(conn: &Connection, registry: &Registry) -> Result<PathIds, StoreError> {
    let mut insert = conn.prepare_cached("INSERT OR IGNORE INTO attr_paths (path) VALUES (?1)")?;
    for path in known_paths(registry) {
        insert.execute([&path])?;
    }
    let mut stmt = conn.prepare("SELECT path, id FROM attr_paths")?;
    let map = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<Result<HashMap<_, _>, _>>()?;
    Ok(PathIds(map))
}

fn known_paths(registry: &Registry) -> Vec<String> {
    let mut out = vec![META_CREATED.to_owned(), META_LAST_MODIFIED.to_owned()];
    let mut add = |prefix: String, def: &AttributeDef| {
        out.push(prefix.clone());
        for sub in &def.sub_attributes {
            out.push(format!("{prefix}.{}", sub.name));
        }
    };
    for rt in ResourceType::ALL {
        for def in rt.core_schema().attributes.iter().chain(COMMON.iter()) {
            add(def.name.to_owned(), def);
        }
        for ext in registry.extensions(rt) {
            for def in &ext.attributes {
                add(format!("{}:{}", ext.id, def.name), def);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// One single value: text (folded unless caseExact) or a number; both `None` for the
/// marker row of a complex value.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    pub path: String,
    pub elem: i64,
    pub text: Option<String>,
    pub num: Option<SqlNum>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SqlNum {
    Int(i64),
    Real(f64),
}

impl SqlNum {
    /// As SQLite stores it in the NUMERIC column: whole reals become integers.
    fn to_value(self) -> SqlValue {
        match self {
            SqlNum::Int(i) => SqlValue::Integer(i),
            SqlNum::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => SqlValue::Integer(f as i64),
            SqlNum::Real(f) => SqlValue::Real(f),
        }
    }
}

impl rusqlite::ToSql for SqlNum {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            SqlNum::Int(i) => i.to_sql(),
            SqlNum::Real(f) => f.to_sql(),
        }
    }
}

/// Nanoseconds as stored: dateTimes beyond i64 (years past 2262) saturate.
pub fn nanos(n: i128) -> i64 {
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// The typed SQL value a comparand is compared with.
pub fn comparand_num(c: &Comparand) -> Option<SqlNum> {
    match c {
        Comparand::Bool(b) => Some(SqlNum::Int(i64::from(*b))),
        Comparand::Number(n) => Some(SqlNum::Real(*n)),
        Comparand::Instant(n) => Some(SqlNum::Int(nanos(*n))),
        Comparand::Null | Comparand::Text { .. } => None,
    }
}

/// Every index row of a resource with these attributes and timestamps.
pub fn rows_for(
    rt: ResourceType,
    attributes: &Map<String, Value>,
    created: &str,
    modified: &str,
) -> Vec<IndexRow> {
    let mut rows = Vec::new();
    for (key, value) in attributes {
        if let Some(ext) = rt.extension(key) {
            for (name, v) in value.as_object().into_iter().flatten() {
                if let Some(def) = ext.attribute(name) {
                    attribute_rows(def, &format!("{}:{}", ext.id, def.name), v, &mut rows);
                }
            }
        } else if let Some(def) = rt
            .core_schema()
            .attribute(key)
            .or_else(|| find_attribute(&COMMON, key))
        {
            attribute_rows(def, def.name, value, &mut rows);
        }
    }
    for (path, stamp) in [(META_CREATED, created), (META_LAST_MODIFIED, modified)] {
        if let Some(n) = instant(&Value::String(stamp.to_owned())) {
            rows.push(IndexRow {
                path: path.to_owned(),
                elem: 0,
                text: None,
                num: Some(SqlNum::Int(nanos(n))),
            });
        }
    }
    rows
}

fn attribute_rows(def: &AttributeDef, path: &str, value: &Value, rows: &mut Vec<IndexRow>) {
    match value {
        Value::Array(items) if def.multi_valued => {
            for (i, item) in items.iter().enumerate() {
                single_rows(def, path, i as i64, item, rows);
            }
        }
        v => single_rows(def, path, 0, v, rows),
    }
}

fn single_rows(def: &AttributeDef, path: &str, elem: i64, value: &Value, rows: &mut Vec<IndexRow>) {
    if def.ty != AttrType::Complex {
        rows.extend(leaf_row(def, path, elem, value));
        return;
    }
    let Some(obj) = value.as_object().filter(|o| !o.is_empty()) else {
        return;
    };
    rows.push(IndexRow {
        path: path.to_owned(),
        elem,
        text: None,
        num: None,
    });
    for (name, v) in obj {
        if let Some(sub) = def.sub_attribute(name) {
            rows.extend(leaf_row(sub, &format!("{path}.{}", sub.name), elem, v));
        }
    }
}

fn leaf_row(def: &AttributeDef, path: &str, elem: i64, value: &Value) -> Option<IndexRow> {
    let (text, num) = match (def.ty, value) {
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(s)) => (
            Some(if def.case_exact {
                s.clone()
            } else {
                fold_case(s)
            }),
            None,
        ),
        (AttrType::Boolean, Value::Bool(b)) => (None, Some(SqlNum::Int(i64::from(*b)))),
        (AttrType::Integer | AttrType::Decimal, Value::Number(n)) => (
            None,
            Some(
                n.as_i64()
                    .map_or_else(|| SqlNum::Real(n.as_f64().unwrap_or(f64::NAN)), SqlNum::Int),
            ),
        ),
        (AttrType::DateTime, v) => (None, Some(SqlNum::Int(nanos(instant(v)?)))),
        _ => return None,
    };
    Some(IndexRow {
        path: path.to_owned(),
        elem,
        text,
        num,
    })
}

/// The typed key of each row, as the table holds it, for inserting or comparing.
type RowKey = (i64, i64, Option<String>, Option<SqlValue>);

fn row_keys(paths: &PathIds, rows: &[IndexRow]) -> Result<Vec<RowKey>, StoreError> {
    rows.iter()
        .map(|row| {
            let path_id = paths.get(&row.path).ok_or_else(|| {
                StoreError::Corrupt(format!("no attribute path id for '{}'", row.path))
            })?;
            Ok((
                path_id,
                row.elem,
                row.text.clone(),
                row.num.map(SqlNum::to_value),
            ))
        })
        .collect()
}

/// Indexes a resource that has no rows yet (a create, a backfill): inserts only.
pub fn insert_rows(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    seq: i64,
    rows: &[IndexRow],
) -> Result<(), StoreError> {
    insert_keys(conn, tenant, seq, row_keys(paths, rows)?)
}

fn insert_keys(
    conn: &Connection,
    tenant: &str,
    seq: i64,
    keys: Vec<RowKey>,
) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO attr_index (tenant, path_id, text, num, seq, elem) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (path_id, elem, text, num) in keys {
        insert.execute(params![tenant, path_id, text, num, seq, elem])?;
    }
    Ok(())
}

/// Replaces the index rows of resource `seq`. Only the rows that differ are deleted and
/// inserted: a PATCH of one attribute touches one row (and meta.lastModified's), not
/// every value of the resource.
pub fn write_rows(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    seq: i64,
    rows: &[IndexRow],
) -> Result<(), StoreError> {
    let mut wanted = row_keys(paths, rows)?;
    let mut existing = conn
        .prepare_cached("SELECT rowid, path_id, elem, text, num FROM attr_index WHERE seq = ?1")?;
    let found = existing
        .query_map([seq], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                (
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get(3)?,
                    r.get::<_, Option<SqlValue>>(4)?,
                ),
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // Wanted rows by key, so that matching each stored row costs O(1), not a scan: a
    // resource may have thousands of values, and this runs in the single writer.
    let mut by_key: HashMap<HashKey, Vec<usize>> = HashMap::with_capacity(wanted.len());
    for (i, key) in wanted.iter().enumerate() {
        by_key.entry(hash_key(key)).or_default().push(i);
    }
    let mut kept = vec![false; wanted.len()];
    let mut delete = conn.prepare_cached("DELETE FROM attr_index WHERE rowid = ?1")?;
    for (rowid, row) in &found {
        let same = by_key
            .get_mut(&hash_key(row))
            .and_then(|positions| positions.pop());
        match same {
            Some(i) => kept[i] = true,
            None => {
                delete.execute([rowid])?;
            }
        }
    }
    let fresh = wanted
        .drain(..)
        .zip(kept)
        .filter_map(|(key, kept)| (!kept).then_some(key))
        .collect();
    insert_keys(conn, tenant, seq, fresh)
}

/// A row key that can be hashed: SQLite's REAL is compared by its bits, as the stored value
/// is the same bits that were written.
type HashKey = (i64, i64, Option<String>, Option<NumKey>);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum NumKey {
    Null,
    Integer(i64),
    Real(u64),
    Text(String),
    Blob(Vec<u8>),
}

fn hash_key((path, elem, text, num): &RowKey) -> HashKey {
    let num = num.as_ref().map(|v| match v {
        SqlValue::Null => NumKey::Null,
        SqlValue::Integer(i) => NumKey::Integer(*i),
        SqlValue::Real(f) => NumKey::Real(f.to_bits()),
        SqlValue::Text(t) => NumKey::Text(t.clone()),
        SqlValue::Blob(b) => NumKey::Blob(b.clone()),
    });
    (*path, *elem, text.clone(), num)
}

/// Migration 2's hook: registers paths and indexes every resource already stored.
pub fn backfill(tx: &rusqlite::Transaction<'_>) -> rusqlite_migration::HookResult {
    let paths =
        register_paths(tx).map_err(|e| rusqlite_migration::HookError::Hook(e.to_string()))?;
    let mut stmt = tx.prepare(
        "SELECT seq, tenant, resource_type, attributes, created, last_modified FROM resources",
    )?;
    let resources = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (seq, tenant, rt, attributes, created, modified) in resources {
        let hook_err = |e: String| rusqlite_migration::HookError::Hook(e);
        let rt = parse_type(&rt).map_err(|e| hook_err(e.to_string()))?;
        let attributes: Map<String, Value> =
            serde_json::from_str(&attributes).map_err(|e| hook_err(e.to_string()))?;
        let rows = rows_for(rt, &attributes, &created, &modified);
        insert_rows(tx, &paths, &tenant, seq, &rows).map_err(|e| hook_err(e.to_string()))?;
    }
    Ok(())
}

/// Migration hook: every comparison key computed again with today's `fold_case` (the
/// attribute index, emptied by the migration, and each resource's name key). Two users
/// whose names only now compare equal keep their old keys, so the migration never fails
/// on them; they are named in the log to be renamed.
pub fn rekey(tx: &rusqlite::Transaction<'_>) -> rusqlite_migration::HookResult {
    backfill(tx)?;
    let names = tx
        .prepare("SELECT seq, tenant, name FROM resources")?
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut update = tx.prepare("UPDATE resources SET name_key = ?1 WHERE seq = ?2")?;
    for (seq, tenant, name) in names {
        match update.execute(rusqlite::params![fold_case(&name), seq]) {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                tracing::warn!(
                    tenant = %tenant,
                    user_name = %scimgate_model::excerpt(&name, 128),
                    "this userName equals another one under Unicode normalisation; both are kept, rename one"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_cover_leaves_markers_extensions_and_meta() {
        let attrs = json!({
            "userName": "Émile",
            "externalId": "AbC",
            "active": true,
            "name": {"givenName": "É"},
            "emails": [{"value": "A@x", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "M1"}},
        });
        let rows = rows_for(
            ResourceType::User,
            attrs.as_object().expect("obj"),
            "2026-01-01T00:00:00.000Z",
            "2026-01-01T00:00:00.001Z",
        );
        let show: Vec<String> = rows
            .iter()
            .map(|r| format!("{}#{} {:?} {:?}", r.path, r.elem, r.text, r.num))
            .collect();
        assert_eq!(
            show,
            [
                "userName#0 Some(\"émile\") None",
                "externalId#0 Some(\"AbC\") None",
                "active#0 None Some(Int(1))",
                "name#0 None None",
                "name.givenName#0 Some(\"é\") None",
                "emails#0 None None",
                "emails.value#0 Some(\"a@x\") None",
                "emails.type#0 Some(\"work\") None",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department#0 Some(\"r&d\") None",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager#0 None None",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value#0 Some(\"m1\") None",
                "meta.created#0 None Some(Int(1767225600000000000))",
                "meta.lastModified#0 None Some(Int(1767225600001000000))",
            ]
        );
        let known = known_paths(scimgate_model::registry::current());
        assert!(
            rows.iter().all(|r| known.contains(&r.path)),
            "every row's path is registered"
        );
    }
}
