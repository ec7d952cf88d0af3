-- The counts the console, `hookctl status` and /metrics show leave out deliveries replaced
-- by a redelivery. Counting every row to tell them apart took a pass over the table
-- (0.65 s for a million deliveries on the 2-core machine, at each refresh of the console);
-- counting the (subscription, status) index alone takes a third of that, and the few
-- replaced ones are found here and taken off. A delivery is replaced at most once and
-- never on the hot path, so this index costs the writer nothing per delivery.
CREATE INDEX deliveries_superseded ON deliveries(superseded_by) WHERE superseded_by IS NOT NULL;
