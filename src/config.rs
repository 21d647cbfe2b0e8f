//! One typed configuration, layered: defaults, then a TOML file, then `SCIMGATE_*`
//! environment variables, then command-line flags. Unknown keys are errors.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: String,
    /// Folder for the database and the signing key.
    pub data: PathBuf,
    /// TLS certificate chain (PEM); with `tls_key`, the server speaks HTTPS itself.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// Public base URL for `meta.location`, e.g. `https://scim.example.com`.
    pub public_base_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a request body may take to arrive (slow clients get 408).
    pub body_timeout_secs: u64,
    /// Seconds a client may take to send a request's headers.
    pub header_timeout_secs: u64,
    /// Seconds an idle keep-alive connection stays open.
    pub keep_alive_secs: u64,
    /// Open connections per worker thread.
    pub max_connections: usize,
    /// Most resources in one page (`filter.maxResults`).
    pub max_results: u64,
    /// Deepest nesting of parentheses, `not` and value filters in a filter.
    pub filter_max_depth: usize,
    /// Turn every IdP dialect rule off: RFC 7643/7644 to the letter.
    pub dialect_strict: bool,
    /// Dialect rules to turn off one by one (names in docs/dialects.md).
    pub dialect_disabled_rules: Vec<String>,
    /// Dialect rules to turn on that are off by default (`unquoted_filter_values`).
    pub dialect_enabled_rules: Vec<String>,
    /// Most operations in one PATCH request.
    pub max_patch_operations: usize,
    /// Answer group PATCHes with the group (200) instead of 204.
    pub group_patch_returns_resource: bool,
    /// What happens to passwords that IdPs send.
    pub password_storage: PasswordStorage,
    /// Clock skew allowed on token `exp`/`nbf`, in seconds.
    pub token_leeway_secs: u64,
    /// Days the audit trail keeps its rows; 0 keeps them for ever.
    pub audit_retention_days: u32,
    /// Networks that may call at all (CIDR); empty allows every address.
    pub allow_from: Vec<ipnet::IpNet>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Rate limits per client address and per tenant and token subject.
    pub rate_limit: scimgate_http::RateLimitSettings,
    /// Keys that tokens may be signed with besides the data folder's own (`[auth]`).
    pub auth: scimgate_http::AuthSettings,
    /// Read-only SQLite connections in the pool.
    pub read_connections: u32,
    /// Read connections one tenant may hold at once; unset: all but a quarter (at least
    /// one) of `read_connections`, which stay free for the other tenants.
    pub tenant_read_connections: Option<u32>,
    /// Longest a read query may run before SQLite stops it (400 `tooMany`), in ms.
    pub query_timeout_ms: u64,
    /// Most values one multi-valued attribute may hold (group members excepted).
    pub max_values_per_attribute: usize,
    /// Most group members (or user groups) one list page carries; the page ends early.
    pub max_list_members: usize,
    /// Most bytes of stored resources (and member names) one list page carries; likewise.
    pub max_page_bytes: usize,
    /// Passwords hashed at once (19 MiB each); unset: one per CPU core.
    pub hashing_slots: Option<usize>,
    /// Requests being worked on at once, all tenants together.
    pub max_requests_in_flight: usize,
    /// Requests one tenant may have in the works at once; unset: 16 (at most
    /// `max_requests_in_flight`). More at once from one tenant only queue on the cores and
    /// take them from the other tenants.
    pub tenant_requests_in_flight: Option<usize>,
    /// Plugin instances one tenant may run at once (of 128); unset: one per core.
    pub plugin_instances_per_tenant: Option<usize>,
    /// How long a request waits for its tenant's share of a busy resource (request slots,
    /// read connections, password hashing) before it is answered 503, in ms.
    pub overload_wait_ms: u64,
    /// HTTP worker threads; unset means one per CPU core.
    pub workers: Option<usize>,
    /// `info`, `debug`, … or a full `tracing` filter such as `scimgate=debug`.
    pub log_level: String,
    pub log_format: LogFormat,
    /// How often to look for changes to the configuration file and plugin files, in
    /// milliseconds, to reload the plugins; 0 reloads on SIGHUP only.
    pub plugin_watch_interval_ms: u64,
    /// Operator plugins, `[[plugins]]` in TOML, in the order they run (docs/plugins.md).
    pub plugins: Vec<scimgate_plugins::PluginSpec>,
    /// Per-tenant settings, `[tenants.NAME]` in TOML.
    pub tenants: std::collections::BTreeMap<String, TenantConfig>,
}

/// What a tenant may set for itself; unset means the global setting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantConfig {
    /// The tenant's own allowlist, on top of the global one.
    pub allow_from: Vec<ipnet::IpNet>,
    /// The tenant's own rate per token subject, instead of `rate_limit.per_token`.
    pub rate_limit: Option<scimgate_http::Limit>,
    pub dialect_strict: Option<bool>,
    pub dialect_disabled_rules: Vec<String>,
    pub dialect_enabled_rules: Vec<String>,
}

pub use scimgate_http::PasswordStorage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data: PathBuf::from("./scimgate-data"),
            public_base_url: None,
            tls_cert: None,
            tls_key: None,
            max_body_bytes: 1024 * 1024,
            body_timeout_secs: 30,
            header_timeout_secs: 10,
            keep_alive_secs: 75,
            max_connections: 10_000,
            max_results: 1000,
            filter_max_depth: 16,
            dialect_strict: false,
            dialect_disabled_rules: Vec::new(),
            dialect_enabled_rules: Vec::new(),
            max_patch_operations: 1000,
            group_patch_returns_resource: false,
            password_storage: PasswordStorage::Argon2id,
            token_leeway_secs: 30,
            auth: Default::default(),
            audit_retention_days: 90,
            allow_from: Vec::new(),
            trusted_proxies: Vec::new(),
            rate_limit: Default::default(),
            read_connections: 8,
            tenant_read_connections: None,
            query_timeout_ms: 5000,
            max_values_per_attribute: 1000,
            max_list_members: 10_000,
            max_page_bytes: 4 << 20,
            hashing_slots: None,
            max_requests_in_flight: 128,
            tenant_requests_in_flight: None,
            overload_wait_ms: 5000,
            plugin_instances_per_tenant: None,
            workers: None,
            log_level: "info".into(),
            log_format: LogFormat::Text,
            tenants: std::collections::BTreeMap::new(),
            plugin_watch_interval_ms: 2000,
            plugins: Vec::new(),
        }
    }
}

impl Config {
    /// A tenant's share of the read connections.
    pub fn tenant_read_share(&self) -> u32 {
        let total = self.read_connections.max(1);
        self.tenant_read_connections
            .unwrap_or(total - (total / 4).max(1).min(total - 1))
            .clamp(1, total)
    }

    /// A tenant's share of the requests in flight.
    pub fn tenant_request_share(&self) -> usize {
        let total = self.max_requests_in_flight.max(1);
        self.tenant_requests_in_flight.unwrap_or(16).clamp(1, total)
    }

    pub fn hashing_slots(&self) -> usize {
        self.hashing_slots
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
            .max(1)
    }
}

fn with_rules(
    mut d: scimgate_model::dialect::Dialect,
    disabled: &[String],
    enabled: &[String],
    prefix: &str,
) -> Result<scimgate_model::dialect::Dialect, String> {
    use scimgate_model::dialect::Dialect;
    for (key, rules, on) in [
        ("dialect_disabled_rules", disabled, false),
        ("dialect_enabled_rules", enabled, true),
    ] {
        for rule in rules {
            if !d.set(rule, on) {
                return Err(format!(
                    "{prefix}{key}: unknown rule '{rule}' (known: {})",
                    Dialect::RULES.join(", ")
                ));
            }
        }
    }
    Ok(d)
}

/// Settings given as flags; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_base_url: Option<String>,
}

impl Config {
    /// The dialect rules this configuration leaves on.
    pub fn dialect(&self) -> Result<scimgate_model::dialect::Dialect, String> {
        use scimgate_model::dialect::Dialect;
        let base = if self.dialect_strict {
            Dialect::strict()
        } else {
            Dialect::default()
        };
        with_rules(
            base,
            &self.dialect_disabled_rules,
            &self.dialect_enabled_rules,
            "",
        )
    }

    /// Each configured tenant's policy: its dialect rules (its own, else the global ones),
    /// allowlist and rate.
    pub fn tenant_policies(
        &self,
    ) -> Result<std::collections::HashMap<String, scimgate_http::TenantPolicy>, String> {
        use scimgate_model::dialect::Dialect;
        let global = self.dialect()?;
        self.tenants
            .iter()
            .map(|(name, t)| {
                let base = match t.dialect_strict {
                    Some(true) => Dialect::strict(),
                    Some(false) => Dialect::default(),
                    None => global.clone(),
                };
                let prefix = format!("tenants.{name}.");
                let dialect = with_rules(
                    base,
                    &t.dialect_disabled_rules,
                    &t.dialect_enabled_rules,
                    &prefix,
                )?;
                let policy = scimgate_http::TenantPolicy {
                    dialect,
                    allow_from: t.allow_from.clone(),
                    rate_limit: t.rate_limit,
                };
                Ok((name.clone(), policy))
            })
            .collect()
    }

    /// The global allowlist and the proxies believed.
    pub fn network(&self) -> scimgate_http::NetworkSettings {
        scimgate_http::NetworkSettings {
            allow_from: self.allow_from.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }

    /// Layers defaults, `file` (when given), the environment and `flags`.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Config, Box<figment::Error>> {
        Self::load_from(
            file,
            flags,
            // `__` reaches into sections: SCIMGATE_RATE_LIMIT__ENABLED=false.
            Env::prefixed("SCIMGATE_")
                .ignore(&["config", "log"])
                .split("__"),
        )
    }

    fn load_from(
        file: Option<&Path>,
        flags: &FlagOverrides,
        env: Env,
    ) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "configuration file {} does not exist",
                    file.display()
                ))));
            }
            figment = figment.merge(Toml::file(file));
        }
        let mut config: Config = figment
            .merge(env)
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(Box::new)?;
        if let Some(folder) = file.and_then(Path::parent) {
            config.resolve_files_against(folder);
        }
        Ok(config)
    }

    /// Plugin and key files named in the configuration file are found next to it, not in
    /// whatever folder the server was started from. (Only lists of tables, which only the
    /// file can hold; `data`, `tls_cert`, `tls_key` and `auth.jwks_file`, which the
    /// environment may set, stay relative to the working directory.)
    fn resolve_files_against(&mut self, folder: &Path) {
        let resolve = |p: &mut std::path::PathBuf| {
            if p.is_relative() {
                *p = folder.join(&*p);
            }
        };
        self.plugins.iter_mut().for_each(|p| resolve(&mut p.file));
        self.auth.keys.iter_mut().for_each(|k| resolve(&mut k.file));
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment's own large error
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_env_over_file_over_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "scimgate.toml",
                "listen = \"0.0.0.0:9000\"\ndata = \"/srv/file\"\nmax_results = 50\npassword_storage = \"discard\"",
            )?;
            jail.set_env("SCIMGATE_DATA", "/srv/env");
            jail.set_env("SCIMGATE_MAX_BODY_BYTES", "2048");
            let flags = FlagOverrides {
                listen: Some("127.0.0.1:7000".into()),
                ..Default::default()
            };
            let c = Config::load(Some(Path::new("scimgate.toml")), &flags)
                .map_err(|e| e.to_string())?;
            assert_eq!(c.listen, "127.0.0.1:7000", "flag beats file");
            assert_eq!(c.data, PathBuf::from("/srv/env"), "env beats file");
            assert_eq!(c.max_results, 50, "file beats default");
            assert_eq!(c.max_body_bytes, 2048);
            assert_eq!(c.password_storage, PasswordStorage::Discard);
            assert_eq!(c.read_connections, 8, "default");
            Ok(())
        });
    }

    #[test]
    fn tenants_set_their_own_dialect_rules() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "dialect_disabled_rules = [\"op_names\"]\n[tenants.acme]\ndialect_strict = true\n\
                 [tenants.okta-shop]\ndialect_enabled_rules = [\"unquoted_filter_values\"]\n",
            )?;
            let c = Config::load(Some(Path::new("t.toml")), &FlagOverrides::default())
                .map_err(|e| e.to_string())?;
            let global = c.dialect()?;
            let tenants = c.tenant_policies()?;
            assert!(!global.op_names && global.string_booleans);
            assert_eq!(
                tenants["acme"].dialect,
                scimgate_model::dialect::Dialect::strict()
            );
            let shop = &tenants["okta-shop"].dialect;
            assert!(
                shop.unquoted_filter_values && !shop.op_names,
                "inherits the global rules"
            );
            jail.create_file(
                "bad.toml",
                "[tenants.x]\ndialect_disabled_rules = [\"nope\"]\n",
            )?;
            let bad = Config::load(Some(Path::new("bad.toml")), &FlagOverrides::default())
                .map_err(|e| e.to_string())?;
            assert!(
                bad.tenant_policies()
                    .expect_err("unknown rule")
                    .contains("tenants.x.dialect_disabled_rules")
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "listen = \"x\"\nlisten_port = 3")?;
            let e = Config::load(Some(Path::new("bad.toml")), &FlagOverrides::default())
                .expect_err("unknown key");
            assert!(e.to_string().contains("listen_port"), "{e}");
            assert!(Config::load(Some(Path::new("nope.toml")), &FlagOverrides::default()).is_err());
            Ok(())
        });
    }
}
