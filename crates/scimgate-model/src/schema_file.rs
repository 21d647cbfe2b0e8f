//! An operator's schema extension: an RFC 7643 §7 schema document read into a `Schema`,
//! every rule checked, and each refusal naming the file, the attribute and the rule. What
//! scimgate cannot honour is refused rather than ignored (`uniqueness` other than `none`:
//! only `userName`'s is enforced), and so are keys it does not know (a typo such as
//! `mutablity` must not silently become the default).

use serde_json::{Map, Value};

use crate::schema::{AttrType, AttributeDef, Mutability, Returned, Schema, Uniqueness};

/// Most attributes of one schema, sub-attributes of one attribute, and canonical values.
const MAX_ATTRIBUTES: usize = 200;
const MAX_NAME_BYTES: usize = 64;
const MAX_URN_BYTES: usize = 256;
const MAX_TEXT_BYTES: usize = 1024;

/// Reads schema document `text` (from `file`, named in errors). The schema's strings are
/// given the whole program's lifetime: a schema set in force is referred to from every
/// resolved path, and a set replaced on reload is small and is not freed.
pub fn parse(file: &str, text: &str) -> Result<&'static Schema, String> {
    let fail = |what: String| format!("schema file '{file}': {what}");
    let doc: Value = serde_json::from_str(text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let Value::Object(doc) = doc else {
        return Err(fail("must be a JSON object (an RFC 7643 §7 schema)".into()));
    };
    known_keys(
        &doc,
        &["schemas", "id", "name", "description", "attributes", "meta"],
    )
    .map_err(|k| fail(format!("unknown key '{k}'")))?;
    let id = match doc.get("id") {
        Some(Value::String(id)) => id.clone(),
        _ => return Err(fail("'id' (the schema's URN) is required".into())),
    };
    check_urn(&id).map_err(|rule| fail(format!("'id' '{id}' {rule}")))?;
    let text = |key: &str| -> Result<String, String> {
        match doc.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) if s.len() <= MAX_TEXT_BYTES => Ok(s.clone()),
            Some(_) => Err(fail(format!(
                "'{key}' must be a string of at most {MAX_TEXT_BYTES} bytes"
            ))),
        }
    };
    let name = text("name")?;
    let description = text("description")?;
    let Some(Value::Array(list)) = doc.get("attributes") else {
        return Err(fail("'attributes' (a list) is required".into()));
    };
    if list.is_empty() || list.len() > MAX_ATTRIBUTES {
        return Err(fail(format!(
            "'attributes' must hold 1 to {MAX_ATTRIBUTES} attributes"
        )));
    }
    let attributes = attributes(list, None).map_err(fail)?;
    Ok(Box::leak(Box::new(Schema {
        id: leak(id),
        name: leak(name),
        description: leak(description),
        attributes,
    })))
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn known_keys(obj: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(k.clone()),
        None => Ok(()),
    }
}

/// A schema URN: `urn:` then printable ASCII without spaces, quotes or a trailing `:`, and
/// not a built-in schema's.
fn check_urn(id: &str) -> Result<(), &'static str> {
    if !id.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        return Err("must be a URN (start with 'urn:')");
    }
    if id.len() > MAX_URN_BYTES || id.len() <= 4 {
        return Err("must be 5 to 256 bytes long");
    }
    // What a filter, `sortBy` and `attributes` can name: letters, digits and `-._:`.
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        || id.ends_with([':', '.'])
        || id.contains("::")
    {
        return Err(
            "may hold only letters, digits, '-', '.', '_' and ':' (':' and '.' not at the end, ':' not twice in a row)",
        );
    }
    if crate::schemas::all()
        .iter()
        .any(|s| s.id.eq_ignore_ascii_case(id))
    {
        return Err("is a built-in schema's URN");
    }
    Ok(())
}

fn attributes(list: &[Value], parent: Option<&str>) -> Result<Vec<AttributeDef>, String> {
    let mut out: Vec<AttributeDef> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let def = attribute(item, parent).map_err(|(name, rule)| {
            let name = name.unwrap_or_else(|| format!("#{}", i + 1));
            match parent {
                Some(p) => format!("attribute '{p}.{name}': {rule}"),
                None => format!("attribute '{name}': {rule}"),
            }
        })?;
        if out.iter().any(|d| d.name.eq_ignore_ascii_case(def.name)) {
            let whole = parent.map_or(def.name.to_owned(), |p| format!("{p}.{}", def.name));
            return Err(format!(
                "attribute '{whole}': defined twice (names compare case-insensitively)"
            ));
        }
        out.push(def);
    }
    Ok(out)
}

/// One attribute; a refusal carries the attribute's name when it was read.
fn attribute(item: &Value, parent: Option<&str>) -> Result<AttributeDef, (Option<String>, String)> {
    let Value::Object(obj) = item else {
        return Err((None, "must be a JSON object".into()));
    };
    let name = match obj.get("name") {
        Some(Value::String(n)) => n.clone(),
        _ => return Err((None, "'name' is required".into())),
    };
    let fail = |rule: String| (Some(name.clone()), rule);
    if !valid_name(&name) {
        return Err(fail(format!(
            "the name must be a letter then letters, digits, '-' or '_', at most {MAX_NAME_BYTES} bytes (RFC 7643 §2.1)"
        )));
    }
    known_keys(
        obj,
        &[
            "name",
            "type",
            "multiValued",
            "description",
            "required",
            "caseExact",
            "mutability",
            "returned",
            "uniqueness",
            "canonicalValues",
            "referenceTypes",
            "subAttributes",
        ],
    )
    .map_err(|k| fail(format!("unknown key '{k}'")))?;
    let ty = match obj.get("type").and_then(Value::as_str) {
        Some("string") => AttrType::String,
        Some("boolean") => AttrType::Boolean,
        Some("decimal") => AttrType::Decimal,
        Some("integer") => AttrType::Integer,
        Some("dateTime") => AttrType::DateTime,
        Some("binary") => AttrType::Binary,
        Some("reference") => AttrType::Reference,
        Some("complex") => AttrType::Complex,
        _ => return Err(fail("'type' must be one of string, boolean, decimal, integer, dateTime, binary, reference, complex".into())),
    };
    let flag = |key: &str| -> Result<bool, (Option<String>, String)> {
        match obj.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(fail(format!("'{key}' must be true or false"))),
        }
    };
    let word = |key: &str,
                allowed: &[&str],
                default: &'static str|
     -> Result<String, (Option<String>, String)> {
        match obj.get(key) {
            None => Ok(default.to_owned()),
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(s.clone()),
            Some(_) => Err(fail(format!(
                "'{key}' must be one of {}",
                allowed.join(", ")
            ))),
        }
    };
    let mutability = match word(
        "mutability",
        &["readOnly", "readWrite", "immutable", "writeOnly"],
        "readWrite",
    )?
    .as_str()
    {
        "readOnly" => Mutability::ReadOnly,
        "immutable" => Mutability::Immutable,
        "writeOnly" => Mutability::WriteOnly,
        _ => Mutability::ReadWrite,
    };
    let returned = match word(
        "returned",
        &["always", "never", "default", "request"],
        "default",
    )?
    .as_str()
    {
        "always" => Returned::Always,
        "never" => Returned::Never,
        "request" => Returned::Request,
        _ => Returned::Default,
    };
    if mutability == Mutability::ReadOnly && flag("required")? {
        return Err(fail(
            "a readOnly attribute cannot be required: clients cannot set it, so no write could succeed".into(),
        ));
    }
    if mutability == Mutability::WriteOnly && returned != Returned::Never {
        return Err(fail(
            "a writeOnly attribute must have 'returned': 'never' (RFC 7643 §7)".into(),
        ));
    }
    if word("uniqueness", &["none", "server", "global"], "none")? != "none" {
        return Err(fail(
            "'uniqueness' must be 'none': scimgate enforces uniqueness only for userName, and does not claim what it does not enforce".into(),
        ));
    }
    let strings = |key: &str| -> Result<&'static [&'static str], (Option<String>, String)> {
        match obj.get(key) {
            None => Ok(&[]),
            Some(Value::Array(list)) if list.len() <= MAX_ATTRIBUTES => {
                let words: Option<Vec<&'static str>> = list
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .filter(|s| s.len() <= MAX_TEXT_BYTES)
                            .map(|s| leak(s.to_owned()))
                    })
                    .collect();
                words
                    .map(|w| &*Box::leak(w.into_boxed_slice()))
                    .ok_or_else(|| fail(format!("'{key}' must be a list of strings")))
            }
            Some(_) => Err(fail(format!(
                "'{key}' must be a list of at most {MAX_ATTRIBUTES} strings"
            ))),
        }
    };
    let canonical_values = strings("canonicalValues")?;
    let reference_types = strings("referenceTypes")?;
    if !reference_types.is_empty() && ty != AttrType::Reference {
        return Err(fail(
            "'referenceTypes' belongs to attributes of type reference".into(),
        ));
    }
    let description = match obj.get("description") {
        None => String::new(),
        Some(Value::String(s)) if s.len() <= MAX_TEXT_BYTES => s.clone(),
        Some(_) => {
            return Err(fail(format!(
                "'description' must be a string of at most {MAX_TEXT_BYTES} bytes"
            )));
        }
    };
    let sub_attributes = match (ty, obj.get("subAttributes")) {
        (AttrType::Complex, _) if parent.is_some() => {
            return Err(fail(
                "a sub-attribute may not be complex (RFC 7643 §2.3.8)".into(),
            ));
        }
        (AttrType::Complex, Some(Value::Array(list)))
            if !list.is_empty() && list.len() <= MAX_ATTRIBUTES =>
        {
            attributes(list, Some(&name)).map_err(|e| (None, e))?
        }
        (AttrType::Complex, _) => {
            return Err(fail(format!(
                "a complex attribute needs 'subAttributes', 1 to {MAX_ATTRIBUTES}"
            )));
        }
        (_, None) => Vec::new(),
        (_, Some(_)) => return Err(fail("'subAttributes' belongs to complex attributes".into())),
    };
    let mut def = AttributeDef::new(leak(name.clone()), ty, leak(description));
    def.multi_valued = flag("multiValued")?;
    def.required = flag("required")?;
    def.case_exact = flag("caseExact")? || ty == AttrType::Binary;
    def.mutability = mutability;
    def.returned = returned;
    def.uniqueness = Uniqueness::None;
    def.canonical_values = canonical_values;
    def.reference_types = reference_types;
    def.sub_attributes = sub_attributes;
    Ok(def)
}

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_NAME_BYTES
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const URN: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

    fn doc(attributes: Value) -> String {
        json!({"id": URN, "name": "Custom", "attributes": attributes}).to_string()
    }

    #[test]
    fn a_good_schema_reads_with_its_characteristics() {
        let s = parse(
            "custom.json",
            &doc(json!([
                {"name": "costCenter", "type": "string", "caseExact": true},
                {"name": "badges", "type": "complex", "multiValued": true,
                 "subAttributes": [{"name": "value", "type": "string"}, {"name": "issued", "type": "dateTime"}]},
                {"name": "secret", "type": "string", "mutability": "writeOnly", "returned": "never"}
            ])),
        )
        .expect("valid");
        assert_eq!(s.id, URN);
        let cost = s.attribute("COSTCENTER").expect("found case-insensitively");
        assert!(cost.case_exact && !cost.multi_valued);
        let badges = s.attribute("badges").expect("badges");
        assert!(badges.multi_valued && badges.sub_attribute("issued").is_some());
        assert_eq!(
            s.attribute("secret").map(|d| d.returned),
            Some(Returned::Never)
        );
    }

    #[test]
    fn each_broken_rule_is_named_with_its_attribute() {
        let rows: Vec<(&str, String, &str)> = vec![
            ("not JSON", "{".into(), "not JSON"),
            ("no id", json!({"attributes": []}).to_string(), "'id'"),
            ("id not a URN", json!({"id": "custom", "attributes": [{"name": "a", "type": "string"}]}).to_string(), "must be a URN"),
            ("built-in URN", json!({"id": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "attributes": [{"name": "a", "type": "string"}]}).to_string(), "built-in"),
            ("no attributes", json!({"id": URN, "attributes": []}).to_string(), "'attributes'"),
            ("unknown top key", json!({"id": URN, "attributes": [{"name": "a", "type": "string"}], "extra": 1}).to_string(), "unknown key 'extra'"),
            ("bad name", doc(json!([{"name": "9lives", "type": "string"}])), "attribute '9lives': the name"),
            ("unknown type", doc(json!([{"name": "a", "type": "text"}])), "attribute 'a': 'type'"),
            ("typo key", doc(json!([{"name": "a", "type": "string", "mutablity": "readOnly"}])), "attribute 'a': unknown key 'mutablity'"),
            ("bad mutability", doc(json!([{"name": "a", "type": "string", "mutability": "sometimes"}])), "attribute 'a': 'mutability'"),
            ("writeOnly returned", doc(json!([{"name": "a", "type": "string", "mutability": "writeOnly"}])), "attribute 'a': a writeOnly"),
            ("uniqueness", doc(json!([{"name": "a", "type": "string", "uniqueness": "server"}])), "attribute 'a': 'uniqueness'"),
            ("readOnly and required", doc(json!([{"name": "a", "type": "string", "mutability": "readOnly", "required": true}])), "attribute 'a': a readOnly attribute cannot be required"),
            ("URN with parentheses", json!({"id": "urn:x:p(q),r", "attributes": [{"name": "a", "type": "string"}]}).to_string(), "may hold only"),
            ("URN ending in a dot", json!({"id": "urn:x:a.", "attributes": [{"name": "a", "type": "string"}]}).to_string(), "may hold only"),
            ("twice", doc(json!([{"name": "a", "type": "string"}, {"name": "A", "type": "integer"}])), "attribute 'A': defined twice"),
            ("complex without subs", doc(json!([{"name": "c", "type": "complex"}])), "attribute 'c': a complex"),
            ("nested complex", doc(json!([{"name": "c", "type": "complex", "subAttributes": [{"name": "d", "type": "complex", "subAttributes": [{"name": "e", "type": "string"}]}]}])), "attribute 'c.d': a sub-attribute may not be complex"),
            ("subs on a string", doc(json!([{"name": "s", "type": "string", "subAttributes": []}])), "attribute 's': 'subAttributes'"),
            ("flag not bool", doc(json!([{"name": "f", "type": "boolean", "required": "yes"}])), "attribute 'f': 'required'"),
            ("referenceTypes on string", doc(json!([{"name": "r", "type": "string", "referenceTypes": ["User"]}])), "attribute 'r': 'referenceTypes'"),
        ];
        for (label, text, says) in rows {
            let e = parse("f.json", &text).expect_err(label);
            assert!(e.starts_with("schema file 'f.json': "), "{label}: {e}");
            assert!(e.contains(says), "{label}: {e}");
        }
    }
}
