//! One typed configuration, layered: defaults, then a TOML file, then `SCIMGATE_*`
//! environment variables, then command-line flags. Unknown keys are errors.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The configuration an installed package keeps: read when no `--config` (or
/// `SCIMGATE_CONFIG`) names another, so that `sudo -u scimgate scimgate token` finds the
/// service's data folder.
pub const SYSTEM_CONFIG: &str = "/etc/scimgate/config.toml";

/// Each crate's keys are its own type, flattened here (so every key stays top-level, as
/// the documentation lists them); this type holds what only the binary uses. Unknown keys
/// are refused by `reject_unknown_keys`, since serde cannot deny them across flattened
/// types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: String,
    /// Folder for the database and the signing key.
    pub data: PathBuf,
    /// A PostgreSQL database (`postgres://user@host/db` or `host=… user=… dbname=…`)
    /// instead of the SQLite file in `data`, for several instances on one database
    /// (docs/scale-out.md). Unset: the embedded SQLite file.
    pub database: Option<String>,
    /// A file holding the database's password, so that it is neither in `database`, the
    /// configuration file nor the environment.
    pub database_password_file: Option<PathBuf>,
    /// TLS to the database, verified against these authorities (PEM); with
    /// `sslmode=require` in `database` and no file, against the web's public roots.
    pub database_ca_file: Option<PathBuf>,
    /// A client certificate (PEM chain) and its key, for the database's certificate
    /// authentication.
    pub database_client_cert: Option<PathBuf>,
    pub database_client_key: Option<PathBuf>,
    /// TLS certificate chain (PEM); with `tls_key`, the server speaks HTTPS itself.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// Seconds a client may take to send a request's headers.
    pub header_timeout_secs: u64,
    /// Seconds an idle keep-alive connection stays open.
    pub keep_alive_secs: u64,
    /// Open connections per worker thread.
    pub max_connections: usize,
    /// How long a request waits for its tenant's share of a busy resource (request slots,
    /// read connections, password hashing) before it is answered 503, in ms.
    pub overload_wait_ms: u64,
    /// HTTP worker threads; unset means one per CPU core.
    pub workers: Option<usize>,
    /// `info`, `debug`, … or a full `tracing` filter such as `scimgate=debug`.
    pub log_level: String,
    pub log_format: LogFormat,
    /// The HTTP layer's keys (limits, dialect, network, rate limits, `[auth]`, …).
    #[serde(flatten)]
    pub http: scimgate_http::HttpConfig,
    /// Storage's keys (read pool, read limits, audit retention).
    #[serde(flatten)]
    pub store: scimgate_store::StoreConfig,
    /// `[[plugins]]` and the plugin host's keys.
    #[serde(flatten)]
    pub plugins: scimgate_plugins::PluginConfig,
    /// Per-tenant settings, `[tenants.NAME]` in TOML.
    pub tenants: std::collections::BTreeMap<String, TenantConfig>,
    /// The change feed: its issuer and receivers (`[events]`, `[[events.receivers]]`).
    pub events: scimgate_events::EventsConfig,
    /// The operator's schema extensions (`[[schemas]]`).
    pub schemas: Vec<crate::schemas::SchemaSpec>,
    /// What a reload does with stored values of an attribute the schemas drop.
    pub schema_removal: crate::schemas::SchemaRemoval,
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
            database: None,
            database_password_file: None,
            database_ca_file: None,
            database_client_cert: None,
            database_client_key: None,
            tls_cert: None,
            tls_key: None,
            header_timeout_secs: 10,
            keep_alive_secs: 75,
            max_connections: 10_000,
            overload_wait_ms: 5000,
            workers: None,
            log_level: "info".into(),
            log_format: LogFormat::Text,
            http: Default::default(),
            store: Default::default(),
            plugins: Default::default(),
            tenants: std::collections::BTreeMap::new(),
            events: Default::default(),
            schemas: Vec::new(),
            schema_removal: Default::default(),
        }
    }
}

impl Config {
    /// How long a request waits for its tenant's share of a busy resource.
    pub fn overload_wait(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.overload_wait_ms.max(1))
    }
}

/// Settings given as flags; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_base_url: Option<String>,
}

impl Config {
    /// Each configured tenant's policy: its dialect rules (its own, else the global ones),
    /// allowlist and rate.
    pub fn tenant_policies(
        &self,
    ) -> Result<std::collections::HashMap<String, scimgate_http::TenantPolicy>, String> {
        use scimgate_model::dialect::{Dialect, with_rules};
        let global = self.http.dialect.dialect()?;
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

    /// Layers defaults, `file` (when given; else the system's [`SYSTEM_CONFIG`] when it
    /// exists), the environment and `flags`.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Config, Box<figment::Error>> {
        let system = Path::new(SYSTEM_CONFIG);
        let file = file.or_else(|| system.exists().then_some(system));
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
        let figment = figment.merge(env).merge(Serialized::defaults(flags));
        reject_unknown_keys(&figment)?;
        let mut config: Config = figment
            .extract()
            .map_err(|e| Box::new(precise_error(&figment).unwrap_or(e)))?;
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
        self.plugins
            .specs
            .iter_mut()
            .for_each(|p| resolve(&mut p.file));
        self.http
            .auth
            .keys
            .iter_mut()
            .for_each(|k| resolve(&mut k.file));
        self.schemas.iter_mut().for_each(|s| resolve(&mut s.file));
        for receiver in &mut self.events.receivers {
            receiver.authorization_file.iter_mut().for_each(resolve);
            receiver.secret_file.iter_mut().for_each(resolve);
        }
    }
}

/// The error of a wrong value as figment tells it, with its key and source. serde reads a
/// flattened type from a buffer that has lost both, so a value of a crate's type that does
/// not fit is found again by reading each crate's type on its own, innermost first.
fn precise_error(figment: &Figment) -> Option<figment::Error> {
    use scimgate_model::dialect::DialectConfig;
    [
        figment.extract::<DialectConfig>().err(),
        figment.extract::<scimgate_http::NetworkSettings>().err(),
        figment.extract::<scimgate_store::StoreConfig>().err(),
        figment.extract::<scimgate_plugins::PluginConfig>().err(),
        figment.extract::<scimgate_http::HttpConfig>().err(),
    ]
    .into_iter()
    .flatten()
    .next()
}

/// Refuses a top-level key that no part of the configuration knows (a typo must not be
/// silently ignored), naming it and where it came from. The known keys are those the
/// defaults serialise to: every field of every flattened type. Keys inside sections
/// (`[rate_limit]`, `[auth]`, `[tenants.NAME]`, `[[plugins]]`) are refused by their types.
fn reject_unknown_keys(figment: &Figment) -> Result<(), Box<figment::Error>> {
    let known = serde_json::to_value(Config::default()).unwrap_or_default();
    let known = known.as_object().cloned().unwrap_or_default();
    let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
    names.sort_unstable();
    let given: figment::value::Dict = figment.extract().map_err(Box::new)?;
    for key in given.keys() {
        if !known.contains_key(key) {
            let source = figment
                .find_metadata(key)
                .map(|m| match &m.source {
                    Some(source) => format!(" in {source}"),
                    None => format!(" in {}", m.name),
                })
                .unwrap_or_default();
            return Err(Box::new(figment::Error::from(format!(
                "unknown configuration key `{key}`{source}; the keys are {}",
                names.join(", ")
            ))));
        }
    }
    Ok(())
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
            assert_eq!(c.http.max_results, 50, "file beats default");
            assert_eq!(c.http.max_body_bytes, 2048);
            assert_eq!(c.http.password_storage, PasswordStorage::Discard);
            assert_eq!(c.store.read_connections, 8, "default");
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
            let global = c.http.dialect.dialect()?;
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
            assert!(e.to_string().contains("bad.toml"), "says where: {e}");
            // A typo of a key another crate owns, one inside a section, one from the
            // environment: each refused, named.
            jail.create_file("typo.toml", "read_connection = 3")?;
            jail.create_file("section.toml", "[rate_limit]\nenabeld = false")?;
            for (file, key) in [
                ("typo.toml", "read_connection"),
                ("section.toml", "enabeld"),
            ] {
                let e = Config::load(Some(Path::new(file)), &FlagOverrides::default())
                    .expect_err("unknown key");
                assert!(e.to_string().contains(key), "{file}: {e}");
                assert!(e.to_string().contains(file), "says where: {e}");
            }
            // A value of the wrong type names its key and where it came from, whichever
            // crate owns the key.
            for (text, key) in [
                ("max_body_bytes = \"1MB\"", "max_body_bytes"),
                ("read_connections = \"x\"", "read_connections"),
                ("dialect_strict = 3", "dialect_strict"),
                ("allow_from = [\"not-a-net\"]", "allow_from"),
                ("[rate_limit]\nenabled = 3", "rate_limit.enabled"),
                (
                    "plugin_watch_interval_ms = \"x\"",
                    "plugin_watch_interval_ms",
                ),
            ] {
                jail.create_file("wrong.toml", text)?;
                let e = Config::load(Some(Path::new("wrong.toml")), &FlagOverrides::default())
                    .expect_err("a wrong value");
                let e = e.to_string();
                assert!(e.contains(key) && e.contains("wrong.toml"), "{text}: {e}");
            }
            jail.set_env("SCIMGATE_MAX_BODY_BYTE", "10");
            let e = Config::load(None, &FlagOverrides::default()).expect_err("unknown key");
            assert!(e.to_string().contains("max_body_byte"), "{e}");
            assert!(Config::load(Some(Path::new("nope.toml")), &FlagOverrides::default()).is_err());
            Ok(())
        });
    }
}

#[cfg(test)]
mod packaged {
    use super::*;

    /// The Debian package's /etc/scimgate/config.toml loads as it ships, and names every
    /// key of the configuration (commented out with its default, or set).
    #[test]
    fn the_packaged_configuration_loads_and_lists_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/config.toml");
        // No environment: other tests set SCIMGATE_* variables in this process.
        let config = Config::load_from(
            Some(&path),
            &FlagOverrides::default(),
            Env::prefixed("SCIMGATE_PACKAGED_TEST_NOTHING_"),
        )
        .expect("loads");
        assert_eq!(config.data, PathBuf::from("/var/lib/scimgate"));
        let text = std::fs::read_to_string(&path).expect("read");
        let known = serde_json::to_value(Config::default()).expect("keys");
        for key in known.as_object().expect("object").keys() {
            let listed = text.lines().any(|line| {
                let line = line.trim_start_matches("# ").trim_start_matches('[');
                line.trim_start_matches('[').starts_with(key.as_str())
                    && line[key.len()..]
                        .chars()
                        .next()
                        .is_some_and(|c| matches!(c, ' ' | ']' | '.'))
            });
            assert!(listed, "packaging/config.toml does not list `{key}`");
        }
    }
}
