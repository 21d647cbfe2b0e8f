//! Who may be served, on PostgreSQL: the tenant registry, the revoked tokens and the OAuth
//! clients, read by every instance at least every second (`snapshot`); and what
//! the command-line tools change through [`PgAdmin`], from any host.

use std::collections::HashSet;
use std::sync::{Mutex, mpsc};

use postgres::{Client, GenericClient};

use super::{PgOptions, audit, connect_with, migrate, outbox};
use crate::admin::Admin;
use crate::error::StoreError;
use crate::records::{
    AccessSnapshot, AuditQuery, AuditRecord, ClientAssertion, ClientSecret, EventPosition,
    EventRecord, OAuthClient, RemoveOutcome, Revocation, TenantInfo, TokenRecord,
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

/// A connection for the command-line tools, beside running servers. The connection
/// lives on a thread of its own and each call waits for its answer there, so that a
/// `PgAdmin` works from any thread, an async runtime's too (the blocking client refuses
/// to run inside one).
pub struct PgAdmin {
    jobs: Mutex<mpsc::Sender<Job>>,
}

type Job = Box<dyn FnOnce(&mut postgres::Client) + Send>;

impl PgAdmin {
    /// Connects (trying again while the database does not answer) and migrates.
    pub fn open(options: &PgOptions) -> Result<Self, StoreError> {
        let ((config, tls), retry) = (options.settings()?, options.retry);
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened, open) = mpsc::channel();
        std::thread::Builder::new()
            .name("pg-admin".into())
            .spawn(move || {
                let mut client = match connect_with(&config, &tls, retry).and_then(|mut c| {
                    migrate(&mut c)?;
                    Ok(c)
                }) {
                    Ok(client) => {
                        let _ = opened.send(Ok(()));
                        client
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                for job in queue {
                    job(&mut client);
                }
            })?;
        open.recv().map_err(|_| StoreError::WriterGone)??;
        Ok(PgAdmin {
            jobs: Mutex::new(jobs),
        })
    }

    /// Runs `f` on the connection's thread; its answer.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = mpsc::channel();
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(Box::new(move |client| {
                let _ = answer.send(f(client));
            }))
            .map_err(|_| StoreError::WriterGone)?;
        answered.recv().map_err(|_| StoreError::WriterGone)?
    }
}

impl Admin for PgAdmin {
    fn snapshot(&self) -> Result<AccessSnapshot, StoreError> {
        self.run(snapshot)
    }

    fn add_tenant(&self, name: &str, now: &str) -> Result<bool, StoreError> {
        let (name, now) = (name.to_owned(), now.to_owned());
        self.run(move |c| add_tenant(c, &name, &now))
    }

    fn tenants(&self) -> Result<Vec<TenantInfo>, StoreError> {
        self.run(tenants)
    }

    fn remove_tenant(&mut self, name: &str, purge: bool) -> Result<RemoveOutcome, StoreError> {
        let name = name.to_owned();
        self.run(move |c| remove_tenant(c, &name, purge))
    }

    fn record_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let token = token.clone();
        self.run(move |c| record_token(c, &token))
    }

    fn revoke_token(&self, jti: &str, now: i64, external: bool) -> Result<Revocation, StoreError> {
        let jti = jti.to_owned();
        self.run(move |c| revoke_token(c, &jti, now, external))
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.run(tokens)
    }

    fn add_client(&self, client: &OAuthClient) -> Result<bool, StoreError> {
        let client = client.clone();
        self.run(move |c| add_client(c, &client))
    }

    fn clients(&self) -> Result<Vec<OAuthClient>, StoreError> {
        self.run(all_clients)
    }

    fn rotate_client(
        &self,
        name: &str,
        secret: &ClientSecret,
        old_until: i64,
    ) -> Result<bool, StoreError> {
        let (name, secret) = (name.to_owned(), secret.clone());
        self.run(move |c| rotate_client(c, &name, &secret, old_until))
    }

    fn remove_client(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.run(move |c| remove_client(c, &name))
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let query = query.clone();
        self.run(move |c| audit_rows(c, &query))
    }

    fn events_tail(
        &self,
        tenant: Option<&str>,
        count: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        self.run(move |c| events_tail(c, tenant.as_deref(), count))
    }

    fn events_after(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let tenant = tenant.to_owned();
        self.run(move |c| events_after(c, &tenant, after, limit))
    }

    fn event_heads(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.run(event_heads)
    }

    fn event_positions(&self) -> Result<Vec<EventPosition>, StoreError> {
        self.run(event_positions)
    }

    fn forget_position(&self, consumer: &str, tenant: Option<&str>) -> Result<usize, StoreError> {
        let (consumer, tenant) = (consumer.to_owned(), tenant.map(str::to_owned));
        self.run(move |c| forget_position(c, &consumer, tenant.as_deref()))
    }

    fn request_replay(&self, consumer: &str, tenant: &str, from: i64) -> Result<(), StoreError> {
        let (consumer, tenant) = (consumer.to_owned(), tenant.to_owned());
        self.run(move |c| request_replay(c, &consumer, &tenant, from))
    }

    fn enable_consumer(&self, consumer: &str) -> Result<usize, StoreError> {
        let consumer = consumer.to_owned();
        self.run(move |c| enable_consumer(c, &consumer))
    }
}

fn add_tenant(client: &mut Client, name: &str, now: &str) -> Result<bool, StoreError> {
    Ok(client.execute(
        "INSERT INTO tenants (name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&name, &now],
    )? == 1)
}

fn tenants(client: &mut Client) -> Result<Vec<TenantInfo>, StoreError> {
    Ok(client
        .query(
            "SELECT t.name, t.created, \
             coalesce((SELECT sum(n)::bigint FROM resource_counts c WHERE c.tenant = t.name AND c.resource_type = 'User'), 0), \
             coalesce((SELECT sum(n)::bigint FROM resource_counts c WHERE c.tenant = t.name AND c.resource_type = 'Group'), 0) \
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

/// The tenant's row is locked first: writes in flight hold it shared, so none lands
/// between the count and the delete.
fn remove_tenant(
    client: &mut Client,
    name: &str,
    purge: bool,
) -> Result<RemoveOutcome, StoreError> {
    let mut tx = client.transaction()?;
    if tx
        .query_opt("SELECT 1 FROM tenants WHERE name = $1 FOR UPDATE", &[&name])?
        .is_none()
    {
        return Ok(RemoveOutcome::NotFound);
    }
    let mut count = |rt: &str| -> Result<i64, StoreError> {
        Ok(tx
            .query_one(
                "SELECT sum(n)::bigint FROM resource_counts WHERE tenant = $1 AND resource_type = $2",
                &[&name, &rt],
            )?
            .get::<_, Option<i64>>(0)
            .unwrap_or(0))
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

fn record_token(client: &mut Client, t: &TokenRecord) -> Result<(), StoreError> {
    client.execute(
        "INSERT INTO tokens (jti, subject, tenants, scope, issued_at, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &t.jti,
            &t.subject,
            &t.tenants.join(" "),
            &t.scope,
            &t.issued_at,
            &t.expires_at,
            &t.revoked_at,
        ],
    )?;
    Ok(())
}

fn revoke_token(
    client: &mut Client,
    jti: &str,
    now: i64,
    external: bool,
) -> Result<Revocation, StoreError> {
    let known: Option<Option<i64>> = client
        .query_opt("SELECT revoked_at FROM tokens WHERE jti = $1", &[&jti])?
        .map(|r| r.get(0));
    match known {
        Some(Some(_)) => return Ok(Revocation::AlreadyRevoked),
        None if !external => return Ok(Revocation::Unknown),
        _ => {}
    }
    client.execute(
        "INSERT INTO tokens (jti, revoked_at) VALUES ($1, $2) \
         ON CONFLICT (jti) DO UPDATE SET revoked_at = excluded.revoked_at \
         WHERE tokens.revoked_at IS NULL",
        &[&jti, &now],
    )?;
    Ok(Revocation::Revoked)
}

fn tokens(client: &mut Client) -> Result<Vec<TokenRecord>, StoreError> {
    Ok(client
        .query(
            "SELECT jti, subject, tenants, scope, issued_at, expires_at, revoked_at \
             FROM tokens ORDER BY issued_at, jti",
            &[],
        )?
        .iter()
        .map(|r| TokenRecord {
            jti: r.get(0),
            subject: r.get(1),
            tenants: r
                .get::<_, Option<String>>(2)
                .unwrap_or_default()
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
            scope: r.get(3),
            issued_at: r.get(4),
            expires_at: r.get(5),
            revoked_at: r.get(6),
        })
        .collect())
}

fn add_client(client: &mut Client, c: &OAuthClient) -> Result<bool, StoreError> {
    let mut tx = client.transaction()?;
    let assertion = c.assertion.as_ref();
    let added = tx.execute(
        "INSERT INTO oauth_clients (client_id, name, tenants, scope, token_ttl, created, \
         assertion_issuer, assertion_subject, assertion_audience, jwks_url, jwks_file) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
        &[
            &c.client_id,
            &c.name,
            &c.tenants.join(" "),
            &c.scope,
            &c.token_ttl_secs,
            &c.created,
            &assertion.map(|a| &a.issuer),
            &assertion.map(|a| &a.subject),
            &assertion.map(|a| &a.audience),
            &assertion.and_then(|a| a.jwks_url.as_ref()),
            &assertion.and_then(|a| a.jwks_file.as_ref()),
        ],
    )? == 1;
    if !added {
        return Ok(false);
    }
    for s in &c.secrets {
        insert_secret(&mut tx, &c.client_id, s)?;
    }
    tx.commit()?;
    Ok(true)
}

fn all_clients(client: &mut Client) -> Result<Vec<OAuthClient>, StoreError> {
    clients(client)
}

fn rotate_client(
    client: &mut Client,
    name: &str,
    secret: &ClientSecret,
    old_until: i64,
) -> Result<bool, StoreError> {
    let mut tx = client.transaction()?;
    let Some(id) = tx
        .query_opt(
            "SELECT client_id FROM oauth_clients WHERE name = $1 FOR UPDATE",
            &[&name],
        )?
        .map(|r| r.get::<_, String>(0))
    else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE oauth_client_secrets SET expires = least(coalesce(expires, $2), $2) WHERE client_id = $1",
        &[&id, &old_until],
    )?;
    // Secrets long past their end are of no use to anyone: gone.
    tx.execute(
        "DELETE FROM oauth_client_secrets WHERE client_id = $1 AND expires < $2",
        &[&id, &secret.created],
    )?;
    insert_secret(&mut tx, &id, secret)?;
    tx.commit()?;
    Ok(true)
}

fn remove_client(client: &mut Client, name: &str) -> Result<bool, StoreError> {
    Ok(client.execute("DELETE FROM oauth_clients WHERE name = $1", &[&name])? == 1)
}

fn audit_rows(client: &mut Client, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
    audit::read(client, query)
}

fn events_tail(
    client: &mut Client,
    tenant: Option<&str>,
    count: usize,
) -> Result<Vec<EventRecord>, StoreError> {
    let heads = match tenant {
        Some(t) => vec![(t.to_owned(), outbox::head(client, t)?)],
        None => outbox::heads(client)?,
    };
    crate::admin::tail(heads, count, |t, from, limit| {
        outbox::read_after(&mut *client, t, from, limit)
    })
}

fn events_after(
    client: &mut Client,
    tenant: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<EventRecord>, StoreError> {
    outbox::read_after(client, tenant, after, limit)
}

fn event_heads(client: &mut Client) -> Result<Vec<(String, i64)>, StoreError> {
    outbox::heads(client)
}

fn event_positions(client: &mut Client) -> Result<Vec<EventPosition>, StoreError> {
    outbox::positions(client)
}

fn forget_position(
    client: &mut Client,
    consumer: &str,
    tenant: Option<&str>,
) -> Result<usize, StoreError> {
    Ok(client.execute(
        "DELETE FROM event_positions WHERE consumer = $1 AND ($2::text IS NULL OR tenant = $2)",
        &[&consumer, &tenant],
    )? as usize)
}

fn request_replay(
    client: &mut Client,
    consumer: &str,
    tenant: &str,
    from: i64,
) -> Result<(), StoreError> {
    client.execute(
        "INSERT INTO event_replays (consumer, tenant, from_seq) VALUES ($1, $2, $3) \
         ON CONFLICT (consumer, tenant) DO UPDATE SET from_seq = excluded.from_seq",
        &[&consumer, &tenant, &from],
    )?;
    Ok(())
}

fn enable_consumer(client: &mut Client, consumer: &str) -> Result<usize, StoreError> {
    Ok(client.execute(
        "UPDATE event_positions SET state = 'active', failing_since = NULL \
         WHERE consumer = $1 AND state = 'dead'",
        &[&consumer],
    )? as usize)
}

fn insert_secret(
    tx: &mut postgres::Transaction<'_>,
    client_id: &str,
    s: &ClientSecret,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO oauth_client_secrets (client_id, digest, created, expires) VALUES ($1, $2, $3, $4)",
        &[&client_id, &s.digest, &s.created, &s.expires],
    )?;
    Ok(())
}
