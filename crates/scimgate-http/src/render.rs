//! Stored resources rendered as SCIM JSON: `schemas`, `id`, attributes, computed
//! `members`/`groups`, and `meta` with an absolute `location` and the weak ETag.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use scimgate_model::projection::{Fate, Projection};
use scimgate_model::validate::{schema_urns, schema_urns_of};
use scimgate_model::{ResourceType, ScimError};
use scimgate_store::{GroupRef, MemberRef, StoreError, StoredDocument, StoredResource};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::error::SCIM_JSON;
use crate::etag::etag;
use crate::settings::HttpSettings;

/// The absolute URL of `/scim/v2`: the configured public base, else the request's own
/// scheme and `Host`. `Forwarded` and `X-Forwarded-Host`/`-Proto` count only when the peer
/// is a trusted proxy; from anyone else they are ignored.
pub fn scim_base(req: &HttpRequest, settings: &HttpSettings) -> String {
    if let Some(base) = &settings.public_base_url {
        return format!("{}/scim/v2", base.trim_end_matches('/'));
    }
    if settings.network.peer_is_trusted_proxy(req) {
        let info = req.connection_info();
        let host = Some(info.host())
            .filter(|h| plausible_host(h))
            .unwrap_or_else(|| req.app_config().host());
        return format!("{}://{host}/scim/v2", info.scheme());
    }
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| plausible_host(h))
        .unwrap_or_else(|| req.app_config().host());
    format!("{scheme}://{host}/scim/v2")
}

/// A host (and port) as DNS and URLs allow: at most 255 bytes of letters, digits and
/// `.-:[]`. The base is repeated in every `$ref` and `location` of a response, so a client's
/// 60 KB `Host` header would otherwise multiply a group's size by a thousand.
fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

pub fn location(base: &str, rt: ResourceType, id: &str) -> String {
    format!("{base}/{}/{id}", rt.endpoint())
}

/// A copy of a resource's SCIM JSON, leaving the resource as it was.
pub fn resource_json(r: &StoredResource, base: &str) -> Map<String, Value> {
    into_resource_json(r.clone(), base)
}

/// A resource's SCIM JSON, made from the resource itself: its attributes move into the
/// document rather than being copied.
pub fn into_resource_json(r: StoredResource, base: &str) -> Map<String, Value> {
    let meta = meta_json(&r, base);
    let mut out = Map::with_capacity(r.attributes.len() + 5);
    out.insert(
        "schemas".into(),
        json!(schema_urns(r.resource_type, &r.attributes)),
    );
    out.insert("id".into(), Value::String(r.id.clone()));
    out.extend(r.attributes);
    if let Some(members) = r.members.as_deref().filter(|m| !m.is_empty()) {
        out.insert("members".into(), members_json(members, base));
    }
    if let Some(groups) = r.groups.as_deref().filter(|g| !g.is_empty()) {
        out.insert("groups".into(), groups_json(groups, base));
    }
    out.insert("meta".into(), meta);
    out
}

fn members_json(members: &[MemberRef], base: &str) -> Value {
    members
        .iter()
        .map(|m| {
            json!({
                "value": m.value,
                "$ref": location(base, m.member_type, &m.value),
                "type": m.member_type.name(),
                "display": m.display,
            })
        })
        .collect()
}

fn groups_json(groups: &[GroupRef], base: &str) -> Value {
    groups
        .iter()
        .map(|g| {
            json!({
                "value": g.value,
                "$ref": location(base, ResourceType::Group, &g.value),
                "display": g.display,
                "type": "direct",
            })
        })
        .collect()
}

fn meta_json<A>(r: &StoredResource<A>, base: &str) -> Value {
    json!({
        "resourceType": r.resource_type.name(),
        "created": r.created,
        "lastModified": r.last_modified,
        "location": location(base, r.resource_type, &r.id),
        "version": etag(r.version),
    })
}

/// A resource's JSON text, projected: what a response carries. A group of many members is
/// megabytes, so callers with large resources run this on a blocking thread.
pub fn resource_text(r: StoredResource, base: &str, projection: &Projection) -> String {
    let mut body = into_resource_json(r, base);
    projection.apply(&mut body);
    json_text(&Value::Object(body), 1024)
}

/// What [`resource_text`] writes for a resource, written from its stored text: each
/// attribute the projection keeps whole is copied as stored (the same serialiser wrote
/// it), and one it leaves out is skipped, so neither is parsed into a tree and written
/// again. Only an attribute the projection cuts into (`name.givenName`) is parsed. Stored
/// text that is not a plain object of distinct attributes goes the parsed way (and is
/// reported corrupt there when it does not parse).
pub fn document_text(
    doc: StoredDocument,
    base: &str,
    projection: &Projection,
) -> Result<String, StoreError> {
    let mut text = Vec::with_capacity(document_size(&doc));
    write_document(doc, base, projection, &mut text)?;
    Ok(json_string(text))
}

/// About how many bytes [`write_document`] writes for `doc`: its stored text, `meta`, and
/// its members or groups with their `$ref`s.
pub fn document_size(doc: &StoredDocument) -> usize {
    let relations = doc.members.iter().flatten().count() + doc.groups.iter().flatten().count();
    doc.attributes.len() + 384 + relations * 160
}

/// [`document_text`] appended to `out`.
pub fn write_document(
    doc: StoredDocument,
    base: &str,
    projection: &Projection,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let Some(stored) = StoredAttributes::read(&doc.attributes) else {
        out.extend_from_slice(resource_text(doc.parse()?, base, projection).as_bytes());
        return Ok(());
    };
    let mut entries = Entries::open(out);
    entries.value(projection, "schemas", || {
        json!(schema_urns_of(doc.resource_type, |key| stored.has(key)))
    });
    entries.value(projection, "id", || Value::String(doc.id.clone()));
    for (key, text) in &stored.0 {
        entries.stored(projection, key, text)?;
    }
    if let Some(members) = doc.members.as_deref().filter(|m| !m.is_empty()) {
        entries.value(projection, "members", || members_json(members, base));
    }
    if let Some(groups) = doc.groups.as_deref().filter(|g| !g.is_empty()) {
        entries.value(projection, "groups", || groups_json(groups, base));
    }
    match projection.fate("meta") {
        Fate::Dropped => {}
        Fate::Kept => entries.meta(&doc, base),
        Fate::Projected => entries.projected(projection, "meta", meta_json(&doc, base)),
    }
    entries.close();
    Ok(())
}

/// The top-level attributes of a resource's stored text, each value still its text.
/// The keys are borrowed, so a key written with an escape (no schema names one so) does not
/// read, and the text goes the parsed way.
struct StoredAttributes<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'a> StoredAttributes<'a> {
    /// Keys that rendering adds itself: stored text holding one of them would have it
    /// replaced in place, which the parsed way does.
    const RENDERED: [&'static str; 5] = ["schemas", "id", "members", "groups", "meta"];

    fn read(text: &'a str) -> Option<Self> {
        let read: StoredAttributes<'a> = serde_json::from_str(text).ok()?;
        let mut keys: Vec<&str> = read.0.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        let repeated = keys.windows(2).any(|w| w[0] == w[1]);
        let rendered = keys.iter().any(|k| Self::RENDERED.contains(k));
        (!repeated && !rendered).then_some(read)
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| *k == key)
    }
}

impl<'de> Deserialize<'de> for StoredAttributes<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = StoredAttributes<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(key) = map.next_key::<&'de str>()? {
                    entries.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(StoredAttributes(entries))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// A JSON object written member by member, each as the projection has it.
struct Entries<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Entries<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Entries { out, empty: true }
    }

    fn close(self) {
        self.out.push(b'}');
    }

    /// Writes `"key":`. Keys are written as they are: each is a schema's attribute name or a
    /// stored key read without escapes, so it holds no character JSON escapes and the
    /// serialiser would write it the same.
    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn string(&mut self, value: &str) {
        // Writing a string into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *self.out, value);
    }

    /// A member given as a value, built only when the projection keeps some of it.
    fn value(&mut self, projection: &Projection, key: &str, value: impl FnOnce() -> Value) {
        match projection.fate(key) {
            Fate::Dropped => {}
            Fate::Kept => {
                self.key(key);
                let _ = serde_json::to_writer(&mut *self.out, &value());
            }
            Fate::Projected => self.projected(projection, key, value()),
        }
    }

    /// A member the projection cuts into: what is left of it, if anything.
    fn projected(&mut self, projection: &Projection, key: &str, value: Value) {
        let mut alone = Map::with_capacity(1);
        alone.insert(key.to_owned(), value);
        projection.apply(&mut alone);
        if let Some(left) = alone.get(key) {
            self.key(key);
            let _ = serde_json::to_writer(&mut *self.out, left);
        }
    }

    /// A member given as its stored text.
    fn stored(
        &mut self,
        projection: &Projection,
        key: &str,
        text: &RawValue,
    ) -> Result<(), StoreError> {
        match projection.fate(key) {
            Fate::Dropped => {}
            Fate::Kept => {
                self.key(key);
                self.out.extend_from_slice(text.get().as_bytes());
            }
            Fate::Projected => {
                let value: Value = serde_json::from_str(text.get())
                    .map_err(|e| StoreError::Corrupt(format!("attribute '{key}': {e}")))?;
                self.projected(projection, key, value);
            }
        }
        Ok(())
    }

    /// `meta` whole, written as [`meta_json`] would be without building it.
    fn meta<A>(&mut self, r: &StoredResource<A>, base: &str) {
        self.key("meta");
        let mut meta = Entries::open(self.out);
        meta.key("resourceType");
        meta.string(r.resource_type.name());
        meta.key("created");
        meta.string(&r.created);
        meta.key("lastModified");
        meta.string(&r.last_modified);
        meta.key("location");
        meta.string(&location(base, r.resource_type, &r.id));
        meta.key("version");
        meta.string(&etag(r.version));
        meta.close();
    }
}

/// A document's JSON text, written into a buffer of `capacity` bytes at once (what the
/// text and anything appended to it will need) rather than grown, and copied, step by
/// step from empty. Written as bytes: `Display` (`write!`, `to_string`) passes every token
/// through a `fmt::Formatter` into the `String`, which was 6 % of the samples of a sorted
/// page of 100 users.
pub fn json_text(doc: &Value, capacity: usize) -> String {
    let mut bytes = Vec::with_capacity(capacity);
    // Serialising a `Value` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut bytes, doc);
    json_string(bytes)
}

/// JSON text written as bytes, as a `String`: written by `serde_json` and from JSON text,
/// it is UTF-8 (were it not, the bad bytes would be replaced rather than panic).
pub fn json_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A single-resource response with `ETag` (and `Location` on 201).
pub fn resource_response(
    status: StatusCode,
    r: StoredResource,
    base: &str,
    projection: &Projection,
) -> HttpResponse {
    let version = r.version;
    let created_at =
        (status == StatusCode::CREATED).then(|| location(base, r.resource_type, &r.id));
    let body = resource_text(r, base, projection);
    resource_response_text(status, version, created_at, body)
}

/// Like [`resource_response`], with the body already rendered: the resource's version for
/// the `ETag`, and on 201 its location.
pub fn resource_response_text(
    status: StatusCode,
    version: i64,
    created_at: Option<String>,
    body: String,
) -> HttpResponse {
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CONTENT_TYPE, SCIM_JSON))
        .insert_header((header::ETAG, etag(version)));
    if let Some(at) = created_at {
        resp.insert_header((header::LOCATION, at));
    }
    resp.body(body)
}

/// Any other SCIM JSON document.
pub fn scim_json(status: StatusCode, body: &Value) -> HttpResponse {
    scim_json_text(status, body.to_string())
}

/// A SCIM JSON document already serialised (off the async workers, for large ones).
pub fn scim_json_text(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, SCIM_JSON))
        .body(body)
}

/// Parses the projection parameters of a request for `rt`.
pub fn projection(
    rt: ResourceType,
    query: &crate::query::QueryParams,
) -> Result<Projection, ScimError> {
    Projection::parse(rt, query.get("attributes"), query.get("excludedAttributes"))
}

#[cfg(test)]
mod tests {
    use scimgate_model::schemas::ENTERPRISE_USER_URN;

    use super::*;

    fn document(rt: ResourceType, attributes: Value) -> StoredDocument {
        StoredResource {
            id: "0193c0de-0000-7000-8000-000000000001".into(),
            resource_type: rt,
            attributes: attributes.to_string(),
            version: 3,
            created: "2026-11-30T10:00:00Z".into(),
            last_modified: "2026-11-30T11:00:00Z".into(),
            members: None,
            groups: None,
        }
    }

    fn user() -> StoredDocument {
        let mut doc = document(
            ResourceType::User,
            json!({
                "userName": "bjensen@example.com",
                "name": {"givenName": "Barbara", "familyName": "Jensen \"BJ\" \u{e9}\u{1}\n"},
                "emails": [{"value": "b@x", "type": "work", "primary": true}, {"value": "c@x"}],
                "active": true,
                "x509Certificates": [{"value": "MIIC"}],
                ENTERPRISE_USER_URN: {"department": "R&D", "employeeNumber": "7",
                    "manager": {"value": "m1"}},
            }),
        );
        doc.groups = Some(vec![GroupRef {
            value: "g1".into(),
            display: "Staff <all>".into(),
        }]);
        doc
    }

    fn group() -> StoredDocument {
        let mut doc = document(ResourceType::Group, json!({"displayName": "Staff"}));
        doc.members = Some(vec![MemberRef {
            value: "u1".into(),
            member_type: ResourceType::User,
            display: "Barbara".into(),
        }]);
        doc
    }

    /// Rendered from the stored text, a resource is byte for byte what rendering its parsed
    /// form gives, under every way of asking for it.
    #[test]
    fn stored_text_renders_as_the_parsed_form_does() {
        let base = "https://scim.example.com/scim/v2";
        let asked: [(Option<&str>, Option<&str>); 12] = [
            (None, None),
            (Some("userName"), None),
            (Some("name.givenName,emails.value,meta.created"), None),
            (Some(ENTERPRISE_USER_URN), None),
            (
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"),
                None,
            ),
            (Some("groups.display,members"), None),
            (Some("displayName"), None),
            (None, Some("emails,groups,id,schemas")),
            (None, Some("name.familyName,meta.location,members.display")),
            (None, Some(ENTERPRISE_USER_URN)),
            (None, Some("meta")),
            (Some("nothing.known"), Some("userName")),
        ];
        for doc in [user(), group()] {
            for (a, e) in asked {
                let p = Projection::parse(doc.resource_type, a, e).expect("projection");
                let parsed = resource_text(doc.clone().parse().expect("parse"), base, &p);
                let from_text = document_text(doc.clone(), base, &p).expect("render");
                assert_eq!(
                    from_text, parsed,
                    "{:?} under {a:?} {e:?}",
                    doc.resource_type
                );
            }
        }
    }

    /// Stored text that rendering could not copy member by member goes the parsed way: a key
    /// rendering adds itself, a key written with an escape, a repeated key; text that does
    /// not parse is reported corrupt.
    #[test]
    fn odd_stored_text_goes_the_parsed_way() {
        let base = "http://h/scim/v2";
        let p = Projection::parse(ResourceType::User, None, None).expect("projection");
        let mut doc = user();
        doc.attributes = r#"{"userName":"a","meta":{"x":1},"id":"other"}"#.into();
        let parsed = resource_text(doc.clone().parse().expect("parse"), base, &p);
        assert_eq!(
            document_text(doc.clone(), base, &p).expect("render"),
            parsed
        );
        doc.attributes = r#"{"user\u004eame":"a","title":"\u0041"}"#.into();
        let parsed = resource_text(doc.clone().parse().expect("parse"), base, &p);
        assert_eq!(
            document_text(doc.clone(), base, &p).expect("render"),
            parsed
        );
        doc.attributes = r#"{"userName":"a","userName":"b"}"#.into();
        let parsed = resource_text(doc.clone().parse().expect("parse"), base, &p);
        assert_eq!(
            document_text(doc.clone(), base, &p).expect("render"),
            parsed
        );
        assert!(parsed.contains(r#""userName":"b""#), "{parsed}");
        doc.attributes = r#"{"userName":"#.into();
        assert!(matches!(
            document_text(doc, base, &p),
            Err(StoreError::Corrupt(_))
        ));
    }
}
