-- Fewer index writes per delivery: every index on deliveries costs the writer B-tree work
-- on each insert and status change, and the writer is the engine's serial path (measured
-- with `hookctl bench`). The retry queue and the dead letters keep indexes of their own,
-- partial ones that a delivery succeeding at its first attempt never touches.
DROP INDEX deliveries_status_next;
DROP INDEX deliveries_final;
CREATE INDEX deliveries_retrying ON deliveries(next_at) WHERE status = 'retrying';
CREATE INDEX deliveries_dead ON deliveries(subscription_id) WHERE status = 'dead';
