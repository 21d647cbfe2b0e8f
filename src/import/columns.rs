//! CSV columns as SCIM attributes, both ways: `--map column=attribute` (a column not
//! mapped is read as the attribute it names). An attribute is `userName`, `name.givenName`,
//! a value of a multi-valued attribute chosen by its type (`emails[type eq "work"].value`),
//! an extension's (`urn:…:enterprise:2.0:User:department`, `…:User:manager.value`), or
//! `groups`: the names of the user's groups, separated by `;`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

/// The `--map` pairs.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    map: HashMap<String, String>,
}

/// Where one attribute lives in a resource.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// `schemas` URN (core: none), then the attribute and its sub-attribute.
    Plain {
        urn: Option<String>,
        attr: String,
        sub: Option<String>,
    },
    /// `attr[type eq "T"].sub`.
    Typed {
        attr: String,
        kind: String,
        sub: String,
    },
    Groups,
}

/// The columns of one file, each with its target (or skipped: an empty mapping).
pub struct Plan {
    targets: Vec<Option<Target>>,
}

impl Columns {
    /// From `column=attribute` pairs; `column=` skips a column.
    pub fn parse(pairs: &[String]) -> Result<Columns, String> {
        let mut map = HashMap::new();
        for pair in pairs {
            let (column, attribute) = pair.split_once('=').ok_or_else(|| {
                format!("--map '{pair}': give column=attribute, e.g. mail=emails[type eq \"work\"].value")
            })?;
            if !attribute.is_empty() {
                target(attribute).map_err(|e| format!("--map '{pair}': {e}"))?;
            }
            map.insert(column.trim().to_owned(), attribute.trim().to_owned());
        }
        Ok(Columns { map })
    }

    /// The attribute a column holds.
    fn attribute_of<'a>(&'a self, column: &'a str) -> &'a str {
        self.map.get(column).map_or(column, String::as_str)
    }

    pub fn plan(&self, header: &csv::StringRecord) -> Result<Plan, String> {
        let mut targets = Vec::new();
        for column in header {
            let attribute = self.attribute_of(column.trim());
            if attribute.is_empty() {
                targets.push(None);
                continue;
            }
            targets.push(Some(target(attribute).map_err(|e| {
                format!("CSV column '{column}': {e}; map it with --map '{column}=ATTRIBUTE' or skip it with --map '{column}='")
            })?));
        }
        for (i, t) in targets.iter().enumerate() {
            if let Some(t) = t
                && let Some(j) = targets[..i].iter().position(|u| u.as_ref() == Some(t))
            {
                return Err(format!(
                    "CSV columns '{}' and '{}' both hold the same attribute; map one elsewhere or skip it with --map '{}='",
                    &header[j], &header[i], &header[i]
                ));
            }
        }
        if !targets.iter().flatten().any(
            |t| matches!(t, Target::Plain { urn: None, attr, sub: None } if attr == "userName"),
        ) {
            return Err("no CSV column holds userName; map one with --map COLUMN=userName".into());
        }
        Ok(Plan { targets })
    }

    /// The header and the attributes of an export's columns: the mapped ones in the order
    /// given, else the default set.
    pub fn export_columns(pairs: &[String]) -> Result<Vec<(String, String)>, String> {
        if pairs.is_empty() {
            return Ok(DEFAULT_EXPORT
                .iter()
                .map(|a| ((*a).to_owned(), (*a).to_owned()))
                .collect());
        }
        pairs
            .iter()
            .map(|pair| {
                let (column, attribute) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--map '{pair}': give column=attribute"))?;
                target(attribute).map_err(|e| format!("--map '{pair}': {e}"))?;
                Ok((column.to_owned(), attribute.to_owned()))
            })
            .collect()
    }
}

/// The columns of an export without `--map`.
const DEFAULT_EXPORT: &[&str] = &[
    "id",
    "externalId",
    "userName",
    "displayName",
    "name.givenName",
    "name.familyName",
    "title",
    "active",
    "emails[type eq \"work\"].value",
    "phoneNumbers[type eq \"work\"].value",
    "groups",
];

fn target(attribute: &str) -> Result<Target, String> {
    let bad = || {
        format!(
            "'{attribute}' is not an attribute path (userName, name.givenName, emails[type eq \"work\"].value, urn:…:User:department, groups)"
        )
    };
    if attribute == "groups" {
        return Ok(Target::Groups);
    }
    let (urn, rest) = match attribute.rsplit_once(':') {
        Some((urn, rest)) if urn.starts_with("urn:") => (Some(urn.to_owned()), rest),
        Some(_) => return Err(bad()),
        None => (None, attribute),
    };
    if let Some((attr, tail)) = rest.split_once('[') {
        let (filter, sub) = tail.split_once("].").ok_or_else(bad)?;
        let kind = filter
            .strip_prefix("type eq \"")
            .and_then(|k| k.strip_suffix('"'))
            .ok_or_else(bad)?;
        if urn.is_some() || !simple(attr) || !simple(sub) {
            return Err(bad());
        }
        return Ok(Target::Typed {
            attr: attr.to_owned(),
            kind: kind.to_owned(),
            sub: sub.to_owned(),
        });
    }
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    if !simple(attr) || sub.is_some_and(|s| !simple(s)) {
        return Err(bad());
    }
    Ok(Target::Plain {
        urn,
        attr: attr.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

fn simple(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// A cell's text as the attribute's JSON value: `true`/`false` for the booleans SCIM
/// defines on users, text otherwise (validation says when it does not fit).
fn cell(attr: &str, sub: Option<&str>, text: &str) -> Value {
    let boolean = matches!((attr, sub), ("active", None) | (_, Some("primary")));
    if boolean {
        match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => return Value::Bool(true),
            "false" | "no" | "0" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::String(text.to_owned())
}

impl Plan {
    /// A row as a user, and the names of its groups.
    pub fn user(&self, row: &csv::StringRecord) -> Result<(Value, Vec<String>), String> {
        let mut doc = Map::new();
        let mut schemas = vec![Value::String(
            "urn:ietf:params:scim:schemas:core:2.0:User".into(),
        )];
        let mut groups = Vec::new();
        for (target, text) in self.targets.iter().zip(row.iter()) {
            let (Some(target), text) = (target, text.trim()) else {
                continue;
            };
            if text.is_empty() {
                continue;
            }
            match target {
                Target::Groups => groups.extend(group_names(text)),
                Target::Plain { urn, attr, sub } => {
                    let home = match urn {
                        None => &mut doc,
                        Some(urn) => {
                            if !schemas.iter().any(|s| s == urn.as_str()) {
                                schemas.push(Value::String(urn.clone()));
                            }
                            doc.entry(urn.clone())
                                .or_insert_with(|| json!({}))
                                .as_object_mut()
                                .ok_or("an extension is not an object")?
                        }
                    };
                    let value = cell(attr, sub.as_deref(), text);
                    match sub {
                        None => {
                            home.insert(attr.clone(), value);
                        }
                        Some(sub) => {
                            home.entry(attr.clone())
                                .or_insert_with(|| json!({}))
                                .as_object_mut()
                                .ok_or_else(|| {
                                    format!("'{attr}' is mapped as a value and as an object")
                                })?
                                .insert(sub.clone(), value);
                        }
                    }
                }
                Target::Typed { attr, kind, sub } => {
                    let list = doc
                        .entry(attr.clone())
                        .or_insert_with(|| json!([]))
                        .as_array_mut()
                        .ok_or_else(|| format!("'{attr}' is mapped as a value and as a list"))?;
                    let at = match list.iter().position(|v| v["type"] == kind.as_str()) {
                        Some(at) => at,
                        None => {
                            list.push(json!({"type": kind}));
                            list.len() - 1
                        }
                    };
                    list[at][sub.as_str()] = cell(attr, Some(sub), text);
                }
            }
        }
        doc.insert("schemas".into(), Value::Array(schemas));
        Ok((Value::Object(doc), groups))
    }
}

/// The names in a `groups` cell: separated by `;`, a `;` or `\` inside a name written
/// `\;` or `\\` (as export writes them).
fn group_names(cell: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut name = String::new();
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.extend(chars.next()),
            ';' => names.push(std::mem::take(&mut name)),
            c => name.push(c),
        }
    }
    names.push(name);
    names
        .into_iter()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

/// A group name as a `groups` cell holds it.
fn escape_group_name(name: &str) -> String {
    name.replace('\\', "\\\\").replace(';', "\\;")
}

/// The text of `attribute` in an exported resource, for a CSV cell.
pub fn export_cell(resource: &Map<String, Value>, attribute: &str) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match target(attribute) {
        Ok(Target::Groups) => resource
            .get("groups")
            .and_then(Value::as_array)
            .map(|gs| {
                gs.iter()
                    .filter_map(|g| g["display"].as_str())
                    .map(escape_group_name)
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .unwrap_or_default(),
        Ok(Target::Plain { urn, attr, sub }) => {
            let home = match &urn {
                None => Some(resource),
                Some(urn) => resource.get(urn).and_then(Value::as_object),
            };
            let value = home.and_then(|h| h.get(&attr));
            let value = match (&sub, value) {
                (Some(sub), Some(v)) => v.get(sub),
                (None, v) => v,
                (Some(_), None) => None,
            };
            value.map(text).unwrap_or_default()
        }
        Ok(Target::Typed { attr, kind, sub }) => resource
            .get(&attr)
            .and_then(Value::as_array)
            .and_then(|l| l.iter().find(|v| v["type"] == kind.as_str()))
            .and_then(|v| v.get(&sub))
            .map(text)
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(header: &[&str], cells: &[&str], map: &[&str]) -> Result<(Value, Vec<String>), String> {
        let columns = Columns::parse(&map.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
        let plan = columns.plan(&csv::StringRecord::from(header.to_vec()))?;
        plan.user(&csv::StringRecord::from(cells.to_vec()))
    }

    #[test]
    fn columns_become_attributes() {
        let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        /// Header, cells, `--map` pairs, the user wanted, its groups.
        type Case<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            Value,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                &["userName", "name.givenName", "active"],
                &["a@x", "Ann", "FALSE"],
                &[],
                json!({"userName": "a@x", "name": {"givenName": "Ann"}, "active": false}),
                vec![],
            ),
            (
                &["login", "mail", "mobile", "skip"],
                &["a", "a@x", "+1 555", "zzz"],
                &[
                    "login=userName",
                    "mail=emails[type eq \"work\"].value",
                    "mobile=phoneNumbers[type eq \"mobile\"].value",
                    "skip=",
                ],
                json!({"userName": "a", "emails": [{"type": "work", "value": "a@x"}],
                       "phoneNumbers": [{"type": "mobile", "value": "+1 555"}]}),
                vec![],
            ),
            (
                &["userName", "dept", "groups", "title"],
                &["a", "R&D", "Admins; VPN ;", ""],
                &["dept=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"],
                json!({"userName": "a", enterprise: {"department": "R&D"}}),
                vec!["Admins", "VPN"],
            ),
        ];
        for (header, cells, map, want, groups) in cases {
            let (mut doc, found) = row(header, cells, map).expect("row");
            let schemas = doc
                .as_object_mut()
                .and_then(|d| d.remove("schemas"))
                .expect("schemas");
            assert_eq!(doc, want, "{header:?}");
            assert_eq!(found, groups);
            if want.get(enterprise).is_some() {
                assert_eq!(schemas[1], enterprise);
            }
        }
    }

    #[test]
    fn unusable_mappings_are_refused_naming_the_column() {
        let cases: Vec<(&[&str], &[&str], &str)> = vec![
            (&["mail"], &[], "no CSV column holds userName"),
            (&["userName", "e-mail"], &[], "CSV column 'e-mail'"),
            (
                &["userName"],
                &["x=emails[value eq 1].y"],
                "--map 'x=emails[value eq 1].y'",
            ),
            (&["userName"], &["nothing"], "give column=attribute"),
            (
                &["userName", "login"],
                &["login=userName"],
                "both hold the same attribute",
            ),
        ];
        for (header, map, want) in cases {
            let e = row(header, &[], map).expect_err("refused");
            assert!(e.contains(want), "{e} / {want}");
        }
    }

    #[test]
    fn export_cells_read_back_what_import_writes() {
        let (doc, _) = row(
            &["userName", "mail", "active"],
            &["a", "a@x", "true"],
            &["mail=emails[type eq \"work\"].value"],
        )
        .expect("row");
        let mut resource = doc.as_object().expect("object").clone();
        resource.insert("groups".into(), json!([{"display": "A"}, {"display": "B"}]));
        assert_eq!(export_cell(&resource, "userName"), "a");
        assert_eq!(
            export_cell(&resource, "emails[type eq \"work\"].value"),
            "a@x"
        );
        assert_eq!(export_cell(&resource, "active"), "true");
        assert_eq!(export_cell(&resource, "groups"), "A;B");
        resource.insert(
            "groups".into(),
            json!([{"display": "R;D"}, {"display": "a\\b"}]),
        );
        let cell = export_cell(&resource, "groups");
        assert_eq!(cell, r"R\;D;a\\b");
        assert_eq!(group_names(&cell), vec!["R;D", r"a\b"]);
        assert_eq!(export_cell(&resource, "name.givenName"), "");
    }
}
