-- tidings schema, version 1. Times are UTC ISO-8601 text of one fixed width, so
-- text order is time order. Names follow the reference (peisear's notifications).

CREATE TABLE notification_preferences (
    user_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,               -- '_global' is the global row
    channels     TEXT NOT NULL,               -- JSON array of normalised names
    min_severity TEXT NOT NULL CHECK (min_severity IN ('info', 'watch', 'critical')),
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (user_id, kind)
);

-- The durable intake. Fields are kept as given (a producer may insert rows
-- directly); they are validated when claimed, and invalid ones end 'rejected'.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    user_id         TEXT,
    kind            TEXT,
    severity        TEXT,
    title           TEXT,
    body            TEXT,
    payload_json    TEXT,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'claimed', 'notified', 'skipped', 'rejected')),
    claimed_by      TEXT,
    lease_until     TEXT,
    enqueued_at     TEXT NOT NULL,
    decided_at      TEXT,
    reason          TEXT,
    decision_json   TEXT,
    explanation     TEXT,
    error           TEXT,
    notification_id TEXT
);
CREATE INDEX events_open ON events (status, seq) WHERE status IN ('pending', 'claimed');

CREATE TABLE notifications (
    id             TEXT PRIMARY KEY,
    event_id       TEXT NOT NULL UNIQUE,
    user_id        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    severity       TEXT NOT NULL,
    title          TEXT NOT NULL,
    body           TEXT NOT NULL,
    payload_json   TEXT,
    created_at     TEXT NOT NULL,
    read_at        TEXT,
    dispatched_via TEXT NOT NULL DEFAULT '[]'  -- JSON array: channels delivered
);
CREATE INDEX notifications_cooldown ON notifications (user_id, kind, created_at DESC);
CREATE INDEX notifications_inbox ON notifications (user_id, created_at DESC);

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL REFERENCES notifications (id),
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL
                    CHECK (status IN ('pending', 'delivered', 'skipped', 'failed', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT,
    delivered_at    TEXT,
    claimed_by      TEXT,
    lease_until     TEXT,
    UNIQUE (notification_id, channel)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'failed');

CREATE TABLE recipients (
    user_id        TEXT PRIMARY KEY,
    email          TEXT,
    webhook_url    TEXT,
    webhook_secret TEXT
);
