//! The change feed's keys of the configuration: `[events]` with its issuer and its
//! receivers (`[[events.receivers]]`), each checked when the configuration is loaded.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::EventsError;
use crate::set::Mode;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// `iss` of every event; unset: `public_base_url`, else `scimgate`.
    pub issuer: Option<String>,
    /// Whether ServiceProviderConfig advertises `securityEvents` (RFC 9967 §4). On by
    /// default; a client whose model of ServiceProviderConfig predates RFC 9967 and
    /// refuses attributes it does not know may need it off (docs/conformance.md).
    pub advertise: bool,
    /// Where events are pushed, in the order configured.
    pub receivers: Vec<ReceiverConfig>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            issuer: None,
            advertise: true,
            receivers: Vec::new(),
        }
    }
}

/// How a receiver wants its events: RFC 8935 Security Event Tokens, or Standard Webhooks
/// JSON bodies signed with a shared secret, for tools that do not speak SETs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Set,
    Webhook,
}

/// One receiver (`[[events.receivers]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Names the receiver in the CLI, metrics, logs and its stored position.
    pub name: String,
    /// Where events are POSTed (`http` or `https`).
    pub url: String,
    /// The tenants whose events it gets; `["*"]` for every tenant.
    pub tenants: Vec<String>,
    /// Which events (`create`, `replace`, `patch`, `delete`, `activate`, `deactivate`);
    /// empty for all. An event of a write it does not want is passed over.
    pub events: Vec<String>,
    /// `full` (the resource, or a PATCH's operations) or `notice` (attribute names only).
    pub mode: Mode,
    pub format: Format,
    /// `aud` of its events; unset: its URL.
    pub audience: Option<String>,
    /// A file holding the `Authorization` header value to send (e.g. `Bearer …`).
    pub authorization_file: Option<PathBuf>,
    /// Webhooks: the file holding the shared secret (`whsec_` and base64).
    pub secret_file: Option<PathBuf>,
    /// How long one delivery may take, in ms.
    pub timeout_ms: u64,
    /// Longest wait between two tries, in seconds (retries back off up to it).
    pub max_backoff_secs: u64,
    /// After failing this long without a success, in seconds, the receiver is set aside
    /// (dead-lettered) until re-enabled; its position is kept.
    pub dead_after_secs: u64,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            name: String::new(),
            url: String::new(),
            tenants: Vec::new(),
            events: Vec::new(),
            mode: Mode::Full,
            format: Format::Set,
            audience: None,
            authorization_file: None,
            secret_file: None,
            timeout_ms: 10_000,
            max_backoff_secs: 300,
            dead_after_secs: 86_400,
        }
    }
}

/// The event kinds a receiver may name.
pub const EVENT_KINDS: [&str; 6] = [
    "create",
    "replace",
    "patch",
    "delete",
    "activate",
    "deactivate",
];

impl EventsConfig {
    /// Refuses a configuration that could not deliver: names, URLs, tenants, event kinds,
    /// secrets. Run at start, so that a mistake stops the server, named.
    pub fn check(&self) -> Result<(), EventsError> {
        let mut names = std::collections::HashSet::new();
        for r in &self.receivers {
            let bad =
                |why: String| EventsError::Config(format!("events.receivers '{}': {why}", r.name));
            if r.name.is_empty()
                || r.name.len() > 64
                || !r
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(EventsError::Config(format!(
                    "events.receivers: a receiver needs a name of letters, digits, '-', '_' or '.' (at most 64), not '{}'",
                    r.name
                )));
            }
            if !names.insert(r.name.as_str()) {
                return Err(bad("the name is used twice".into()));
            }
            check_url(&r.url).map_err(|why| bad(format!("url '{}': {why}", r.url)))?;
            if let Some(audience) = &r.audience
                && (audience.is_empty() || audience.starts_with(crate::set::CONSUMER_AUDIENCE))
            {
                return Err(bad(format!(
                    "'audience' must not be empty nor start with '{}' (the feed's poll and stream consumers' audiences)",
                    crate::set::CONSUMER_AUDIENCE
                )));
            }
            if r.tenants.is_empty() {
                return Err(bad(
                    "'tenants' is empty: name its tenants, or \"*\" for all".into(),
                ));
            }
            if let Some(kind) = r.events.iter().find(|k| !EVENT_KINDS.contains(&k.as_str())) {
                return Err(bad(format!(
                    "unknown event '{kind}' (known: {})",
                    EVENT_KINDS.join(", ")
                )));
            }
            if r.format == Format::Webhook && r.secret_file.is_none() {
                return Err(bad("a webhook needs 'secret_file'".into()));
            }
            if r.timeout_ms == 0 || r.timeout_ms > 60_000 {
                // Bounded: a delivery under way holds the server's stop until it ends.
                return Err(bad("'timeout_ms' must be from 1 to 60000".into()));
            }
            if let Some(t) = r
                .tenants
                .iter()
                .find(|t| *t != "*" && !scimgate_model::valid_tenant(t))
            {
                return Err(bad(format!("'{t}' is not a tenant name")));
            }
        }
        Ok(())
    }
}

/// An absolute `http` or `https` URL with a host and no credentials in it.
fn check_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("the scheme must be http or https".into()),
    }
    let authority = uri.authority().ok_or("no host")?;
    if authority.as_str().contains('@') {
        return Err("credentials belong in 'authorization_file', not in the URL".into());
    }
    if authority.host().is_empty() {
        return Err("no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(f: impl FnOnce(&mut ReceiverConfig)) -> EventsConfig {
        let mut r = ReceiverConfig {
            name: "hr".into(),
            url: "https://hr.example.com/events".into(),
            tenants: vec!["acme".into()],
            ..ReceiverConfig::default()
        };
        f(&mut r);
        EventsConfig {
            receivers: vec![r],
            ..EventsConfig::default()
        }
    }

    type Spoil = Box<dyn Fn(&mut ReceiverConfig)>;

    #[test]
    fn receivers_that_could_not_deliver_are_refused_named() {
        // (what is wrong, a word the error names)
        let rows: Vec<(Spoil, &str)> = vec![
            (Box::new(|r| r.name = String::new()), "name"),
            (Box::new(|r| r.name = "a b".into()), "name"),
            (Box::new(|r| r.url = "ftp://x/".into()), "scheme"),
            (Box::new(|r| r.url = "/relative".into()), "scheme"),
            (
                Box::new(|r| r.url = "https://user:pw@x/".into()),
                "credentials",
            ),
            (Box::new(|r| r.tenants.clear()), "tenants"),
            (
                Box::new(|r| r.audience = Some("consumer:hr-sync".into())),
                "audience",
            ),
            (Box::new(|r| r.audience = Some(String::new())), "audience"),
            (Box::new(|r| r.events = vec!["created".into()]), "created"),
            (Box::new(|r| r.format = Format::Webhook), "secret_file"),
            (Box::new(|r| r.timeout_ms = 0), "timeout_ms"),
            (Box::new(|r| r.timeout_ms = 600_000), "timeout_ms"),
            (
                Box::new(|r| r.tenants = vec!["bad tenant!".into()]),
                "bad tenant!",
            ),
        ];
        for (spoil, named) in rows {
            let err = receiver(|r| spoil(r)).check().expect_err(named).to_string();
            assert!(err.contains(named), "{named}: {err}");
        }
        receiver(|_| {}).check().expect("a good receiver");
        let mut twice = receiver(|_| {});
        twice.receivers.push(twice.receivers[0].clone());
        assert!(
            twice
                .check()
                .expect_err("twice")
                .to_string()
                .contains("twice")
        );
    }
}
