-- Events that tidings validated as it stored them are not validated again when
-- claimed; rows a producer inserts itself keep the default and are.
ALTER TABLE events ADD COLUMN validated boolean NOT NULL DEFAULT false;
