//! When the operator's schemas change: the attribute paths a new schema brings are
//! registered (so that its values are indexed from the next write on), stored values of an
//! attribute about to be removed are counted (a removal with values is refused unless
//! the operator asked for them to be dropped), and dropped when asked.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};
use scimgate_model::ResourceType;
use serde_json::{Map, Value};

use super::index::{self, PathIds};
use crate::error::StoreError;
use crate::stored_rows::remove_extension_attribute;

/// How many resources, in all tenants, hold a value at `path` (one read per tenant, on the
/// index that starts with the tenant).
pub fn resources_with(conn: &Connection, paths: &PathIds, path: &str) -> Result<u64, StoreError> {
    let Some(id) = paths.get(path) else {
        return Ok(0);
    };
    let tenants = tenants(conn)?;
    let mut count = conn.prepare_cached(
        "SELECT count(DISTINCT seq) FROM attr_index WHERE tenant = ?1 AND path_id = ?2",
    )?;
    let mut total = 0u64;
    for t in &tenants {
        total += count.query_row(params![t, id], |r| r.get::<_, i64>(0))? as u64;
    }
    Ok(total)
}

fn tenants(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT name FROM tenants")?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

/// Removes attribute `attribute` of extension `urn` from every resource of type `rt` that
/// holds it: the value leaves the stored JSON (the extension too when nothing else of it
/// is left) and the index, and the resource's version and `lastModified` move on. Runs in
/// the writer's transaction; returns how many resources changed.
pub fn purge(
    conn: &Connection,
    paths: &PathIds,
    rt: ResourceType,
    urn: &str,
    attribute: &str,
    now: &str,
) -> Result<u64, StoreError> {
    let path = format!("{urn}:{attribute}");
    let Some(id) = paths.get(&path) else {
        return Ok(0);
    };
    let mut seqs: HashSet<(String, i64)> = HashSet::new();
    let mut find = conn
        .prepare_cached("SELECT DISTINCT seq FROM attr_index WHERE tenant = ?1 AND path_id = ?2")?;
    for t in tenants(conn)? {
        for seq in find.query_map(params![t, id], |r| r.get::<_, i64>(0))? {
            seqs.insert((t.clone(), seq?));
        }
    }
    let mut changed = 0;
    for (tenant, seq) in seqs {
        let row = conn
            .prepare_cached("SELECT attributes, resource_type FROM resources WHERE seq = ?1")?
            .query_row([seq], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .optional()?;
        let Some((json, stored_type)) = row else {
            continue;
        };
        if super::parse_type(&stored_type)? != rt {
            continue;
        }
        let mut attrs: Map<String, Value> = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("resource {seq}: {e}")))?;
        if !remove_extension_attribute(&mut attrs, urn, attribute) {
            continue;
        }
        let text = serde_json::to_string(&attrs)
            .map_err(|e| StoreError::Corrupt(format!("resource {seq}: {e}")))?;
        conn.prepare_cached(
            "UPDATE resources SET attributes = ?1, version = version + 1, last_modified = ?2 WHERE seq = ?3",
        )?
        .execute(params![text, now, seq])?;
        index::drop_attribute_rows(conn, paths, &tenant, seq, &path, now)?;
        changed += 1;
    }
    Ok(changed)
}
