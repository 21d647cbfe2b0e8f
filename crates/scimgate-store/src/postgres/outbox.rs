//! The change feed's outbox on PostgreSQL. Each write appends its event in its own
//! transaction, numbered per tenant from a counter row whose lock it holds until it
//! commits: numbers are gap-free across instances and committed in order (a write that
//! rolls back takes its number with it). The commit notifies the install's channel, so that
//! every instance's feed consumers wake.

use postgres::types::Type;
use postgres::{GenericClient, Row, Transaction};

use crate::error::StoreError;
use crate::records::{EventHold, EventPosition, EventRecord};
use crate::stored_rows::{Appended, EventColumns, new_txn, prune_bound};

/// The channel every instance of one install listens on for commits with events: named
/// after the install's schema, so that two installs in one database (in two schemas) do
/// not wake each other. SQL, as the schema is the connection's own.
pub const CHANNEL: &str = "'scimgate_' || md5(current_schema())";

/// Appends the event of the write being made; returns its sequence number.
pub fn append(
    tx: &mut Transaction<'_>,
    tenant: &str,
    now: &str,
    event: Appended<'_>,
) -> Result<i64, StoreError> {
    // The notice goes out with the commit whenever it is asked for: before the counter's
    // lock, which every write in the tenant waits for, is taken.
    tx.execute_typed(
        &format!("SELECT pg_notify({CHANNEL}, $1)"),
        &[(&tenant, Type::TEXT)],
    )?;
    // The number and the event in one statement, the last before the commit: the lock is
    // held for that statement and the commit only.
    let seq: i64 = tx
        .query_typed_one(
            "WITH next AS (INSERT INTO event_sequences (tenant, last_seq) VALUES ($1, 1) \
               ON CONFLICT (tenant) DO UPDATE SET last_seq = event_sequences.last_seq + 1 \
               RETURNING last_seq) \
             INSERT INTO events (tenant, seq, txn, at, operation, resource_type, resource_id, \
             external_id, version, created, activation, attributes, data, members) \
             SELECT $1, next.last_seq, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, \
             $8::bigint, $9::text, $10::boolean, $11::text, $12::text, $13::text FROM next RETURNING seq",
            &[
                (&tenant, Type::TEXT),
                (&new_txn(), Type::TEXT),
                (&now, Type::TEXT),
                (&event.kind.name(), Type::TEXT),
                (&event.resource_type.name(), Type::TEXT),
                (&event.id, Type::TEXT),
                (&event.external_id, Type::TEXT),
                (&event.version, Type::INT8),
                (&event.created, Type::TEXT),
                (&event.note.activation, Type::BOOL),
                (&event.attributes_names(), Type::TEXT),
                (&event.data(), Type::TEXT),
                (&event.members_json(), Type::TEXT),
            ],
        )?
        .get(0);
    Ok(seq)
}

const EVENT_COLUMNS: &str = "tenant, seq, txn, at, operation, resource_type, resource_id, \
     external_id, version, created, activation, attributes, data, members";

/// Up to `limit` events of `tenant` after `after`, in order.
pub fn read_after(
    client: &mut impl GenericClient,
    tenant: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<EventRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    client
        .query(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ),
            &[&tenant, &after, &limit],
        )?
        .iter()
        .map(row_to_event)
        .collect()
}

fn row_to_event(r: &Row) -> Result<EventRecord, StoreError> {
    EventColumns {
        tenant: r.try_get(0)?,
        seq: r.try_get(1)?,
        txn: r.try_get(2)?,
        at: r.try_get(3)?,
        operation: r.try_get(4)?,
        resource_type: r.try_get(5)?,
        resource_id: r.try_get(6)?,
        external_id: r.try_get(7)?,
        version: r.try_get(8)?,
        created: r.try_get(9)?,
        activation: r.try_get(10)?,
        attributes: r.try_get(11)?,
        data: r.try_get(12)?,
        members: r.try_get(13)?,
    }
    .into_record()
}

/// The last sequence number given in `tenant` (0 before its first event).
pub fn head(client: &mut impl GenericClient, tenant: &str) -> Result<i64, StoreError> {
    Ok(client
        .query_opt(
            "SELECT last_seq FROM event_sequences WHERE tenant = $1",
            &[&tenant],
        )?
        .map_or(0, |r| r.get(0)))
}

/// Each tenant's last sequence number.
pub fn heads(client: &mut impl GenericClient) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(client
        .query(
            "SELECT tenant, last_seq FROM event_sequences ORDER BY tenant",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Every consumer's position in every tenant.
pub fn positions(client: &mut impl GenericClient) -> Result<Vec<EventPosition>, StoreError> {
    Ok(client
        .query(
            "SELECT consumer, tenant, seq, updated, state, failing_since, last_error \
             FROM event_positions ORDER BY consumer, tenant",
            &[],
        )?
        .iter()
        .map(|r| EventPosition {
            consumer: r.get(0),
            tenant: r.get(1),
            seq: r.get(2),
            updated: r.get(3),
            state: r.get(4),
            failing_since: r.get(5),
            last_error: r.get(6),
        })
        .collect())
}

/// Where `consumer` stands in `tenant`, if it has a stored position.
pub fn position(
    client: &mut impl GenericClient,
    consumer: &str,
    tenant: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT seq FROM event_positions WHERE consumer = $1 AND tenant = $2",
            &[&consumer, &tenant],
        )?
        .map(|r| r.get(0)))
}

/// Records where a consumer stands: forward only (`reset`: as given, backwards too).
pub fn save_position(
    client: &mut impl GenericClient,
    p: &EventPosition,
    reset: bool,
) -> Result<(), StoreError> {
    let new_seq = if reset {
        "excluded.seq"
    } else {
        "greatest(event_positions.seq, excluded.seq)"
    };
    client.execute(
        &format!(
            "INSERT INTO event_positions (consumer, tenant, seq, updated, state, failing_since, last_error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (consumer, tenant) DO UPDATE SET seq = {new_seq}, \
             updated = excluded.updated, state = excluded.state, \
             failing_since = excluded.failing_since, last_error = excluded.last_error"
        ),
        &[
            &p.consumer,
            &p.tenant,
            &p.seq,
            &p.updated,
            &p.state,
            &p.failing_since,
            &p.last_error,
        ],
    )?;
    Ok(())
}

pub fn has_replays(client: &mut impl GenericClient, consumer: &str) -> Result<bool, StoreError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM event_replays WHERE consumer = $1 LIMIT 1",
            &[&consumer],
        )?
        .is_some())
}

/// The replays asked for `consumer`, taken (each is done once).
pub fn take_replays(
    client: &mut impl GenericClient,
    consumer: &str,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(client
        .query(
            "DELETE FROM event_replays WHERE consumer = $1 RETURNING tenant, from_seq",
            &[&consumer],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Deletes, in each tenant, the events written before `before` that every hold following
/// the tenant and every cursor in it is past.
pub fn prune(
    tx: &mut Transaction<'_>,
    before: &str,
    holds: &[EventHold],
) -> Result<usize, StoreError> {
    let positions = positions(tx)?;
    let mut deleted = 0;
    for (tenant, _) in heads(tx)? {
        let bound = prune_bound(&positions, holds, &tenant);
        deleted += tx.execute(
            "DELETE FROM events WHERE tenant = $1 AND seq <= $2 AND at < $3",
            &[&tenant, &bound, &before],
        )? as usize;
    }
    Ok(deleted)
}
