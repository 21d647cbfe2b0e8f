//! The rows storage takes and gives back, free of SQL types.

use scimgate_model::{MemberInput, PasswordChange, ResourceType, ValidatedResource, fold_case};
use serde_json::{Map, Value};

/// A validated resource ready to write, with its lookup keys computed in Rust.
#[derive(Debug, Clone)]
pub struct NewResource {
    pub resource_type: ResourceType,
    pub attributes: Map<String, Value>,
    pub name: String,
    pub name_key: String,
    pub display: String,
    pub external_id: Option<String>,
    pub members: Vec<MemberInput>,
    /// What to do to the stored password hash (`Set` holds the hash, never cleartext).
    pub password_hash: PasswordChange,
}

impl NewResource {
    pub fn from_validated(v: ValidatedResource, password_hash: PasswordChange) -> Self {
        NewResource {
            resource_type: v.resource_type,
            name: v.name().to_owned(),
            name_key: fold_case(v.name()),
            display: v.display().to_owned(),
            external_id: v.external_id().map(str::to_owned),
            members: v.members,
            attributes: v.attributes,
            password_hash,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoredResource {
    pub id: String,
    pub resource_type: ResourceType,
    pub attributes: Map<String, Value>,
    pub version: i64,
    pub created: String,
    pub last_modified: String,
    /// Members of a Group, when asked for.
    pub members: Option<Vec<MemberRef>>,
    /// Direct groups of a User, when asked for.
    pub groups: Option<Vec<GroupRef>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    pub value: String,
    pub member_type: ResourceType,
    pub display: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub value: String,
    pub display: String,
}
