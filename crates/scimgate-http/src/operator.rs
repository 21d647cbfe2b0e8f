//! The operator's endpoints at the server root, each authenticated by its handler: the
//! audit trail (`GET /admin/audit`, scope `scim:admin`) and the metrics (`GET /metrics`,
//! scope `scim:metrics` or `scim:admin`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, web};
use scimgate_store::AuditQuery;
use serde_json::Value;

use crate::auth;
use crate::error::ApiError;
use crate::metrics::{FeedFigures, ReceiverFigures};
use crate::query::QueryParams;
use crate::state::AppState;
use crate::token::{SCOPE_ADMIN, SCOPE_METRICS};

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
        let query = QueryParams::parse(query)?;
        let mut count = None;
        // Every `count` sent must be a number; the last one counts, as for the others.
        for value in query.all("count") {
            count = Some(value.trim().parse::<u32>().map_err(|_| {
                scimgate_model::ScimError::invalid_value(format!(
                    "query parameter 'count' must be a whole number (pages hold 1 to {MAX_PAGE} rows), got '{}'",
                    scimgate_model::excerpt(value, 64)
                ))
            })?);
        }
        Ok(AuditParams {
            since: query.all("since").last().map(str::to_owned),
            cursor: query.all("cursor").last().map(str::to_owned),
            count,
        })
    }
}

/// Most rows in one page of `/admin/audit`.
const MAX_PAGE: u32 = 1000;

/// `GET /admin/audit`: a tenant's audit rows, oldest first, `cursor` to page on. Needs
/// `scim:admin`; the tenant is chosen as for SCIM requests (`domain`).
pub async fn audit(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
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
        ..Default::default()
    };
    let store = Arc::clone(&state.store);
    let rows =
        crate::blocking::storage(store.answer_deadline(), move || Ok(store.audit(&query)?)).await?;
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

/// `GET /metrics`: needs a token with `scim:metrics` or `scim:admin`.
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let claims = auth::authenticate(&req, &state)?;
    auth::require_scope(&claims, &[SCOPE_METRICS, SCOPE_ADMIN], "/metrics")?;
    auth::mark_authenticated(&req, &claims, claims.tenant.clone());
    let store = Arc::clone(&state.store);
    let events_written =
        crate::blocking::storage(store.answer_deadline(), move || Ok(store.events_written()?))
            .await?;
    let now = state.clock.now().unix_timestamp();
    let receivers = state
        .receivers
        .iter()
        .map(|r| {
            let oldest = r.oldest_pending.load(Ordering::Relaxed);
            ReceiverFigures {
                name: r.name.clone(),
                delivered: r.delivered.load(Ordering::Relaxed),
                retried: r.retried.load(Ordering::Relaxed),
                rejected: r.rejected.load(Ordering::Relaxed),
                dead_lettered: r.dead_lettered.load(Ordering::Relaxed),
                lag_events: r.lag_events.load(Ordering::Relaxed),
                lag_seconds: if oldest > 0 {
                    u64::try_from(now - oldest).unwrap_or(0)
                } else {
                    0
                },
                dead: r.dead.load(Ordering::Relaxed),
            }
        })
        .collect();
    let feed = FeedFigures {
        events_written,
        receivers,
    };
    Ok(HttpResponse::Ok()
        .insert_header(ContentType(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
                .parse()
                .map_err(|_| ApiError::Internal("metrics content type".into()))?,
        ))
        .body(state.metrics.encode(state.store.stats(), feed)))
}
