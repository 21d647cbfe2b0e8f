//! PATCH (RFC 7644 §3.5.2): the operations parsed into typed targets, and applied to a copy
//! of the stored attributes. Group membership never passes through here as a list: member
//! operations become [`MemberChanges`] that storage applies row by row.

mod apply;
#[cfg(test)]
mod tests;

pub use apply::apply;

use std::collections::HashSet;

use serde_json::Value;

use crate::dialect::{Dialect, Rewrites};
use crate::error::{ScimError, ScimType};
use crate::filter::{DEFAULT_MAX_DEPTH, Filter, parse_element_filter};
use crate::path::{AttrPath, resolve_attribute};
use crate::resource_type::ResourceType;
use crate::schema::{AttrType, AttributeDef};
use crate::schemas::ENTERPRISE_USER_URN;
use crate::validate::MemberInput;

pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub kind: OpKind,
    pub target: Option<Target>,
    /// The path named a whole extension schema (`urn:…:enterprise:2.0:User`).
    pub extension: Option<&'static crate::schema::Schema>,
    pub value: Option<Value>,
    /// 0-based position in `Operations`, for error messages.
    pub index: usize,
    /// The filter nesting limit it was parsed under, for the paths in its value's keys.
    pub max_filter_depth: usize,
}

impl Operation {
    /// The operation's value after the dialect rules, as applying it uses it.
    pub fn normalized_value(&self, rt: ResourceType, dialect: &Dialect) -> Option<Value> {
        let mut value = self.value.clone()?;
        let mut rewrites = Vec::new();
        match (&self.target, self.extension) {
            (Some(target), _) => {
                apply::normalize_for_target(target, &mut value, dialect, &mut rewrites);
            }
            (None, None) => {
                crate::dialect::normalize_resource(rt, &mut value, dialect, &mut rewrites);
            }
            (None, Some(_)) => {}
        }
        Some(value)
    }
}

/// Where an operation points: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The attribute, with `sub` unset.
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<&'static AttributeDef>,
    /// The path as the client wrote it, for messages.
    pub text: String,
}

/// What a PATCH does to a group's members, composed over its operations in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberChanges {
    /// The whole new member list (`replace members`, or `remove members` with no value).
    pub replace_with: Option<Vec<MemberInput>>,
    pub add: Vec<MemberInput>,
    pub remove: Vec<String>,
}

impl MemberChanges {
    pub fn is_empty(&self) -> bool {
        self.replace_with.is_none() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Composes member operations into [`MemberChanges`] in time linear in their sizes, however
/// many operations there are: the lists keep the order ids came in, the sets say which
/// entries are still live, and `finish` drops the rest.
#[derive(Debug, Clone, Default)]
pub struct MemberComposer {
    replace_with: Option<Vec<MemberInput>>,
    all_live: HashSet<String>,
    add: Vec<MemberInput>,
    add_live: HashSet<String>,
    remove: Vec<String>,
    remove_live: HashSet<String>,
}

impl MemberComposer {
    fn replace(&mut self, list: Vec<MemberInput>) {
        *self = MemberComposer {
            all_live: list.iter().map(|m| m.value.clone()).collect(),
            replace_with: Some(list),
            ..Default::default()
        };
    }

    fn add(&mut self, list: Vec<MemberInput>) {
        match &mut self.replace_with {
            Some(all) => {
                for m in list {
                    if self.all_live.insert(m.value.clone()) {
                        all.push(m);
                    }
                }
            }
            None => {
                for m in list {
                    self.remove_live.remove(&m.value);
                    if self.add_live.insert(m.value.clone()) {
                        self.add.push(m);
                    }
                }
            }
        }
    }

    fn remove(&mut self, ids: Vec<String>) {
        match &self.replace_with {
            Some(_) => {
                for id in ids {
                    self.all_live.remove(&id);
                }
            }
            None => {
                for id in ids {
                    self.add_live.remove(&id);
                    if self.remove_live.insert(id.clone()) {
                        self.remove.push(id);
                    }
                }
            }
        }
    }

    /// The composed changes: each id once, where it is still live.
    fn finish(mut self) -> MemberChanges {
        let live = |set: &mut HashSet<String>, id: &str| set.remove(id);
        MemberChanges {
            replace_with: self.replace_with.take().map(|all| {
                all.into_iter()
                    .filter(|m| live(&mut self.all_live, &m.value))
                    .collect()
            }),
            add: std::mem::take(&mut self.add)
                .into_iter()
                .filter(|m| live(&mut self.add_live, &m.value))
                .collect(),
            remove: std::mem::take(&mut self.remove)
                .into_iter()
                .filter(|id| live(&mut self.remove_live, id))
                .collect(),
        }
    }
}

/// The result of applying a PATCH.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The attributes after every operation, not yet validated.
    pub attributes: serde_json::Map<String, Value>,
    /// Whether any operation touched attributes other than `members`.
    pub attributes_changed: bool,
    pub members: MemberChanges,
    /// What the operations do to the password.
    pub password: crate::PasswordChange,
}

/// The bounds a PatchOp message is parsed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchLimits {
    /// Most operations in one message.
    pub max_operations: usize,
    /// Deepest nesting in a value filter of a path (as for query filters).
    pub max_filter_depth: usize,
}

impl Default for PatchLimits {
    fn default() -> Self {
        PatchLimits {
            max_operations: 1000,
            max_filter_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// Parses a PatchOp message (RFC 7644 §3.5.2).
pub fn parse(
    rt: ResourceType,
    body: Value,
    dialect: &Dialect,
    limits: PatchLimits,
    rewrites: &mut Rewrites,
) -> Result<Vec<Operation>, ScimError> {
    let max_operations = limits.max_operations;
    let Value::Object(mut obj) = body else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body must be a JSON object",
        ));
    };
    let field = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let has_urn = field("schemas").and_then(Value::as_array).is_some_and(|s| {
        s.iter().any(|u| {
            u.as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP_URN))
        })
    });
    if !has_urn {
        return Err(ScimError::invalid_syntax(format!(
            "'schemas' must be [\"{PATCH_OP_URN}\"]"
        )));
    }
    let count = field("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("'Operations' must be a list of operations"))?
        .len();
    if count > max_operations {
        return Err(ScimError::new(
            400,
            Some(ScimType::TooMany),
            format!("{count} operations; the limit is {max_operations}"),
        ));
    }
    let Some(Value::Array(list)) = take(&mut obj, "Operations") else {
        return Err(ScimError::invalid_syntax(
            "'Operations' must be a list of operations",
        ));
    };
    // The operations are moved out of the body, not copied: a member list can be a
    // megabyte of JSON.
    list.into_iter()
        .enumerate()
        .map(|(i, op)| operation(rt, i, op, dialect, limits.max_filter_depth, rewrites))
        .collect()
}

/// Removes and returns the member `name` (matched case-insensitively).
fn take(obj: &mut serde_json::Map<String, Value>, name: &str) -> Option<Value> {
    let key = obj.keys().find(|k| k.eq_ignore_ascii_case(name))?.clone();
    obj.remove(&key)
}

fn operation(
    rt: ResourceType,
    index: usize,
    op: Value,
    dialect: &Dialect,
    max_filter_depth: usize,
    rewrites: &mut Rewrites,
) -> Result<Operation, ScimError> {
    let n = index + 1;
    let Value::Object(mut obj) = op else {
        return Err(ScimError::invalid_syntax(format!(
            "operation {n} must be a JSON object"
        )));
    };
    let field = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let name = field("op")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            ScimError::invalid_syntax(format!("operation {n} needs 'op': add, remove or replace"))
        })?;
    let kind = match name.as_str() {
        "add" => OpKind::Add,
        "remove" => OpKind::Remove,
        "replace" => OpKind::Replace,
        other if dialect.op_names => {
            rewrites.push("op_names");
            match other.to_ascii_lowercase().as_str() {
                "add" => OpKind::Add,
                "remove" | "delete" => OpKind::Remove,
                "replace" => OpKind::Replace,
                _ => {
                    return Err(ScimError::invalid_syntax(format!(
                        "operation {n}: unknown op '{other}'"
                    )));
                }
            }
        }
        other => {
            return Err(ScimError::invalid_syntax(format!(
                "operation {n}: unknown op '{other}'"
            )));
        }
    };
    let mut extension = None;
    let target = match field("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => match crate::path::resolve(rt, p.trim()) {
            Ok(crate::path::PathTarget::Extension(ext)) => {
                extension = Some(ext);
                None
            }
            _ => Some(
                target(rt, p, dialect, max_filter_depth, rewrites)
                    .map_err(|e| at_operation(e, n))?,
            ),
        },
        Some(_) => {
            return Err(ScimError::invalid_syntax(format!(
                "operation {n}: 'path' must be a string"
            )));
        }
    };
    let value = take(&mut obj, "value");
    if kind != OpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_syntax(format!(
            "operation {n} ({name}) needs a 'value'"
        )));
    }
    if kind == OpKind::Remove && target.is_none() && extension.is_none() {
        return Err(ScimError::bad_request(
            ScimType::NoTarget,
            format!("operation {n}: remove needs a 'path'"),
        ));
    }
    Ok(Operation {
        kind,
        target,
        extension,
        value,
        index,
        max_filter_depth,
    })
}

fn at_operation(e: ScimError, n: usize) -> ScimError {
    ScimError::new(
        e.status,
        e.scim_type,
        format!("operation {n}: {}", e.detail),
    )
}

/// Parses a PATCH path (RFC 7644 §3.5.2, `PATH = attrPath / valuePath [subAttr]`).
pub fn target(
    rt: ResourceType,
    text: &str,
    dialect: &Dialect,
    max_filter_depth: usize,
    rewrites: &mut Rewrites,
) -> Result<Target, ScimError> {
    let invalid = |why: String| ScimError::bad_request(ScimType::InvalidPath, why);
    let (attr_text, filter_text, sub_text) = match text.find('[') {
        None => (text, None, None),
        Some(open) => {
            let close = closing_bracket(text, open)
                .ok_or_else(|| invalid(format!("path '{text}' has no closing ']'")))?;
            let rest = &text[close + 1..];
            let sub = match rest.strip_prefix('.') {
                Some(s) => Some(s),
                None if rest.is_empty() => None,
                None => {
                    return Err(invalid(format!(
                        "unexpected '{rest}' after ']' in path '{text}'"
                    )));
                }
            };
            (&text[..open], Some(&text[open + 1..close]), sub)
        }
    };
    let resolved = match resolve_attribute(rt, attr_text.trim()) {
        Ok(p) => p,
        Err(_)
            if dialect.manager_shortcuts && rt == ResourceType::User && is_manager(attr_text) =>
        {
            rewrites.push("manager_shortcuts");
            resolve_attribute(rt, &format!("{ENTERPRISE_USER_URN}:{}", attr_text.trim()))
                .map_err(invalid)?
        }
        Err(e) => return Err(invalid(format!("{e} in path '{text}'"))),
    };
    let attr = AttrPath {
        sub: None,
        ..resolved
    };
    let mut sub = resolved.sub;
    let filter = match filter_text {
        None => None,
        Some(f) => {
            if attr.attr.ty != AttrType::Complex || sub.is_some() {
                return Err(invalid(format!(
                    "'{}' in path '{text}' cannot take a value filter",
                    attr.canonical()
                )));
            }
            Some(parse_element_filter(rt, attr, f, max_filter_depth)?)
        }
    };
    if let Some(s) = sub_text {
        sub = Some(attr.attr.sub_attribute(s).ok_or_else(|| {
            invalid(format!(
                "'{}' has no sub-attribute '{s}' (path '{text}')",
                attr.attr.name
            ))
        })?);
    }
    Ok(Target {
        attr,
        filter,
        sub,
        text: text.to_owned(),
    })
}

fn is_manager(path: &str) -> bool {
    let head = path.trim().split('.').next().unwrap_or_default();
    head.eq_ignore_ascii_case("manager")
}

/// The `]` that closes the `[` at `open`, skipping brackets inside strings.
fn closing_bracket(text: &str, open: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut i, mut in_string) = (open + 1, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b']' if !in_string => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}
