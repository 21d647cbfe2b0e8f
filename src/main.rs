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
    /// Print a signed bearer token for an IdP or a script.
    Token(TokenArgs),
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

#[derive(Debug, Args)]
struct TokenArgs {
    /// TOML configuration file (for the data folder).
    #[arg(long, env = "SCIMGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Data folder holding the signing key [default: ./scimgate-data].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Tenant the token acts for.
    #[arg(long, default_value = "default")]
    tenant: String,
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
        Command::Token(args) => token(args),
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
    let poll = (config.plugin_watch_interval_ms > 0)
        .then(|| Duration::from_millis(config.plugin_watch_interval_ms));
    let reload = PluginReloader::new(source, config.clone(), built.plugins).spawn(poll)?;
    tracing::info!(listen = %config.listen, data = %config.data.display(), "scimgate starting");
    actix_web::rt::System::new().block_on(async move {
        reload_on_sighup(reload);
        let mut server = actix_web::HttpServer::new(move || build_app(state.clone()))
            .client_request_timeout(Duration::from_secs(10));
        if let Some(workers) = config.workers {
            server = server.workers(workers);
        }
        server.bind(&config.listen)?.run().await
    })?;
    tracing::info!("scimgate stopped");
    Ok(())
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

fn token(args: TokenArgs) -> CliResult {
    let flags = FlagOverrides {
        data: args.data,
        ..Default::default()
    };
    let config = Config::load(args.config.as_deref(), &flags)?;
    if !scimgate_http::auth_tenant_is_valid(&args.tenant) {
        return Err(format!(
            "'{}' is not a valid tenant name (1-64 of A-Z a-z 0-9 . _ -)",
            args.tenant
        )
        .into());
    }
    let key = SigningKey::load_or_create(&config.data)?;
    let request = TokenRequest {
        subject: args.sub,
        tenant: args.tenant,
        scope: args.scope,
        ttl_secs: args.ttl,
    };
    let now = scimgate_model::Clock::now(&scimgate_model::SystemClock).unix_timestamp();
    println!("{}", key.mint(&request, now)?);
    Ok(())
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
