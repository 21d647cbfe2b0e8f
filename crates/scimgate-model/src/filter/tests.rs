use serde_json::{Map, Value, json};

use super::*;
use crate::error::ScimType;
use crate::resource_type::ResourceType;

fn user(f: &str) -> Filter {
    parse(ResourceType::User, f).unwrap_or_else(|e| panic!("{f}: {}", e.detail))
}

/// A compact rendering of the AST, to pin precedence and resolution.
fn show(f: &Filter) -> String {
    match f {
        Filter::Compare { path, op, value } => match value {
            Comparand::Text { key, .. } => {
                format!("{} {} Text({key:?})", path.canonical(), op.keyword())
            }
            _ => format!("{} {} {value:?}", path.canonical(), op.keyword()),
        },
        Filter::Present(p) => format!("{} pr", p.canonical()),
        Filter::And(a, b) => format!("({} AND {})", show(a), show(b)),
        Filter::Or(a, b) => format!("({} OR {})", show(a), show(b)),
        Filter::Not(a) => format!("NOT {}", show(a)),
        Filter::ValuePath { attr, filter } => format!("{}[{}]", attr.canonical(), show(filter)),
    }
}

#[test]
fn precedence_is_not_then_and_then_or() {
    assert_eq!(
        show(&user(
            r#"title pr or userName eq "a" and not (active eq true) or nickName pr"#
        )),
        r#"((title pr OR (userName eq Text("a") AND NOT active eq Bool(true))) OR nickName pr)"#
    );
    assert_eq!(
        show(&user(r#"(title pr or userName eq "a") and nickName pr"#)),
        r#"((title pr OR userName eq Text("a")) AND nickName pr)"#
    );
    assert_eq!(
        show(&user("title pr AND nickName pr")),
        "(title pr AND nickName pr)"
    );
}

#[test]
fn every_operator_and_literal_kind() {
    let rows = [
        (r#"userName eq "X""#, r#"userName eq Text("x")"#),
        (r#"userName ne "x""#, r#"userName ne Text("x")"#),
        (r#"userName co "x""#, r#"userName co Text("x")"#),
        (r#"userName sw "x""#, r#"userName sw Text("x")"#),
        (r#"userName ew "x""#, r#"userName ew Text("x")"#),
        (r#"externalId gt "AbC""#, r#"externalId gt Text("AbC")"#),
        (
            r#"meta.lastModified ge "2026-01-01T00:00:00Z""#,
            "meta.lastModified ge Instant(1767225600000000000)",
        ),
        (
            r#"meta.created lt "2026-01-01T01:00:00+01:00""#,
            "meta.created lt Instant(1767225600000000000)",
        ),
        ("active eq false", "active eq Bool(false)"),
        ("title eq null", "title eq Null"),
        ("title pr", "title pr"),
        ("emails eq \"a@b\"", r#"emails.value eq Text("a@b")"#),
        ("USERNAME Eq \"É\"", r#"userName eq Text("é")"#),
    ];
    for (f, want) in rows {
        assert_eq!(show(&user(f)), want, "{f}");
    }
}

#[test]
fn strings_take_json_escapes() {
    assert_eq!(
        show(&user(r#"displayName eq "a \"b\" \\ \u00e9 \n""#)),
        "displayName eq Text(\"a \\\"b\\\" \\\\ é \\n\")"
    );
}

#[test]
fn urn_paths_and_value_paths() {
    assert_eq!(
        show(&user(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D""#
        )),
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq Text("r&d")"#
    );
    assert_eq!(
        show(&user(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw "Ba""#
        )),
        r#"name.givenName sw Text("ba")"#
    );
    assert_eq!(
        show(&user(
            r#"emails[type eq "work" and value co "@example.com"]"#
        )),
        r#"emails[(emails.type eq Text("work") AND emails.value co Text("@example.com"))]"#
    );
    assert_eq!(
        show(&user(
            r#"emails[not (primary eq true)] or addresses[region pr]"#
        )),
        r#"(emails[NOT emails.primary eq Bool(true)] OR addresses[addresses.region pr])"#
    );
    let g = parse(ResourceType::Group, r#"members[value eq "abc"]"#).expect("group");
    assert_eq!(show(&g), r#"members[members.value eq Text("abc")]"#);
}

#[test]
fn errors_are_invalid_filter_and_say_where() {
    let rows = [
        ("", "empty"),
        ("userName", "expected an operator after 'userName'"),
        (r#"userName eq"#, "expected a value after 'eq'"),
        (
            r#"userName like "x""#,
            "unknown operator 'like' (at position 10)",
        ),
        (
            r#"shoeSize eq "x""#,
            "unknown attribute 'shoeSize' for resource type User (at position 1)",
        ),
        (
            r#"userName eq "x" and"#,
            "filter ends where an expression was expected (at position 20)",
        ),
        (r#"(userName eq "x""#, "expected ')'"),
        (
            r#"userName eq "x")"#,
            "unexpected ')' after a complete filter (at position 16)",
        ),
        (
            r#"userName eq "x"#,
            "unterminated string starting at position 13",
        ),
        (r#"userName eq bjensen"#, "found 'bjensen' (at position 13)"),
        (
            "active gt true",
            "boolean attribute 'active' cannot be compared with 'gt'",
        ),
        (
            r#"active eq "true""#,
            "'active' is boolean and cannot be compared with a string",
        ),
        (
            r#"userName eq 5"#,
            "'userName' is string and cannot be compared with a number",
        ),
        (r#"meta.created gt "yesterday""#, "not an RFC 3339 dateTime"),
        (r#"userName gt null"#, "null can only be compared"),
        (r#"name eq "x""#, "'name' is complex"),
        (
            r#"emails[kind eq "w"]"#,
            "'emails' has no sub-attribute 'kind'",
        ),
        (r#"userName[value eq "x"]"#, "is not a complex attribute"),
        (
            r#"emails[value eq "x" and addresses[type eq "w"]]"#,
            "has no sub-attribute 'addresses'",
        ),
        ("not userName pr", "expected '(' after 'not'"),
        (r#"and eq "x""#, "found the keyword 'and'"),
    ];
    for (f, needle) in rows {
        let e = parse(ResourceType::User, f).expect_err(f);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{f}");
        assert!(
            e.detail.contains(needle),
            "{f}: '{}' lacks '{needle}'",
            e.detail
        );
    }
}

#[test]
fn length_and_depth_are_limited_without_recursing_deeply() {
    let long = format!("userName eq \"{}\"", "a".repeat(MAX_FILTER_LEN));
    assert!(
        parse(ResourceType::User, &long)
            .expect_err("long")
            .detail
            .contains("limit")
    );
    let nested = format!(
        "{}title pr{}",
        "(".repeat(DEFAULT_MAX_DEPTH + 1),
        ")".repeat(DEFAULT_MAX_DEPTH + 1)
    );
    assert!(
        parse(ResourceType::User, &nested)
            .expect_err("deep")
            .detail
            .contains("deeper than 16")
    );
    let ok = format!(
        "{}title pr{}",
        "(".repeat(DEFAULT_MAX_DEPTH),
        ")".repeat(DEFAULT_MAX_DEPTH)
    );
    assert!(
        parse(ResourceType::User, &ok).is_ok(),
        "exactly the limit is allowed"
    );
    let nots = format!("{}title pr{}", "not (".repeat(2000), ")".repeat(2000));
    assert!(parse(ResourceType::User, &nots).is_err());
    assert!(parse_with_depth(ResourceType::User, "((title pr))", 2).is_ok());
    assert!(parse_with_depth(ResourceType::User, "((title pr))", 1).is_err());
}

fn resource(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn evaluation_follows_attribute_definitions() {
    let r = resource(json!({
        "userName": "Émile",
        "externalId": "AbC",
        "title": "",
        "active": true,
        "emails": [
            {"value": "e@work.example", "type": "work", "primary": true},
            {"value": "e@home.example", "type": "home"},
        ],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"},
        "meta": {"created": "2026-01-01T10:00:00.000Z", "lastModified": "2026-01-02T10:00:00.000Z"},
    }));
    let rows = [
        (r#"userName eq "émile""#, true),
        (r#"userName eq "EMILE""#, false),
        (r#"externalId eq "abc""#, false),
        (r#"externalId eq "AbC""#, true),
        ("title pr", false),
        ("nickName pr", false),
        ("title eq null", true),
        ("nickName eq null", true),
        ("userName ne null", true),
        (r#"emails co "HOME""#, true),
        (r#"emails[type eq "work" and value co "home"]"#, false),
        (r#"emails[type eq "home" and value co "home"]"#, true),
        (r#"emails.type eq "home" and emails.value co "work""#, true),
        (r#"emails[not (primary eq true)]"#, true),
        (r#"emails.primary ne true"#, false),
        ("active eq true and not (active eq false)", true),
        (r#"meta.created lt "2026-01-01T11:00:00+01:00""#, false),
        (r#"meta.created le "2026-01-01T11:00:00+01:00""#, true),
        (r#"meta.lastModified gt "2026-01-01T10:00:00Z""#, true),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department sw "r&""#,
            true,
        ),
        (r#"userName gt "é" and userName lt "émilf""#, true),
        (r#"userName ew """#, true),
        (r#"nickName ne "x""#, true),
    ];
    for (f, want) in rows {
        assert_eq!(matches(&user(f), &r), want, "{f}");
    }
}

/// Fuzzing the parser: token soup close to the grammar, and arbitrary text. Parsing must
/// never panic or overflow the stack, errors must be `invalidFilter`, and whatever parses
/// must evaluate. `scripts/fuzz-filter N` runs N cases (default here: 512).
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    const PIECES: &[&str] = &[
        "userName",
        "emails",
        "emails.value",
        "name.givenName",
        "members",
        "meta.created",
        "active",
        "type",
        "value",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        "eq",
        "ne",
        "co",
        "sw",
        "ew",
        "gt",
        "ge",
        "lt",
        "le",
        "pr",
        "and",
        "or",
        "not",
        "(",
        ")",
        "[",
        "]",
        "\"x\"",
        "\"\\u00e9\"",
        "\"\\\"",
        "\"",
        "true",
        "false",
        "null",
        "42",
        "-1.5e3",
        "\"2026-01-01T00:00:00Z\"",
        " ",
        "  ",
        "é",
        "\u{0}",
        ".",
        ":",
    ];

    fn soup() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 0..40).prop_map(|p| p.join(" "))
    }

    fn sample() -> Map<String, Value> {
        resource(
            json!({"userName": "a", "active": true, "emails": [{"value": "x", "type": "work"}],
                        "meta": {"created": "2026-01-01T00:00:00.000Z"}}),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
            .. ProptestConfig::default()
        })]

        #[test]
        fn filter_parser_never_panics(text in prop_oneof![soup(), any::<String>(), "[ -~]{0,200}"]) {
            for rt in [ResourceType::User, ResourceType::Group] {
                match parse(rt, &text) {
                    Ok(f) => {
                        let _ = matches(&f, &sample());
                    }
                    Err(e) => prop_assert_eq!(e.scim_type, Some(ScimType::InvalidFilter)),
                }
            }
        }
    }
}

#[test]
fn dialect_rules_that_change_a_filter_are_noted() {
    let options = FilterOptions {
        string_booleans: true,
        entra_value_paths: true,
        unquoted_values: true,
        ..FilterOptions::default()
    };
    let rows = [
        (r#"active eq "True""#, vec!["string_booleans"]),
        ("userName eq bjensen", vec!["unquoted_filter_values"]),
        (
            r#"emails[type eq "work"].value eq "x""#,
            vec!["entra_filter_paths"],
        ),
        (r#"userName eq "plain""#, vec![]),
    ];
    for (text, want) in rows {
        let mut noted = Vec::new();
        parse_noting(ResourceType::User, text, &options, &mut noted).expect(text);
        assert_eq!(noted, want, "{text}");
    }
}
