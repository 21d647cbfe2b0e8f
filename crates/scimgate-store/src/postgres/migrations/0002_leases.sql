-- Work that one instance of several does at a time (a push receiver's delivery): held by
-- the instance named `holder` until `expires` (the database's clock), renewed while it
-- works, taken over by another once it lapses.
CREATE TABLE leases (
    name     TEXT        PRIMARY KEY,
    holder   TEXT        NOT NULL,
    expires  TIMESTAMPTZ NOT NULL
);
