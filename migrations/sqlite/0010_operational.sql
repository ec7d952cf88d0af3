-- Operational events' memory. Dead letters: one window per endpoint; the first death of a
-- window is told at once, the rest (`pending`, since `pending_since`) when it ends.
CREATE TABLE ops_dead_windows (
    subscription_id TEXT PRIMARY KEY,
    opened_at       INTEGER NOT NULL,
    pending         INTEGER NOT NULL,
    pending_since   INTEGER,
    last_error      TEXT
) WITHOUT ROWID;

-- Backlog alerts raised and not cleared yet: kind is backlog (count) or age.
CREATE TABLE ops_alerts (
    subscription_id TEXT NOT NULL,
    kind            TEXT NOT NULL,
    raised_at       INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, kind)
) WITHOUT ROWID;

-- Failed attempts by time, for the incident summary: small while endpoints are healthy.
CREATE INDEX attempts_failed ON attempts(at) WHERE error_class IS NOT NULL;
