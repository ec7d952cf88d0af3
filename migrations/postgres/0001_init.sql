-- The PostgreSQL schema: the SQLite schema at its version 10, in one step, and what
-- several engines on one database need beside it (workers, lease owners, rate
-- tokens). Times are bigint milliseconds since the Unix epoch (UTC), as in SQLite, so both
-- backends share their row conversions and the domain code never sees a difference.

CREATE TABLE subscriptions (
    id               text PRIMARY KEY,
    name             text NOT NULL,
    url              text NOT NULL,
    -- JSON array of canonical event types; NULL means every (product) type
    events           text,
    location_id      text,
    secret           text NOT NULL,
    method           text NOT NULL DEFAULT 'POST',
    -- JSON array of [name, value] pairs, in the order given
    headers          text NOT NULL DEFAULT '[]',
    format           text NOT NULL DEFAULT 'json',
    payload          text NOT NULL DEFAULT 'flat',
    template         text,
    -- JSON array of retry delays in ms (the first attempt is immediate)
    retry_schedule   text NOT NULL,
    timeout_ms       bigint NOT NULL,
    rate_per_sec     double precision,
    signature_scheme text NOT NULL DEFAULT 'wl',
    signature_header text NOT NULL DEFAULT 'x-wl-signature',
    state            text NOT NULL,
    state_reason     text,
    previous_secret  text,
    previous_secret_until bigint,
    consecutive_failures bigint NOT NULL DEFAULT 0,
    circuit          text NOT NULL DEFAULT 'closed',
    circuit_changed_at bigint,
    -- when a worker last leased a probe of the open circuit
    probed_at        bigint,
    verify_token     text,
    -- the deployment's token bucket for rate_per_sec: tokens left, and when counted
    rate_tokens      double precision,
    rate_at          bigint,
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL
);

CREATE TABLE subscription_log (
    subscription_id text NOT NULL,
    at              bigint NOT NULL,
    change          text NOT NULL,
    reason          text
);
CREATE INDEX subscription_log_sub ON subscription_log(subscription_id, at);

CREATE TABLE events (
    seq         bigserial PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    type        text NOT NULL,
    location_id text,
    timestamp   bigint NOT NULL,
    -- the JSON text as received: sent as it is, parsed only when a field is needed
    data        text NOT NULL,
    received_at bigint NOT NULL
);
CREATE INDEX events_type ON events(type, seq);
CREATE INDEX events_received ON events(received_at);

-- Engines running on this database, each with its last heartbeat; a claim names its
-- worker, and a worker whose heartbeat stopped has its leases returned by any other.
CREATE TABLE workers (
    id          text PRIMARY KEY,
    host        text NOT NULL,
    pid         bigint NOT NULL,
    started_at  bigint NOT NULL,
    heartbeat_at bigint NOT NULL,
    -- the most requests this worker may have on the wire to any one endpoint (NULL:
    -- the whole limit); claims lease ahead only while the live workers' bounds fit
    lane_bound  integer
);

CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    event_seq       bigint NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    subscription_id text NOT NULL,
    -- pending | retrying | delivered | dead | cancelled
    status          text NOT NULL,
    attempts        bigint NOT NULL DEFAULT 0,
    probes          bigint NOT NULL DEFAULT 0,
    next_at         bigint,
    -- set while a worker holds the delivery in flight, renewed while it does
    lease_until     bigint,
    lease_owner     text,
    superseded_by   bigint,
    body_shape      text,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(subscription_id, next_at)
    WHERE status IN ('pending', 'retrying') AND lease_until IS NULL;
CREATE INDEX deliveries_event ON deliveries(event_seq);
CREATE INDEX deliveries_sub_status ON deliveries(subscription_id, status, id);
-- Claims count an endpoint's leases across all workers (see claims).
CREATE INDEX deliveries_leased ON deliveries(subscription_id, lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX deliveries_retrying ON deliveries(next_at) WHERE status = 'retrying';
CREATE INDEX deliveries_dead ON deliveries(subscription_id) WHERE status = 'dead';
CREATE INDEX deliveries_superseded ON deliveries(superseded_by) WHERE superseded_by IS NOT NULL;

CREATE TABLE attempts (
    delivery_id      bigint NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    n                bigint NOT NULL,
    at               bigint NOT NULL,
    status_code      bigint,
    error_class      text,
    error            text,
    latency_ms       bigint NOT NULL,
    request_headers  text,
    response_headers text,
    response_body    bytea,
    PRIMARY KEY (delivery_id, n)
);
CREATE INDEX attempts_at ON attempts(at);
CREATE INDEX attempts_failed ON attempts(at) WHERE error_class IS NOT NULL;

CREATE TABLE bodies (
    id        bigserial PRIMARY KEY,
    event_seq bigint NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    body      bytea NOT NULL
);
CREATE INDEX bodies_event ON bodies(event_seq);

CREATE TABLE delivery_bodies (
    delivery_id bigint PRIMARY KEY REFERENCES deliveries(id) ON DELETE CASCADE,
    body_id     bigint NOT NULL
);

CREATE TABLE custom_values (
    name        text NOT NULL,
    location_id text NOT NULL DEFAULT '',
    value       text NOT NULL,
    updated_at  bigint NOT NULL,
    PRIMARY KEY (name, location_id)
);

CREATE TABLE tokens (
    id          text PRIMARY KEY,
    hash        text NOT NULL UNIQUE,
    scopes      text NOT NULL,
    location_id text,
    created_at  bigint NOT NULL,
    revoked_at  bigint
);

CREATE TABLE inbound (
    id          text PRIMARY KEY,
    hash        text NOT NULL UNIQUE,
    type        text NOT NULL,
    location_id text,
    map         text NOT NULL DEFAULT '[]',
    secret      text,
    created_at  bigint NOT NULL
);

-- Monotonic counters, each in 16 shards summed when read: every commit that counts
-- updates a random shard, so commits from many workers do not queue on one row.
CREATE TABLE counters (
    name  text NOT NULL,
    shard smallint NOT NULL,
    value bigint NOT NULL,
    PRIMARY KEY (name, shard)
);

CREATE TABLE audit (
    id              bigserial PRIMARY KEY,
    at              bigint NOT NULL,
    actor_kind      text NOT NULL,
    actor           text NOT NULL,
    attached        boolean NOT NULL DEFAULT false,
    action          text NOT NULL,
    subscription_id text,
    event_id        text,
    filter          text,
    count           bigint,
    ok              boolean NOT NULL,
    detail          text
);
CREATE INDEX audit_at ON audit(at);
CREATE INDEX audit_sub ON audit(subscription_id, at);

CREATE TABLE ops_dead_windows (
    subscription_id text PRIMARY KEY,
    opened_at       bigint NOT NULL,
    pending         bigint NOT NULL,
    pending_since   bigint,
    last_error      text
);

CREATE TABLE ops_alerts (
    subscription_id text NOT NULL,
    kind            text NOT NULL,
    raised_at       bigint NOT NULL,
    PRIMARY KEY (subscription_id, kind)
);

-- The schema version, one row; a binary refuses a database newer than it knows.
CREATE TABLE schema_version (
    version bigint NOT NULL
);
INSERT INTO schema_version (version) VALUES (1);
