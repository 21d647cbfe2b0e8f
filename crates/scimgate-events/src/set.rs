//! An event as RFC 9967 says a SCIM service provider tells it: one Security Event Token per
//! committed write, whose `events` hold the write's provisioning event (`create`, `put`,
//! `patch`, each `full` or `notice`, or `delete`) and, when the write flipped `active`, an
//! `activate` or `deactivate` event too (RFC 9967 §2.1: several events in one SET arise
//! from one state change of one resource).
//!
//! Choices RFC 9967 leaves open, made here (docs/events.md says the same):
//! - `full` create and put events carry the resource as stored, as a GET would return it
//!   (RFC 9967 §2.4: "the final representation"), never `password`; a `full` patch event
//!   carries the operations as applied (RFC 9967 Figure 6), after the dialect rules and
//!   without passwords; `notice` events carry the names of the attributes the write set,
//!   changed or removed.
//! - `version` is the weak ETag a GET returns (`W/"3"`).
//! - `sub_id` carries `uri` (relative to the SCIM base, RFC 9967 §2.1), `id` and, when the
//!   resource has one, `externalId`.
//! - `txn` is the write's own id, the same for every receiver and every retry; `jti` is
//!   unique to the event and the audience and the same on every retry, so a receiver can
//!   drop a duplicate by it; `iat` and `toe` are the time of the write.
//! - Two claims of scimgate's own: `tenant` and `seq` (the event's place in its tenant's
//!   feed: 1, 2, 3, … without gaps), for receivers that follow several tenants or check
//!   that none is missing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use scimgate_model::ResourceType;
use scimgate_model::validate::schema_urns;
use scimgate_store::{ChangeKind, EventRecord};
use serde_json::{Map, Value, json};

const URN: &str = "urn:ietf:params:scim:event:prov:";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// What a receiver asked to be told: the whole change, or which attributes changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Full,
    Notice,
}

/// Every poll and stream consumer's `aud` starts so (`consumer:` and its cursor's
/// subject); no push receiver's `audience` may, so that a consumer can never be handed a
/// SET a receiver would take as its own.
pub const CONSUMER_AUDIENCE: &str = "consumer:";

/// Who an event is rendered for.
#[derive(Debug, Clone)]
pub struct Audience<'a> {
    /// `iss`: the feed's issuer.
    pub issuer: &'a str,
    /// `aud`: the receiver.
    pub audience: &'a str,
    pub mode: Mode,
    /// The SCIM base URL for `meta.location` in `full` data, when known.
    pub base_url: Option<&'a str>,
}

/// Every event URI the feed may send, for ServiceProviderConfig's `securityEvents`.
pub fn event_uris() -> Vec<String> {
    [
        "create:full",
        "create:notice",
        "put:full",
        "put:notice",
        "patch:full",
        "patch:notice",
        "delete",
        "activate",
        "deactivate",
    ]
    .iter()
    .map(|name| format!("{URN}{name}"))
    .collect()
}

/// The SET claims of `event` for `to`.
pub fn render(event: &EventRecord, to: &Audience<'_>) -> Value {
    let path = format!("/{}/{}", event.resource_type.endpoint(), event.resource_id);
    let mut sub_id = json!({"format": "scim", "uri": path, "id": event.resource_id});
    if let Some(external_id) = &event.external_id {
        sub_id["externalId"] = json!(external_id);
    }
    let mut events = Map::new();
    let (name, payload) = provisioning_event(event, to);
    events.insert(format!("{URN}{name}"), payload);
    match event.activation {
        Some(true) => {
            events.insert(format!("{URN}activate"), json!({}));
        }
        Some(false) => {
            events.insert(format!("{URN}deactivate"), json!({}));
        }
        None => {}
    }
    let at = unix_time(&event.at);
    json!({
        "iss": to.issuer,
        "aud": to.audience,
        "iat": at,
        "toe": at,
        "jti": jti(event, to.audience),
        "txn": event.txn,
        "sub_id": sub_id,
        "events": events,
        "tenant": event.tenant,
        "seq": event.seq,
    })
}

/// `<seq>.<digest>`: unique to the event (its `txn`) and the audience, the same on every
/// retry; the sequence number first, so that an acknowledgement names its place (and is
/// checked against the event it names: a consumer acknowledges only what it was sent).
pub fn jti(event: &EventRecord, audience: &str) -> String {
    let input = format!("{}\n{}", event.txn, audience);
    let digest = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
    format!(
        "{}.{}",
        event.seq,
        URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12])
    )
}

/// The provisioning event's name (after `prov:`) and payload.
fn provisioning_event(event: &EventRecord, to: &Audience<'_>) -> (&'static str, Value) {
    let version = event.version.map(|v| format!("W/\"{v}\""));
    let (full, notice) = match event.kind {
        ChangeKind::Delete => return ("delete", json!({})),
        ChangeKind::Create => ("create:full", "create:notice"),
        ChangeKind::Replace => ("put:full", "put:notice"),
        ChangeKind::Patch => ("patch:full", "patch:notice"),
    };
    let mut payload = Map::new();
    if let Some(version) = version {
        payload.insert("version".into(), json!(version));
    }
    match to.mode {
        Mode::Notice => {
            payload.insert("attributes".into(), json!(event.attributes));
            (notice, Value::Object(payload))
        }
        Mode::Full => {
            let data = match event.kind {
                ChangeKind::Patch => json!({
                    "schemas": [PATCH_OP],
                    "Operations": event.data.clone().unwrap_or_else(|| json!([])),
                }),
                _ => Value::Object(resource(event, to.base_url)),
            };
            payload.insert("data".into(), data);
            (full, Value::Object(payload))
        }
    }
}

/// The resource as stored, as a GET returns it (without a user's computed `groups`).
fn resource(event: &EventRecord, base_url: Option<&str>) -> Map<String, Value> {
    let mut attributes = match &event.data {
        Some(Value::Object(attributes)) => attributes.clone(),
        _ => Map::new(),
    };
    let rt = event.resource_type;
    scimgate_model::change::without_never_returned(rt, &mut attributes);
    let mut out = Map::new();
    out.insert("schemas".into(), json!(schema_urns(rt, &attributes)));
    out.insert("id".into(), json!(event.resource_id));
    out.extend(attributes.into_iter().filter(|(k, _)| k != "schemas"));
    if let Some(Value::Array(members)) = &event.members
        && !members.is_empty()
    {
        let members = members.iter().map(|m| member(m, base_url)).collect();
        out.insert("members".into(), Value::Array(members));
    }
    let mut meta = json!({
        "resourceType": rt.name(),
        "created": event.created.as_deref().unwrap_or(&event.at),
        "lastModified": event.at,
        "version": event.version.map(|v| format!("W/\"{v}\"")),
    });
    if let Some(base) = base_url {
        meta["location"] = json!(format!(
            "{}/{}/{}",
            base.trim_end_matches('/'),
            rt.endpoint(),
            event.resource_id
        ));
    }
    out.insert("meta".into(), meta);
    out
}

fn member(m: &Value, base_url: Option<&str>) -> Value {
    let mut out = Map::new();
    for key in ["value", "type"] {
        if let Some(v) = m.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let (Some(base), Some(value)) = (base_url, m.get("value").and_then(Value::as_str)) {
        let endpoint = match m.get("type").and_then(Value::as_str) {
            Some("Group") => ResourceType::Group.endpoint(),
            _ => ResourceType::User.endpoint(),
        };
        out.insert(
            "$ref".into(),
            json!(format!("{}/{endpoint}/{value}", base.trim_end_matches('/'))),
        );
    }
    if let Some(display) = m.get("display").filter(|d| d.as_str() != Some("")) {
        out.insert("display".into(), display.clone());
    }
    Value::Object(out)
}

/// Seconds since the Unix epoch of an RFC 3339 time (0 if it cannot be read, which the
/// store never writes).
fn unix_time(at: &str) -> i64 {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: ChangeKind, activation: Option<bool>) -> EventRecord {
        let (data, version) = match kind {
            ChangeKind::Delete => (None, None),
            ChangeKind::Patch => (
                Some(json!([{"op": "replace", "path": "active", "value": false}])),
                Some(4),
            ),
            _ => (
                Some(json!({"userName": "bjensen", "active": true, "externalId": "bj"})),
                Some(1),
            ),
        };
        EventRecord {
            tenant: "acme".into(),
            seq: 7,
            txn: "t-1".into(),
            at: "2026-05-01T10:00:00.5Z".into(),
            kind,
            resource_type: ResourceType::User,
            resource_id: "u1".into(),
            external_id: Some("bj".into()),
            version,
            created: Some("2026-04-01T00:00:00Z".into()),
            activation,
            attributes: vec!["userName".into(), "active".into()],
            data,
            members: None,
        }
    }

    fn to(mode: Mode) -> Audience<'static> {
        Audience {
            issuer: "https://scim.example.com",
            audience: "https://hr.example.com/events",
            mode,
            base_url: Some("https://scim.example.com/scim/v2"),
        }
    }

    #[test]
    fn each_write_becomes_its_rfc_9967_events() {
        // (write, activation, mode, the event URIs, in order)
        let rows: Vec<(ChangeKind, Option<bool>, Mode, Vec<&str>)> = vec![
            (ChangeKind::Create, None, Mode::Full, vec!["create:full"]),
            (
                ChangeKind::Create,
                None,
                Mode::Notice,
                vec!["create:notice"],
            ),
            (ChangeKind::Replace, None, Mode::Full, vec!["put:full"]),
            (
                ChangeKind::Replace,
                Some(true),
                Mode::Notice,
                vec!["put:notice", "activate"],
            ),
            (
                ChangeKind::Patch,
                Some(false),
                Mode::Full,
                vec!["patch:full", "deactivate"],
            ),
            (ChangeKind::Patch, None, Mode::Notice, vec!["patch:notice"]),
            (ChangeKind::Delete, None, Mode::Full, vec!["delete"]),
            (ChangeKind::Delete, None, Mode::Notice, vec!["delete"]),
        ];
        for (kind, activation, mode, uris) in rows {
            let set = render(&event(kind, activation), &to(mode));
            let got: Vec<String> = set["events"]
                .as_object()
                .expect("events")
                .keys()
                .cloned()
                .collect();
            let want: Vec<String> = uris.iter().map(|u| format!("{URN}{u}")).collect();
            assert_eq!(got, want, "{kind:?} {activation:?} {mode:?}");
            for uri in &got {
                assert!(event_uris().contains(uri), "{uri} is advertised");
            }
            assert_eq!(set["sub_id"]["uri"], "/Users/u1");
            assert_eq!(set["sub_id"]["format"], "scim");
            assert_eq!(set["sub_id"]["externalId"], "bj");
            assert_eq!(
                (set["tenant"].clone(), set["seq"].clone()),
                (json!("acme"), json!(7))
            );
            assert_eq!(set["txn"], "t-1");
            assert_eq!(set["iat"], 1_777_629_600);
        }
    }

    #[test]
    fn full_notice_and_delete_payloads() {
        let created = render(&event(ChangeKind::Create, None), &to(Mode::Full));
        let payload = &created["events"][format!("{URN}create:full")];
        assert_eq!(payload["version"], "W/\"1\"");
        let data = &payload["data"];
        assert_eq!(data["id"], "u1");
        assert_eq!(data["userName"], "bjensen");
        assert_eq!(
            data["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
        );
        assert_eq!(data["meta"]["version"], "W/\"1\"");
        assert_eq!(
            data["meta"]["location"],
            "https://scim.example.com/scim/v2/Users/u1"
        );
        assert_eq!(data["meta"]["created"], "2026-04-01T00:00:00Z");

        let patched = render(&event(ChangeKind::Patch, Some(false)), &to(Mode::Full));
        let data = &patched["events"][format!("{URN}patch:full")]["data"];
        assert_eq!(data["schemas"], json!([PATCH_OP]));
        assert_eq!(data["Operations"][0]["path"], "active");

        let notice = render(&event(ChangeKind::Replace, None), &to(Mode::Notice));
        let payload = &notice["events"][format!("{URN}put:notice")];
        assert_eq!(payload["attributes"], json!(["userName", "active"]));
        assert!(payload.get("data").is_none(), "notice carries no data");

        let deleted = render(&event(ChangeKind::Delete, None), &to(Mode::Full));
        assert_eq!(deleted["events"][format!("{URN}delete")], json!({}));
    }

    #[test]
    fn jti_is_the_same_on_a_retry_and_differs_by_audience() {
        let e = event(ChangeKind::Create, None);
        let a = render(&e, &to(Mode::Full));
        assert_eq!(a["jti"], render(&e, &to(Mode::Full))["jti"]);
        let other = Audience {
            audience: "https://ldap-sync.example.com",
            ..to(Mode::Full)
        };
        assert_ne!(a["jti"], render(&e, &other)["jti"]);
        assert!(a["jti"].as_str().unwrap_or_default().starts_with("7."));
    }
}
