//! `scimgate client`: the OAuth clients of the token endpoint, beside a running server
//! (which sees a change within a second).

use scimgate_http::{check_jwks_url, new_client_id, new_client_secret};
use scimgate_model::{Clock, SystemClock};
use scimgate_store::{ClientAssertion, ClientSecret, OAuthClient};

use super::admin::{admin_db, check_registered, check_scopes, unix_now};
use crate::{CliResult, ClientCommand};

/// What a client name may be: it is the `sub` of its tokens and shows in the audit.
fn check_client_name(name: &str) -> CliResult {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(
            format!("'{name}' is not a client name: 1 to 64 letters, digits, '-', '_' or '.'")
                .into(),
        )
    }
}

/// What a client's assertions must say and where their signer's keys are: a JWKS URL
/// (checked) or a JWKS file (read now, kept as an absolute path).
fn assertion_trust(
    issuer: String,
    subject: String,
    audience: String,
    jwks_url: Option<String>,
    jwks_file: Option<std::path::PathBuf>,
) -> Result<ClientAssertion, Box<dyn std::error::Error>> {
    if [&issuer, &subject, &audience]
        .iter()
        .any(|v| v.trim().is_empty())
    {
        return Err(
            "--assertion-issuer, --assertion-subject and --assertion-audience must not be empty"
                .into(),
        );
    }
    let jwks_file = match (&jwks_url, jwks_file) {
        (Some(url), None) => {
            check_jwks_url(url)?;
            None
        }
        (None, Some(path)) => {
            let path = std::fs::canonicalize(&path)
                .map_err(|e| format!("--jwks-file {}: {e}", path.display()))?;
            let text = std::fs::read(&path)?;
            let set: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| format!("--jwks-file {}: not JSON: {e}", path.display()))?;
            if !set["keys"].is_array() {
                return Err(
                    format!("--jwks-file {}: not a JWKS (no 'keys')", path.display()).into(),
                );
            }
            Some(path.display().to_string())
        }
        _ => return Err("an assertion client needs --jwks-url or --jwks-file".into()),
    };
    Ok(ClientAssertion {
        issuer,
        subject,
        audience,
        jwks_url,
        jwks_file,
    })
}

pub fn client(cmd: ClientCommand) -> CliResult {
    match cmd {
        ClientCommand::Add {
            name,
            tenant,
            scope,
            token_ttl,
            assertion_issuer,
            assertion_subject,
            assertion_audience,
            jwks_url,
            jwks_file,
            data,
        } => {
            check_client_name(&name)?;
            let assertion = match (assertion_issuer, assertion_subject, assertion_audience) {
                (Some(issuer), Some(subject), Some(audience)) => Some(assertion_trust(
                    issuer, subject, audience, jwks_url, jwks_file,
                )?),
                _ => None,
            };
            check_scopes(&scope)?;
            if !(60..=86_400).contains(&token_ttl) {
                return Err("--token-ttl is from 60 to 86400 seconds".into());
            }
            let (_, db) = admin_db(data)?;
            check_registered(db.as_ref(), &tenant)?;
            let (secret, digest) = new_client_secret();
            let secrets = if assertion.is_some() {
                Vec::new()
            } else {
                vec![ClientSecret {
                    digest,
                    created: unix_now(),
                    expires: None,
                }]
            };
            let client = OAuthClient {
                client_id: new_client_id(),
                name: name.clone(),
                tenants: tenant,
                scope,
                token_ttl_secs: token_ttl,
                created: scimgate_model::format_timestamp(SystemClock.now()),
                secrets,
                assertion,
            };
            if !db.add_client(&client)? {
                return Err(format!("a client named '{name}' exists already").into());
            }
            say!("client_id: {}", client.client_id);
            if client.assertion.is_some() {
                eprintln!(
                    "No secret: the client authenticates with assertions its identity provider signs. Token endpoint: POST /oauth/token (grant_type=client_credentials, client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer)."
                );
            } else {
                say!("client_secret: {secret}");
                eprintln!(
                    "The secret is shown only this once. Token endpoint: POST /oauth/token (grant_type=client_credentials)."
                );
            }
            Ok(())
        }
        ClientCommand::List { data } => {
            let (_, db) = admin_db(data)?;
            let now = unix_now();
            for c in db.clients()? {
                let secrets: Vec<String> = c
                    .secrets
                    .iter()
                    .filter(|s| s.expires.is_none_or(|end| end > now))
                    .map(|s| match s.expires {
                        None => "one current".to_owned(),
                        Some(end) => format!("one ending in {}s", end - now),
                    })
                    .collect();
                say!(
                    "{}  client_id={}  tenants={}  scope=\"{}\"  token_ttl={}s  secrets: {}  created {}",
                    c.name,
                    c.client_id,
                    c.tenants.join(","),
                    c.scope,
                    c.token_ttl_secs,
                    match &c.assertion {
                        Some(a) =>
                            format!("none: assertions from iss={} sub={}", a.issuer, a.subject),
                        None if secrets.is_empty() => "none".into(),
                        None => secrets.join(", "),
                    },
                    c.created
                );
            }
            Ok(())
        }
        ClientCommand::Rotate {
            name,
            overlap,
            data,
        } => {
            if overlap < 0 {
                return Err("--overlap is a number of seconds, 0 or more".into());
            }
            let (_, db) = admin_db(data)?;
            if db
                .clients()?
                .iter()
                .any(|c| c.name == name && c.assertion.is_some())
            {
                return Err(format!(
                    "client '{name}' authenticates with assertions: it has no secret to rotate (its identity provider rotates its keys)"
                )
                .into());
            }
            let (secret, digest) = new_client_secret();
            let now = unix_now();
            let new = ClientSecret {
                digest,
                created: now,
                expires: None,
            };
            if !db.rotate_client(&name, &new, now.saturating_add(overlap))? {
                return Err(format!("no client named '{name}'").into());
            }
            say!("client_secret: {secret}");
            eprintln!(
                "The secret is shown only this once; the previous one works for {overlap} more seconds."
            );
            Ok(())
        }
        ClientCommand::Remove { name, data } => {
            let (_, db) = admin_db(data)?;
            if !db.remove_client(&name)? {
                return Err(format!("no client named '{name}'").into());
            }
            say!("removed client {name}; the server refuses its tokens within a second");
            Ok(())
        }
    }
}
