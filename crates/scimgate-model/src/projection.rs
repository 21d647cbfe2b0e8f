//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5) applied to a rendered resource,
//! honouring each attribute's `returned` characteristic.

use serde_json::{Map, Value};

use crate::error::{ScimError, excerpt};
use crate::path::{PathTarget, resolve};
use crate::resource_type::ResourceType;
use crate::schema::{AttributeDef, Returned, Schema};
use crate::schemas::COMMON;

/// Most paths one `attributes` or `excludedAttributes` list may name. Every attribute and
/// sub-attribute of the User schemas together is fewer than this.
pub const MAX_PROJECTION_PATHS: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct Projection {
    mode: Mode,
    /// Top-level keys kept whatever was asked: `schemas` and `returned: always` attributes.
    always: Vec<&'static str>,
    /// Paths by their `returned` characteristic, `never` and `request`.
    never: Vec<Vec<&'static str>>,
    on_request: Vec<Vec<&'static str>>,
}

#[derive(Debug, Clone, Default)]
enum Mode {
    #[default]
    Default,
    Include(Vec<Vec<&'static str>>),
    Exclude(Vec<Vec<&'static str>>),
}

impl Projection {
    /// Builds the projection from the two query parameters; `attributes` wins when both are
    /// given. Names that no schema defines are ignored, as they select nothing.
    pub fn parse(
        rt: ResourceType,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Self, ScimError> {
        let mode = match (attributes, excluded) {
            (Some(a), _) if !a.trim().is_empty() => Mode::Include(selections(rt, "attributes", a)?),
            (_, Some(e)) if !e.trim().is_empty() => {
                Mode::Exclude(selections(rt, "excludedAttributes", e)?)
            }
            _ => Mode::Default,
        };
        let mode = with_extensions_always_returned(rt, mode);
        let mut p = Projection {
            mode,
            always: vec!["schemas"],
            never: Vec::new(),
            on_request: Vec::new(),
        };
        let core = rt
            .core_schema()
            .attributes
            .iter()
            .chain(COMMON.iter())
            .map(|d| (None, d));
        let ext = rt
            .extensions()
            .iter()
            .flat_map(|e| e.attributes.iter().map(move |d| (Some(e.id), d)));
        for (urn, def) in core.chain(ext) {
            let base: Vec<&'static str> = urn.into_iter().chain([def.name]).collect();
            if urn.is_none() && def.returned == Returned::Always {
                p.always.push(def.name);
            }
            p.classify(base.clone(), def);
            for sub in &def.sub_attributes {
                let mut path = base.clone();
                path.push(sub.name);
                p.classify(path, sub);
            }
        }
        Ok(p)
    }

    fn classify(&mut self, path: Vec<&'static str>, def: &'static AttributeDef) {
        match def.returned {
            Returned::Never => self.never.push(path),
            Returned::Request => self.on_request.push(path),
            Returned::Always | Returned::Default => {}
        }
    }

    /// Whether the top-level attribute `name` will appear at all, so that storage can skip
    /// reading it (a group's members).
    pub fn wants(&self, name: &str) -> bool {
        match &self.mode {
            Mode::Default => true,
            Mode::Include(sel) => sel.iter().any(|s| s[0] == name),
            Mode::Exclude(sel) => !sel.iter().any(|s| s.len() == 1 && s[0] == name),
        }
    }

    /// Whether `attributes` named the top-level attribute `name` (or one of its
    /// sub-attributes): lists carry a group's members only when asked so.
    pub fn names(&self, name: &str) -> bool {
        match &self.mode {
            Mode::Include(sel) => sel.iter().any(|s| s[0] == name),
            Mode::Default | Mode::Exclude(_) => false,
        }
    }

    pub fn apply(&self, resource: &mut Map<String, Value>) {
        // `returned: never` goes whatever was asked; `request` unless it was named.
        exclude(resource, &self.never, &[]);
        let named = |path: &Vec<&str>| match &self.mode {
            Mode::Include(sel) => sel.iter().any(|s| path.starts_with(s)),
            _ => false,
        };
        let unrequested: Vec<Vec<&'static str>> = self
            .on_request
            .iter()
            .filter(|p| !named(p))
            .cloned()
            .collect();
        exclude(resource, &unrequested, &[]);
        match &self.mode {
            Mode::Default => {}
            Mode::Include(sel) => include(resource, sel, &self.always),
            Mode::Exclude(sel) => exclude(resource, sel, &self.always),
        }
    }
}

/// Extension attributes with `returned: always` (an operator's) are in every answer: named
/// by `attributes` whatever it names, and never taken out by `excludedAttributes`, even
/// when the whole extension is excluded (its other attributes are, one by one).
fn with_extensions_always_returned(rt: ResourceType, mode: Mode) -> Mode {
    let always: Vec<(&'static Schema, &'static str)> = rt
        .extensions()
        .iter()
        .flat_map(|e| {
            e.attributes
                .iter()
                .filter(|d| d.returned == Returned::Always)
                .map(move |d| (*e, d.name))
        })
        .collect();
    if always.is_empty() {
        return mode;
    }
    match mode {
        Mode::Default => Mode::Default,
        Mode::Include(mut sel) => {
            for (ext, name) in &always {
                let path = vec![ext.id, *name];
                if !sel.contains(&path) {
                    sel.push(path);
                }
            }
            Mode::Include(sel)
        }
        Mode::Exclude(sel) => {
            let mut out = Vec::with_capacity(sel.len());
            for s in sel {
                let ext = always.iter().find(|(e, _)| e.id == s[0]).map(|(e, _)| *e);
                match (ext, s.len()) {
                    // The whole extension: each of its attributes but those always returned.
                    (Some(ext), 1) => out.extend(
                        ext.attributes
                            .iter()
                            .filter(|d| d.returned != Returned::Always)
                            .map(|d| vec![ext.id, d.name]),
                    ),
                    (Some(_), _) if always.iter().any(|(e, n)| e.id == s[0] && *n == s[1]) => {}
                    _ => out.push(s),
                }
            }
            Mode::Exclude(out)
        }
    }
}

/// The distinct schema paths a list names: counted before any is resolved, and deduplicated
/// so that applying the projection costs what the schema's size allows, not the list's.
fn selections(
    rt: ResourceType,
    parameter: &str,
    list: &str,
) -> Result<Vec<Vec<&'static str>>, ScimError> {
    let named = list.split(',').count();
    if named > MAX_PROJECTION_PATHS {
        return Err(ScimError::invalid_value(format!(
            "'{parameter}' names {named} paths; the limit is {MAX_PROJECTION_PATHS} (it starts '{}')",
            excerpt(list, 64)
        )));
    }
    let mut paths: Vec<Vec<&'static str>> = list
        .split(',')
        .filter_map(|p| resolve(rt, p.trim()).ok())
        .map(|t| match t {
            PathTarget::Extension(ext) => vec![ext.id],
            PathTarget::Attribute(p) => {
                let mut v = Vec::with_capacity(3);
                if let Some(ext) = p.extension {
                    v.push(ext.id);
                }
                v.push(p.attr.name);
                if let Some(sub) = p.sub {
                    v.push(sub.name);
                }
                v
            }
        })
        .collect();
    paths.sort_unstable();
    paths.dedup();
    Ok(paths)
}

fn tails(sel: &[Vec<&'static str>], key: &str) -> Vec<Vec<&'static str>> {
    sel.iter()
        .filter(|s| s[0] == key)
        .map(|s| s[1..].to_vec())
        .collect()
}

/// Keeps only the selected keys (and `keep`, at this level).
fn include(obj: &mut Map<String, Value>, sel: &[Vec<&'static str>], keep: &[&str]) {
    obj.retain(|key, value| {
        if keep.contains(&key.as_str()) {
            return true;
        }
        let t = tails(sel, key);
        if t.is_empty() {
            return false;
        }
        if t.iter().any(Vec::is_empty) {
            return true;
        }
        for_each_object(value, |o| include(o, &t, &[]));
        true
    });
}

/// Drops the selected keys (never those in `keep`, at this level).
fn exclude(obj: &mut Map<String, Value>, sel: &[Vec<&'static str>], keep: &[&str]) {
    obj.retain(|key, value| {
        if keep.contains(&key.as_str()) {
            return true;
        }
        let t = tails(sel, key);
        if t.iter().any(Vec::is_empty) {
            return false;
        }
        if !t.is_empty() {
            for_each_object(value, |o| exclude(o, &t, &[]));
        }
        true
    });
}

/// Applies `f` to an object, or to each object of a list (multi-valued complex attributes).
fn for_each_object(value: &mut Value, mut f: impl FnMut(&mut Map<String, Value>)) {
    match value {
        Value::Object(o) => f(o),
        Value::Array(items) => items
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .for_each(f),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemas::ENTERPRISE_USER_URN;
    use serde_json::json;

    fn sample() -> Map<String, Value> {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "1",
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "a@x", "type": "work"}, {"value": "b@x", "type": "home"}],
            ENTERPRISE_USER_URN: {"department": "R&D", "division": "Labs"},
            "meta": {"resourceType": "User"},
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    fn project(a: Option<&str>, e: Option<&str>) -> Value {
        let p = Projection::parse(ResourceType::User, a, e).expect("parse");
        let mut r = sample();
        p.apply(&mut r);
        Value::Object(r)
    }

    #[test]
    fn attributes_keeps_always_returned_and_named() {
        assert_eq!(
            project(Some("userName,name.givenName,emails.value"), None),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "1",
                "userName": "bjensen",
                "name": {"givenName": "Barbara"},
                "emails": [{"value": "a@x"}, {"value": "b@x"}],
            })
        );
        let r = project(Some(&format!("{ENTERPRISE_USER_URN}:department")), None);
        assert_eq!(r[ENTERPRISE_USER_URN], json!({"department": "R&D"}));
        let r = project(Some(ENTERPRISE_USER_URN), None);
        assert_eq!(
            r[ENTERPRISE_USER_URN],
            json!({"department": "R&D", "division": "Labs"})
        );
    }

    #[test]
    fn excluded_attributes_never_drops_id() {
        let r = project(None, Some("emails,name.familyName,id,meta"));
        assert_eq!(r["id"], "1");
        assert!(r.get("emails").is_none() && r.get("meta").is_none());
        assert_eq!(r["name"], json!({"givenName": "Barbara"}));
    }

    #[test]
    fn returned_never_is_dropped_whatever_is_asked() {
        let mut r = sample();
        r.insert("password".into(), json!("secret"));
        for (a, e) in [
            (None, None),
            (Some("password,userName"), None),
            (None, Some("userName")),
        ] {
            let mut copy = r.clone();
            Projection::parse(ResourceType::User, a, e)
                .expect("parse")
                .apply(&mut copy);
            assert!(copy.get("password").is_none(), "{a:?} {e:?}");
        }
    }

    #[test]
    fn wants_tells_storage_what_to_skip() {
        let g = ResourceType::Group;
        assert!(
            !Projection::parse(g, None, Some("members"))
                .expect("p")
                .wants("members")
        );
        assert!(
            Projection::parse(g, None, Some("members.display"))
                .expect("p")
                .wants("members")
        );
        assert!(
            !Projection::parse(g, Some("displayName"), None)
                .expect("p")
                .wants("members")
        );
        assert!(
            Projection::parse(g, None, None)
                .expect("p")
                .wants("members")
        );
    }
}
