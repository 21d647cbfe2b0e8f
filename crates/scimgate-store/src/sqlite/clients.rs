//! OAuth clients and their secrets' digests: written by `scimgate client …`, read with the
//! access snapshot the server refreshes every second.

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use crate::error::StoreError;
use crate::records::{ClientAssertion, ClientSecret, OAuthClient};

pub fn add(conn: &Connection, c: &OAuthClient) -> Result<bool, StoreError> {
    // Immediate: the server's writer may hold the lock; a deferred transaction that read
    // first could not wait for it.
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let added = tx.execute(
        "INSERT OR IGNORE INTO oauth_clients (client_id, name, tenants, scope, token_ttl, created,
             assertion_issuer, assertion_subject, assertion_audience, jwks_url, jwks_file)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            c.client_id,
            c.name,
            c.tenants.join(" "),
            c.scope,
            c.token_ttl_secs,
            c.created,
            c.assertion.as_ref().map(|a| &a.issuer),
            c.assertion.as_ref().map(|a| &a.subject),
            c.assertion.as_ref().map(|a| &a.audience),
            c.assertion.as_ref().and_then(|a| a.jwks_url.as_ref()),
            c.assertion.as_ref().and_then(|a| a.jwks_file.as_ref()),
        ],
    )? == 1;
    if !added {
        return Ok(false);
    }
    for s in &c.secrets {
        insert_secret(&tx, &c.client_id, s)?;
    }
    tx.commit()?;
    Ok(true)
}

fn insert_secret(conn: &Connection, client_id: &str, s: &ClientSecret) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO oauth_client_secrets (client_id, digest, created, expires) VALUES (?1, ?2, ?3, ?4)",
        params![client_id, s.digest, s.created, s.expires],
    )?;
    Ok(())
}

pub fn all(conn: &Connection) -> Result<Vec<OAuthClient>, StoreError> {
    let mut clients: Vec<OAuthClient> = conn
        .prepare_cached(
            "SELECT client_id, name, tenants, scope, token_ttl, created, assertion_issuer,
                    assertion_subject, assertion_audience, jwks_url, jwks_file
             FROM oauth_clients ORDER BY name",
        )?
        .query_map([], |r| {
            Ok(OAuthClient {
                client_id: r.get(0)?,
                name: r.get(1)?,
                tenants: r
                    .get::<_, String>(2)?
                    .split_ascii_whitespace()
                    .map(str::to_owned)
                    .collect(),
                scope: r.get(3)?,
                token_ttl_secs: r.get(4)?,
                created: r.get(5)?,
                secrets: Vec::new(),
                assertion: match (r.get(6)?, r.get(7)?, r.get(8)?) {
                    (Some(issuer), Some(subject), Some(audience)) => Some(ClientAssertion {
                        issuer,
                        subject,
                        audience,
                        jwks_url: r.get(9)?,
                        jwks_file: r.get(10)?,
                    }),
                    _ => None,
                },
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT digest, created, expires FROM oauth_client_secrets WHERE client_id = ?1 ORDER BY created",
    )?;
    for c in &mut clients {
        c.secrets = stmt
            .query_map(params![c.client_id], |r| {
                Ok(ClientSecret {
                    digest: r.get(0)?,
                    created: r.get(1)?,
                    expires: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
    }
    Ok(clients)
}

pub fn rotate(
    conn: &Connection,
    name: &str,
    secret: &ClientSecret,
    old_until: i64,
) -> Result<bool, StoreError> {
    // Immediate: the server's writer may hold the lock; a deferred transaction that read
    // first could not wait for it.
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let id: Option<String> = {
        use rusqlite::OptionalExtension;
        tx.query_row(
            "SELECT client_id FROM oauth_clients WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()?
    };
    let Some(id) = id else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE oauth_client_secrets SET expires = min(coalesce(expires, ?2), ?2) WHERE client_id = ?1",
        params![id, old_until],
    )?;
    // Secrets long past their end are of no use to anyone: gone.
    tx.execute(
        "DELETE FROM oauth_client_secrets WHERE client_id = ?1 AND expires < ?2",
        params![id, secret.created],
    )?;
    insert_secret(&tx, &id, secret)?;
    tx.commit()?;
    Ok(true)
}

pub fn remove(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM oauth_clients WHERE name = ?1", params![name])? == 1)
}
