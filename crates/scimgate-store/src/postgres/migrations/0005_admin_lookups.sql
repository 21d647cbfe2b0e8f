-- The admin page opens one resource's audit history and its changes (the change feed's
-- events): both found by index, not by a scan of a million rows.
CREATE INDEX audit_by_resource ON audit (tenant, resource_id, seq);
CREATE INDEX events_by_resource ON events (tenant, resource_id, seq);
