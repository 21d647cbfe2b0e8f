//! `POST /Bulk` (RFC 7644 §3.7): the request read within `maxPayloadSize`, parsed (more
//! than `maxOperations` is a 413), charged to the client's rate as one request per
//! operation, run (`bulk_run`) and answered with each operation's status, `location` and
//! `version`, or its SCIM error.

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use scimgate_model::ScimError;
use scimgate_model::bulk::{self, BULK_RESPONSE};
use serde_json::{Map, Value, json};

use crate::audit::AuditedPerOperation;
use crate::blocking::blocking;
use crate::body::read_json_within;
use crate::bulk_run::{Outcome, Sender, run};
use crate::context::{Principal, RequestId};
use crate::error::{ApiError, SCIM_JSON};
use crate::etag::etag;
use crate::render::{location, scim_base};
use crate::state::AppState;

pub async fn bulk(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limits = state.settings.bulk;
    if limits.max_operations == 0 {
        return Err(ApiError::NotImplemented(
            "Bulk is turned off on this server (bulk.max_operations = 0)".into(),
        ));
    }
    let body = read_json_within(&req, payload, &state, limits.max_payload_bytes)
        .await
        .map_err(|e| match e {
            ApiError::PayloadTooLarge(n) => ApiError::Scim(ScimError::new(
                413,
                None,
                format!("the Bulk request is larger than maxPayloadSize ({n} bytes)"),
            )),
            other => other,
        })?;
    let sender = Sender {
        request_id: RequestId::of(&req),
        principal,
        client: state.settings.network.client_addr(&req),
    };
    let st = state.clone();
    // Parsing a body of megabytes is work for a blocking thread, not an async worker.
    let outcomes = blocking(move || {
        let request = bulk::parse(body, limits.max_operations)?;
        charge(&st, &sender.principal, request.operations.len())?;
        Ok(run(&st, &sender, request))
    })
    .await?;
    req.extensions_mut().insert(AuditedPerOperation);
    let base = scim_base(&req, &state.settings);
    let operations: Vec<Value> = outcomes
        .iter()
        .flatten()
        .map(|o| answer(o, &base))
        .collect();
    let body = json!({"schemas": [BULK_RESPONSE], "Operations": operations});
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, SCIM_JSON))
        .body(body.to_string()))
}

/// Each operation counts against the client's rate as a request; the request's admission
/// counted one. More operations than the client's burst could never be admitted: 413, not
/// a 429 to retry forever.
fn charge(state: &AppState, principal: &Principal, operations: usize) -> Result<(), ApiError> {
    let limits = &state.limits;
    if let Some(limit) = limits.token_limit(&principal.tenant)
        && operations > limit.burst as usize
    {
        return Err(ApiError::Scim(ScimError::new(
            413,
            None,
            format!(
                "the Bulk request has {operations} operations; this client's rate allows at most {} at once (its burst), so send fewer per request",
                limit.burst
            ),
        )));
    }
    let more = u32::try_from(operations.saturating_sub(1)).unwrap_or(u32::MAX);
    limits
        .charge_token(&principal.tenant, &principal.subject, more)
        .map_err(|throttled| {
            state.metrics.count_rate_limited(throttled.limiter);
            ApiError::RateLimited(throttled)
        })
}

/// One operation's answer (RFC 7644 §3.7.3): status as a string, as the RFC's examples
/// have it; an error's SCIM body as `response`.
fn answer(o: &Outcome, base: &str) -> Value {
    let mut a = Map::new();
    if let Some(m) = o.method {
        a.insert("method".into(), m.as_str().into());
    }
    if let Some(b) = &o.bulk_id {
        a.insert("bulkId".into(), b.clone().into());
    }
    if let Some(v) = o.version {
        a.insert("version".into(), etag(v).into());
    }
    if let Some((rt, id)) = &o.resource {
        // The id may be the client's (a failed operation on a path it named): encoded, so
        // that `location` is a URI whatever it holds.
        a.insert(
            "location".into(),
            location(base, *rt, &path_segment(id)).into(),
        );
    }
    a.insert("status".into(), o.status.to_string().into());
    if let Some(e) = &o.error {
        a.insert("response".into(), e.to_json());
    }
    Value::Object(a)
}

/// `id` as one URI path segment: unreserved characters as they are, the rest
/// percent-encoded (RFC 3986 §2.3).
fn path_segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, NOT_UNRESERVED).to_string()
}

/// Everything but RFC 3986's unreserved characters.
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
