//! Who may be served, on PostgreSQL: the tenant registry, the revoked tokens and the OAuth
//! clients, read by every instance at least every second (`snapshot`); and what
//! `scimgate tenant …` changes through [`PgAdmin`], from any host.

use std::collections::HashSet;

use postgres::GenericClient;

use super::{Retry, connect, migrate};
use crate::error::StoreError;
use crate::records::{
    AccessSnapshot, ClientAssertion, ClientSecret, OAuthClient, RemoveOutcome, TenantInfo,
};

pub fn snapshot(client: &mut impl GenericClient) -> Result<AccessSnapshot, StoreError> {
    let tenants: HashSet<String> = client
        .query("SELECT name FROM tenants", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let revoked: HashSet<String> = client
        .query("SELECT jti FROM tokens WHERE revoked_at IS NOT NULL", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let clients = clients(client)?
        .into_iter()
        .map(|c| (c.client_id.clone(), c))
        .collect();
    Ok(AccessSnapshot {
        tenants,
        revoked,
        clients,
    })
}

fn clients(client: &mut impl GenericClient) -> Result<Vec<OAuthClient>, StoreError> {
    let mut out: Vec<OAuthClient> = client
        .query(
            "SELECT client_id, name, tenants, scope, token_ttl, created, assertion_issuer, \
             assertion_subject, assertion_audience, jwks_url, jwks_file \
             FROM oauth_clients ORDER BY name",
            &[],
        )?
        .iter()
        .map(|r| OAuthClient {
            client_id: r.get(0),
            name: r.get(1),
            tenants: r
                .get::<_, String>(2)
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
            scope: r.get(3),
            token_ttl_secs: r.get(4),
            created: r.get(5),
            secrets: Vec::new(),
            assertion: match (r.get(6), r.get(7), r.get(8)) {
                (Some(issuer), Some(subject), Some(audience)) => Some(ClientAssertion {
                    issuer,
                    subject,
                    audience,
                    jwks_url: r.get(9),
                    jwks_file: r.get(10),
                }),
                _ => None,
            },
        })
        .collect();
    for row in client.query(
        "SELECT client_id, digest, created, expires FROM oauth_client_secrets ORDER BY created",
        &[],
    )? {
        let id: String = row.get(0);
        if let Some(c) = out.iter_mut().find(|c| c.client_id == id) {
            c.secrets.push(ClientSecret {
                digest: row.get(1),
                created: row.get(2),
                expires: row.get(3),
            });
        }
    }
    Ok(out)
}

/// A connection for the command-line tools, beside running servers.
pub struct PgAdmin {
    client: postgres::Client,
}

impl PgAdmin {
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut client = connect(url, Retry::default())?;
        migrate(&mut client)?;
        Ok(PgAdmin { client })
    }

    pub fn snapshot(&mut self) -> Result<AccessSnapshot, StoreError> {
        snapshot(&mut self.client)
    }

    /// Adds a tenant; false when it was there already.
    pub fn add_tenant(&mut self, name: &str, now: &str) -> Result<bool, StoreError> {
        Ok(self.client.execute(
            "INSERT INTO tenants (name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &now],
        )? == 1)
    }

    pub fn tenants(&mut self) -> Result<Vec<TenantInfo>, StoreError> {
        Ok(self
            .client
            .query(
                "SELECT t.name, t.created, \
                 coalesce((SELECT n FROM resource_counts c WHERE c.tenant = t.name AND c.resource_type = 'User'), 0), \
                 coalesce((SELECT n FROM resource_counts c WHERE c.tenant = t.name AND c.resource_type = 'Group'), 0) \
                 FROM tenants t ORDER BY t.name",
                &[],
            )?
            .iter()
            .map(|r| TenantInfo {
                name: r.get(0),
                created: r.get(1),
                users: r.get(2),
                groups: r.get(3),
            })
            .collect())
    }

    /// Removes a tenant; one that holds users or groups only with `purge`, which deletes
    /// them in the same transaction. The tenant's row is locked first: writes in flight
    /// hold it shared, so none lands between the count and the delete.
    pub fn remove_tenant(&mut self, name: &str, purge: bool) -> Result<RemoveOutcome, StoreError> {
        let mut tx = self.client.transaction()?;
        if tx
            .query_opt("SELECT 1 FROM tenants WHERE name = $1 FOR UPDATE", &[&name])?
            .is_none()
        {
            return Ok(RemoveOutcome::NotFound);
        }
        let mut count = |rt: &str| -> Result<i64, StoreError> {
            Ok(tx
                .query_opt(
                    "SELECT n FROM resource_counts WHERE tenant = $1 AND resource_type = $2",
                    &[&name, &rt],
                )?
                .map_or(0, |r| r.get(0)))
        };
        let (users, groups) = (count("User")?, count("Group")?);
        if (users > 0 || groups > 0) && !purge {
            return Ok(RemoveOutcome::HasData { users, groups });
        }
        // As on SQLite: the feed's events and positions go with the tenant; its numbering
        // stays, so that a tenant of the same name never reuses a number.
        for table in [
            "DELETE FROM memberships WHERE tenant = $1",
            "DELETE FROM attr_index WHERE tenant = $1",
            "DELETE FROM resources WHERE tenant = $1",
            "DELETE FROM resource_counts WHERE tenant = $1",
            "DELETE FROM events WHERE tenant = $1",
            "DELETE FROM event_positions WHERE tenant = $1",
            "DELETE FROM event_replays WHERE tenant = $1",
            "DELETE FROM tenants WHERE name = $1",
        ] {
            tx.execute(table, &[&name])?;
        }
        tx.commit()?;
        Ok(RemoveOutcome::Removed { users, groups })
    }
}
