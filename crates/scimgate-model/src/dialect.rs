//! The IdP dialect normaliser: what Entra ID, Okta, OneLogin and JumpCloud send, rewritten
//! into what they mean before plugins and validation see it. Each rule is a flag, all on
//! by default; `Dialect::strict()` turns them all off. Every rewrite is reported by rule
//! name so that the caller can log it.

use serde_json::{Map, Value};

use crate::resource_type::ResourceType;
use crate::schema::{AttrType, AttributeDef, find_attribute};
use crate::schemas::COMMON;

/// The rewrite rules, one flag each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    /// `Add`/`REPLACE` as op names, and `delete` for `remove`.
    pub op_names: bool,
    /// `"True"`/`"false"` for booleans, in values and filter literals.
    pub string_booleans: bool,
    /// `null` means absent, also inside PATCH values.
    pub null_is_absent: bool,
    /// `""` for a string, reference, date or binary value means absent, as `null` does
    /// (Microsoft's SCIM validator clears a value so, on PUT and PATCH).
    pub empty_string_is_absent: bool,
    /// A single-valued attribute wrapped in a one-element list.
    pub unwrap_one_element_lists: bool,
    /// A multi-valued attribute sent as one object.
    pub wrap_single_objects: bool,
    /// `manager` as a bare id string, and an unqualified `manager` path.
    pub manager_shortcuts: bool,
    /// `remove` of `members` with a value list removes just those members.
    pub remove_members_by_value: bool,
    /// `add`/`replace` through a filter that matches nothing creates the element.
    pub filter_upsert: bool,
    /// No-path values with dotted (`name.givenName`) or URN-qualified keys.
    pub dotted_keys: bool,
    /// A no-path `replace` that repeats the resource's own `id` ignores it.
    pub ignore_own_id: bool,
    /// Group members that do not exist are skipped (and reported), not refused.
    pub skip_unknown_members: bool,
    /// Entra's query form `emails[type eq "work"].value eq "x"`.
    pub entra_filter_paths: bool,
    /// `userName eq bjensen` with the value unquoted. Off by default, even when lenient.
    pub unquoted_filter_values: bool,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect {
            op_names: true,
            string_booleans: true,
            null_is_absent: true,
            empty_string_is_absent: true,
            unwrap_one_element_lists: true,
            wrap_single_objects: true,
            manager_shortcuts: true,
            remove_members_by_value: true,
            filter_upsert: true,
            dotted_keys: true,
            ignore_own_id: true,
            skip_unknown_members: true,
            entra_filter_paths: true,
            unquoted_filter_values: false,
        }
    }
}

impl Dialect {
    /// RFC 7643/7644 to the letter: every rule off.
    pub fn strict() -> Self {
        Dialect {
            op_names: false,
            string_booleans: false,
            null_is_absent: false,
            empty_string_is_absent: false,
            unwrap_one_element_lists: false,
            wrap_single_objects: false,
            manager_shortcuts: false,
            remove_members_by_value: false,
            filter_upsert: false,
            dotted_keys: false,
            ignore_own_id: false,
            skip_unknown_members: false,
            entra_filter_paths: false,
            unquoted_filter_values: false,
        }
    }

    /// The filter parser's options under these rules.
    pub fn filter_options(&self, max_depth: usize) -> crate::filter::FilterOptions {
        crate::filter::FilterOptions {
            max_depth,
            string_booleans: self.string_booleans,
            entra_value_paths: self.entra_filter_paths,
            unquoted_values: self.unquoted_filter_values,
        }
    }
}

impl Dialect {
    /// The rule names, as configuration and logs spell them.
    pub const RULES: &'static [&'static str] = &[
        "op_names",
        "string_booleans",
        "null_is_absent",
        "empty_string_is_absent",
        "unwrap_one_element_lists",
        "wrap_single_objects",
        "manager_shortcuts",
        "remove_members_by_value",
        "filter_upsert",
        "dotted_keys",
        "ignore_own_id",
        "skip_unknown_members",
        "entra_filter_paths",
        "unquoted_filter_values",
    ];

    /// Turns the rule `name` on or off; false when no rule has that name.
    pub fn set(&mut self, name: &str, on: bool) -> bool {
        let flag = match name {
            "op_names" => &mut self.op_names,
            "string_booleans" => &mut self.string_booleans,
            "null_is_absent" => &mut self.null_is_absent,
            "empty_string_is_absent" => &mut self.empty_string_is_absent,
            "unwrap_one_element_lists" => &mut self.unwrap_one_element_lists,
            "wrap_single_objects" => &mut self.wrap_single_objects,
            "manager_shortcuts" => &mut self.manager_shortcuts,
            "remove_members_by_value" => &mut self.remove_members_by_value,
            "filter_upsert" => &mut self.filter_upsert,
            "dotted_keys" => &mut self.dotted_keys,
            "ignore_own_id" => &mut self.ignore_own_id,
            "skip_unknown_members" => &mut self.skip_unknown_members,
            "entra_filter_paths" => &mut self.entra_filter_paths,
            "unquoted_filter_values" => &mut self.unquoted_filter_values,
            _ => return false,
        };
        *flag = on;
        true
    }
}

/// The dialect keys of the configuration: every rule off (`dialect_strict`), then rules
/// turned off and on by name.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DialectConfig {
    /// Turn every IdP dialect rule off: RFC 7643/7644 to the letter.
    pub dialect_strict: bool,
    /// Dialect rules to turn off one by one (names in docs/dialects.md).
    pub dialect_disabled_rules: Vec<String>,
    /// Dialect rules to turn on that are off by default (`unquoted_filter_values`).
    pub dialect_enabled_rules: Vec<String>,
}

impl DialectConfig {
    /// The rules these keys leave on.
    pub fn dialect(&self) -> Result<Dialect, String> {
        let base = if self.dialect_strict {
            Dialect::strict()
        } else {
            Dialect::default()
        };
        with_rules(
            base,
            &self.dialect_disabled_rules,
            &self.dialect_enabled_rules,
            "",
        )
    }
}

/// `base` with the rules named in `disabled` turned off and those in `enabled` on; an
/// unknown name is an error naming its key (after `prefix`, e.g. `tenants.acme.`).
pub fn with_rules(
    mut base: Dialect,
    disabled: &[String],
    enabled: &[String],
    prefix: &str,
) -> Result<Dialect, String> {
    for (key, rules, on) in [
        ("dialect_disabled_rules", disabled, false),
        ("dialect_enabled_rules", enabled, true),
    ] {
        for rule in rules {
            if !base.set(rule, on) {
                return Err(format!(
                    "{prefix}{key}: unknown rule '{rule}' (known: {})",
                    Dialect::RULES.join(", ")
                ));
            }
        }
    }
    Ok(base)
}

/// Rule names applied during one request, for the debug log.
pub type Rewrites = Vec<&'static str>;

/// Normalises a whole resource body (POST, PUT) in place.
pub fn normalize_resource(
    rt: ResourceType,
    body: &mut Value,
    dialect: &Dialect,
    rewrites: &mut Rewrites,
) {
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    for (key, value) in obj.iter_mut() {
        if let Some(ext) = rt.extension(key) {
            if let Some(inner) = value.as_object_mut() {
                for (k, v) in inner.iter_mut() {
                    if let Some(def) = ext.attribute(k) {
                        normalize_value(def, v, dialect, rewrites);
                    }
                }
            }
        } else if let Some(def) = rt
            .core_schema()
            .attribute(key)
            .or_else(|| find_attribute(&COMMON, key))
        {
            normalize_value(def, value, dialect, rewrites);
        }
    }
}

/// Normalises one attribute value by its definition: list shape, booleans, `manager`.
pub fn normalize_value(
    def: &AttributeDef,
    value: &mut Value,
    dialect: &Dialect,
    rewrites: &mut Rewrites,
) {
    if value.is_null() {
        return;
    }
    if def.multi_valued {
        if dialect.wrap_single_objects && value.is_object() {
            *value = Value::Array(vec![value.take()]);
            rewrites.push("wrap_single_objects");
        }
        if let Value::Array(items) = value {
            for item in items.iter_mut() {
                normalize_single(def, item, dialect, rewrites);
            }
        }
        return;
    }
    if dialect.unwrap_one_element_lists
        && let Value::Array(items) = value
        && items.len() == 1
    {
        *value = items.remove(0);
        rewrites.push("unwrap_one_element_lists");
    }
    normalize_single(def, value, dialect, rewrites);
}

fn normalize_single(
    def: &AttributeDef,
    value: &mut Value,
    dialect: &Dialect,
    rewrites: &mut Rewrites,
) {
    match (def.ty, &mut *value) {
        (
            AttrType::String | AttrType::Reference | AttrType::DateTime | AttrType::Binary,
            Value::String(s),
        ) if dialect.empty_string_is_absent && s.is_empty() => {
            *value = Value::Null;
            rewrites.push("empty_string_is_absent");
        }
        (AttrType::Boolean, Value::String(s)) if dialect.string_booleans => {
            if let Some(b) = string_boolean(s) {
                *value = Value::Bool(b);
                rewrites.push("string_booleans");
            }
        }
        (AttrType::Complex, Value::String(s))
            if dialect.manager_shortcuts && def.name == "manager" =>
        {
            let id = std::mem::take(s);
            *value = Value::Object(Map::from_iter([("value".to_owned(), Value::String(id))]));
            rewrites.push("manager_shortcuts");
        }
        (AttrType::Complex, Value::Object(obj)) => {
            for (k, v) in obj.iter_mut() {
                if let Some(sub) = def.sub_attribute(k) {
                    normalize_value(sub, v, dialect, rewrites);
                }
            }
        }
        _ => {}
    }
}

/// `"true"`/`"False"` in any case.
pub fn string_boolean(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemas::{ENTERPRISE_USER_URN, USER_URN};
    use serde_json::json;

    fn normalized(body: Value, dialect: &Dialect) -> (Value, Rewrites) {
        let mut b = body;
        let mut r = Vec::new();
        normalize_resource(ResourceType::User, &mut b, dialect, &mut r);
        (b, r)
    }

    #[test]
    fn every_rule_can_be_switched_by_name() {
        for rule in Dialect::RULES {
            let mut d = Dialect::default();
            let was_on = d != {
                let mut off = Dialect::default();
                off.set(rule, false);
                off
            };
            assert!(d.set(rule, !was_on), "{rule}");
            assert_ne!(d, Dialect::default(), "{rule} changed a flag");
        }
        let mut all_off = Dialect::default();
        for rule in Dialect::RULES {
            all_off.set(rule, false);
        }
        assert_eq!(all_off, Dialect::strict());
        assert!(!Dialect::default().set("no_such_rule", false));
    }

    #[test]
    fn each_rule_rewrites_its_idp_shape() {
        let rows: Vec<(&str, Value, Value, &str)> = vec![
            (
                "Entra: booleans as strings",
                json!({"active": "False"}),
                json!({"active": false}),
                "string_booleans",
            ),
            (
                "Entra: primary as a string",
                json!({"emails": [{"value": "a", "primary": "True"}]}),
                json!({"emails": [{"value": "a", "primary": true}]}),
                "string_booleans",
            ),
            (
                "OneLogin: one object for a list",
                json!({"emails": {"value": "a"}}),
                json!({"emails": [{"value": "a"}]}),
                "wrap_single_objects",
            ),
            (
                "Entra: manager in a one-element list",
                json!({ENTERPRISE_USER_URN: {"manager": [{"value": "m"}]}}),
                json!({ENTERPRISE_USER_URN: {"manager": {"value": "m"}}}),
                "unwrap_one_element_lists",
            ),
            (
                "Microsoft's validator: \"\" clears a value",
                json!({"title": "", "name": {"givenName": "", "familyName": "F"}, "emails": [{"value": ""}]}),
                json!({"title": null, "name": {"givenName": null, "familyName": "F"}, "emails": [{"value": null}]}),
                "empty_string_is_absent",
            ),
            (
                "Entra: manager as a bare id",
                json!({ENTERPRISE_USER_URN: {"manager": "m"}}),
                json!({ENTERPRISE_USER_URN: {"manager": {"value": "m"}}}),
                "manager_shortcuts",
            ),
        ];
        for (case, body, want, rule) in rows {
            let (got, rewrites) = normalized(body.clone(), &Dialect::default());
            assert_eq!(got, want, "{case}");
            assert!(rewrites.contains(&rule), "{case}: {rewrites:?}");
            let (strict, none) = normalized(body.clone(), &Dialect::strict());
            assert_eq!(strict, body, "{case}: strict leaves it");
            assert!(none.is_empty());
        }
        let (untouched, r) = normalized(
            json!({"schemas": [USER_URN], "active": "maybe"}),
            &Dialect::default(),
        );
        assert_eq!(
            untouched["active"], "maybe",
            "only true/false are rewritten; validation refuses the rest"
        );
        assert!(r.is_empty());
    }
}
