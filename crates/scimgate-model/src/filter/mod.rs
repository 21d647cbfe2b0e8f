//! SCIM filters (RFC 7644 §3.4.2.2, the whole ABNF of Figure 1): the typed AST, the parser
//! (`parser`), and a plain in-memory evaluator (`eval`) that defines what a filter means.
//! Storage compiles the same AST to SQL and is tested against `eval`.

mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

pub use eval::{instant, is_present, matches, matches_element};
pub use parser::{
    DEFAULT_MAX_DEPTH, FilterOptions, MAX_FILTER_LEN, MAX_FILTER_TERMS, parse,
    parse_element_filter, parse_noting, parse_with, parse_with_depth,
};

use crate::path::AttrPath;

/// A parsed filter. Paths are resolved against the resource type's schemas; inside a
/// [`Filter::ValuePath`] they name sub-attributes of its attribute.
#[derive(Debug, Clone)]
pub enum Filter {
    /// `path op value`. For a complex attribute with no sub-attribute named, the path
    /// already points at its `value` sub-attribute (RFC 7644 §3.4.2.2).
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Comparand,
    },
    /// `path pr`: has a value that is not null, not `""` and not an empty list.
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some single value (element) of `attr` satisfies `filter`.
    ValuePath {
        attr: AttrPath,
        filter: Box<Filter>,
    },
}

impl Filter {
    /// The first attribute path the filter names that `hidden` says no (a tenant's view of
    /// the schemas: an extension it may not use is unknown to it).
    pub fn find_path(&self, hidden: &impl Fn(&AttrPath) -> bool) -> Option<AttrPath> {
        match self {
            Filter::Compare { path, .. } | Filter::Present(path) => hidden(path).then_some(*path),
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.find_path(hidden).or_else(|| b.find_path(hidden))
            }
            Filter::Not(a) => a.find_path(hidden),
            Filter::ValuePath { attr, filter } => {
                if hidden(attr) {
                    Some(*attr)
                } else {
                    filter.find_path(hidden)
                }
            }
        }
    }

    /// How many comparisons (`op value`, `pr`) the filter holds: what testing one value
    /// against it costs. The parser bounds it, so the walk is shallow.
    pub fn terms(&self) -> usize {
        match self {
            Filter::Compare { .. } | Filter::Present(_) => 1,
            Filter::And(a, b) | Filter::Or(a, b) => a.terms() + b.terms(),
            Filter::Not(f) | Filter::ValuePath { filter: f, .. } => f.terms(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub fn from_keyword(word: &str) -> Option<CompareOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }

    pub fn keyword(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

/// The literal of a comparison, already typed by the attribute it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparand {
    /// `null` (only with `eq` and `ne`: absent, and present).
    Null,
    Bool(bool),
    Number(f64),
    /// A string: `key` is what is compared (Unicode-normalised and case-folded when the
    /// attribute is not `caseExact`), `sent` what the client wrote (what a PATCH filter
    /// upsert stores).
    Text {
        key: String,
        sent: String,
    },
    /// A dateTime, as nanoseconds since the Unix epoch.
    Instant(i128),
}
