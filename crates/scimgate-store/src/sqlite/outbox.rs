//! The change feed's outbox. Each write appends its event in its own savepoint (`append`),
//! numbered per tenant from a counter row, so that a write that rolls back takes its event
//! and its number with it; consumers read after their position (`read_after`) and move
//! it (`save_position`).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::type_name;
use crate::error::StoreError;
use crate::records::{EventHold, EventPosition, EventRecord};
pub use crate::stored_rows::Appended;
use crate::stored_rows::{EventColumns, new_txn, prune_bound};

/// Appends the event of the write being made; returns its sequence number.
pub fn append(
    conn: &Connection,
    tenant: &str,
    now: &str,
    event: Appended<'_>,
) -> Result<i64, StoreError> {
    let seq: i64 = conn
        .prepare_cached(
            "INSERT INTO event_sequences (tenant, last_seq) VALUES (?1, 1) \
             ON CONFLICT (tenant) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq",
        )?
        .query_row(params![tenant], |r| r.get(0))?;
    conn.prepare_cached(
        "INSERT INTO events (tenant, seq, txn, at, operation, resource_type, resource_id, \
         external_id, version, created, activation, attributes, data, members) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        tenant,
        seq,
        new_txn(),
        now,
        event.kind.name(),
        type_name(event.resource_type),
        event.id,
        event.external_id,
        event.version,
        event.created,
        event.note.activation,
        event.attributes_names(),
        event.data(),
        event.members_json(),
    ])?;
    Ok(seq)
}

/// Up to `limit` events of `tenant` after `after`, in order.
pub fn read_after(
    conn: &Connection,
    tenant: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<EventRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT tenant, seq, txn, at, operation, resource_type, resource_id, external_id, \
         version, created, activation, attributes, data, members \
         FROM events WHERE tenant = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![tenant, after, limit], row_to_event)?;
    rows.map(|r| r?).collect()
}

/// The last sequence number given in `tenant` (0 before its first event).
pub fn head(conn: &Connection, tenant: &str) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT last_seq FROM event_sequences WHERE tenant = ?1")?
        .query_row(params![tenant], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

fn row_to_event(r: &Row<'_>) -> rusqlite::Result<Result<EventRecord, StoreError>> {
    Ok(EventColumns {
        tenant: r.get(0)?,
        seq: r.get(1)?,
        txn: r.get(2)?,
        at: r.get(3)?,
        operation: r.get(4)?,
        resource_type: r.get(5)?,
        resource_id: r.get(6)?,
        external_id: r.get(7)?,
        version: r.get(8)?,
        created: r.get(9)?,
        activation: r.get(10)?,
        attributes: r.get(11)?,
        data: r.get(12)?,
        members: r.get(13)?,
    }
    .into_record())
}

/// Every consumer's position in every tenant.
pub fn positions(conn: &Connection) -> Result<Vec<EventPosition>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT consumer, tenant, seq, updated, state, failing_since, last_error \
         FROM event_positions ORDER BY consumer, tenant",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(EventPosition {
            consumer: r.get(0)?,
            tenant: r.get(1)?,
            seq: r.get(2)?,
            updated: r.get(3)?,
            state: r.get(4)?,
            failing_since: r.get(5)?,
            last_error: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Where `consumer` stands in `tenant`, if it has a stored position.
pub fn position(
    conn: &Connection,
    consumer: &str,
    tenant: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq FROM event_positions WHERE consumer = ?1 AND tenant = ?2")?
        .query_row(params![consumer, tenant], |r| r.get(0))
        .optional()?)
}

/// Forgets a consumer's position (in one tenant, or in all): it no longer holds events
/// from pruning. Returns how many positions went.
pub fn forget(
    conn: &Connection,
    consumer: &str,
    tenant: Option<&str>,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM event_positions WHERE consumer = ?1 AND (?2 IS NULL OR tenant = ?2)",
        )?
        .execute(params![consumer, tenant])?)
}

/// Records where a consumer stands. A position never moves back by this (a late save of
/// an older position loses to the newer one); `reset_position` moves it back on purpose.
pub fn save_position(conn: &Connection, p: &EventPosition) -> Result<(), StoreError> {
    upsert_position(conn, p, "max(seq, excluded.seq)")
}

/// Sets a position as given, backwards too (a replay taken, a cursor reset).
pub fn reset_position(conn: &Connection, p: &EventPosition) -> Result<(), StoreError> {
    upsert_position(conn, p, "excluded.seq")
}

/// The one statement both write, `seq` set as `new_seq` says (a constant of this module,
/// never input).
fn upsert_position(conn: &Connection, p: &EventPosition, new_seq: &str) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO event_positions (consumer, tenant, seq, updated, state, failing_since, last_error) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (consumer, tenant) DO UPDATE SET seq = {new_seq}, \
         updated = excluded.updated, state = excluded.state, \
         failing_since = excluded.failing_since, last_error = excluded.last_error"
    ))?
    .execute(params![
        p.consumer,
        p.tenant,
        p.seq,
        p.updated,
        p.state,
        p.failing_since,
        p.last_error
    ])?;
    Ok(())
}

/// The newest `count` events (of `tenant`, or of every tenant by time), oldest first.
pub fn tail(
    conn: &Connection,
    tenant: Option<&str>,
    count: usize,
) -> Result<Vec<EventRecord>, StoreError> {
    let heads = match tenant {
        Some(t) => vec![(t.to_owned(), head(conn, t)?)],
        None => heads(conn)?,
    };
    crate::admin::tail(heads, count, |t, from, limit| {
        read_after(conn, t, from, limit)
    })
}

/// Each tenant's last sequence number.
pub fn heads(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT tenant, last_seq FROM event_sequences ORDER BY tenant")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Asks `consumer`'s delivery to go back to `from` in `tenant`.
pub fn request_replay(
    conn: &Connection,
    consumer: &str,
    tenant: &str,
    from: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO event_replays (consumer, tenant, from_seq) VALUES (?1, ?2, ?3) \
         ON CONFLICT (consumer, tenant) DO UPDATE SET from_seq = excluded.from_seq",
    )?
    .execute(params![consumer, tenant, from])?;
    Ok(())
}

pub fn has_replays(conn: &Connection, consumer: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM event_replays WHERE consumer = ?1 LIMIT 1")?
        .query_row(params![consumer], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The replays asked for `consumer`, taken (each is done once).
pub fn take_replays(conn: &Connection, consumer: &str) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM event_replays WHERE consumer = ?1 RETURNING tenant, from_seq",
    )?;
    let rows = stmt.query_map(params![consumer], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sets a dead-lettered consumer active again (its position kept); how many tenants.
pub fn enable(conn: &Connection, consumer: &str) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE event_positions SET state = 'active', failing_since = NULL \
             WHERE consumer = ?1 AND state = 'dead'",
        )?
        .execute(params![consumer])?)
}

/// Deletes, in each tenant, the events written before `before` that every hold following
/// the tenant and every cursor in it is past (a hold with no position yet keeps them all).
pub fn prune(conn: &Connection, before: &str, holds: &[EventHold]) -> Result<usize, StoreError> {
    let positions = positions(conn)?;
    let mut deleted = 0;
    for (tenant, _) in heads(conn)? {
        let bound = prune_bound(&positions, holds, &tenant);
        deleted += conn
            .prepare_cached("DELETE FROM events WHERE tenant = ?1 AND seq <= ?2 AND at < ?3")?
            .execute(params![tenant, bound, before])?;
    }
    Ok(deleted)
}
