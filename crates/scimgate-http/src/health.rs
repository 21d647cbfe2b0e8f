//! Liveness and readiness probes, which need no token.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers a query.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    match web::block(move || store.ping()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({"status": "database unavailable"}))
        }
        Err(_) => {
            HttpResponse::ServiceUnavailable().json(json!({"status": "database unavailable"}))
        }
    }
}
