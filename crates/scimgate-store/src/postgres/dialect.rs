//! PostgreSQL's words for the shared filter compiler (`filter_sql`), and its parameters
//! bound as PostgreSQL values. Numbers bind as text cast to `numeric` (the index's type):
//! exact for the nanosecond instants no `float8` can hold.

use postgres::GenericClient;
use postgres::types::{ToSql, Type};

use crate::error::StoreError;
use crate::filter_sql::{Dialect, Param};

/// PostgreSQL's dialect, counting in the read transaction `tx`.
pub struct Pg<'t, C: GenericClient> {
    pub tx: &'t mut C,
}

impl<C: GenericClient> Dialect for Pg<'_, C> {
    fn placeholder(&self, n: usize, param: &Param) -> String {
        match param {
            Param::Num(_) => format!("${n}::text::numeric"),
            Param::Text(_) | Param::Int(_) => format!("${n}"),
        }
    }

    fn contains(&self, col: &str, v: &str) -> String {
        format!("strpos({col}, {v}) > 0")
    }

    fn ends_with(&self, col: &str, v: &str) -> String {
        format!("right({col}, length({v})) = {v}")
    }

    fn starts_with(&self, col: &str, v: &str) -> String {
        format!("left({col}, length({v})) = {v}")
    }

    fn index_by_resource(&self) -> &'static str {
        "attr_index p"
    }

    fn version_text(&self) -> &'static str {
        "'W/\"' || version::text || '\"'"
    }

    fn count(&mut self, sql: &str, args: &[Param]) -> Result<u64, StoreError> {
        let values = values(args);
        let n: i64 = self.tx.query_typed_one(sql, &typed(args, &values))?.get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// A parameter as a value PostgreSQL binds.
pub type Value = Box<dyn ToSql + Sync>;

pub fn values(args: &[Param]) -> Vec<Value> {
    args.iter().map(value).collect()
}

pub fn value(p: &Param) -> Value {
    match p {
        Param::Text(s) => Box::new(s.clone()),
        Param::Int(i) => Box::new(*i),
        Param::Num(n) => Box::new(n.text()),
    }
}

/// The bound values with their types, for a statement sent in one round trip
/// (`query_typed`): text, `int8`, and numbers as text (cast in the statement).
pub fn typed<'v>(args: &[Param], values: &'v [Value]) -> Vec<(&'v (dyn ToSql + Sync), Type)> {
    args.iter()
        .zip(values)
        .map(|(p, v)| {
            let t = match p {
                Param::Int(_) => Type::INT8,
                Param::Text(_) | Param::Num(_) => Type::TEXT,
            };
            (v.as_ref() as &(dyn ToSql + Sync), t)
        })
        .collect()
}

/// `numeric` text read back as the JSON number SQLite would give (a cursor's key).
pub fn num_json(text: &str) -> serde_json::Value {
    match text.parse::<i64>() {
        Ok(i) => serde_json::Value::from(i),
        Err(_) => text
            .parse::<f64>()
            .map_or(serde_json::Value::Null, serde_json::Value::from),
    }
}
