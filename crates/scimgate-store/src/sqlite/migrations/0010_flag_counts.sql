-- How many index rows of each path hold the number 0 and how many the number 1, per
-- tenant: for a boolean attribute, how many resources have each value. A list filtered by
-- `active eq true` reads its totalResults here in one lookup instead of stepping through
-- every matching index entry (900,000 of them at a million users took 129 ms). The
-- writer keeps it in the same transaction as the index rows (`sqlite/index.rs`: every
-- row it inserts or deletes, and a deleted resource's rows). Numbers of other types that
-- happen to be 0 or 1 are counted too; only booleans' counts are read.
CREATE TABLE flag_counts (
    tenant   TEXT    NOT NULL,
    path_id  INTEGER NOT NULL,
    num      INTEGER NOT NULL,  -- 0 or 1
    n        INTEGER NOT NULL,
    PRIMARY KEY (tenant, path_id, num)
) WITHOUT ROWID;

INSERT INTO flag_counts (tenant, path_id, num, n)
    SELECT tenant, path_id, num, count(*) FROM attr_index
    WHERE text IS NULL AND num IN (0, 1)
    GROUP BY tenant, path_id, num;
