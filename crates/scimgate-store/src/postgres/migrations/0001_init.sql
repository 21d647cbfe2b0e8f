-- The whole schema of scimgate on PostgreSQL, as SQLite's migrations 1 to 8 leave it:
-- the same tables, keys and indexes, in PostgreSQL's types. Names and case folding are
-- computed in Rust, as for SQLite (`name_key`, the index's `text`), and every column that
-- is compared or sorted as text is compared byte for byte (COLLATE "C", as SQLite's
-- BINARY), so both backends order alike and the `sw` range uses the index whatever the
-- database's locale.

CREATE TABLE tenants (
    name     TEXT PRIMARY KEY,
    created  TEXT NOT NULL
);
INSERT INTO tenants (name, created)
    VALUES ('default', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));

CREATE TABLE resources (
    seq            BIGSERIAL PRIMARY KEY,
    tenant         TEXT    NOT NULL,
    resource_type  TEXT    NOT NULL CHECK (resource_type IN ('User', 'Group')),
    id             TEXT    COLLATE "C" NOT NULL,
    name           TEXT    NOT NULL, -- userName of a User, displayName of a Group, as given
    name_key       TEXT    COLLATE "C" NOT NULL, -- `name` with Unicode case folding, computed in Rust
    display        TEXT    NOT NULL, -- what a membership shows: displayName, else userName
    external_id    TEXT,
    attributes     TEXT    NOT NULL, -- JSON of the validated, writable attributes
    password_hash  TEXT,             -- Argon2id PHC string; never the cleartext
    version        BIGINT  NOT NULL,
    created        TEXT    COLLATE "C" NOT NULL,
    last_modified  TEXT    COLLATE "C" NOT NULL,
    UNIQUE (tenant, id)
);
-- The database enforces userName uniqueness (per tenant, Unicode-folded): two instances
-- racing to create one user cannot both win.
CREATE UNIQUE INDEX resources_user_name ON resources (tenant, name_key) WHERE resource_type = 'User';
CREATE INDEX resources_sorted_by_name ON resources (tenant, resource_type, name_key, id);
CREATE INDEX resources_by_external_id ON resources (tenant, resource_type, external_id);
CREATE INDEX resources_by_type ON resources (tenant, resource_type, seq);

CREATE TABLE memberships (
    tenant     TEXT NOT NULL,
    group_id   TEXT COLLATE "C" NOT NULL,
    member_id  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, group_id, member_id),
    FOREIGN KEY (tenant, group_id) REFERENCES resources (tenant, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant, member_id) REFERENCES resources (tenant, id) ON DELETE CASCADE
);
CREATE INDEX memberships_by_member ON memberships (tenant, member_id, group_id);

CREATE TABLE attr_paths (
    id    BIGSERIAL PRIMARY KEY,
    path  TEXT NOT NULL UNIQUE -- canonical path: userName, emails.value, urn:…:User:department
);

CREATE TABLE attr_index (
    tenant   TEXT    NOT NULL,
    path_id  BIGINT  NOT NULL REFERENCES attr_paths (id),
    text     TEXT COLLATE "C",
    num      NUMERIC,
    seq      BIGINT  NOT NULL REFERENCES resources (seq) ON DELETE CASCADE,
    elem     BIGINT  NOT NULL  -- which value of a multi-valued attribute (0 for singular)
);
CREATE INDEX attr_index_lookup ON attr_index (tenant, path_id, text, num, seq, elem);
CREATE INDEX attr_index_by_resource ON attr_index (seq, path_id, elem);

CREATE TABLE resource_counts (
    tenant         TEXT    NOT NULL,
    resource_type  TEXT    NOT NULL,
    n              BIGINT  NOT NULL,
    PRIMARY KEY (tenant, resource_type)
);

CREATE TABLE tokens (
    jti         TEXT PRIMARY KEY,
    subject     TEXT,
    tenants     TEXT,    -- space-separated: the default tenant first
    scope       TEXT,
    issued_at   BIGINT,  -- Unix seconds
    expires_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX tokens_revoked ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE audit (
    seq             BIGSERIAL PRIMARY KEY,
    at              TEXT    COLLATE "C" NOT NULL,
    tenant          TEXT    NOT NULL,
    subject         TEXT,
    jti             TEXT,
    client          TEXT,
    method          TEXT    NOT NULL,
    resource_type   TEXT,
    resource_id     TEXT,
    version_before  BIGINT,
    version_after   BIGINT,
    plugins         TEXT,   -- JSON: [{"plugin": NAME, "decision": ...}]
    status          INTEGER NOT NULL,
    detail          TEXT
);
CREATE INDEX audit_by_tenant ON audit (tenant, seq);
CREATE INDEX audit_by_time ON audit (at);

CREATE TABLE events (
    tenant         TEXT    NOT NULL,
    seq            BIGINT  NOT NULL,  -- per tenant: 1, 2, 3, … without gaps
    txn            TEXT    NOT NULL,  -- the write's transaction id (RFC 9967 `txn`)
    at             TEXT    COLLATE "C" NOT NULL,
    operation      TEXT    NOT NULL,  -- create | replace | patch | delete
    resource_type  TEXT    NOT NULL,
    resource_id    TEXT    NOT NULL,
    external_id    TEXT,
    version        BIGINT,
    created        TEXT,
    activation     BOOLEAN,
    attributes     TEXT    NOT NULL,
    data           TEXT,
    members        TEXT,
    PRIMARY KEY (tenant, seq)
);
-- A tenant's last number, taken with the write's row lock: gap-free numbering across
-- instances, in commit order per tenant.
CREATE TABLE event_sequences (
    tenant    TEXT    PRIMARY KEY,
    last_seq  BIGINT  NOT NULL
);
CREATE TABLE event_positions (
    consumer       TEXT    NOT NULL,
    tenant         TEXT    NOT NULL,
    seq            BIGINT  NOT NULL,
    updated        TEXT    NOT NULL,
    state          TEXT    NOT NULL DEFAULT 'active',  -- active | dead
    failing_since  TEXT,
    last_error     TEXT,
    PRIMARY KEY (consumer, tenant)
);
CREATE TABLE event_replays (
    consumer  TEXT    NOT NULL,
    tenant    TEXT    NOT NULL,
    from_seq  BIGINT  NOT NULL,
    PRIMARY KEY (consumer, tenant)
);

CREATE TABLE oauth_clients (
    client_id           TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    tenants             TEXT NOT NULL,
    scope               TEXT NOT NULL,
    token_ttl           BIGINT NOT NULL,
    created             TEXT NOT NULL,
    assertion_issuer    TEXT,
    assertion_subject   TEXT,
    assertion_audience  TEXT,
    jwks_url            TEXT,
    jwks_file           TEXT
);
CREATE TABLE oauth_client_secrets (
    client_id   TEXT   NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    digest      TEXT   NOT NULL,
    created     BIGINT NOT NULL,
    expires     BIGINT,
    PRIMARY KEY (client_id, digest)
);

CREATE TABLE schema_set (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    json  TEXT NOT NULL
);
