//! The rows storage takes and gives back, free of SQL types.

use std::collections::HashSet;

use scimgate_model::patch::MemberChanges;
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

/// What the server checks on every request, as of one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessSnapshot {
    pub tenants: HashSet<String>,
    pub revoked: HashSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInfo {
    pub name: String,
    pub created: String,
    pub users: i64,
    pub groups: i64,
}

/// A token as `scimgate token` minted it, or only its `jti` when it was revoked unseen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub jti: String,
    pub subject: Option<String>,
    /// The default tenant first.
    pub tenants: Vec<String>,
    pub scope: Option<String>,
    pub issued_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What `revoke_token` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    AlreadyRevoked,
    /// Not a token of this folder, and not said to be external: nothing done.
    Unknown,
}

/// Why a tenant was not removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveOutcome {
    Removed { users: i64, groups: i64 },
    NotFound,
    HasData { users: i64, groups: i64 },
}

/// One audited write, as the HTTP layer saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Filled in when read back; ignored when appended.
    pub seq: i64,
    pub at: String,
    pub tenant: String,
    pub subject: Option<String>,
    pub jti: Option<String>,
    pub client: Option<String>,
    pub method: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub version_before: Option<i64>,
    pub version_after: Option<i64>,
    /// JSON: `[{"plugin": NAME, "decision": ...}]`.
    pub plugins: Option<String>,
    pub status: u16,
    pub detail: Option<String>,
}

/// Which audit rows to read: a tenant's (or all), from a time or after a `seq`, oldest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub tenant: Option<String>,
    /// As `clock::format_timestamp` writes it (`clock::normalize_timestamp`), since the
    /// comparison is on text.
    pub since: Option<String>,
    pub after_seq: Option<i64>,
    pub limit: u32,
    /// The newest `limit` rows (still returned oldest first), as `tail` shows them.
    pub newest: bool,
}

/// What a PATCH hands storage: new attributes (if any changed) and membership changes,
/// applied row by row.
pub struct PatchWrite {
    pub rt: ResourceType,
    pub expected_version: Option<i64>,
    pub new: Option<NewResource>,
    pub members: MemberChanges,
    pub skip_unknown_members: bool,
}

/// A PATCH as stored, and the members it skipped as unknown (when the dialect allows).
pub struct PatchOutcome {
    pub resource: StoredResource,
    pub skipped_members: Vec<String>,
}

/// The store's counters since it opened: how many writes shared how many commits, the
/// time spent committing, and the read pool's connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub writes: u64,
    pub commits: u64,
    pub commit_micros: u64,
    pub read_connections: u32,
    pub idle_read_connections: u32,
    pub read_checkouts: u64,
    pub read_wait_micros: u64,
}
