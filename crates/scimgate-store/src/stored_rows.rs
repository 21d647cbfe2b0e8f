//! Rows as both backends read and write them, free of either's types: a resource's and an
//! event's columns turned into records, an event's columns computed from a write, and how
//! far a tenant's events may be pruned. Each backend binds and reads the columns; what
//! they mean is decided once here.

use scimgate_model::ResourceType;
use serde_json::{Map, Value};

use crate::error::StoreError;
use crate::records::{
    ChangeKind, ChangeNote, EventHold, EventPosition, EventRecord, MemberRef, NewResource,
    StoredDocument, StoredResource,
};

/// The resource type named by a `resource_type` column.
pub fn parse_type(s: &str) -> Result<ResourceType, StoreError> {
    ResourceType::from_name(s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown resource type '{s}'")))
}

/// A resource's columns as stored (`id, resource_type, attributes, version, created,
/// last_modified`).
pub struct ResourceColumns {
    pub id: String,
    pub resource_type: String,
    pub attributes: String,
    pub version: i64,
    pub created: String,
    pub last_modified: String,
}

impl ResourceColumns {
    /// The resource with its attributes left as their stored text.
    pub fn into_document(self) -> Result<StoredDocument, StoreError> {
        Ok(StoredResource {
            resource_type: parse_type(&self.resource_type)?,
            attributes: self.attributes,
            version: self.version,
            created: self.created,
            last_modified: self.last_modified,
            members: None,
            groups: None,
            id: self.id,
        })
    }
}

/// What a write tells the outbox, besides its `ChangeNote`.
pub struct Appended<'a> {
    pub kind: ChangeKind,
    pub resource_type: ResourceType,
    pub id: &'a str,
    pub external_id: Option<&'a str>,
    pub version: Option<i64>,
    pub created: Option<&'a str>,
    /// The attributes as stored, as their JSON text (create, replace).
    pub attributes_json: Option<&'a str>,
    /// A group's members as stored (create, replace).
    pub members: Option<&'a [MemberRef]>,
    pub note: &'a ChangeNote,
}

impl<'a> Appended<'a> {
    /// The event of a create or replace: version `version` of `new` stored under `id`,
    /// with its attributes' JSON text and (a group's) members as stored.
    pub fn written(
        kind: ChangeKind,
        new: &'a NewResource,
        id: &'a str,
        (version, created): (i64, &'a str),
        attributes_json: &'a str,
        members: &'a [MemberRef],
    ) -> Self {
        Appended {
            kind,
            resource_type: new.resource_type,
            id,
            external_id: new.external_id.as_deref(),
            version: Some(version),
            created: Some(created),
            attributes_json: Some(attributes_json),
            members: (new.resource_type == ResourceType::Group).then_some(members),
            note: &new.change,
        }
    }

    /// The event of a delete.
    pub fn deleted(
        resource_type: ResourceType,
        id: &'a str,
        external_id: Option<&'a str>,
        note: &'a ChangeNote,
    ) -> Self {
        Appended {
            kind: ChangeKind::Delete,
            resource_type,
            id,
            external_id,
            version: None,
            created: None,
            attributes_json: None,
            members: None,
            note,
        }
    }

    /// The event of a PATCH that left `resource` as it is now.
    pub fn patched(resource: &'a StoredResource, note: &'a ChangeNote) -> Self {
        Appended {
            kind: ChangeKind::Patch,
            resource_type: resource.resource_type,
            id: &resource.id,
            external_id: resource
                .attributes
                .get("externalId")
                .and_then(|v| v.as_str()),
            version: Some(resource.version),
            created: Some(&resource.created),
            attributes_json: None,
            members: None,
            note,
        }
    }
}

/// A resource as a create stores it: version 1, created and modified `now`, a group with
/// its members, a user with no groups yet.
pub fn created_resource(
    resource_type: ResourceType,
    attributes: Map<String, Value>,
    id: String,
    now: &str,
    members: Vec<MemberRef>,
) -> StoredResource {
    let is_group = resource_type == ResourceType::Group;
    StoredResource {
        id,
        resource_type,
        attributes,
        version: 1,
        created: now.to_owned(),
        last_modified: now.to_owned(),
        members: is_group.then_some(members),
        groups: (!is_group).then(Vec::new),
    }
}

impl Appended<'_> {
    /// The `data` column: a PATCH's operations, else the attributes as stored.
    pub fn data(&self) -> Option<String> {
        match (&self.note.operations, self.attributes_json) {
            (Some(operations), _) => Some(operations.to_string()),
            (None, Some(json)) => Some(json.to_owned()),
            (None, None) => None,
        }
    }

    /// The `members` column: each member's value, type and display.
    pub fn members_json(&self) -> Option<String> {
        self.members.map(|members| {
            Value::Array(
                members
                    .iter()
                    .map(|m| {
                        serde_json::json!({"value": m.value, "type": m.member_type.name(), "display": m.display})
                    })
                    .collect(),
            )
            .to_string()
        })
    }

    /// The `attributes` column: the names the write set, changed or removed.
    pub fn attributes_names(&self) -> String {
        serde_json::to_string(&self.note.attributes).unwrap_or_else(|_| "[]".into())
    }
}

/// A new resource's id: a UUID of version 7, whose leading bits are its creation time, so
/// that the indexes keyed by id (the resources' own, the audit trail's by resource) grow
/// at their end, as `seq` does, instead of each create dirtying a random page of each.
/// Still an opaque UUID to clients (access never rests on an id being unguessed).
pub fn new_resource_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new transaction id for an event (RFC 9967 `txn`).
pub fn new_txn() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An event's columns as stored.
pub struct EventColumns {
    pub tenant: String,
    pub seq: i64,
    pub txn: String,
    pub at: String,
    pub operation: String,
    pub resource_type: String,
    pub resource_id: String,
    pub external_id: Option<String>,
    pub version: Option<i64>,
    pub created: Option<String>,
    pub activation: Option<bool>,
    pub attributes: String,
    pub data: Option<String>,
    pub members: Option<String>,
}

impl EventColumns {
    pub fn into_record(self) -> Result<EventRecord, StoreError> {
        let json = |text: Option<String>| {
            text.map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("an event's JSON: {e}")))
        };
        Ok(EventRecord {
            kind: ChangeKind::from_name(&self.operation).ok_or_else(|| {
                StoreError::Corrupt(format!("unknown operation '{}'", self.operation))
            })?,
            resource_type: parse_type(&self.resource_type)?,
            attributes: serde_json::from_str(&self.attributes)
                .map_err(|e| StoreError::Corrupt(format!("an event's attributes: {e}")))?,
            data: json(self.data)?,
            members: json(self.members)?,
            tenant: self.tenant,
            seq: self.seq,
            txn: self.txn,
            at: self.at,
            resource_id: self.resource_id,
            external_id: self.external_id,
            version: self.version,
            created: self.created,
            activation: self.activation,
        })
    }
}

/// The last event of `tenant` that may be pruned: the lowest position of every hold that
/// follows the tenant (0 for one with no position yet) and of every cursor in it.
pub fn prune_bound(positions: &[EventPosition], holds: &[EventHold], tenant: &str) -> i64 {
    let at = |consumer: &str| {
        positions
            .iter()
            .find(|p| p.consumer == consumer && p.tenant == tenant)
            .map_or(0, |p| p.seq)
    };
    let held = holds
        .iter()
        .filter(|h| {
            h.tenants
                .as_ref()
                .is_none_or(|ts| ts.iter().any(|t| t == tenant))
        })
        .map(|h| at(&h.consumer));
    let cursors = positions
        .iter()
        .filter(|p| p.tenant == tenant && crate::records::is_cursor(&p.consumer))
        .map(|p| p.seq);
    held.chain(cursors).min().unwrap_or(i64::MAX)
}

/// Takes `attribute` out of extension `urn` of `attrs` (names compared
/// case-insensitively); whether it was there.
pub fn remove_extension_attribute(
    attrs: &mut Map<String, Value>,
    urn: &str,
    attribute: &str,
) -> bool {
    let Some(key) = attrs.keys().find(|k| k.eq_ignore_ascii_case(urn)).cloned() else {
        return false;
    };
    let Some(Value::Object(ext)) = attrs.get_mut(&key) else {
        return false;
    };
    let Some(name) = ext
        .keys()
        .find(|k| k.eq_ignore_ascii_case(attribute))
        .cloned()
    else {
        return false;
    };
    ext.remove(&name);
    if ext.is_empty() {
        attrs.remove(&key);
    }
    true
}
