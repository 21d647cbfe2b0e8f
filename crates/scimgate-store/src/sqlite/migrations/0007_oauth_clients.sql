-- OAuth 2.0 clients (RFC 6749 §4.4, client credentials): who may ask `POST /oauth/token`
-- for an access token, for which tenants and scopes, for how long.
CREATE TABLE oauth_clients (
    client_id   TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    tenants     TEXT    NOT NULL,  -- space-separated: the default tenant first
    scope       TEXT    NOT NULL,  -- space-separated: the most a token may carry
    token_ttl   INTEGER NOT NULL,  -- seconds
    created     TEXT    NOT NULL,
    -- Workload identity federation (RFC 7523 client assertions): a client with these
    -- authenticates with a JWT its identity provider signed, checked against the
    -- provider's published keys, and has no secret.
    assertion_issuer    TEXT,
    assertion_subject   TEXT,
    assertion_audience  TEXT,
    jwks_url            TEXT,
    jwks_file           TEXT
) WITHOUT ROWID;

-- A client's secrets, only as SHA-256 digests (each is 256 random bits, so a fast digest
-- is enough; nothing here lets anyone authenticate). A rotation gives the old secret an
-- end (`expires`, Unix seconds), so that both hold while the IdP is updated.
CREATE TABLE oauth_client_secrets (
    client_id   TEXT    NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    digest      TEXT    NOT NULL,  -- hex SHA-256 of the secret
    created     INTEGER NOT NULL,  -- Unix seconds
    expires     INTEGER,           -- Unix seconds; NULL: until rotated
    PRIMARY KEY (client_id, digest)
) WITHOUT ROWID;
