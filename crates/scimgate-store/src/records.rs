//! The rows storage takes and gives back, free of SQL types.

use std::collections::HashSet;

use scimgate_model::patch::MemberChanges;
use scimgate_model::{MemberInput, PasswordChange, ResourceType, ValidatedResource, fold_case};
use serde_json::{Map, Value};

use crate::error::StoreError;

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
    /// What the change feed records of this write beyond the stored form.
    pub change: ChangeNote,
    /// The schema set it was validated against (`registry::Registry::epoch`).
    pub schema_set: u64,
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
            change: ChangeNote::default(),
            schema_set: v.schema_set,
        }
    }
}

/// A resource as stored. `A` is how its attributes are held: parsed (the default), or as
/// the JSON text they were stored as ([`StoredDocument`]).
#[derive(Debug, Clone)]
pub struct StoredResource<A = Map<String, Value>> {
    pub id: String,
    pub resource_type: ResourceType,
    pub attributes: A,
    pub version: i64,
    pub created: String,
    pub last_modified: String,
    /// Members of a Group, when asked for.
    pub members: Option<Vec<MemberRef>>,
    /// Direct groups of a User, when asked for.
    pub groups: Option<Vec<GroupRef>>,
}

/// A resource as a read for an answer gives it: its attributes still the JSON text stored,
/// so that an answer can carry them without building a tree of them (`render.rs` in the
/// HTTP crate).
pub type StoredDocument = StoredResource<String>;

impl StoredDocument {
    /// The resource with its attributes parsed.
    pub fn parse(self) -> Result<StoredResource, StoreError> {
        let attributes: Map<String, Value> = serde_json::from_str(&self.attributes)
            .map_err(|e| StoreError::Corrupt(format!("attributes of '{}': {e}", self.id)))?;
        Ok(StoredResource {
            id: self.id,
            resource_type: self.resource_type,
            attributes,
            version: self.version,
            created: self.created,
            last_modified: self.last_modified,
            members: self.members,
            groups: self.groups,
        })
    }
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

/// How the stored position of a poll consumer's cursor is named (`cursor:` and its
/// subject and name), and of a stream consumer's (`stream:`): both hold their tenant's
/// events from pruning like a receiver following the tenant.
pub const POLL_CURSOR: &str = "cursor:";
pub const STREAM_CURSOR: &str = "stream:";

/// Whether a stored position is a poll or stream consumer's cursor (not a receiver's).
pub fn is_cursor(consumer: &str) -> bool {
    consumer.starts_with(POLL_CURSOR) || consumer.starts_with(STREAM_CURSOR)
}

/// What the server checks on every request, as of one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessSnapshot {
    pub tenants: HashSet<String>,
    pub revoked: HashSet<String>,
    /// OAuth clients by `client_id`: a token minted for a client no longer here is refused.
    pub clients: std::collections::HashMap<String, OAuthClient>,
}

/// An OAuth 2.0 client of the token endpoint (client credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub name: String,
    /// The tenants its tokens may act for; the first is their default.
    pub tenants: Vec<String>,
    /// The most its tokens may carry (space-separated).
    pub scope: String,
    pub token_ttl_secs: i64,
    pub created: String,
    pub secrets: Vec<ClientSecret>,
    /// Set for a client that authenticates with a signed assertion instead of a secret.
    pub assertion: Option<ClientAssertion>,
}

/// What a client's assertion (RFC 7523 §3) must say, and where its signer's keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAssertion {
    /// `iss`, exactly (Entra ID: the customer tenant's v2 issuer).
    pub issuer: String,
    /// `sub`, exactly (Entra ID: its provisioning workload identity).
    pub subject: String,
    /// One of `aud`, exactly.
    pub audience: String,
    /// The signer's JWKS: fetched from a URL, or read from a file.
    pub jwks_url: Option<String>,
    pub jwks_file: Option<String>,
}

/// One of a client's secrets, as its SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSecret {
    /// Hex SHA-256 of the secret.
    pub digest: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds after which it no longer holds (set on the old one by a rotation).
    pub expires: Option<i64>,
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
    /// The change feed's event the write made (its number in the tenant's feed): the admin
    /// page's "what the write changed". `None` for a refusal. Not in `/admin/audit`'s rows.
    #[serde(skip_serializing)]
    pub event_seq: Option<i64>,
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
    /// Only rows before this time (as `since`).
    pub until: Option<String>,
    /// Only rows before this `seq` (paging back from the newest).
    pub before_seq: Option<i64>,
    /// Only rows with a status in this range (both ends included).
    pub statuses: Option<(u16, u16)>,
    pub subject: Option<String>,
    pub resource_id: Option<String>,
}

/// One value an audit query compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditParam {
    Text(String),
    Int(i64),
}

impl AuditQuery {
    /// The query's conditions (each comparing a column with a parameter, `placeholder(n,
    /// value)` naming the n-th, from 1) and their values, in order: only those the query sets, so
    /// that each backend's planner sees plain comparisons it can use an index for.
    pub fn conditions(
        &self,
        placeholder: impl Fn(usize, &AuditParam) -> String,
    ) -> (String, Vec<AuditParam>) {
        let mut terms = Vec::new();
        let mut values = Vec::new();
        let mut add = |column: &str, op: &str, value: AuditParam| {
            terms.push(format!(
                "{column} {op} {}",
                placeholder(values.len() + 1, &value)
            ));
            values.push(value);
        };
        if let Some(t) = &self.tenant {
            add("tenant", "=", AuditParam::Text(t.clone()));
        }
        if let Some(id) = &self.resource_id {
            add("resource_id", "=", AuditParam::Text(id.clone()));
        }
        if let Some(s) = &self.since {
            add("at", ">=", AuditParam::Text(s.clone()));
        }
        if let Some(u) = &self.until {
            add("at", "<", AuditParam::Text(u.clone()));
        }
        if let Some(s) = &self.subject {
            add("subject", "=", AuditParam::Text(s.clone()));
        }
        if let Some((low, high)) = self.statuses {
            add("status", ">=", AuditParam::Int(i64::from(low)));
            add("status", "<=", AuditParam::Int(i64::from(high)));
        }
        if let Some(after) = self.after_seq {
            add("seq", ">", AuditParam::Int(after));
        }
        if let Some(before) = self.before_seq {
            add("seq", "<", AuditParam::Int(before));
        }
        let clause = if terms.is_empty() {
            "TRUE".to_owned()
        } else {
            terms.join(" AND ")
        };
        let limit = AuditParam::Int(i64::from(self.limit));
        let clause = format!(
            "{clause} ORDER BY seq {} LIMIT {}",
            if self.newest { "DESC" } else { "ASC" },
            placeholder(values.len() + 1, &limit)
        );
        values.push(limit);
        (clause, values)
    }
}

/// What a PATCH hands storage: new attributes (if any changed) and membership changes,
/// applied row by row.
pub struct PatchWrite {
    pub rt: ResourceType,
    pub expected_version: Option<i64>,
    pub new: Option<NewResource>,
    pub members: MemberChanges,
    pub skip_unknown_members: bool,
    /// What the change feed records of this PATCH (its operations as applied).
    pub change: ChangeNote,
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

/// What the change feed and the audit trail record of a write beyond what storage knows,
/// filled by the write pipeline from its report. Storage writes it, with what it knows (the
/// id, the version, the stored attributes), as the write's event and audit row, in the
/// write's own savepoint: a write acknowledged is never without either.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeNote {
    /// The attributes the write set, changed or removed (top-level names, as `notice`
    /// events list them).
    pub attributes: Vec<String>,
    /// A PATCH's operations as applied (after the dialect rules), without passwords.
    pub operations: Option<Value>,
    /// `Some(true)` when `active` went from false to true, `Some(false)` from true to false.
    pub activation: Option<bool>,
    /// The write's audit row, when it has one: storage fills in the time, the resource's
    /// id, the version written and (a PATCH's) members skipped (`ChangeNote::audit_row`).
    pub audit: Option<AuditRecord>,
}

impl ChangeNote {
    /// The write's audit row (when it carries one) as storage commits it: at `now`, of
    /// resource `id`, version `version` (none for a delete), naming the members a PATCH
    /// skipped as unknown.
    pub fn audit_row(
        &self,
        now: &str,
        id: &str,
        version: Option<i64>,
        skipped: &[String],
    ) -> Option<AuditRecord> {
        let draft = self.audit.as_ref()?;
        Some(AuditRecord {
            at: now.to_owned(),
            resource_id: Some(scimgate_model::excerpt(id, 128).into_owned()),
            version_after: version,
            detail: draft
                .detail
                .clone()
                .or_else(|| skipped_members_detail(skipped)),
            ..draft.clone()
        })
    }
}

/// What an audit row and the log say of the members a PATCH skipped: the ids are the
/// client's, so the first few in full, then how many more, whatever the client sent.
pub fn skipped_members_detail(skipped: &[String]) -> Option<String> {
    const SHOWN: usize = 10;
    if skipped.is_empty() {
        return None;
    }
    let shown: Vec<String> = skipped
        .iter()
        .take(SHOWN)
        .map(|id| scimgate_model::excerpt(id, 64).into_owned())
        .collect();
    let list = match skipped.len().saturating_sub(SHOWN) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    };
    Some(format!(
        "members that do not exist in the tenant were skipped: {list}"
    ))
}

/// Which write an event tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Replace,
    Patch,
    Delete,
}

impl ChangeKind {
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Replace => "replace",
            ChangeKind::Patch => "patch",
            ChangeKind::Delete => "delete",
        }
    }

    pub fn from_name(name: &str) -> Option<ChangeKind> {
        [
            ChangeKind::Create,
            ChangeKind::Replace,
            ChangeKind::Patch,
            ChangeKind::Delete,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// One event of the change feed: one committed write, as its outbox row keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub tenant: String,
    /// The event's place in its tenant's feed: 1, 2, 3, … without gaps.
    pub seq: i64,
    /// The write's transaction id, unique to it.
    pub txn: String,
    /// When the write was made (RFC 3339).
    pub at: String,
    pub kind: ChangeKind,
    pub resource_type: ResourceType,
    pub resource_id: String,
    pub external_id: Option<String>,
    /// The version stored; `None` for a delete.
    pub version: Option<i64>,
    /// The resource's creation time; `None` for a delete.
    pub created: Option<String>,
    pub activation: Option<bool>,
    pub attributes: Vec<String>,
    /// The attributes as stored (create, replace) or the operations as applied (patch).
    pub data: Option<Value>,
    /// A group's members as stored (create, replace): `value`, `type`, `display`.
    pub members: Option<Value>,
}

/// Where one consumer of the feed stands in one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPosition {
    pub consumer: String,
    pub tenant: String,
    /// The last event delivered or acknowledged (0: none yet).
    pub seq: i64,
    pub updated: String,
    /// `active`, or `dead` once it failed for longer than its receiver allows.
    pub state: String,
    pub failing_since: Option<String>,
    pub last_error: Option<String>,
}

/// A consumer whose position keeps events from being pruned: a configured receiver, in
/// the tenants it follows (`None`: every tenant).
#[derive(Debug, Clone, PartialEq)]
pub struct EventHold {
    pub consumer: String,
    pub tenants: Option<Vec<String>>,
}
