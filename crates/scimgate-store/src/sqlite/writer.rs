//! The single writer: one connection, one thread, group commit. Every write waiting when the
//! writer wakes joins one `BEGIN IMMEDIATE` transaction, and all of them share one fsync at
//! `COMMIT`. A failing write rolls back alone: in its own savepoint, or, for a write that
//! makes every refusal before its first change (`Guard::ChecksFirst`), by having changed
//! nothing. A caller is answered only after that commit is durable.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::PendingWrite;
use crate::commits::Commits;
use crate::error::StoreError;

/// A write to run inside the batch; it returns whether it succeeded and how to answer its
/// caller once the batch's fate is known.
struct Job {
    write: Box<dyn FnOnce(&Connection) -> Completion + Send>,
    guard: Guard,
}

/// How a write that fails is kept out of its batch's commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// In a savepoint of its own, rolled back when it fails. SQLite copies every page the
    /// write changes into the savepoint's journal first (past 64 KiB, into a temporary
    /// file): about thirty pages for a create, 40 % of the writer's CPU per create.
    Savepoint,
    /// Without one: the write makes every check that can refuse it (uniqueness, versions,
    /// members, its tenant) before its first change, so a refused write has changed
    /// nothing. Each statement is still atomic by itself. Should it fail after a change
    /// all the same (a fault, or a panic), the writer rolls the whole transaction back and
    /// tells the writes before it in the batch that they were not committed; no part of
    /// it is ever committed. DDL is not counted as a change: such writes take a savepoint.
    ChecksFirst,
}

struct Completion {
    succeeded: bool,
    answer: Box<dyn FnOnce(Result<(), String>) + Send>,
}

pub struct Writer {
    /// `None` once the writer is closing.
    jobs: Option<mpsc::Sender<Job>>,
    stats: Arc<WriterStats>,
    commits: Arc<Commits>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Writer {
    /// Closes the queue and waits until the writer has committed what was queued (the
    /// audit rows still in it), so that a clean shutdown loses nothing.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counters of the writer's work: how many writes shared how many commits.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub writes: AtomicU64,
    /// Time spent in write transactions, from BEGIN to the durable COMMIT.
    pub batch_micros: AtomicU64,
}

impl Writer {
    /// Starts the writer thread, which owns `conn` until every `Writer` handle is dropped.
    pub fn start(
        conn: Connection,
        max_batch: usize,
        checkpoint: CheckpointPolicy,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let stats = Arc::new(WriterStats::default());
        let commits = Arc::new(Commits::default());
        let (counters, signal) = (Arc::clone(&stats), Arc::clone(&commits));
        let thread = thread::Builder::new()
            .name("scimgate-writer".into())
            .spawn(move || {
                run(
                    conn,
                    queue,
                    max_batch.max(1),
                    checkpoint,
                    busy_timeout,
                    &counters,
                    &signal,
                )
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            stats,
            commits,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    pub fn commits(&self) -> &Commits {
        &self.commits
    }

    /// Queues `write` for the next batch without waiting for it: for records (the audit
    /// trail) whose loss in a crash of the last milliseconds is acceptable, and which must
    /// not add a commit's latency to the request. Failures are logged.
    pub fn submit<F>(&self, what: &'static str, write: F)
    where
        F: FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static,
    {
        let write = Box::new(move |conn: &Connection| {
            let result = write(conn);
            if let Err(e) = &result {
                tracing::error!(error = %e, what, "a queued write failed");
            }
            Completion {
                succeeded: result.is_ok(),
                answer: Box::new(move |commit| {
                    if let Err(e) = commit {
                        tracing::error!(error = %e, what, "a queued write was not committed");
                    }
                }),
            }
        });
        let job = Job {
            write,
            guard: Guard::Savepoint,
        };
        if self.jobs.as_ref().is_none_or(|j| j.send(job).is_err()) {
            tracing::error!(what, "the writer is not running; a queued write is lost");
        }
    }

    /// Runs `write` in the next batch and blocks until its batch has committed (or failed).
    pub fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(Guard::Savepoint, write).wait()
    }

    /// Queues `write` behind the caller's earlier ones and returns at once; its outcome,
    /// known once its batch has committed (or failed), is what `wait` returns. A caller's
    /// queued writes run in the order queued, and mostly in one batch.
    pub fn queue<T, F>(&self, guard: Guard, write: F) -> PendingWrite<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel::<Result<T, StoreError>>(1);
        let write = Box::new(move |conn: &Connection| {
            let result = write(conn);
            Completion {
                succeeded: result.is_ok(),
                answer: Box::new(move |commit| {
                    let outcome = match (commit, result) {
                        (_, Err(e)) => Err(e),
                        (Err(e), Ok(_)) => Err(StoreError::Commit(e)),
                        (Ok(()), Ok(v)) => Ok(v),
                    };
                    // The caller may have gone away; its write is committed all the same.
                    let _ = reply.send(outcome);
                }),
            }
        });
        let job = Job { write, guard };
        match self.jobs.as_ref().map(|j| j.send(job)) {
            Some(Ok(())) => PendingWrite::waiting(answer),
            _ => PendingWrite::ready(Err(StoreError::WriterGone)),
        }
    }
}

/// When the writer folds the write-ahead log into the database file and truncates it, so
/// that the database file alone holds every acknowledged write soon after it (a copy of
/// `scimgate.db` without its `-wal` is then current) and the log does not stay at its
/// high-water size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this long without a write.
    pub idle: Duration,
    /// At the latest this long after the previous one, under steady writes.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            idle: Duration::from_secs(1),
            every: Duration::from_secs(60),
        }
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`, between transactions. With readers in the middle
/// of a read it copies what it can and leaves the log for the next time. It waits for
/// readers only briefly: a TRUNCATE checkpoint waits on them through the busy handler
/// while holding the write lock, so with the connection's own busy timeout a long read
/// (`scimgate backup`, a big count) would hold every write for seconds.
fn checkpoint(conn: &Connection, busy_timeout: Duration) {
    const CHECKPOINT_WAIT: Duration = Duration::from_millis(50);
    let busy = conn.busy_timeout(CHECKPOINT_WAIT);
    let done = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    if let Err(e) = busy.and_then(|()| conn.busy_timeout(busy_timeout)) {
        tracing::warn!(error = %e, "cannot set the writer's busy timeout");
    }
    match done {
        Ok(0) => tracing::trace!("write-ahead log checkpointed"),
        Ok(_) => tracing::debug!("checkpoint postponed: readers are using the log"),
        Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
    }
}

fn run(
    conn: Connection,
    queue: mpsc::Receiver<Job>,
    max_batch: usize,
    policy: CheckpointPolicy,
    busy_timeout: Duration,
    stats: &WriterStats,
    commits: &Commits,
) {
    let mut last_checkpoint = Instant::now();
    let mut unfolded = false;
    loop {
        let first = match queue.recv_timeout(policy.idle) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if unfolded {
                    checkpoint(&conn, busy_timeout);
                    (unfolded, last_checkpoint) = (false, Instant::now());
                }
                continue;
            }
            // Every handle is gone: the store is closing.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let started = std::time::Instant::now();
        commit_batch(&conn, batch);
        commits.bump();
        stats
            .batch_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        unfolded = true;
        if last_checkpoint.elapsed() >= policy.every {
            checkpoint(&conn, busy_timeout);
            (unfolded, last_checkpoint) = (false, Instant::now());
        }
    }
    // A clean stop leaves the database file complete and the log empty.
    checkpoint(&conn, busy_timeout);
}

fn commit_batch(conn: &Connection, batch: Vec<Job>) {
    let size = batch.len();
    if let Err(e) = run_statement(conn, "BEGIN IMMEDIATE") {
        // Dropping the jobs unanswered tells each caller the write did not happen.
        tracing::error!(error = %e, size, "could not begin a write transaction");
        return;
    }
    let mut completions = Vec::with_capacity(size);
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        let broke_promise = match job.guard {
            Guard::Savepoint => {
                completions.extend(in_savepoint(conn, job.write));
                false
            }
            Guard::ChecksFirst => {
                let changes = conn.total_changes();
                let outcome = catch_unwind(AssertUnwindSafe(|| (job.write)(conn)));
                let unchanged = conn.total_changes() == changes;
                match outcome {
                    Ok(done) => {
                        let broke = !done.succeeded && !unchanged;
                        completions.push(done);
                        broke
                    }
                    Err(_) if unchanged => {
                        tracing::error!("a write panicked before changing anything");
                        false
                    }
                    Err(_) => true,
                }
            }
        };
        // SQLite itself ends the transaction on some errors (a full disk, an I/O error):
        // the writes before are gone, and the ones after would each commit statement by
        // statement. Either way the batch so far is answered as not committed and the
        // rest start a transaction of their own.
        let ended = conn.is_autocommit();
        if broke_promise || ended {
            if broke_promise {
                tracing::error!("a write failed after its first change; its batch is rolled back");
            } else {
                tracing::error!("SQLite ended the write transaction; its batch is rolled back");
            }
            if !ended {
                let _ = conn.execute_batch("ROLLBACK");
            }
            for done in completions.drain(..) {
                (done.answer)(Err(ROLLED_BACK.into()));
            }
            let rest: Vec<Job> = jobs.collect();
            if !rest.is_empty() {
                commit_batch(conn, rest);
            }
            return;
        }
    }
    let commit = run_statement(conn, "COMMIT").map_err(|e| {
        tracing::error!(error = %e, size, "commit failed; the batch is rolled back");
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    });
    tracing::trace!(size, "write batch committed");
    for done in completions {
        (done.answer)(commit.clone());
    }
}

/// What the writes of a batch that was rolled back before its commit are told.
const ROLLED_BACK: &str = "rolled back with a write of the same batch that failed half-way";

/// Runs one write in a savepoint of its own, rolled back when the write fails or panics.
fn in_savepoint(
    conn: &Connection,
    write: Box<dyn FnOnce(&Connection) -> Completion + Send>,
) -> Option<Completion> {
    if let Err(e) = run_statement(conn, "SAVEPOINT write") {
        tracing::error!(error = %e, "could not open a savepoint");
        return None;
    }
    let done = match catch_unwind(AssertUnwindSafe(|| write(conn))) {
        Ok(done) => {
            if !done.succeeded {
                rollback_savepoint(conn);
            }
            Some(done)
        }
        Err(_) => {
            tracing::error!("a write panicked; its changes were rolled back");
            rollback_savepoint(conn);
            None
        }
    };
    if let Err(e) = run_statement(conn, "RELEASE write") {
        tracing::error!(error = %e, "could not release a savepoint");
    }
    done
}

/// One of the batch's own statements (BEGIN, SAVEPOINT, RELEASE, COMMIT), prepared once
/// rather than parsed again for every write.
fn run_statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn rollback_savepoint(conn: &Connection) {
    if let Err(e) = run_statement(conn, "ROLLBACK TO write") {
        tracing::error!(error = %e, "could not roll back a savepoint");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer_on(dir: &tempfile::TempDir) -> (Arc<Writer>, std::path::PathBuf) {
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (k TEXT PRIMARY KEY);")
            .expect("schema");
        (
            Arc::new(
                Writer::start(
                    conn,
                    64,
                    CheckpointPolicy::default(),
                    Duration::from_secs(5),
                )
                .expect("start"),
            ),
            path,
        )
    }

    fn insert(w: &Writer, k: &str) -> Result<(), StoreError> {
        let k = k.to_owned();
        w.write(move |c| {
            c.execute("INSERT INTO t (k) VALUES (?1)", [&k])?;
            Ok(())
        })
    }

    fn keys(path: &std::path::Path) -> Vec<String> {
        let c = Connection::open(path).expect("open");
        let mut stmt = c.prepare("SELECT k FROM t ORDER BY k").expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    fn count(path: &std::path::Path) -> i64 {
        let c = Connection::open(path).expect("open");
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn a_failing_write_rolls_back_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = writer_on(&dir);
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let w = Arc::clone(&w);
                // Every fourth writer repeats a key and must fail; the rest must land.
                thread::spawn(move || {
                    insert(&w, &format!("k{}", if i % 4 == 3 { i - 1 } else { i }))
                })
            })
            .collect();
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("join"))
            .collect();
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok as i64, count(&path));
        assert_eq!(ok, 24);
    }

    #[test]
    fn writes_waiting_together_share_one_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = writer_on(&dir);
        // The first write holds the writer while ten more queue up behind it.
        let slow = {
            let w = Arc::clone(&w);
            thread::spawn(move || {
                w.write(|c| {
                    thread::sleep(std::time::Duration::from_millis(600));
                    c.execute("INSERT INTO t (k) VALUES ('slow')", [])?;
                    Ok(())
                })
            })
        };
        thread::sleep(std::time::Duration::from_millis(50));
        let queued: Vec<_> = (0..10)
            .map(|i| {
                let w = Arc::clone(&w);
                thread::spawn(move || insert(&w, &format!("q{i}")))
            })
            .collect();
        slow.join().expect("join").expect("slow write");
        for q in queued {
            q.join().expect("join").expect("queued write");
        }
        assert_eq!(count(&path), 11);
        assert_eq!(w.stats().writes.load(Ordering::Relaxed), 11);
        assert_eq!(
            w.stats().batches.load(Ordering::Relaxed),
            2,
            "ten queued writes, one commit"
        );
    }

    #[test]
    fn a_panicking_write_fails_only_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = writer_on(&dir);
        let r: Result<(), StoreError> = w.write(|c| {
            c.execute("INSERT INTO t (k) VALUES ('half')", [])?;
            panic!("boom")
        });
        assert!(matches!(r, Err(StoreError::WriterGone)));
        insert(&w, "after").expect("writer still serves");
        assert_eq!(count(&path), 1);
    }

    /// Holds the writer for a while, so that what is queued meanwhile shares one batch.
    fn hold(w: &Arc<Writer>) -> thread::JoinHandle<Result<(), StoreError>> {
        let w = Arc::clone(w);
        let held = thread::spawn(move || {
            w.write(|_| {
                thread::sleep(Duration::from_millis(400));
                Ok(())
            })
        });
        thread::sleep(Duration::from_millis(50));
        held
    }

    fn insert_checked(w: &Writer, k: &str) -> PendingWrite<()> {
        let k = k.to_owned();
        w.queue(Guard::ChecksFirst, move |c| {
            c.execute("INSERT INTO t (k) VALUES (?1)", [&k])?;
            Ok(())
        })
    }

    #[test]
    fn a_write_refused_before_its_first_change_fails_alone_without_a_savepoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = writer_on(&dir);
        let held = hold(&w);
        let queued: Vec<_> = ["a", "b", "a", "c"]
            .iter()
            .map(|k| insert_checked(&w, k))
            .collect();
        held.join().expect("join").expect("held");
        let results: Vec<_> = queued.into_iter().map(PendingWrite::wait).collect();
        assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
        assert!(
            matches!(results[2], Err(StoreError::Sqlite(_))),
            "{results:?}"
        );
        assert_eq!(count(&path), 3);
        assert_eq!(
            w.stats().batches.load(Ordering::Relaxed),
            2,
            "one batch after the held one"
        );
    }

    #[test]
    fn a_write_failing_after_its_first_change_takes_its_batch_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = writer_on(&dir);
        let held = hold(&w);
        let before = insert_checked(&w, "before");
        let half: PendingWrite<()> = w.queue(Guard::ChecksFirst, |c| {
            c.execute("INSERT INTO t (k) VALUES ('half')", [])?;
            Err(StoreError::Corrupt("failed after a change".into()))
        });
        let panicked: PendingWrite<()> = w.queue(Guard::ChecksFirst, |c| {
            c.execute("INSERT INTO t (k) VALUES ('half-then-panic')", [])?;
            panic!("boom")
        });
        let after = insert_checked(&w, "after");
        held.join().expect("join").expect("held");
        assert!(
            matches!(before.wait(), Err(StoreError::Commit(_))),
            "told it was not committed"
        );
        assert!(
            matches!(half.wait(), Err(StoreError::Corrupt(_))),
            "its own error"
        );
        assert!(matches!(panicked.wait(), Err(StoreError::WriterGone)));
        after
            .wait()
            .expect("a write after them commits in a transaction of its own");
        assert_eq!(
            keys(&path),
            ["after"],
            "no part of a failed write, nor of its batch, is kept"
        );
    }

    /// SQLite ends a transaction itself on some errors (a full disk); here a write ends it.
    /// Under either guard the writes before it are told they were not committed, and the
    /// writes after it are not committed statement by statement but in a new transaction.
    #[test]
    fn a_transaction_ended_under_the_writer_takes_its_batch_back() {
        for guard in [Guard::Savepoint, Guard::ChecksFirst] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (w, path) = writer_on(&dir);
            let held = hold(&w);
            let before = insert_checked(&w, "before");
            let ender: PendingWrite<()> = w.queue(guard, |c| {
                c.execute("INSERT INTO t (k) VALUES ('ender')", [])?;
                c.execute_batch("ROLLBACK")?;
                Ok(())
            });
            let after: PendingWrite<()> = w.queue(Guard::ChecksFirst, |c| {
                c.execute("INSERT INTO t (k) VALUES ('after')", [])?;
                c.execute("INSERT INTO t (k) VALUES ('after')", [])?;
                Ok(())
            });
            let last = insert_checked(&w, "last");
            held.join().expect("join").expect("held");
            assert!(
                matches!(before.wait(), Err(StoreError::Commit(_))),
                "{guard:?}"
            );
            assert!(
                matches!(ender.wait(), Err(StoreError::Commit(_))),
                "{guard:?}"
            );
            assert!(after.wait().is_err(), "{guard:?}: it failed half-way");
            last.wait().expect("the last write lands");
            assert_eq!(
                keys(&path),
                ["last"],
                "{guard:?}: nothing of the others, no half write"
            );
        }
    }
}
