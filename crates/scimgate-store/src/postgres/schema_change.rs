//! When the operator's schemas change, on PostgreSQL: stored values of an attribute about
//! to be removed are counted, and dropped when the operator asked (as SQLite's
//! `schema_change`).

use postgres::{GenericClient, Transaction};
use scimgate_model::ResourceType;
use serde_json::{Map, Value};

use super::index::drop_attribute_rows;
use crate::error::StoreError;
use crate::index_rows::PathIds;
use crate::stored_rows::remove_extension_attribute;

/// How many resources, in all tenants, hold a value at `path`.
pub fn resources_with(
    client: &mut impl GenericClient,
    paths: &PathIds,
    path: &str,
) -> Result<u64, StoreError> {
    let Some(id) = paths.get(path) else {
        return Ok(0);
    };
    let n: i64 = client
        .query_one(
            "SELECT count(DISTINCT seq) FROM attr_index WHERE path_id = $1",
            &[&id],
        )?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Removes attribute `attribute` of extension `urn` from every resource of type `rt` that
/// holds it: the value leaves the stored JSON (the extension too when nothing else of it
/// is left) and the index, and the resource's version and `lastModified` move on. Returns
/// how many resources changed.
pub fn purge(
    tx: &mut Transaction<'_>,
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
    let holders = tx.query(
        "SELECT r.seq, r.attributes FROM resources r \
         WHERE r.resource_type = $2 AND r.seq IN (SELECT seq FROM attr_index WHERE path_id = $1) \
         ORDER BY r.seq FOR UPDATE",
        &[&id, &rt.name()],
    )?;
    let mut changed = 0;
    for row in holders {
        let (seq, json): (i64, String) = (row.get(0), row.get(1));
        let mut attrs: Map<String, Value> = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("resource {seq}: {e}")))?;
        if !remove_extension_attribute(&mut attrs, urn, attribute) {
            continue;
        }
        let text = serde_json::to_string(&attrs)
            .map_err(|e| StoreError::Corrupt(format!("resource {seq}: {e}")))?;
        tx.execute(
            "UPDATE resources SET attributes = $1, version = version + 1, last_modified = $2 WHERE seq = $3",
            &[&text, &now, &seq],
        )?;
        drop_attribute_rows(tx, paths, seq, &path, now)?;
        changed += 1;
    }
    Ok(changed)
}
