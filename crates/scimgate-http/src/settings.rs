//! The HTTP layer's settings: its keys of the configuration (`HttpConfig`, which the
//! binary's configuration flattens, so the keys stay top-level), and what the server runs
//! with (`HttpSettings`: the same, with the dialect rules resolved and each tenant's own
//! policy).

use scimgate_model::dialect::{Dialect, DialectConfig};
use serde::{Deserialize, Serialize};

use crate::keys::AuthSettings;
use crate::network::NetworkSettings;
use crate::password::PasswordStorage;
use crate::rate_limit::RateLimitSettings;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Public base URL for `meta.location`, e.g. `https://scim.example.com`.
    pub public_base_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a request body may take to arrive (slow clients get 408).
    pub body_timeout_secs: u64,
    /// Most resources in one page (`filter.maxResults`).
    pub max_results: u64,
    /// Deepest nesting of parentheses, `not` and value filters in a filter.
    pub filter_max_depth: usize,
    /// The IdP dialect rules (`dialect_strict`, `dialect_disabled_rules`, …).
    #[serde(flatten)]
    pub dialect: DialectConfig,
    /// Most operations in one PATCH request.
    pub max_patch_operations: usize,
    /// Answer group PATCHes with the group (200) instead of 204.
    pub group_patch_returns_resource: bool,
    /// What happens to passwords that IdPs send.
    pub password_storage: PasswordStorage,
    /// Clock skew allowed on token `exp`/`nbf`, in seconds.
    pub token_leeway_secs: u64,
    /// `allow_from` and `trusted_proxies`.
    #[serde(flatten)]
    pub network: NetworkSettings,
    /// Rate limits per client address and per tenant and token subject.
    pub rate_limit: RateLimitSettings,
    /// Keys that tokens may be signed with besides the data folder's own (`[auth]`).
    pub auth: AuthSettings,
    /// Most values one multi-valued attribute may hold (group members excepted).
    pub max_values_per_attribute: usize,
    /// Passwords hashed at once (19 MiB each); unset: one per CPU core.
    pub hashing_slots: Option<usize>,
    /// Requests being worked on at once, all tenants together.
    pub max_requests_in_flight: usize,
    /// `POST /Bulk` (`[bulk]`).
    pub bulk: BulkSettings,
    /// Requests one tenant may have in the works at once; unset: 16 (at most
    /// `max_requests_in_flight`). More at once from one tenant only queue on the cores and
    /// take them from the other tenants.
    pub tenant_requests_in_flight: Option<usize>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            public_base_url: None,
            max_body_bytes: 1024 * 1024,
            body_timeout_secs: 30,
            max_results: 1000,
            filter_max_depth: 16,
            dialect: DialectConfig::default(),
            max_patch_operations: 1000,
            group_patch_returns_resource: false,
            password_storage: PasswordStorage::Argon2id,
            token_leeway_secs: 30,
            network: NetworkSettings::default(),
            rate_limit: RateLimitSettings::default(),
            auth: AuthSettings::default(),
            max_values_per_attribute: 1000,
            hashing_slots: None,
            max_requests_in_flight: 128,
            tenant_requests_in_flight: None,
            bulk: BulkSettings::default(),
        }
    }
}

impl HttpConfig {
    /// A tenant's share of the requests in flight.
    pub fn tenant_request_share(&self) -> usize {
        let total = self.max_requests_in_flight.max(1);
        self.tenant_requests_in_flight.unwrap_or(16).clamp(1, total)
    }

    /// Passwords hashed at once.
    pub fn hashing_slots(&self) -> usize {
        self.hashing_slots
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
            .max(1)
    }
}

/// `[bulk]`: the limits of a Bulk request, advertised in ServiceProviderConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkSettings {
    /// Most operations in one request (`maxOperations`); 0 turns Bulk off.
    pub max_operations: usize,
    /// Largest request body, in bytes (`maxPayloadSize`).
    pub max_payload_bytes: usize,
}

impl Default for BulkSettings {
    /// A thousand users of a few hundred bytes each fit with room to spare.
    fn default() -> Self {
        BulkSettings {
            max_operations: 1000,
            max_payload_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What one tenant sets for itself (`[tenants.NAME]`): its dialect rules (the global ones
/// when it sets none), its allowlist on top of the global one, and its rate per token
/// subject instead of `rate_limit.per_token`.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantPolicy {
    pub dialect: Dialect,
    pub allow_from: Vec<ipnet::IpNet>,
    pub rate_limit: Option<crate::rate_limit::Limit>,
}

/// HTTP-level settings, filled from the binary's configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Absolute base URL (scheme, host, optional path prefix) for `meta.location`; when
    /// unset, it is taken from each request's scheme and Host.
    pub public_base_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a request body may take to arrive.
    pub body_timeout_secs: u64,
    /// Most resources returned in one page (`filter.maxResults`).
    pub max_results: u64,
    /// Deepest nesting of parentheses, `not` and value filters in a filter.
    pub filter_max_depth: usize,
    /// Seconds of clock skew allowed when checking `exp` and `nbf`.
    pub token_leeway_secs: u64,
    /// The IdP dialect rules in force where a tenant has none of its own.
    pub dialect: Dialect,
    /// Each configured tenant's own policy.
    pub tenants: std::collections::HashMap<String, TenantPolicy>,
    /// Most operations in one PATCH request.
    pub max_patch_operations: usize,
    /// Most values one multi-valued attribute may hold (group members excepted).
    pub max_values_per_attribute: usize,
    /// Client addresses: the global allowlist and the proxies believed.
    pub network: NetworkSettings,
    /// Answer a group PATCH with the group (200) even when no projection was asked for;
    /// by default it is 204, so that a large group is never serialised to change one member.
    pub group_patch_returns_resource: bool,
    /// Whether ServiceProviderConfig advertises `securityEvents` (RFC 9967 §4).
    pub advertise_security_events: bool,
    /// The limits of a Bulk request.
    pub bulk: BulkSettings,
}

impl HttpSettings {
    /// What the server runs with: `config`, with its dialect rules resolved (an unknown
    /// rule is an error naming it), and each tenant's own policy.
    pub fn new(
        config: &HttpConfig,
        tenants: std::collections::HashMap<String, TenantPolicy>,
    ) -> Result<HttpSettings, String> {
        Ok(HttpSettings {
            public_base_url: config.public_base_url.clone(),
            max_body_bytes: config.max_body_bytes,
            body_timeout_secs: config.body_timeout_secs,
            max_results: config.max_results,
            filter_max_depth: config.filter_max_depth,
            token_leeway_secs: config.token_leeway_secs,
            dialect: config.dialect.dialect()?,
            tenants,
            max_patch_operations: config.max_patch_operations,
            max_values_per_attribute: config.max_values_per_attribute,
            network: config.network.clone(),
            group_patch_returns_resource: config.group_patch_returns_resource,
            advertise_security_events: true,
            bulk: config.bulk,
        })
    }

    /// The dialect rules for `tenant`: its own, else the global ones.
    pub fn dialect_for(&self, tenant: &str) -> &Dialect {
        self.tenants
            .get(tenant)
            .map_or(&self.dialect, |policy| &policy.dialect)
    }
}
