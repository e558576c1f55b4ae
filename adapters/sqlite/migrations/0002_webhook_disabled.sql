-- Endpoints that answered 410 Gone are turned off, with the reason, until replaced.
ALTER TABLE recipients ADD COLUMN webhook_disabled TEXT;
