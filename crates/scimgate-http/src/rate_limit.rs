//! Rate limits on actix-governor's GCRA limiters: one keyed by client address before
//! authentication, one keyed by tenant and token subject after it (a tenant may have its
//! own rate). A refusal is 429 `application/problem+json` (RFC 9457) with `Retry-After`;
//! every answer on a limited route carries `x-ratelimit-limit` and `x-ratelimit-remaining`.

use std::collections::HashMap;
use std::sync::Arc;

use actix_governor::governor::clock::{Clock, DefaultClock};
use actix_governor::governor::middleware::{StateInformationMiddleware, StateSnapshot};
use actix_governor::governor::state::keyed::DefaultKeyedStateStore;
use actix_governor::governor::{NotUntil, RateLimiter};
use actix_governor::{GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::state::AppState;

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub requests_per_second: u64,
    pub burst: u32,
}

/// `[rate_limit]` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// Per client address, before the token is checked.
    pub per_client: Limit,
    /// Per tenant and token subject: what one IdP connection may send.
    pub per_token: Limit,
}

impl Default for RateLimitSettings {
    /// Well above what IdPs send: Entra ID expects an endpoint to sustain 25 requests per
    /// second per tenant, and quarantines a provisioning job that keeps being refused.
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            per_client: Limit {
                requests_per_second: 2000,
                burst: 4000,
            },
            per_token: Limit {
                requests_per_second: 500,
                burst: 1000,
            },
        }
    }
}

type Limiter = Arc<
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>,
>;

/// actix-governor builds the limiters; the keys are ours, so its extractor is never asked.
#[derive(Debug, Clone, Copy)]
struct KeysGivenByCaller;

impl KeyExtractor for KeysGivenByCaller {
    type Key = String;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, _: &ServiceRequest) -> Result<String, Self::KeyExtractionError> {
        Err(SimpleKeyExtractionError::new("keys are given by scimgate"))
    }
}

fn limiter(limit: Limit) -> Option<Limiter> {
    if limit.requests_per_second == 0 || limit.burst == 0 {
        return None;
    }
    GovernorConfigBuilder::default()
        .key_extractor(KeysGivenByCaller)
        .requests_per_second(limit.requests_per_second)
        .burst_size(limit.burst)
        .use_headers()
        .finish()
        .map(|c| c.limiter())
}

/// The limiters in force.
pub struct RateLimits {
    per_client: Option<(Limit, Limiter)>,
    per_token: Option<(Limit, Limiter)>,
    /// A tenant's own rate; `None` (a rate or burst of 0) is no limit for it, as 0 is
    /// for `per_token`.
    tenants: HashMap<String, Option<(Limit, Limiter)>>,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings, tenants: &HashMap<String, Limit>) -> Self {
        let with = |l: Limit| limiter(l).map(|lim| (l, lim));
        if !settings.enabled {
            return RateLimits {
                per_client: None,
                per_token: None,
                tenants: HashMap::new(),
            };
        }
        RateLimits {
            per_client: with(settings.per_client),
            per_token: with(settings.per_token),
            tenants: tenants.iter().map(|(t, l)| (t.clone(), with(*l))).collect(),
        }
    }

    pub fn disabled() -> Self {
        Self::new(
            &RateLimitSettings {
                enabled: false,
                ..Default::default()
            },
            &HashMap::new(),
        )
    }
}

/// A refusal: what the client is told, and which limiter refused.
struct Refusal {
    limiter: &'static str,
    limit: Limit,
    wait_secs: u64,
    whose: String,
}

fn check(
    entry: Option<&(Limit, Limiter)>,
    key: String,
    limiter_name: &'static str,
    whose: String,
) -> Result<Option<(Limit, StateSnapshot)>, Refusal> {
    let Some((limit, lim)) = entry else {
        return Ok(None);
    };
    match lim.check_key(&key) {
        Ok(snapshot) => Ok(Some((*limit, snapshot))),
        Err(not_until) => Err(Refusal {
            limiter: limiter_name,
            limit: *limit,
            wait_secs: wait(&not_until),
            whose,
        }),
    }
}

fn wait(not_until: &NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    let d = not_until.wait_time_from(DefaultClock::default().now());
    // Retry-After is whole seconds; never tell a client to retry at once.
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn too_many(state: &AppState, r: &Refusal) -> HttpResponse {
    state.metrics.count_rate_limited(r.limiter);
    let body = serde_json::json!({
        "type": "https://www.rfc-editor.org/rfc/rfc6585#section-4",
        "title": "Too Many Requests",
        "status": 429,
        "detail": format!(
            "rate limit of {} requests per second (burst {}) exceeded for {}; retry in {} s",
            r.limit.requests_per_second, r.limit.burst, r.whose, r.wait_secs.max(1)
        ),
    });
    HttpResponse::TooManyRequests()
        .insert_header(("retry-after", r.wait_secs.max(1).to_string()))
        .insert_header(("x-ratelimit-after", r.wait_secs.max(1).to_string()))
        .insert_header(("x-ratelimit-limit", r.limit.burst.to_string()))
        .insert_header(("x-ratelimit-remaining", "0"))
        .content_type("application/problem+json")
        .body(body.to_string())
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

/// The per-client limit's key: an IPv4 address, or the /64 of an IPv6 one (a host is
/// given a whole /64, and could otherwise take a fresh address for every request).
fn client_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

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
        let refusal = crate::error::ApiError::Forbidden(format!(
            "requests from {} are not allowed here (allow_from)",
            client.map_or("an unknown address".into(), |ip| ip.to_string())
        ));
        return Ok(req.into_response(actix_web::ResponseError::error_response(&refusal)));
    }
    let key = client.map_or_else(String::new, client_key);
    let whose = format!("client {}", if key.is_empty() { "unknown" } else { &key });
    let checked = check(state.limits.per_client.as_ref(), key, "client", whose);
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
    let entry = match state.limits.tenants.get(&principal.tenant) {
        Some(own) => own.as_ref(),
        None => state.limits.per_token.as_ref(),
    };
    // NUL cannot occur in a tenant name, so the key is unambiguous.
    let key = format!("{}\0{}", principal.tenant, principal.subject);
    let whose = format!(
        "tenant '{}', subject '{}'",
        principal.tenant, principal.subject
    );
    let checked = check(entry, key, "token", whose);
    answer(req, next, &state, checked).await
}

/// A refusal becomes the 429; an admitted request goes on and its answer gets the headers.
async fn answer(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    state: &AppState,
    checked: Result<Option<(Limit, StateSnapshot)>, Refusal>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    match checked {
        Err(r) => Ok(req.into_response(too_many(state, &r))),
        Ok(snapshot) => {
            let mut resp = next.call(req).await?.map_into_boxed_body();
            if let Some((limit, s)) = snapshot {
                add_headers(&mut resp, limit, &s);
            }
            Ok(resp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_rate_of_zero_is_no_limit_for_it() {
        let zero = Limit {
            requests_per_second: 0,
            burst: 0,
        };
        let limits = RateLimits::new(
            &RateLimitSettings::default(),
            &HashMap::from([("free".to_owned(), zero)]),
        );
        assert!(
            matches!(limits.tenants.get("free"), Some(None)),
            "not the per-token default"
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let key = |s: &str| client_key(s.parse().expect("ip"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
    }
}
