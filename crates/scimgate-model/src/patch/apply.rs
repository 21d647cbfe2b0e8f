//! Applies parsed operations to a copy of a resource's attributes, in order.

use serde_json::{Map, Value};

use super::{MemberChanges, MemberComposer, OpKind, Operation, Outcome, Target, target};
use crate::dedup::ValueIndex;
use crate::dialect::{Dialect, Rewrites, normalize_value};
use crate::error::{ScimError, ScimType};
use crate::filter::{Comparand, CompareOp, Filter, matches_element};
use crate::resource_type::ResourceType;
use crate::schema::{AttrType, AttributeDef, Mutability};
use crate::validate::{PasswordChange, members};

/// Most work one PATCH may do on multi-valued attributes, over all its operations: each
/// operation on a list counts the values the list holds then, times the terms of its value
/// filter (each value is tested against each term). Operations that each touch a long list
/// would otherwise cost operations × length.
pub const MAX_VALUES_TOUCHED: usize = 200_000;

/// Applies `ops` to `current` (the stored attributes of resource `id`).
pub fn apply(
    rt: ResourceType,
    id: &str,
    current: &Map<String, Value>,
    ops: &[Operation],
    dialect: &Dialect,
    rewrites: &mut Rewrites,
) -> Result<Outcome, ScimError> {
    let mut out = Outcome {
        attributes: current.clone(),
        attributes_changed: false,
        members: MemberChanges::default(),
        password: PasswordChange::Keep,
    };
    let mut members = MemberComposer::default();
    let mut touched = 0usize;
    for op in ops {
        let n = op.index + 1;
        let steps = match (&op.target, op.extension) {
            (Some(t), _) => vec![(t.clone(), op.value.clone())],
            (None, Some(ext)) => {
                // The whole extension: replace and remove clear it first.
                if op.kind != OpKind::Add {
                    out.attributes.remove(ext.id);
                    out.attributes_changed = true;
                }
                if op.kind == OpKind::Remove {
                    continue;
                }
                let wrapped = Operation {
                    value: Some(Value::Object(Map::from_iter([(
                        ext.id.to_owned(),
                        op.value.clone().unwrap_or(Value::Null),
                    )]))),
                    extension: None,
                    ..op.clone()
                };
                expand_no_path(rt, id, &wrapped, dialect, rewrites)?
            }
            (None, None) => expand_no_path(rt, id, op, dialect, rewrites)?,
        };
        for (t, value) in steps {
            let terms = t.filter.as_ref().map_or(1, Filter::terms);
            touched = touched.saturating_add(values_of(&out.attributes, &t).saturating_mul(terms));
            if touched > MAX_VALUES_TOUCHED {
                return Err(ScimError::new(
                    400,
                    Some(ScimType::TooMany),
                    format!(
                        "operation {n}: the operations of this PATCH touch more than \
                         {MAX_VALUES_TOUCHED} values (each counts its list's values times its \
                         filter's terms); send fewer operations"
                    ),
                ));
            }
            step(
                rt,
                &mut out,
                &mut members,
                op.kind,
                &t,
                value,
                dialect,
                rewrites,
            )
            .map_err(|e| {
                ScimError::new(
                    e.status,
                    e.scim_type,
                    format!("operation {n}: {}", e.detail),
                )
            })?;
        }
    }
    out.members = members.finish();
    Ok(out)
}

/// How many values of `t`'s attribute a value filter would test now.
fn values_of(attributes: &Map<String, Value>, t: &Target) -> usize {
    let holder = match t.attr.extension {
        Some(ext) => attributes.get(ext.id).and_then(Value::as_object),
        None => Some(attributes),
    };
    match holder.and_then(|h| h.get(t.attr.attr.name)) {
        Some(Value::Array(items)) => items.len(),
        Some(_) => 1,
        None => 0,
    }
}

/// A no-path `add`/`replace`: each key of the value object is a path of its own.
fn expand_no_path(
    rt: ResourceType,
    id: &str,
    op: &Operation,
    dialect: &Dialect,
    rewrites: &mut Rewrites,
) -> Result<Vec<(Target, Option<Value>)>, ScimError> {
    let n = op.index + 1;
    let Some(Value::Object(obj)) = &op.value else {
        return Err(ScimError::invalid_syntax(format!(
            "operation {n}: without a path, 'value' must be an object"
        )));
    };
    let mut steps = Vec::new();
    for (key, v) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if key.eq_ignore_ascii_case("id") {
            if dialect.ignore_own_id && v.as_str() == Some(id) {
                rewrites.push("ignore_own_id");
                continue;
            }
            return Err(ScimError::mutability(format!(
                "operation {n}: attribute 'id' is readOnly"
            )));
        }
        if let Some(ext) = rt.extension(key)
            && let Value::Object(inner) = v
        {
            for (k, vv) in inner
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("schemas"))
            {
                let t = target(
                    rt,
                    &format!("{}:{k}", ext.id),
                    dialect,
                    op.max_filter_depth,
                    rewrites,
                )?;
                steps.push((t, Some(vv.clone())));
            }
            continue;
        }
        let dotted = key.contains('.') && !key.to_ascii_lowercase().starts_with("urn:");
        if dotted && !dialect.dotted_keys {
            return Err(ScimError::bad_request(
                ScimType::InvalidPath,
                format!("operation {n}: '{key}' is not an attribute name"),
            ));
        }
        if dotted || key.contains(':') {
            rewrites.push("dotted_keys");
        }
        let t = target(rt, key, dialect, op.max_filter_depth, rewrites).map_err(|mut e| {
            e.detail = format!("operation {n}: {}", e.detail);
            e
        })?;
        steps.push((t, Some(v.clone())));
    }
    Ok(steps)
}

#[allow(clippy::too_many_arguments)]
fn step(
    rt: ResourceType,
    out: &mut Outcome,
    members: &mut MemberComposer,
    kind: OpKind,
    t: &Target,
    value: Option<Value>,
    dialect: &Dialect,
    rewrites: &mut Rewrites,
) -> Result<(), ScimError> {
    let leaf = t.sub.unwrap_or(t.attr.attr);
    if t.attr.attr.mutability == Mutability::ReadOnly || leaf.mutability == Mutability::ReadOnly {
        return Err(ScimError::mutability(format!(
            "attribute '{}' is readOnly",
            t.text
        )));
    }
    if rt == ResourceType::Group && t.attr.extension.is_none() && t.attr.attr.name == "members" {
        return member_step(members, kind, t, value, dialect, rewrites);
    }
    if t.attr.extension.is_none() && t.attr.attr.name == "password" {
        out.password = match (kind, value) {
            (OpKind::Remove, _) => PasswordChange::Clear,
            (_, Some(Value::String(p))) => PasswordChange::Set(p),
            (_, Some(Value::Null)) if dialect.null_is_absent => {
                rewrites.push("null_is_absent");
                PasswordChange::Clear
            }
            _ => return Err(ScimError::invalid_value("'password' must be a string")),
        };
        return Ok(());
    }
    out.attributes_changed = true;
    let mut value = value;
    // The dialect first: it may make `""` the `null` it means.
    let sent_null = matches!(value, Some(Value::Null));
    if let Some(v) = value.as_mut() {
        normalize_for_target(t, v, dialect, rewrites);
    }
    // null means "make it absent" (RFC 7644 §3.5.2.3 allows it for replace; Entra sends it).
    let kind = match (&value, kind) {
        (Some(Value::Null), OpKind::Add | OpKind::Replace)
            if (sent_null && dialect.null_is_absent)
                || (!sent_null && dialect.empty_string_is_absent) =>
        {
            if sent_null {
                rewrites.push("null_is_absent");
            }
            value = None;
            OpKind::Remove
        }
        (_, k) => k,
    };
    let container = container(&mut out.attributes, t, kind != OpKind::Remove);
    let Some(container) = container else {
        return no_target(kind, t);
    };
    let name = t.attr.attr.name;
    // An immutable value, once set, is never taken away (RFC 7644 §3.5.2.2): a `remove`
    // of one that is there is a `mutability` error, not a silent no-op.
    if kind == OpKind::Remove
        && leaf.mutability == Mutability::Immutable
        && t.filter.is_none()
        && container.get(name).is_some_and(|v| match t.sub {
            None => !v.is_null(),
            Some(sub) => v.get(sub.name).is_some_and(|x| !x.is_null()),
        })
    {
        return Err(ScimError::mutability(format!(
            "attribute '{}' is immutable and already set",
            t.text
        )));
    }
    match (&t.filter, t.sub) {
        (None, None) => whole(container, name, t.attr.attr, kind, value, dialect),
        (None, Some(sub)) => sub_everywhere(container, name, t.attr.attr, sub, kind, value),
        (Some(filter), sub) => filtered(container, t, filter, sub, kind, value, dialect, rewrites),
    }?;
    tidy(container, name);
    if let Some(ext) = t.attr.extension
        && out
            .attributes
            .get(ext.id)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        out.attributes.remove(ext.id);
    }
    Ok(())
}

fn no_target(kind: OpKind, t: &Target) -> Result<(), ScimError> {
    match kind {
        OpKind::Remove => Ok(()),
        _ => Err(ScimError::bad_request(
            ScimType::NoTarget,
            format!("nothing at '{}'", t.text),
        )),
    }
}

/// The object holding the attribute: the resource, or its extension object.
fn container<'a>(
    attrs: &'a mut Map<String, Value>,
    t: &Target,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    match t.attr.extension {
        None => Some(attrs),
        Some(ext) => {
            if !attrs.contains_key(ext.id) {
                if !create {
                    return None;
                }
                attrs.insert(ext.id.to_owned(), Value::Object(Map::new()));
            }
            attrs.get_mut(ext.id).and_then(Value::as_object_mut)
        }
    }
}

pub(super) fn normalize_for_target(
    t: &Target,
    v: &mut Value,
    dialect: &Dialect,
    rewrites: &mut Rewrites,
) {
    match (&t.filter, t.sub) {
        (_, Some(sub)) => normalize_value(sub, v, dialect, rewrites),
        (None, None) => normalize_value(t.attr.attr, v, dialect, rewrites),
        (Some(_), None) => {
            // One element of a multi-valued attribute.
            let mut single = t.attr.attr.clone();
            single.multi_valued = false;
            normalize_value(&single, v, dialect, rewrites);
        }
    }
}

/// `attr` with no filter and no sub-attribute.
fn whole(
    c: &mut Map<String, Value>,
    name: &str,
    def: &AttributeDef,
    kind: OpKind,
    value: Option<Value>,
    dialect: &Dialect,
) -> Result<(), ScimError> {
    match kind {
        OpKind::Remove => {
            match (value, def.multi_valued && dialect.remove_members_by_value) {
                // Remove just the listed values (the members-style dialect, for any list).
                (Some(Value::Array(gone)), true) => {
                    if let Some(Value::Array(items)) = c.get_mut(name) {
                        // Equal values, or values with the same `value`: both looked up,
                        // not scanned, so removing n of m values costs n + m.
                        let whole = ValueIndex::of(&gone);
                        let by_value: std::collections::HashSet<String> = gone
                            .iter()
                            .filter_map(|g| g.get("value"))
                            .map(Value::to_string)
                            .collect();
                        items.retain(|item| {
                            let same_value = item
                                .get("value")
                                .is_some_and(|v| by_value.contains(&v.to_string()));
                            !(same_value || whole.contains(&gone, item))
                        });
                    }
                }
                _ => {
                    c.remove(name);
                }
            }
            Ok(())
        }
        OpKind::Add | OpKind::Replace => {
            let Some(value) = value else { return Ok(()) };
            if def.multi_valued {
                let Value::Array(new) = value else {
                    return Err(ScimError::invalid_value(format!(
                        "attribute '{name}' is multi-valued and needs a list"
                    )));
                };
                let list = if kind == OpKind::Replace {
                    c.insert(name.to_owned(), Value::Array(Vec::new()));
                    new
                } else {
                    new
                };
                let entry = c
                    .entry(name.to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !entry.is_array() {
                    *entry = Value::Array(Vec::new());
                }
                if let Value::Array(items) = entry {
                    // Linear in the list: after the first primary value clears the others,
                    // only the one primary value since then is cleared again.
                    let mut index = ValueIndex::of(items);
                    let mut primary_at: Option<usize> = None;
                    let mut cleared = false;
                    for v in list {
                        if index.contains(items, &v) {
                            continue;
                        }
                        if v.get("primary") == Some(&Value::Bool(true)) {
                            match primary_at {
                                _ if !cleared => {
                                    clear_primary(items);
                                    index = ValueIndex::of(items);
                                    cleared = true;
                                }
                                Some(i) => index.modify(items, i, |x| {
                                    if let Some(o) = x.as_object_mut() {
                                        o.remove("primary");
                                    }
                                }),
                                None => {}
                            }
                            primary_at = Some(items.len());
                        }
                        index.push_new(items, v);
                    }
                }
            } else if def.ty == AttrType::Complex {
                let Value::Object(new) = value else {
                    return Err(ScimError::invalid_value(format!(
                        "attribute '{name}' is complex and needs an object"
                    )));
                };
                let entry = c
                    .entry(name.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(obj) = entry {
                    for (k, v) in new {
                        let key = def.sub_attribute(&k).map_or(k, |s| s.name.to_owned());
                        if v.is_null() {
                            obj.remove(&key);
                        } else {
                            obj.insert(key, v);
                        }
                    }
                }
            } else {
                c.insert(name.to_owned(), value);
            }
            Ok(())
        }
    }
}

/// `attr.sub` with no filter: the one complex value, or every value of a list.
fn sub_everywhere(
    c: &mut Map<String, Value>,
    name: &str,
    def: &AttributeDef,
    sub: &AttributeDef,
    kind: OpKind,
    value: Option<Value>,
) -> Result<(), ScimError> {
    if kind == OpKind::Remove {
        for element in elements_mut(c, name) {
            element.remove(sub.name);
        }
        return Ok(());
    }
    let Some(value) = value else { return Ok(()) };
    if !c.contains_key(name) {
        let fresh = Value::Object(Map::from_iter([(sub.name.to_owned(), value.clone())]));
        c.insert(
            name.to_owned(),
            if def.multi_valued {
                Value::Array(vec![fresh])
            } else {
                fresh
            },
        );
        return Ok(());
    }
    for element in elements_mut(c, name) {
        element.insert(sub.name.to_owned(), value.clone());
    }
    Ok(())
}

/// `attr[filter]` or `attr[filter].sub`.
#[allow(clippy::too_many_arguments)]
fn filtered(
    c: &mut Map<String, Value>,
    t: &Target,
    filter: &Filter,
    sub: Option<&AttributeDef>,
    kind: OpKind,
    value: Option<Value>,
    dialect: &Dialect,
    rewrites: &mut Rewrites,
) -> Result<(), ScimError> {
    let name = t.attr.attr.name;
    let hits: Vec<usize> = element_values(c, name)
        .iter()
        .enumerate()
        .filter(|(_, e)| matches_element(filter, e))
        .map(|(i, _)| i)
        .collect();
    if hits.is_empty() {
        if kind == OpKind::Remove || !dialect.filter_upsert {
            return Err(ScimError::bad_request(
                ScimType::NoTarget,
                format!("no value matches '{}'", t.text),
            ));
        }
        let Some(seed) = eq_pairs(filter) else {
            return Err(ScimError::bad_request(
                ScimType::NoTarget,
                format!("no value matches '{}'", t.text),
            ));
        };
        rewrites.push("filter_upsert");
        let element = Value::Object(seed);
        if t.attr.attr.multi_valued {
            let entry = c
                .entry(name.to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = entry {
                items.push(element);
            }
        } else {
            c.insert(name.to_owned(), element);
        }
        let last = element_values(c, name).len() - 1;
        return change_elements(c, name, &[last], sub, kind, value);
    }
    if kind == OpKind::Remove && sub.is_none() {
        match c.get_mut(name) {
            Some(Value::Array(items)) => {
                let hit = mask(&hits, items.len());
                let mut i = 0;
                items.retain(|_| {
                    let keep = !hit[i];
                    i += 1;
                    keep
                });
            }
            _ => {
                c.remove(name);
            }
        }
        return Ok(());
    }
    change_elements(c, name, &hits, sub, kind, value)
}

fn change_elements(
    c: &mut Map<String, Value>,
    name: &str,
    hits: &[usize],
    sub: Option<&AttributeDef>,
    kind: OpKind,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let sets_primary = match (sub, &value) {
        (Some(s), Some(Value::Bool(true))) => s.name == "primary",
        (None, Some(v)) => v.get("primary") == Some(&Value::Bool(true)),
        _ => false,
    };
    let len = element_values(c, name).len();
    let hit = mask(hits, len);
    if sets_primary && let Some(Value::Array(items)) = c.get_mut(name) {
        for (i, item) in items.iter_mut().enumerate() {
            if !hit.get(i).copied().unwrap_or(false)
                && let Some(obj) = item.as_object_mut()
            {
                obj.remove("primary");
            }
        }
    }
    for (i, element) in elements_mut(c, name).into_iter().enumerate() {
        if !hit.get(i).copied().unwrap_or(false) {
            continue;
        }
        match (kind, sub, &value) {
            (OpKind::Remove, Some(s), _) => {
                element.remove(s.name);
            }
            (OpKind::Remove, None, _) => {}
            (_, Some(s), Some(v)) => {
                element.insert(s.name.to_owned(), v.clone());
            }
            (OpKind::Replace, None, Some(Value::Object(v))) => *element = v.clone(),
            (OpKind::Add, None, Some(Value::Object(v))) => {
                for (k, x) in v {
                    element.insert(k.clone(), x.clone());
                }
            }
            (_, None, Some(_)) => {
                return Err(ScimError::invalid_value(format!(
                    "a value of '{name}' must be an object"
                )));
            }
            (_, _, None) => {}
        }
    }
    Ok(())
}

/// `hits` (positions) as one flag per position, so that testing a position costs O(1).
fn mask(hits: &[usize], len: usize) -> Vec<bool> {
    let mut hit = vec![false; len];
    for &i in hits {
        if let Some(h) = hit.get_mut(i) {
            *h = true;
        }
    }
    hit
}

/// The `eq` conditions of a filter made only of `and`ed `eq`s: the element to create.
fn eq_pairs(f: &Filter) -> Option<Map<String, Value>> {
    match f {
        Filter::And(a, b) => {
            let mut m = eq_pairs(a)?;
            m.extend(eq_pairs(b)?);
            Some(m)
        }
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } => {
            let v = match value {
                Comparand::Text { sent, .. } => Value::String(sent.clone()),
                Comparand::Bool(b) => Value::Bool(*b),
                Comparand::Number(n) => serde_json::Number::from_f64(*n).map(Value::Number)?,
                Comparand::Null | Comparand::Instant(_) => return None,
            };
            Some(Map::from_iter([(path.sub?.name.to_owned(), v)]))
        }
        _ => None,
    }
}

fn element_values<'a>(c: &'a Map<String, Value>, name: &str) -> Vec<&'a Value> {
    match c.get(name) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    }
}

fn elements_mut<'a>(c: &'a mut Map<String, Value>, name: &str) -> Vec<&'a mut Map<String, Value>> {
    match c.get_mut(name) {
        Some(Value::Array(items)) => items.iter_mut().filter_map(Value::as_object_mut).collect(),
        Some(Value::Object(o)) => vec![o],
        _ => Vec::new(),
    }
}

fn clear_primary(items: &mut [Value]) {
    for item in items {
        if let Some(obj) = item.as_object_mut() {
            obj.remove("primary");
        }
    }
}

/// Unassigned after the operation: empty lists and objects go, as do empty elements.
fn tidy(c: &mut Map<String, Value>, name: &str) {
    if let Some(Value::Array(items)) = c.get_mut(name) {
        items.retain(|i| !matches!(i, Value::Object(o) if o.is_empty()));
    }
    let empty = match c.get(name) {
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Null) => true,
        _ => false,
    };
    if empty {
        c.remove(name);
    }
}

/// `members` operations become membership changes; the list itself is never loaded.
fn member_step(
    changes: &mut MemberComposer,
    kind: OpKind,
    t: &Target,
    value: Option<Value>,
    dialect: &Dialect,
    rewrites: &mut Rewrites,
) -> Result<(), ScimError> {
    if t.sub.is_some() {
        return Err(ScimError::bad_request(
            ScimType::InvalidPath,
            format!(
                "'{}': member sub-attributes cannot be changed; add or remove the member",
                t.text
            ),
        ));
    }
    match (kind, &t.filter) {
        (OpKind::Add, None) => changes.add(member_list(value, dialect, rewrites)?),
        (OpKind::Replace, None) => changes.replace(member_list(value, dialect, rewrites)?),
        (OpKind::Remove, None) => match value {
            Some(v) if dialect.remove_members_by_value && !v.is_null() => {
                rewrites.push("remove_members_by_value");
                let gone = member_list(Some(v), dialect, rewrites)?;
                changes.remove(gone.into_iter().map(|m| m.value).collect());
            }
            _ => changes.replace(Vec::new()),
        },
        (OpKind::Remove, Some(f)) => {
            let ids = member_ids(f).ok_or_else(|| {
                ScimError::invalid_filter(format!(
                    "'{}': a members filter in PATCH may only compare 'value' with 'eq' (joined by 'or')",
                    t.text
                ))
            })?;
            changes.remove(ids);
        }
        (_, Some(_)) => {
            return Err(ScimError::bad_request(
                ScimType::InvalidPath,
                format!(
                    "'{}': add or replace members with path 'members' and a list",
                    t.text
                ),
            ));
        }
    }
    Ok(())
}

fn member_list(
    v: Option<Value>,
    dialect: &Dialect,
    rewrites: &mut Rewrites,
) -> Result<Vec<crate::validate::MemberInput>, ScimError> {
    let mut v = v.unwrap_or(Value::Array(Vec::new()));
    if v.is_null() {
        v = Value::Array(Vec::new());
    }
    if dialect.wrap_single_objects && v.is_object() {
        v = Value::Array(vec![v]);
        rewrites.push("wrap_single_objects");
    }
    if !v.is_array() {
        return Err(ScimError::invalid_value(
            "'members' needs a list of {\"value\": id}",
        ));
    }
    members(&v)
}

/// The ids a members filter names: `value eq "a" or value eq "b"`.
fn member_ids(f: &Filter) -> Option<Vec<String>> {
    match f {
        Filter::Or(a, b) => {
            let mut ids = member_ids(a)?;
            ids.extend(member_ids(b)?);
            Some(ids)
        }
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Comparand::Text { key: id, .. },
        } if path.sub.is_some_and(|s| s.name == "value") => Some(vec![id.clone()]),
        _ => None,
    }
}
