-- tidings schema, version 1, for PostgreSQL. Names follow the reference (peisear).

CREATE TABLE notification_preferences (
    user_id      text NOT NULL,
    kind         text NOT NULL,               -- '_global' is the global row
    channels     text[] NOT NULL,             -- normalised names, in preference order
    min_severity text NOT NULL CHECK (min_severity IN ('info', 'watch', 'critical')),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, kind)
);

-- The durable intake. Fields are kept as given: a producer may insert rows in its
-- own transaction (see the README); they are validated when claimed.
CREATE TABLE events (
    seq             bigserial PRIMARY KEY,
    event_id        text NOT NULL UNIQUE DEFAULT gen_random_uuid()::text,
    user_id         text,
    kind            text,
    severity        text,
    title           text,
    body            text,
    payload_json    text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'claimed', 'notified', 'skipped', 'rejected')),
    claimed_by      text,
    lease_until     timestamptz,
    enqueued_at     timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    reason          text,
    decision        jsonb,
    explanation     text,
    error           text,
    notification_id text
);
CREATE INDEX events_open ON events (seq) WHERE status IN ('pending', 'claimed');

-- Wake sleeping runners when events arrive; they also poll, so a lost wake-up only
-- costs a poll interval.
CREATE FUNCTION tidings_events_arrived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tidings_events', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_arrived AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION tidings_events_arrived();

CREATE TABLE notifications (
    id             text PRIMARY KEY,
    event_id       text NOT NULL UNIQUE,
    user_id        text NOT NULL,
    kind           text NOT NULL,
    severity       text NOT NULL,
    title          text NOT NULL,
    body           text NOT NULL,
    payload_json   text,                      -- verbatim, as the producer sent it
    created_at     timestamptz NOT NULL,
    read_at        timestamptz,
    dispatched_via text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX notifications_cooldown ON notifications (user_id, kind, created_at DESC);
CREATE INDEX notifications_inbox ON notifications (user_id, created_at DESC);

CREATE TABLE deliveries (
    id              text PRIMARY KEY,
    notification_id text NOT NULL REFERENCES notifications (id),
    channel         text NOT NULL,
    status          text NOT NULL
                    CHECK (status IN ('pending', 'delivered', 'skipped', 'failed', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error      text,
    delivered_at    timestamptz,
    claimed_by      text,
    lease_until     timestamptz,
    UNIQUE (notification_id, channel)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'failed');

CREATE TABLE recipients (
    user_id        text PRIMARY KEY,
    email          text,
    webhook_url    text,
    webhook_secret text
);
