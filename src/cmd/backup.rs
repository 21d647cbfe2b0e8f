//! `scimgate backup DEST` and `scimgate restore SRC` for the SQLite install: the database
//! (a consistent copy taken while the server writes) and the keys of the data folder,
//! each checked (`PRAGMA integrity_check`, rows per table) before it is reported or put
//! back. PostgreSQL installs are backed up with `pg_dump` (docs/operate.md).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use scimgate::Config;
use scimgate::config::FlagOverrides;
use scimgate::data_dir::{self, LockError};
use scimgate_store::{DatabaseCheck, backup_sqlite, check_sqlite};

use scimgate_model::Clock as _;

use crate::{CliResult, DataArgs};

/// The key files of a data folder a backup carries: without them a restored install on a
/// new machine would refuse every token and every cursor issued before.
const KEY_FILES: [&str; 2] = [
    scimgate_http::SigningKey::FILE_NAME,
    scimgate_events::FeedKey::FILE_NAME,
];

/// What a backup folder says about itself.
const MANIFEST: &str = "manifest.json";

/// The SQLite data folder of `data`; PostgreSQL installs are refused with what to use.
fn sqlite_config(data: DataArgs, command: &str) -> Result<Config, Box<dyn std::error::Error>> {
    let flags = FlagOverrides {
        data: data.data,
        database: data.database,
        ..Default::default()
    };
    let config = Config::load(data.config.as_deref(), &flags)?;
    if config.database.is_some() {
        return Err(format!(
            "`scimgate {command}` works on the SQLite file of a data folder; this install uses PostgreSQL: back it up with pg_dump and restore with pg_restore (docs/operate.md)"
        )
        .into());
    }
    Ok(config)
}

pub fn backup(dest: &Path, data: DataArgs) -> CliResult {
    let config = sqlite_config(data, "backup")?;
    let source = config.data.join(scimgate::DATABASE_FILE);
    if !source.is_file() {
        return Err(format!(
            "no scimgate database in {}: give the data folder with --data or --config",
            config.data.display()
        )
        .into());
    }
    new_private_folder(dest)?;
    let started = std::time::Instant::now();
    let copy = dest.join(scimgate::DATABASE_FILE);
    // SQLite writes the copy into this empty file, which keeps its mode (0600).
    data_dir::create_private_file(&copy)?;
    let check = match backup_sqlite(&source, &copy) {
        Ok(check) => check,
        Err(e) => {
            // Nothing half-made is left looking like a backup.
            let _ = fs::remove_dir_all(dest);
            return Err(format!("backup failed: {e}").into());
        }
    };
    let mut keys = Vec::new();
    for name in KEY_FILES {
        let from = config.data.join(name);
        if from.is_file() {
            copy_private(&from, &dest.join(name))?;
            keys.push(name);
        }
    }
    let manifest = serde_json::json!({
        "scimgate": env!("CARGO_PKG_VERSION"),
        "taken": scimgate_model::clock::format_timestamp(scimgate_model::SystemClock.now()),
        "from": config.data.display().to_string(),
        "schemaVersion": check.schema_version,
        "rows": check.rows.iter().map(|(t, n)| (t.clone(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
        "keys": keys,
    });
    write_private(
        &dest.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    sync_folder(dest)?;
    say!(
        "backup of {} written to {} in {:.1} s: {} bytes, integrity ok, schema version {}",
        config.data.display(),
        dest.display(),
        started.elapsed().as_secs_f64(),
        check.bytes,
        check.schema_version
    );
    print_rows(&check)?;
    say!(
        "keys: {}",
        if keys.is_empty() {
            "none".into()
        } else {
            keys.join(", ")
        }
    );
    Ok(())
}

pub fn restore(src: &Path, data: DataArgs) -> CliResult {
    let config = sqlite_config(data, "restore")?;
    // A backup folder, or a database file alone.
    let (database, key_folder) = if src.is_dir() {
        (src.join(scimgate::DATABASE_FILE), Some(src.to_path_buf()))
    } else {
        (src.to_path_buf(), None)
    };
    let found = check_sqlite(&database).map_err(|e| format!("{}: {e}", database.display()))?;
    if !found.is_whole() {
        return Err(format!(
            "{} is damaged (integrity check: {}); nothing was changed",
            database.display(),
            found.problems.join("; ")
        )
        .into());
    }
    // A scimgate database, not any SQLite file: restoring another would start an empty
    // install over the data.
    let missing: Vec<&str> = ["tenants", "resources", "audit", "events"]
        .into_iter()
        .filter(|t| found.rows_of(t).is_none())
        .collect();
    if found.schema_version < 1 || !missing.is_empty() {
        return Err(format!(
            "{} is not a scimgate database (schema version {}, no table {}); nothing was changed",
            database.display(),
            found.schema_version,
            missing.join(", ")
        )
        .into());
    }
    if found.schema_version > found.supported_version {
        return Err(format!(
            "{} was written by a newer scimgate (schema version {}, this one knows up to {}); nothing was changed",
            database.display(),
            found.schema_version,
            found.supported_version
        )
        .into());
    }
    data_dir::create_private(&config.data)?;
    // Held until the end: no server starts on the folder while its files are swapped.
    let _lock = data_dir::lock(&config.data).map_err(|e| match e {
        LockError::Held(dir) => format!(
            "a scimgate server is running on the data folder {}: stop it first (restore replaces its database); nothing was changed",
            dir.display()
        ),
        other => other.to_string(),
    })?;
    let suffix = format!(
        ".before-restore-{}",
        scimgate_model::SystemClock.now().unix_timestamp()
    );
    let target = config.data.join(scimgate::DATABASE_FILE);
    let incoming = config
        .data
        .join(format!("{}.restoring", scimgate::DATABASE_FILE));
    let _ = fs::remove_file(&incoming);
    copy_private(&database, &incoming)?;
    // The database in place and its log files are set aside together (SQLite finds a
    // log by the database's name, so the set-aside copy still opens whole).
    let mut set_aside = Vec::new();
    // The shared-memory index is rebuilt from the log; an empty log holds nothing.
    for ending in ["-shm", "-wal"] {
        let file = config
            .data
            .join(format!("{}{ending}", scimgate::DATABASE_FILE));
        if fs::metadata(&file).is_ok_and(|m| ending == "-shm" || m.len() == 0) {
            fs::remove_file(&file)?;
        }
    }
    for ending in ["", "-wal"] {
        let file = config
            .data
            .join(format!("{}{ending}", scimgate::DATABASE_FILE));
        if file.exists() {
            let aside = config
                .data
                .join(format!("{}{suffix}{ending}", scimgate::DATABASE_FILE));
            fs::rename(&file, &aside)?;
            set_aside.push(aside);
        }
    }
    fs::rename(&incoming, &target)?;
    let mut keys = Vec::new();
    if let Some(folder) = key_folder {
        for name in KEY_FILES {
            let from = folder.join(name);
            if !from.is_file() {
                continue;
            }
            let to = config.data.join(name);
            if fs::read(&to).ok() == Some(fs::read(&from)?) {
                keys.push(name);
                continue;
            }
            if to.exists() {
                let aside = config.data.join(format!("{name}{suffix}"));
                fs::rename(&to, &aside)?;
                set_aside.push(aside);
            }
            copy_private(&from, &to)?;
            keys.push(name);
        }
    }
    sync_folder(&config.data)?;
    let restored = check_sqlite(&target)?;
    if !restored.is_whole() || restored.rows != found.rows {
        return Err(format!(
            "the restored {} does not match {}: the earlier files are kept as {}",
            target.display(),
            database.display(),
            suffix
        )
        .into());
    }
    say!(
        "restored {} into {}: integrity ok, schema version {}{}",
        database.display(),
        config.data.display(),
        restored.schema_version,
        if restored.schema_version < restored.supported_version {
            " (the server migrates it at its next start)"
        } else {
            ""
        }
    );
    print_rows(&restored)?;
    say!(
        "keys: {}",
        if keys.is_empty() {
            "none in the backup; the data folder's kept".into()
        } else {
            keys.join(", ")
        }
    );
    for file in set_aside {
        say!("kept the earlier {}", file.display());
    }
    Ok(())
}

fn print_rows(check: &DatabaseCheck) -> CliResult {
    for (table, rows) in &check.rows {
        say!("  {table:<24} {rows:>12}");
    }
    Ok(())
}

/// Creates `dir` private (0700); refuses one that exists and holds anything, or a
/// symbolic link (which would put the copy wherever it points).
fn new_private_folder(dir: &Path) -> CliResult {
    if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(format!(
            "{} is a symbolic link; give the folder itself",
            dir.display()
        )
        .into());
    }
    if dir.exists() && fs::read_dir(dir)?.next().is_some() {
        return Err(format!(
            "{} exists and is not empty; a backup goes to a new folder",
            dir.display()
        )
        .into());
    }
    data_dir::create_private(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // An empty folder that was there keeps its mode otherwise.
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

/// Copies `from` to a new file `to`, readable by its owner only, synced.
fn copy_private(from: &Path, to: &Path) -> io::Result<()> {
    let mut source = File::open(from)?;
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    io::copy(&mut source, &mut target)?;
    target.sync_all()
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes the folder's new names durable.
fn sync_folder(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
