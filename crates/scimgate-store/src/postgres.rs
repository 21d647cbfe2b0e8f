//! The PostgreSQL backend, for installs that outgrow one machine: several scimgate
//! instances on one database (docs/architecture.md, "PostgreSQL"). Every write is one
//! transaction on a pooled connection, concurrent with other instances' writes: the
//! database enforces what SQLite's single writer did (the folded userName's unique index,
//! the ETag in the statement that writes, row locks, the per-tenant event counter). Reads
//! run in a repeatable-read snapshot, within the tenant's share of the pool and a
//! statement timeout. A write's audit row is in its transaction; refusals' audit rows and
//! feed positions are queued (`queue`); commits from every instance wake this one's feed
//! consumers (`listen`).

mod admin;
mod audit;
mod dialect;
mod index;
mod listen;
mod migrations;
mod outbox;
mod pool;
mod queue;
mod read;
mod schema_change;
mod tls;
mod write;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use postgres::Transaction;
use postgres::error::SqlState;
use scimgate_limits::FairSlots;
use scimgate_model::registry::Registry;
use scimgate_model::{Clock, ResourceType};

pub use admin::PgAdmin;
pub use migrations::{LATEST, migrate};
pub use tls::TlsFiles;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::commits::Commits;
use crate::error::StoreError;
use crate::index_rows::PathIds;
use crate::page::PageBudget;
use crate::records::{
    AccessSnapshot, AuditQuery, AuditRecord, ChangeNote, EventHold, EventPosition, EventRecord,
    NewResource, PatchOutcome, PatchWrite, StoreStats, StoredDocument, StoredResource,
};
use crate::{ListPage, ListQuery, Store};
use queue::{Queue, Queued};

use pool::{Pool, Pooled};

/// How the PostgreSQL store connects and shares its connections.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://…` or `host=… user=…`.
    pub url: String,
    /// Connections in the pool (reads and writes).
    pub connections: u32,
    /// How long a request waits for a pooled connection before it gets 503.
    pub pool_timeout: Duration,
    /// Connections one tenant's reads may hold at once.
    pub tenant_read_share: u32,
    /// How long a read waits for its tenant's share before 503.
    pub share_wait: Duration,
    /// Longest a read statement may run before PostgreSQL stops it.
    pub query_timeout: Duration,
    pub list_relation_budget: usize,
    pub page_byte_budget: usize,
    /// How the first connection keeps trying a database that does not answer yet.
    pub retry: Retry,
    /// The password, when it is not in `url` (read from a file by the caller).
    pub password: Option<String>,
    /// TLS to the server (`tls`).
    pub tls: TlsFiles,
}

impl PgOptions {
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            connections: 16,
            pool_timeout: Duration::from_secs(5),
            tenant_read_share: 12,
            share_wait: Duration::from_secs(5),
            query_timeout: Duration::from_secs(5),
            list_relation_budget: 10_000,
            page_byte_budget: 4 << 20,
            retry: Retry::default(),
            password: None,
            tls: TlsFiles::default(),
        }
    }

    /// The connection settings `url`, `password` and `tls` give, and the TLS connector.
    fn settings(&self) -> Result<(postgres::Config, MakeRustlsConnect), StoreError> {
        let mut config = self.config()?;
        let tls = tls::connector(&mut config, &self.tls)?;
        Ok((config, tls))
    }

    fn config(&self) -> Result<postgres::Config, StoreError> {
        let mut config: postgres::Config = self.url.parse().map_err(|e| {
            StoreError::Unreachable(format!("the database address does not parse: {e}"))
        })?;
        // A database that stops answering (a host gone, a network partition) is noticed
        // within seconds: unacknowledged data closes the connection after
        // `tcp_user_timeout`, and an idle one is probed. Without these a request could
        // wait for the kernel's retransmissions, a quarter of an hour. The address's own
        // settings win, but for a keepalive idle time over 10 s.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(10));
        }
        let idle = config.get_keepalives_idle().min(Duration::from_secs(10));
        config.keepalives(true).keepalives_idle(idle);
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(Duration::from_secs(2));
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(3);
        }
        if let Some(password) = &self.password {
            config.password(password.trim_end_matches(['\r', '\n']));
        }
        Ok(config)
    }

    /// The options `config` sets for the database at `url`.
    pub fn configured(
        url: impl Into<String>,
        config: &crate::StoreConfig,
        share_wait: Duration,
    ) -> Self {
        let connections = config.read_connections.max(1) * 2;
        PgOptions {
            connections,
            // Never under a second: a new connection (TLS, SCRAM) takes milliseconds.
            pool_timeout: share_wait.max(Duration::from_secs(1)),
            tenant_read_share: config.tenant_read_share(),
            query_timeout: config.query_timeout(),
            share_wait,
            list_relation_budget: config.max_list_members.max(1),
            page_byte_budget: config.max_page_bytes.max(1),
            ..PgOptions::new(url)
        }
    }
}

/// Writes and commits so far, for `/metrics`: a write transaction is one write and one
/// commit; a batch of queued rows, one commit of as many writes as rows.
#[derive(Debug, Default)]
pub(crate) struct WriteCounts {
    writes: AtomicU64,
    commits: AtomicU64,
    micros: AtomicU64,
}

impl WriteCounts {
    pub(crate) fn committed(&self, writes: u64, took: Duration) {
        self.writes.fetch_add(writes, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// How long a readiness probe waits for a connection.
const PING_WAIT: Duration = Duration::from_secs(1);

/// Most times a write is tried when PostgreSQL aborts it for a deadlock or a
/// serialisation failure (another instance's write crossed it).
const WRITE_ATTEMPTS: u32 = 8;

pub struct PgStore {
    /// `None` only once dropped.
    pool: Option<Pool>,
    /// Attribute paths and their ids: replaced whole when the schemas in force change.
    paths: arc_swap::ArcSwap<PathIds>,
    /// The newest schema set registered: a write validated against an older set is
    /// refused (`SchemasChanged`). Writes hold `schema_gate` shared while they run, and a
    /// registration holds it alone, so that no write checked under the old set commits
    /// after the new one is registered.
    schema_set: AtomicU64,
    schema_gate: RwLock<()>,
    clock: Arc<dyn Clock>,
    read_slots: Arc<FairSlots>,
    query_timeout: Duration,
    /// How long a request waits for the database (`Store::answer_deadline`).
    answer_deadline: Duration,
    /// The pool's size: how many stale connections a request may meet at most.
    max_connections: u32,
    page_budget: PageBudget,
    commits: Arc<Commits>,
    queue: Queue,
    _listener: listen::Listener,
    /// Writes and commits so far (the queue's rows and batches included), and the time
    /// spent in write transactions.
    counts: Arc<WriteCounts>,
    read_checkouts: AtomicU64,
    read_wait_micros: AtomicU64,
    /// This instance, as the holder of leases: host, process and a random part.
    instance: String,
}

impl PgStore {
    /// Connects (trying again while the database does not answer), migrates the schema
    /// and registers this binary's attribute paths.
    pub fn open(options: &PgOptions, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let (config, tls) = options.settings()?;
        let mut first = connect_with(&config, &tls, options.retry)?;
        migrate(&mut first)?;
        let paths = index::register_paths_of(&mut first, scimgate_model::registry::current())?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(options.connections.max(2))
            .min_idle(Some(1))
            .connection_timeout(options.pool_timeout)
            // Not a round trip per request: a connection the server closed while it was
            // idle fails its first statement, which did nothing, and another is taken
            // (`begun`, `write`).
            .test_on_check_out(false)
            .build(pool::Manager::new(config.clone(), tls.clone()))
            .map_err(|e| StoreError::Unreachable(e.to_string()))?;
        let commits = Arc::new(Commits::default());
        let counts = Arc::new(WriteCounts::default());
        let queue = Queue::start(pool.clone(), Arc::clone(&commits), Arc::clone(&counts))?;
        let listener = listen::Listener::start(config, tls, Arc::clone(&commits))?;
        let size = options.connections.max(2) as usize;
        Ok(PgStore {
            pool: Some(pool),
            paths: arc_swap::ArcSwap::from_pointee(paths),
            schema_set: AtomicU64::new(0),
            schema_gate: RwLock::new(()),
            clock,
            read_slots: FairSlots::new(
                "database connection",
                size,
                options.tenant_read_share as usize,
                options.share_wait,
            ),
            query_timeout: options.query_timeout,
            // A connection's wait and twice a statement's run (a write's retries): a
            // database that answers at all answers within it.
            answer_deadline: options.pool_timeout + options.query_timeout * 2,
            max_connections: size as u32,
            page_budget: PageBudget {
                relations: options.list_relation_budget.max(1),
                bytes: options.page_byte_budget.max(1),
            },
            commits,
            queue,
            _listener: listener,
            counts,
            read_checkouts: AtomicU64::new(0),
            read_wait_micros: AtomicU64::new(0),
            instance: instance_name(),
        })
    }

    fn connection(&self) -> Result<Pooled, StoreError> {
        let started = Instant::now();
        let pool = self.pool.as_ref().ok_or(StoreError::WriterGone)?;
        let conn = pool.get().map_err(|e| {
            // r2d2 names the last connection error after its own words when one failed.
            let text = e.to_string();
            if text.len() > "timed out waiting for connection".len() {
                StoreError::Unreachable(text)
            } else {
                StoreError::PoolTimeout(pool.connection_timeout())
            }
        });
        self.read_checkouts.fetch_add(1, Ordering::Relaxed);
        self.read_wait_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        conn
    }

    /// Runs a write in a transaction of its own, tried again whole when PostgreSQL
    /// aborts it for a deadlock or a serialisation failure. `schema_set`: the set the
    /// write was validated against, when it carries attributes.
    fn write<T>(
        &self,
        schema_set: Option<u64>,
        mut f: impl FnMut(&mut Transaction<'_>, &PathIds, &str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _gate = self
            .schema_gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(checked) = schema_set
            && checked < self.schema_set.load(Ordering::SeqCst)
        {
            return Err(StoreError::SchemasChanged);
        }
        let started = Instant::now();
        let paths = self.paths.load_full();
        let mut conn = self.connection()?;
        let (mut attempt, mut stale) = (1, 0);
        loop {
            let now = self.now();
            let mut begun = false;
            let outcome = (|| {
                let mut tx = conn.transaction()?;
                begun = true;
                let value = f(&mut tx, &paths, &now)?;
                tx.commit()?;
                Ok(value)
            })();
            match outcome {
                // Its BEGIN failed on a connection the server had closed: nothing was
                // done, so the write starts again on another.
                Err(StoreError::Postgres(_))
                    if !begun && conn.is_closed() && stale < self.max_connections =>
                {
                    stale += 1;
                    conn = self.connection()?;
                }
                Err(StoreError::Postgres(e)) if retryable(&e) && attempt < WRITE_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(u64::from(attempt) * 2));
                }
                Ok(value) => {
                    self.counts.committed(1, started.elapsed());
                    self.commits.bump();
                    return Ok(value);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs a client's read for `tenant` in one read-only snapshot: within the tenant's
    /// share of the pool, and stopped by PostgreSQL past the query deadline.
    fn read<T>(
        &self,
        tenant: &str,
        f: impl FnOnce(&mut pool::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _slot = self.read_slots.acquire(tenant)?;
        let timeout = self.query_timeout;
        let mut conn = self.begun(|c| read::Snapshot::begin_on(c, timeout))?;
        let mut snapshot = read::Snapshot::begun(&mut conn);
        let value = f(snapshot.client()).map_err(|e| match e {
            StoreError::Postgres(e) if e.code() == Some(&SqlState::QUERY_CANCELED) => {
                StoreError::QueryTimeout(self.query_timeout)
            }
            other => other,
        })?;
        snapshot.commit()?;
        Ok(value)
    }

    fn now(&self) -> String {
        scimgate_model::format_timestamp(self.clock.now())
    }

    /// A pooled connection known to be open (an empty statement answered), for the calls
    /// that are neither a client's read nor a write: a stale one is taken over here, not
    /// failed on (a schema reload, the access refresh, leases, fingerprints).
    fn checked(&self) -> Result<Pooled, StoreError> {
        self.begun(pool::Connection::probe)
    }

    /// A pooled connection on which `first` (a statement that changes nothing if it
    /// fails: a BEGIN, a probe) succeeded. Connections are not tested when taken from the
    /// pool; one the server closed while it was idle (a restart, a failover) fails here
    /// and is dropped, and another is taken.
    fn begun(
        &self,
        first: impl Fn(&mut pool::Connection) -> Result<(), postgres::Error>,
    ) -> Result<Pooled, StoreError> {
        let mut stale = 0;
        loop {
            let mut conn = self.connection()?;
            match first(&mut conn) {
                Ok(()) => return Ok(conn),
                Err(_) if conn.is_closed() && stale < self.max_connections => stale += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A connection to the database `options` names, migrated, for `scimgate migrate` to
/// read or fill in one transaction.
pub(crate) fn open_for_transfer(options: &PgOptions) -> Result<postgres::Client, StoreError> {
    let (config, tls) = options.settings()?;
    let mut client = connect_with(&config, &tls, options.retry)?;
    migrate(&mut client)?;
    Ok(client)
}

/// What `scimgate doctor` reads of a PostgreSQL database, changing nothing.
#[derive(Debug, Clone)]
pub struct PgFacts {
    /// The migrations applied (0: none yet, the first server start applies them).
    pub schema_version: i64,
    pub supported_version: i64,
    /// `SHOW server_version`.
    pub server_version: String,
    pub bytes: u64,
    /// The database server's clock minus this host's, in seconds.
    pub clock_offset_secs: f64,
    /// The newest audit row's or event's time, as [`crate::DatabaseCheck::newest_write`].
    pub newest_write: Option<String>,
}

/// Connects once (no retries) and reads the [`PgFacts`], comparing the server's clock with
/// `clock`.
pub fn inspect(options: &PgOptions, clock: &dyn Clock) -> Result<PgFacts, StoreError> {
    let (config, tls) = options.settings()?;
    let once = Retry {
        attempts: 1,
        ..Retry::default()
    };
    let mut client = connect_with(&config, &tls, once)?;
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()?;
    let local = || clock.now().unix_timestamp_nanos() as f64 / 1e9;
    let before = local();
    let server_epoch: f64 = tx
        .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])?
        .get(0);
    let midpoint = (before + local()) / 2.0;
    let server_version: String = tx.query_one("SHOW server_version", &[])?.get(0);
    let bytes: i64 = tx
        .query_one("SELECT pg_database_size(current_database())", &[])?
        .get(0);
    let migrated: bool = tx
        .query_one("SELECT to_regclass('scimgate_migrations') IS NOT NULL", &[])?
        .get(0);
    let (schema_version, newest_write) = if migrated {
        let version: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM scimgate_migrations",
                &[],
            )?
            .get(0);
        let newest: Option<String> = tx
            .query_one(
                "SELECT max(at) FROM (SELECT max(at) AS at FROM audit UNION ALL SELECT max(at) FROM events) t",
                &[],
            )?
            .get(0);
        (version, newest)
    } else {
        (0, None)
    };
    tx.commit()?;
    Ok(PgFacts {
        schema_version,
        supported_version: LATEST,
        server_version,
        bytes: u64::try_from(bytes).unwrap_or(0),
        clock_offset_secs: server_epoch - midpoint,
        newest_write,
    })
}

/// An error with its causes (a TLS handshake's names the certificate problem).
fn why(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// This process among the instances: its host, its process id and a random part (a
/// process id can come again after a restart).
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &nonce[..8])
}

impl Drop for PgStore {
    /// The pool's connections are closed on a thread of its own: the blocking client
    /// cannot close one on a thread that drives an async runtime, and the last handle on
    /// the store may go on one (an HTTP worker at shutdown).
    fn drop(&mut self) {
        let pool = self.pool.take();
        let closing = std::thread::Builder::new()
            .name("pg-close".into())
            .spawn(move || drop(pool));
        if let Ok(closing) = closing {
            let _ = closing.join();
        }
    }
}

/// A deadlock or serialisation failure: the transaction did nothing and may run again.
fn retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

/// The operator's reads (audit, feed) share the pool as parties of their own.
const EVENTS: &str = "\u{0}events";
const ADMIN: &str = "\u{0}admin";

impl Store for PgStore {
    fn create(&self, tenant: &str, new: NewResource) -> Result<StoredResource, StoreError> {
        self.write(Some(new.schema_set), |tx, paths, now| {
            write::create(tx, paths, tenant, &new, now)
        })
    }

    fn replace(
        &self,
        tenant: &str,
        id: &str,
        expected_version: Option<i64>,
        new: NewResource,
    ) -> Result<StoredResource, StoreError> {
        self.write(Some(new.schema_set), |tx, paths, now| {
            write::replace(tx, paths, tenant, id, expected_version, &new, now)
        })
    }

    fn delete(
        &self,
        tenant: &str,
        rt: ResourceType,
        id: &str,
        expected_version: Option<i64>,
        change: ChangeNote,
    ) -> Result<(), StoreError> {
        self.write(None, |tx, paths, now| {
            write::delete(tx, paths, tenant, rt, id, expected_version, &change, now)
        })
    }

    fn get_document(
        &self,
        tenant: &str,
        rt: ResourceType,
        id: &str,
        with_relations: bool,
    ) -> Result<Option<StoredDocument>, StoreError> {
        self.read(tenant, |tx| read::get(tx, tenant, rt, id, with_relations))
    }

    fn list_documents(
        &self,
        tenant: &str,
        rt: ResourceType,
        query: &ListQuery,
    ) -> Result<ListPage<StoredDocument>, StoreError> {
        let (paths, budget) = (self.paths.load_full(), self.page_budget);
        self.read(tenant, |tx| {
            read::list(tx, &paths, tenant, rt, query, budget)
        })
    }

    fn register_schemas(&self, next: &'static Registry) -> Result<(), StoreError> {
        let _gate = self
            .schema_gate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut conn = self.checked()?;
        let ids = index::register_paths_of(&mut **conn, next)?;
        self.paths.store(Arc::new(ids));
        self.schema_set.fetch_max(next.epoch(), Ordering::SeqCst);
        Ok(())
    }

    fn schema_set(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .checked()?
            .query_opt("SELECT json FROM schema_set WHERE id = 1", &[])?
            .map(|r| r.get(0)))
    }

    fn save_schema_set(&self, json: &str) -> Result<(), StoreError> {
        self.checked()?.execute(
            "INSERT INTO schema_set (id, json) VALUES (1, $1)              ON CONFLICT (id) DO UPDATE SET json = excluded.json",
            &[&json],
        )?;
        Ok(())
    }

    fn attribute_in_use(&self, path: &str) -> Result<u64, StoreError> {
        let paths = self.paths.load_full();
        schema_change::resources_with(&mut **self.checked()?, &paths, path)
    }

    fn purge_attribute(
        &self,
        rt: ResourceType,
        urn: &str,
        attribute: &str,
    ) -> Result<u64, StoreError> {
        self.write(None, |tx, paths, now| {
            schema_change::purge(tx, paths, rt, urn, attribute, now)
        })
    }

    fn patch(&self, tenant: &str, id: &str, patch: PatchWrite) -> Result<PatchOutcome, StoreError> {
        let set = patch.new.as_ref().map(|n| n.schema_set);
        self.write(set, |tx, paths, now| {
            write::patch(tx, paths, tenant, id, &patch, now)
        })
    }

    fn events(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.read(EVENTS, |tx| {
            outbox::read_after(&mut **tx, tenant, after, limit)
        })
    }

    fn size_bytes(&self) -> Result<u64, StoreError> {
        self.read(EVENTS, |tx| {
            let bytes: i64 = tx
                .query_one("SELECT pg_database_size(current_database())", &[])?
                .get(0);
            Ok(u64::try_from(bytes).unwrap_or(0))
        })
    }

    fn event_head(&self, tenant: &str) -> Result<i64, StoreError> {
        self.read(EVENTS, |tx| outbox::head(&mut **tx, tenant))
    }

    fn event_heads(&self) -> Result<HashMap<String, i64>, StoreError> {
        self.read(EVENTS, |tx| {
            Ok(outbox::heads(&mut **tx)?.into_iter().collect())
        })
    }

    fn prune_events(&self, before: &str, holds: &[EventHold]) -> Result<usize, StoreError> {
        // Positions queued before count, as on SQLite, where the one writer runs them first.
        self.queue.flush()?;
        self.write(None, |tx, _, _| outbox::prune(tx, before, holds))
    }

    fn events_written(&self) -> Result<u64, StoreError> {
        Ok(self
            .event_heads()?
            .values()
            .map(|last| u64::try_from(*last).unwrap_or(0))
            .sum())
    }

    fn event_positions(&self) -> Result<Vec<EventPosition>, StoreError> {
        self.read(EVENTS, |tx| outbox::positions(&mut **tx))
    }

    fn event_position(&self, consumer: &str, tenant: &str) -> Result<Option<i64>, StoreError> {
        self.read(EVENTS, |tx| outbox::position(&mut **tx, consumer, tenant))
    }

    fn save_event_position(&self, position: EventPosition) {
        self.queue.push(Queued::Position {
            position,
            reset: false,
        });
    }

    fn commit_event_position(&self, position: EventPosition) -> Result<(), StoreError> {
        self.write(None, |tx, _, _| outbox::save_position(tx, &position, false))
    }

    fn reset_event_position(&self, position: EventPosition) {
        self.queue.push(Queued::Position {
            position,
            reset: true,
        });
    }

    fn take_event_replays(&self, consumer: &str) -> Result<Vec<(String, i64)>, StoreError> {
        // Looked at every few seconds by every receiver: a read, and a write only when
        // there is one to take.
        if !self.read(EVENTS, |tx| outbox::has_replays(&mut **tx, consumer))? {
            return Ok(Vec::new());
        }
        self.write(None, |tx, _, _| outbox::take_replays(tx, consumer))
    }

    fn wait_for_commit(&self, seen: u64, timeout: Duration) -> u64 {
        self.commits.wait_past(seen, timeout)
    }

    fn commit_count(&self) -> u64 {
        self.commits.count()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.queue.flush()
    }

    /// Within a second: a load balancer's probe must learn that the database is away
    /// before its own timeout, not after the pool's wait.
    fn ping(&self) -> Result<(), StoreError> {
        let pool = self.pool.as_ref().ok_or(StoreError::WriterGone)?;
        let mut stale = 0;
        loop {
            let mut conn = pool
                .get_timeout(PING_WAIT)
                .map_err(|e| StoreError::Unreachable(e.to_string()))?;
            match conn.simple_query("SELECT 1") {
                Ok(_) => return Ok(()),
                // Closed while idle (see `begun`): another connection answers.
                Err(_) if conn.is_closed() && stale < self.max_connections => stale += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn stats(&self) -> StoreStats {
        let (connections, idle) = self.pool.as_ref().map_or((0, 0), |p| {
            (p.state().connections, p.state().idle_connections)
        });

        StoreStats {
            writes: self.counts.writes.load(Ordering::Relaxed),
            commits: self.counts.commits.load(Ordering::Relaxed),
            commit_micros: self.counts.micros.load(Ordering::Relaxed),
            read_connections: connections,
            idle_read_connections: idle,
            read_checkouts: self.read_checkouts.load(Ordering::Relaxed),
            read_wait_micros: self.read_wait_micros.load(Ordering::Relaxed),
        }
    }

    fn access(&self) -> Result<AccessSnapshot, StoreError> {
        admin::snapshot(&mut **self.checked()?)
    }

    fn append_audit(&self, record: AuditRecord) {
        self.queue.push(Queued::Audit(record));
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(ADMIN, |tx| audit::read(&mut **tx, query))
    }

    fn prune_audit(&self, before: &str) -> Result<usize, StoreError> {
        self.queue.flush()?;
        self.write(None, |tx, _, _| audit::prune(tx, before))
    }

    fn publish_fingerprint(&self, fingerprint: &str) -> Result<(), StoreError> {
        self.checked()?.execute(
            "INSERT INTO instances (name, fingerprint, seen) VALUES ($1, $2, clock_timestamp()) \
             ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint, seen = excluded.seen",
            &[&self.instance, &fingerprint],
        )?;
        Ok(())
    }

    fn other_fingerprints(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .checked()?
            .query(
                "SELECT name, fingerprint FROM instances \
                 WHERE name <> $1 AND seen > clock_timestamp() - interval '30 seconds' ORDER BY name",
                &[&self.instance],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// Taken when free, lapsed or already this instance's, on the database's clock, so
    /// that instances' clocks need not agree.
    fn answer_deadline(&self) -> Option<Duration> {
        Some(self.answer_deadline)
    }

    fn hold_lease(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        Ok(self
            .checked()?
            .query_opt(
                "INSERT INTO leases (name, holder, expires) \
                 VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond') \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires \
                 WHERE leases.holder = excluded.holder OR leases.expires < clock_timestamp() \
                 RETURNING holder",
                &[&name, &self.instance, &(millis as f64)],
            )?
            .is_some())
    }
}

/// How `connect` keeps trying a database that does not answer yet.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries in all (at least one).
    pub attempts: u32,
    /// The wait after the first failure; doubled after each, up to `max_wait`.
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl Default for Retry {
    /// About a minute of tries: a database that restarts with the host comes up within it.
    fn default() -> Self {
        Retry {
            attempts: 10,
            first_wait: Duration::from_millis(250),
            max_wait: Duration::from_secs(15),
        }
    }
}

/// Connects to the database `url` names (`postgres://…` or `host=… user=…`), trying again
/// with backoff while it does not answer, and saying why in the log each time. The
/// password is never logged.
pub fn connect(url: &str, retry: Retry) -> Result<postgres::Client, StoreError> {
    let (config, tls) = PgOptions::new(url).settings()?;
    connect_with(&config, &tls, retry)
}

/// Connects with `config`, as [`connect`].
pub fn connect_with(
    config: &postgres::Config,
    tls: &MakeRustlsConnect,
    retry: Retry,
) -> Result<postgres::Client, StoreError> {
    let mut wait = retry.first_wait;
    let mut attempt = 1;
    loop {
        match config.connect(tls.clone()) {
            Ok(client) => return Ok(client),
            Err(e) if attempt < retry.attempts.max(1) => {
                tracing::warn!(
                    attempt,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %why(&e),
                    "the database does not answer yet; trying again"
                );
                std::thread::sleep(wait);
                wait = (wait * 2).min(retry.max_wait);
                attempt += 1;
            }
            Err(e) => {
                return Err(StoreError::Unreachable(format!(
                    "no answer from the database after {attempt} tries: {}",
                    why(&e)
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests;
