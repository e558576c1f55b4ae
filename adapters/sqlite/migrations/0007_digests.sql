-- Digests of what a key's cooldown held back (issue #13). A key has at most one
-- pending digest (the partial unique index), which its held events name
-- (events.digest_id); it is decided once, when due, under the key's serialisation,
-- and its notification's event_id is the digest's id.
CREATE TABLE digests (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'notified', 'skipped')),
    opened_at     TEXT NOT NULL,
    due_at        TEXT NOT NULL,
    decided_at    TEXT,
    decision_json TEXT,
    explanation   TEXT,
    notification_id TEXT
);
CREATE UNIQUE INDEX digests_one_pending_per_key ON digests (user_id, kind) WHERE status = 'pending';
CREATE INDEX digests_due ON digests (due_at) WHERE status = 'pending';
ALTER TABLE events ADD COLUMN digest_id TEXT;
CREATE INDEX events_digest ON events (digest_id, seq) WHERE digest_id IS NOT NULL;
