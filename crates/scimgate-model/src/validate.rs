//! Validation of an incoming resource against its schemas (RFC 7643 §2): names matched
//! case-insensitively and rewritten to canonical spelling, types checked, readOnly input
//! dropped, required and immutable enforced. The result is what storage keeps.

use base64::Engine;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ScimError;
use crate::resource_type::ResourceType;
use crate::schema::{AttrType, AttributeDef, Mutability, Schema, find_attribute};
use crate::schemas::COMMON;

/// A resource that passed validation, split the way storage keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedResource {
    pub resource_type: ResourceType,
    /// Writable attributes in canonical spelling, extension attributes under their schema
    /// URN; without `id`, `meta`, `schemas`, readOnly attributes, `password` and `members`.
    pub attributes: Map<String, Value>,
    /// What the write does to the password (cleartext here, to be hashed or discarded,
    /// never stored as is).
    pub password: PasswordChange,
    /// Group members (always empty for Users): a PUT without `members` empties the group.
    pub members: Vec<MemberInput>,
    /// The schema set it was checked against (`registry::Registry::epoch`).
    pub schema_set: u64,
}

/// What a write does to the write-only `password`: a write that does not mention it keeps
/// it (a client can never read it back to send it again); `null` or a PATCH `remove`
/// clears it. `Set` holds the cleartext in the model and the hash in storage.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum PasswordChange {
    #[default]
    Keep,
    Set(String),
    Clear,
}

impl PasswordChange {
    pub fn is_keep(&self) -> bool {
        matches!(self, PasswordChange::Keep)
    }
}

/// Never prints the password (nor its hash).
impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PasswordChange::Keep => "Keep",
            PasswordChange::Set(_) => "Set(<redacted>)",
            PasswordChange::Clear => "Clear",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInput {
    pub value: String,
    /// The `type` the client gave, checked against the member's real type when stored.
    pub member_type: Option<ResourceType>,
}

impl ValidatedResource {
    /// `userName` of a User, `displayName` of a Group: required, so always present.
    pub fn name(&self) -> &str {
        let key = match self.resource_type {
            ResourceType::User => "userName",
            ResourceType::Group => "displayName",
        };
        self.attributes
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// What a membership shows as `display`: the displayName, else the userName.
    pub fn display(&self) -> &str {
        self.attributes
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_else(|| self.name())
    }

    pub fn external_id(&self) -> Option<&str> {
        self.attributes.get("externalId").and_then(Value::as_str)
    }

    /// The schema URNs this resource uses, core first, for its `schemas` attribute.
    pub fn schema_urns(&self) -> Vec<&'static str> {
        schema_urns(self.resource_type, &self.attributes)
    }
}

/// The `schemas` value of a stored resource: core URN, then each extension it carries.
pub fn schema_urns(rt: ResourceType, attributes: &Map<String, Value>) -> Vec<&'static str> {
    schema_urns_of(rt, |key| attributes.contains_key(key))
}

/// [`schema_urns`] of attributes known only by whether each top-level key is there.
pub fn schema_urns_of(rt: ResourceType, has: impl Fn(&str) -> bool) -> Vec<&'static str> {
    let mut urns = vec![rt.core_schema().id];
    urns.extend(
        rt.extensions()
            .iter()
            .filter(|ext| has(ext.id))
            .map(|ext| ext.id),
    );
    urns
}

/// Validates a create or replace body for `rt`.
pub fn validate(rt: ResourceType, input: &Value) -> Result<ValidatedResource, ScimError> {
    let obj = input
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the request body must be a JSON object"))?;
    let declared = declared_schemas(rt, obj)?;

    let mut out = ValidatedResource {
        schema_set: crate::registry::current().epoch(),
        resource_type: rt,
        attributes: Map::new(),
        password: PasswordChange::Keep,
        members: Vec::new(),
    };
    for (key, value) in obj {
        if value.is_null() && key.eq_ignore_ascii_case("password") {
            // Unassigned: for the write-only password that means "clear it", since
            // leaving it out means "keep it".
            out.password = PasswordChange::Clear;
            continue;
        }
        if key.eq_ignore_ascii_case("schemas") || value.is_null() {
            continue; // null means unassigned (RFC 7643 §2.5)
        }
        if let Some(ext) = rt.extension(key) {
            let ext_obj = validate_extension(ext, value)?;
            if !ext_obj.is_empty() {
                out.attributes
                    .insert(ext.id.to_owned(), Value::Object(ext_obj));
            }
            continue;
        }
        let def = rt
            .core_schema()
            .attribute(key)
            .or_else(|| find_attribute(&COMMON, key))
            .ok_or_else(|| unknown_attribute(rt, key, &declared))?;
        if def.mutability == Mutability::ReadOnly {
            continue; // id, meta, groups echoed back by IdPs are ignored, not errors
        }
        let value = validate_attribute(def, value, def.name)?;
        match def.name {
            "password" => {
                out.password = match value.as_str() {
                    Some(p) => PasswordChange::Set(p.to_owned()),
                    None => PasswordChange::Clear,
                }
            }
            "members" => out.members = members(&value)?,
            _ => {
                if !is_empty(&value) {
                    out.attributes.insert(def.name.to_owned(), value);
                }
            }
        }
    }
    check_required(rt.core_schema(), &out.attributes)?;
    Ok(out)
}

/// Refuses a resource with a multi-valued attribute longer than `max` values (group members
/// excepted: they are rows, bounded by the body size and handled in linear time). Every
/// stored value costs index rows in the single writer, so lists are bounded per attribute.
pub fn check_list_lengths(attributes: &Map<String, Value>, max: usize) -> Result<(), ScimError> {
    let lists = attributes.iter().flat_map(|(key, value)| match value {
        Value::Object(ext) if key.starts_with("urn:") => ext
            .iter()
            .map(|(k, v)| (format!("{key}:{k}"), v))
            .collect::<Vec<_>>(),
        _ => vec![(key.clone(), value)],
    });
    for (path, value) in lists {
        if path.eq_ignore_ascii_case("members") {
            continue;
        }
        if let Value::Array(items) = value
            && items.len() > max
        {
            return Err(ScimError::invalid_value(format!(
                "attribute '{path}' has {} values; the limit is {max}",
                items.len()
            )));
        }
    }
    Ok(())
}

/// Checks `schemas`: present, a list of strings, naming the core schema. Other URNs are
/// allowed (Entra adds one of its own) as long as no attributes are sent under them.
fn declared_schemas(rt: ResourceType, obj: &Map<String, Value>) -> Result<Vec<String>, ScimError> {
    let core = rt.core_schema().id;
    let schemas = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v)
        .ok_or_else(|| {
            ScimError::invalid_syntax(format!(
                "attribute 'schemas' is required and must include '{core}'"
            ))
        })?;
    let list = schemas.as_array().ok_or_else(|| {
        ScimError::invalid_syntax("attribute 'schemas' must be a list of schema URNs")
    })?;
    let mut urns = Vec::with_capacity(list.len());
    for item in list {
        let urn = item.as_str().ok_or_else(|| {
            ScimError::invalid_syntax("attribute 'schemas' must be a list of schema URNs")
        })?;
        urns.push(urn.to_owned());
    }
    if !urns.iter().any(|u| u.eq_ignore_ascii_case(core)) {
        return Err(ScimError::invalid_syntax(format!(
            "attribute 'schemas' must include '{core}' for a {}",
            rt.name()
        )));
    }
    Ok(urns)
}

fn unknown_attribute(rt: ResourceType, key: &str, declared: &[String]) -> ScimError {
    if declared.iter().any(|u| u.eq_ignore_ascii_case(key)) {
        return ScimError::invalid_syntax(format!(
            "schema '{key}' is not supported for resource type {}, so its attributes cannot be stored",
            rt.name()
        ));
    }
    ScimError::invalid_syntax(format!(
        "unknown attribute '{key}' for resource type {}",
        rt.name()
    ))
}

fn validate_extension(ext: &Schema, value: &Value) -> Result<Map<String, Value>, ScimError> {
    let obj = value.as_object().ok_or_else(|| {
        ScimError::invalid_value(format!(
            "'{}' must be a JSON object of its attributes",
            ext.id
        ))
    })?;
    let mut out = Map::new();
    for (key, value) in obj {
        if value.is_null() {
            continue;
        }
        let def = ext.attribute(key).ok_or_else(|| {
            ScimError::invalid_syntax(format!("unknown attribute '{key}' in schema '{}'", ext.id))
        })?;
        if def.mutability == Mutability::ReadOnly {
            continue;
        }
        let value = validate_attribute(def, value, &format!("{}:{}", ext.id, def.name))?;
        if !is_empty(&value) {
            out.insert(def.name.to_owned(), value);
        }
    }
    check_required(ext, &out)?;
    Ok(out)
}

fn check_required(schema: &Schema, attrs: &Map<String, Value>) -> Result<(), ScimError> {
    for def in schema.attributes.iter().filter(|d| d.required) {
        match attrs.get(def.name) {
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(ScimError::invalid_value(format!(
                    "attribute '{}' must not be empty",
                    def.name
                )));
            }
            Some(_) => {}
            None => {
                return Err(ScimError::invalid_value(format!(
                    "attribute '{}' is required",
                    def.name
                )));
            }
        }
    }
    Ok(())
}

/// Validates one attribute value (singular or a list) and returns it in canonical form.
pub fn validate_attribute(
    def: &AttributeDef,
    value: &Value,
    path: &str,
) -> Result<Value, ScimError> {
    if !def.multi_valued {
        if value.is_array() {
            return Err(ScimError::invalid_value(format!(
                "attribute '{path}' is single-valued and must not be a list"
            )));
        }
        return validate_single(def, value, path);
    }
    let items = value.as_array().ok_or_else(|| {
        ScimError::invalid_value(format!(
            "attribute '{path}' is multi-valued and must be a list"
        ))
    })?;
    let mut out = Vec::with_capacity(items.len());
    let mut index = crate::dedup::ValueIndex::default();
    let mut primaries = 0;
    for item in items.iter().filter(|i| !only_nulls(i)) {
        let item = validate_single(def, item, path)?;
        if item.get("primary") == Some(&Value::Bool(true)) {
            primaries += 1;
        }
        index.push_new(&mut out, item); // exact duplicates carry no meaning (RFC 7643 §2.4)
    }
    if primaries > 1 {
        return Err(ScimError::invalid_value(format!(
            "attribute '{path}' has more than one value with primary set to true"
        )));
    }
    Ok(Value::Array(out))
}

/// The first control character in `s` that text attributes refuse (C0 and DEL, but tab,
/// line feed and carriage return), with its character position. NUL in particular cuts
/// strings short in SQL functions, so a value holding one would compare differently in
/// the database and in memory; such values are refused on input, named.
pub fn forbidden_control(s: &str) -> Option<(usize, char)> {
    s.chars()
        .enumerate()
        .find(|(_, c)| c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r'))
}

fn control_error(path: &str, (at, c): (usize, char)) -> ScimError {
    ScimError::invalid_value(format!(
        "attribute '{path}' contains the control character U+{:04X} at position {at}; only tab, line feed and carriage return are accepted",
        u32::from(c)
    ))
}

fn validate_single(def: &AttributeDef, value: &Value, path: &str) -> Result<Value, ScimError> {
    if let (AttrType::String | AttrType::Reference, Some(s)) = (def.ty, value.as_str())
        && let Some(found) = forbidden_control(s)
    {
        return Err(control_error(path, found));
    }
    let ok = match def.ty {
        AttrType::String | AttrType::Reference => value.is_string(),
        AttrType::Boolean => value.is_boolean(),
        AttrType::Decimal => value.is_number(),
        AttrType::Integer => value.is_i64() || value.is_u64(),
        AttrType::DateTime => value
            .as_str()
            .is_some_and(|s| OffsetDateTime::parse(s, &Rfc3339).is_ok()),
        AttrType::Binary => value
            .as_str()
            .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok()),
        AttrType::Complex => return validate_complex(def, value, path),
    };
    if ok {
        Ok(value.clone())
    } else {
        Err(ScimError::invalid_value(format!(
            "attribute '{path}' must be {}, got {}",
            expected(def.ty),
            json_kind(value)
        )))
    }
}

fn validate_complex(def: &AttributeDef, value: &Value, path: &str) -> Result<Value, ScimError> {
    let obj = value.as_object().ok_or_else(|| {
        ScimError::invalid_value(format!(
            "attribute '{path}' must be a JSON object, got {}",
            json_kind(value)
        ))
    })?;
    let mut out = Map::new();
    for (key, value) in obj {
        if value.is_null() {
            continue;
        }
        let sub = def.sub_attribute(key).ok_or_else(|| {
            ScimError::invalid_syntax(format!("unknown attribute '{path}.{key}'"))
        })?;
        if sub.mutability == Mutability::ReadOnly {
            continue;
        }
        let sub_path = format!("{path}.{}", sub.name);
        out.insert(
            sub.name.to_owned(),
            validate_attribute(sub, value, &sub_path)?,
        );
    }
    Ok(Value::Object(out))
}

/// The members a `members` value names, deduplicated, each with its claimed type.
pub fn members(value: &Value) -> Result<Vec<MemberInput>, ScimError> {
    let mut out: Vec<MemberInput> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in value.as_array().into_iter().flatten() {
        let id = item
            .get("value")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let id = id.ok_or_else(|| {
            ScimError::invalid_value(
                "every entry of 'members' needs a 'value' with the member's id",
            )
        })?;
        let member_type = match item.get("type").and_then(Value::as_str) {
            None => None,
            Some(t) => Some(ResourceType::from_name(t).ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "'members.type' of '{id}' must be 'User' or 'Group', got '{t}'"
                ))
            })?),
        };
        if seen.insert(id) {
            out.push(MemberInput {
                value: id.to_owned(),
                member_type,
            });
        }
    }
    Ok(out)
}

/// Refuses a change to an immutable attribute that already has a value. An immutable value
/// left out of a replace keeps its stored value.
pub fn carry_immutable(
    rt: ResourceType,
    stored: &Map<String, Value>,
    new: &mut Map<String, Value>,
) -> Result<(), ScimError> {
    carry_immutable_in(&rt.core_schema().attributes, stored, new, "")?;
    for ext in rt.extensions() {
        let Some(Value::Object(old)) = stored.get(ext.id) else {
            continue;
        };
        // A write without the extension keeps its immutable values too.
        let holds_immutable = ext
            .attributes
            .iter()
            .any(|d| d.mutability == Mutability::Immutable && old.contains_key(d.name));
        if holds_immutable && !new.contains_key(ext.id) {
            new.insert(ext.id.to_owned(), Value::Object(Map::new()));
        }
        if let Some(Value::Object(next)) = new.get_mut(ext.id) {
            carry_immutable_in(&ext.attributes, old, next, &format!("{}:", ext.id))?;
        }
    }
    Ok(())
}

fn carry_immutable_in(
    defs: &[AttributeDef],
    stored: &Map<String, Value>,
    new: &mut Map<String, Value>,
    prefix: &str,
) -> Result<(), ScimError> {
    for def in defs.iter().filter(|d| !d.multi_valued) {
        let Some(old) = stored.get(def.name) else {
            continue;
        };
        if def.mutability == Mutability::Immutable {
            match new.get(def.name) {
                None => {
                    new.insert(def.name.to_owned(), old.clone());
                }
                Some(v) if v != old => {
                    return Err(ScimError::mutability(format!(
                        "attribute '{prefix}{}' is immutable and already set",
                        def.name
                    )));
                }
                Some(_) => {}
            }
        } else if def.ty == AttrType::Complex
            && let (Value::Object(old), Some(Value::Object(next))) = (old, new.get_mut(def.name))
        {
            carry_immutable_in(
                &def.sub_attributes,
                old,
                next,
                &format!("{prefix}{}.", def.name),
            )?;
        }
    }
    Ok(())
}

/// `null`, or an object of nothing but nulls: an unassigned value in a list.
fn only_nulls(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(o) => o.values().all(Value::is_null),
        _ => false,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn expected(t: AttrType) -> &'static str {
    match t {
        AttrType::String => "a string",
        AttrType::Reference => "a reference (string)",
        AttrType::Boolean => "a boolean",
        AttrType::Decimal => "a number",
        AttrType::Integer => "an integer",
        AttrType::DateTime => "an RFC 3339 dateTime string",
        AttrType::Binary => "base64-encoded binary",
        AttrType::Complex => "a JSON object",
    }
}

pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
