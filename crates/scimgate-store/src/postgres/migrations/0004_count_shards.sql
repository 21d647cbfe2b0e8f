-- Resource counts kept in up to 16 rows per tenant and type: a write adds to one chosen
-- at random, the count is their sum. Concurrent writes in one tenant then do not queue on
-- one row's lock for the rest of their transactions.
ALTER TABLE resource_counts ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE resource_counts DROP CONSTRAINT resource_counts_pkey;
ALTER TABLE resource_counts ADD PRIMARY KEY (tenant, resource_type, shard);
