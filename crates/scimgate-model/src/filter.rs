//! SCIM filters (RFC 7644 §3.4.2.2). This first cut parses a single `attrPath eq value`
//! comparison; the full grammar replaces it in its own change, behind the same `Filter` type.

use serde_json::Value;

use crate::error::ScimError;
use crate::path::{AttrPath, resolve_attribute};
use crate::resource_type::ResourceType;

/// Longest filter accepted, in bytes, before any parsing work is done.
pub const MAX_FILTER_LEN: usize = 4096;

#[derive(Debug, Clone)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
}

/// Parses `input` for resources of type `rt`.
pub fn parse(rt: ResourceType, input: &str) -> Result<Filter, ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter(format!(
            "filter is {} bytes long; the limit is {MAX_FILTER_LEN}",
            input.len()
        )));
    }
    let text = input.trim();
    let (path_text, rest) = split_word(text);
    if path_text.is_empty() {
        return Err(ScimError::invalid_filter("filter is empty"));
    }
    let path = resolve_attribute(rt, path_text)
        .map_err(|e| ScimError::invalid_filter(format!("{e} (at position 1)")))?;
    let (op_text, value_text) = split_word(rest);
    let op_pos = input.len() - rest.trim_start().len() + 1;
    let op = match op_text.to_ascii_lowercase().as_str() {
        "eq" => CompareOp::Eq,
        "" => {
            return Err(ScimError::invalid_filter(format!(
                "expected an operator after '{path_text}' at position {op_pos}"
            )));
        }
        "ne" | "co" | "sw" | "ew" | "gt" | "ge" | "lt" | "le" | "pr" => {
            return Err(ScimError::invalid_filter(format!(
                "operator '{op_text}' at position {op_pos} is not supported yet; this server answers 'eq' filters"
            )));
        }
        _ => {
            return Err(ScimError::invalid_filter(format!(
                "unknown operator '{op_text}' at position {op_pos}"
            )));
        }
    };
    let value_pos = input.len() - value_text.len() + 1;
    let value: Value = serde_json::from_str(value_text).map_err(|_| {
        ScimError::invalid_filter(format!(
            "expected a JSON string, number, true, false or null at position {value_pos}"
        ))
    })?;
    if value.is_array() || value.is_object() {
        return Err(ScimError::invalid_filter(format!(
            "comparison value at position {value_pos} must be a string, number, boolean or null"
        )));
    }
    if path.attr.ty == crate::schema::AttrType::Complex
        && path.sub.is_none()
        && path.attr.sub_attribute("value").is_none()
    {
        return Err(ScimError::invalid_filter(format!(
            "'{}' is complex; name one of its sub-attributes",
            path.canonical()
        )));
    }
    Ok(Filter::Compare { path, op, value })
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ScimType;
    use serde_json::json;

    fn parsed(f: &str) -> (String, Value) {
        match parse(ResourceType::User, f) {
            Ok(Filter::Compare { path, value, .. }) => (path.canonical(), value),
            Err(e) => panic!("{f}: {}", e.detail),
        }
    }

    #[test]
    fn parses_eq_comparisons() {
        assert_eq!(
            parsed(r#"userName eq "bjensen""#),
            ("userName".into(), json!("bjensen"))
        );
        assert_eq!(
            parsed(r#"USERNAME EQ "a \"q\" b""#),
            ("userName".into(), json!("a \"q\" b"))
        );
        assert_eq!(
            parsed(r#"externalId eq "x y""#),
            ("externalId".into(), json!("x y"))
        );
        assert_eq!(parsed("active eq true"), ("active".into(), json!(true)));
        assert_eq!(
            parsed(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#),
            ("userName".into(), json!("x"))
        );
    }

    #[test]
    fn errors_name_the_position_or_attribute() {
        let rows = [
            (r#"shoeSize eq "x""#, "'shoeSize'"),
            (
                r#"userName like "x""#,
                "unknown operator 'like' at position 10",
            ),
            (r#"userName co "x""#, "'co' at position 10 is not supported"),
            (r#"userName eq bjensen"#, "at position 13"),
            ("userName", "expected an operator"),
            ("", "empty"),
        ];
        for (f, needle) in rows {
            let e = parse(ResourceType::User, f).expect_err(f);
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{f}");
            assert!(e.detail.contains(needle), "{f}: {}", e.detail);
        }
        let long = format!("userName eq \"{}\"", "a".repeat(MAX_FILTER_LEN));
        assert!(parse(ResourceType::User, &long).is_err());
    }
}
