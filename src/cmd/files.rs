//! `scimgate import FILE` and `scimgate export`: a directory in and out of a tenant.
//! Import writes through the write pipeline (`scimgate::import`); export reads one
//! snapshot of the whole install (a copy taken as `scimgate backup` takes it, or, on
//! PostgreSQL, as `scimgate migrate` reads it), so that it is consistent while servers
//! write.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use scimgate::Config;
use scimgate::config::FlagOverrides;
use scimgate::data_dir::{self, LockError};
use scimgate::import::{Columns, Format, Import, Journal, Options, Progress, export_cell};
use scimgate_http::file_writes::{self, FileWriter};
use scimgate_model::{ResourceType, SystemClock};

use crate::{CliResult, DataArgs, ExportArgs, ImportArgs};

fn load(data: DataArgs) -> Result<Config, Box<dyn std::error::Error>> {
    let flags = FlagOverrides {
        data: data.data,
        database: data.database,
        ..Default::default()
    };
    Ok(Config::load(data.config.as_deref(), &flags)?)
}

/// A reader that counts the bytes read, for the progress of a file read by others.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

pub fn import(args: ImportArgs) -> CliResult {
    let mut config = load(args.data)?;
    let format = match args.format {
        Some(f) => f,
        None => Format::guess(&args.file).ok_or_else(|| {
            format!(
                "cannot tell the format of {} from its name: give --format scim-json, ndjson or csv",
                args.file.display()
            )
        })?,
    };
    let columns = Columns::parse(&args.map)?;
    if format != Format::Csv && !args.map.is_empty() {
        return Err("--map applies to CSV files only".into());
    }
    let size = std::fs::metadata(&args.file)
        .map_err(|e| format!("{}: {e}", args.file.display()))?
        .len();
    // The import's process writes, not delivers: the server delivers its events from the
    // outbox, in order with everything else.
    config.events.receivers.clear();
    // Warnings and errors of the server's parts on standard error; the rest is the
    // import's own output.
    if std::env::var_os("SCIMGATE_LOG").is_none() {
        config.log_level = "warn".into();
    }
    let _log = crate::init_logging(&config)?;
    let _lock = if config.database.is_none() {
        if !config.data.join(scimgate::DATABASE_FILE).exists() {
            return Err(format!(
                "no scimgate database in {}: start the server on it once, or give the right --data or --config",
                config.data.display()
            )
            .into());
        }
        Some(data_dir::lock(&config.data).map_err(|e| match e {
            LockError::Held(dir) => format!(
                "a scimgate server is running on the data folder {}: the SQLite file has one writer; stop the server for the import (a PostgreSQL install imports beside running servers)",
                dir.display()
            ),
            other => other.to_string(),
        })?)
    } else {
        None
    };
    let built = scimgate::build(&config, Arc::new(SystemClock))?;
    let state = built.state.clone().into_inner();
    if !state.store.access()?.tenants.contains(&args.tenant) {
        return Err(format!(
            "the tenant '{}' is not registered; add it first: scimgate tenant add {}",
            args.tenant, args.tenant
        )
        .into());
    }
    let subject = args.subject.unwrap_or_else(|| {
        format!(
            "import:{}",
            std::env::var("USER").unwrap_or_else(|_| "operator".into())
        )
    });
    let run = format!("import-{}", uuid_like());
    let writer = FileWriter::new(state, &args.tenant, &subject, &run);
    let state_path = args
        .state
        .unwrap_or_else(|| scimgate::import::beside(&args.file, ".import-state"));
    let rejects_path = args
        .rejects
        .unwrap_or_else(|| scimgate::import::beside(&args.file, ".rejects.ndjson"));
    let identity = scimgate::import::identity(&args.file, format, &args.tenant)?;
    let (journal, resumed) = if args.dry_run {
        (Journal::none(), false)
    } else {
        let resumed = state_path.exists();
        (Journal::open(&state_path, &identity)?, resumed)
    };
    if resumed {
        eprintln!(
            "import: going on from {} (what it records as done is not sent again)",
            state_path.display()
        );
    }
    let rejects = scimgate::import::rejects_file(&rejects_path, resumed)?;
    let options = Options {
        format,
        columns,
        dry_run: args.dry_run,
        window: 512,
    };
    let read = Arc::new(AtomicU64::new(0));
    let input = BufReader::with_capacity(
        1 << 20,
        Counted {
            inner: File::open(&args.file)?,
            read: Arc::clone(&read),
        },
    );
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress = Progress::new(size, terminal);
    let summary = Import::new(&writer, &options, journal, rejects, progress)
        .run(input, || read.load(Ordering::Relaxed))?;
    drop(writer);
    drop(built);
    let seconds = summary.elapsed.as_secs_f64().max(1e-3);
    say!(
        "{} {} of {} records in {:.1} s ({:.0} records/s): {} {}, {} rejected{}{}{}",
        if args.dry_run { "checked" } else { "imported" },
        args.file.display(),
        summary.records,
        seconds,
        summary.records as f64 / seconds,
        summary.created,
        if args.dry_run {
            "would be created"
        } else {
            "created"
        },
        summary.rejected,
        if summary.done_before > 0 {
            format!(", {} done by the earlier run", summary.done_before)
        } else {
            String::new()
        },
        if summary.found_committed > 0 {
            format!(
                ", {} found committed by the interrupted run",
                summary.found_committed
            )
        } else {
            String::new()
        },
        if summary.groups_created + summary.groups_joined > 0 {
            format!(
                "; groups column: {} groups created, {} joined",
                summary.groups_created, summary.groups_joined
            )
        } else {
            String::new()
        }
    );
    if !args.dry_run {
        // Every record was handled: a rerun starts over (and finds every user taken).
        let _ = std::fs::remove_file(&state_path);
    }
    if summary.rejected > 0 {
        return Err(format!(
            "{} records were rejected, each with its SCIM error in {}; correct their \"data\" there and import that file (NDJSON)",
            summary.rejected,
            rejects_path.display()
        )
        .into());
    }
    Ok(())
}

/// A short random name for the run (audit rows carry it as their request id).
fn uuid_like() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn export(args: ExportArgs) -> CliResult {
    let config = load(args.data)?;
    let columns = if args.format == Format::Csv {
        Columns::export_columns(&args.map)?
    } else if !args.map.is_empty() {
        return Err("--map applies to CSV only".into());
    } else {
        Vec::new()
    };
    let scratch = args.scratch.unwrap_or_else(|| config.data.clone());
    data_dir::create_private(&scratch)?;
    let folder = Scratch::new(&scratch)?;
    let copy = folder.0.join(scimgate::DATABASE_FILE);
    // One snapshot of the whole install, then read from the copy at leisure.
    match scimgate::pg_options(&config)? {
        Some(options) => {
            scimgate_store::postgres_to_sqlite(&options, &copy)?;
        }
        None => {
            let source = config.data.join(scimgate::DATABASE_FILE);
            if !source.is_file() {
                return Err(format!("no scimgate database in {}", config.data.display()).into());
            }
            data_dir::create_private_file(&copy)?;
            scimgate_store::backup_sqlite(&source, &copy)?;
        }
    }
    let options = scimgate_store::SqliteOptions::configured(
        copy.clone(),
        &config.store,
        config.overload_wait(),
    );
    let store = scimgate_store::SqliteStore::open(&options, Arc::new(SystemClock))?;
    let base = match &config.http.public_base_url {
        Some(base) => format!("{}/scim/v2", base.trim_end_matches('/')),
        None => format!("http://{}/scim/v2", config.listen),
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let tenant = args.tenant.as_str();
    if !scimgate_store::Store::access(&store)?
        .tenants
        .contains(&args.tenant)
    {
        return Err(
            format!("the tenant '{tenant}' is not registered (scimgate tenant list)").into(),
        );
    }
    let users = file_writes::count(&store, tenant, ResourceType::User)?;
    let groups = file_writes::count(&store, tenant, ResourceType::Group)?;
    let mut written = 0u64;
    match args.format {
        Format::ScimJson => {
            write!(
                out,
                "{{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:ListResponse\"],\"totalResults\":{},\"itemsPerPage\":{},\"startIndex\":1,\"Resources\":[",
                users + groups,
                users + groups
            )?;
            for rt in [ResourceType::User, ResourceType::Group] {
                file_writes::read_all(&store, tenant, rt, &base, |r| {
                    if written > 0 {
                        out.write_all(b",\n")?;
                    } else {
                        out.write_all(b"\n")?;
                    }
                    serde_json::to_writer(&mut out, &r)?;
                    written += 1;
                    Ok(())
                })?;
            }
            writeln!(out, "\n]}}")?;
        }
        Format::Ndjson => {
            for rt in [ResourceType::User, ResourceType::Group] {
                file_writes::read_all(&store, tenant, rt, &base, |r| {
                    serde_json::to_writer(&mut out, &r)?;
                    out.write_all(b"\n")?;
                    written += 1;
                    Ok(())
                })?;
            }
        }
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(&mut out);
            csv.write_record(columns.iter().map(|(c, _)| c.as_str()))?;
            file_writes::read_all(&store, tenant, ResourceType::User, &base, |r| {
                csv.write_record(columns.iter().map(|(_, a)| export_cell(&r, a)))?;
                written += 1;
                Ok(())
            })?;
            csv.flush()?;
        }
    }
    out.flush()?;
    drop(out);
    drop(store);
    eprintln!(
        "export: {written} resources of tenant '{tenant}' ({users} users{}), one snapshot",
        if args.format == Format::Csv {
            ", their groups in the groups column".to_owned()
        } else {
            format!(", {groups} groups")
        }
    );
    Ok(())
}

/// A private folder for the snapshot, removed with everything in it when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: &Path) -> std::io::Result<Scratch> {
        let dir = parent.join(format!("export-snapshot-{}", uuid_like()));
        data_dir::create_private(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
