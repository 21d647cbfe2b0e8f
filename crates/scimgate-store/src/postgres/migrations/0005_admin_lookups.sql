-- The admin page opens one resource's audit history by index, not by a scan of a
-- million rows; and each write's audit row names the change feed's event it made (the
-- write's changes, found by the event's key) instead of a second index on the events.
ALTER TABLE audit ADD COLUMN event_seq BIGINT;
CREATE INDEX audit_by_resource ON audit (tenant, resource_id, seq);
