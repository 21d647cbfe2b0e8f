//! The main evidence that the SQL compiler is right: random users, random filters and
//! sorts; the store's answer must equal the in-memory evaluator's (`filter::matches`) over
//! the same users, and a cursor walk must equal the sorted list.

mod backend;

use proptest::prelude::*;
use scimgate_model::filter::{self, matches};
use scimgate_model::validate::validate;
use scimgate_model::{ResourceType, fold_case, path};
use scimgate_store::{ListQuery, NewResource, Page, SortBy, Store, StoredResource};
use serde_json::{Map, Value, json};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Small alphabets, so that comparisons hit, miss and tie often, with case and Unicode
/// folding in play, and canonically equivalent spellings (NFC `é` = U+00E9, NFD `é` =
/// `e` + U+0301) that must compare equal.
const WORDS: &[&str] = &[
    "a",
    "A",
    "ab",
    "aB",
    "b",
    "é",
    "É",
    "e\u{301}",
    "E\u{301}",
    "émile",
    "ÉMILE",
    "e\u{301}mile",
    "jos\u{e9}",
    "JOSE\u{301}",
    "straße",
    "STRASSE",
    "x@y",
    "",
    "z",
    "a\tb",
];
/// Binary values (base64): compared byte for byte, never case-folded (RFC 7643 §2.3.6).
const BINARY: &[&str] = &["QUJD", "qujd", "QUJE", "AAAA"];
/// Comparands with control characters, which every filter must refuse (and validation
/// refuses in stored values): SQL would cut a string at NUL.
const CONTROLS: &[&str] = &["ab\u{0}cd", "\u{0}cd", "x\u{1}", "\u{7f}"];
const TYPES: &[&str] = &["work", "home", "Work"];

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS).prop_map(str::to_owned)
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.7, s)
}

fn email() -> impl Strategy<Value = Value> {
    (
        opt(word()),
        opt(prop::sample::select(TYPES)),
        opt(any::<bool>()),
    )
        .prop_map(|(v, t, p)| {
            let mut e = Map::new();
            if let Some(v) = v {
                e.insert("value".into(), json!(v));
            }
            if let Some(t) = t {
                e.insert("type".into(), json!(t));
            }
            if let Some(p) = p {
                e.insert("primary".into(), json!(p));
            }
            Value::Object(e)
        })
}

fn user(i: usize) -> impl Strategy<Value = Value> {
    (
        word(),
        opt(word()),
        opt(word()),
        opt(any::<bool>()),
        prop::collection::vec(email(), 0..3),
        opt(word()),
        opt(word()),
        opt(0i64..5),
        prop::collection::vec(prop::sample::select(BINARY), 0..2),
    )
        .prop_map(move |(name, display, title, active, emails, given, dept, num, certs)| {
            let mut u = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("{name}{i}")});
            let o = u.as_object_mut().expect("object");
            if let Some(d) = display {
                o.insert("displayName".into(), json!(d));
            }
            if let Some(t) = title {
                o.insert("title".into(), json!(t));
            }
            if let Some(a) = active {
                o.insert("active".into(), json!(a));
            }
            // At most one primary, as validation demands.
            let mut seen_primary = false;
            let emails: Vec<Value> = emails
                .into_iter()
                .map(|mut e| {
                    if e.get("primary") == Some(&json!(true)) {
                        if seen_primary {
                            e["primary"] = json!(false);
                        }
                        seen_primary = true;
                    }
                    e
                })
                .collect();
            o.insert("emails".into(), Value::Array(emails));
            if !certs.is_empty() {
                let certs: Vec<Value> = certs.iter().map(|c| json!({"value": c})).collect();
                o.insert("x509Certificates".into(), Value::Array(certs));
            }
            if let Some(g) = given {
                o.insert("name".into(), json!({"givenName": g}));
            }
            let mut ent = Map::new();
            if let Some(d) = dept {
                ent.insert("department".into(), json!(d));
            }
            if let Some(n) = num {
                ent.insert("employeeNumber".into(), json!(n.to_string()));
            }
            if !ent.is_empty() {
                o.insert(ENT.into(), Value::Object(ent));
            }
            u
        })
}

fn users() -> impl Strategy<Value = Vec<Value>> {
    (1usize..14).prop_flat_map(|n| (0..n).map(user).collect::<Vec<_>>())
}

fn quoted() -> impl Strategy<Value = String> {
    word().prop_map(|w| serde_json::to_string(&w).expect("json"))
}

const STRING_PATHS: &[&str] = &[
    "userName",
    "displayName",
    "title",
    "emails",
    "emails.value",
    "emails.type",
    "name.givenName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
];
const STRING_OPS: &[&str] = &["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"];
const PRESENT_PATHS: &[&str] = &[
    "title",
    "emails",
    "name",
    "name.givenName",
    "active",
    "emails.primary",
    "displayName",
];

fn leaf() -> BoxedStrategy<String> {
    prop_oneof![
        (
            prop::sample::select(STRING_PATHS),
            prop::sample::select(STRING_OPS),
            quoted()
        )
            .prop_map(|(p, o, v)| format!("{p} {o} {v}")),
        (prop::sample::select(&["eq", "ne"][..]), any::<bool>())
            .prop_map(|(o, b)| format!("active {o} {b}")),
        (prop::sample::select(&["eq", "ne"][..]), any::<bool>())
            .prop_map(|(o, b)| format!("emails.primary {o} {b}")),
        prop::sample::select(PRESENT_PATHS).prop_map(|p| format!("{p} pr")),
        (
            prop::sample::select(&["title", "displayName", "name.givenName"][..]),
            prop::sample::select(&["eq", "ne"][..])
        )
            .prop_map(|(p, o)| format!("{p} {o} null")),
        (prop::sample::select(&["gt", "ge", "lt", "le", "eq"][..]))
            .prop_map(|o| format!("meta.created {o} \"2000-01-01T00:00:00Z\"")),
        (prop::sample::select(&["eq", "ne", "sw"][..]))
            .prop_map(|o| format!("meta.resourceType {o} \"User\"")),
        email_filter().prop_map(|f| format!("emails[{f}]")),
        (
            prop::sample::select(&["eq", "ne"][..]),
            prop::sample::select(BINARY)
        )
            .prop_map(|(o, v)| format!("x509Certificates.value {o} \"{v}\"")),
        prop::sample::select(&["eq", "ne"][..])
            .prop_map(|o| format!("x509Certificates[value {o} \"QUJD\"]")),
    ]
    .boxed()
}

/// A filter over one email: its sub-attributes, with logic.
fn email_filter() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        (
            prop::sample::select(&["value", "type"][..]),
            prop::sample::select(STRING_OPS),
            quoted()
        )
            .prop_map(|(p, o, v)| format!("{p} {o} {v}")),
        any::<bool>().prop_map(|b| format!("primary eq {b}")),
        prop::sample::select(&["value", "type", "primary"][..]).prop_map(|p| format!("{p} pr")),
    ];
    atom.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

fn any_filter() -> impl Strategy<Value = String> {
    leaf().prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

/// Every singular, non-complex attribute the generated users carry (and the ones they
/// never carry, which sort as all-null).
const SORT_PATHS: &[&str] = &[
    "userName",
    "title",
    "displayName",
    "nickName",
    "externalId",
    "name.givenName",
    "name.familyName",
    "active",
    "meta.created",
    "meta.lastModified",
    "meta.version",
    "id",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
];
/// Paths with no order to give: refused, never answered in some other order.
const UNSORTABLE: &[&str] = &[
    "emails",
    "meta.resourceType",
    "meta.location",
    "name",
    "password",
];

/// The resource as a client sees it, for the in-memory evaluator.
fn rendered(r: &StoredResource) -> Map<String, Value> {
    let mut m = r.attributes.clone();
    m.insert("id".into(), json!(r.id));
    m.insert(
        "meta".into(),
        json!({"resourceType": "User", "created": r.created, "lastModified": r.last_modified, "version": format!("W/\"{}\"", r.version)}),
    );
    m
}

fn all(store: &dyn Store, q: ListQuery) -> Vec<String> {
    store
        .list("t", ResourceType::User, &q)
        .expect("list")
        .resources
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// The in-memory sort: folded strings unless caseExact, nulls last either way, ties by id.
fn sort_key(r: &Map<String, Value>, p: &str) -> Option<Value> {
    if p == "meta.version" {
        // W/"N": the stored version, a number.
        let text = r.get("meta")?.get("version")?.as_str()?;
        return text
            .trim_start_matches("W/")
            .trim_matches('"')
            .parse::<i64>()
            .ok()
            .map(|n| json!(n));
    }
    let path = path::resolve_attribute(ResourceType::User, p).expect("path");
    let top = match path.extension {
        Some(ext) => r.get(ext.id)?.get(path.attr.name)?,
        None => r.get(path.attr.name)?,
    };
    let v = match path.sub {
        Some(sub) => top.get(sub.name)?,
        None => top,
    };
    Some(match v {
        Value::String(s) if !path.leaf().case_exact => json!(fold_case(s)),
        Value::Bool(b) => json!(i64::from(*b)),
        other => other.clone(),
    })
}

fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        _ => std::cmp::Ordering::Equal,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, max_shrink_iters: 200, .. ProptestConfig::default() })]

    #[test]
    fn sql_answers_equal_the_in_memory_evaluator(
        population in users(),
        filters in prop::collection::vec(any_filter(), 12),
        sorts in prop::collection::vec((prop::sample::select(SORT_PATHS), any::<bool>()), 3),
        instants in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(&["eq", "ne", "gt", "ge", "lt", "le"][..]), prop::sample::select(&["meta.created", "meta.lastModified"][..])), 3),
        control in (prop::sample::select(STRING_PATHS), prop::sample::select(STRING_OPS), prop::sample::select(CONTROLS)),
        unsortable in prop::sample::select(UNSORTABLE),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = backend::open(dir.path(), &["t", "other"]);
        let mut stored = Vec::new();
        for body in &population {
            let v = validate(ResourceType::User, body).expect("valid user");
            stored.push(store.create("t", NewResource::from_validated(v, Default::default())).expect("create"));
        }
        // A user of another tenant must never appear.
        let stranger = validate(ResourceType::User, &population[0]).expect("valid");
        store.create("other", NewResource::from_validated(stranger, Default::default())).expect("create");
        let docs: Vec<(String, Map<String, Value>)> = stored.iter().map(|r| (r.id.clone(), rendered(r))).collect();

        // dateTime comparisons at the stored instants themselves, so that they tie, and
        // fall on either side.
        let mut filters = filters.clone();
        for (at, op, p) in &instants {
            let r = &stored[at.index(stored.len())];
            let when = if *p == "meta.created" { &r.created } else { &r.last_modified };
            filters.push(format!("{p} {op} \"{when}\""));
        }

        // A control character in a comparand is refused, whatever the path and operator,
        // and a value holding one is refused on input: SQL and memory never disagree on one.
        let (cpath, cop, ctext) = control;
        let text = format!("{cpath} {cop} {}", serde_json::to_string(ctext).expect("json"));
        let refused = filter::parse(ResourceType::User, &text).expect_err("control character");
        prop_assert!(refused.detail.contains("control character"), "{}", refused.detail);
        let mut bad = population[0].clone();
        bad["title"] = json!(ctext);
        prop_assert!(validate(ResourceType::User, &bad).is_err(), "stored value with a control character");

        // An attribute with no order to give is refused.
        let sort = SortBy { path: path::resolve_attribute(ResourceType::User, unsortable).expect("path"), descending: false };
        prop_assert!(
            store.list("t", ResourceType::User, &ListQuery { filter: None, sort: Some(sort), page: Page::Index { start_index: 1, count: 10 }, with_relations: false }).is_err(),
            "sortBy {} answered", unsortable
        );

        for text in &filters {
            let f = filter::parse(ResourceType::User, text).map_err(|e| TestCaseError::fail(format!("{text}: {}", e.detail)))?;
            let mut want: Vec<String> = docs.iter().filter(|(_, d)| matches(&f, d)).map(|(id, _)| id.clone()).collect();
            want.sort();
            let q = ListQuery { filter: Some(f), sort: None, page: Page::Index { start_index: 1, count: 1000 }, with_relations: false };
            let page = store.list("t", ResourceType::User, &q).expect("list");
            prop_assert_eq!(page.total_results, Some(want.len() as u64), "totalResults, filter: {}", text);
            // A first page that comes out short is its own total; a full one is counted.
            let full = ListQuery { page: Page::Index { start_index: 1, count: 2 }, ..q.clone() };
            let first = store.list("t", ResourceType::User, &full).expect("list");
            prop_assert_eq!(first.total_results, Some(want.len() as u64), "totalResults of a 2-page, filter: {}", text);
            prop_assert_eq!(first.resources.len(), want.len().min(2));
            let mut got: Vec<String> = page.resources.into_iter().map(|r| r.id).collect();
            got.sort();
            prop_assert_eq!(got, want, "filter: {}", text);
        }

        for (sort_path, descending) in &sorts {
            let mut want: Vec<(Option<Value>, String)> =
                docs.iter().map(|(id, d)| (sort_key(d, sort_path), id.clone())).collect();
            want.sort_by(|(ka, ia), (kb, ib)| {
                let by_key = match (ka, kb) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => return std::cmp::Ordering::Greater,
                    (Some(_), None) => return std::cmp::Ordering::Less,
                    (Some(a), Some(b)) => cmp_values(a, b),
                };
                let o = by_key.then_with(|| ia.cmp(ib));
                if *descending { o.reverse() } else { o }
            });
            let want: Vec<String> = want.into_iter().map(|(_, id)| id).collect();
            let sort = || Some(SortBy { path: path::resolve_attribute(ResourceType::User, sort_path).expect("path"), descending: *descending });
            let got = all(&*store, ListQuery { filter: None, sort: sort(), page: Page::Index { start_index: 1, count: 1000 }, with_relations: false });
            prop_assert_eq!(&got, &want, "sortBy {} descending {}", sort_path, descending);

            // Walking with a cursor, three at a time, gives the same order with no gaps.
            let mut walked = Vec::new();
            let mut after = None;
            loop {
                let page = store.list("t", ResourceType::User, &ListQuery {
                    filter: None, sort: sort(), page: Page::Cursor { after: after.clone(), count: 3 }, with_relations: false,
                }).expect("page");
                prop_assert_eq!(page.total_results.is_some(), after.is_none());
                walked.extend(page.resources.into_iter().map(|r| r.id));
                match page.next {
                    Some(p) => after = Some(p),
                    None => break,
                }
                prop_assert!(walked.len() <= want.len(), "cursor walk overran");
            }
            prop_assert_eq!(&walked, &want, "cursor walk, sortBy {}", sort_path);

            // Index paging in windows of two covers the same order.
            let mut paged = Vec::new();
            for start in (1..=want.len() as u64).step_by(2) {
                paged.extend(all(&*store, ListQuery { filter: None, sort: sort(), page: Page::Index { start_index: start, count: 2 }, with_relations: false }));
            }
            prop_assert_eq!(&paged, &want);
        }
    }
}
