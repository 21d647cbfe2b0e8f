//! Open files: the soft `RLIMIT_NOFILE` raised to the hard limit at start, the connection
//! cap derived from it (leaving room for the database, plugins and logs), and a warning
//! while open connections are near that cap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scimgate_http::Connections;
use scimgate_limits::Periodic;

/// Files the server keeps open besides client connections: the database (file, WAL and
/// shared memory per connection), plugin code, the log, listeners and the event loop.
pub fn reserved(read_connections: u32) -> u64 {
    64 + 3 * (u64::from(read_connections) + 2)
}

/// The connection cap in force: at most `configured` per worker, and no more in all than
/// the open-files limit leaves after `reserve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCap {
    pub per_worker: usize,
    pub workers: usize,
    /// The soft open-files limit after raising it.
    pub open_files: u64,
}

impl ConnectionCap {
    pub fn total(&self) -> usize {
        self.per_worker * self.workers
    }
}

/// Raises the soft limit as far as the hard limit allows, then sizes the cap.
pub fn raise_and_cap(configured: usize, workers: usize, reserve: u64) -> ConnectionCap {
    let open_files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
            rlimit::Resource::NOFILE
                .get()
                .map_or(1024, |(soft, _)| soft)
        }
    };
    cap(configured, workers, reserve, open_files)
}

pub fn cap(configured: usize, workers: usize, reserve: u64, open_files: u64) -> ConnectionCap {
    let workers = workers.max(1);
    let room = open_files.saturating_sub(reserve).max(workers as u64);
    let per_worker = usize::try_from(room / workers as u64)
        .unwrap_or(usize::MAX)
        .clamp(1, configured.max(1));
    ConnectionCap {
        per_worker,
        workers,
        open_files,
    }
}

/// Looks at the open connections every second and warns, at most once a minute, while
/// they are near the cap: answers then close their connections, and at the cap new ones
/// wait in the listen queue until others close. It runs until the handle is dropped.
pub fn watch(connections: Arc<Connections>) -> Option<Periodic> {
    let mut last_warning: Option<Instant> = None;
    let watch = Periodic::start("scimgate-connections", Duration::from_secs(1), move || {
        if connections.near_cap()
            && last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            tracing::warn!(
                open_connections = connections.open(),
                connection_cap = connections.cap(),
                "near the connection cap: answers close their connections"
            );
            last_warning = Some(Instant::now());
        }
    });
    match watch {
        Ok(watch) => Some(watch),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the connection watch");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_the_reserve_free() {
        // 256 open files, 2 workers, 94 reserved: 81 connections per worker, not 10,000.
        assert_eq!(cap(10_000, 2, 94, 256).per_worker, 81);
        // A generous limit leaves the configured cap as it is.
        assert_eq!(cap(10_000, 2, 94, 1 << 20).per_worker, 10_000);
        // Never zero.
        assert_eq!(cap(10_000, 4, 500, 100).per_worker, 1);
    }
}
