//! The PostgreSQL backend, for installs that outgrow one machine: several scimgate
//! instances on one database (docs/architecture.md, "PostgreSQL"). Built in steps (issue
//! 15); what exists so far: connecting, with retries while the database is unreachable,
//! and the versioned, forward-only migrations, applied under an advisory lock so that
//! instances starting together do not race. The `Store` implementation comes next; until
//! it exists the server does not offer `--database`.

mod migrations;

use std::time::Duration;

pub use migrations::{LATEST, migrate};

use crate::error::StoreError;

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
    let config: postgres::Config = url.parse().map_err(|e| {
        StoreError::Unreachable(format!("the database address does not parse: {e}"))
    })?;
    let mut wait = retry.first_wait;
    let mut attempt = 1;
    loop {
        match config.connect(postgres::NoTls) {
            Ok(client) => return Ok(client),
            Err(e) if attempt < retry.attempts.max(1) => {
                tracing::warn!(
                    attempt,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %e,
                    "the database does not answer yet; trying again"
                );
                std::thread::sleep(wait);
                wait = (wait * 2).min(retry.max_wait);
                attempt += 1;
            }
            Err(e) => {
                return Err(StoreError::Unreachable(format!(
                    "no answer from the database after {attempt} tries: {e}"
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests;
