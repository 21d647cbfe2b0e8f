//! What the admin page's views and actions share about the signed-in operator: the tenant
//! a request chooses among theirs, the administration calls (the CLI's, off the async
//! workers), and their rows in the audit trail.

use std::sync::Arc;

use actix_web::{HttpRequest, web};
use scimgate_store::{Admin, AuditRecord};

use super::session::Operator;
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::state::AppState;

/// The signed-in operator, as long as the token the session came from is not revoked.
pub fn signed_in(req: &HttpRequest, state: &AppState) -> Result<Operator, ApiError> {
    still_valid(req, state, state.console.sessions.operator(req)?)
}

/// As `signed_in`, for a call that changes something (CSRF token, origin).
pub fn signed_in_changing(req: &HttpRequest, state: &AppState) -> Result<Operator, ApiError> {
    still_valid(req, state, state.console.sessions.operator_changing(req)?)
}

fn still_valid(req: &HttpRequest, state: &AppState, op: Operator) -> Result<Operator, ApiError> {
    if let Some(jti) = &op.revocable
        && state.access.current().revoked.contains(jti)
    {
        state.console.sessions.close(req);
        return Err(ApiError::Unauthorized {
            detail: "the token this session was opened with has been revoked: sign in again".into(),
            token_sent: false,
        });
    }
    Ok(op)
}

/// The signed-in operator, and the tenant the request names (`tenant`, else their first).
pub fn operator_in(
    req: &HttpRequest,
    state: &AppState,
) -> Result<(Operator, String, QueryParams), ApiError> {
    let operator = signed_in(req, state)?;
    let query = QueryParams::parse(req.query_string())?;
    let tenant = chosen_tenant(&operator, query.all("tenant").last())?;
    Ok((operator, tenant, query))
}

pub fn chosen_tenant(operator: &Operator, asked: Option<&str>) -> Result<String, ApiError> {
    match asked {
        None | Some("") => operator
            .tenants
            .first()
            .cloned()
            .ok_or_else(|| ApiError::Forbidden("the session names no tenant".into())),
        Some(t) if operator.tenants.iter().any(|o| o == t) => Ok(t.to_owned()),
        Some(t) => Err(ApiError::Forbidden(format!(
            "the tenant '{}' is not one this session may see",
            scimgate_model::excerpt(t, 64)
        ))),
    }
}

/// Runs `f` on the administration handle, off the async workers.
pub async fn with_admin<T: Send + 'static>(
    state: &web::Data<AppState>,
    f: impl FnOnce(&mut dyn Admin) -> Result<T, scimgate_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = Arc::clone(state);
    let deadline = state.store.answer_deadline();
    crate::blocking::storage(deadline, move || {
        let admin = state.console.admin.get().ok_or_else(|| {
            ApiError::NotImplemented("this server has no administration handle".into())
        })?;
        let mut admin = admin
            .lock()
            .map_err(|_| ApiError::Internal("administration handle".into()))?;
        Ok(f(admin.as_mut())?)
    })
    .await
}

/// One row of the audit trail for what the operator did (or opened), in `tenant`.
pub fn audit(
    state: &AppState,
    op: &Operator,
    tenant: &str,
    action: &str,
    target: Option<String>,
    status: u16,
    detail: Option<String>,
) {
    state.store.append_audit(AuditRecord {
        seq: 0,
        at: scimgate_model::clock::format_timestamp(state.clock.now()),
        tenant: tenant.to_owned(),
        subject: Some(op.subject.clone()),
        jti: op.jti.clone(),
        client: None,
        method: "ADMIN".into(),
        resource_type: Some(action.to_owned()),
        resource_id: target.map(|t| scimgate_model::excerpt(&t, 128).into_owned()),
        version_before: None,
        version_after: None,
        plugins: None,
        status,
        detail,
        event_seq: None,
    });
}

/// Opening a resource or a row of the trail shows personal data: audited as a view.
pub fn audit_view(
    state: &AppState,
    op: &Operator,
    tenant: &str,
    what: &str,
    target: Option<String>,
) {
    audit(
        state,
        op,
        tenant,
        &format!("view {what}"),
        target,
        200,
        None,
    );
}

/// Audits an action in each of the operator's tenants it touches (their first when none).
pub fn audit_action(
    state: &AppState,
    op: &Operator,
    tenants: &[String],
    action: &str,
    target: &str,
) {
    let mut touched: Vec<&String> = tenants.iter().filter(|t| op.tenants.contains(t)).collect();
    if touched.is_empty() {
        touched.extend(op.tenants.first());
    }
    for t in touched {
        audit(state, op, t, action, Some(target.to_owned()), 200, None);
    }
}
