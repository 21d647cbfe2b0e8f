//! The resource types scimgate serves (RFC 7643 §6) and the schemas each is made of.

use crate::schema::Schema;
use crate::schemas::{GROUP, USER};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    User,
    Group,
}

impl ResourceType {
    pub const ALL: [ResourceType; 2] = [ResourceType::User, ResourceType::Group];

    pub fn name(self) -> &'static str {
        match self {
            ResourceType::User => "User",
            ResourceType::Group => "Group",
        }
    }

    /// The path segment under the SCIM base, without the slash.
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceType::User => "Users",
            ResourceType::Group => "Groups",
        }
    }

    pub fn from_name(name: &str) -> Option<ResourceType> {
        Self::ALL
            .into_iter()
            .find(|rt| rt.name().eq_ignore_ascii_case(name))
    }

    pub fn core_schema(self) -> &'static Schema {
        match self {
            ResourceType::User => &USER,
            ResourceType::Group => &GROUP,
        }
    }

    /// Schema extensions this resource type accepts, every tenant's: the built-in ones and
    /// the operator's in force (`registry`). Which a tenant may use, and which it must, is
    /// the registry's to say.
    pub fn extensions(self) -> &'static [&'static Schema] {
        crate::registry::current().extensions(self)
    }

    /// The extension schema whose URN is `urn`, compared case-insensitively.
    pub fn extension(self, urn: &str) -> Option<&'static Schema> {
        self.extensions()
            .iter()
            .copied()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }
}

impl std::fmt::Display for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
