//! The rate limits on requests: per client before authentication (with the global
//! allowlist), per tenant and token subject after it. A request over its limit is answered
//! 429 (`ApiError::RateLimited`); every answer on a limited route carries
//! `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11), and the
//! `x-ratelimit-*` headers too when configured.

use actix_governor::governor::middleware::StateSnapshot;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use crate::error::ApiError;
use crate::rate_limit::{Admitted, Limit, Throttled, policy_header, state_header};
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
            let legacy = legacy_refusal_headers(&throttled);
            let mut resp = req.error_response(ApiError::RateLimited(throttled));
            if state.limits.legacy_headers {
                for (name, value) in legacy {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        resp.headers_mut().insert(HeaderName::from_static(name), v);
                    }
                }
            }
            Ok(resp)
        }
        Ok(snapshot) => {
            let mut resp = next.call(req).await?.map_into_boxed_body();
            if let Some((name, limit, s)) = snapshot {
                add_headers(&mut resp, (name, limit, &s), state.limits.legacy_headers);
            }
            Ok(resp)
        }
    }
}

/// The limit's headers (draft-ietf-httpapi-ratelimit-headers-11, and the `x-ratelimit-*`
/// ones when configured), unless an inner (tighter) limiter has set them already.
fn add_headers(
    resp: &mut ServiceResponse<BoxBody>,
    admitted: (&'static str, Limit, &StateSnapshot),
    legacy: bool,
) {
    let (name, limit, snapshot) = admitted;
    let headers = resp.headers_mut();
    if headers.contains_key("ratelimit") {
        return;
    }
    let remaining = snapshot.remaining_burst_capacity();
    let mut fields = vec![
        ("ratelimit-policy", policy_header(name, limit)),
        (
            "ratelimit",
            state_header(name, remaining, limit.refill_secs(remaining)),
        ),
    ];
    if legacy {
        fields.push(("x-ratelimit-limit", limit.burst.to_string()));
        fields.push(("x-ratelimit-remaining", remaining.to_string()));
    }
    for (name, value) in fields {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
}

/// The `x-ratelimit-*` headers of a refusal, for clients configured to get them.
fn legacy_refusal_headers(throttled: &Throttled) -> [(&'static str, String); 3] {
    [
        ("x-ratelimit-after", throttled.wait_secs.max(1).to_string()),
        ("x-ratelimit-limit", throttled.limit.burst.to_string()),
        ("x-ratelimit-remaining", "0".to_owned()),
    ]
}
