//! The audit trail: one row for every write and every refused write by an authenticated
//! client (who, from where, what, the versions before and after, each plugin's decision,
//! the status and the error detail), written from the write's report and the error its
//! answer was made of. A write that stored something has its row committed with it (the
//! pipeline hands it to storage, `WriteReport::audit_row`), so no acknowledged write is
//! without one; a refused write's row is queued here once its answer is known and
//! committed with the next batch, so auditing adds no commit to a request.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};
use scimgate_store::AuditRecord;

use crate::auth;
use crate::context::{Principal, RequestId};
use crate::error::ApiError;
use crate::report::WriteReport;
use crate::state::AppState;

/// Writes are audited; a `.search` is a query (its path as routing sees it, decoded).
fn is_write(req: &ServiceRequest) -> bool {
    matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && auth::scope_needed(req.method(), req.match_info().as_str()) == auth::SCOPE_WRITE
}

/// Wraps `/scim/v2`, outside authentication, so that refusals by auth and rate limits are
/// seen too (once the client is known). The row is written from what the write reported
/// (`WriteReport`, left on the request by the handler) and from the error the answer was
/// made of; a write refused before it started (scope, tenant, admission) has no report, and
/// its row names the route's resource type and id.
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
    let client = state.settings.network.client_addr(req.request());
    let method = req.method().to_string();
    let resp = next.call(req).await?.map_into_boxed_body();
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
    if resp
        .request()
        .extensions()
        .contains::<AuditedPerOperation>()
    {
        // A Bulk request that ran: each of its operations has its row.
        return Ok(resp);
    }
    let request_id = RequestId::of(resp.request());
    let error_detail = resp
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
        .map(|e| e.answer(request_id.as_str()).detail);
    let report = resp.request().extensions_mut().remove::<WriteReport>();
    append(
        &state,
        Row {
            principal: &principal,
            client,
            method: &method,
            status: resp.status().as_u16(),
            detail: error_detail,
            resource_type: route_resource_type(resp.request()),
            resource_id: resp.request().match_info().get("id").map(str::to_owned),
        },
        report,
    );
    Ok(resp)
}

/// Left on a request whose writes were audited one by one (a Bulk request's operations),
/// so that the request itself has no row.
pub struct AuditedPerOperation;

/// One write's row, besides what its report says: who, from where, how it was asked and
/// answered, and the resource as the request named it (for a write refused before its
/// pipeline ran, which has no report).
pub struct Row<'a> {
    pub principal: &'a Principal,
    pub client: Option<std::net::IpAddr>,
    pub method: &'a str,
    pub status: u16,
    pub detail: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
}

/// Queues the audit row of one write, unless storage committed it with the write.
pub fn append(state: &AppState, row: Row<'_>, report: Option<WriteReport>) {
    if report.as_ref().is_some_and(|r| r.audited) {
        return;
    }
    let mut record = match &report {
        Some(report) => report.audit_row(row.status),
        None => AuditRecord {
            seq: 0,
            at: String::new(),
            tenant: row.principal.tenant.clone(),
            subject: Some(row.principal.subject.clone()),
            jti: row.principal.jti.clone(),
            client: None,
            method: String::new(),
            resource_type: row.resource_type,
            // The client's text: a 64 KB id must not become a 64 KB audit row.
            resource_id: row
                .resource_id
                .map(|id| scimgate_model::excerpt(&id, 128).into_owned()),
            version_before: None,
            version_after: None,
            plugins: None,
            status: row.status,
            detail: None,
            event_seq: None,
        },
    };
    record.at = scimgate_model::clock::format_timestamp(state.clock.now());
    record.client = row.client.map(|ip| ip.to_string());
    record.method = row.method.to_owned();
    record.detail = row.detail.or(record.detail);
    state.store.append_audit(record);
}

/// The resource type of a write refused before the write pipeline ran: from its route.
fn route_resource_type(req: &HttpRequest) -> Option<String> {
    let pattern = req.match_pattern()?;
    if pattern.ends_with("/Bulk") {
        return Some("Bulk".to_owned());
    }
    ["Users", "Groups"]
        .into_iter()
        .find(|t| pattern.contains(&format!("/{t}")))
        .map(|t| t.trim_end_matches('s').to_owned())
}
