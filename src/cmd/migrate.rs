//! `scimgate migrate`: a whole install from a data folder's SQLite file into a PostgreSQL
//! database, or back, for a user joining or leaving a cluster. The copy and its
//! verification are the store's (`scimgate_store::transfer`); here the two ends are told
//! apart, the data folder is locked (no server may run on it meanwhile), and the tables are
//! reported.

use std::path::{Path, PathBuf};

use scimgate_store::{PgOptions, TransferReport};

use crate::{CliResult, MigrateArgs};

/// Whether `place` names a PostgreSQL database rather than a folder.
fn is_database(place: &str) -> bool {
    place.starts_with("postgres://")
        || place.starts_with("postgresql://")
        || place
            .split_ascii_whitespace()
            .any(|p| p.starts_with("host=") || p.starts_with("dbname="))
}

pub fn migrate(args: MigrateArgs) -> CliResult {
    let database = |url: &str| -> Result<PgOptions, Box<dyn std::error::Error>> {
        let mut options = PgOptions::new(url);
        options.tls = scimgate_store::TlsFiles {
            ca_file: args.ca_file.clone(),
            client_cert: args.client_cert.clone(),
            client_key: args.client_key.clone(),
        };
        if let Some(file) = &args.password_file {
            options.password = Some(
                std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read --password-file {}: {e}", file.display()))?,
            );
        }
        Ok(options)
    };
    let report = match (is_database(&args.from), is_database(&args.to)) {
        (false, true) => {
            let folder = PathBuf::from(&args.from);
            let file = folder.join(scimgate::DATABASE_FILE);
            if !file.exists() {
                return Err(format!("no scimgate database in {}", folder.display()).into());
            }
            let _lock = scimgate::data_dir::lock(&folder)?;
            scimgate_store::sqlite_to_postgres(&file, &database(&args.to)?)?
        }
        (true, false) => {
            let folder = Path::new(&args.to);
            scimgate::data_dir::create_private(folder)?;
            let _lock = scimgate::data_dir::lock(folder)?;
            let file = folder.join(scimgate::DATABASE_FILE);
            scimgate::data_dir::create_private_file(&file)?;
            scimgate_store::postgres_to_sqlite(&database(&args.from)?, &file)?
        }
        _ => {
            return Err(
                "--from and --to must be a data folder and a PostgreSQL database, one each".into(),
            );
        }
    };
    print(&report)
}

fn print(report: &TransferReport) -> CliResult {
    say!("{:<22}  {:>10}  sha-256", "table", "rows");
    for t in &report.tables {
        say!("{:<22}  {:>10}  {}", t.table, t.rows, t.checksum);
    }
    if report.already_there {
        say!("the target already held this install: nothing written, every table verified");
    } else {
        say!("copied and verified: every table's rows and checksum agree on both sides");
    }
    Ok(())
}
