-- API tokens ("private integrations"): only a hash is kept.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,
    location_id TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Inbound webhooks: a JSON POST to /hooks/in/{token} becomes an event.
CREATE TABLE inbound (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    location_id TEXT,
    -- JSON array of [field, JSON pointer]
    map         TEXT NOT NULL DEFAULT '[]',
    -- shared secret for an HMAC check of incoming bodies
    secret      TEXT,
    created_at  INTEGER NOT NULL
);

-- A pending subscription's confirmation token.
ALTER TABLE subscriptions ADD COLUMN verify_token TEXT;

-- Monotonic counters for /metrics, kept with the data so that every process agrees and
-- a restart loses nothing.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
