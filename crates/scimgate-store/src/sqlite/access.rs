//! Who may be served: the tenant registry and the token list with revocations. The server
//! reads them (cached, refreshed at least every second); `scimgate tenant …` and
//! `scimgate token …` change them through [`AdminDb`], from another process.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::connection::open_read_write;
use super::migrations::migrate;
use crate::admin::Admin;
use crate::error::StoreError;
use crate::records::{
    AccessSnapshot, AuditQuery, AuditRecord, ClientSecret, EventPosition, EventRecord, OAuthClient,
    RemoveOutcome, Revocation, TenantInfo, TokenRecord,
};

pub(crate) fn snapshot(conn: &Connection) -> Result<AccessSnapshot, StoreError> {
    let mut tenants = HashSet::new();
    let mut stmt = conn.prepare_cached("SELECT name FROM tenants")?;
    for name in stmt.query_map([], |r| r.get::<_, String>(0))? {
        tenants.insert(name?);
    }
    let mut revoked = HashSet::new();
    let mut stmt = conn.prepare_cached("SELECT jti FROM tokens WHERE revoked_at IS NOT NULL")?;
    for jti in stmt.query_map([], |r| r.get::<_, String>(0))? {
        revoked.insert(jti?);
    }
    let clients = super::clients::all(conn)?
        .into_iter()
        .map(|c| (c.client_id.clone(), c))
        .collect();
    Ok(AccessSnapshot {
        tenants,
        revoked,
        clients,
    })
}

/// How long an admin command's end waits for the log to be folded into the file.
const FOLD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// A read-write connection for the command-line tools, beside a running server.
pub struct AdminDb {
    conn: Connection,
}

impl Drop for AdminDb {
    /// What a command wrote goes into the database file before it exits: the server's
    /// writer folds the log only after its own writes, and a copy of `scimgate.db` taken
    /// while the server idles must not miss a revocation or a tenant.
    ///
    /// A checkpoint answers busy at once, without waiting, while another connection folds
    /// the log (the server's log folder, every 50 ms, which may have started before this
    /// command's commit): it is tried again, for a few seconds at most.
    fn drop(&mut self) {
        let deadline = std::time::Instant::now() + FOLD_PATIENCE;
        loop {
            let busy = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                });
            match busy {
                Ok(0) => return,
                Ok(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Ok(_) => {
                    tracing::warn!(
                        "the log was not folded after an admin command: the database stayed busy; the server folds it later"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "checkpoint after an admin command failed");
                    return;
                }
            }
        }
    }
}

impl AdminDb {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = open_read_write(path, std::time::Duration::from_secs(10))?;
        migrate(&mut conn)?;
        Ok(AdminDb { conn })
    }

    /// The connection, for tests that write rows directly.
    #[cfg(test)]
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Admin for AdminDb {
    /// Audit rows, as `scimgate audit tail` reads them.
    fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        super::audit::read_audit(&self.conn, q)
    }

    /// The newest events (of one tenant or all), oldest first: `scimgate events tail`.
    fn events_tail(
        &self,
        tenant: Option<&str>,
        count: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        super::outbox::tail(&self.conn, tenant, count)
    }

    /// Events of `tenant` after `after`: `scimgate events tail --follow`.
    fn events_after(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        super::outbox::read_after(&self.conn, tenant, after, limit)
    }

    /// Each tenant's last event number.
    fn event_heads(&self) -> Result<Vec<(String, i64)>, StoreError> {
        super::outbox::heads(&self.conn)
    }

    fn event_positions(&self) -> Result<Vec<EventPosition>, StoreError> {
        super::outbox::positions(&self.conn)
    }

    /// Forgets a poll or stream cursor (in one tenant, or all): `scimgate events forget`.
    /// How many positions went.
    fn forget_position(&self, consumer: &str, tenant: Option<&str>) -> Result<usize, StoreError> {
        super::outbox::forget(&self.conn, consumer, tenant)
    }

    /// Asks a receiver to deliver again from `from` in `tenant` (taken by its delivery
    /// thread within seconds).
    fn request_replay(&self, consumer: &str, tenant: &str, from: i64) -> Result<(), StoreError> {
        super::outbox::request_replay(&self.conn, consumer, tenant, from)
    }

    /// Sets a dead-lettered receiver active again; how many of its tenants were dead.
    fn enable_consumer(&self, consumer: &str) -> Result<usize, StoreError> {
        super::outbox::enable(&self.conn, consumer)
    }

    fn snapshot(&self) -> Result<AccessSnapshot, StoreError> {
        snapshot(&self.conn)
    }

    /// Adds a tenant; false when it was there already.
    fn add_tenant(&self, name: &str, now: &str) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO tenants (name, created) VALUES (?1, ?2)",
            params![name, now],
        )?;
        Ok(n == 1)
    }

    fn tenants(&self) -> Result<Vec<TenantInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT t.name, t.created,
                    coalesce((SELECT n FROM resource_counts c WHERE c.tenant = t.name AND c.resource_type = 'User'), 0),
                    coalesce((SELECT n FROM resource_counts c WHERE c.tenant = t.name AND c.resource_type = 'Group'), 0)
             FROM tenants t ORDER BY t.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TenantInfo {
                name: r.get(0)?,
                created: r.get(1)?,
                users: r.get(2)?,
                groups: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a tenant; one that holds users or groups only with `purge`, which deletes
    /// them (memberships and index rows with them) in the same transaction. The audit
    /// trail stays.
    fn remove_tenant(&mut self, name: &str, purge: bool) -> Result<RemoveOutcome, StoreError> {
        // Immediate: the server's writer waits, or this does, so no create lands in the
        // tenant between the count and the delete (creates check the tenant themselves).
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists = tx
            .query_row("SELECT 1 FROM tenants WHERE name = ?1", [name], |_| Ok(()))
            .optional()?
            .is_some();
        if !exists {
            return Ok(RemoveOutcome::NotFound);
        }
        let count = |rt: &str| -> Result<i64, StoreError> {
            Ok(tx
                .query_row(
                    "SELECT n FROM resource_counts WHERE tenant = ?1 AND resource_type = ?2",
                    params![name, rt],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0))
        };
        let (users, groups) = (count("User")?, count("Group")?);
        if (users > 0 || groups > 0) && !purge {
            return Ok(RemoveOutcome::HasData { users, groups });
        }
        tx.execute("DELETE FROM memberships WHERE tenant = ?1", [name])?;
        tx.execute("DELETE FROM resources WHERE tenant = ?1", [name])?;
        tx.execute("DELETE FROM resource_counts WHERE tenant = ?1", [name])?;
        // Its index rows went with its resources, each taking one off its flag's count.
        tx.execute("DELETE FROM flag_counts WHERE tenant = ?1", [name])?;
        // The change feed's events hold the tenant's data too: they go with it, and so do
        // its consumers' positions. Its numbering stays, so that a tenant of the same name
        // added later never reuses a number a receiver has already seen.
        tx.execute("DELETE FROM events WHERE tenant = ?1", [name])?;
        tx.execute("DELETE FROM event_positions WHERE tenant = ?1", [name])?;
        tx.execute("DELETE FROM event_replays WHERE tenant = ?1", [name])?;
        tx.execute("DELETE FROM tenants WHERE name = ?1", [name])?;
        tx.commit()?;
        Ok(RemoveOutcome::Removed { users, groups })
    }

    fn record_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO tokens (jti, subject, tenants, scope, issued_at, expires_at, revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                t.jti,
                t.subject,
                t.tenants.join(" "),
                t.scope,
                t.issued_at,
                t.expires_at,
                t.revoked_at
            ],
        )?;
        Ok(())
    }

    /// Registers an OAuth client with its first secret (as its digest); false when a
    /// client of that name exists.
    fn add_client(&self, client: &OAuthClient) -> Result<bool, StoreError> {
        super::clients::add(&self.conn, client)
    }

    /// Every OAuth client, by name.
    fn clients(&self) -> Result<Vec<OAuthClient>, StoreError> {
        super::clients::all(&self.conn)
    }

    /// Gives client `name` a new secret; its other secrets end at `old_until` (Unix
    /// seconds) unless they end sooner. False when there is no such client.
    fn rotate_client(
        &self,
        name: &str,
        secret: &ClientSecret,
        old_until: i64,
    ) -> Result<bool, StoreError> {
        super::clients::rotate(&self.conn, name, secret, old_until)
    }

    /// Removes client `name` and its secrets; false when there was none.
    fn remove_client(&self, name: &str) -> Result<bool, StoreError> {
        super::clients::remove(&self.conn, name)
    }

    /// Revokes a token by `jti`, minted here or not; false when it was revoked already.
    /// Revokes `jti`. A `jti` this folder never minted is refused (a typo must not look
    /// like a revocation) unless `external`: a token from an operator's key.
    fn revoke_token(&self, jti: &str, now: i64, external: bool) -> Result<Revocation, StoreError> {
        let known: Option<Option<i64>> = self
            .conn
            .query_row(
                "SELECT revoked_at FROM tokens WHERE jti = ?1",
                params![jti],
                |r| r.get(0),
            )
            .optional()?;
        match known {
            Some(Some(_)) => return Ok(Revocation::AlreadyRevoked),
            None if !external => return Ok(Revocation::Unknown),
            _ => {}
        }
        self.conn.execute(
            "INSERT INTO tokens (jti, revoked_at) VALUES (?1, ?2)
             ON CONFLICT (jti) DO UPDATE SET revoked_at = excluded.revoked_at
             WHERE tokens.revoked_at IS NULL",
            params![jti, now],
        )?;
        Ok(Revocation::Revoked)
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT jti, subject, tenants, scope, issued_at, expires_at, revoked_at
             FROM tokens ORDER BY issued_at, jti",
        )?;
        let rows = stmt.query_map([], |r| {
            let tenants: Option<String> = r.get(2)?;
            Ok(TokenRecord {
                jti: r.get(0)?,
                subject: r.get(1)?,
                tenants: tenants
                    .unwrap_or_default()
                    .split_ascii_whitespace()
                    .map(str::to_owned)
                    .collect(),
                scope: r.get(3)?,
                issued_at: r.get(4)?,
                expires_at: r.get(5)?,
                revoked_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_added_listed_and_removed_only_empty_unless_purged() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut db = AdminDb::open(&dir.path().join("a.db")).expect("open");
        assert!(db.snapshot().expect("snap").tenants.contains("default"));
        assert!(db.add_tenant("acme", "t").expect("add"));
        assert!(!db.add_tenant("acme", "t").expect("again"));
        db.conn
            .execute_batch(
                "INSERT INTO resources (tenant, resource_type, id, name, name_key, display, attributes, version, created, last_modified)
                 VALUES ('acme', 'User', 'u1', 'a', 'a', 'a', '{}', 1, 't', 't');
                 INSERT INTO resource_counts VALUES ('acme', 'User', 1);",
            )
            .expect("seed");
        let names: Vec<_> = db
            .tenants()
            .expect("list")
            .into_iter()
            .map(|t| (t.name, t.users))
            .collect();
        assert_eq!(
            names,
            vec![("acme".to_owned(), 1), ("default".to_owned(), 0)]
        );
        assert_eq!(
            db.remove_tenant("acme", false).expect("refused"),
            RemoveOutcome::HasData {
                users: 1,
                groups: 0
            }
        );
        assert_eq!(
            db.remove_tenant("acme", true).expect("purged"),
            RemoveOutcome::Removed {
                users: 1,
                groups: 0
            }
        );
        let left: i64 = db
            .conn
            .query_row(
                "SELECT count(*) FROM resources WHERE tenant = 'acme'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(left, 0);
        assert_eq!(
            db.remove_tenant("acme", false).expect("gone"),
            RemoveOutcome::NotFound
        );
    }

    #[test]
    fn tokens_are_recorded_and_revoked_by_jti() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = AdminDb::open(&dir.path().join("a.db")).expect("open");
        db.record_token(&TokenRecord {
            jti: "j1".into(),
            subject: Some("entra".into()),
            tenants: vec!["default".into(), "acme".into()],
            scope: Some("scim:read".into()),
            issued_at: Some(1),
            expires_at: Some(2),
            revoked_at: None,
        })
        .expect("record");
        assert!(db.snapshot().expect("snap").revoked.is_empty());
        assert_eq!(
            db.revoke_token("j1", 5, false).expect("revoke"),
            Revocation::Revoked
        );
        assert_eq!(
            db.revoke_token("j1", 6, false).expect("twice"),
            Revocation::AlreadyRevoked
        );
        assert_eq!(
            db.revoke_token("typo", 7, false).expect("unknown"),
            Revocation::Unknown
        );
        assert!(!db.snapshot().expect("snapshot").revoked.contains("typo"));
        assert_eq!(
            db.revoke_token("minted-elsewhere", 7, true)
                .expect("external jti"),
            Revocation::Revoked
        );
        let snap = db.snapshot().expect("snap");
        assert_eq!(snap.revoked.len(), 2);
        let listed = db.tokens().expect("list");
        assert_eq!(listed[1].tenants, vec!["default", "acme"]);
        assert_eq!(
            listed[1].revoked_at,
            Some(5),
            "the first revocation time stays"
        );
    }
}
