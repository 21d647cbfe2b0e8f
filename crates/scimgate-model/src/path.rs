//! Attribute paths (`attr`, `attr.sub`, `urn:…:attr.sub`) resolved against a resource type's
//! schemas, as filters, `sortBy`, `attributes` and PATCH paths name attributes.

use crate::resource_type::ResourceType;
use crate::schema::{AttributeDef, Schema, find_attribute};
use crate::schemas::COMMON;

/// A resolved path: the attribute, its optional sub-attribute, and the extension schema it
/// belongs to (`None` for core and common attributes).
#[derive(Debug, Clone, Copy)]
pub struct AttrPath {
    pub extension: Option<&'static Schema>,
    pub attr: &'static AttributeDef,
    pub sub: Option<&'static AttributeDef>,
}

impl AttrPath {
    /// The canonical spelling, URN-qualified for extension attributes.
    pub fn canonical(&self) -> String {
        let mut s = match self.extension {
            Some(ext) => format!("{}:{}", ext.id, self.attr.name),
            None => self.attr.name.to_owned(),
        };
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(sub.name);
        }
        s
    }

    /// The definition that holds the value: the sub-attribute when there is one.
    pub fn leaf(&self) -> &'static AttributeDef {
        self.sub.unwrap_or(self.attr)
    }
}

/// What a path names when it is not an attribute: a whole extension schema (`attributes=urn:…`).
#[derive(Debug, Clone, Copy)]
pub enum PathTarget {
    Attribute(AttrPath),
    Extension(&'static Schema),
}

/// Resolves `path` for `rt`. The error text names the part that did not resolve.
pub fn resolve(rt: ResourceType, path: &str) -> Result<PathTarget, String> {
    let (schema, rest) = split_urn(rt, path)?;
    let Some(rest) = rest else {
        return match schema {
            Some(ext) => Ok(PathTarget::Extension(ext)),
            None => Err(format!("'{path}' names a schema, not an attribute")),
        };
    };
    let (attr_name, sub_name) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    let attr = match schema {
        Some(ext) => ext.attribute(attr_name),
        None => rt
            .core_schema()
            .attribute(attr_name)
            .or_else(|| find_attribute(&COMMON, attr_name)),
    }
    .ok_or_else(|| format!("unknown attribute '{rest}' for resource type {}", rt.name()))?;
    let sub = match sub_name {
        None => None,
        Some(s) => Some(attr.sub_attribute(s).ok_or_else(|| {
            format!(
                "unknown attribute '{}.{s}' for resource type {}",
                attr.name,
                rt.name()
            )
        })?),
    };
    Ok(PathTarget::Attribute(AttrPath {
        extension: schema.filter(|s| s.id != rt.core_schema().id),
        attr,
        sub,
    }))
}

/// Resolves a path that must name an attribute (not a whole schema).
pub fn resolve_attribute(rt: ResourceType, path: &str) -> Result<AttrPath, String> {
    match resolve(rt, path)? {
        PathTarget::Attribute(p) => Ok(p),
        PathTarget::Extension(s) => Err(format!("'{}' names a schema, not an attribute", s.id)),
    }
}

/// Splits a URN-qualified path into its schema and the attribute path after it. The schema
/// URN is matched whole, so the `.` inside `2.0` never splits the path.
fn split_urn(
    rt: ResourceType,
    path: &str,
) -> Result<(Option<&'static Schema>, Option<&str>), String> {
    if !path
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        return Ok((None, Some(path)));
    }
    let candidates = std::iter::once(rt.core_schema()).chain(rt.extensions().iter().copied());
    for schema in candidates {
        let Some(head) = path.get(..schema.id.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(schema.id) {
            continue;
        }
        let tail = &path[schema.id.len()..];
        if tail.is_empty() {
            return Ok((Some(schema), None));
        }
        if let Some(rest) = tail.strip_prefix(':') {
            return Ok((Some(schema), Some(rest)));
        }
    }
    Err(format!(
        "unknown schema in '{path}' for resource type {}",
        rt.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(rt: ResourceType, p: &str) -> String {
        resolve_attribute(rt, p)
            .map(|p| p.canonical())
            .unwrap_or_else(|e| e)
    }

    #[test]
    fn resolves_core_common_and_extension_paths() {
        let u = ResourceType::User;
        assert_eq!(canon(u, "USERNAME"), "userName");
        assert_eq!(canon(u, "name.givenname"), "name.givenName");
        assert_eq!(canon(u, "externalid"), "externalId");
        assert_eq!(canon(u, "meta.lastModified"), "meta.lastModified");
        assert_eq!(
            canon(
                u,
                "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName"
            ),
            "name.familyName"
        );
        assert_eq!(
            canon(
                u,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
            ),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
        );
        assert_eq!(canon(ResourceType::Group, "members.value"), "members.value");
    }

    #[test]
    fn names_what_did_not_resolve() {
        let u = ResourceType::User;
        assert_eq!(
            canon(u, "nickname.x"),
            "unknown attribute 'nickName.x' for resource type User"
        );
        assert_eq!(
            canon(u, "shoeSize"),
            "unknown attribute 'shoeSize' for resource type User"
        );
        assert!(canon(u, "urn:example:foo:bar").starts_with("unknown schema"));
        assert!(canon(ResourceType::Group, "userName").starts_with("unknown attribute"));
    }

    #[test]
    fn bare_extension_urn_names_the_schema() {
        let t = resolve(
            ResourceType::User,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        );
        assert!(matches!(t, Ok(PathTarget::Extension(_))));
    }
}
