-- Deciding transactions serialise per (user, kind) by locking the row of the key's
-- bucket: 3840 buckets, a hash of user and kind modulo 3840 (see decisions.py).
-- Row locks live in the rows, so any number of runners, lanes and keys never fill
-- the server's shared lock table the way as many advisory locks would.
CREATE TABLE decision_locks (bucket integer PRIMARY KEY);
INSERT INTO decision_locks SELECT generate_series(0, 3839);
