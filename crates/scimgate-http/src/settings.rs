//! The HTTP layer's settings, filled from the binary's configuration: limits, dialects and
//! each tenant's own policy.

use scimgate_model::dialect::Dialect;

use crate::network::NetworkSettings;

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
}

impl HttpSettings {
    /// The dialect rules for `tenant`: its own, else the global ones.
    pub fn dialect_for(&self, tenant: &str) -> &Dialect {
        self.tenants
            .get(tenant)
            .map_or(&self.dialect, |policy| &policy.dialect)
    }
}
