//! The extension schemas in force: the built-in Enterprise User, and the operator's
//! (`schema_file`), each extending one resource type, optionally required, for every
//! tenant or for some. One set serves the whole process, like the plugin set: schemas are
//! referred to as `&'static` by every resolved path, so a set is installed once and a set
//! replaced on reload stays allocated (a few kilobytes per reload). A URN names one
//! definition on the whole server; which tenants may use it is the set's to say.

use std::sync::RwLock;

use crate::ResourceType;
use crate::schema::Schema;
use crate::schemas::ENTERPRISE_USER;

/// An operator's extension schema and where it applies.
#[derive(Debug, Clone)]
pub struct Extension {
    pub schema: &'static Schema,
    pub resource_type: ResourceType,
    /// Every resource of the type (in the tenants it applies to) must carry it.
    pub required: bool,
    /// The tenants it applies to; `None`: all.
    pub tenants: Option<Vec<String>>,
    /// Where it was read from, for messages.
    pub file: String,
}

impl Extension {
    pub fn applies_to(&self, tenant: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|t| t.iter().any(|x| x == tenant))
    }
}

#[derive(Debug)]
pub struct Registry {
    /// Which set this is: every set made gets a higher number than those before it, so
    /// that a write checked against an older set can be told apart (and refused by
    /// storage once a newer set is registered).
    epoch: u64,
    user: Vec<&'static Schema>,
    group: Vec<&'static Schema>,
    operator: Vec<Extension>,
}

impl Registry {
    /// The built-in set: Enterprise User on User.
    pub fn builtin() -> Registry {
        Registry {
            epoch: 0,
            user: vec![&*ENTERPRISE_USER],
            group: Vec::new(),
            operator: Vec::new(),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The built-in set and `operator`'s extensions; a URN given twice is refused, naming
    /// both files.
    pub fn with(operator: Vec<Extension>) -> Result<Registry, String> {
        static EPOCHS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut r = Registry::builtin();
        r.epoch = EPOCHS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let builtin: Vec<&'static str> = crate::schemas::all().iter().map(|s| s.id).collect();
        let named = |urn: &str| -> String {
            operator.iter().find(|o| o.schema.id == urn).map_or_else(
                || "a built-in schema".to_owned(),
                |o| format!("'{}'", o.file),
            )
        };
        // A URN that continues another (`urn:x:A` and `urn:x:A:B`) makes `urn:x:A:B:c`
        // ambiguous between an attribute `B:c` of the one and `c` of the other.
        let all: Vec<&'static str> = builtin
            .iter()
            .copied()
            .chain(operator.iter().map(|o| o.schema.id))
            .collect();
        for ext in &operator {
            let id = ext.schema.id;
            if let Some(other) = all.iter().find(|o| {
                !o.eq_ignore_ascii_case(id) && (starts_with_urn(id, o) || starts_with_urn(o, id))
            }) {
                return Err(format!(
                    "schema file '{}': 'id' '{id}' and '{other}' (from {}) continue one another, which makes attribute paths ambiguous",
                    ext.file,
                    named(other)
                ));
            }
        }
        for (i, ext) in operator.iter().enumerate() {
            if let Some(first) = operator[..i]
                .iter()
                .find(|o| o.schema.id.eq_ignore_ascii_case(ext.schema.id))
            {
                return Err(format!(
                    "schema file '{}': 'id' '{}' is already defined by '{}'",
                    ext.file, ext.schema.id, first.file
                ));
            }
            match ext.resource_type {
                ResourceType::User => r.user.push(ext.schema),
                ResourceType::Group => r.group.push(ext.schema),
            }
        }
        r.operator = operator;
        Ok(r)
    }

    /// The extensions of `rt`, every tenant's.
    pub fn extensions(&self, rt: ResourceType) -> &[&'static Schema] {
        match rt {
            ResourceType::User => &self.user,
            ResourceType::Group => &self.group,
        }
    }

    /// The operator's extensions.
    pub fn operator(&self) -> &[Extension] {
        &self.operator
    }

    /// The operator's extension with this URN.
    pub fn operator_extension(&self, urn: &str) -> Option<&Extension> {
        self.operator
            .iter()
            .find(|e| e.schema.id.eq_ignore_ascii_case(urn))
    }

    /// Whether `tenant` may use the extension `urn` (the built-in ones: always).
    pub fn available(&self, urn: &str, tenant: &str) -> bool {
        self.operator_extension(urn)
            .is_none_or(|e| e.applies_to(tenant))
    }

    /// The URNs of `rt`'s extensions that `tenant` may not use (to it, schemas no one
    /// declared).
    pub fn hidden_from(&self, rt: ResourceType, tenant: &str) -> Vec<&'static str> {
        self.operator
            .iter()
            .filter(|e| e.resource_type == rt && !e.applies_to(tenant))
            .map(|e| e.schema.id)
            .collect()
    }

    /// Whether `path`, as a client wrote it (`urn:…:attr`, in any case), is in an extension
    /// of `rt` that `tenant` may not use.
    pub fn hides(&self, rt: ResourceType, tenant: &str, path: &str) -> bool {
        let path = path.trim();
        self.hidden_from(rt, tenant)
            .iter()
            .any(|urn| path.eq_ignore_ascii_case(urn) || starts_with_urn(path, urn))
    }

    /// The extensions of `rt` that `tenant` may use, each with whether it is required.
    pub fn for_tenant(&self, rt: ResourceType, tenant: &str) -> Vec<(&'static Schema, bool)> {
        self.extensions(rt)
            .iter()
            .filter(|s| self.available(s.id, tenant))
            .map(|s| {
                let required = self.operator_extension(s.id).is_some_and(|e| e.required);
                (*s, required)
            })
            .collect()
    }
}

/// Whether `urn` is `prefix` followed by `:` and more (compared case-insensitively).
fn starts_with_urn(urn: &str, prefix: &str) -> bool {
    urn.len() > prefix.len() + 1
        && urn.is_char_boundary(prefix.len())
        && urn[..prefix.len()].eq_ignore_ascii_case(prefix)
        && urn.as_bytes()[prefix.len()] == b':'
}

static CURRENT: RwLock<Option<&'static Registry>> = RwLock::new(None);

/// The set in force (the built-in one until another is installed).
pub fn current() -> &'static Registry {
    if let Some(r) = *CURRENT
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return r;
    }
    let mut slot = CURRENT
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    slot.get_or_insert_with(|| Box::leak(Box::new(Registry::builtin())))
}

/// Gives `registry` the program's lifetime, ready to be put in force (`install_static`).
pub fn leak(registry: Registry) -> &'static Registry {
    Box::leak(Box::new(registry))
}

/// Puts `registry` in force, at once for every request that resolves a path after this.
pub fn install_static(registry: &'static Registry) {
    *CURRENT
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(registry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(urn: &str, rt: ResourceType, tenants: Option<&[&str]>, required: bool) -> Extension {
        let text = serde_json::json!({"id": urn, "attributes": [{"name": "a", "type": "string"}]});
        Extension {
            schema: crate::schema_file::parse("t.json", &text.to_string()).expect("schema"),
            resource_type: rt,
            required,
            tenants: tenants.map(|t| t.iter().map(|s| s.to_string()).collect()),
            file: format!("{urn}.json"),
        }
    }

    #[test]
    fn extensions_apply_to_their_type_and_tenants() {
        let r = Registry::with(vec![
            ext("urn:x:Everyone", ResourceType::User, None, true),
            ext(
                "urn:x:AcmeGroup",
                ResourceType::Group,
                Some(&["acme"]),
                false,
            ),
        ])
        .expect("registry");
        assert_eq!(
            r.extensions(ResourceType::User).len(),
            2,
            "enterprise and Everyone"
        );
        assert_eq!(r.extensions(ResourceType::Group).len(), 1);
        assert!(r.available("urn:x:acmegroup", "acme"));
        assert!(!r.available("urn:x:AcmeGroup", "other"));
        assert!(r.available(crate::schemas::ENTERPRISE_USER_URN, "other"));
        let user = r.for_tenant(ResourceType::User, "other");
        assert_eq!(user.iter().filter(|(_, req)| *req).count(), 1);
        assert!(r.for_tenant(ResourceType::Group, "other").is_empty());
        // Paths into it, as clients write them, are hidden from the others only.
        assert!(r.hides(ResourceType::Group, "other", "URN:X:ACMEGROUP:a"));
        assert!(r.hides(ResourceType::Group, "other", " urn:x:AcmeGroup "));
        assert!(!r.hides(ResourceType::Group, "acme", "urn:x:AcmeGroup:a"));
        assert!(!r.hides(ResourceType::Group, "other", "urn:x:AcmeGroupX:a"));
        assert!(!r.hides(ResourceType::User, "other", "urn:x:AcmeGroup:a"));
    }

    #[test]
    fn urns_that_continue_one_another_are_refused() {
        let e = Registry::with(vec![
            ext("urn:x:A", ResourceType::User, None, false),
            ext("urn:x:A:B", ResourceType::Group, None, false),
        ])
        .expect_err("prefix");
        assert!(e.contains("continue one another"), "{e}");
        let e = Registry::with(vec![ext(
            "urn:ietf:params:scim:schemas:core:2.0:User:name",
            ResourceType::User,
            None,
            false,
        )])
        .expect_err("continues the core schema");
        assert!(e.contains("a built-in schema"), "{e}");
    }

    #[test]
    fn a_urn_given_twice_names_both_files() {
        let e = Registry::with(vec![
            ext("urn:x:Twice", ResourceType::User, None, false),
            ext("urn:x:twice", ResourceType::Group, None, false),
        ])
        .expect_err("twice");
        assert!(
            e.contains("urn:x:twice.json") && e.contains("urn:x:Twice.json"),
            "{e}"
        );
    }
}
