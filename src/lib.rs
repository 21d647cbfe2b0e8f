//! The scimgate binary's library half: configuration and the wiring of store, key and app.
//! `main` and the integration tests both build the server through [`build_state`].

pub mod config;
pub mod data_dir;
pub mod deployment;
pub mod import;
pub mod open_files;
pub mod reload;
pub mod schemas;

use std::sync::{Arc, Weak};

use actix_web::web;
use scimgate_events::{Feed, FeedKey, Receiver};
use scimgate_http::{
    AccessCache, Admission, AppState, Connections, FeedWatch, HttpSettings, KeyRing, Metrics,
    Passwords, PluginHook, RateLimits, SigningKey, WritePipeline,
};
use scimgate_limits::Periodic;
use scimgate_model::{Clock, SystemClock};
use scimgate_plugins::{PluginHost, PluginLoadError};
use scimgate_store::{EventHold, PgOptions, PgStore, SqliteOptions, SqliteStore, StoreError};

pub use config::Config;

/// The database file inside the data folder.
pub const DATABASE_FILE: &str = "scimgate.db";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data folder {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error("signing key: {0}")]
    Key(std::io::Error),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Plugins(#[from] PluginLoadError),
}

/// The application state, the handle through which its plugins are reloaded, and the
/// background work that runs as long as the server: dropping it stops that work.
pub struct Built {
    pub state: web::Data<AppState>,
    pub plugins: Arc<PluginHook>,
    pub background: Vec<Periodic>,
    /// The change feed's receivers, each delivering on its own thread until dropped.
    pub receivers: Vec<scimgate_events::Receiver>,
}

/// Opens the data folder (creating it, the signing key and the database on first start)
/// and builds the shared application state.
/// (For tests: the background work stops with the call.)
pub fn build_state(config: &Config) -> Result<web::Data<AppState>, StartError> {
    Ok(build(config, Arc::new(SystemClock))?.state)
}

/// Deletes audit rows and delivered events past their retention, now and every hour,
/// until the returned handle is dropped (`None` when both are kept for ever).
fn prune_periodically(
    store: &Arc<dyn scimgate_store::Store>,
    config: &Config,
) -> Result<Option<Periodic>, StartError> {
    let (audit_days, events_days) = (
        config.store.audit_retention_days,
        config.store.events_retention_days,
    );
    if audit_days == 0 && events_days == 0 {
        return Ok(None);
    }
    let holds: Vec<EventHold> = config
        .events
        .receivers
        .iter()
        .map(|r| EventHold {
            consumer: scimgate_events::consumer_name(&r.name),
            tenants: (!r.tenants.iter().any(|t| t == "*")).then(|| r.tenants.clone()),
        })
        .collect();
    let cutoff = |days: u32| {
        let at = SystemClock.now() - time::Duration::days(i64::from(days));
        scimgate_model::clock::format_timestamp(at)
    };
    let prune = move |store: &dyn scimgate_store::Store| {
        if audit_days > 0 {
            match store.prune_audit(&cutoff(audit_days)) {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, audit_days, "audit rows past retention deleted"),
                Err(e) => tracing::warn!(error = %e, "cannot prune the audit trail"),
            }
        }
        if events_days > 0 {
            match store.prune_events(&cutoff(events_days), &holds) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    events = n,
                    events_days,
                    "delivered events past retention deleted"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot prune the change feed"),
            }
        }
    };
    // The first pruning runs on the thread too: a long-expired trail after a long stop
    // must not hold the server's start.
    let weak: Weak<dyn scimgate_store::Store> = Arc::downgrade(store);
    let hourly = Periodic::spawn("scimgate-retention", move |stop| {
        loop {
            match weak.upgrade() {
                Some(store) => prune(store.as_ref()),
                None => return,
            }
            if stop.sleep(std::time::Duration::from_secs(3600)) {
                return;
            }
        }
    })
    .map_err(|e| StartError::Thread("retention", e))?;
    Ok(Some(hourly))
}

/// Validates and compiles the configured plugins (compiled code cached in the data folder).
pub fn load_plugins(config: &Config) -> Result<PluginHost, PluginLoadError> {
    let cache = config.data.join("plugin-cache");
    Ok(
        PluginHost::load_cached(config.plugins.specs.clone(), Some(&cache))?.with_instance_share(
            config.plugins.plugin_instances_per_tenant,
            config.overload_wait(),
        ),
    )
}

/// The store `config` names: a PostgreSQL database, else the SQLite file in the data
/// folder (created private on first start).
fn open_store(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn scimgate_store::Store>, StartError> {
    let overload_wait = config.overload_wait();
    let Some(options) = pg_options(config)? else {
        data_dir::create_private_file(&config.data.join(DATABASE_FILE))
            .map_err(|e| StartError::DataDir(config.data.display().to_string(), e))?;
        let options = SqliteOptions::configured(
            config.data.join(DATABASE_FILE),
            &config.store,
            overload_wait,
        );
        return Ok(Arc::new(SqliteStore::open(&options, clock)?));
    };
    Ok(Arc::new(PgStore::open(&options, clock)?))
}

/// The PostgreSQL database `config` names, with its password read from
/// `database_password_file`; `None` for the SQLite file.
pub fn pg_options(config: &Config) -> Result<Option<PgOptions>, StartError> {
    let Some(url) = &config.database else {
        return Ok(None);
    };
    let mut options = PgOptions::configured(url, &config.store, config.overload_wait());
    options.tls = scimgate_store::TlsFiles {
        ca_file: config.database_ca_file.clone(),
        client_cert: config.database_client_cert.clone(),
        client_key: config.database_client_key.clone(),
    };
    if let Some(file) = &config.database_password_file {
        options.password = Some(std::fs::read_to_string(file).map_err(|e| {
            StartError::Config(format!(
                "cannot read database_password_file {}: {e}",
                file.display()
            ))
        })?);
    }
    Ok(Some(options))
}

pub fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<Built, StartError> {
    let data_err = |e| StartError::DataDir(config.data.display().to_string(), e);
    data_dir::create_private(&config.data).map_err(data_err)?;
    data_dir::warn_if_shared(&config.data);
    let signing_key = Arc::new(SigningKey::load_or_create(&config.data).map_err(StartError::Key)?);
    check_receivers(config)?;
    let feed_key = FeedKey::load_or_create(&config.data)
        .map(Arc::new)
        .map_err(|e| StartError::Config(e.to_string()))?;
    let keys = KeyRing::load(&signing_key, &config.http.auth).map_err(StartError::Config)?;
    let overload_wait = config.overload_wait();
    let store = open_store(config, clock.clone())?;
    // Plugins are validated and compiled now: a bad module stops the start, named. The
    // hook is installed even with no plugins, so that a reload can add some.
    let host = load_plugins(config)?;
    if !host.is_empty() {
        tracing::info!(plugins = host.specs().count(), "plugins loaded");
    }
    // The operator's schemas: a bad file stops the start, named, as a bad plugin does.
    // Checked against the set the stored values were written under, as on reload.
    schemas::restore(store.as_ref()).map_err(StartError::Config)?;
    if !config.schemas.is_empty() || !scimgate_model::registry::current().operator().is_empty() {
        let next = schemas::load(&config.schemas).map_err(StartError::Config)?;
        let done = schemas::apply(store.as_ref(), next, config.schema_removal)
            .map_err(StartError::Config)?;
        tracing::info!("{done}");
    }
    let metrics = Arc::new(Metrics::new());
    let access = AccessCache::start(&store)?;
    let background: Vec<Periodic> = prune_periodically(&store, config)?.into_iter().collect();
    let feed_watch = FeedWatch::new(&store);
    let plugins = Arc::new(PluginHook::new(Arc::new(host), Arc::clone(&metrics)));
    let write_hooks: Vec<Arc<dyn scimgate_http::WriteHook>> = vec![plugins.clone()];
    let fingerprint = Arc::new(arc_swap::ArcSwap::from_pointee(deployment::fingerprint(
        &plugins,
    )));
    let mut background = background;
    background.push(
        deployment::publish_periodically(&store, plugins.clone(), Arc::clone(&fingerprint))
            .map_err(|e| StartError::Thread("fingerprint", e))?,
    );
    let tenants = config.tenant_policies().map_err(StartError::Config)?;
    let limits = RateLimits::new(
        &config.http.rate_limit,
        &tenants
            .iter()
            .filter_map(|(name, policy)| Some((name.clone(), policy.rate_limit?)))
            .collect(),
    );
    let mut settings = HttpSettings::new(&config.http, tenants).map_err(StartError::Config)?;
    settings.advertise_security_events = config.events.advertise;
    let settings = Arc::new(settings);
    let passwords = Passwords::new(
        config.http.password_storage,
        config.http.hashing_slots(),
        overload_wait,
    );
    let writes = WritePipeline::new(store.clone(), write_hooks, passwords, settings.clone());
    let feed = Feed {
        store: Arc::clone(&store),
        key: feed_key,
        issuer: config
            .events
            .issuer
            .clone()
            .or_else(|| config.http.public_base_url.clone())
            .unwrap_or_else(|| "scimgate".into()),
        base_url: config
            .http
            .public_base_url
            .as_ref()
            .map(|base| format!("{}/scim/v2", base.trim_end_matches('/'))),
        hook: Some(plugins.clone() as Arc<dyn scimgate_events::EventHook>),
        clock: Arc::clone(&clock),
    };
    let receivers = config
        .events
        .receivers
        .iter()
        .map(|r| Receiver::start(feed.clone(), r.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let state = web::Data::new(AppState {
        minter: Arc::clone(&signing_key),
        assertions: Default::default(),
        store,
        keys,
        access,
        settings,
        writes,
        admission: Admission::new(
            config.http.max_requests_in_flight,
            config.http.tenant_request_share(),
            overload_wait,
        ),
        parsing: {
            let cores = std::thread::available_parallelism().map_or(2, usize::from);
            scimgate_limits::FairSlots::new(
                "request parsing",
                cores,
                scimgate_limits::FairSlots::share_leaving(cores, 1),
                overload_wait,
            )
        },
        connections: Connections::new(),
        at_once: Default::default(),
        cursors: signing_key.cursor_key(),
        feed: feed.clone(),
        feed_watch: Arc::new(feed_watch),
        fingerprint,
        console: Default::default(),
        receivers: receivers.iter().map(|r| Arc::clone(&r.stats)).collect(),
        clock: Arc::clone(&clock),
        metrics,
        limits,
    });

    // The admin page's administration handle: the CLI's own calls, on a connection of
    // its own (SQLite) or the database the instances share.
    let admin: Box<dyn scimgate_store::Admin + Send> = match pg_options(config)? {
        Some(options) => Box::new(scimgate_store::PgAdmin::open(&options)?),
        None => Box::new(scimgate_store::AdminDb::open(
            &config.data.join(DATABASE_FILE),
        )?),
    };
    state.console.set_admin(admin);
    state.console.set_plugins(Arc::clone(&plugins));
    Ok(Built {
        state,
        plugins,
        background,
        receivers,
    })
}

/// The receivers must be able to deliver, and none may point at this server itself: its
/// events would be writes of their own, in a loop.
/// The checks of the configuration the server's start makes before it opens anything
/// (receivers, tenants, HTTP settings): what `scimgate doctor` runs too.
pub fn check_settings(config: &Config) -> Result<(), StartError> {
    check_receivers(config)?;
    let tenants = config.tenant_policies().map_err(StartError::Config)?;
    HttpSettings::new(&config.http, tenants).map_err(StartError::Config)?;
    Ok(())
}

fn check_receivers(config: &Config) -> Result<(), StartError> {
    config
        .events
        .check()
        .map_err(|e| StartError::Config(e.to_string()))?;
    for r in &config.events.receivers {
        if points_at_itself(&r.url, config) {
            return Err(StartError::Config(format!(
                "events.receivers '{}': url '{}' is this server itself",
                r.name, r.url
            )));
        }
    }
    Ok(())
}

/// Whether `url` reaches this server: under its public base URL (same origin, its path
/// or below), or its listening port on an address that is this machine's loopback or the
/// address it listens on, however the host is spelled (names and numeric forms are
/// resolved: `localhost.`, `127.1`, `[::ffff:127.0.0.1]`). (An address of this machine
/// that only the network knows as such is not seen.)
fn points_at_itself(url: &str, config: &Config) -> bool {
    let Ok(uri) = url.parse::<actix_web::http::Uri>() else {
        return false;
    };
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let port = uri.port_u16().unwrap_or(default_port);
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    if let Some(base) = config
        .http
        .public_base_url
        .as_deref()
        .and_then(|b| b.parse::<actix_web::http::Uri>().ok())
    {
        let base_port = base
            .port_u16()
            .unwrap_or(if base.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let base_path = base.path().trim_end_matches('/');
        if base.scheme_str() == uri.scheme_str()
            && base.host().is_some_and(|h| h.eq_ignore_ascii_case(host))
            && base_port == port
            && (uri.path() == base_path
                || uri.path().starts_with(&format!("{base_path}/"))
                || base_path.is_empty())
        {
            return true;
        }
    }
    let Some(listen) = config.listen.parse::<std::net::SocketAddr>().ok() else {
        return false;
    };
    if port != listen.port() {
        return false;
    }
    let local = |ip: std::net::IpAddr| {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        ip.is_loopback() || ip.is_unspecified() || ip == listen.ip()
    };
    use std::net::ToSocketAddrs;
    match (host, port).to_socket_addrs() {
        Ok(addrs) => addrs.map(|a| a.ip()).any(local),
        // A name that does not resolve now cannot be told apart; `localhost` and its
        // subdomains always mean this machine.
        Err(_) => {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            host == "localhost" || host.ends_with(".localhost")
        }
    }
}
