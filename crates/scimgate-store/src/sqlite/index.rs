//! The attribute index on SQLite: the rows `index_rows` computes, kept in `attr_index`
//! (only the rows that differ are rewritten), and the paths' ids in `attr_paths`.

use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params};
use scimgate_model::fold_case;
use scimgate_model::registry::Registry;
use serde_json::{Map, Value};

use super::parse_type;
use crate::error::StoreError;
use crate::index_rows::known_paths;
pub use crate::index_rows::{
    IndexRow, META_LAST_MODIFIED, PathIds, SqlNum, modified_nanos, rows_for,
};

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
impl SqlNum {
    /// As SQLite stores it in the NUMERIC column: whole reals become integers.
    fn to_value(self) -> SqlValue {
        match self.stored() {
            SqlNum::Int(i) => SqlValue::Integer(i),
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

/// The typed key of each row, as the table holds it, for inserting or comparing.
pub type RowKey = (i64, i64, Option<String>, Option<SqlValue>);

/// The rows' keys as stored: each path by its id.
pub fn row_keys(paths: &PathIds, rows: &[IndexRow]) -> Result<Vec<RowKey>, StoreError> {
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

/// Indexes a resource that has no rows yet, in a migration's backfill: inserts only, with
/// no flag counts (the migration that adds `flag_counts` counts what is there then).
fn backfill_rows(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    seq: i64,
    rows: &[IndexRow],
) -> Result<(), StoreError> {
    insert_uncounted(conn, tenant, seq, &row_keys(paths, rows)?)
}

/// Inserts the keys of a resource that has none yet (a create), and counts its flags.
pub fn insert_keys(
    conn: &Connection,
    tenant: &str,
    seq: i64,
    keys: Vec<RowKey>,
) -> Result<(), StoreError> {
    insert_uncounted(conn, tenant, seq, &keys)?;
    let mut flags = FlagDeltas::default();
    flags.add(keys.iter(), 1);
    flags.apply(conn, tenant)
}

fn insert_uncounted(
    conn: &Connection,
    tenant: &str,
    seq: i64,
    keys: &[RowKey],
) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO attr_index (tenant, path_id, text, num, seq, elem) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (path_id, elem, text, num) in keys {
        insert.execute(params![tenant, path_id, text, num, seq, elem])?;
    }
    Ok(())
}

/// Takes resource `seq`'s flags off their counts: its index rows are about to go with it
/// (a delete; they leave by cascade).
pub fn uncount_flags_of(conn: &Connection, tenant: &str, seq: i64) -> Result<(), StoreError> {
    let keys = conn
        .prepare_cached(
            "SELECT path_id, num FROM attr_index WHERE seq = ?1 AND text IS NULL AND num IN (0, 1)",
        )?
        .query_map([seq], |r| {
            Ok((r.get::<_, i64>(0)?, 0, None, Some(r.get::<_, SqlValue>(1)?)))
        })?
        .collect::<Result<Vec<RowKey>, _>>()?;
    let mut flags = FlagDeltas::default();
    flags.add(keys.iter(), -1);
    flags.apply(conn, tenant)
}

/// Drops resource `seq`'s rows of attribute `path` and its sub-attributes (a purged
/// attribute), taking their flags off their counts, and moves its `meta.lastModified` row
/// to `now`. Its other rows stay as they are, also those of attributes the schemas now in
/// force no longer declare: a purge of another attribute in the same reload finds its
/// resources by them.
pub fn drop_attribute_rows(
    conn: &Connection,
    paths: &PathIds,
    tenant: &str,
    seq: i64,
    path: &str,
    now: &str,
) -> Result<(), StoreError> {
    let mut select = conn.prepare_cached(
        "SELECT rowid, path_id, elem, text, num FROM attr_index WHERE seq = ?1 AND path_id = ?2",
    )?;
    let mut delete = conn.prepare_cached("DELETE FROM attr_index WHERE rowid = ?1")?;
    let mut flags = FlagDeltas::default();
    for path_id in paths.of_attribute(path) {
        let rows = select
            .query_map(params![seq, path_id], rowid_and_key)?
            .collect::<Result<Vec<(i64, RowKey)>, _>>()?;
        for (rowid, key) in &rows {
            delete.execute([rowid])?;
            flags.add(std::iter::once(key), -1);
        }
    }
    flags.apply(conn, tenant)?;
    if let (Some(path_id), Some(nanos)) = (paths.get(META_LAST_MODIFIED), modified_nanos(now)) {
        set_modified(conn, seq, path_id, nanos)?;
    }
    Ok(())
}

/// Moves resource `seq`'s `meta.lastModified` row (path `path_id`) to `nanos`. It is
/// "now", never the 0 or 1 that `flag_counts` counts: no count moves.
pub fn set_modified(
    conn: &Connection,
    seq: i64,
    path_id: i64,
    nanos: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE attr_index SET num = ?3 WHERE seq = ?1 AND path_id = ?2")?
        .execute(params![seq, path_id, nanos])?;
    Ok(())
}

/// `flag_counts` counted again from the index rows (after `scimgate migrate` wrote them).
pub const RECOUNT_FLAGS: &str = "DELETE FROM flag_counts; \
    INSERT INTO flag_counts (tenant, path_id, num, n) \
    SELECT tenant, path_id, num, count(*) FROM attr_index \
    WHERE text IS NULL AND num IN (0, 1) GROUP BY tenant, path_id, num;";

/// How a write moves `flag_counts`: per path and value (0 or 1), the index rows holding
/// it that the write inserts less those it deletes. A list searched in turn: it has at
/// most two entries per path, and the paths are the schemas' (however many values a
/// resource holds, e.g. 10,000 emails each with `primary`, they share two entries).
#[derive(Default)]
struct FlagDeltas(Vec<((i64, i64), i64)>);

impl FlagDeltas {
    /// Counts `delta` for each key that holds a flag: no text and the number 0 or 1.
    fn add<'k>(&mut self, keys: impl Iterator<Item = &'k RowKey>, delta: i64) {
        for key in keys {
            let (path_id, _, None, Some(SqlValue::Integer(value @ (0 | 1)))) = key else {
                continue;
            };
            let flag = (*path_id, *value);
            match self.0.iter_mut().find(|(f, _)| *f == flag) {
                Some((_, n)) => *n += delta,
                None => self.0.push((flag, delta)),
            }
        }
    }

    fn apply(&self, conn: &Connection, tenant: &str) -> Result<(), StoreError> {
        for &((path_id, value), delta) in self.0.iter().filter(|(_, d)| *d != 0) {
            conn.prepare_cached(
                "INSERT INTO flag_counts (tenant, path_id, num, n) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (tenant, path_id, num) DO UPDATE SET n = n + excluded.n",
            )?
            .execute(params![tenant, path_id, value, delta])?;
        }
        Ok(())
    }
}

/// Replaces the index rows of resource `seq` with the rows of `wanted` (worked out before
/// the write's first change). Only the rows that differ are deleted and inserted: a PATCH
/// of one attribute touches one row (and meta.lastModified's), not every value of the
/// resource.
pub fn write_keys(
    conn: &Connection,
    tenant: &str,
    seq: i64,
    mut wanted: Vec<RowKey>,
) -> Result<(), StoreError> {
    let mut existing = conn
        .prepare_cached("SELECT rowid, path_id, elem, text, num FROM attr_index WHERE seq = ?1")?;
    let found = existing
        .query_map([seq], rowid_and_key)?
        .collect::<Result<Vec<_>, _>>()?;
    // Wanted rows by key, so that matching each stored row costs O(1), not a scan: a
    // resource may have thousands of values, and this runs in the single writer.
    let mut by_key: HashMap<HashKey, Vec<usize>> = HashMap::with_capacity(wanted.len());
    for (i, key) in wanted.iter().enumerate() {
        by_key.entry(hash_key(key)).or_default().push(i);
    }
    let mut kept = vec![false; wanted.len()];
    let mut flags = FlagDeltas::default();
    let mut delete = conn.prepare_cached("DELETE FROM attr_index WHERE rowid = ?1")?;
    for (rowid, row) in &found {
        let same = by_key
            .get_mut(&hash_key(row))
            .and_then(|positions| positions.pop());
        match same {
            Some(i) => kept[i] = true,
            None => {
                delete.execute([rowid])?;
                flags.add(std::iter::once(row), -1);
            }
        }
    }
    let fresh: Vec<RowKey> = wanted
        .drain(..)
        .zip(kept)
        .filter_map(|(key, kept)| (!kept).then_some(key))
        .collect();
    insert_uncounted(conn, tenant, seq, &fresh)?;
    flags.add(fresh.iter(), 1);
    flags.apply(conn, tenant)
}

/// A stored row's rowid and key, from `SELECT rowid, path_id, elem, text, num`.
fn rowid_and_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, RowKey)> {
    Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
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
        backfill_rows(tx, &paths, &tenant, seq, &rows).map_err(|e| hook_err(e.to_string()))?;
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
