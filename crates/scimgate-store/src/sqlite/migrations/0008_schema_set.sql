-- The operator's schema set last put in force (`[[schemas]]`, as JSON), so that a start
-- with changed schema files is checked against what the stored values were written under,
-- as a reload is.
CREATE TABLE schema_set (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    json  TEXT NOT NULL
);
