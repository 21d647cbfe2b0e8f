//! What a request hands storage without waiting for it (audit rows, feed consumers'
//! positions): queued, and written by one background thread in batches, one transaction
//! each. While the database is away the batch is kept and tried again, so a short outage
//! loses none of it.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{WriteCounts, audit, outbox};
use crate::commits::Commits;
use crate::error::StoreError;
use crate::records::{AuditRecord, EventPosition};

use super::pool::Pool;

/// One queued row.
pub enum Queued {
    Audit(AuditRecord),
    /// A consumer's position: forward only, or as given (`reset`).
    Position {
        position: EventPosition,
        reset: bool,
    },
    /// Answered once everything queued before it is committed.
    Flush(mpsc::Sender<Result<(), String>>),
    Stop,
}

/// Most rows one batch commits.
const BATCH: usize = 512;

pub struct Queue {
    sender: Mutex<mpsc::Sender<Queued>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Queue {
    pub fn start(
        pool: Pool,
        commits: Arc<Commits>,
        counts: Arc<WriteCounts>,
    ) -> Result<Queue, StoreError> {
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("pg-queue".into())
            .spawn(move || run(&pool, &commits, &counts, &receiver))?;
        Ok(Queue {
            sender: Mutex::new(sender),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn push(&self, row: Queued) {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sender.send(row).is_err() {
            tracing::error!("the queue's writer is gone; a queued row is lost");
        }
    }

    /// Returns once everything queued so far is committed.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (answer, done) = mpsc::channel();
        self.push(Queued::Flush(answer));
        match done.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Unreachable(e)),
            Err(_) => Err(StoreError::WriterGone),
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.push(Queued::Stop);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn run(pool: &Pool, commits: &Commits, counts: &WriteCounts, receiver: &mpsc::Receiver<Queued>) {
    let mut rows = Vec::new();
    let mut waiting: Vec<mpsc::Sender<Result<(), String>>> = Vec::new();
    let mut stopping = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        if rows.is_empty() && waiting.is_empty() {
            if stopping {
                return;
            }
            match receiver.recv() {
                Ok(first) => take(first, &mut rows, &mut waiting, &mut stopping),
                Err(_) => return,
            }
        }
        while rows.len() < BATCH {
            match receiver.try_recv() {
                Ok(next) => take(next, &mut rows, &mut waiting, &mut stopping),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        match write(pool, &rows) {
            Ok(()) => {
                if !rows.is_empty() {
                    counts.committed(rows.len() as u64, started.elapsed());
                    commits.bump();
                }
                rows.clear();
                for w in waiting.drain(..) {
                    let _ = w.send(Ok(()));
                }
                backoff = Duration::from_millis(100);
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = rows.len(), "queued rows not written yet; trying again");
                for w in waiting.drain(..) {
                    let _ = w.send(Err(e.to_string()));
                }
                if stopping {
                    tracing::error!(rows = rows.len(), "stopping with queued rows unwritten");
                    return;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn take(
    row: Queued,
    rows: &mut Vec<Queued>,
    waiting: &mut Vec<mpsc::Sender<Result<(), String>>>,
    stopping: &mut bool,
) {
    match row {
        Queued::Flush(answer) => waiting.push(answer),
        Queued::Stop => *stopping = true,
        row => rows.push(row),
    }
}

fn write(pool: &Pool, rows: &[Queued]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut conn = pool
        .get()
        .map_err(|e| StoreError::Unreachable(e.to_string()))?;
    let mut tx = conn.transaction()?;
    // Audit rows take their tenant's audit lock (`audit::append`): taken in tenant order,
    // so that two instances' batches never wait on each other in a circle.
    let mut ordered: Vec<&Queued> = rows.iter().collect();
    ordered.sort_by_key(|row| match row {
        Queued::Audit(record) => Some(record.tenant.as_str()),
        _ => None,
    });
    for row in ordered {
        match row {
            Queued::Audit(record) => audit::append(&mut tx, record)?,
            Queued::Position { position, reset } => {
                outbox::save_position(&mut tx, position, *reset)?
            }
            Queued::Flush(_) | Queued::Stop => {}
        }
    }
    tx.commit()?;
    Ok(())
}
