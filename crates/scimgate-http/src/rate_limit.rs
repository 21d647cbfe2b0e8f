//! Rate limits on actix-governor's GCRA limiters: one keyed by client address before
//! authentication, one keyed by tenant and token subject after it (a tenant may have its
//! own rate). `throttle` applies them to requests.

use std::collections::HashMap;
use std::sync::Arc;

use actix_governor::governor::clock::{Clock, DefaultClock};
use actix_governor::governor::middleware::{StateInformationMiddleware, StateSnapshot};
use actix_governor::governor::state::keyed::DefaultKeyedStateStore;
use actix_governor::governor::{NotUntil, RateLimiter};
use actix_governor::{GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError};
use actix_web::dev::ServiceRequest;
use serde::{Deserialize, Serialize};

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
    /// Also the `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-after`
    /// headers, for clients that read them; every answer has `RateLimit-Policy` and
    /// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11) whatever this says.
    pub legacy_headers: bool,
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
            legacy_headers: false,
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
    /// Whether answers carry the `x-ratelimit-*` headers too.
    pub legacy_headers: bool,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings, tenants: &HashMap<String, Limit>) -> Self {
        let with = |l: Limit| limiter(l).map(|lim| (l, lim));
        if !settings.enabled {
            return RateLimits {
                per_client: None,
                per_token: None,
                tenants: HashMap::new(),
                legacy_headers: settings.legacy_headers,
            };
        }
        RateLimits {
            per_client: with(settings.per_client),
            per_token: with(settings.per_token),
            tenants: tenants.iter().map(|(t, l)| (t.clone(), with(*l))).collect(),
            legacy_headers: settings.legacy_headers,
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

/// A request over its limit: which limiter refused it, the limit, how long to wait, and
/// whose limit it was (for the client's detail).
#[derive(Debug, Clone)]
pub struct Throttled {
    pub limiter: &'static str,
    pub limit: Limit,
    pub wait_secs: u64,
    pub whose: String,
}

/// A request within its limit, with the limiter's state for the response's headers (`None`
/// where no limit applies).
pub type Admitted = Option<(&'static str, Limit, StateSnapshot)>;

impl RateLimits {
    /// The per-client limit, before authentication (`client` unknown when no peer address).
    pub fn check_client(&self, client: Option<std::net::IpAddr>) -> Result<Admitted, Throttled> {
        let key = client.map_or_else(String::new, client_key);
        let whose = format!("client {}", if key.is_empty() { "unknown" } else { &key });
        check(self.per_client.as_ref(), key, "client", whose)
    }

    /// The limit of a tenant's token subject: the tenant's own rate, else `per_token`.
    pub fn check_token(&self, tenant: &str, subject: &str) -> Result<Admitted, Throttled> {
        let entry = match self.tenants.get(tenant) {
            Some(own) => own.as_ref(),
            None => self.per_token.as_ref(),
        };
        // NUL cannot occur in a tenant name, so the key is unambiguous.
        let key = format!("{tenant}\0{subject}");
        let whose = format!("tenant '{tenant}', subject '{subject}'");
        check(entry, key, "token", whose)
    }

    /// The limit of a tenant's token subjects (`None`: no limit).
    pub fn token_limit(&self, tenant: &str) -> Option<Limit> {
        self.token_limiter(tenant).map(|(limit, _)| *limit)
    }

    fn token_limiter(&self, tenant: &str) -> Option<&(Limit, Limiter)> {
        match self.tenants.get(tenant) {
            Some(own) => own.as_ref(),
            None => self.per_token.as_ref(),
        }
    }

    /// Charges `n` more requests to a tenant's token subject (a Bulk request's operations
    /// beyond the first, which its admission counted): refused as a whole when the subject
    /// has not that many left. The caller refuses more than the burst beforehand (they
    /// could never be had).
    pub fn charge_token(&self, tenant: &str, subject: &str, n: u32) -> Result<(), Throttled> {
        let Some((limit, lim)) = self.token_limiter(tenant) else {
            return Ok(());
        };
        let Some(cells) = std::num::NonZeroU32::new(n.min(limit.burst)) else {
            return Ok(());
        };
        let key = format!("{tenant}\0{subject}");
        match lim.check_key_n(&key, cells) {
            Ok(Ok(_)) | Err(_) => Ok(()),
            Ok(Err(not_until)) => Err(Throttled {
                limiter: "token",
                limit: *limit,
                wait_secs: wait(&not_until),
                whose: format!(
                    "tenant '{tenant}', subject '{subject}' (a Bulk request counts each operation)"
                ),
            }),
        }
    }
}

fn check(
    entry: Option<&(Limit, Limiter)>,
    key: String,
    limiter_name: &'static str,
    whose: String,
) -> Result<Admitted, Throttled> {
    let Some((limit, lim)) = entry else {
        return Ok(None);
    };
    match lim.check_key(&key) {
        Ok(snapshot) => Ok(Some((limiter_name, *limit, snapshot))),
        Err(not_until) => Err(Throttled {
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

impl Limit {
    /// The draft's window for this limit: the whole seconds the burst takes to refill
    /// (at least one).
    pub fn window_secs(&self) -> u64 {
        u64::from(self.burst)
            .div_ceil(self.requests_per_second.max(1))
            .max(1)
    }

    /// Seconds until `remaining` of the burst is back to all of it.
    pub fn refill_secs(&self, remaining: u32) -> u64 {
        u64::from(self.burst.saturating_sub(remaining)).div_ceil(self.requests_per_second.max(1))
    }
}

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-11 §3): the policy's name,
/// its quota `q` (the burst) and window `w`.
pub fn policy_header(name: &str, limit: Limit) -> String {
    format!("\"{name}\";q={};w={}", limit.burst, limit.window_secs())
}

/// `RateLimit` (§4): the quota left `r` and the seconds `t` until it is whole again.
pub fn state_header(name: &str, remaining: u32, reset_secs: u64) -> String {
    format!("\"{name}\";r={remaining};t={reset_secs}")
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
