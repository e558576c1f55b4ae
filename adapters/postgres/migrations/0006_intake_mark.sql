-- Events tidings validated as it stored them carry the database's intake mark, a
-- random number kept in intake_secret, and are not validated again when claimed. A
-- producer's row does not carry it (the boolean `validated` of migration 0003, which
-- a producer could set by mistake, is no longer read or written), and a row whose
-- fields are changed afterwards loses it: either is validated when claimed.
CREATE TABLE intake_secret (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    mark bigint NOT NULL
);
INSERT INTO intake_secret (mark)
SELECT ('x' || encode(substring(sha256(uuid_send(gen_random_uuid())) FROM 1 FOR 8), 'hex'))
    ::bit(64)::bigint;

ALTER TABLE events ADD COLUMN intake_mark bigint;

-- An AFTER trigger, not a BEFORE one: a BEFORE row trigger on UPDATE makes every update
-- of the table lock each row a second time, the runners' own included; this one only
-- runs for updates that name the event's fields, which tidings never makes.
CREATE FUNCTION tidings_event_edited() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE events SET intake_mark = NULL WHERE seq = NEW.seq AND intake_mark IS NOT NULL;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_edited
    AFTER UPDATE OF event_id, user_id, kind, severity, title, body, payload_json ON events
    FOR EACH ROW EXECUTE FUNCTION tidings_event_edited();
