-- Operator actions: who did what to which subscription or event, and how it ended.
CREATE TABLE audit (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    -- cli | console | api
    actor_kind      TEXT NOT NULL,
    -- the OS user (cli, console) or the API token's id
    actor           TEXT NOT NULL,
    -- a console attached to another process's engine
    attached        INTEGER NOT NULL DEFAULT 0,
    action          TEXT NOT NULL,
    subscription_id TEXT,
    event_id        TEXT,
    -- what a bulk action selected, as text (e.g. status=dead since=2h)
    filter          TEXT,
    -- rows the action touched, where it has a count
    count           INTEGER,
    ok              INTEGER NOT NULL,
    detail          TEXT
);
CREATE INDEX audit_at ON audit(at);
CREATE INDEX audit_sub ON audit(subscription_id, at);
