//! [`SqliteStore`]: the SQLite implementation of [`Store`]. Writes go through the one
//! [`Writer`]; reads through a pool of read-only connections.

mod access;
mod audit;
mod backup;
mod clients;
mod connection;
pub(crate) mod index;
mod log_folder;
mod migrations;
mod outbox;
pub(crate) mod query;
pub(crate) mod read;
mod schema_change;
mod write;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use scimgate_limits::{FairSlots, thread_cpu_time};
use scimgate_model::{Clock, ResourceType};

use crate::error::StoreError;
use crate::records::{
    ChangeNote, EventHold, EventPosition, EventRecord, NewResource, PatchOutcome, PatchWrite,
    StoreStats, StoredDocument, StoredResource,
};
use crate::stored_rows::parse_type;
use crate::{
    AccessSnapshot, AuditQuery, AuditRecord, ListPage, ListQuery, Page, PendingWrite, Store,
    filter_plan,
};
use index::PathIds;
use migrations::migrate;
use scimgate_model::registry::Registry;
use writer::{Guard, Writer};

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub path: PathBuf,
    /// Read-only connections in the pool.
    pub read_connections: u32,
    /// How long a request waits for a pooled connection before it gets 503.
    pub pool_timeout: Duration,
    /// How long SQLite waits on a lock held by another process.
    pub busy_timeout: Duration,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Read connections one tenant may hold at once; the rest stay free for the others.
    pub tenant_read_share: u32,
    /// How long a read waits for its tenant's share of the connections before 503.
    pub share_wait: Duration,
    /// Longest a read query may run before it is stopped (an expensive filter).
    pub query_timeout: Duration,
    /// Most related values (group members, user groups) one list page carries: a page
    /// ends early, after the resource that reaches it, with the next position given.
    pub list_relation_budget: usize,
    /// Most bytes (stored JSON and related names) one list page carries, likewise.
    pub page_byte_budget: usize,
    /// When the write-ahead log is folded into the database file and emptied: after this
    /// long without writes, and at the latest this long after the last time under steady
    /// writes (and always when the store closes).
    pub checkpoint: writer::CheckpointPolicy,
}

impl SqliteOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteOptions {
            path: path.into(),
            read_connections: 8,
            pool_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            max_batch: 256,
            tenant_read_share: 6,
            share_wait: Duration::from_secs(5),
            query_timeout: Duration::from_secs(5),
            list_relation_budget: 10_000,
            page_byte_budget: 4 << 20,
            checkpoint: writer::CheckpointPolicy::default(),
        }
    }
}

impl SqliteOptions {
    /// The options `config` sets for the file at `path`; a read waits `share_wait` for
    /// its tenant's share of the pool.
    pub fn configured(
        path: impl Into<PathBuf>,
        config: &crate::StoreConfig,
        share_wait: Duration,
    ) -> Self {
        SqliteOptions {
            read_connections: config.read_connections,
            tenant_read_share: config.tenant_read_share(),
            query_timeout: config.query_timeout(),
            share_wait,
            list_relation_budget: config.max_list_members.max(1),
            page_byte_budget: config.max_page_bytes.max(1),
            ..SqliteOptions::new(path)
        }
    }
}

pub struct SqliteStore {
    /// First, so that it stops before the writer's last fold of the log on closing.
    _log_folder: log_folder::LogFolder,
    writer: Writer,
    /// Attribute paths and their ids: replaced whole when the schemas in force change.
    paths: arc_swap::ArcSwap<PathIds>,
    /// The newest schema set registered, as the writer sees it (set by the registering job
    /// itself): a write validated against an older set is refused (`SchemasChanged`).
    schema_set: Arc<AtomicU64>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    clock: Arc<dyn Clock>,
    pool_timeout: Duration,
    /// Each tenant's share of the read pool: a tenant's slow queries queue behind each
    /// other, never in front of another tenant's.
    read_slots: Arc<FairSlots>,
    query_timeout: Duration,
    page_budget: read::PageBudget,
    /// The background refresh of tenants and revocations reads on its own connection, so
    /// that clients holding every pooled connection cannot delay a revocation.
    background: Mutex<Connection>,
    /// Read connections handed out, and the time spent waiting for them.
    read_checkouts: std::sync::atomic::AtomicU64,
    read_wait_micros: std::sync::atomic::AtomicU64,
}

impl SqliteStore {
    /// Opens (creating if needed) the database, migrates it and starts the writer.
    pub fn open(options: &SqliteOptions, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let mut conn = connection::open_read_write(&options.path, options.busy_timeout)?;
        // 8 MiB (negative = KiB), four times SQLite's default, and no more: a commit after
        // any B-tree split scans the writer's whole page-cache hash table (SQLite moves a
        // page through a scratch number past the file's end, and the commit then clears
        // the cache above the end). With 64 MiB that scan was 7 % of the server's time at
        // 10,000 users, and creates and patches ran 20 to 30 % slower; the pages it no
        // longer keeps come from the operating system's cache.
        conn.pragma_update(None, "cache_size", -8192)?;
        // Each write's savepoint journal spills past 64 KiB into a temporary file (a fifth
        // of the writer's time under creates). It stays there, not in memory
        // (`temp_store=MEMORY`): SQLite truncates an in-memory journal by walking it at the
        // end of every statement, so a write of 20,000 members took 7 s instead of 1 s,
        // growing with the square of its size, and held every tenant's writes meanwhile.
        //
        // The log is folded into the file beside the writer (`LogFolder`); SQLite's own
        // fold inside a commit stays only as a backstop, at 10,000 pages (40 MiB) instead
        // of 1,000, for a log the folder could not keep up with.
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        migrate(&mut conn)?;
        let paths = arc_swap::ArcSwap::from_pointee(index::register_paths(&conn)?);
        let writer = Writer::start(
            conn,
            options.max_batch,
            options.checkpoint,
            options.busy_timeout,
        )?;
        let log_folder = log_folder::LogFolder::start(&options.path, options.busy_timeout)?;

        let busy = options.busy_timeout;
        let manager = SqliteConnectionManager::file(&options.path)
            .with_flags(
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .with_init(move |c| {
                c.busy_timeout(busy)?;
                // 8 MiB each: with the writer's 8 MiB, the page caches of a full pool stay
                // a bounded part of the server's memory (the OS cache is behind them).
                c.pragma_update(None, "cache_size", -8192)?;
                connection::plan_once(c)?;
                c.pragma_update(None, "query_only", "ON")
            });
        // No test on check-out: a connection to a local file does not go stale the way a
        // network one does, and the test parsed a statement on every read.
        let readers = r2d2::Pool::builder()
            .max_size(options.read_connections.max(1))
            .min_idle(Some(1))
            .test_on_check_out(false)
            .connection_timeout(options.pool_timeout)
            .build(manager)
            .map_err(|e| StoreError::Migration(format!("cannot open read connections: {e}")))?;
        let background = Connection::open_with_flags(
            &options.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        background.busy_timeout(busy)?;
        background.pragma_update(None, "query_only", "ON")?;
        let size = options.read_connections.max(1) as usize;
        Ok(SqliteStore {
            _log_folder: log_folder,
            writer,
            paths,
            schema_set: Arc::new(AtomicU64::new(0)),
            readers,
            clock,
            pool_timeout: options.pool_timeout,
            read_slots: FairSlots::new(
                "read connection",
                size,
                options.tenant_read_share as usize,
                options.share_wait,
            ),
            query_timeout: options.query_timeout,
            page_budget: read::PageBudget {
                relations: options.list_relation_budget.max(1),
                bytes: options.page_byte_budget.max(1),
            },
            background: Mutex::new(background),
            read_checkouts: Default::default(),
            read_wait_micros: Default::default(),
        })
    }

    /// Creates many resources in one transaction, all or none: for imports and generators,
    /// where one commit per resource would be the bottleneck. Returns their ids.
    pub fn import(
        &self,
        tenant: &str,
        resources: Vec<NewResource>,
    ) -> Result<Vec<String>, StoreError> {
        let (tenant, now, paths) = (tenant.to_owned(), self.now(), self.paths.load_full());
        self.writer.write(move |c| {
            resources
                .into_iter()
                .map(|new| write::create(c, &paths, &tenant, new, &now).map(|r| r.id))
                .collect()
        })
    }

    fn reader(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, StoreError> {
        let started = std::time::Instant::now();
        let conn = self
            .readers
            .get()
            .map_err(|_| StoreError::PoolTimeout(self.pool_timeout));
        self.read_checkouts.fetch_add(1, Ordering::Relaxed);
        self.read_wait_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        conn
    }

    /// Runs a client's read for `tenant`: within the tenant's share of the pool, and
    /// stopped by SQLite itself once it runs past the query deadline.
    fn read<T>(
        &self,
        tenant: &str,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _slot = self.read_slots.acquire(tenant)?;
        let conn = self.reader()?;
        // The deadline is the query's own CPU time, checked every few thousand virtual-
        // machine steps: a query that waited for a core while other tenants' work ran is
        // not cut short for it. Wall time past four times the deadline means the machine
        // was too busy: that answer is 503, not the client's fault.
        let limit = self.query_timeout;
        let cpu_start = thread_cpu_time();
        let wall_start = std::time::Instant::now();
        let starved = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let starved_flag = Arc::clone(&starved);
        conn.progress_handler(
            4000,
            Some(move || {
                let used = match (cpu_start, thread_cpu_time()) {
                    (Some(start), Some(now)) => now.saturating_sub(start),
                    _ => wall_start.elapsed(),
                };
                if used > limit {
                    return true;
                }
                if wall_start.elapsed() > limit * 4 {
                    starved_flag.store(true, Ordering::Relaxed);
                    return true;
                }
                false
            }),
        )?;
        let result = f(&conn);
        // The connection goes back to the pool; the next read sets its own deadline.
        let _ = conn.progress_handler(0, None::<fn() -> bool>);
        result.map_err(|e| match e {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                if starved.load(Ordering::Relaxed) {
                    StoreError::Busy(scimgate_limits::Busy {
                        what: "database time",
                        for_tenant: "",
                        waited_ms: wall_start.elapsed().as_millis(),
                    })
                } else {
                    StoreError::QueryTimeout(self.query_timeout)
                }
            }
            other => other,
        })
    }

    fn now(&self) -> String {
        scimgate_model::format_timestamp(self.clock.now())
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        let StoreStats {
            writes, commits, ..
        } = self.stats();
        tracing::info!(writes, commits, "store closed");
    }
}

impl Store for SqliteStore {
    /// Writes so far and the commits (fsyncs) they took, and the read pool's state.
    fn stats(&self) -> StoreStats {
        let stats = self.writer.stats();
        let pool = self.readers.state();
        StoreStats {
            writes: stats.writes.load(Ordering::Relaxed),
            commits: stats.batches.load(Ordering::Relaxed),
            commit_micros: stats.batch_micros.load(Ordering::Relaxed),
            read_connections: pool.connections,
            idle_read_connections: pool.idle_connections,
            read_checkouts: self.read_checkouts.load(Ordering::Relaxed),
            read_wait_micros: self.read_wait_micros.load(Ordering::Relaxed),
        }
    }

    fn append_audit(&self, record: AuditRecord) {
        self.writer
            .submit("audit", move |c| audit::append_audit(c, &record));
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        // Audit reads are the operator's, not a tenant's: they share the pool as one
        // party of their own.
        self.read("\u{0}admin", |c| audit::read_audit(c, query))
    }

    fn prune_audit(&self, before: &str) -> Result<usize, StoreError> {
        let before = before.to_owned();
        self.writer.write(move |c| audit::prune_audit(c, &before))
    }

    fn access(&self) -> Result<AccessSnapshot, StoreError> {
        let conn = self
            .background
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        access::snapshot(&conn)
    }

    fn create(&self, tenant: &str, new: NewResource) -> Result<StoredResource, StoreError> {
        self.create_queued(tenant, new).wait()
    }

    /// Without a savepoint of its own: `write::create` makes every check that can refuse
    /// it before its first change.
    fn create_queued(&self, tenant: &str, new: NewResource) -> PendingWrite<StoredResource> {
        let (tenant, now, paths) = (tenant.to_owned(), self.now(), self.paths.load_full());
        let set = Arc::clone(&self.schema_set);
        self.writer.queue(Guard::ChecksFirst, move |c| {
            current_set(&set, new.schema_set)?;
            write::create(c, &paths, &tenant, new, &now)
        })
    }

    fn replace(
        &self,
        tenant: &str,
        id: &str,
        expected_version: Option<i64>,
        new: NewResource,
    ) -> Result<StoredResource, StoreError> {
        let (tenant, id, now, paths) = (
            tenant.to_owned(),
            id.to_owned(),
            self.now(),
            self.paths.load_full(),
        );
        let set = Arc::clone(&self.schema_set);
        // Refused (a stale version, an unknown member, a userName taken) before or by its
        // first change, as a create is.
        self.writer
            .queue(Guard::ChecksFirst, move |c| {
                current_set(&set, new.schema_set)?;
                write::replace(c, &paths, &tenant, &id, expected_version, new, &now)
            })
            .wait()
    }

    fn delete(
        &self,
        tenant: &str,
        rt: ResourceType,
        id: &str,
        expected_version: Option<i64>,
        change: ChangeNote,
    ) -> Result<(), StoreError> {
        let (tenant, id, now, paths) = (
            tenant.to_owned(),
            id.to_owned(),
            self.now(),
            self.paths.load_full(),
        );
        self.writer.write(move |c| {
            write::delete(c, &paths, &tenant, rt, &id, expected_version, &change, &now)
        })
    }

    fn get_document(
        &self,
        tenant: &str,
        rt: ResourceType,
        id: &str,
        with_relations: bool,
    ) -> Result<Option<StoredDocument>, StoreError> {
        self.read(tenant, |c| read::get(c, tenant, rt, id, with_relations))
    }

    fn get_at_once(
        &self,
        tenant: &str,
        rt: ResourceType,
        id: &str,
        with_relations: bool,
    ) -> Option<Result<Option<StoredDocument>, StoreError>> {
        let _slot = self.read_slots.try_acquire(tenant)?;
        let conn = self.readers.try_get()?;
        self.read_checkouts.fetch_add(1, Ordering::Relaxed);
        // No query deadline: a lookup by key and a bounded relation read cannot run long.
        let max = Some(crate::AT_ONCE_RELATIONS);
        match read::get_within(&conn, tenant, rt, id, with_relations, max) {
            Ok(read::Fetched::Found(resource)) => Some(Ok(Some(resource))),
            Ok(read::Fetched::Missing) => Some(Ok(None)),
            Ok(read::Fetched::OverLimit) => None,
            Err(e) => Some(Err(e)),
        }
    }

    fn list_documents(
        &self,
        tenant: &str,
        rt: ResourceType,
        query: &ListQuery,
    ) -> Result<ListPage<StoredDocument>, StoreError> {
        let budget = self.page_budget;
        self.read(tenant, |c| {
            read::list(c, &self.paths.load(), tenant, rt, query, budget)
        })
    }

    fn list_at_once(
        &self,
        tenant: &str,
        rt: ResourceType,
        query: &ListQuery,
    ) -> Option<Result<ListPage<StoredDocument>, StoreError>> {
        let one = query
            .filter
            .as_ref()
            .is_some_and(|f| filter_plan::matches_at_most_one(rt, f));
        if !one || !matches!(query.page, Page::Index { .. }) {
            return None;
        }
        let _slot = self.read_slots.try_acquire(tenant)?;
        let conn = self.readers.try_get()?;
        self.read_checkouts.fetch_add(1, Ordering::Relaxed);
        // No query deadline, as for `get_at_once`: one index lookup and a bounded relation read.
        let (paths, max) = (self.paths.load(), crate::AT_ONCE_RELATIONS);
        read::list_within(&conn, &paths, tenant, rt, query, self.page_budget, max).transpose()
    }

    fn register_schemas(&self, next: &'static Registry) -> Result<(), StoreError> {
        let set = Arc::clone(&self.schema_set);
        let ids = self.writer.write(move |c| {
            let ids = index::register_paths_of(c, next)?;
            // From the next job on, writes checked against an older set are refused.
            set.fetch_max(next.epoch(), Ordering::SeqCst);
            Ok(ids)
        })?;
        self.paths.store(Arc::new(ids));
        Ok(())
    }

    fn schema_set(&self) -> Result<Option<String>, StoreError> {
        let conn = self
            .background
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(conn
            .query_row("SELECT json FROM schema_set WHERE id = 1", [], |r| r.get(0))
            .optional()?)
    }

    fn save_schema_set(&self, json: &str) -> Result<(), StoreError> {
        let json = json.to_owned();
        self.writer.write(move |c| {
            c.execute(
                "INSERT INTO schema_set (id, json) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET json = excluded.json",
                [&json],
            )?;
            Ok(())
        })
    }

    fn attribute_in_use(&self, path: &str) -> Result<u64, StoreError> {
        let conn = self
            .background
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        schema_change::resources_with(&conn, &self.paths.load(), path)
    }

    fn purge_attribute(
        &self,
        rt: ResourceType,
        urn: &str,
        attribute: &str,
    ) -> Result<u64, StoreError> {
        let (urn, attribute, now, paths) = (
            urn.to_owned(),
            attribute.to_owned(),
            self.now(),
            self.paths.load_full(),
        );
        self.writer
            .write(move |c| schema_change::purge(c, &paths, rt, &urn, &attribute, &now))
    }

    fn patch(&self, tenant: &str, id: &str, patch: PatchWrite) -> Result<PatchOutcome, StoreError> {
        let (tenant, id, now, paths) = (
            tenant.to_owned(),
            id.to_owned(),
            self.now(),
            self.paths.load_full(),
        );
        let set = Arc::clone(&self.schema_set);
        // A user's PATCH is refused (a stale version, a userName taken) before or by its
        // first change; a group's may find an unknown member after removing others.
        let guard = if patch.rt == ResourceType::User && patch.members.is_empty() {
            Guard::ChecksFirst
        } else {
            Guard::Savepoint
        };
        self.writer
            .queue(guard, move |c| {
                if let Some(new) = &patch.new {
                    current_set(&set, new.schema_set)?;
                }
                write::patch(c, &paths, &tenant, &id, patch, &now)
            })
            .wait()
    }

    fn size_bytes(&self) -> Result<u64, StoreError> {
        self.read("\u{0}admin", |c| {
            let bytes: i64 = c.query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(bytes).unwrap_or(0))
        })
    }

    fn events(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        // The feed's consumers are the operator's, not a tenant's: they share the pool as
        // one party of their own, so that a tenant's reads never wait for them.
        self.read("\u{0}events", |c| {
            outbox::read_after(c, tenant, after, limit)
        })
    }

    fn event_head(&self, tenant: &str) -> Result<i64, StoreError> {
        self.read("\u{0}events", |c| outbox::head(c, tenant))
    }

    fn event_heads(&self) -> Result<std::collections::HashMap<String, i64>, StoreError> {
        self.read("\u{0}events", |c| {
            Ok(outbox::heads(c)?.into_iter().collect())
        })
    }

    fn prune_events(&self, before: &str, holds: &[EventHold]) -> Result<usize, StoreError> {
        let (before, holds) = (before.to_owned(), holds.to_vec());
        self.writer
            .write(move |c| outbox::prune(c, &before, &holds))
    }

    fn events_written(&self) -> Result<u64, StoreError> {
        self.read("\u{0}events", |c| {
            Ok(outbox::heads(c)?
                .iter()
                .map(|(_, last)| u64::try_from(*last).unwrap_or(0))
                .sum())
        })
    }

    fn event_positions(&self) -> Result<Vec<EventPosition>, StoreError> {
        self.read("\u{0}events", outbox::positions)
    }

    fn event_position(&self, consumer: &str, tenant: &str) -> Result<Option<i64>, StoreError> {
        self.read("\u{0}events", |c| outbox::position(c, consumer, tenant))
    }

    fn save_event_position(&self, position: EventPosition) {
        self.writer.submit("event position", move |c| {
            outbox::save_position(c, &position)
        });
    }

    fn flush(&self) -> Result<(), StoreError> {
        // The queue is first in, first out: a job after everything queued commits last.
        self.writer.write(|_| Ok(()))
    }

    fn commit_event_position(&self, position: EventPosition) -> Result<(), StoreError> {
        self.writer
            .write(move |c| outbox::save_position(c, &position))
    }

    fn reset_event_position(&self, position: EventPosition) {
        self.writer.submit("event position", move |c| {
            outbox::reset_position(c, &position)
        });
    }

    fn take_event_replays(&self, consumer: &str) -> Result<Vec<(String, i64)>, StoreError> {
        // Looked at every few seconds by every receiver: a read, and a write (a commit)
        // only when there is one to take.
        if !self.read("\u{0}events", |c| outbox::has_replays(c, consumer))? {
            return Ok(Vec::new());
        }
        let consumer = consumer.to_owned();
        self.writer
            .write(move |c| outbox::take_replays(c, &consumer))
    }

    fn wait_for_commit(&self, seen: u64, timeout: Duration) -> u64 {
        self.writer.commits().wait_past(seen, timeout)
    }

    fn commit_count(&self) -> u64 {
        self.writer.commits().count()
    }

    fn ping(&self) -> Result<(), StoreError> {
        let conn = self.reader()?;
        conn.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

pub use access::AdminDb;
pub use backup::{DatabaseCheck, backup_sqlite, check_sqlite};
pub use writer::CheckpointPolicy;

/// The type column's text for `rt`.
fn type_name(rt: ResourceType) -> &'static str {
    rt.name()
}

#[cfg(test)]
mod tests;

/// A read-write connection to the file at `path` (created when missing), migrated, for
/// `scimgate migrate` to read or fill in one transaction.
pub(crate) fn open_for_transfer(path: &std::path::Path) -> Result<Connection, StoreError> {
    let mut conn = connection::open_read_write(path, Duration::from_secs(10))?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Refuses a write validated against a schema set older than the newest registered: a
/// reload came in between, and the write must be checked again under the new set.
fn current_set(registered: &AtomicU64, checked_against: u64) -> Result<(), StoreError> {
    if checked_against < registered.load(Ordering::SeqCst) {
        return Err(StoreError::SchemasChanged);
    }
    Ok(())
}
