-- Each instance's plugins-and-schemas fingerprint, published every few seconds, so that
-- `/readyz` on any instance can report one that runs a different set.
CREATE TABLE instances (
    name         TEXT        PRIMARY KEY,
    fingerprint  TEXT        NOT NULL,
    seen         TIMESTAMPTZ NOT NULL
);
