-- The change feed's outbox: one row for every committed write, inserted in the write's
-- own savepoint, so that a write that rolls back leaves no event and no committed write
-- goes without one. Delivery (push, poll, stream, webhooks) reads from here.
CREATE TABLE events (
    tenant         TEXT    NOT NULL,
    seq            INTEGER NOT NULL,  -- per tenant: 1, 2, 3, … without gaps
    txn            TEXT    NOT NULL,  -- the write's transaction id (RFC 9967 `txn`)
    at             TEXT    NOT NULL,  -- when the write was made (RFC 3339)
    operation      TEXT    NOT NULL,  -- create | replace | patch | delete
    resource_type  TEXT    NOT NULL,
    resource_id    TEXT    NOT NULL,
    external_id    TEXT,
    version        INTEGER,           -- the version stored; NULL for a delete
    created        TEXT,              -- the resource's creation time; NULL for a delete
    activation     INTEGER,           -- 1: `active` went false → true, 0: true → false
    attributes     TEXT    NOT NULL,  -- JSON array: the attributes the write changed
    data           TEXT,              -- JSON: the attributes as stored (create, replace)
                                      -- or the operations as applied (patch)
    members        TEXT,              -- JSON array: a group's members (create, replace)
    PRIMARY KEY (tenant, seq)
) WITHOUT ROWID;

-- The last sequence number given in each tenant: kept apart from `events`, so that pruning
-- old events never lets a number be given twice.
CREATE TABLE event_sequences (
    tenant    TEXT    PRIMARY KEY,
    last_seq  INTEGER NOT NULL
) WITHOUT ROWID;

-- Where each consumer of the feed stands in each tenant: push receivers and webhooks by
-- name (`receiver:NAME`), poll and stream consumers by their named cursor (`cursor:NAME`).
CREATE TABLE event_positions (
    consumer       TEXT    NOT NULL,
    tenant         TEXT    NOT NULL,
    seq            INTEGER NOT NULL,  -- the last event delivered or acknowledged
    updated        TEXT    NOT NULL,
    state          TEXT    NOT NULL DEFAULT 'active',  -- active | dead
    failing_since  TEXT,
    last_error     TEXT,
    PRIMARY KEY (consumer, tenant)
) WITHOUT ROWID;

-- Replays asked for with `scimgate events replay`: the receiver's delivery thread takes
-- them (deleting the row) and goes back to `from_seq`.
CREATE TABLE event_replays (
    consumer  TEXT    NOT NULL,
    tenant    TEXT    NOT NULL,
    from_seq  INTEGER NOT NULL,
    PRIMARY KEY (consumer, tenant)
) WITHOUT ROWID;
