//! `scimgate doctor`: reads the install the way the server would start on it (the
//! configuration, the data folder and its permissions, the keys, TLS files, plugins,
//! schemas, the database's integrity and version, the clock) and prints each finding with
//! what to do about it. It changes nothing. Exit status 1 when anything would stop the
//! server or puts data at risk.

use std::fmt::Display;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use scimgate::Config;
use scimgate::config::FlagOverrides;

use scimgate_model::Clock as _;

use crate::{CliResult, DataArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

/// The findings so far, printed as they come.
#[derive(Default)]
struct Findings {
    worst: Option<Level>,
}

impl Findings {
    fn note(&mut self, level: Level, what: impl Display, fix: Option<String>) -> CliResult {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        say!("{tag}  {what}");
        if let Some(fix) = fix {
            say!("      fix: {fix}");
        }
        self.worst = self.worst.max(Some(level));
        Ok(())
    }
    fn ok(&mut self, what: impl Display) -> CliResult {
        self.note(Level::Ok, what, None)
    }
    fn warn(&mut self, what: impl Display, fix: impl Into<String>) -> CliResult {
        self.note(Level::Warn, what, Some(fix.into()))
    }
    fn fail(&mut self, what: impl Display, fix: impl Into<String>) -> CliResult {
        self.note(Level::Fail, what, Some(fix.into()))
    }
}

pub fn doctor(data: DataArgs) -> CliResult {
    let mut found = Findings::default();
    let flags = FlagOverrides {
        data: data.data,
        database: data.database,
        ..Default::default()
    };
    let config = match Config::load(data.config.as_deref(), &flags) {
        Ok(config) => {
            found.ok(format!(
                "configuration {} read",
                data.config
                    .as_deref()
                    .map_or("(defaults and SCIMGATE_* variables)".into(), |p| p
                        .display()
                        .to_string())
            ))?;
            config
        }
        Err(e) => {
            found.fail(
                format!("configuration: {e}"),
                "correct the file or variable named (docs/api.md lists every key)",
            )?;
            return Err("doctor found problems".into());
        }
    };
    match scimgate::check_settings(&config) {
        Ok(()) => found.ok("settings (tenants, limits, receivers) accepted")?,
        Err(e) => found.fail(e, "correct the setting named")?,
    }
    data_folder(&config, &mut found)?;
    keys(&config, &mut found)?;
    files(&config, &mut found)?;
    plugins_and_schemas(&config, &mut found)?;
    database(&config, &mut found)?;
    clock_sync(&mut found)?;
    match found.worst {
        Some(Level::Fail) => Err("doctor found problems (FAIL above)".into()),
        Some(Level::Warn) => {
            say!("no problem that stops the server; see the warnings above");
            Ok(())
        }
        _ => {
            say!("all checks passed");
            Ok(())
        }
    }
}

fn data_folder(config: &Config, found: &mut Findings) -> CliResult {
    let dir = &config.data;
    let Ok(meta) = std::fs::metadata(dir) else {
        return found.warn(
            format!("data folder {} does not exist yet", dir.display()),
            "the first `scimgate serve` creates it (0700); or check --data / `data`",
        );
    };
    if !meta.is_dir() {
        return found.fail(
            format!("data folder {} is not a folder", dir.display()),
            "point `data` at a folder",
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        found.fail(
            format!(
                "data folder {} is readable by other users (mode {mode:o}); it holds personal data and the signing key",
                dir.display()
            ),
            format!("chmod 700 {}", dir.display()),
        )?;
    } else {
        found.ok(format!("data folder {} is private (0700)", dir.display()))?;
    }
    let uid = current_uid();
    if meta.uid() != uid {
        found.warn(
            format!(
                "data folder {} belongs to uid {}, not to this user (uid {uid})",
                dir.display(),
                meta.uid()
            ),
            "run doctor as the server's user (e.g. sudo -u scimgate scimgate doctor …)",
        )?;
    }
    let mut shared = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        if let Ok(m) = entry.metadata()
            && m.is_file()
            && m.permissions().mode() & 0o077 != 0
        {
            shared.push(entry.path());
        }
    }
    if shared.is_empty() {
        found.ok("files in the data folder are private (0600)")?;
    } else {
        let names: Vec<String> = shared.iter().map(|p| p.display().to_string()).collect();
        found.fail(
            format!("readable by other users: {}", names.join(", ")),
            format!("chmod 600 {}", names.join(" ")),
        )?;
    }
    if scimgate::data_dir::is_held(dir) {
        found.ok("a scimgate server is running on this data folder")?;
    }
    Ok(())
}

fn keys(config: &Config, found: &mut Findings) -> CliResult {
    let signing = config.data.join(scimgate_http::SigningKey::FILE_NAME);
    match std::fs::read(&signing) {
        Ok(bytes) if bytes.len() >= 32 => {
            found.ok(format!("signing key {} present", signing.display()))?
        }
        Ok(bytes) => found.fail(
            format!(
                "signing key {} holds {} bytes; at least 32 are needed",
                signing.display(),
                bytes.len()
            ),
            "restore it from a backup (tokens it signed stop working if it changes)",
        )?,
        Err(_) if config.data.join(scimgate::DATABASE_FILE).exists() => found.fail(
            format!("signing key {} is missing", signing.display()),
            "restore it from a backup (scimgate restore); a new one is made at start, but every token issued before is then refused",
        )?,
        Err(_) => found.warn(
            format!("no signing key {} yet", signing.display()),
            "the first `scimgate serve` creates it",
        )?,
    }
    let feed = config.data.join(scimgate_events::FeedKey::FILE_NAME);
    match std::fs::read(&feed) {
        Ok(der) => match scimgate_events::FeedKey::from_pkcs8(&der) {
            Ok(_) => found.ok(format!("change feed key {} present", feed.display()))?,
            Err(e) => found.fail(
                format!("change feed key {}: {e}", feed.display()),
                "restore it from a backup; receivers verify events with it",
            )?,
        },
        Err(_) => found.warn(
            format!("no change feed key {} yet", feed.display()),
            "the first `scimgate serve` creates it",
        )?,
    }
    Ok(())
}

/// TLS and the database's secret files: each named file readable, and TLS usable.
fn files(config: &Config, found: &mut Findings) -> CliResult {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => match crate::cmd::serve::tls_config(cert, key) {
            Ok(_) => found.ok(format!("TLS certificate {} and key usable", cert.display()))?,
            Err(e) => found.fail(
                format!("TLS: {e}"),
                "give a PEM certificate chain and its private key",
            )?,
        },
        (None, None) => found.ok("no TLS (plain HTTP: keep it behind a TLS proxy)")?,
        _ => found.fail("tls_cert and tls_key go together", "set both or neither")?,
    }
    for (key, file) in [
        ("database_password_file", &config.database_password_file),
        ("database_ca_file", &config.database_ca_file),
        ("database_client_cert", &config.database_client_cert),
        ("database_client_key", &config.database_client_key),
    ] {
        if let Some(file) = file {
            readable(found, key, file)?;
        }
    }
    Ok(())
}

fn readable(found: &mut Findings, key: &str, file: &Path) -> CliResult {
    match std::fs::File::open(file) {
        Ok(_) => found.ok(format!("{key} {} readable", file.display())),
        Err(e) => found.fail(
            format!("{key} {}: {e}", file.display()),
            "give a file the server's user can read",
        ),
    }
}

fn plugins_and_schemas(config: &Config, found: &mut Findings) -> CliResult {
    // Compiled without the data folder's cache: doctor writes nothing there.
    match scimgate_plugins::PluginHost::load(config.plugins.specs.clone()) {
        Ok(host) => found.ok(format!(
            "plugins: {} configured, each compiles and speaks ABI 1",
            host.specs().count()
        ))?,
        Err(e) => found.fail(
            format!("plugins: {e}"),
            "fix or remove the plugin named (scimgate plugin check FILE says more)",
        )?,
    }
    match scimgate::schemas::load(&config.schemas) {
        Ok(_) => found.ok(format!(
            "schemas: {} extension file(s) valid",
            config.schemas.len()
        ))?,
        Err(e) => found.fail(format!("schemas: {e}"), "fix the schema file named")?,
    }
    Ok(())
}

fn database(config: &Config, found: &mut Findings) -> CliResult {
    if let Some(options) = scimgate::pg_options(config)? {
        return match scimgate_store::inspect_postgres(&options, &scimgate_model::SystemClock) {
            Ok(facts) => {
                found.ok(format!(
                    "PostgreSQL {} answers; database {} MB",
                    facts.server_version,
                    facts.bytes / 1_000_000
                ))?;
                version(found, facts.schema_version, facts.supported_version)?;
                if facts.clock_offset_secs.abs() > 2.0 {
                    found.warn(
                        format!(
                            "this host's clock and the database server's differ by {:.1} s",
                            facts.clock_offset_secs
                        ),
                        "synchronise both with NTP (times in the audit trail and events come from each instance)",
                    )?;
                } else {
                    found.ok(format!(
                        "clock within {:.2} s of the database server's",
                        facts.clock_offset_secs.abs()
                    ))?;
                }
                newest_write(found, facts.newest_write.as_deref())
            }
            Err(e) => found.fail(
                format!("PostgreSQL: {e}"),
                "check `database`, the password file and that the server is up",
            ),
        };
    }
    let file = config.data.join(scimgate::DATABASE_FILE);
    if !file.exists() {
        return found.warn(
            format!("no database {} yet", file.display()),
            "the first `scimgate serve` creates it",
        );
    }
    match scimgate_store::check_sqlite(&file) {
        Ok(check) if check.is_whole() => {
            found.ok(format!(
                "database {} whole (integrity_check ok), {} MB, {} resources, {} audit rows, {} events",
                file.display(),
                check.bytes / 1_000_000,
                check.rows_of("resources").unwrap_or(0),
                check.rows_of("audit").unwrap_or(0),
                check.rows_of("events").unwrap_or(0)
            ))?;
            version(found, check.schema_version, check.supported_version)?;
            newest_write(found, check.newest_write.as_deref())
        }
        Ok(check) => found.fail(
            format!(
                "database {} is damaged: {}",
                file.display(),
                check.problems.join("; ")
            ),
            "stop the server and restore the newest backup (scimgate restore BACKUP)",
        ),
        Err(e) => found.fail(
            format!("database {}: {e}", file.display()),
            "check the file's owner and mode; restore a backup if it is damaged",
        ),
    }
}

fn version(found: &mut Findings, schema: i64, supported: i64) -> CliResult {
    if schema > supported {
        found.fail(
            format!(
                "the database was written by a newer scimgate (schema {schema}, this binary knows up to {supported})"
            ),
            "run the newer scimgate, or restore a backup taken before the upgrade",
        )
    } else if schema < supported {
        found.warn(
            format!("database schema {schema}; this binary brings it to {supported} at start"),
            "take a backup before the first start of the new version",
        )
    } else {
        found.ok(format!("database schema {schema} is this binary's"))
    }
}

/// A stored time later than now: the clock went back (or was ahead when it was written).
fn newest_write(found: &mut Findings, newest: Option<&str>) -> CliResult {
    let now = scimgate_model::SystemClock.now();
    let Some(at) = newest.and_then(|text| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
    }) else {
        return Ok(());
    };
    let ahead = (at - now).as_seconds_f64();
    if ahead > 5.0 {
        found.warn(
            format!(
                "the newest audit row or event ({at}) is {ahead:.0} s later than this clock: it went back, or was ahead"
            ),
            "synchronise the clock with NTP; times in the audit trail and events may be out of order around it",
        )
    } else {
        found.ok("the clock is not behind the newest stored write")
    }
}

/// Whether the system clock is kept by NTP, where systemd can say.
fn clock_sync(found: &mut Findings) -> CliResult {
    let answer = std::process::Command::new("timedatectl")
        .args(["show", "--property=NTPSynchronized", "--value"])
        .output();
    match answer {
        Ok(out) if out.status.success() => {
            if String::from_utf8_lossy(&out.stdout).trim() == "yes" {
                found.ok("the system clock is synchronised (NTP)")
            } else {
                found.warn(
                    "the system clock is not synchronised",
                    "enable NTP (timedatectl set-ntp true): token lifetimes and audit times depend on it",
                )
            }
        }
        _ => found.ok("clock synchronisation not known here (no timedatectl); keep it on NTP"),
    }
}

fn current_uid() -> u32 {
    // The owner of a file this process creates would say it too; /proc/self is simpler.
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}
