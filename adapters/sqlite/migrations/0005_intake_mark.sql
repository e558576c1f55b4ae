-- Events tidings validated as it stored them carry the database's intake mark, a
-- random number kept in intake_secret, and are not validated again when claimed. A
-- producer's row does not carry it (the `validated` flag of migration 0003, which a
-- producer could set by mistake, is no longer read or written), so it is validated
-- when claimed.
CREATE TABLE intake_secret (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    mark INTEGER NOT NULL
);
INSERT INTO intake_secret (one, mark) VALUES (1, random());
ALTER TABLE events ADD COLUMN intake_mark INTEGER;
