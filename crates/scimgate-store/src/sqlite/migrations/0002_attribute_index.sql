-- Searchable attribute values, one row per single value, so that any filter runs on indexes.
-- Strings are Unicode case-folded in Rust when the attribute is not caseExact; numbers,
-- booleans (0/1) and dateTimes (nanoseconds since the epoch) go in `num`. Complex values
-- get a marker row (both NULL) per element, for `pr` and value filters.
CREATE TABLE attr_paths (
    id    INTEGER PRIMARY KEY,
    path  TEXT NOT NULL UNIQUE -- canonical path: userName, emails.value, urn:…:User:department
);

CREATE TABLE attr_index (
    tenant   TEXT    NOT NULL,
    path_id  INTEGER NOT NULL REFERENCES attr_paths (id),
    text     TEXT,
    num      NUMERIC,
    seq      INTEGER NOT NULL REFERENCES resources (seq) ON DELETE CASCADE,
    elem     INTEGER NOT NULL  -- which value of a multi-valued attribute (0 for singular)
);

CREATE INDEX attr_index_lookup ON attr_index (tenant, path_id, text, num, seq, elem);
CREATE INDEX attr_index_by_resource ON attr_index (seq, path_id, elem);

-- Sorting by userName (Users) or displayName (Groups), ties broken by id, straight off an index.
DROP INDEX resources_by_name;
CREATE INDEX resources_sorted_by_name ON resources (tenant, resource_type, name_key, id);
