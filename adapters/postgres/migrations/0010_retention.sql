-- Retention (issue #14): a pass walks what is older than its horizon, oldest first, in
-- small chunks. Notifications by age (the inbox and cooldown indexes lead with the
-- user); decided digests by when they were decided. Events are walked by seq, their
-- primary key, so deciding an event writes no index entry more than before. On a large
-- notifications table, build the index beforehand without blocking writes (README,
-- "Retention"): CREATE INDEX CONCURRENTLY notifications_age ON notifications (created_at, id).
CREATE INDEX IF NOT EXISTS notifications_age ON notifications (created_at, id);
CREATE INDEX IF NOT EXISTS digests_decided ON digests (decided_at, id)
    WHERE status IN ('notified', 'skipped');
