//! The audit trail: one row for every write and every refused write by an authenticated
//! client (who, from where, what, the versions before and after, each plugin's decision,
//! the status and the error detail). The write path leaves notes on the request as it goes;
//! the middleware turns them into a row when the answer is known. Rows are queued to the
//! writer and committed with the next batch, so auditing adds no commit to a request.

use std::sync::{Arc, Mutex};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use scimgate_store::{AuditQuery, AuditRecord};
use serde::Serialize;
use serde_json::Value;

use crate::auth::{self, Principal, SCOPE_ADMIN};
use crate::error::ApiError;
use crate::state::AppState;

/// What one plugin decided about one write.
#[derive(Debug, Clone, Serialize)]
pub struct PluginNote {
    pub plugin: String,
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What the write path learns that the response does not say.
#[derive(Debug, Default)]
pub struct AuditNotes {
    pub version_before: Option<i64>,
    pub plugins: Vec<PluginNote>,
    pub detail: Option<String>,
}

tokio::task_local! {
    /// The notes of the write being served; carried to blocking threads by `blocking`.
    pub static NOTES: Arc<Mutex<AuditNotes>>;
}

/// Adds to the current write's notes; outside an audited request it does nothing.
pub fn note(f: impl FnOnce(&mut AuditNotes)) {
    let _ = NOTES.try_with(|n| {
        if let Ok(mut notes) = n.lock() {
            f(&mut notes);
        }
    });
}

/// Writes are audited; a `.search` is a query (its path as routing sees it, decoded).
fn is_write(req: &ServiceRequest) -> bool {
    matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && auth::scope_needed(req.method(), req.match_info().as_str()) == auth::SCOPE_WRITE
}

/// Wraps `/scim/v2`, outside authentication, so that refusals by auth and rate limits are
/// seen too (once the client is known).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !is_write(&req) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let notes = Arc::new(Mutex::new(AuditNotes::default()));
    let client = state.settings.network.client_addr(req.request());
    let method = req.method().to_string();
    let resp = NOTES
        .scope(Arc::clone(&notes), next.call(req))
        .await?
        .map_into_boxed_body();
    let Some(principal) = resp.request().extensions().get::<Principal>().cloned() else {
        // Unauthenticated: in the request log only, so that a flood of bad tokens cannot
        // fill the database.
        return Ok(resp);
    };
    if resp.status() == actix_web::http::StatusCode::TOO_MANY_REQUESTS {
        // Past its rate a client's refusals are counted (`/metrics`), not written one row
        // each: a flood must not fill the database at the per-client rate.
        return Ok(resp);
    }
    let notes = std::mem::take(&mut *notes.lock().unwrap_or_else(|p| p.into_inner()));
    let record = AuditRecord {
        seq: 0,
        at: scimgate_model::clock::format_timestamp(state.clock.now()),
        tenant: principal.tenant,
        subject: Some(principal.subject),
        jti: principal.jti,
        client: client.map(|ip| ip.to_string()),
        method,
        resource_type: resource_type(resp.request()),
        resource_id: resource_id(&resp),
        version_before: notes.version_before,
        version_after: version_after(&resp),
        plugins: (!notes.plugins.is_empty())
            .then(|| serde_json::to_string(&notes.plugins).ok())
            .flatten(),
        status: resp.status().as_u16(),
        detail: notes.detail,
    };
    state.store.append_audit(record);
    Ok(resp)
}

fn resource_type(req: &HttpRequest) -> Option<String> {
    let pattern = req.match_pattern()?;
    ["Users", "Groups"]
        .into_iter()
        .find(|t| pattern.contains(&format!("/{t}")))
        .map(|t| t.trim_end_matches('s').to_owned())
}

/// The id in the path, or the one a create answered with in `Location`.
fn resource_id(resp: &ServiceResponse<BoxBody>) -> Option<String> {
    if let Some(id) = resp.request().match_info().get("id") {
        // The client's text: a 64 KB id must not become a 64 KB audit row.
        return Some(scimgate_model::excerpt(id, 128).into_owned());
    }
    let location = resp.headers().get("location")?.to_str().ok()?;
    location.rsplit('/').next().map(str::to_owned)
}

/// From the `ETag` (`W/"N"`) of a successful write.
fn version_after(resp: &ServiceResponse<BoxBody>) -> Option<i64> {
    if !resp.status().is_success() {
        return None;
    }
    let etag = resp.headers().get("etag")?.to_str().ok()?;
    etag.trim_start_matches("W/").trim_matches('"').parse().ok()
}

/// The query of `/admin/audit`: `since`, `cursor`, `count` (`domain` is read by
/// `tenant_for`). Names match case-insensitively, as for SCIM queries; a value that does
/// not fit is refused naming the parameter.
#[derive(Debug, Default)]
pub struct AuditParams {
    since: Option<String>,
    /// Sealed like a list cursor: the audit sequence is global across tenants.
    cursor: Option<String>,
    count: Option<u32>,
}

impl AuditParams {
    fn parse(query: &str) -> Result<Self, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|e| {
                scimgate_model::ScimError::invalid_syntax(format!("malformed query string: {e}"))
            })?
            .into_inner();
        let mut out = AuditParams::default();
        for (name, value) in pairs {
            match name.to_ascii_lowercase().as_str() {
                "since" => out.since = Some(value),
                "cursor" => out.cursor = Some(value),
                "count" => {
                    let n = value.trim().parse::<u32>().map_err(|_| {
                        scimgate_model::ScimError::invalid_value(format!(
                            "query parameter 'count' must be a whole number (pages hold 1 to {MAX_PAGE} rows), got '{}'",
                            scimgate_model::excerpt(&value, 64)
                        ))
                    })?;
                    out.count = Some(n);
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Most rows in one page of `/admin/audit`.
const MAX_PAGE: u32 = 1000;

/// `GET /admin/audit`: a tenant's audit rows, oldest first, `cursor` to page on. Needs
/// `scim:admin`; the tenant is chosen as for SCIM requests (`domain`).
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let claims = auth::authenticate(&req, &state)?;
    let tenant = auth::tenant_for(&req, &claims, &state)?;
    auth::require_scope(&claims, &[SCOPE_ADMIN], "/admin")?;
    auth::mark_authenticated(&req, &claims, tenant.clone());
    let params = AuditParams::parse(req.query_string())?;
    let since = match &params.since {
        None => None,
        Some(text) => Some(
            scimgate_model::clock::normalize_timestamp(text).ok_or_else(|| {
                ApiError::Scim(scimgate_model::ScimError::new(
                    400,
                    Some(scimgate_model::ScimType::InvalidValue),
                    format!("'since' must be an RFC 3339 time, not '{text}'"),
                ))
            })?,
        ),
    };
    let limit = params.count.unwrap_or(100).clamp(1, MAX_PAGE);
    let binding = serde_json::json!(["audit", tenant, since]).to_string();
    let after_seq = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            state
                .cursors
                .open(&binding, text)
                .and_then(|v| v.as_i64())
                .ok_or_else(|| {
                    ApiError::Scim(scimgate_model::ScimError::bad_request(
                        scimgate_model::ScimType::InvalidCursor,
                        format!(
                            "cursor '{}' is not one this server issued for this tenant and 'since'",
                            scimgate_model::excerpt(text, 64)
                        ),
                    ))
                })?,
        ),
    };
    let query = AuditQuery {
        tenant: Some(tenant),
        since,
        after_seq,
        limit,
        newest: false,
    };
    let store = Arc::clone(&state.store);
    let rows = crate::resources::blocking(move || Ok(store.audit(&query)?)).await?;
    let next = (rows.len() as u32 == limit)
        .then(|| {
            rows.last()
                .map(|r| state.cursors.seal(&binding, &r.seq.into()))
        })
        .flatten();
    // The global sequence stays inside the server: only the sealed cursor goes out.
    let entries: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.remove("seq");
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "entries": entries,
        "nextCursor": next,
    })))
}
