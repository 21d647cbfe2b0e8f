//! The attribute index's rows, whatever the backend: every searchable single value of a
//! resource as a typed row (path, element, text or number), computed in Rust from the
//! schema (case folding included), so that filters and sorting compare alike on SQLite and
//! PostgreSQL; and the attribute paths the schemas in force can produce.

use std::collections::HashMap;

use scimgate_model::filter::{Comparand, instant};
use scimgate_model::registry::Registry;
use scimgate_model::schema::{AttrType, AttributeDef, find_attribute};
use scimgate_model::schemas::COMMON;
use scimgate_model::{ResourceType, fold_case};
use serde_json::{Map, Value};

/// `meta` attributes kept in the index (the rest of `meta` is derived).
pub const META_CREATED: &str = "meta.created";
pub const META_LAST_MODIFIED: &str = "meta.lastModified";

/// Path → id of `attr_paths`, loaded once at open.
#[derive(Debug, Clone, Default)]
pub struct PathIds(pub(crate) HashMap<String, i64>);

impl PathIds {
    pub fn get(&self, path: &str) -> Option<i64> {
        self.0.get(path).copied()
    }

    /// The ids of `path` and of its sub-attributes' paths (`path.sub`): where an
    /// attribute's index rows are.
    pub fn of_attribute(&self, path: &str) -> Vec<i64> {
        let prefix = format!("{path}.");
        self.0
            .iter()
            .filter(|(p, _)| *p == path || p.starts_with(&prefix))
            .map(|(_, id)| *id)
            .collect()
    }
}

/// `meta.lastModified` as its index row holds it: nanoseconds since the epoch.
pub fn modified_nanos(now: &str) -> Option<i64> {
    instant(&Value::String(now.to_owned())).map(nanos)
}

pub fn known_paths(registry: &Registry) -> Vec<String> {
    let mut out = vec![META_CREATED.to_owned(), META_LAST_MODIFIED.to_owned()];
    let mut add = |prefix: String, def: &AttributeDef| {
        out.push(prefix.clone());
        for sub in &def.sub_attributes {
            out.push(format!("{prefix}.{}", sub.name));
        }
    };
    for rt in ResourceType::ALL {
        for def in rt.core_schema().attributes.iter().chain(COMMON.iter()) {
            add(def.name.to_owned(), def);
        }
        for ext in registry.extensions(rt) {
            for def in &ext.attributes {
                add(format!("{}:{}", ext.id, def.name), def);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// One single value: text (folded unless caseExact) or a number; both `None` for the
/// marker row of a complex value.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    pub path: String,
    pub elem: i64,
    pub text: Option<String>,
    pub num: Option<SqlNum>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SqlNum {
    Int(i64),
    Real(f64),
}

impl SqlNum {
    /// A JSON number: an integer when it is one.
    pub fn from_json(n: &serde_json::Number) -> SqlNum {
        n.as_i64()
            .map_or_else(|| SqlNum::Real(n.as_f64().unwrap_or(f64::NAN)), SqlNum::Int)
    }

    /// As both backends keep it (SQLite's NUMERIC affinity): whole reals as integers.
    pub fn stored(self) -> SqlNum {
        match self {
            SqlNum::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => SqlNum::Int(f as i64),
            n => n,
        }
    }

    /// The stored number as text (PostgreSQL's `numeric`, `scimgate migrate`'s sums):
    /// reals as Rust prints them, the shortest text that reads back the same.
    pub fn text(self) -> String {
        match self.stored() {
            SqlNum::Int(i) => i.to_string(),
            SqlNum::Real(f) => f.to_string(),
        }
    }
}

/// Nanoseconds as stored: dateTimes beyond i64 (years past 2262) saturate.
pub fn nanos(n: i128) -> i64 {
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// The typed SQL value a comparand is compared with.
pub fn comparand_num(c: &Comparand) -> Option<SqlNum> {
    match c {
        Comparand::Bool(b) => Some(SqlNum::Int(i64::from(*b))),
        Comparand::Number(n) => Some(SqlNum::Real(*n)),
        Comparand::Instant(n) => Some(SqlNum::Int(nanos(*n))),
        Comparand::Null | Comparand::Text { .. } => None,
    }
}

/// Every index row of a resource with these attributes and timestamps.
pub fn rows_for(
    rt: ResourceType,
    attributes: &Map<String, Value>,
    created: &str,
    modified: &str,
) -> Vec<IndexRow> {
    let mut rows = Vec::new();
    for (key, value) in attributes {
        if let Some(ext) = rt.extension(key) {
            for (name, v) in value.as_object().into_iter().flatten() {
                if let Some(def) = ext.attribute(name) {
                    attribute_rows(def, &format!("{}:{}", ext.id, def.name), v, &mut rows);
                }
            }
        } else if let Some(def) = rt
            .core_schema()
            .attribute(key)
            .or_else(|| find_attribute(&COMMON, key))
        {
            attribute_rows(def, def.name, value, &mut rows);
        }
    }
    for (path, stamp) in [(META_CREATED, created), (META_LAST_MODIFIED, modified)] {
        if let Some(n) = instant(&Value::String(stamp.to_owned())) {
            rows.push(IndexRow {
                path: path.to_owned(),
                elem: 0,
                text: None,
                num: Some(SqlNum::Int(nanos(n))),
            });
        }
    }
    rows
}

fn attribute_rows(def: &AttributeDef, path: &str, value: &Value, rows: &mut Vec<IndexRow>) {
    match value {
        Value::Array(items) if def.multi_valued => {
            for (i, item) in items.iter().enumerate() {
                single_rows(def, path, i as i64, item, rows);
            }
        }
        v => single_rows(def, path, 0, v, rows),
    }
}

fn single_rows(def: &AttributeDef, path: &str, elem: i64, value: &Value, rows: &mut Vec<IndexRow>) {
    if def.ty != AttrType::Complex {
        rows.extend(leaf_row(def, path, elem, value));
        return;
    }
    let Some(obj) = value.as_object().filter(|o| !o.is_empty()) else {
        return;
    };
    rows.push(IndexRow {
        path: path.to_owned(),
        elem,
        text: None,
        num: None,
    });
    for (name, v) in obj {
        if let Some(sub) = def.sub_attribute(name) {
            rows.extend(leaf_row(sub, &format!("{path}.{}", sub.name), elem, v));
        }
    }
}

fn leaf_row(def: &AttributeDef, path: &str, elem: i64, value: &Value) -> Option<IndexRow> {
    let (text, num) = match (def.ty, value) {
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(s)) => (
            Some(if def.case_exact {
                s.clone()
            } else {
                fold_case(s)
            }),
            None,
        ),
        (AttrType::Boolean, Value::Bool(b)) => (None, Some(SqlNum::Int(i64::from(*b)))),
        (AttrType::Integer | AttrType::Decimal, Value::Number(n)) => {
            (None, Some(SqlNum::from_json(n)))
        }
        (AttrType::DateTime, v) => (None, Some(SqlNum::Int(nanos(instant(v)?)))),
        _ => return None,
    };
    Some(IndexRow {
        path: path.to_owned(),
        elem,
        text,
        num,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_cover_leaves_markers_extensions_and_meta() {
        let attrs = json!({
            "userName": "Émile",
            "externalId": "AbC",
            "active": true,
            "name": {"givenName": "É"},
            "emails": [{"value": "A@x", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "M1"}},
        });
        let rows = rows_for(
            ResourceType::User,
            attrs.as_object().expect("obj"),
            "2026-01-01T00:00:00.000Z",
            "2026-01-01T00:00:00.001Z",
        );
        let show: Vec<String> = rows
            .iter()
            .map(|r| format!("{}#{} {:?} {:?}", r.path, r.elem, r.text, r.num))
            .collect();
        assert_eq!(
            show,
            [
                "userName#0 Some(\"émile\") None",
                "externalId#0 Some(\"AbC\") None",
                "active#0 None Some(Int(1))",
                "name#0 None None",
                "name.givenName#0 Some(\"é\") None",
                "emails#0 None None",
                "emails.value#0 Some(\"a@x\") None",
                "emails.type#0 Some(\"work\") None",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department#0 Some(\"r&d\") None",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager#0 None None",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value#0 Some(\"m1\") None",
                "meta.created#0 None Some(Int(1767225600000000000))",
                "meta.lastModified#0 None Some(Int(1767225600001000000))",
            ]
        );
        let known = known_paths(scimgate_model::registry::current());
        assert!(
            rows.iter().all(|r| known.contains(&r.path)),
            "every row's path is registered"
        );
    }
}
