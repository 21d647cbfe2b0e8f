//! Plugin and schema reload without restart. On SIGHUP, and when the configuration file,
//! a plugin file or a schema file changes, the configuration is read again, its
//! `[[schemas]]` put in force when they changed and check out (`schemas`), and its
//! `[[plugins]]` loaded beside the running set; only a set that loads whole replaces it.
//! Writes already running finish on the plugin set they started with.

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
    /// The configuration the server runs with; only its plugins and schemas change on
    /// reload.
    running: Config,
    hook: Arc<PluginHook>,
    store: Arc<dyn scimgate_store::Store>,
}

/// The size and modification time of each watched file (`None` when it is missing).
type Fingerprint = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

impl PluginReloader {
    pub fn new(
        source: ConfigSource,
        running: Config,
        hook: Arc<PluginHook>,
        store: Arc<dyn scimgate_store::Store>,
    ) -> Self {
        PluginReloader {
            source,
            running,
            hook,
            store,
        }
    }

    /// Loads `config`'s schemas and puts them in force when they differ from the running
    /// ones, first, so that plugins of the same reload may write to a new extension. A set
    /// that fails leaves the running one, and is logged naming the file, attribute and rule.
    fn apply_schemas(&self, config: &Config, trigger: Trigger) {
        let outcome = crate::schemas::load(&config.schemas).and_then(|next| {
            crate::schemas::apply(self.store.as_ref(), next, config.schema_removal)
        });
        match outcome {
            Ok(done) => tracing::info!(?trigger, "schemas reloaded: {done}"),
            Err(e) => tracing::error!(
                ?trigger,
                error = %e,
                "schema reload refused; the running schemas keep serving"
            ),
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
            c.schemas.clear();
            c.schema_removal = Default::default();
            c
        };
        let unchanged_rest = without_plugins(config) == without_plugins(&self.running);
        if !unchanged_rest {
            tracing::warn!(
                "the configuration changed beyond [[plugins]] and [[schemas]]; only those reload, the rest needs a restart"
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
                        self.apply_schemas(&config, trigger);
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
            .chain(config.schemas.iter().map(|s| s.file.clone()))
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
