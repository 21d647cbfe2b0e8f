//! Compiles a parsed filter into one SQL set expression over `resources.seq`, driven by the
//! attribute index: each comparison is an indexed lookup, `and`/`or`/`not` are
//! INTERSECT/UNION/EXCEPT, and a value filter works on (resource, element) pairs so that
//! `emails[type eq "work" and value eq "x"]` means one email. Values only ever bind as
//! parameters.

use std::collections::HashMap;

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use scimgate_model::ResourceType;
use scimgate_model::filter::{Comparand, CompareOp, Filter};
use scimgate_model::path::AttrPath;
use scimgate_model::schema::AttrType;

use super::index::{PathIds, comparand_num};
use super::type_name;
use crate::error::StoreError;

pub struct FilterSql<'a> {
    /// For estimating how many rows a comparison matches, to pick what drives an `and`.
    conn: &'a Connection,
    paths: &'a PathIds,
    tenant: &'a str,
    rt: ResourceType,
    args: &'a mut Vec<SqlValue>,
    /// Estimates already counted, by node address: an `and` chain asks for its left side's
    /// estimate at every level, which without this costs O(n²) count queries.
    estimates: HashMap<*const Filter, u64>,
    /// Count queries run to estimate, for the test that planning is linear.
    pub(crate) estimate_queries: usize,
}

/// Where a path's values live.
enum Source {
    /// `attr_index` rows of this path id.
    Index(i64),
    /// The `id` column.
    Id,
    /// A group's members: `memberships.member_id`.
    MemberValue,
    /// A user's groups: `memberships.group_id`.
    GroupValue,
    /// `meta.resourceType` and `meta.version`, computed from the resource row.
    Meta(&'static str),
}

impl<'a> FilterSql<'a> {
    pub fn new(
        conn: &'a Connection,
        paths: &'a PathIds,
        tenant: &'a str,
        rt: ResourceType,
        args: &'a mut Vec<SqlValue>,
    ) -> Self {
        FilterSql {
            conn,
            paths,
            tenant,
            rt,
            args,
            estimates: HashMap::new(),
            estimate_queries: 0,
        }
    }

    fn bind(&mut self, v: SqlValue) -> String {
        self.args.push(v);
        format!("?{}", self.args.len())
    }

    fn text(&mut self, s: &str) -> String {
        self.bind(SqlValue::Text(s.to_owned()))
    }

    /// Every resource of the type in the tenant, as the complement's universe.
    fn all(&mut self) -> String {
        let (t, rt) = (self.text(self.tenant), self.text(type_name(self.rt)));
        format!("SELECT seq FROM resources WHERE tenant = {t} AND resource_type = {rt}")
    }

    /// A SQL query whose rows' `seq` are the resources matching `f`.
    pub fn resources(&mut self, f: &Filter) -> Result<String, StoreError> {
        Ok(match f {
            Filter::And(a, b) => {
                let (small, large) = self.smaller_first(a, b)?;
                let driver = self.resources(small)?;
                match probe(large) {
                    Some((path, pred)) => {
                        let exists = self.exists(path, pred, false)?;
                        format!("SELECT seq FROM ({driver}) d WHERE {exists}")
                    }
                    None => {
                        let other = self.resources(large)?;
                        format!("SELECT seq FROM ({driver}) INTERSECT SELECT seq FROM ({other})")
                    }
                }
            }
            Filter::Or(a, b) => {
                let (a, b) = (self.resources(a)?, self.resources(b)?);
                format!("SELECT seq FROM ({a}) UNION SELECT seq FROM ({b})")
            }
            Filter::Not(a) => {
                let inner = self.resources(a)?;
                let all = self.all();
                format!("{all} EXCEPT SELECT seq FROM ({inner})")
            }
            Filter::ValuePath { attr, filter } => {
                format!("SELECT seq FROM ({})", self.elements(filter, attr)?)
            }
            Filter::Compare { path, op, value } => match (op, value) {
                (CompareOp::Eq, Comparand::Null) => {
                    self.complement_of_resources(|s| s.atom(path, Pred::Present))?
                }
                (CompareOp::Ne, Comparand::Null) => self.seqs(path, Pred::Present)?,
                (CompareOp::Ne, c) => {
                    self.complement_of_resources(|s| s.atom(path, Pred::Compare(CompareOp::Eq, c)))?
                }
                (op, c) => self.seqs(path, Pred::Compare(*op, c))?,
            },
            Filter::Present(path) => self.seqs(path, Pred::Present)?,
        })
    }

    /// Orders the two sides of an `and` so that the one matching fewer rows drives and the
    /// other is only probed: `emails[type eq "work" and value eq "x"]` starts from the one
    /// address, not from every work email.
    fn smaller_first<'f>(
        &mut self,
        a: &'f Filter,
        b: &'f Filter,
    ) -> Result<(&'f Filter, &'f Filter), StoreError> {
        Ok(if self.estimate(b)? < self.estimate(a)? {
            (b, a)
        } else {
            (a, b)
        })
    }

    /// A condition on a driver row `d` (its `seq`, and `elem` when `same_element`): some
    /// value of `path` satisfies `pred`. Written straight against `attr_index`, through the
    /// per-resource index, so that each driver row costs a few index steps, instead of
    /// SQLite materialising or scanning every row the comparison matches.
    fn exists(
        &mut self,
        path: &AttrPath,
        pred: Pred<'_>,
        same_element: bool,
    ) -> Result<String, StoreError> {
        let element = if same_element {
            " AND p.elem = d.elem"
        } else {
            ""
        };
        if let Source::Index(path_id) = self.source(path)? {
            let t = self.text(self.tenant);
            let id = self.bind(SqlValue::Integer(path_id));
            let marker = path.sub.is_none() && path.attr.ty == AttrType::Complex;
            let cond = self.predicate(pred, "p.text", "p.num", marker)?;
            return Ok(format!(
                "EXISTS (SELECT 1 FROM attr_index p INDEXED BY attr_index_by_resource \
                 WHERE p.seq = d.seq AND p.path_id = {id}{element} AND p.tenant = {t} AND {cond})"
            ));
        }
        let atom = self.atom(path, pred)?;
        Ok(format!(
            "EXISTS (SELECT 1 FROM ({atom}) p WHERE p.seq = d.seq{element})"
        ))
    }

    /// About how many rows `f` matches, counted up to a cap on the index itself; each node
    /// is counted once per query.
    fn estimate(&mut self, f: &Filter) -> Result<u64, StoreError> {
        let key: *const Filter = f;
        if let Some(n) = self.estimates.get(&key) {
            return Ok(*n);
        }
        let n = self.count_estimate(f)?;
        self.estimates.insert(key, n);
        Ok(n)
    }

    fn count_estimate(&mut self, f: &Filter) -> Result<u64, StoreError> {
        const CAP: u64 = 1000;
        Ok(match f {
            Filter::And(a, b) => self.estimate(a)?.min(self.estimate(b)?),
            Filter::Or(a, b) => self.estimate(a)?.saturating_add(self.estimate(b)?),
            Filter::ValuePath { filter, .. } => self.estimate(filter)?,
            // A complement is as large as the tenant, give or take.
            Filter::Not(_) => u64::MAX,
            f => match probe(f) {
                None => u64::MAX,
                Some((path, pred)) => {
                    let mut args = Vec::new();
                    let mut scratch =
                        FilterSql::new(self.conn, self.paths, self.tenant, self.rt, &mut args);
                    let atom = scratch.atom(path, pred)?;
                    self.estimate_queries += 1;
                    let sql = format!("SELECT count(*) FROM (SELECT 1 FROM ({atom}) LIMIT {CAP})");
                    let n: i64 = self
                        .conn
                        .prepare_cached(&sql)?
                        .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
                    u64::try_from(n).unwrap_or(CAP)
                }
            },
        })
    }

    fn seqs(&mut self, path: &AttrPath, pred: Pred<'_>) -> Result<String, StoreError> {
        Ok(format!("SELECT seq FROM ({})", self.atom(path, pred)?))
    }

    fn complement_of_resources(
        &mut self,
        inner: impl FnOnce(&mut Self) -> Result<String, StoreError>,
    ) -> Result<String, StoreError> {
        let inner = inner(self)?;
        let all = self.all();
        Ok(format!("{all} EXCEPT SELECT seq FROM ({inner})"))
    }

    /// A SQL query of `(seq, elem)` pairs: the single values of `attr` matching `f`.
    fn elements(&mut self, f: &Filter, attr: &AttrPath) -> Result<String, StoreError> {
        Ok(match f {
            Filter::And(a, b) => {
                let (small, large) = self.smaller_first(a, b)?;
                let driver = self.elements(small, attr)?;
                match probe(large) {
                    Some((path, pred)) => {
                        let exists = self.exists(path, pred, true)?;
                        format!("SELECT seq, elem FROM ({driver}) d WHERE {exists}")
                    }
                    None => {
                        let other = self.elements(large, attr)?;
                        format!(
                            "SELECT seq, elem FROM ({driver}) INTERSECT SELECT seq, elem FROM ({other})"
                        )
                    }
                }
            }
            Filter::Or(a, b) => {
                let (a, b) = (self.elements(a, attr)?, self.elements(b, attr)?);
                format!("SELECT seq, elem FROM ({a}) UNION SELECT seq, elem FROM ({b})")
            }
            Filter::Not(a) => {
                let inner = self.elements(a, attr)?;
                self.complement_of_elements(attr, inner)?
            }
            Filter::ValuePath { .. } => {
                return Err(StoreError::UnsupportedFilter(
                    "value filters cannot nest".into(),
                ));
            }
            Filter::Compare { path, op, value } => match (op, value) {
                (CompareOp::Eq, Comparand::Null) => {
                    let present = self.atom(path, Pred::Present)?;
                    self.complement_of_elements(attr, present)?
                }
                (CompareOp::Ne, Comparand::Null) => self.atom(path, Pred::Present)?,
                (CompareOp::Ne, c) => {
                    let eq = self.atom(path, Pred::Compare(CompareOp::Eq, c))?;
                    self.complement_of_elements(attr, eq)?
                }
                (op, c) => self.atom(path, Pred::Compare(*op, c))?,
            },
            Filter::Present(path) => self.atom(path, Pred::Present)?,
        })
    }

    fn complement_of_elements(
        &mut self,
        attr: &AttrPath,
        inner: String,
    ) -> Result<String, StoreError> {
        let whole = AttrPath { sub: None, ..*attr };
        let all = self.atom(&whole, Pred::Present)?;
        Ok(format!(
            "SELECT seq, elem FROM ({all}) EXCEPT SELECT seq, elem FROM ({inner})"
        ))
    }

    fn source(&self, path: &AttrPath) -> Result<Source, StoreError> {
        let name = path.canonical();
        let unsupported =
            || StoreError::UnsupportedFilter(format!("'{name}' cannot be used in a filter"));
        match (self.rt, name.as_str()) {
            (_, "id") => Ok(Source::Id),
            (ResourceType::Group, "members" | "members.value") => Ok(Source::MemberValue),
            (ResourceType::User, "groups" | "groups.value") => Ok(Source::GroupValue),
            (ResourceType::Group, n) if n.starts_with("members.") => Err(unsupported()),
            (ResourceType::User, n) if n.starts_with("groups.") => Err(unsupported()),
            (_, "meta.version") => Ok(Source::Meta("'W/\"' || version || '\"'")),
            (_, "meta.resourceType") => Ok(Source::Meta("resource_type")),
            (_, "meta.location" | "meta") => Err(unsupported()),
            (_, "password") => Err(unsupported()),
            _ => self
                .paths
                .get(&name)
                .map(Source::Index)
                .ok_or_else(unsupported),
        }
    }

    /// `(seq, elem)` pairs of the single values of `path` that satisfy `pred`.
    fn atom(&mut self, path: &AttrPath, pred: Pred<'_>) -> Result<String, StoreError> {
        let t = self.text(self.tenant);
        Ok(match self.source(path)? {
            Source::Index(path_id) => {
                let p = self.bind(SqlValue::Integer(path_id));
                let marker = path.sub.is_none() && path.attr.ty == AttrType::Complex;
                let cond = self.predicate(pred, "text", "num", marker)?;
                format!(
                    "SELECT seq, elem FROM attr_index WHERE tenant = {t} AND path_id = {p} AND {cond}"
                )
            }
            Source::Id => {
                let rt = self.text(type_name(self.rt));
                let cond = self.predicate(pred, "id", "NULL", false)?;
                format!(
                    "SELECT seq, 0 AS elem FROM resources WHERE tenant = {t} AND resource_type = {rt} AND {cond}"
                )
            }
            Source::Meta(expression) => {
                let rt = self.text(type_name(self.rt));
                let cond = self.predicate(pred, expression, "NULL", false)?;
                format!(
                    "SELECT seq, 0 AS elem FROM resources WHERE tenant = {t} AND resource_type = {rt} AND {cond}"
                )
            }
            Source::MemberValue => {
                let cond = self.predicate(pred, "m.member_id", "NULL", false)?;
                format!(
                    "SELECT g.seq AS seq, m.member_id AS elem FROM memberships m \
                     JOIN resources g ON g.tenant = m.tenant AND g.id = m.group_id WHERE m.tenant = {t} AND {cond}"
                )
            }
            Source::GroupValue => {
                let cond = self.predicate(pred, "m.group_id", "NULL", false)?;
                format!(
                    "SELECT u.seq AS seq, m.group_id AS elem FROM memberships m \
                     JOIN resources u ON u.tenant = m.tenant AND u.id = m.member_id WHERE m.tenant = {t} AND {cond}"
                )
            }
        })
    }

    /// The SQL condition for one value held in `text_col` (strings) or `num_col` (numbers,
    /// booleans, dateTimes).
    fn predicate(
        &mut self,
        pred: Pred<'_>,
        text_col: &str,
        num_col: &str,
        marker: bool,
    ) -> Result<String, StoreError> {
        let (op, c) = match pred {
            Pred::Present if marker => return Ok("1".into()),
            Pred::Present => {
                return Ok(format!(
                    "({num_col} IS NOT NULL OR ({text_col} IS NOT NULL AND {text_col} <> ''))"
                ));
            }
            Pred::Compare(op, c) => (op, c),
        };
        if let Some(n) = comparand_num(c) {
            let v = self.bind(match n {
                super::index::SqlNum::Int(i) => SqlValue::Integer(i),
                super::index::SqlNum::Real(f) => SqlValue::Real(f),
            });
            return Ok(format!("{num_col} {} {v}", sql_operator(op)?));
        }
        let Comparand::Text { key: s, .. } = c else {
            return Err(StoreError::UnsupportedFilter(
                "null can only be compared with eq or ne".into(),
            ));
        };
        if s.is_empty() && matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
            return Ok(format!("{text_col} IS NOT NULL"));
        }
        let v = self.text(s);
        Ok(match op {
            CompareOp::Co => format!("instr({text_col}, {v}) > 0"),
            CompareOp::Ew => format!("substr({text_col}, -length({v})) = {v}"),
            CompareOp::Sw => match prefix_successor(s) {
                Some(upper) => {
                    let u = self.text(&upper);
                    format!("{text_col} >= {v} AND {text_col} < {u}")
                }
                None => format!("{text_col} >= {v} AND substr({text_col}, 1, length({v})) = {v}"),
            },
            op => format!("{text_col} {} {v}", sql_operator(op)?),
        })
    }
}

/// A comparison that is one index lookup, which an `and` can probe per row.
fn probe(f: &Filter) -> Option<(&AttrPath, Pred<'_>)> {
    match f {
        Filter::Present(path) => Some((path, Pred::Present)),
        Filter::Compare {
            op: CompareOp::Ne, ..
        }
        | Filter::Compare {
            value: Comparand::Null,
            ..
        } => None,
        Filter::Compare { path, op, value } => Some((path, Pred::Compare(*op, value))),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Pred<'a> {
    Present,
    Compare(CompareOp, &'a Comparand),
}

fn sql_operator(op: CompareOp) -> Result<&'static str, StoreError> {
    Ok(match op {
        CompareOp::Eq => "=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Ne | CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
            return Err(StoreError::UnsupportedFilter(format!(
                "'{}' has no plain SQL operator",
                op.keyword()
            )));
        }
    })
}

/// The least string greater than every string that starts with `prefix`, so that
/// `sw` is the index range `[prefix, successor)` (UTF-8 byte order is code point order).
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if next == 0xD800 {
            next = 0xE000; // skip the surrogates, which no char holds
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_bounds_the_prefix_range() {
        assert_eq!(prefix_successor("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        for s in ["ab", "abz", "ab\u{10FFFF}x"] {
            assert!(("ab".."ac").contains(&s));
        }
    }
}
