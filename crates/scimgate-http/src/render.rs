//! Stored resources rendered as SCIM JSON: `schemas`, `id`, attributes, computed
//! `members`/`groups`, and `meta` with an absolute `location` and the weak ETag.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use scimgate_model::projection::Projection;
use scimgate_model::validate::schema_urns;
use scimgate_model::{ResourceType, ScimError};
use scimgate_store::StoredResource;
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
    let mut out = Map::with_capacity(r.attributes.len() + 5);
    out.insert(
        "schemas".into(),
        json!(schema_urns(r.resource_type, &r.attributes)),
    );
    out.insert("id".into(), Value::String(r.id.clone()));
    out.extend(r.attributes);
    if let Some(members) = r.members.as_ref().filter(|m| !m.is_empty()) {
        let list: Vec<Value> = members
            .iter()
            .map(|m| {
                json!({
                    "value": m.value,
                    "$ref": location(base, m.member_type, &m.value),
                    "type": m.member_type.name(),
                    "display": m.display,
                })
            })
            .collect();
        out.insert("members".into(), Value::Array(list));
    }
    if let Some(groups) = r.groups.as_ref().filter(|g| !g.is_empty()) {
        let list: Vec<Value> = groups
            .iter()
            .map(|g| {
                json!({
                    "value": g.value,
                    "$ref": location(base, ResourceType::Group, &g.value),
                    "display": g.display,
                    "type": "direct",
                })
            })
            .collect();
        out.insert("groups".into(), Value::Array(list));
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": r.resource_type.name(),
            "created": r.created,
            "lastModified": r.last_modified,
            "location": location(base, r.resource_type, &r.id),
            "version": etag(r.version),
        }),
    );
    out
}

/// A resource's JSON text, projected: what a response carries. A group of many members is
/// megabytes, so callers with large resources run this on a blocking thread.
pub fn resource_text(r: StoredResource, base: &str, projection: &Projection) -> String {
    let mut body = into_resource_json(r, base);
    projection.apply(&mut body);
    json_text(&Value::Object(body), 1024)
}

/// A document's JSON text, written into a buffer of `capacity` bytes at once (what the
/// text and anything appended to it will need) rather than grown, and copied, step by
/// step from empty. Written as bytes: `Display` (`write!`, `to_string`) passes every token
/// through a `fmt::Formatter` into the `String`, which was 6 % of the samples of a sorted
/// page of 100 users.
pub fn json_text(doc: &Value, capacity: usize) -> String {
    let mut bytes = Vec::with_capacity(capacity);
    // Serialising a `Value` into a `Vec` cannot fail, and its text is UTF-8.
    let _ = serde_json::to_writer(&mut bytes, doc);
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
