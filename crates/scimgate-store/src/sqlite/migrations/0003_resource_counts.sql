-- How many resources of each type a tenant has, kept by the writer in the same transaction
-- as the resources, so that an unfiltered list's totalResults costs one lookup, not a scan.
CREATE TABLE resource_counts (
    tenant         TEXT    NOT NULL,
    resource_type  TEXT    NOT NULL,
    n              INTEGER NOT NULL,
    PRIMARY KEY (tenant, resource_type)
) WITHOUT ROWID;

INSERT INTO resource_counts (tenant, resource_type, n)
    SELECT tenant, resource_type, count(*) FROM resources GROUP BY tenant, resource_type;
