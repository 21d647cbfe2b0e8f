//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5) applied to a rendered resource,
//! honouring each attribute's `returned` characteristic.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use crate::error::{ScimError, excerpt};
use crate::path::{PathTarget, resolve};
use crate::registry::Registry;
use crate::resource_type::ResourceType;
use crate::schema::{AttributeDef, Returned};
use crate::schemas::COMMON;

/// Most paths one `attributes` or `excludedAttributes` list may name. Every attribute and
/// sub-attribute of the User schemas together is fewer than this.
pub const MAX_PROJECTION_PATHS: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct Projection {
    mode: Mode,
    returning: Arc<Returning>,
}

#[derive(Debug, Clone, Default)]
enum Mode {
    #[default]
    Default,
    Include(Vec<Vec<&'static str>>),
    Exclude(Vec<Vec<&'static str>>),
}

/// What a resource type's schemas say of returning each attribute (RFC 7643 §7
/// `returned`). It changes only when the operator's schemas are reloaded, so it is worked
/// out once per schema set and shared by every request's projection.
#[derive(Debug, Default)]
struct Returning {
    /// Top-level keys kept whatever was asked: `schemas` and `returned: always` attributes.
    always: Vec<&'static str>,
    /// Paths by their `returned` characteristic, `never` and `request`.
    never: Vec<Vec<&'static str>>,
    on_request: Vec<Vec<&'static str>>,
    /// Extension attributes with `returned: always`: the extension's URN and the name.
    extension_always: Vec<(&'static str, &'static str)>,
    /// Every attribute of each extension with such an attribute, for an exclusion of the
    /// whole extension: the URN, the name, and whether it is returned always.
    extension_attributes: Vec<(&'static str, &'static str, bool)>,
}

impl Returning {
    fn of(rt: ResourceType, registry: &Registry) -> Returning {
        let mut r = Returning {
            always: vec!["schemas"],
            ..Returning::default()
        };
        let core = rt
            .core_schema()
            .attributes
            .iter()
            .chain(COMMON.iter())
            .map(|d| (None, d));
        let ext = registry
            .extensions(rt)
            .iter()
            .flat_map(|e| e.attributes.iter().map(move |d| (Some(e.id), d)));
        for (urn, def) in core.chain(ext) {
            let base: Vec<&'static str> = urn.into_iter().chain([def.name]).collect();
            if urn.is_none() && def.returned == Returned::Always {
                r.always.push(def.name);
            }
            r.classify(base.clone(), def);
            for sub in &def.sub_attributes {
                let mut path = base.clone();
                path.push(sub.name);
                r.classify(path, sub);
            }
        }
        for e in registry.extensions(rt) {
            let always = |d: &AttributeDef| d.returned == Returned::Always;
            if e.attributes.iter().any(always) {
                r.extension_always.extend(
                    e.attributes
                        .iter()
                        .filter(|d| always(d))
                        .map(|d| (e.id, d.name)),
                );
                r.extension_attributes
                    .extend(e.attributes.iter().map(|d| (e.id, d.name, always(d))));
            }
        }
        r
    }

    fn classify(&mut self, path: Vec<&'static str>, def: &'static AttributeDef) {
        match def.returned {
            Returned::Never => self.never.push(path),
            Returned::Request => self.on_request.push(path),
            Returned::Always | Returned::Default => {}
        }
    }
}

/// The [`Returning`] of `rt` under the schema set in force, kept per set (by its epoch).
fn returning(rt: ResourceType) -> Arc<Returning> {
    type Kept = Option<(u64, [Arc<Returning>; 2])>;
    static KEPT: Mutex<Kept> = Mutex::new(None);
    let registry = crate::registry::current();
    let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    let slot = match &*kept {
        Some((epoch, both)) if *epoch == registry.epoch() => both,
        _ => {
            let both = [ResourceType::User, ResourceType::Group]
                .map(|rt| Arc::new(Returning::of(rt, registry)));
            &kept.insert((registry.epoch(), both)).1
        }
    };
    Arc::clone(&slot[usize::from(rt == ResourceType::Group)])
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
        let returning = returning(rt);
        let mode = with_extensions_always_returned(&returning, mode);
        Ok(Projection { mode, returning })
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

    /// What [`Projection::apply`] does to the top-level attribute `key`, when its name
    /// alone decides it: a renderer then copies the attribute's stored text, or leaves it
    /// out, without parsing it. `Projected` when paths below it are named: its value must be
    /// parsed and the projection applied to a map holding it alone (each top-level key
    /// fares on its own in `apply`).
    pub fn fate(&self, key: &str) -> Fate {
        let r = &*self.returning;
        let below = |paths: &[Vec<&'static str>]| paths.iter().any(|p| p.len() > 1 && p[0] == key);
        let named = |paths: &[Vec<&'static str>]| paths.iter().any(|p| p.len() == 1 && p[0] == key);
        let selected: &[Vec<&'static str>] = match &self.mode {
            Mode::Default => &[],
            Mode::Include(sel) | Mode::Exclude(sel) => sel,
        };
        if below(&r.never) || below(&r.on_request) || below(selected) {
            return Fate::Projected;
        }
        if let Mode::Default = self.mode {
            // Most answers: no parameter, so only `returned` decides (as in `apply`).
            return if named(&r.never) || named(&r.on_request) {
                Fate::Dropped
            } else {
                Fate::Kept
            };
        }
        // Nothing is named below `key`, so `apply` decides by the name alone, whatever the
        // value: ask it about the name with no value.
        let mut alone = Map::with_capacity(1);
        alone.insert(key.to_owned(), Value::Null);
        self.apply(&mut alone);
        if alone.is_empty() {
            Fate::Dropped
        } else {
            Fate::Kept
        }
    }

    pub fn apply(&self, resource: &mut Map<String, Value>) {
        let r = &*self.returning;
        // `returned: never` goes whatever was asked; `request` unless it was named.
        exclude(resource, &r.never, &[]);
        match &self.mode {
            Mode::Default => exclude(resource, &r.on_request, &[]),
            Mode::Include(sel) => {
                let unrequested: Vec<Vec<&'static str>> = r
                    .on_request
                    .iter()
                    .filter(|p| !sel.iter().any(|s| p.starts_with(s)))
                    .cloned()
                    .collect();
                exclude(resource, &unrequested, &[]);
                include(resource, sel, &r.always);
            }
            Mode::Exclude(sel) => {
                exclude(resource, &r.on_request, &[]);
                exclude(resource, sel, &r.always);
            }
        }
    }
}

/// What a projection does to one top-level attribute ([`Projection::fate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// In the answer, whole.
    Kept,
    /// Not in the answer.
    Dropped,
    /// Paths below it are named: what is left of it depends on its value.
    Projected,
}

/// Extension attributes with `returned: always` (an operator's) are in every answer: named
/// by `attributes` whatever it names, and never taken out by `excludedAttributes`, even
/// when the whole extension is excluded (its other attributes are, one by one).
fn with_extensions_always_returned(returning: &Returning, mode: Mode) -> Mode {
    let always = &returning.extension_always;
    if always.is_empty() {
        return mode;
    }
    match mode {
        Mode::Default => Mode::Default,
        Mode::Include(mut sel) => {
            for (urn, name) in always {
                let path = vec![*urn, *name];
                if !sel.contains(&path) {
                    sel.push(path);
                }
            }
            Mode::Include(sel)
        }
        Mode::Exclude(sel) => {
            let mut out = Vec::with_capacity(sel.len());
            for s in sel {
                let has_always = always.iter().any(|(urn, _)| *urn == s[0]);
                match (has_always, s.len()) {
                    // The whole extension: each of its attributes but those always returned.
                    (true, 1) => out.extend(
                        returning
                            .extension_attributes
                            .iter()
                            .filter(|(urn, _, always)| *urn == s[0] && !always)
                            .map(|(urn, name, _)| vec![*urn, *name]),
                    ),
                    (true, _) if always.iter().any(|(u, n)| *u == s[0] && *n == s[1]) => {}
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

    /// `fate` agrees with `apply` for every top-level key of the sample, under each way of
    /// asking: a key kept whole is in the applied map unchanged, a dropped one is not there,
    /// and applying to the key alone gives what applying to the whole gives.
    #[test]
    fn fate_agrees_with_apply() {
        let mut sample = sample();
        sample.insert("password".into(), json!("secret"));
        sample.insert("groups".into(), json!([{"value": "g", "display": "G"}]));
        let asked = [
            (None, None),
            (Some("userName"), None),
            (Some("name.givenName,emails.value"), None),
            (Some(ENTERPRISE_USER_URN), None),
            (Some(&*format!("{ENTERPRISE_USER_URN}:department")), None),
            (Some("password,meta.created"), None),
            (None, Some("emails")),
            (None, Some("name.familyName,id,meta,schemas")),
            (None, Some(ENTERPRISE_USER_URN)),
            (None, Some(&*format!("{ENTERPRISE_USER_URN}:division"))),
            (None, Some("groups.display")),
            (Some("groups"), None),
        ];
        for (a, e) in asked {
            let p = Projection::parse(ResourceType::User, a, e).expect("parse");
            let mut whole = sample.clone();
            p.apply(&mut whole);
            for (key, value) in &sample {
                let mut alone = Map::new();
                alone.insert(key.clone(), value.clone());
                p.apply(&mut alone);
                assert_eq!(alone.get(key), whole.get(key), "{key} under {a:?} {e:?}");
                match p.fate(key) {
                    Fate::Kept => assert_eq!(whole.get(key), Some(value), "{key} {a:?} {e:?}"),
                    Fate::Dropped => assert_eq!(whole.get(key), None, "{key} {a:?} {e:?}"),
                    Fate::Projected => {}
                }
            }
        }
        let default = Projection::parse(ResourceType::User, None, None).expect("parse");
        let fates: Vec<Fate> = ["userName", "password", "name"]
            .iter()
            .map(|k| default.fate(k))
            .collect();
        assert_eq!(fates, [Fate::Kept, Fate::Dropped, Fate::Kept]);
        let sub = Projection::parse(ResourceType::User, Some("name.givenName"), None).expect("p");
        assert_eq!(sub.fate("name"), Fate::Projected);
        assert_eq!(sub.fate("userName"), Fate::Dropped);
        assert_eq!(sub.fate("schemas"), Fate::Kept);
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
