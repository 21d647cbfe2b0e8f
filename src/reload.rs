//! Plugin reload without restart. On SIGHUP, and when the configuration file or a plugin
//! file changes, the configuration is read again and its `[[plugins]]` are loaded beside
//! the running set; only a set that loads whole replaces it. Writes already running
//! finish on the set they started with.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, SystemTime};

use scimgate_http::PluginHook;

use crate::config::{Config, FlagOverrides};

/// Where the configuration comes from, so that it can be read again the same way.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub flags: FlagOverrides,
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config, Box<figment::Error>> {
        Config::load(self.file.as_deref(), &self.flags)
    }
}

/// Why a reload was asked for, for the log.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    Signal,
    FileChange,
}

pub struct PluginReloader {
    source: ConfigSource,
    /// The configuration the server runs with; only its plugins change on reload.
    running: Config,
    hook: Arc<PluginHook>,
}

/// The size and modification time of each watched file (`None` when it is missing).
type Fingerprint = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

impl PluginReloader {
    pub fn new(source: ConfigSource, running: Config, hook: Arc<PluginHook>) -> Self {
        PluginReloader {
            source,
            running,
            hook,
        }
    }

    /// Reads the configuration again, as at start.
    fn read(&self) -> Result<Config, String> {
        self.source
            .load()
            .map_err(|e| format!("configuration: {e}"))
    }

    /// Loads `config`'s plugins beside the running set and swaps them in if all load; on
    /// any error the running set stays and the error is returned (the caller logs it).
    fn apply(&self, config: &Config) -> Result<usize, String> {
        let host = crate::load_plugins(config).map_err(|e| e.to_string())?;
        let count = host.specs().count();
        let without_plugins = |c: &Config| {
            let mut c = c.clone();
            c.plugins.specs.clear();
            c
        };
        let unchanged_rest = without_plugins(config) == without_plugins(&self.running);
        if !unchanged_rest {
            tracing::warn!(
                "the configuration changed beyond [[plugins]]; only plugins reload, the rest needs a restart"
            );
        }
        self.hook.swap(Arc::new(host));
        Ok(count)
    }

    /// Starts the reload thread: it reloads on each message sent to the returned sender
    /// (SIGHUP) and, when `poll` is given, when a watched file changes.
    pub fn spawn(
        self,
        poll: Option<Duration>,
    ) -> std::io::Result<(Sender<Trigger>, thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel();
        let handle = thread::Builder::new()
            .name("scimgate-plugin-reload".into())
            .spawn(move || {
                let mut watched = self.watched(&self.running);
                let mut seen = fingerprint(&watched);
                loop {
                    let trigger = match poll {
                        Some(every) => match rx.recv_timeout(every) {
                            Ok(t) => t,
                            Err(RecvTimeoutError::Timeout) => {
                                let now = fingerprint(&watched);
                                if now == seen {
                                    continue;
                                }
                                Trigger::FileChange
                            }
                            Err(RecvTimeoutError::Disconnected) => return,
                        },
                        None => match rx.recv() {
                            Ok(t) => t,
                            Err(_) => return,
                        },
                    };
                    // Watch what the configuration now names, even when its plugins fail
                    // to load, so that fixing a file triggers the next attempt.
                    let outcome = self.read().and_then(|config| {
                        watched = self.watched(&config);
                        self.apply(&config)
                    });
                    match outcome {
                        Ok(count) => {
                            tracing::info!(?trigger, plugins = count, "plugins reloaded")
                        }
                        Err(e) => tracing::error!(
                            ?trigger,
                            error = %e,
                            "plugin reload refused; the running plugins keep serving"
                        ),
                    }
                    seen = fingerprint(&watched);
                }
            })?;
        Ok((tx, handle))
    }

    fn watched(&self, config: &Config) -> Vec<PathBuf> {
        self.source
            .file
            .iter()
            .cloned()
            .chain(config.plugins.specs.iter().map(|p| p.file.clone()))
            .collect()
    }
}

fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok();
            let stamp = meta.and_then(|m| Some((m.modified().ok()?, m.len())));
            (f.clone(), stamp)
        })
        .collect()
}
