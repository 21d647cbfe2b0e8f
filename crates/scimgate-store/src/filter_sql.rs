//! Compiles a parsed filter into one SQL set expression over `resources.seq`, driven by the
//! attribute index: each comparison is an indexed lookup, `and`/`or`/`not` are
//! INTERSECT/UNION/EXCEPT, and a value filter works on (resource, element) pairs so that
//! `emails[type eq "work" and value eq "x"]` means one email. Values only ever bind as
//! parameters. What each node means (its target, its complement, which side of an `and`
//! drives) is decided in `filter_plan`; the few words SQLite and PostgreSQL spell
//! differently come from each backend's [`Dialect`].

use scimgate_model::ResourceType;
use scimgate_model::filter::{Comparand, CompareOp, Filter};
use scimgate_model::path::AttrPath;
use scimgate_model::schema::{AttrType, AttributeDef};
use scimgate_model::schemas::COMMON;

use crate::error::StoreError;
use crate::filter_plan::{
    Estimates, Pred, Step, Target, prefix_successor, probe, step, target, unusable,
};
use crate::index_rows::{PathIds, SqlNum, comparand_num};

/// A parameter of a generated statement; each backend binds it in its own types.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Int(i64),
    Num(SqlNum),
}

/// What a backend says in its own words.
pub trait Dialect {
    /// The placeholder of parameter `n` (1-based), which holds `param`.
    fn placeholder(&self, n: usize, param: &Param) -> String;
    /// A condition: `col` contains the text parameter `v`.
    fn contains(&self, col: &str, v: &str) -> String;
    /// A condition: `col` ends with the text parameter `v`.
    fn ends_with(&self, col: &str, v: &str) -> String;
    /// A condition: `col` starts with the text parameter `v` (when no upper bound exists).
    fn starts_with(&self, col: &str, v: &str) -> String;
    /// `attr_index` aliased `p`, read through its per-resource index.
    fn index_by_resource(&self) -> &'static str;
    /// A resource row's ETag text, from its `version` column.
    fn version_text(&self) -> &'static str;
    /// Runs `SELECT count(*) …` with `args` bound; its one number.
    fn count(&mut self, sql: &str, args: &[Param]) -> Result<u64, StoreError>;
}

pub struct FilterSql<'a, D: Dialect> {
    /// For counting how many rows a comparison matches, to pick what drives an `and`.
    dialect: &'a mut D,
    paths: &'a PathIds,
    tenant: &'a str,
    rt: ResourceType,
    args: &'a mut Vec<Param>,
    estimates: Estimates,
    /// Subqueries named so far (PostgreSQL wants every one named).
    aliases: usize,
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

impl<'a, D: Dialect> FilterSql<'a, D> {
    pub fn new(
        dialect: &'a mut D,
        paths: &'a PathIds,
        tenant: &'a str,
        rt: ResourceType,
        args: &'a mut Vec<Param>,
    ) -> Self {
        FilterSql {
            dialect,
            paths,
            tenant,
            rt,
            args,
            estimates: Estimates::default(),
            aliases: 0,
            estimate_queries: 0,
        }
    }

    /// A new name for a subquery.
    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("q{}", self.aliases)
    }

    fn bind(&mut self, v: Param) -> String {
        let placeholder = self.dialect.placeholder(self.args.len() + 1, &v);
        self.args.push(v);
        placeholder
    }

    fn text(&mut self, s: &str) -> String {
        self.bind(Param::Text(s.to_owned()))
    }

    /// Every resource of the type in the tenant, as the complement's universe.
    fn all(&mut self) -> String {
        let (t, rt) = (self.text(self.tenant), self.text(self.rt.name()));
        format!("SELECT seq FROM resources WHERE tenant = {t} AND resource_type = {rt}")
    }

    /// A SQL query whose rows' `seq` are the resources matching `f`.
    pub fn resources(&mut self, f: &Filter) -> Result<String, StoreError> {
        Ok(match step(f) {
            Step::And(a, b) => {
                let (small, large) = self.smaller_first(a, b)?;
                let driver = self.resources(small)?;
                match probe(large) {
                    Some((path, pred)) => {
                        let exists = self.exists(path, pred, false)?;
                        format!("SELECT seq FROM ({driver}) d WHERE {exists}")
                    }
                    None => {
                        let other = self.resources(large)?;
                        let (x, y) = (self.alias(), self.alias());
                        format!(
                            "SELECT seq FROM ({driver}) {x} INTERSECT SELECT seq FROM ({other}) {y}"
                        )
                    }
                }
            }
            Step::Or(a, b) => {
                let (a, b) = (self.resources(a)?, self.resources(b)?);
                let (x, y) = (self.alias(), self.alias());
                format!("SELECT seq FROM ({a}) {x} UNION SELECT seq FROM ({b}) {y}")
            }
            Step::Not(a) => {
                let inner = self.resources(a)?;
                self.complement_of_resources(inner)
            }
            Step::ValuePath { attr, filter } => {
                let elements = self.elements(filter, attr)?;
                format!("SELECT seq FROM ({elements}) {}", self.alias())
            }
            Step::Match(path, pred) => {
                let atom = self.atom(path, pred)?;
                format!("SELECT seq FROM ({atom}) {}", self.alias())
            }
            Step::NotMatch(path, pred) => {
                let inner = self.atom(path, pred)?;
                self.complement_of_resources(inner)
            }
        })
    }

    /// A query counting the resources matching `f` straight off the attribute index, when
    /// each matching resource is exactly one index row: a comparison on a singular
    /// attribute that only this resource type has (`active eq true`). `None` otherwise.
    /// The general count looks up each matching resource by its `seq`; at a million
    /// matches that is most of a second, where counting index entries is tens of ms.
    pub fn count_by_index(&mut self, f: &Filter) -> Result<Option<String>, StoreError> {
        let Step::Match(path, pred) = step(f) else {
            return Ok(None);
        };
        if !one_index_row_per_resource(self.rt, path)
            || !matches!(self.source(path)?, Source::Index(_))
        {
            return Ok(None);
        }
        let atom = self.atom(path, pred)?;
        Ok(Some(format!(
            "SELECT count(*) FROM ({atom}) {}",
            self.alias()
        )))
    }

    /// The path id and the value (0 or 1) whose kept count answers how many resources
    /// match `f`, when `f` compares a boolean that each resource has at most once, and
    /// only this resource type has, with `eq` (`active eq true`): each matching resource is
    /// then one index row holding that number, and the backend keeps a count of those.
    /// `None` otherwise.
    pub fn count_by_flag(&mut self, f: &Filter) -> Result<Option<(i64, i64)>, StoreError> {
        let Step::Match(path, Pred::Compare(CompareOp::Eq, Comparand::Bool(value))) = step(f)
        else {
            return Ok(None);
        };
        if path.leaf().ty != AttrType::Boolean || !one_index_row_per_resource(self.rt, path) {
            return Ok(None);
        }
        Ok(match self.source(path)? {
            Source::Index(path_id) => Some((path_id, i64::from(*value))),
            _ => None,
        })
    }

    /// `a` and `b` of an `and`, the one matching fewer rows first (see `Estimates`).
    fn smaller_first<'f>(
        &mut self,
        a: &'f Filter,
        b: &'f Filter,
    ) -> Result<(&'f Filter, &'f Filter), StoreError> {
        let mut estimates = std::mem::take(&mut self.estimates);
        let ordered = estimates.smaller_first(a, b, &mut |path, pred| self.count(path, pred));
        self.estimates = estimates;
        ordered
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
            let id = self.bind(Param::Int(path_id));
            let marker = path.sub.is_none() && path.attr.ty == AttrType::Complex;
            let cond = self.predicate(pred, "p.text", "p.num", marker)?;
            let index = self.dialect.index_by_resource();
            return Ok(format!(
                "EXISTS (SELECT 1 FROM {index} \
                 WHERE p.seq = d.seq AND p.path_id = {id}{element} AND p.tenant = {t} AND {cond})"
            ));
        }
        let atom = self.atom(path, pred)?;
        Ok(format!(
            "EXISTS (SELECT 1 FROM ({atom}) p WHERE p.seq = d.seq{element})"
        ))
    }

    /// How many rows one comparison matches, counted on the index up to a cap.
    fn count(&mut self, path: &AttrPath, pred: Pred<'_>) -> Result<u64, StoreError> {
        const CAP: u64 = 1000;
        let mut args = Vec::new();
        let mut scratch = FilterSql::new(
            &mut *self.dialect,
            self.paths,
            self.tenant,
            self.rt,
            &mut args,
        );
        let atom = scratch.atom(path, pred)?;
        self.estimate_queries += 1;
        let sql = format!("SELECT count(*) FROM (SELECT 1 FROM ({atom}) a LIMIT {CAP}) c");
        Ok(self.dialect.count(&sql, &args)?.min(CAP))
    }

    fn complement_of_resources(&mut self, inner: String) -> String {
        let all = self.all();
        format!("{all} EXCEPT SELECT seq FROM ({inner}) {}", self.alias())
    }

    /// A SQL query of `(seq, elem)` pairs: the single values of `attr` matching `f`.
    fn elements(&mut self, f: &Filter, attr: &AttrPath) -> Result<String, StoreError> {
        Ok(match step(f) {
            Step::And(a, b) => {
                let (small, large) = self.smaller_first(a, b)?;
                let driver = self.elements(small, attr)?;
                match probe(large) {
                    Some((path, pred)) => {
                        let exists = self.exists(path, pred, true)?;
                        format!("SELECT seq, elem FROM ({driver}) d WHERE {exists}")
                    }
                    None => {
                        let other = self.elements(large, attr)?;
                        let (x, y) = (self.alias(), self.alias());
                        format!(
                            "SELECT seq, elem FROM ({driver}) {x} INTERSECT SELECT seq, elem FROM ({other}) {y}"
                        )
                    }
                }
            }
            Step::Or(a, b) => {
                let (a, b) = (self.elements(a, attr)?, self.elements(b, attr)?);
                let (x, y) = (self.alias(), self.alias());
                format!("SELECT seq, elem FROM ({a}) {x} UNION SELECT seq, elem FROM ({b}) {y}")
            }
            Step::Not(a) => {
                let inner = self.elements(a, attr)?;
                self.complement_of_elements(attr, inner)?
            }
            Step::ValuePath { .. } => {
                return Err(StoreError::UnsupportedFilter(
                    "value filters cannot nest".into(),
                ));
            }
            Step::Match(path, pred) => self.atom(path, pred)?,
            Step::NotMatch(path, pred) => {
                let inner = self.atom(path, pred)?;
                self.complement_of_elements(attr, inner)?
            }
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
            "SELECT seq, elem FROM ({all}) {} EXCEPT SELECT seq, elem FROM ({inner}) {}",
            self.alias(),
            self.alias()
        ))
    }

    fn source(&self, path: &AttrPath) -> Result<Source, StoreError> {
        Ok(match target(self.rt, path)? {
            Target::Id => Source::Id,
            Target::MemberValue => Source::MemberValue,
            Target::GroupValue => Source::GroupValue,
            Target::Version => Source::Meta(self.dialect.version_text()),
            Target::ResourceType => Source::Meta("resource_type"),
            Target::Attribute(name) => {
                Source::Index(self.paths.get(&name).ok_or_else(|| unusable(&name))?)
            }
        })
    }

    /// `(seq, elem)` pairs of the single values of `path` that satisfy `pred`.
    fn atom(&mut self, path: &AttrPath, pred: Pred<'_>) -> Result<String, StoreError> {
        let t = self.text(self.tenant);
        Ok(match self.source(path)? {
            Source::Index(path_id) => {
                let p = self.bind(Param::Int(path_id));
                let marker = path.sub.is_none() && path.attr.ty == AttrType::Complex;
                let cond = self.predicate(pred, "text", "num", marker)?;
                format!(
                    "SELECT seq, elem FROM attr_index WHERE tenant = {t} AND path_id = {p} AND {cond}"
                )
            }
            Source::Id => {
                let rt = self.text(self.rt.name());
                let cond = self.predicate(pred, "id", "NULL", false)?;
                format!(
                    "SELECT seq, 0 AS elem FROM resources WHERE tenant = {t} AND resource_type = {rt} AND {cond}"
                )
            }
            Source::Meta(expression) => {
                let rt = self.text(self.rt.name());
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
            Pred::Present if marker => return Ok("TRUE".into()),
            Pred::Present => {
                return Ok(format!(
                    "({num_col} IS NOT NULL OR ({text_col} IS NOT NULL AND {text_col} <> ''))"
                ));
            }
            Pred::Compare(op, c) => (op, c),
        };
        if let Some(n) = comparand_num(c) {
            let v = self.bind(Param::Num(n));
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
            CompareOp::Co => self.dialect.contains(text_col, &v),
            CompareOp::Ew => self.dialect.ends_with(text_col, &v),
            CompareOp::Sw => match prefix_successor(s) {
                Some(upper) => {
                    let u = self.text(&upper);
                    format!("{text_col} >= {v} AND {text_col} < {u}")
                }
                None => format!(
                    "{text_col} >= {v} AND {}",
                    self.dialect.starts_with(text_col, &v)
                ),
            },
            op => format!("{text_col} {} {v}", sql_operator(op)?),
        })
    }
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

/// Whether each resource of type `rt` has at most one index row of `path`, and no
/// resource of the other type has any: a singular attribute (or a sub-attribute of a
/// singular one), not complex itself, defined by `rt`'s own schema or an extension of it.
fn one_index_row_per_resource(rt: ResourceType, path: &AttrPath) -> bool {
    let singular = !path.attr.multi_valued
        && path.sub.is_none_or(|s| !s.multi_valued)
        && path.leaf().ty != AttrType::Complex;
    let other = match rt {
        ResourceType::User => ResourceType::Group,
        ResourceType::Group => ResourceType::User,
    };
    let named = |d: &AttributeDef| d.name.eq_ignore_ascii_case(path.attr.name);
    // An extension extends one resource type; core names may be shared (`displayName`).
    let only_this_type = path.extension.is_some()
        || !(COMMON.iter().any(named) || other.core_schema().attributes.iter().any(named));
    singular && only_this_type
}
