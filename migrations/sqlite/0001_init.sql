-- Times are integer milliseconds since the Unix epoch (UTC): cheap to compare and index.

CREATE TABLE subscriptions (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    url              TEXT NOT NULL,
    -- JSON array of canonical event types; NULL means every type.
    events           TEXT,
    location_id      TEXT,
    secret           TEXT NOT NULL,
    method           TEXT NOT NULL DEFAULT 'POST',
    -- JSON array of [name, value] pairs, in the order given.
    headers          TEXT NOT NULL DEFAULT '[]',
    format           TEXT NOT NULL DEFAULT 'json',
    payload          TEXT NOT NULL DEFAULT 'flat',
    template         TEXT,
    -- JSON array of retry delays in ms (the first attempt is immediate).
    retry_schedule   TEXT NOT NULL,
    timeout_ms       INTEGER NOT NULL,
    rate_per_sec     REAL,
    signature_scheme TEXT NOT NULL DEFAULT 'wl',
    signature_header TEXT NOT NULL DEFAULT 'x-wl-signature',
    state            TEXT NOT NULL,
    -- why the engine disabled it (e.g. the endpoint answered 410 Gone)
    state_reason     TEXT,
    -- secret rotation: the old secret still signs the main header until this time
    previous_secret  TEXT,
    previous_secret_until INTEGER,
    -- endpoint health: the circuit opens after N consecutive failures
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    circuit          TEXT NOT NULL DEFAULT 'closed',
    circuit_changed_at INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- What happened to a subscription and why: state and circuit changes, rotations.
CREATE TABLE subscription_log (
    subscription_id TEXT NOT NULL,
    at              INTEGER NOT NULL,
    change          TEXT NOT NULL,
    reason          TEXT
);
CREATE INDEX subscription_log_sub ON subscription_log(subscription_id, at);

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    location_id TEXT,
    timestamp   INTEGER NOT NULL,
    data        TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX events_type ON events(type, seq);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    event_seq       INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL,
    -- pending | retrying | delivered | dead | cancelled
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- failed circuit-breaker probes: attempts that do not spend the retry schedule
    probes          INTEGER NOT NULL DEFAULT 0,
    -- when the next attempt is due; NULL once the delivery is final
    next_at         INTEGER,
    -- set while an engine holds the delivery in flight
    lease_until     INTEGER,
    -- the body exactly as first sent; kept once per delivery, not per attempt
    body            BLOB,
    -- a redelivery points the delivery it replaces at the new one
    superseded_by   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- The claim path: due, unleased work of one endpoint in due order.
CREATE INDEX deliveries_due ON deliveries(subscription_id, next_at)
    WHERE status IN ('pending', 'retrying') AND lease_until IS NULL;
CREATE INDEX deliveries_event ON deliveries(event_seq);
CREATE INDEX deliveries_sub_status ON deliveries(subscription_id, status);
CREATE INDEX deliveries_leased ON deliveries(lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX deliveries_final ON deliveries(status, updated_at) WHERE status IN ('delivered', 'dead', 'cancelled');
CREATE INDEX events_received ON events(received_at);
CREATE INDEX deliveries_status_next ON deliveries(status, next_at);

CREATE TABLE attempts (
    delivery_id      INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    n                INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    status_code      INTEGER,
    error_class      TEXT,
    error            TEXT,
    latency_ms       INTEGER NOT NULL,
    -- the headers that vary per attempt (signature, timestamp, attempt number)
    request_headers  TEXT,
    -- kept for failures and for the success
    response_headers TEXT,
    response_body    BLOB,
    PRIMARY KEY (delivery_id, n)
) WITHOUT ROWID;
CREATE INDEX attempts_at ON attempts(at);
