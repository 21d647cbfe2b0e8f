//! The audit trail's rows on PostgreSQL: a write's in the write's own transaction
//! (`ChangeNote::audit_row`), a refusal's from the queue (committed with the next batch); read
//! for `/admin/audit` and `scimgate audit tail`, pruned past the retention.

use postgres::GenericClient;
use postgres::types::Type;

use crate::error::StoreError;
use crate::records::{AuditParam, AuditQuery, AuditRecord};

/// The class of the advisory locks that order each tenant's audit rows (the first key of
/// `pg_advisory_xact_lock(int, int)`; the second is the tenant's hash).
const AUDIT_LOCKS: i32 = 0x5C1A;

pub fn append(client: &mut impl GenericClient, r: &AuditRecord) -> Result<(), StoreError> {
    // The tenant's audit lock, held to the commit, comes first: a tenant's rows are then
    // numbered in the order they commit, so that a reader following `seq` (the
    // `/admin/audit` cursor) never passes a row that commits later with a lower number.
    client.execute_typed(
        &format!(
            "WITH turn AS (SELECT pg_advisory_xact_lock({AUDIT_LOCKS}, hashtext($2))) \
         INSERT INTO audit (at, tenant, subject, jti, client, method, resource_type, resource_id, \
         version_before, version_after, plugins, status, detail, event_seq) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 FROM turn"
        ),
        &[
            (&r.at, Type::TEXT),
            (&r.tenant, Type::TEXT),
            (&r.subject, Type::TEXT),
            (&r.jti, Type::TEXT),
            (&r.client, Type::TEXT),
            (&r.method, Type::TEXT),
            (&r.resource_type, Type::TEXT),
            (&r.resource_id, Type::TEXT),
            (&r.version_before, Type::INT8),
            (&r.version_after, Type::INT8),
            (&r.plugins, Type::TEXT),
            (&i32::from(r.status), Type::INT4),
            (&r.detail, Type::TEXT),
            (&r.event_seq, Type::INT8),
        ],
    )?;
    Ok(())
}

pub fn read(
    client: &mut impl GenericClient,
    q: &AuditQuery,
) -> Result<Vec<AuditRecord>, StoreError> {
    // Typed placeholders: the statement is prepared before the values are bound.
    let (clause, values) = q.conditions(|n, value| match value {
        AuditParam::Text(_) => format!("${n}::text"),
        AuditParam::Int(_) => format!("${n}::int8"),
    });
    let owned: Vec<Box<dyn postgres::types::ToSql + Sync>> = values
        .into_iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                AuditParam::Text(t) => Box::new(t),
                AuditParam::Int(i) => Box::new(i),
            }
        })
        .collect();
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        owned.iter().map(|b| b.as_ref()).collect();
    let rows = client.query(
        &format!(
            "SELECT seq, at, tenant, subject, jti, client, method, resource_type, resource_id, \
             version_before, version_after, plugins, status, detail, event_seq FROM audit WHERE {clause}"
        ),
        &params,
    )?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(AuditRecord {
                seq: r.try_get(0)?,
                at: r.try_get(1)?,
                tenant: r.try_get(2)?,
                subject: r.try_get(3)?,
                jti: r.try_get(4)?,
                client: r.try_get(5)?,
                method: r.try_get(6)?,
                resource_type: r.try_get(7)?,
                resource_id: r.try_get(8)?,
                version_before: r.try_get(9)?,
                version_after: r.try_get(10)?,
                plugins: r.try_get(11)?,
                status: u16::try_from(r.try_get::<_, i32>(12)?).unwrap_or(0),
                detail: r.try_get(13)?,
                event_seq: r.try_get(14)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    if q.newest {
        out.reverse();
    }
    Ok(out)
}

/// Deletes audit rows older than `before` (an RFC 3339 time); returns how many.
pub fn prune(client: &mut impl GenericClient, before: &str) -> Result<usize, StoreError> {
    Ok(client.execute("DELETE FROM audit WHERE at < $1", &[&before])? as usize)
}
