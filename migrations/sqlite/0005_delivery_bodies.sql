-- The body as first sent, beside its delivery instead of inside it: a delivery's row is
-- rewritten at every change of state, and growing it from tens of bytes to a kilobyte in
-- place split the table's pages under load. A body is appended once here.
CREATE TABLE delivery_bodies (
    delivery_id INTEGER PRIMARY KEY REFERENCES deliveries(id) ON DELETE CASCADE,
    body        BLOB NOT NULL
);
INSERT INTO delivery_bodies (delivery_id, body)
    SELECT id, body FROM deliveries WHERE body IS NOT NULL;
ALTER TABLE deliveries DROP COLUMN body;
