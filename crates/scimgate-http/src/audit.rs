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
use actix_web::{HttpMessage, HttpRequest, web};
use scimgate_store::AuditRecord;

use crate::auth::{self, Principal};
use crate::context::{AuditNotes, NOTES};
use crate::state::AppState;

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
