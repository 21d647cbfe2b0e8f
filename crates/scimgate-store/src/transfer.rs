//! `scimgate migrate`: copies a whole install from one backend to the other (a SQLite file
//! into an empty PostgreSQL database, or back), every table in one transaction on the
//! target, and verifies it: rows and a SHA-256 of each table, read from the source while
//! copying and from the target before the commit, must agree. A rerun finds the target
//! holding what the source holds and changes nothing; a target holding anything else is
//! refused. This module sits above both backends (it reads one and writes the other); no
//! other module imports it.

mod tables;

use std::path::Path;

use rusqlite::types::Value as SqlValue;

use crate::error::StoreError;
use crate::index_rows::SqlNum;
use tables::{Col, TABLES, Table};

/// One table as copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: &'static str,
    pub rows: u64,
    /// Hex SHA-256 of the rows in their order, each value typed.
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReport {
    pub tables: Vec<TableReport>,
    /// The target held this already (a rerun): nothing was written.
    pub already_there: bool,
}

/// Copies the SQLite file at `from` into the PostgreSQL database `to`.
pub fn sqlite_to_postgres(
    from: &Path,
    to: &crate::PgOptions,
) -> Result<TransferReport, StoreError> {
    let mut source = crate::sqlite::open_for_transfer(from)?;
    let source_tx = source.transaction()?;
    let mut target = crate::postgres::open_for_transfer(to)?;
    let target_tx = target.transaction()?;
    let (mut src, mut dst) = (Sqlite(source_tx), Pg(target_tx, Default::default()));
    let report = copy(&mut src, &mut dst)?;
    dst.0.commit()?;
    Ok(report)
}

/// Copies the PostgreSQL database `from` into the SQLite file at `to` (created when
/// missing).
pub fn postgres_to_sqlite(
    from: &crate::PgOptions,
    to: &Path,
) -> Result<TransferReport, StoreError> {
    let mut source = crate::postgres::open_for_transfer(from)?;
    let source_tx = source
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let mut target = crate::sqlite::open_for_transfer(to)?;
    let target_tx = target.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (mut src, mut dst) = (Pg(source_tx, Default::default()), Sqlite(target_tx));
    let report = copy(&mut src, &mut dst)?;
    dst.0.commit()?;
    Ok(report)
}

/// A value as copied and summed: numbers of NUMERIC columns as canonical text.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Int(i64),
    Text(String),
}

/// A database in the transaction the copy reads or writes in.
trait Side {
    fn read(
        &mut self,
        table: &Table,
        each: &mut dyn FnMut(Vec<Val>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    fn write(&mut self, table: &Table, rows: &[Vec<Val>]) -> Result<(), StoreError>;
    fn paths(&mut self) -> Result<Vec<String>, StoreError>;
    fn add_paths(&mut self, paths: &[String]) -> Result<(), StoreError>;
    /// Rows in every table but the default tenant a fresh database starts with.
    fn rows(&mut self) -> Result<i64, StoreError>;
    /// Deletes every copied table's rows (a fresh database's default tenant).
    fn clear(&mut self) -> Result<(), StoreError>;
    /// After the rows: counters the database keeps moved past them.
    fn finish(&mut self) -> Result<(), StoreError>;
}

/// Rows written at a time (one `COPY` on PostgreSQL).
const BATCH: usize = 5000;

fn copy(src: &mut dyn Side, dst: &mut dyn Side) -> Result<TransferReport, StoreError> {
    if dst.rows()? > 0 {
        let (there, wanted) = (checksums(dst)?, checksums(src)?);
        if there == wanted {
            return Ok(TransferReport {
                tables: wanted,
                already_there: true,
            });
        }
        let differ: Vec<&str> = wanted
            .iter()
            .zip(&there)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.table)
            .collect();
        return Err(StoreError::Transfer(format!(
            "the target already holds data that differs from the source (tables: {}); migrate into an empty database",
            differ.join(", ")
        )));
    }
    dst.clear()?;
    dst.add_paths(&src.paths()?)?;
    let mut copied = Vec::new();
    for table in TABLES {
        let (mut sum, mut rows) = (Sum::new(), 0u64);
        let mut batch = Vec::with_capacity(BATCH);
        src.read(table, &mut |row| {
            sum.add(&row);
            rows += 1;
            batch.push(row);
            if batch.len() == BATCH {
                dst.write(table, &batch)?;
                batch.clear();
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            dst.write(table, &batch)?;
        }
        copied.push(TableReport {
            table: table.name,
            rows,
            checksum: sum.hex(),
        });
    }
    dst.finish()?;
    let written = checksums(dst)?;
    if let Some((a, b)) = copied.iter().zip(&written).find(|(a, b)| a != b) {
        return Err(StoreError::Transfer(format!(
            "table {} does not verify: {} rows ({}) read, {} rows ({}) written; nothing was kept",
            a.table, a.rows, a.checksum, b.rows, b.checksum
        )));
    }
    Ok(TransferReport {
        tables: copied,
        already_there: false,
    })
}

fn checksums(side: &mut dyn Side) -> Result<Vec<TableReport>, StoreError> {
    TABLES
        .iter()
        .map(|table| {
            let (mut sum, mut rows) = (Sum::new(), 0u64);
            side.read(table, &mut |row| {
                sum.add(&row);
                rows += 1;
                Ok(())
            })?;
            Ok(TableReport {
                table: table.name,
                rows,
                checksum: sum.hex(),
            })
        })
        .collect()
}

/// SHA-256 over rows, each value tagged with its kind and length.
struct Sum(ring::digest::Context);

impl Sum {
    fn new() -> Sum {
        Sum(ring::digest::Context::new(&ring::digest::SHA256))
    }

    fn add(&mut self, row: &[Val]) {
        for v in row {
            match v {
                Val::Null => self.0.update(b"n"),
                Val::Int(i) => {
                    self.0.update(b"i");
                    self.0.update(&i.to_be_bytes());
                }
                Val::Text(s) => {
                    self.0.update(b"t");
                    self.0.update(&(s.len() as u64).to_be_bytes());
                    self.0.update(s.as_bytes());
                }
            }
        }
        self.0.update(b"\n");
    }

    fn hex(self) -> String {
        self.0
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// PostgreSQL's `numeric` text as SQLite's NUMERIC value would print (`SqlNum::text`).
fn canonical_numeric(text: &str) -> String {
    match text.parse::<i64>() {
        Ok(i) => i.to_string(),
        Err(_) => text
            .parse::<f64>()
            .map_or_else(|_| text.to_owned(), |f| SqlNum::Real(f).text()),
    }
}

fn select(
    table: &Table,
    column: impl Fn(&str, Col) -> String,
    order: impl Fn(&str, Col) -> String,
) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|(e, _, _, c)| column(e, *c))
        .collect();
    let order: Vec<String> = table.order.iter().map(|(e, c)| order(e, *c)).collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns.join(", "),
        table.from,
        order.join(", ")
    )
}

struct Sqlite<'c>(rusqlite::Transaction<'c>);

impl Side for Sqlite<'_> {
    fn read(
        &mut self,
        table: &Table,
        each: &mut dyn FnMut(Vec<Val>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let sql = select(table, |e, _| e.to_owned(), |e, _| e.to_owned());
        let mut stmt = self.0.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(table.columns.len());
            for (i, (_, _, _, col)) in table.columns.iter().enumerate() {
                values.push(match (row.get::<_, SqlValue>(i)?, col) {
                    (SqlValue::Null, _) => Val::Null,
                    (SqlValue::Integer(n), Col::Num) => Val::Text(n.to_string()),
                    (SqlValue::Real(f), Col::Num) => Val::Text(SqlNum::Real(f).text()),
                    (SqlValue::Integer(n), _) => Val::Int(n),
                    (SqlValue::Text(t), _) => Val::Text(t),
                    (SqlValue::Real(f), _) => Val::Text(SqlNum::Real(f).text()),
                    (SqlValue::Blob(_), _) => {
                        return Err(StoreError::Corrupt(format!(
                            "a binary value in table {}",
                            table.name
                        )));
                    }
                });
            }
            each(values)?;
        }
        Ok(())
    }

    fn write(&mut self, table: &Table, rows: &[Vec<Val>]) -> Result<(), StoreError> {
        let names: Vec<&str> = table.columns.iter().map(|c| c.1).collect();
        let values: Vec<String> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| c.2.replace('?', &format!("?{}", i + 1)))
            .collect();
        let mut stmt = self.0.prepare_cached(&format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            names.join(", "),
            values.join(", ")
        ))?;
        for row in rows {
            let bound = row.iter().zip(table.columns).map(|(v, c)| match (v, c.3) {
                (Val::Null, _) => SqlValue::Null,
                (Val::Int(i), _) => SqlValue::Integer(*i),
                (Val::Text(t), Col::Num) => t.parse::<i64>().map_or_else(
                    |_| SqlValue::Real(t.parse().unwrap_or(f64::NAN)),
                    SqlValue::Integer,
                ),
                (Val::Text(t), _) => SqlValue::Text(t.clone()),
            });
            stmt.execute(rusqlite::params_from_iter(bound))?;
        }
        Ok(())
    }

    fn paths(&mut self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .0
            .prepare("SELECT path FROM attr_paths ORDER BY path")?;
        let paths = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(paths)
    }

    fn add_paths(&mut self, paths: &[String]) -> Result<(), StoreError> {
        let mut stmt = self
            .0
            .prepare("INSERT INTO attr_paths (path) VALUES (?1) ON CONFLICT (path) DO NOTHING")?;
        for p in paths {
            stmt.execute([p])?;
        }
        Ok(())
    }

    fn rows(&mut self) -> Result<i64, StoreError> {
        Ok(self.0.query_row(&rows_sql(), [], |r| r.get(0))?)
    }

    fn clear(&mut self) -> Result<(), StoreError> {
        for table in TABLES.iter().rev() {
            self.0.execute(&format!("DELETE FROM {}", table.name), [])?;
        }
        Ok(())
    }

    /// The flags' counts come from the copied index rows (they are not copied).
    fn finish(&mut self) -> Result<(), StoreError> {
        self.0.execute_batch(crate::sqlite::index::RECOUNT_FLAGS)?;
        Ok(())
    }
}

/// `t` as a field of `COPY`'s text format.
fn copy_escape(t: &str, out: &mut String) {
    for c in t.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Rows beyond what a fresh database holds (its default tenant).
fn rows_sql() -> String {
    let counts: Vec<String> = TABLES
        .iter()
        .map(|t| {
            if t.name == "tenants" {
                "(SELECT count(*) FROM tenants WHERE name <> 'default')".to_owned()
            } else {
                format!("(SELECT count(*) FROM {})", t.name)
            }
        })
        .collect();
    format!("SELECT {}", counts.join(" + "))
}

/// A PostgreSQL transaction, and the ids of its attribute paths (once added).
struct Pg<'c>(
    postgres::Transaction<'c>,
    std::collections::HashMap<String, i64>,
);

/// Rows read from PostgreSQL at a time.
const FETCH: i32 = 5000;

impl Side for Pg<'_> {
    fn read(
        &mut self,
        table: &Table,
        each: &mut dyn FnMut(Vec<Val>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let sql = select(
            table,
            |e, c| match c {
                Col::Text => e.to_owned(),
                Col::Num => format!("({e})::text"),
                Col::Bool => format!("({e})::int::bigint"),
                Col::Int | Col::Int32 => format!("({e})::bigint"),
            },
            |e, c| match c {
                Col::Text => format!("{e} COLLATE \"C\""),
                _ => e.to_owned(),
            },
        );
        let portal = self.0.bind(sql.as_str(), &[])?;
        loop {
            let rows = self.0.query_portal(&portal, FETCH)?;
            for row in &rows {
                let mut values = Vec::with_capacity(table.columns.len());
                for (i, (_, _, _, col)) in table.columns.iter().enumerate() {
                    values.push(match col {
                        Col::Text => row
                            .try_get::<_, Option<String>>(i)?
                            .map_or(Val::Null, Val::Text),
                        Col::Num => row
                            .try_get::<_, Option<String>>(i)?
                            .map_or(Val::Null, |t| Val::Text(canonical_numeric(&t))),
                        Col::Int | Col::Int32 | Col::Bool => row
                            .try_get::<_, Option<i64>>(i)?
                            .map_or(Val::Null, Val::Int),
                    });
                }
                each(values)?;
            }
            if rows.len() < FETCH as usize {
                return Ok(());
            }
        }
    }

    /// With `COPY … FROM STDIN` (text format): the fastest way in, a million users'
    /// index rows in minutes, not hours. An attribute path is written as the target's
    /// own id for it.
    fn write(&mut self, table: &Table, rows: &[Vec<Val>]) -> Result<(), StoreError> {
        let names: Vec<&str> = table.columns.iter().map(|c| c.1).collect();
        let mut text = String::new();
        for row in rows {
            for (i, (v, (_, _, template, col))) in row.iter().zip(table.columns).enumerate() {
                if i > 0 {
                    text.push('\t');
                }
                let path_id;
                let v = match v {
                    Val::Text(path) if template.contains("attr_paths") => {
                        path_id = Val::Int(*self.1.get(path).ok_or_else(|| {
                            StoreError::Transfer(format!("no id for attribute path {path}"))
                        })?);
                        &path_id
                    }
                    v => v,
                };
                match (v, col) {
                    (Val::Null, _) => text.push_str("\\N"),
                    (Val::Int(n), Col::Bool) => text.push(if *n != 0 { 't' } else { 'f' }),
                    (Val::Int(n), _) => text.push_str(&n.to_string()),
                    (Val::Text(t), _) => copy_escape(t, &mut text),
                }
            }
            text.push('\n');
        }
        let mut copy = self.0.copy_in(&format!(
            "COPY {} ({}) FROM STDIN",
            table.name,
            names.join(", ")
        ))?;
        std::io::Write::write_all(&mut copy, text.as_bytes())?;
        copy.finish()?;
        Ok(())
    }

    fn paths(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .0
            .query(
                "SELECT path FROM attr_paths ORDER BY path COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn add_paths(&mut self, paths: &[String]) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO attr_paths (path) SELECT unnest($1::text[]) ON CONFLICT (path) DO NOTHING",
            &[&paths],
        )?;
        self.1 = self
            .0
            .query("SELECT path, id FROM attr_paths", &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(())
    }

    fn rows(&mut self) -> Result<i64, StoreError> {
        Ok(self.0.query_one(&rows_sql(), &[])?.get(0))
    }

    fn clear(&mut self) -> Result<(), StoreError> {
        for table in TABLES.iter().rev() {
            self.0
                .execute(&format!("DELETE FROM {}", table.name), &[])?;
        }
        Ok(())
    }

    /// The serial counters move past the copied rows, so that the next resource or audit
    /// row gets a number of its own.
    fn finish(&mut self) -> Result<(), StoreError> {
        self.0.batch_execute(
            "SELECT setval(pg_get_serial_sequence('resources', 'seq'), coalesce((SELECT max(seq) FROM resources), 0) + 1, false); \
             SELECT setval(pg_get_serial_sequence('audit', 'seq'), coalesce((SELECT max(seq) FROM audit), 0) + 1, false);",
        )?;
        Ok(())
    }
}
