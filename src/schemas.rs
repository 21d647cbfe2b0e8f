//! The operator's schema extensions (`[[schemas]]`): RFC 7643 §7 schema files read and
//! checked, then put in force (`scimgate_model::registry`) at start and on reload. A set
//! that does not load whole is refused, named, and the running set keeps serving; so is a
//! set that would remove (or redefine) an attribute that has stored values, unless
//! `schema_removal = "purge"` says to drop those values.

use std::path::PathBuf;

use scimgate_model::ResourceType;
use scimgate_model::registry::{self, Extension, Registry};
use scimgate_model::schema::{AttributeDef, Schema};
use scimgate_store::Store;
use serde::{Deserialize, Serialize};

/// Largest schema file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One `[[schemas]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaSpec {
    /// The RFC 7643 §7 schema document (JSON).
    pub file: PathBuf,
    /// The resource type it extends: `User` or `Group`.
    pub resource_type: String,
    /// Whether every resource of the type must carry it (`schemaExtensions.required`).
    #[serde(default)]
    pub required: bool,
    /// The tenants that may use it; absent: every tenant.
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
}

/// What a reload does with the stored values of an attribute the new schemas drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaRemoval {
    /// Refuse the new set, naming the attribute and how many resources hold it.
    #[default]
    Refuse,
    /// Drop the values (each resource's version moves on), and say how many.
    Purge,
}

/// Reads and checks every configured schema file into a set (not yet in force).
pub fn load(specs: &[SchemaSpec]) -> Result<Registry, String> {
    let mut extensions = Vec::with_capacity(specs.len());
    for spec in specs {
        let file = spec.file.display().to_string();
        let fail = |what: String| format!("schema file '{file}': {what}");
        let rt = ResourceType::from_name(&spec.resource_type).ok_or_else(|| {
            fail(format!(
                "resource_type '{}' is neither User nor Group",
                spec.resource_type
            ))
        })?;
        if let Some(t) = spec
            .tenants
            .iter()
            .flatten()
            .find(|t| !scimgate_model::valid_tenant(t))
        {
            return Err(fail(format!("tenants: '{t}' is not a tenant name")));
        }
        let size = std::fs::metadata(&spec.file)
            .map_err(|e| fail(format!("cannot read it: {e}")))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(fail(format!(
                "{size} bytes; at most {MAX_FILE_BYTES} are read"
            )));
        }
        let text = std::fs::read_to_string(&spec.file)
            .map_err(|e| fail(format!("cannot read it: {e}")))?;
        let schema = scimgate_model::schema_file::parse(&file, &text)?;
        extensions.push(Extension {
            schema,
            resource_type: rt,
            required: spec.required,
            tenants: spec.tenants.clone(),
            file,
        });
    }
    Registry::with(extensions)
}

/// Puts `next` in force, after checking what it removes against the stored values. With
/// `Purge`, those values are dropped once `next` is in force (so that no write adds them
/// meanwhile); with `Refuse`, values written between the check and the swap put the
/// running set back.
pub fn apply(store: &dyn Store, next: Registry, removal: SchemaRemoval) -> Result<String, String> {
    let running = registry::current();
    if same(running, &next) {
        return Ok("schemas unchanged".into());
    }
    let removed = removed_attributes(running, &next);
    let in_use = |store: &dyn Store| -> Result<Vec<(Removed, u64)>, String> {
        let mut found = Vec::new();
        for r in &removed {
            let n = store
                .attribute_in_use(&r.path())
                .map_err(|e| e.to_string())?;
            if n > 0 {
                found.push((r.clone(), n));
            }
        }
        Ok(found)
    };
    let refusal = |found: &[(Removed, u64)]| {
        let (r, n) = &found[0];
        format!(
            "schema file '{}': {} attribute '{}' would leave the stored values of {n} resources without a schema; refused (set schema_removal = \"purge\" to drop them)",
            r.file,
            if r.redefined {
                "redefining"
            } else {
                "removing"
            },
            r.path()
        )
    };
    if removal == SchemaRemoval::Refuse {
        let found = in_use(store)?;
        if !found.is_empty() {
            return Err(refusal(&found));
        }
    }
    // Purged while the set that defines them is in force: the index rows follow it.
    let mut purged = Vec::new();
    if removal == SchemaRemoval::Purge {
        for (r, _) in in_use(store)? {
            let n = store
                .purge_attribute(r.resource_type, r.urn, r.attribute)
                .map_err(|e| e.to_string())?;
            tracing::warn!(
                attribute = r.path(),
                resources = n,
                "schema_removal = purge: stored values dropped"
            );
            purged.push(format!("{} ({n} resources)", r.path()));
        }
    }
    registry::install(next);
    store.schemas_changed().map_err(|e| e.to_string())?;
    if removal == SchemaRemoval::Refuse {
        let found = in_use(store)?;
        if !found.is_empty() {
            // A write got in between: the running set comes back.
            registry::install(rebuilt(running)?);
            store.schemas_changed().map_err(|e| e.to_string())?;
            return Err(refusal(&found));
        }
    }
    let count = registry::current().operator().len();
    Ok(if purged.is_empty() {
        format!("{count} operator schemas in force")
    } else {
        format!(
            "{count} operator schemas in force; purged {}",
            purged.join(", ")
        )
    })
}

/// An attribute the running set has and the next one does not (or defines otherwise).
#[derive(Debug, Clone)]
struct Removed {
    resource_type: ResourceType,
    urn: &'static str,
    attribute: &'static str,
    file: String,
    redefined: bool,
}

impl Removed {
    fn path(&self) -> String {
        format!("{}:{}", self.urn, self.attribute)
    }
}

fn removed_attributes(running: &Registry, next: &Registry) -> Vec<Removed> {
    let mut out = Vec::new();
    for ext in running.operator() {
        let after = next
            .operator_extension(ext.schema.id)
            .filter(|n| n.resource_type == ext.resource_type);
        for def in &ext.schema.attributes {
            let now = after.and_then(|n| n.schema.attribute(def.name));
            if now.is_none_or(|n| !same_shape(def, n)) {
                out.push(Removed {
                    resource_type: ext.resource_type,
                    urn: ext.schema.id,
                    attribute: def.name,
                    file: after.map_or_else(|| ext.file.clone(), |n| n.file.clone()),
                    redefined: now.is_some(),
                });
            }
        }
    }
    out
}

/// Whether stored values of `a` are still values of `b`: same type, plurality and case
/// rule, and the same sub-attributes so.
fn same_shape(a: &AttributeDef, b: &AttributeDef) -> bool {
    a.ty == b.ty
        && a.multi_valued == b.multi_valued
        && a.case_exact == b.case_exact
        && a.sub_attributes.len() == b.sub_attributes.len()
        && a.sub_attributes
            .iter()
            .all(|s| b.sub_attribute(s.name).is_some_and(|t| same_shape(s, t)))
}

fn same(a: &Registry, b: &Registry) -> bool {
    a.operator().len() == b.operator().len()
        && a.operator().iter().zip(b.operator()).all(|(x, y)| {
            x.resource_type == y.resource_type
                && x.required == y.required
                && x.tenants == y.tenants
                && same_schema(x.schema, y.schema)
        })
}

fn same_schema(a: &Schema, b: &Schema) -> bool {
    a.id == b.id && a.to_json("") == b.to_json("")
}

fn rebuilt(r: &Registry) -> Result<Registry, String> {
    Registry::with(r.operator().to_vec())
}
