//! Liveness and readiness probes, which need no token.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// How long a readiness probe waits for the database.
const PROBE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers a query. The answer also names the other instances on
/// the same database that run a different set of plugins or schemas (an operator's
/// deployment gone half way): reported, not a failure, as every rolling update passes
/// through it.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    let probe = web::block(move || {
        store.ping()?;
        store.other_fingerprints()
    });
    // A database that holds its connections open and never answers must not hold the
    // probe too: a load balancer learns within its own timeout that this instance cannot
    // serve (the blocked call ends when its connection does).
    let Ok(answer) = actix_web::rt::time::timeout(PROBE_DEADLINE, probe).await else {
        tracing::warn!("readiness check failed: the database did not answer within 2 s");
        return HttpResponse::ServiceUnavailable().json(json!({"status": "database unavailable"}));
    };
    match answer {
        Ok(Ok(others)) => {
            let mine = state.fingerprint.load_full();
            let differing: Vec<_> = others
                .into_iter()
                .filter(|(_, theirs)| *theirs != *mine)
                .map(|(instance, theirs)| json!({"instance": instance, "fingerprint": theirs}))
                .collect();
            HttpResponse::Ok().json(json!({
                "status": "ready",
                "plugins_and_schemas": {"fingerprint": *mine, "differing_instances": differing},
            }))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({"status": "database unavailable"}))
        }
        Err(_) => {
            HttpResponse::ServiceUnavailable().json(json!({"status": "database unavailable"}))
        }
    }
}
