-- Resources of every type, one row each; the tenant is part of every key.
CREATE TABLE resources (
    seq            INTEGER PRIMARY KEY,
    tenant         TEXT    NOT NULL,
    resource_type  TEXT    NOT NULL CHECK (resource_type IN ('User', 'Group')),
    id             TEXT    NOT NULL,
    name           TEXT    NOT NULL, -- userName of a User, displayName of a Group, as given
    name_key       TEXT    NOT NULL, -- `name` with Unicode case folding, computed in Rust
    display        TEXT    NOT NULL, -- what a membership shows: displayName, else userName
    external_id    TEXT,
    attributes     TEXT    NOT NULL, -- JSON of the validated, writable attributes
    password_hash  TEXT,             -- Argon2id PHC string; never the cleartext
    version        INTEGER NOT NULL,
    created        TEXT    NOT NULL,
    last_modified  TEXT    NOT NULL,
    UNIQUE (tenant, id)
);

-- userName is unique per tenant, case-insensitively (RFC 7643 §4.1.1).
CREATE UNIQUE INDEX resources_user_name ON resources (tenant, name_key) WHERE resource_type = 'User';
CREATE INDEX resources_by_name ON resources (tenant, resource_type, name_key);
CREATE INDEX resources_by_external_id ON resources (tenant, resource_type, external_id);
CREATE INDEX resources_by_type ON resources (tenant, resource_type, seq);

-- Group membership, kept out of the group's JSON so that large groups stay cheap to change.
CREATE TABLE memberships (
    tenant     TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    member_id  TEXT NOT NULL,
    PRIMARY KEY (tenant, group_id, member_id),
    FOREIGN KEY (tenant, group_id) REFERENCES resources (tenant, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant, member_id) REFERENCES resources (tenant, id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE INDEX memberships_by_member ON memberships (tenant, member_id, group_id);
