//! The operator's schema extensions (`[[schemas]]`): RFC 7643 §7 schema files read and
//! checked, then put in force (`scimgate_model::registry`) at start and on reload. A set
//! that does not load whole is refused, named, and the running set keeps serving; so is a
//! set that would remove (or redefine) an attribute that has stored values, unless
//! `schema_removal = "purge"` says to drop those values.

use std::collections::HashMap;
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
        extensions.push(Extension {
            schema: parsed(&file, text)?,
            resource_type: rt,
            required: spec.required,
            tenants: spec.tenants.clone(),
            file,
        });
    }
    Registry::with(extensions)
}

/// A schema file's text read into a schema, once per distinct text: a schema is kept for
/// the program's lifetime, so a reload of unchanged files (any plugin or configuration
/// change triggers one) must not read them into new copies.
fn parsed(file: &str, text: String) -> Result<&'static Schema, String> {
    type Parsed = Result<&'static Schema, String>;
    static SEEN: std::sync::LazyLock<std::sync::Mutex<HashMap<(String, String), Parsed>>> =
        std::sync::LazyLock::new(Default::default);
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = (file.to_owned(), text);
    if let Some(done) = seen.get(&key) {
        return done.clone();
    }
    let done = scimgate_model::schema_file::parse(file, &key.1);
    seen.insert(key, done.clone());
    done
}

/// The operator's set as storage keeps it between starts (`Store::save_schema_set`).
pub(crate) fn to_stored(registry: &Registry) -> String {
    let list: Vec<serde_json::Value> = registry
        .operator()
        .iter()
        .map(|e| {
            serde_json::json!({
                "file": e.file,
                "resource_type": e.resource_type.name(),
                "required": e.required,
                "tenants": e.tenants,
                "schema": e.schema.to_json(""),
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// Puts back in force the set that was in force when the server last ran, before the
/// configured one is applied: a start with changed files is then checked (removals
/// refused or purged) as a reload is.
pub fn restore(store: &dyn Store) -> Result<(), String> {
    let Some(json) = store.schema_set().map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&json).map_err(|e| format!("the stored schema set: {e}"))?;
    let mut extensions = Vec::with_capacity(list.len());
    for item in list {
        let file = item["file"].as_str().unwrap_or("(stored)").to_owned();
        let rt = item["resource_type"]
            .as_str()
            .and_then(ResourceType::from_name)
            .ok_or_else(|| format!("the stored schema set: no resource type for '{file}'"))?;
        let schema = parsed(
            &format!("{file} (as last in force)"),
            item["schema"].to_string(),
        )?;
        extensions.push(Extension {
            schema,
            resource_type: rt,
            required: item["required"].as_bool().unwrap_or(false),
            tenants: serde_json::from_value(item["tenants"].clone()).unwrap_or(None),
            file,
        });
    }
    let restored = registry::leak(Registry::with(extensions)?);
    store
        .register_schemas(restored)
        .map_err(|e| e.to_string())?;
    registry::install_static(restored);
    Ok(())
}

/// Puts `next` in force, after checking what it removes against the stored values. With
/// `Refuse`, a set that would leave stored values without a definition is refused; with
/// `Purge`, those values are dropped once `next` is in force. `next` is registered with
/// storage before it is in force, and from then on a write checked against the running
/// set is refused and checked again (`SchemasChanged`): no value of a removed attribute
/// lands after the checks.
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
    let next = registry::leak(next);
    store.register_schemas(next).map_err(|e| e.to_string())?;
    registry::install_static(next);
    let mut purged = Vec::new();
    match removal {
        SchemaRemoval::Purge => {
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
        SchemaRemoval::Refuse => {
            let found = in_use(store)?;
            if !found.is_empty() {
                // A write got in before the registration: the running set comes back.
                let back = registry::leak(rebuilt(running)?);
                store.register_schemas(back).map_err(|e| e.to_string())?;
                registry::install_static(back);
                return Err(refusal(&found));
            }
        }
    }
    store
        .save_schema_set(&to_stored(next))
        .map_err(|e| e.to_string())?;
    let count = next.operator().len();
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
        // Stored values are kept under their exact names (the URN and attribute keys, the
        // index paths): a change of case is a change of name.
        let after = next
            .operator_extension(ext.schema.id)
            .filter(|n| n.resource_type == ext.resource_type && n.schema.id == ext.schema.id);
        for def in &ext.schema.attributes {
            let now = after.and_then(|n| n.schema.attribute(def.name));
            if now.is_none_or(|n| n.name != def.name || !same_shape(def, n)) {
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
/// rule, and each of its sub-attributes still there so, under the same name (added
/// sub-attributes take nothing away).
fn same_shape(a: &AttributeDef, b: &AttributeDef) -> bool {
    a.ty == b.ty
        && a.multi_valued == b.multi_valued
        && a.case_exact == b.case_exact
        && a.sub_attributes.iter().all(|s| {
            b.sub_attribute(s.name)
                .is_some_and(|t| t.name == s.name && same_shape(s, t))
        })
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
