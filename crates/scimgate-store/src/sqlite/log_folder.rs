//! Folds the write-ahead log into the database file beside the writer, on a connection
//! of its own, so that the single writer only writes. Left to SQLite, the commit that
//! takes the log past its threshold copies every page in it into the file and syncs the
//! file before that commit's callers are answered: a share of the writer's time and
//! every write's tail latency. Here a passive fold runs every few milliseconds: it copies
//! what no reader still needs and never waits for anyone, and once the whole log is in
//! the file the writer's next commit starts the log again from its beginning.

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::error::StoreError;

use super::connection;

/// How often the log is folded while writes arrive.
const EVERY: Duration = Duration::from_millis(50);

pub struct LogFolder {
    /// Dropped to stop the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl LogFolder {
    pub fn start(path: &Path, busy: Duration) -> Result<Self, StoreError> {
        let conn = connection::open_read_write(path, busy)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("scimgate-log-fold".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    let folded = conn
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
                    if let Err(e) = folded {
                        tracing::warn!(error = %e, "folding the write-ahead log failed");
                    }
                }
            })?;
        Ok(LogFolder {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for LogFolder {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
