//! `scimgate`: serve SCIM 2.0, mint tokens, and answer Docker's health check.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use scimgate::config::{FlagOverrides, LogFormat};
use scimgate::reload::{ConfigSource, PluginReloader, Trigger};
use scimgate::{Config, build};
use scimgate_http::{SigningKey, TokenRequest, build_app};
use scimgate_model::SystemClock;
use scimgate_store::{AdminDb, AuditQuery, RemoveOutcome, TokenRecord};
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "scimgate",
    version,
    about = "A single-binary SCIM 2.0 service provider"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the SCIM server.
    Serve(ServeArgs),
    /// Mint a signed bearer token for an IdP or a script; list or revoke tokens.
    Token(TokenCli),
    /// Add, list or remove tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Read the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Exit 0 when the server at --url answers /healthz (for Docker's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
    /// Check or try out a WebAssembly plugin.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Validate a plugin: it compiles, exports ABI version 1, imports nothing else.
    Check { file: PathBuf },
    /// Run one call locally on the resource read from stdin; print the decision and the time.
    Run {
        file: PathBuf,
        /// create, replace or patch.
        #[arg(long, default_value = "create")]
        hook: String,
        /// The plugin's configuration, as JSON.
        #[arg(long, default_value = "{}")]
        config: String,
        /// User or Group.
        #[arg(long, default_value = "User")]
        resource_type: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "SCIMGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Data folder [default: ./scimgate-data].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Public base URL used in meta.location, e.g. https://scim.example.com.
    #[arg(long)]
    public_base_url: Option<String>,
}

/// Where the data folder is, for the commands that work on it beside a running server.
#[derive(Debug, Args)]
struct DataArgs {
    /// TOML configuration file (for the data folder).
    #[arg(long, env = "SCIMGATE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data folder holding the signing key and the database [default: ./scimgate-data].
    #[arg(long, global = true)]
    data: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct TokenCli {
    #[command(subcommand)]
    command: Option<TokenCommand>,
    #[command(flatten)]
    mint: TokenArgs,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// List the tokens minted here (and any revoked), newest last.
    List,
    /// Revoke a token by its `jti`; the server refuses it within a second.
    Revoke { jti: String },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Print the newest audit rows, oldest first.
    Tail {
        /// Only this tenant's rows.
        #[arg(long)]
        tenant: Option<String>,
        /// Only rows from this time on (RFC 3339, e.g. 2026-11-29T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// How many rows.
        #[arg(long, short = 'n', default_value_t = 20)]
        count: u32,
        /// One JSON object per line instead of columns.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Register a tenant.
    Add {
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List tenants with their user and group counts.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Remove a tenant; one with users or groups only with --purge, which deletes them.
    Remove {
        name: String,
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// Tenant the token acts for; give it again for each further tenant the token may
    /// choose with `domain` (the first is the default).
    #[arg(long, default_value = "default")]
    tenant: Vec<String>,
    /// Space-separated scopes.
    #[arg(long, default_value = "scim:read scim:write")]
    scope: String,
    /// Lifetime in seconds [default: one year].
    #[arg(long, default_value_t = 365 * 24 * 3600)]
    ttl: u64,
    /// Subject: who holds the token (e.g. the IdP's name).
    #[arg(long, default_value = "scim-client")]
    sub: String,
}

#[derive(Debug, Args)]
struct HealthcheckArgs {
    /// host:port of the server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token(cli) => token(cli),
        Command::Tenant(cmd) => tenant(cmd),
        Command::Audit(cmd) => audit(cmd),
        Command::Healthcheck(args) => healthcheck(&args.addr),
        Command::Plugin(cmd) => plugin(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scimgate: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn serve(args: ServeArgs) -> CliResult {
    let flags = FlagOverrides {
        listen: args.listen,
        data: args.data,
        public_base_url: args.public_base_url,
    };
    let source = ConfigSource {
        file: args.config,
        flags,
    };
    let config = source.load()?;
    init_logging(&config)?;
    let built = build(&config, Arc::new(SystemClock))?;
    let state = built.state;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        (None, None) => None,
        _ => return Err("tls_cert and tls_key go together: set both or neither".into()),
    };
    let poll = (config.plugin_watch_interval_ms > 0)
        .then(|| Duration::from_millis(config.plugin_watch_interval_ms));
    let (reload, reload_thread) =
        PluginReloader::new(source, config.clone(), built.plugins).spawn(poll)?;
    let sighup = reload.clone();
    tracing::info!(listen = %config.listen, data = %config.data.display(), "scimgate starting");
    actix_web::rt::System::new().block_on(async move {
        reload_on_sighup(sighup);
        let mut server = actix_web::HttpServer::new(move || build_app(state.clone()))
            .client_request_timeout(Duration::from_secs(config.header_timeout_secs))
            .client_disconnect_timeout(Duration::from_secs(5))
            .keep_alive(Duration::from_secs(config.keep_alive_secs))
            .max_connections(config.max_connections)
            // On SIGTERM: stop accepting, give in-flight requests this long to finish.
            .shutdown_timeout(30);
        if let Some(workers) = config.workers {
            server = server.workers(workers);
        }
        server = match &tls {
            Some(tls) => server.bind_rustls_0_23(&config.listen, tls.clone())?,
            None => server.bind(&config.listen)?,
        };
        server.run().await
    })?;
    // The reload thread holds the plugins, which hold the metrics, which hold the store:
    // stop it so that the store closes (and its writer drains) before the process exits.
    drop(reload);
    let _ = reload_thread.join();
    tracing::info!("scimgate stopped");
    Ok(())
}

/// The server's TLS settings from PEM files: TLS 1.2 and 1.3, rustls's safe defaults.
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, Box<dyn std::error::Error>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("tls_cert {}: no certificate in it", cert.display()).into());
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| format!("tls_cert and tls_key do not make a usable pair: {e}"))?;
    Ok(config)
}

/// Forwards each SIGHUP to the plugin reload thread.
fn reload_on_sighup(reload: std::sync::mpsc::Sender<Trigger>) {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    actix_web::rt::spawn(async move {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; plugins reload on file change only");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            if reload.send(Trigger::Signal).is_err() {
                return;
            }
        }
    });
}

/// The configuration's data folder, and its database opened for the admin commands.
fn admin_db(data: DataArgs) -> Result<(Config, AdminDb), Box<dyn std::error::Error>> {
    let flags = FlagOverrides {
        data: data.data,
        ..Default::default()
    };
    let config = Config::load(data.config.as_deref(), &flags)?;
    std::fs::create_dir_all(&config.data)?;
    let db = AdminDb::open(&config.data.join(scimgate::DATABASE_FILE))?;
    Ok((config, db))
}

fn unix_now() -> i64 {
    scimgate_model::Clock::now(&SystemClock).unix_timestamp()
}

fn token(cli: TokenCli) -> CliResult {
    let (config, db) = admin_db(cli.data)?;
    match cli.command {
        Some(TokenCommand::List) => {
            println!(
                "{:<36}  {:<16}  {:<24}  {:<20}  {:<20}  revoked",
                "jti", "subject", "tenants", "issued", "expires"
            );
            let when = |t: Option<i64>| {
                t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| "-".into())
            };
            for t in db.tokens()? {
                println!(
                    "{:<36}  {:<16}  {:<24}  {:<20}  {:<20}  {}",
                    t.jti,
                    t.subject.as_deref().unwrap_or("-"),
                    if t.tenants.is_empty() {
                        "-".into()
                    } else {
                        t.tenants.join(",")
                    },
                    when(t.issued_at),
                    when(t.expires_at),
                    when(t.revoked_at),
                );
            }
            Ok(())
        }
        Some(TokenCommand::Revoke { jti }) => {
            if db.revoke_token(&jti, unix_now())? {
                println!("revoked {jti}; the server refuses it within a second");
            } else {
                println!("{jti} was already revoked");
            }
            Ok(())
        }
        None => {
            let args = cli.mint;
            let registered = db.snapshot()?.tenants;
            for t in &args.tenant {
                if !scimgate_http::auth_tenant_is_valid(t) {
                    return Err(format!(
                        "'{t}' is not a valid tenant name (1-64 of A-Z a-z 0-9 . _ -)"
                    )
                    .into());
                }
                if !registered.contains(t) {
                    return Err(format!(
                        "the tenant '{t}' is not registered; add it first: scimgate tenant add {t}"
                    )
                    .into());
                }
            }
            let key = SigningKey::load_or_create(&config.data)?;
            let request = TokenRequest {
                subject: args.sub,
                tenants: args.tenant,
                scope: args.scope,
                ttl_secs: args.ttl,
            };
            let (token, claims) = key.mint(&request, unix_now())?;
            let mut tenants = vec![claims.tenant.clone()];
            tenants.extend(claims.tenants.iter().cloned());
            db.record_token(&TokenRecord {
                jti: claims.jti.clone().unwrap_or_default(),
                subject: Some(claims.sub.clone()),
                tenants,
                scope: Some(claims.scope.clone()),
                issued_at: claims.iat,
                expires_at: Some(claims.exp),
                revoked_at: None,
            })?;
            println!("{token}");
            Ok(())
        }
    }
}

fn audit(cmd: AuditCommand) -> CliResult {
    let AuditCommand::Tail {
        tenant,
        since,
        count,
        json,
        data,
    } = cmd;
    if let Some(s) = &since {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|e| format!("--since must be an RFC 3339 time ({e})"))?;
    }
    let (_, db) = admin_db(data)?;
    let rows = db.audit(&AuditQuery {
        tenant,
        since,
        after_seq: None,
        limit: count,
        newest: true,
    })?;
    for r in rows {
        if json {
            println!("{}", serde_json::to_string(&r)?);
            continue;
        }
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let version = |v: Option<i64>| v.map_or("-".into(), |v| v.to_string());
        println!(
            "{}  {}  {}  {}  {} {}/{}  v{}->v{}  {}  sub={} jti={} from={}{}{}",
            r.seq,
            r.at,
            r.tenant,
            r.status,
            r.method,
            opt(&r.resource_type),
            opt(&r.resource_id),
            version(r.version_before),
            version(r.version_after),
            r.detail.as_deref().unwrap_or(""),
            opt(&r.subject),
            opt(&r.jti),
            opt(&r.client),
            if r.plugins.is_some() { " plugins=" } else { "" },
            r.plugins.as_deref().unwrap_or(""),
        );
    }
    Ok(())
}

fn tenant(cmd: TenantCommand) -> CliResult {
    match cmd {
        TenantCommand::Add { name, data } => {
            if !scimgate_http::auth_tenant_is_valid(&name) {
                return Err(format!(
                    "'{name}' is not a valid tenant name (1-64 of A-Z a-z 0-9 . _ -)"
                )
                .into());
            }
            let (_, db) = admin_db(data)?;
            let now =
                scimgate_model::clock::format_timestamp(scimgate_model::Clock::now(&SystemClock));
            if db.add_tenant(&name, &now)? {
                println!("added tenant {name}");
            } else {
                println!("tenant {name} exists already");
            }
            Ok(())
        }
        TenantCommand::List { data } => {
            let (_, db) = admin_db(data)?;
            println!("{:<32}  {:>9}  {:>9}  created", "tenant", "users", "groups");
            for t in db.tenants()? {
                println!(
                    "{:<32}  {:>9}  {:>9}  {}",
                    t.name, t.users, t.groups, t.created
                );
            }
            Ok(())
        }
        TenantCommand::Remove { name, purge, data } => {
            let (_, mut db) = admin_db(data)?;
            match db.remove_tenant(&name, purge)? {
                RemoveOutcome::Removed { users, groups } => {
                    println!("removed tenant {name} ({users} users and {groups} groups deleted)");
                    Ok(())
                }
                RemoveOutcome::NotFound => Err(format!("no tenant '{name}'").into()),
                RemoveOutcome::HasData { users, groups } => Err(format!(
                    "tenant '{name}' has {users} users and {groups} groups; --purge deletes them with it"
                )
                .into()),
            }
        }
    }
}

fn plugin(cmd: PluginCommand) -> CliResult {
    use scimgate_plugins::{ABI_VERSION, CallInput, PluginHost, PluginSpec};
    let spec = |file: PathBuf, config: serde_json::Value| PluginSpec {
        name: file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        file,
        hooks: vec![],
        resource_types: vec![],
        tenants: None,
        config,
        limits: Default::default(),
        on_failure: Default::default(),
    };
    match cmd {
        PluginCommand::Check { file } => {
            PluginHost::load(vec![spec(file.clone(), serde_json::Value::Null)])?;
            println!("{}: ok, plugin ABI version {ABI_VERSION}", file.display());
            Ok(())
        }
        PluginCommand::Run {
            file,
            hook,
            config,
            resource_type,
            tenant,
        } => {
            if !["create", "replace", "patch"].contains(&hook.as_str()) {
                return Err(
                    format!("--hook must be create, replace or patch, not '{hook}'").into(),
                );
            }
            let config: serde_json::Value =
                serde_json::from_str(&config).map_err(|e| format!("--config is not JSON: {e}"))?;
            let mut stdin = String::new();
            std::io::stdin().read_to_string(&mut stdin)?;
            let resource: serde_json::Value =
                serde_json::from_str(&stdin).map_err(|e| format!("stdin is not JSON: {e}"))?;
            let host = PluginHost::load(vec![spec(file, config.clone())])?;
            let input = CallInput {
                abi: ABI_VERSION,
                hook: &hook,
                resource_type: &resource_type,
                tenant: &tenant,
                resource: &resource,
                before: None,
                operations: None,
                request_id: None,
                config: &config,
            };
            let started = std::time::Instant::now();
            let result = host.call(0, &input);
            let took = started.elapsed();
            match result {
                Ok(decision) => {
                    println!("{}", decision.to_json());
                    eprintln!("took {} µs", took.as_micros());
                    Ok(())
                }
                Err(failure) => Err(format!(
                    "the plugin failed after {} µs: {failure}",
                    took.as_micros()
                )
                .into()),
            }
        }
    }
}

/// A dependency-free HTTP/1.1 GET of /healthz, so the runtime image needs no curl.
fn healthcheck(addr: &str) -> CliResult {
    let target = addr.to_socket_addrs()?.next().ok_or("no address")?;
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    if response.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!(
            "unhealthy: {}",
            response.lines().next().unwrap_or("no answer")
        )
        .into())
    }
}

fn init_logging(config: &Config) -> CliResult {
    let filter = EnvFilter::try_from_env("SCIMGATE_LOG")
        .or_else(|_| EnvFilter::try_new(&config.log_level))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}
