//! SQLite's words for the shared filter compiler (`filter_sql`), and its parameters bound
//! as SQLite values.

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use crate::error::StoreError;
use crate::filter_sql::{Dialect, Param};
use crate::index_rows::SqlNum;

/// SQLite's dialect, counting on the read connection `conn`.
pub struct Sqlite<'c> {
    pub conn: &'c Connection,
}

impl Dialect for Sqlite<'_> {
    fn placeholder(&self, n: usize, _: &Param) -> String {
        format!("?{n}")
    }

    fn contains(&self, col: &str, v: &str) -> String {
        format!("instr({col}, {v}) > 0")
    }

    fn ends_with(&self, col: &str, v: &str) -> String {
        format!("substr({col}, -length({v})) = {v}")
    }

    fn starts_with(&self, col: &str, v: &str) -> String {
        format!("substr({col}, 1, length({v})) = {v}")
    }

    fn index_by_resource(&self) -> &'static str {
        // Through the per-resource index, so that each driver row costs a few index
        // steps, instead of SQLite materialising every row the comparison matches.
        "attr_index p INDEXED BY attr_index_by_resource"
    }

    fn version_text(&self) -> &'static str {
        "'W/\"' || version || '\"'"
    }

    fn count(&mut self, sql: &str, args: &[Param]) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(sql)?
            .query_row(rusqlite::params_from_iter(values(args)), |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// The parameters as SQLite values.
pub fn values(args: &[Param]) -> impl Iterator<Item = SqlValue> + '_ {
    args.iter().map(value)
}

pub fn value(p: &Param) -> SqlValue {
    match p {
        Param::Text(s) => SqlValue::Text(s.clone()),
        Param::Int(i) => SqlValue::Integer(*i),
        Param::Num(SqlNum::Int(i)) => SqlValue::Integer(*i),
        Param::Num(SqlNum::Real(f)) => SqlValue::Real(*f),
    }
}
