//! The rate limits on requests: per client before authentication (with the global
//! allowlist), per tenant and token subject after it. A request over its limit is answered
//! 429 (`ApiError::RateLimited`); every answer on a limited route carries
//! `x-ratelimit-limit` and `x-ratelimit-remaining`.

use actix_governor::governor::middleware::StateSnapshot;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use crate::error::ApiError;
use crate::rate_limit::{Admitted, Limit, Throttled};
use crate::state::AppState;

/// Before authentication: the global allowlist (403) and the per-client limit.
pub async fn before_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let client = state.settings.network.client_addr(req.request());
    if !state.settings.network.allows(client) {
        let refusal = ApiError::Forbidden(format!(
            "requests from {} are not allowed here (allow_from)",
            client.map_or("an unknown address".into(), |ip| ip.to_string())
        ));
        return Ok(req.error_response(refusal));
    }
    let checked = state.limits.check_client(client);
    answer(req, next, &state, checked).await
}

/// After authentication: the limit for the request's tenant and token subject.
pub async fn after_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some((state, principal)) = crate::auth::authenticated(&req) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let checked = state
        .limits
        .check_token(&principal.tenant, &principal.subject);
    answer(req, next, &state, checked).await
}

/// A refusal becomes the 429; an admitted request goes on and its answer gets the headers.
async fn answer(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    state: &AppState,
    checked: Result<Admitted, Throttled>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    match checked {
        Err(throttled) => {
            state.metrics.count_rate_limited(throttled.limiter);
            let refusal = ApiError::RateLimited(throttled);
            Ok(req.error_response(refusal))
        }
        Ok(snapshot) => {
            let mut resp = next.call(req).await?.map_into_boxed_body();
            if let Some((limit, s)) = snapshot {
                add_headers(&mut resp, limit, &s);
            }
            Ok(resp)
        }
    }
}

/// The limit's headers, unless an inner (tighter) limiter has set them already.
fn add_headers(resp: &mut ServiceResponse<BoxBody>, limit: Limit, snapshot: &StateSnapshot) {
    let headers = resp.headers_mut();
    if headers.contains_key("x-ratelimit-limit") {
        return;
    }
    for (name, value) in [
        ("x-ratelimit-limit", limit.burst.to_string()),
        (
            "x-ratelimit-remaining",
            snapshot.remaining_burst_capacity().to_string(),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
}
