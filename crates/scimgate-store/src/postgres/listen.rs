//! Wakes this instance's feed consumers when any instance commits a write: a connection of
//! its own listens on the install's channel (`outbox::CHANNEL`) (each write notifies it in its transaction, so the
//! notice comes with the commit), and counts a commit for each notice. Reconnects while
//! the database is away, and counts one on return, as commits may have been missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::outbox::CHANNEL;
use crate::commits::Commits;

pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    pub fn start(
        config: postgres::Config,
        tls: MakeRustlsConnect,
        commits: Arc<Commits>,
    ) -> std::io::Result<Listener> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pg-listen".into())
            .spawn(move || run(&config, &tls, &commits, &flag))?;
        Ok(Listener {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(config: &postgres::Config, tls: &MakeRustlsConnect, commits: &Commits, stop: &AtomicBool) {
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        match listen(config, tls, commits, stop) {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "listening for other instances' commits failed; trying again");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                commits.bump();
            }
        }
    }
}

fn listen(
    config: &postgres::Config,
    tls: &MakeRustlsConnect,
    commits: &Commits,
    stop: &AtomicBool,
) -> Result<(), postgres::Error> {
    let mut client = config.connect(tls.clone())?;
    let channel: String = client.query_one(&format!("SELECT {CHANNEL}"), &[])?.get(0);
    client.batch_execute(&format!("LISTEN \"{channel}\""))?;
    while !stop.load(Ordering::Relaxed) {
        // Wakes at least every 50 ms to look at `stop` (a store closing waits for it).
        let mut notes = client.notifications();
        let mut notes = notes.timeout_iter(Duration::from_millis(50));
        while !stop.load(Ordering::Relaxed) && notes.next()?.is_some() {
            commits.bump();
        }
    }
    Ok(())
}
