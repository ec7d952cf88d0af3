-- Custom values for merge tags ({{custom_values.NAME}}): a location's value overrides the
-- global one ('' is the global location).
CREATE TABLE custom_values (
    name        TEXT NOT NULL,
    location_id TEXT NOT NULL DEFAULT '',
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (name, location_id)
) WITHOUT ROWID;
