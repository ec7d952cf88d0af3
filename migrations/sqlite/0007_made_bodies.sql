-- A first body made from the event alone (no template) is not kept: the delivery records
-- how it was made ('flat/json', 'envelope/form', …) and the bytes are made again from the
-- event for a retry or for the console. Bodies kept before stay where they are.
ALTER TABLE deliveries ADD COLUMN body_shape TEXT;
