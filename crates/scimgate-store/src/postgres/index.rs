//! The attribute index on PostgreSQL: the rows `index_rows` computes, kept in `attr_index`
//! (only the rows that differ are rewritten, each change one statement over arrays), and
//! the paths' ids in `attr_paths`.

use std::collections::HashMap;

use postgres::Transaction;
use postgres::types::Type;
use scimgate_model::registry::Registry;

use crate::error::StoreError;
use crate::index_rows::{
    IndexRow, META_LAST_MODIFIED, PathIds, SqlNum, known_paths, modified_nanos,
};

/// Registers every path the schema set `registry` can produce (before it is put in force,
/// so that no write under it finds a path without an id) and loads all ids. Instances
/// registering together each insert what is missing; none fails on another's row.
pub fn register_paths_of(
    client: &mut impl postgres::GenericClient,
    registry: &Registry,
) -> Result<PathIds, StoreError> {
    client.execute(
        "INSERT INTO attr_paths (path) SELECT unnest($1::text[]) ON CONFLICT (path) DO NOTHING",
        &[&known_paths(registry)],
    )?;
    let map = client
        .query("SELECT path, id FROM attr_paths", &[])?
        .into_iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect::<HashMap<_, _>>();
    Ok(PathIds(map))
}

/// A row as the table holds it: (path id, element) → (text, numeric text).
type Keyed = HashMap<(i64, i64), (Option<String>, Option<String>)>;

fn keyed(paths: &PathIds, rows: &[IndexRow]) -> Result<Keyed, StoreError> {
    rows.iter()
        .map(|row| {
            let path_id = paths.get(&row.path).ok_or_else(|| {
                StoreError::Corrupt(format!("no attribute path id for '{}'", row.path))
            })?;
            Ok((
                (path_id, row.elem),
                (row.text.clone(), row.num.map(SqlNum::text)),
            ))
        })
        .collect()
}

/// Indexes a resource that has no rows yet (a create): inserts only.
pub fn insert_rows(
    tx: &mut Transaction<'_>,
    paths: &PathIds,
    tenant: &str,
    seq: i64,
    rows: &[IndexRow],
) -> Result<(), StoreError> {
    insert(tx, tenant, seq, keyed(paths, rows)?)
}

fn insert(tx: &mut Transaction<'_>, tenant: &str, seq: i64, rows: Keyed) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let (mut path_ids, mut elems, mut texts, mut nums) = (vec![], vec![], vec![], vec![]);
    for ((path_id, elem), (text, num)) in rows {
        path_ids.push(path_id);
        elems.push(elem);
        texts.push(text);
        nums.push(num);
    }
    tx.execute_typed(
        "INSERT INTO attr_index (tenant, path_id, text, num, seq, elem) \
         SELECT $1, p, t, n::numeric, $2, e FROM unnest($3::bigint[], $4::text[], $5::text[], $6::bigint[]) AS u(p, t, n, e)",
        &[
            (&tenant, Type::TEXT),
            (&seq, Type::INT8),
            (&path_ids, Type::INT8_ARRAY),
            (&texts, Type::TEXT_ARRAY),
            (&nums, Type::TEXT_ARRAY),
            (&elems, Type::INT8_ARRAY),
        ],
    )?;
    Ok(())
}

/// Replaces the index rows of resource `seq`: only the rows that differ are deleted and
/// inserted, so a PATCH of one attribute touches one row (and meta.lastModified's). A
/// resource has at most one row per (path, element).
pub fn write_rows(
    tx: &mut Transaction<'_>,
    paths: &PathIds,
    tenant: &str,
    seq: i64,
    rows: &[IndexRow],
) -> Result<(), StoreError> {
    let mut wanted = keyed(paths, rows)?;
    let (mut gone_paths, mut gone_elems) = (vec![], vec![]);
    for row in tx.query_typed(
        "SELECT path_id, elem, text, num::text FROM attr_index WHERE seq = $1",
        &[(&seq, Type::INT8)],
    )? {
        let key = (row.get::<_, i64>(0), row.get::<_, i64>(1));
        let stored = (
            row.get::<_, Option<String>>(2),
            row.get::<_, Option<String>>(3),
        );
        if wanted.get(&key) == Some(&stored) {
            wanted.remove(&key);
        } else {
            gone_paths.push(key.0);
            gone_elems.push(key.1);
        }
    }
    if !gone_paths.is_empty() {
        tx.execute_typed(
            "DELETE FROM attr_index WHERE seq = $1 AND (path_id, elem) IN \
             (SELECT * FROM unnest($2::bigint[], $3::bigint[]))",
            &[
                (&seq, Type::INT8),
                (&gone_paths, Type::INT8_ARRAY),
                (&gone_elems, Type::INT8_ARRAY),
            ],
        )?;
    }
    insert(tx, tenant, seq, wanted)
}

/// Drops resource `seq`'s rows of attribute `path` and its sub-attributes (a purged
/// attribute) and moves its `meta.lastModified` row to `now`. Its other rows stay as they
/// are, also those of attributes the schemas now in force no longer declare: a purge of
/// another attribute in the same reload finds its resources by them.
pub fn drop_attribute_rows(
    tx: &mut Transaction<'_>,
    paths: &PathIds,
    seq: i64,
    path: &str,
    now: &str,
) -> Result<(), StoreError> {
    tx.execute_typed(
        "DELETE FROM attr_index WHERE seq = $1 AND path_id = ANY($2::bigint[])",
        &[
            (&seq, Type::INT8),
            (&paths.of_attribute(path), Type::INT8_ARRAY),
        ],
    )?;
    if let (Some(path_id), Some(nanos)) = (paths.get(META_LAST_MODIFIED), modified_nanos(now)) {
        tx.execute_typed(
            "UPDATE attr_index SET num = $3::text::numeric WHERE seq = $1 AND path_id = $2",
            &[
                (&seq, Type::INT8),
                (&path_id, Type::INT8),
                (&SqlNum::Int(nanos).text(), Type::TEXT),
            ],
        )?;
    }
    Ok(())
}
