//! The audit trail's rows: a write's in the write's own savepoint (`ChangeNote::audit_row`), a
//! refusal's queued to the writer and committed with the next batch; read for
//! `/admin/audit` and `scimgate audit tail`, pruned past the retention.

use rusqlite::{Connection, params};

use crate::error::StoreError;
use crate::records::{AuditParam, AuditQuery, AuditRecord};

pub(crate) fn append_audit(conn: &Connection, r: &AuditRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit (at, tenant, subject, jti, client, method, resource_type, resource_id,
                            version_before, version_after, plugins, status, detail, event_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        r.at,
        r.tenant,
        r.subject,
        r.jti,
        r.client,
        r.method,
        r.resource_type,
        r.resource_id,
        r.version_before,
        r.version_after,
        r.plugins,
        r.status,
        r.detail,
        r.event_seq
    ])?;
    Ok(())
}

pub(crate) fn read_audit(
    conn: &Connection,
    q: &AuditQuery,
) -> Result<Vec<AuditRecord>, StoreError> {
    let (clause, values) = q.conditions(|n, _| format!("?{n}"));
    let sql = format!(
        "SELECT seq, at, tenant, subject, jti, client, method, resource_type,
                resource_id, version_before, version_after, plugins, status, detail, event_seq
         FROM audit WHERE {clause}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let values: Vec<rusqlite::types::Value> = values
        .into_iter()
        .map(|v| match v {
            AuditParam::Text(t) => rusqlite::types::Value::Text(t),
            AuditParam::Int(i) => rusqlite::types::Value::Integer(i),
        })
        .collect();
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
        Ok(AuditRecord {
            seq: r.get(0)?,
            at: r.get(1)?,
            tenant: r.get(2)?,
            subject: r.get(3)?,
            jti: r.get(4)?,
            client: r.get(5)?,
            method: r.get(6)?,
            resource_type: r.get(7)?,
            resource_id: r.get(8)?,
            version_before: r.get(9)?,
            version_after: r.get(10)?,
            plugins: r.get(11)?,
            status: r.get(12)?,
            detail: r.get(13)?,
            event_seq: r.get(14)?,
        })
    })?;
    let mut rows: Vec<AuditRecord> = rows.collect::<Result<_, _>>()?;
    if q.newest {
        rows.reverse();
    }
    Ok(rows)
}

/// Deletes audit rows older than `before` (an RFC 3339 time); returns how many.
pub(crate) fn prune_audit(conn: &Connection, before: &str) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM audit WHERE at < ?1", [before])?)
}

#[cfg(test)]
mod tests {
    use super::super::access::AdminDb;
    use super::*;
    use crate::admin::Admin;

    fn row(tenant: &str, at: &str, status: u16) -> AuditRecord {
        AuditRecord {
            seq: 0,
            at: at.into(),
            tenant: tenant.into(),
            subject: Some("idp".into()),
            jti: None,
            client: None,
            method: "POST".into(),
            resource_type: Some("User".into()),
            resource_id: None,
            version_before: None,
            version_after: None,
            plugins: None,
            status,
            detail: None,
            event_seq: None,
        }
    }

    #[test]
    fn rows_are_read_by_tenant_time_and_cursor_and_pruned_by_age() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = AdminDb::open(&dir.path().join("a.db")).expect("open");
        let c = db.connection();
        for (t, at, s) in [
            ("a", "2026-01-01T00:00:00.000Z", 201),
            ("b", "2026-01-02T00:00:00.000Z", 201),
            ("a", "2026-01-03T00:00:00.000Z", 409),
            ("a", "2026-01-04T00:00:00.000Z", 204),
        ] {
            append_audit(c, &row(t, at, s)).expect("append");
        }
        let q = |tenant: Option<&str>, since: Option<&str>, after: Option<i64>, limit, newest| {
            AuditQuery {
                tenant: tenant.map(str::to_owned),
                since: since.map(str::to_owned),
                after_seq: after,
                limit,
                newest,
                ..Default::default()
            }
        };
        let statuses = |rows: Vec<AuditRecord>| rows.iter().map(|r| r.status).collect::<Vec<_>>();
        assert_eq!(
            statuses(db.audit(&q(Some("a"), None, None, 10, false)).expect("a")),
            [201, 409, 204]
        );
        let first = db.audit(&q(Some("a"), None, None, 1, false)).expect("page");
        let rest = db
            .audit(&q(Some("a"), None, Some(first[0].seq), 10, false))
            .expect("rest");
        assert_eq!(statuses(rest), [409, 204]);
        assert_eq!(
            statuses(db.audit(&q(None, None, None, 2, true)).expect("tail")),
            [409, 204],
            "newest two, oldest first"
        );
        assert_eq!(
            statuses(
                db.audit(&q(
                    Some("a"),
                    Some("2026-01-03T00:00:00.000Z"),
                    None,
                    10,
                    false
                ))
                .expect("since")
            ),
            [409, 204]
        );
        assert_eq!(
            prune_audit(c, "2026-01-03T00:00:00.000Z").expect("prune"),
            2
        );
        assert_eq!(
            statuses(db.audit(&q(None, None, None, 10, false)).expect("left")),
            [409, 204]
        );
    }
}
