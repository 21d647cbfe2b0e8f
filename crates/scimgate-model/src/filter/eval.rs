//! The meaning of a filter, evaluated over one rendered resource in memory. It is the
//! reference the SQL compiler is tested against, and PATCH uses it on single values.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Comparand, CompareOp, Filter};
use crate::casefold::fold_case;
use crate::path::AttrPath;
use crate::schema::AttributeDef;

/// Whether `resource` (as rendered, canonical names, extensions under their URN) matches.
pub fn matches(filter: &Filter, resource: &Map<String, Value>) -> bool {
    eval(filter, &|path| leaf_values(resource, path), resource)
}

/// Whether one single value (element) of a multi-valued complex attribute satisfies the
/// filter inside `attr[...]`, whose paths name the element's sub-attributes.
pub fn matches_element(filter: &Filter, element: &Value) -> bool {
    let empty = Map::new();
    let in_element = |p: &AttrPath| -> Vec<&Value> {
        p.sub
            .and_then(|sub| element.get(sub.name))
            .into_iter()
            .collect()
    };
    eval(filter, &in_element, &empty)
}

/// Evaluates with `values` giving the values a path names in the current context.
fn eval<'a>(
    filter: &Filter,
    values: &dyn Fn(&AttrPath) -> Vec<&'a Value>,
    resource: &'a Map<String, Value>,
) -> bool {
    match filter {
        Filter::And(a, b) => eval(a, values, resource) && eval(b, values, resource),
        Filter::Or(a, b) => eval(a, values, resource) || eval(b, values, resource),
        Filter::Not(f) => !eval(f, values, resource),
        Filter::Present(path) => values(path).into_iter().any(is_present),
        Filter::Compare { path, op, value } => compare_any(&values(path), *op, value, path.leaf()),
        Filter::ValuePath { attr, filter } => elements(resource, attr).into_iter().any(|element| {
            let in_element = |p: &AttrPath| -> Vec<&'a Value> {
                p.sub
                    .and_then(|sub| element.get(sub.name))
                    .into_iter()
                    .collect()
            };
            eval(filter, &in_element, resource)
        }),
    }
}

fn compare_any(values: &[&Value], op: CompareOp, c: &Comparand, def: &AttributeDef) -> bool {
    match (op, c) {
        (CompareOp::Eq, Comparand::Null) => !values.iter().any(|v| is_present(v)),
        (CompareOp::Ne, Comparand::Null) => values.iter().any(|v| is_present(v)),
        (CompareOp::Ne, _) => !values.iter().any(|v| compare(v, CompareOp::Eq, c, def)),
        _ => values.iter().any(|v| compare(v, op, c, def)),
    }
}

fn compare(v: &Value, op: CompareOp, c: &Comparand, def: &AttributeDef) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match c {
        Comparand::Null => None,
        Comparand::Bool(b) => v.as_bool().map(|x| x.cmp(b)),
        Comparand::Number(n) => v.as_f64().and_then(|x| x.partial_cmp(n)),
        Comparand::Instant(n) => instant(v).map(|x| x.cmp(n)),
        Comparand::Text { key: s, .. } => {
            let Some(text) = v.as_str() else { return false };
            let text = if def.case_exact {
                text.to_owned()
            } else {
                fold_case(text)
            };
            match op {
                CompareOp::Co => return text.contains(s.as_str()),
                CompareOp::Sw => return text.starts_with(s.as_str()),
                CompareOp::Ew => return text.ends_with(s.as_str()),
                _ => Some(text.as_str().cmp(s.as_str())),
            }
        }
    };
    let Some(ord) = ordering else { return false };
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

/// A dateTime value as nanoseconds since the epoch.
pub fn instant(v: &Value) -> Option<i128> {
    OffsetDateTime::parse(v.as_str()?, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp_nanos)
}

/// Not null, not `""`, not an empty list or object (RFC 7644 §3.4.2.2, `pr`).
pub fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn top_value<'a>(resource: &'a Map<String, Value>, path: &AttrPath) -> Option<&'a Value> {
    match path.extension {
        Some(ext) => resource.get(ext.id)?.get(path.attr.name),
        None => resource.get(path.attr.name),
    }
}

/// The single values of an attribute: a list's elements, or the one value.
fn elements<'a>(resource: &'a Map<String, Value>, path: &AttrPath) -> Vec<&'a Value> {
    match top_value(resource, path) {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
    }
}

/// Every value a path names; a multi-valued attribute gives one per element.
fn leaf_values<'a>(resource: &'a Map<String, Value>, path: &AttrPath) -> Vec<&'a Value> {
    let items = elements(resource, path);
    match path.sub {
        None => items,
        Some(sub) => items
            .into_iter()
            .filter_map(|item| item.get(sub.name))
            .collect(),
    }
}
