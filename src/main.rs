//! `scimgate`: serve SCIM 2.0, mint tokens, and answer Docker's health check.

mod cmd;
mod log_writer;

/// See Cargo.toml: memory freed after a burst goes back to the system.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use scimgate::Config;
use scimgate::config::LogFormat;
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
    /// OAuth clients of the token endpoint (client credentials): add, list, rotate, remove.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Read the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The admin web page (/admin/): a sign-in link.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The change feed: read it, see where each receiver stands, replay, re-enable.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Exit 0 when the server answers /healthz (for Docker's HEALTHCHECK); HTTPS when the
    /// configuration sets tls_cert, or with --tls.
    Healthcheck(HealthcheckArgs),
    /// Copy a whole install between the SQLite file of a data folder and a PostgreSQL
    /// database, either way, verified table by table (docs/scale-out.md).
    Migrate(MigrateArgs),
    /// Check or try out a WebAssembly plugin.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Copy the SQLite install (database and keys) into a new folder DEST while the server
    /// runs and writes; the copy is one snapshot, checked before it is reported.
    Backup {
        dest: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Put a backup folder (or a database file) back into the data folder; refused while a
    /// server runs on it. What it replaces is kept beside it.
    Restore {
        src: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Create the users and groups of a file in a tenant, each through the same checks
    /// as an IdP's request (dialect, plugins, validation, audit, events); resumable.
    Import(ImportArgs),
    /// Write a tenant's users and groups to a file (or standard output), one consistent
    /// snapshot while servers write.
    Export(ExportArgs),
    /// Print the completions of this command line for a shell (bash, zsh, fish, elvish,
    /// powershell), e.g. `scimgate completions bash > /etc/bash_completion.d/scimgate`.
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (scimgate.1, and one per command) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Check the install (configuration, data folder permissions, keys, TLS, plugins,
    /// schemas, database integrity and version, clock) and say what to fix; changes nothing.
    Doctor {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Validate a plugin: it compiles, exports ABI version 1, imports nothing else.
    Check { file: PathBuf },
    /// Run one call locally on the resource read from stdin; print the decision and the time.
    Run {
        file: PathBuf,
        /// create, replace, patch or delete.
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
struct MigrateArgs {
    /// Where the install is now: a data folder (its scimgate.db), or a PostgreSQL
    /// database (postgres://user@host/db).
    #[arg(long)]
    from: String,
    /// Where it goes: an empty PostgreSQL database, or a data folder (created when
    /// missing). A rerun that finds the copy done changes nothing.
    #[arg(long)]
    to: String,
    /// A file holding the PostgreSQL database's password.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// The authority (PEM) the database server's certificate must chain to: TLS, always
    /// verified (as `database_ca_file`).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for the database, with `--client-key`.
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The file: a SCIM ListResponse, a Bulk request or a JSON array (.json), one resource
    /// per line (.ndjson), or users as CSV rows with a header (.csv).
    file: PathBuf,
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The file's format [default: from its name's ending].
    #[arg(long, value_enum)]
    format: Option<scimgate::import::Format>,
    /// CSV: the attribute a column holds, as COLUMN=ATTRIBUTE (e.g. mail=emails[type eq
    /// "work"].value, dept=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department,
    /// teams=groups); COLUMN= skips it. Unmapped columns are read as the attribute they name.
    #[arg(long = "map", value_name = "COLUMN=ATTRIBUTE")]
    map: Vec<String>,
    /// Run every check (dialect, plugins, validation, userNames taken) and report what
    /// would be rejected; store nothing.
    #[arg(long)]
    dry_run: bool,
    /// Who the audit trail names as the writer [default: import:$USER].
    #[arg(long)]
    subject: Option<String>,
    /// Where the import notes its progress, to go on after an interruption [default:
    /// FILE.import-state]; removed when the import ends with nothing rejected.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Where each rejected record goes with its SCIM error, as NDJSON [default:
    /// FILE.rejects.ndjson].
    #[arg(long)]
    rejects: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Args)]
struct ExportArgs {
    #[arg(long, default_value = "default")]
    tenant: String,
    #[arg(long, value_enum, default_value = "scim-json")]
    format: scimgate::import::Format,
    /// CSV: the columns, each COLUMN=ATTRIBUTE, in order [default: id, externalId,
    /// userName, displayName, name, title, active, work email and phone, groups].
    #[arg(long = "map", value_name = "COLUMN=ATTRIBUTE")]
    map: Vec<String>,
    /// Write here (a new file, 0600) instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Where the snapshot is kept while it is read [default: the data folder].
    #[arg(long)]
    scratch: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
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
    /// PostgreSQL database instead of the SQLite file in the data folder
    /// (postgres://user@host/db); see docs/scale-out.md.
    #[arg(long)]
    database: Option<String>,
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
    /// PostgreSQL database the servers share (postgres://user@host/db), instead of the
    /// SQLite file in the data folder.
    #[arg(long, global = true)]
    database: Option<String>,
    /// Create the data folder and its database when they do not exist yet (without it, a
    /// folder with no database is refused: a wrong --data would mint useless tokens).
    #[arg(long, global = true)]
    init: bool,
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
    Revoke {
        jti: String,
        /// The `jti` is of a token minted elsewhere (an operator key), not by this folder.
        #[arg(long)]
        external: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Print a link that signs the browser in to the admin page: it works once, within
    /// --ttl seconds, for the tenants named (their users, groups, audit trail, tokens).
    LoginUrl {
        /// A tenant the session may see; give it again for each further one.
        #[arg(long, default_value = "default")]
        tenant: Vec<String>,
        /// Seconds the link stays good (30 to 3600).
        #[arg(long, default_value_t = 300)]
        ttl: u64,
        /// Who signs in, as the audit trail names them [default: $USER].
        #[arg(long)]
        sub: Option<String>,
        /// The server's address as the browser reaches it [default: public_base_url, else
        /// the configuration's listen address].
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
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
enum EventsCommand {
    /// Print the newest events, oldest first; with --follow, then each new one as it comes.
    Tail {
        /// Only this tenant's events.
        #[arg(long)]
        tenant: Option<String>,
        /// How many events.
        #[arg(long, short = 'n', default_value_t = 20)]
        count: usize,
        /// Keep printing events as they are written (every half second).
        #[arg(long, short = 'f')]
        follow: bool,
        /// One JSON object per line instead of columns.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Where each configured receiver and each poll or stream cursor stands: last event
    /// delivered, lag in events and seconds, state, last error.
    Receivers {
        /// One JSON object per line instead of columns.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Deliver again to a receiver from event SEQ on (in each of its tenants, or one).
    Replay {
        #[arg(long)]
        receiver: String,
        #[arg(long)]
        from: i64,
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Resume a dead-lettered receiver from where it stopped.
    Enable {
        receiver: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Forget a poll or stream cursor, as `events receivers` names it (e.g.
    /// 'cursor:["hr-sync",null]'), so that it no longer holds its tenant's events from
    /// pruning. A consumer that comes back with it starts from the oldest event kept.
    Forget {
        cursor: String,
        /// Only in this tenant (default: in every tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register an OAuth client; prints its client id and secret, once (only the secret's
    /// digest is kept).
    Add {
        name: String,
        /// Tenant its tokens act for; give it again for each further tenant (the first is
        /// the default).
        #[arg(long, required = true)]
        tenant: Vec<String>,
        /// Space-separated scopes: the most a token may carry (a request may ask fewer).
        #[arg(long, default_value = "scim:read scim:write")]
        scope: String,
        /// Lifetime of the access tokens it gets, in seconds (60 to 86400).
        #[arg(long, default_value_t = 3600)]
        token_ttl: i64,
        /// Workload identity federation (RFC 7523): the client authenticates with a JWT
        /// its identity provider signs, with this `iss` (Entra ID: the customer tenant's
        /// v2 issuer), and has no secret.
        #[arg(long, requires_all = ["assertion_subject", "assertion_audience"])]
        assertion_issuer: Option<String>,
        /// The assertion's `sub` (Entra ID: its provisioning workload identity).
        #[arg(long, requires = "assertion_issuer")]
        assertion_subject: Option<String>,
        /// The assertion's `aud`, as configured at the identity provider.
        #[arg(long, requires = "assertion_issuer")]
        assertion_audience: Option<String>,
        /// Where the identity provider publishes its signing keys (https; http only to a
        /// loopback address).
        #[arg(long, requires = "assertion_issuer", conflicts_with = "jwks_file")]
        jwks_url: Option<String>,
        /// A JWKS file with the identity provider's signing keys, instead of a URL.
        #[arg(long, requires = "assertion_issuer")]
        jwks_file: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List the clients: id, tenants, scopes, token lifetime, secrets and when they end.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Give a client a new secret (printed once); the old one keeps working for --overlap
    /// seconds, so that the IdP can be updated in between, then stops.
    Rotate {
        name: String,
        #[arg(long, default_value_t = 86400)]
        overlap: i64,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Remove a client: its secrets stop at once, and the server refuses its tokens within
    /// a second.
    Remove {
        name: String,
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
    /// Lifetime in seconds (the default is one year).
    #[arg(long, default_value_t = 365 * 24 * 3600)]
    ttl: u64,
    /// Subject: who holds the token (e.g. the IdP's name).
    #[arg(long, default_value = "scim-client")]
    sub: String,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// host:port of the server [default: the configuration's `listen`, on loopback when it
    /// listens on every address].
    #[arg(long)]
    pub addr: Option<String>,
    /// Speak HTTPS (also when the configuration sets tls_cert). The certificate is not
    /// verified: this checks that the local server answers, not who it is.
    #[arg(long)]
    pub tls: bool,
    /// TOML configuration file (for `listen` and `tls_cert`).
    #[arg(long, env = "SCIMGATE_CONFIG")]
    pub config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::serve(args),
        Command::Token(cli) => cmd::admin::token(cli),
        Command::Tenant(cmd) => cmd::admin::tenant(cmd),
        Command::Client(cmd) => cmd::client::client(cmd),
        Command::Audit(cmd) => cmd::admin::audit(cmd),
        Command::Admin(AdminCommand::LoginUrl {
            tenant,
            ttl,
            sub,
            url,
            data,
        }) => cmd::admin::login_url(tenant, ttl, sub, url, data),
        Command::Events(cmd) => cmd::events::events(cmd),
        Command::Healthcheck(args) => cmd::serve::healthcheck(args),
        Command::Plugin(cmd) => cmd::plugin::plugin(cmd),
        Command::Migrate(args) => cmd::migrate::migrate(args),
        Command::Backup { dest, data } => cmd::backup::backup(&dest, data),
        Command::Restore { src, data } => cmd::backup::restore(&src, data),
        Command::Doctor { data } => cmd::doctor::doctor(data),
        Command::Import(args) => cmd::files::import(args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "scimgate",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man { dir } => clap_mangen::generate_to(Cli::command(), &dir)
            .map_err(|e| format!("cannot write the man pages into {}: {e}", dir.display()).into()),
        Command::Export(args) => cmd::files::export(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of the output went (`| head`): nothing more to say, nothing failed.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scimgate: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// Sets up the log; it is written until the guard returned is dropped, which writes out
/// what is still queued.
fn init_logging(config: &Config) -> Result<log_writer::Flushed, Box<dyn std::error::Error>> {
    let from_env = std::env::var("SCIMGATE_LOG")
        .ok()
        .and_then(|text| EnvFilter::try_new(&text).ok().map(|f| (text, f)));
    let (text, mut filter) = match from_env {
        Some(chosen) => chosen,
        None => (
            config.log_level.clone(),
            EnvFilter::try_new(&config.log_level)?,
        ),
    };
    // The PostgreSQL client logs every statement's parameters at debug (stored
    // attributes, password hashes): not below info unless an operator names it.
    if !text.contains("tokio_postgres") {
        filter = filter.add_directive("tokio_postgres=info".parse()?);
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Lines go to standard error from a thread of their own (`log_writer`).
    let (writer, flushed_at_drop) = log_writer::start(std::io::stderr())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(flushed_at_drop)
}
