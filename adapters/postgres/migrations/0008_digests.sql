-- Digests of what a key's cooldown held back (issue #13). A key has at most one
-- pending digest (the partial unique index), which its held events name
-- (events.digest_id); it is decided once, when due, by the transaction holding the
-- key's bucket, and its notification's event_id is the digest's id.
CREATE TABLE digests (
    id              text PRIMARY KEY,
    user_id         text NOT NULL,
    kind            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'notified', 'skipped')),
    opened_at       timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    decided_at      timestamptz,
    decision_json   jsonb,
    explanation     text,
    notification_id text
);
CREATE UNIQUE INDEX digests_one_pending_per_key ON digests (user_id, kind) WHERE status = 'pending';
CREATE INDEX digests_due ON digests (due_at) WHERE status = 'pending';
ALTER TABLE events ADD COLUMN digest_id text;
CREATE INDEX events_digest ON events (digest_id, seq) WHERE digest_id IS NOT NULL;
