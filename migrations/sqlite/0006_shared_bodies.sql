-- A fan-out renders the same bytes for most of an event's subscriptions: each distinct body
-- of an event is stored once, and every delivery that sent it points at it. Ten identical
-- kilobyte bodies per event were most of the bytes the writer wrote and checkpointed in a
-- ten-way fan-out (`hookctl bench`, workload 2). A body lives as long as its event.
CREATE TABLE bodies (
    id        INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    body      BLOB NOT NULL
);
CREATE INDEX bodies_event ON bodies(event_seq);
INSERT INTO bodies (id, event_seq, body)
    SELECT b.delivery_id, d.event_seq, b.body
    FROM delivery_bodies b JOIN deliveries d ON d.id = b.delivery_id;
-- body_id is no foreign key: a body and every delivery pointing at it belong to one event
-- and go with it, and enforcing it would cost a lookup per delivery and, without an index
-- of its own, a scan of this table for every body deleted.
CREATE TABLE delivery_bodies_new (
    delivery_id INTEGER PRIMARY KEY REFERENCES deliveries(id) ON DELETE CASCADE,
    body_id     INTEGER NOT NULL
);
INSERT INTO delivery_bodies_new (delivery_id, body_id)
    SELECT delivery_id, delivery_id FROM delivery_bodies;
DROP TABLE delivery_bodies;
ALTER TABLE delivery_bodies_new RENAME TO delivery_bodies;
