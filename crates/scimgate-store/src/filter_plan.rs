//! What a filter asks of storage, whatever the database: which stored values each
//! comparison looks at (`target`), each node as set algebra over the resources (or, inside
//! a value filter, the elements) it matches (`step`), which side of an `and` drives
//! (`Estimates`), and the range an `sw` is (`prefix_successor`). A backend turns these into
//! its query language (SQLite: `sqlite::query`); what they decide is the same on every
//! backend, so that a filter means one thing whichever one stores the data.

use std::collections::HashMap;

use scimgate_model::ResourceType;
use scimgate_model::filter::{Comparand, CompareOp, Filter};
use scimgate_model::path::AttrPath;

use crate::error::StoreError;

/// The stored values a comparison on one path looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The resource's id.
    Id,
    /// A group's members (`members`, `members.value`): membership rows.
    MemberValue,
    /// A user's groups (`groups`, `groups.value`): membership rows.
    GroupValue,
    /// `meta.version`, as its ETag text.
    Version,
    /// `meta.resourceType`.
    ResourceType,
    /// An attribute kept in the attribute index, by canonical name; the backend refuses
    /// (with `unusable`) a name its index has never held.
    Attribute(String),
}

/// What a filter's comparisons on `path` of a `rt` look at. Paths no filter may use (the
/// password, `meta.location`, sub-attributes of the computed relations) are refused,
/// named.
pub fn target(rt: ResourceType, path: &AttrPath) -> Result<Target, StoreError> {
    let name = path.canonical();
    Ok(match (rt, name.as_str()) {
        (_, "id") => Target::Id,
        (ResourceType::Group, "members" | "members.value") => Target::MemberValue,
        (ResourceType::User, "groups" | "groups.value") => Target::GroupValue,
        (ResourceType::Group, n) if n.starts_with("members.") => return Err(unusable(&name)),
        (ResourceType::User, n) if n.starts_with("groups.") => return Err(unusable(&name)),
        (_, "meta.version") => Target::Version,
        (_, "meta.resourceType") => Target::ResourceType,
        (_, "meta.location" | "meta" | "password") => return Err(unusable(&name)),
        _ => Target::Attribute(name),
    })
}

/// The refusal of a path a filter cannot use.
pub fn unusable(name: &str) -> StoreError {
    StoreError::UnsupportedFilter(format!("'{name}' cannot be used in a filter"))
}

/// What one stored value must satisfy.
#[derive(Debug, Clone, Copy)]
pub enum Pred<'a> {
    /// Has a value (`pr`, `ne null`).
    Present,
    Compare(CompareOp, &'a Comparand),
}

/// One node of a filter as set algebra over what it matches: resources, or inside a value
/// filter the elements of its attribute. The negative comparisons become complements of
/// positive ones, which an index can answer: `eq null` is "not present", `ne x` is "not
/// eq x", `ne null` is "present".
#[derive(Debug, Clone, Copy)]
pub enum Step<'f> {
    And(&'f Filter, &'f Filter),
    Or(&'f Filter, &'f Filter),
    /// Everything of its kind except what the filter matches.
    Not(&'f Filter),
    /// `attr[filter]`: resources with an element of `attr` that the filter matches.
    ValuePath {
        attr: &'f AttrPath,
        filter: &'f Filter,
    },
    /// The values of the path that satisfy the predicate.
    Match(&'f AttrPath, Pred<'f>),
    /// Everything of its kind except the values of the path that satisfy the predicate.
    NotMatch(&'f AttrPath, Pred<'f>),
}

pub fn step(f: &Filter) -> Step<'_> {
    match f {
        Filter::And(a, b) => Step::And(a, b),
        Filter::Or(a, b) => Step::Or(a, b),
        Filter::Not(a) => Step::Not(a),
        Filter::ValuePath { attr, filter } => Step::ValuePath { attr, filter },
        Filter::Present(path) => Step::Match(path, Pred::Present),
        Filter::Compare { path, op, value } => match (op, value) {
            (CompareOp::Eq, Comparand::Null) => Step::NotMatch(path, Pred::Present),
            (CompareOp::Ne, Comparand::Null) => Step::Match(path, Pred::Present),
            (CompareOp::Ne, c) => Step::NotMatch(path, Pred::Compare(CompareOp::Eq, c)),
            (op, c) => Step::Match(path, Pred::Compare(*op, c)),
        },
    }
}

/// A comparison that is one index lookup, which an `and` can check per row of its other
/// side instead of computing its whole set.
pub fn probe(f: &Filter) -> Option<(&AttrPath, Pred<'_>)> {
    match step(f) {
        Step::Match(path, pred) => Some((path, pred)),
        _ => None,
    }
}

/// Whether `f` matches at most one resource of type `rt` whatever is stored: an equality
/// on `id`, or on a user's `userName` (unique in its tenant, compared case-folded as its
/// uniqueness is). Such a list costs one index lookup, like a read by id.
pub fn matches_at_most_one(rt: ResourceType, f: &Filter) -> bool {
    let Filter::Compare {
        path,
        op: CompareOp::Eq,
        value: Comparand::Text { .. },
    } = f
    else {
        return false;
    };
    path.extension.is_none()
        && path.sub.is_none()
        && (path.attr.name == "id" || (rt == ResourceType::User && path.attr.name == "userName"))
}

/// About how many rows each node of one filter matches, so that the side of an `and`
/// matching fewer drives and the other is only probed: `emails[type eq "work" and value
/// eq "x"]` starts from the one address, not from every work email. A comparison is
/// counted by the backend (on its index, up to a cap); each node once per query, since an
/// `and` chain asks for its left side at every level, which uncounted costs O(n²) counts.
#[derive(Debug, Default)]
pub struct Estimates {
    counted: HashMap<*const Filter, u64>,
}

impl Estimates {
    /// `a` and `b`, the one matching fewer first (`a` on a tie).
    pub fn smaller_first<'f>(
        &mut self,
        a: &'f Filter,
        b: &'f Filter,
        count: &mut impl FnMut(&AttrPath, Pred<'_>) -> Result<u64, StoreError>,
    ) -> Result<(&'f Filter, &'f Filter), StoreError> {
        Ok(if self.estimate(b, count)? < self.estimate(a, count)? {
            (b, a)
        } else {
            (a, b)
        })
    }

    fn estimate(
        &mut self,
        f: &Filter,
        count: &mut impl FnMut(&AttrPath, Pred<'_>) -> Result<u64, StoreError>,
    ) -> Result<u64, StoreError> {
        let key: *const Filter = f;
        if let Some(n) = self.counted.get(&key) {
            return Ok(*n);
        }
        let n = match f {
            Filter::And(a, b) => self.estimate(a, count)?.min(self.estimate(b, count)?),
            Filter::Or(a, b) => self
                .estimate(a, count)?
                .saturating_add(self.estimate(b, count)?),
            Filter::ValuePath { filter, .. } => self.estimate(filter, count)?,
            // A complement is as large as the tenant, give or take.
            Filter::Not(_) => u64::MAX,
            f => match probe(f) {
                Some((path, pred)) => count(path, pred)?,
                None => u64::MAX,
            },
        };
        self.counted.insert(key, n);
        Ok(n)
    }
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
    use scimgate_model::filter::parse;

    fn user_filter(text: &str) -> Filter {
        parse(ResourceType::User, text).expect("filter")
    }

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

    #[test]
    fn negative_comparisons_become_complements_of_positive_ones() {
        // (filter, whether it is a complement, the predicate's operator: None for present)
        let rows: [(&str, bool, Option<CompareOp>); 6] = [
            ("title pr", false, None),
            ("title eq null", true, None),
            ("title ne null", false, None),
            ("title ne \"x\"", true, Some(CompareOp::Eq)),
            ("title eq \"x\"", false, Some(CompareOp::Eq)),
            ("title sw \"x\"", false, Some(CompareOp::Sw)),
        ];
        for (text, complement, op) in rows {
            let f = user_filter(text);
            let (negated, pred) = match step(&f) {
                Step::Match(_, pred) => (false, pred),
                Step::NotMatch(_, pred) => (true, pred),
                other => panic!("{text}: {other:?}"),
            };
            let pred_op = match pred {
                Pred::Present => None,
                Pred::Compare(op, _) => Some(op),
            };
            assert_eq!((negated, pred_op), (complement, op), "{text}");
            assert_eq!(probe(&f).is_some(), !complement, "{text}");
        }
    }

    #[test]
    fn targets_and_refused_paths() {
        let path = |rt, text: &str| match parse(rt, &format!("{text} pr")).expect("filter") {
            Filter::Present(p) => p,
            other => panic!("{other:?}"),
        };
        let rows = [
            (ResourceType::User, "id", Ok(Target::Id)),
            (ResourceType::User, "groups.value", Ok(Target::GroupValue)),
            (ResourceType::Group, "members", Ok(Target::MemberValue)),
            (ResourceType::User, "meta.version", Ok(Target::Version)),
            (
                ResourceType::Group,
                "meta.resourceType",
                Ok(Target::ResourceType),
            ),
            (
                ResourceType::User,
                "name.givenName",
                Ok(Target::Attribute("name.givenName".into())),
            ),
            (
                ResourceType::User,
                "groups.display",
                Err("'groups.display'"),
            ),
            (
                ResourceType::Group,
                "members.display",
                Err("'members.display'"),
            ),
            (ResourceType::User, "meta.location", Err("'meta.location'")),
        ];
        // The password never reaches storage's plan: the filter's parser refuses it.
        let e = parse(ResourceType::User, "password pr").expect_err("refused");
        assert!(
            e.detail.contains("'password' cannot be used in a filter"),
            "{}",
            e.detail
        );
        for (rt, text, expected) in rows {
            match (target(rt, &path(rt, text)), expected) {
                (Ok(t), Ok(want)) => assert_eq!(t, want, "{text}"),
                (Err(e), Err(named)) => assert!(e.to_string().contains(named), "{text}: {e}"),
                (got, want) => panic!("{text}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn each_node_is_counted_once_and_the_smaller_side_drives() {
        // a and (b and (c and d)): every level asks for its left side again.
        let f = user_filter(
            "userName eq \"a\" and (title eq \"b\" and (nickName eq \"c\" and displayName eq \"d\"))",
        );
        let mut counts = 0;
        let mut count = |path: &AttrPath, _: Pred<'_>| {
            counts += 1;
            Ok(if path.canonical() == "userName" {
                1
            } else {
                500
            })
        };
        let mut estimates = Estimates::default();
        let Filter::And(a, b) = &f else { panic!() };
        let (first, _) = estimates.smaller_first(a, b, &mut count).expect("ordered");
        assert!(std::ptr::eq(first, &**a), "userName (1 row) drives");
        let Filter::And(b1, b2) = &**b else { panic!() };
        estimates
            .smaller_first(b1, b2, &mut count)
            .expect("ordered");
        assert_eq!(counts, 4, "four comparisons, each counted once");
    }
}
