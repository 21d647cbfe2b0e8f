-- Tenants that may be served. Requests for a tenant not listed here are refused.
CREATE TABLE tenants (
    name     TEXT PRIMARY KEY,
    created  TEXT NOT NULL
) WITHOUT ROWID;

-- The default tenant, and every tenant that already has data.
INSERT INTO tenants (name, created) VALUES ('default', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
INSERT OR IGNORE INTO tenants (name, created)
    SELECT DISTINCT tenant, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM resources;

-- Tokens by `jti`: those `scimgate token` minted (with what they carry), and any other
-- revoked. A token whose row has `revoked_at` set is refused.
CREATE TABLE tokens (
    jti         TEXT PRIMARY KEY,
    subject     TEXT,
    tenants     TEXT,    -- space-separated: the default tenant first
    scope       TEXT,
    issued_at   INTEGER, -- Unix seconds
    expires_at  INTEGER,
    revoked_at  INTEGER
) WITHOUT ROWID;

CREATE INDEX tokens_revoked ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;

-- Every write and every refused write.
CREATE TABLE audit (
    seq             INTEGER PRIMARY KEY,
    at              TEXT    NOT NULL,
    tenant          TEXT    NOT NULL,
    subject         TEXT,
    jti             TEXT,
    client          TEXT,
    method          TEXT    NOT NULL,
    resource_type   TEXT,
    resource_id     TEXT,
    version_before  INTEGER,
    version_after   INTEGER,
    plugins         TEXT,   -- JSON: [{"plugin": NAME, "decision": ...}]
    status          INTEGER NOT NULL,
    detail          TEXT
);

CREATE INDEX audit_by_tenant ON audit (tenant, seq);
CREATE INDEX audit_by_time ON audit (at);
